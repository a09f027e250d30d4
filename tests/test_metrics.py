"""GET /metrics (SPEC §8): requests by route and status, connections, messages, workers."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from chatapp.metrics import Metrics, sweep_dead_processes

from .conftest import AuthActions, need_service, port_open
from .servers import Browser, Server, events_of
from .wsutil import connect


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent: a counter not yet moved)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def scrape(client: Any) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return str(await response.get_data(as_text=True))


REQUESTS = "chatapp_http_requests_total"


async def test_requests_are_counted_by_url_rule_and_status(app: Any, auth: AuthActions) -> None:
    client, _ = await auth.user("alice")
    for slug in ("general", "nope-1", "nope-2"):
        await client.get(f"/rooms/{slug}")
    await client.get("/no/such/page")
    await client.get("/login", headers={"Host": "evil.test"})
    text = await scrape(client)
    room_total = sum(
        sample(text, REQUESTS, route="/rooms/<slug>", method="GET", status=status)
        for status in ("200", "404")
    )
    assert room_total == 3
    assert sample(text, REQUESTS, route="/register", method="POST", status="303") == 1
    assert sample(text, REQUESTS, route="<unmatched>", method="GET", status="404") == 1
    assert sample(text, REQUESTS, route="<bad-host>", method="GET", status="400") == 1
    assert "nope-1" not in text and "/no/such/page" not in text  # bounded label values
    assert sample(text, "chatapp_http_request_duration_seconds_count", route="/rooms/<slug>") == 3


async def test_odd_methods_share_one_label(app: Any, client: Any) -> None:
    await client.open("/login", method="BREW")
    text = await scrape(client)
    # A method no rule takes is routed nowhere: 405 under <unmatched>.
    assert sample(text, REQUESTS, route="<unmatched>", method="OTHER", status="405") == 1
    assert 'method="BREW"' not in text


async def test_a_websocket_and_a_message_move_their_metrics(app: Any, auth: AuthActions) -> None:
    client, _ = await auth.user("alice")
    before = await scrape(client)
    assert sample(before, "chatapp_websocket_connections") == 0
    async with connect(client) as ws:
        during = await scrape(client)
        assert sample(during, "chatapp_websocket_connections") == 1
        assert sample(during, REQUESTS, route="/ws", method="GET", status="101") == 1
        await ws.request("send", "ack", room="general", body="hello", nonce="n1")
        await ws.expect("message")
        after_send = await scrape(client)
    assert sample(after_send, "chatapp_messages_stored_total") == 1
    assert sample(after_send, "chatapp_events_delivered_total") >= 1
    closed = await scrape(client)
    assert sample(closed, "chatapp_websocket_connections") == 0


async def test_a_refused_websocket_is_counted_with_its_status(app: Any, client: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the test client's refusal type varies
        async with client.websocket("/ws") as conn:
            await conn.receive()
    text = await scrape(client)
    assert sample(text, REQUESTS, route="/ws", method="GET", status="401") == 1


async def test_exposition_runs_off_the_event_loop(
    app: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    original = Metrics.exposition

    def spy(self: Metrics) -> tuple[bytes, str]:
        threads.append(threading.current_thread())
        return original(self)

    monkeypatch.setattr(Metrics, "exposition", spy)
    await scrape(client)
    assert threads and threads[0] is not threading.main_thread()


# multiprocess mode (PROMETHEUS_MULTIPROC_DIR)


DEAD_WORKER = """
import os
from chatapp.metrics import create_metrics
metrics = create_metrics()
metrics.connections.inc(3)
metrics.http_requests.labels(route="/login", method="GET", status="200").inc(5)
os._exit(0)  # killed: no chance to retire
"""


def test_a_scrape_marks_a_killed_worker_dead_and_keeps_its_counts(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    worker = subprocess.run([sys.executable, "-c", DEAD_WORKER], env=env, check=True)
    assert worker.returncode == 0
    live = list(directory.glob("gauge_livesum_*.db"))
    assert len(live) == 1
    dead_pid = int(re.findall(r"\d+", live[0].name)[0])
    metrics = Metrics.__new__(Metrics)  # exposition reads the directory only
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        text = metrics.exposition()[0].decode()
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert not (directory / f"gauge_livesum_{dead_pid}.db").exists()
    assert sample(text, "chatapp_websocket_connections") == 0
    assert sample(text, REQUESTS, route="/login", method="GET", status="200") == 5
    assert sweep_dead_processes(str(directory)) == []  # nothing left to sweep


def test_a_running_process_is_not_swept(tmp_path: Path) -> None:
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    assert sweep_dead_processes(str(tmp_path)) == []
    assert (tmp_path / f"gauge_livesum_{os.getpid()}.db").exists()


def metrics_of(server: Server) -> str:
    status, _, text = Browser(server.base).request("/metrics")
    assert status == 200
    return text


async def test_two_workers_report_the_sum_and_retire_on_shutdown(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 6379):
        need_service("Redis", "nothing listens on 127.0.0.1:6379")
    directory = tmp_path / "prom"
    directory.mkdir()
    server = Server(tmp_path / "server", {
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CHATAPP_BROKER_URL": f"redis://127.0.0.1:6379/0?prefix=test-{secrets.token_hex(6)}",
    }).with_workers(2).start()
    try:
        alice = Browser(server.base)
        assert alice.register("alice") == 303
        for _ in range(10):
            assert Browser(server.base).request("/login")[0] == 200
        # Every worker answers with the sum over both.
        for _ in range(4):
            text = metrics_of(server)
            assert sample(text, REQUESTS, route="/login", method="GET", status="200") >= 10
            assert sample(text, REQUESTS, route="/register", method="POST", status="303") == 1
        async with websockets.connect(server.ws_url, additional_headers=alice.ws_headers()) as ws:
            events_of(await ws.recv())  # hello: the connection is counted by now
            assert sample(metrics_of(server), "chatapp_websocket_connections") == 1
        deadline = time.monotonic() + 10
        while sample(metrics_of(server), "chatapp_websocket_connections") != 0:
            assert time.monotonic() < deadline, "the closed websocket is still counted"
            await asyncio.sleep(0.1)
        assert len({p.name for p in directory.glob("gauge_livesum_*.db")}) == 2
        server.terminate()
    finally:
        server.kill()
    # Both workers marked themselves dead on the way out; their counters stay.
    assert not list(directory.glob("gauge_live*.db"))
    assert list(directory.glob("counter_*.db"))
