"""Prometheus metrics (prometheus-client), one registry per app.

Under several Hypercorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by them: every worker then writes its samples there and
``/metrics`` on any worker reports the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    registry: CollectorRegistry
    connections: Gauge
    messages_stored: Counter
    events_delivered: Counter
    frames_sent: Counter
    fanout_latency: Histogram
    queued_events: Gauge
    slow_consumer_closes: Counter

    def exposition(self) -> tuple[bytes, str]:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def create_metrics() -> Metrics:
    registry = CollectorRegistry()
    multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    gauge_mode = {"multiprocess_mode": "livesum"} if multiprocess else {}
    return Metrics(
        registry=registry,
        connections=Gauge("chatapp_websocket_connections", "Open websocket connections",
                          registry=registry, **gauge_mode),  # type: ignore[arg-type]
        messages_stored=Counter("chatapp_messages_stored", "Messages committed to storage",
                                registry=registry),
        events_delivered=Counter("chatapp_events_delivered",
                                 "Events written to websockets (one per recipient)",
                                 registry=registry),
        frames_sent=Counter("chatapp_frames_sent", "Websocket frames written (an event or a "
                            "JSON array of coalesced events)", registry=registry),
        fanout_latency=Histogram(
            "chatapp_fanout_latency_seconds",
            "From an event entering a connection's queue to its frame being written",
            buckets=LATENCY_BUCKETS, registry=registry,
        ),
        queued_events=Gauge("chatapp_queued_events", "Events waiting in connection queues",
                            registry=registry, **gauge_mode),  # type: ignore[arg-type]
        slow_consumer_closes=Counter("chatapp_slow_consumer_closes",
                                     "Connections closed with 1013 for not reading",
                                     registry=registry),
    )
