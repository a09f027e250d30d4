"""Health for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Blueprint, Response

from .lifecycle import services

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


@bp.get("/healthz")
async def healthz() -> Any:
    """200 when storage and broker answer; else 503 naming what is failing."""
    svc = services()
    checks = {"storage": svc.storage.ping, "broker": svc.transport.ping}
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(check(), CHECK_TIMEOUT) for check in checks.values()),
        return_exceptions=True,
    )
    failing = []
    for name, outcome in zip(checks, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):  # any failure is unhealthy, never a 500
            log.warning("health check: %s failing: %r", name, outcome)
            failing.append(name)
    if svc.draining:
        return {"status": "unavailable", "failing": failing, "shutting_down": True}, 503
    if failing:
        return {"status": "unavailable", "failing": failing}, 503
    return {"status": "ok"}


@bp.get("/metrics")
async def metrics() -> Any:
    """Prometheus text: connections, messages, deliveries, latencies, HTTP requests."""
    svc = services()
    svc.metrics.queued_events.set(sum(len(conn.queue) for conn in svc.connections))
    # Multiprocess mode reads every worker's files: disk I/O, kept off the event loop.
    body, content_type = await asyncio.to_thread(svc.metrics.exposition)
    return Response(body, content_type=content_type)
