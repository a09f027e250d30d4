"""Prometheus metrics (prometheus-client), one registry per app.

Under several Hypercorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by them: every worker then writes its samples there and
``/metrics`` on any worker reports the sum (prometheus-client's multiprocess mode).
Gauges count live processes only: a worker that stops marks itself dead, and a scrape
first marks dead every process whose files remain but which no longer runs (one
killed without a chance to say so). Reading those files is disk I/O, done off the
event loop (``exposition`` runs in a thread).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@dataclass
class Metrics:
    registry: CollectorRegistry
    connections: Gauge
    messages_stored: Counter
    events_delivered: Counter
    frames_sent: Counter
    frames_direct: Counter
    fanout_latency: Histogram
    queued_events: Gauge
    slow_consumer_closes: Counter
    http_requests: Counter
    http_duration: Histogram

    def exposition(self) -> tuple[bytes, str]:
        """The text format; blocking in multiprocess mode (reads files): use a thread."""
        path = multiprocess_dir()
        if path is not None:
            sweep_dead_processes(path)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def retire(self) -> None:
        """This process stops serving: its live gauges leave the sums (multiprocess)."""
        path = multiprocess_dir()
        if path is not None:
            mark_process_dead(os.getpid(), path)


def sweep_dead_processes(path: str) -> list[int]:
    """Mark dead the processes that left live-gauge files and no longer run."""
    dead = []
    for entry in Path(path).glob("gauge_live*.db"):
        match = LIVE_GAUGE_FILE.fullmatch(entry.name)
        if match is not None and not _running(int(match[1])):
            dead.append(int(match[1]))
    for pid in sorted(set(dead)):
        mark_process_dead(pid, path)
    return sorted(set(dead))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def create_metrics() -> Metrics:
    registry = CollectorRegistry()
    multiprocess = multiprocess_dir() is not None
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
        frames_direct=Counter("chatapp_frames_direct", "Websocket frames written straight to "
                              "the socket, framed once per event (the fast path)",
                              registry=registry),
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
        http_requests=Counter(
            "chatapp_http_requests", "HTTP requests and websocket handshakes answered, by "
            "route (the URL rule, not the path), method and status",
            ["route", "method", "status"], registry=registry,
        ),
        http_duration=Histogram(
            "chatapp_http_request_duration_seconds",
            "Time to answer an HTTP request (a websocket: its handshake), by route",
            ["route"], buckets=REQUEST_BUCKETS, registry=registry,
        ),
    )
