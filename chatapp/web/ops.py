"""Health for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Blueprint, Response

from ..services import services

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


@bp.get("/healthz")
async def healthz() -> Any:
    """200 when storage and broker answer, else 503 naming what failed."""
    svc = services()
    failed = []
    for name, check in (("storage", svc.storage.ping), ("broker", svc.transport.ping)):
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except Exception as error:  # any failure means unhealthy, never a crash
            log.warning("health check: %s failed: %s", name, error)
            failed.append(name)
    if failed:
        return {"status": "unavailable", "failed": failed}, 503
    return {"status": "ok"}


@bp.get("/metrics")
async def metrics() -> Any:
    """Prometheus text: connections, messages, deliveries, latencies, HTTP requests."""
    svc = services()
    svc.metrics.queued_events.set(sum(len(conn.outbox) for conn in svc.connections))
    # Multiprocess mode reads every worker's files: disk I/O, kept off the event loop.
    body, content_type = await asyncio.to_thread(svc.metrics.exposition)
    return Response(body, content_type=content_type)
