"""Logs (SPEC §8): text or json, a level, one line per record, nothing forged."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatapp import create_app
from chatapp.config import ConfigError
from chatapp.logs import JsonFormatter, TextFormatter, configure, escape

from .conftest import server_env
from .conftest import test_config as make_config
from .servers import Browser, Server

NASTY = "a\nb\rc\x00d\x1b[31me\x7ff\x85g\u202eh\u2028i\u2066j"


def test_escape_leaves_no_control_separator_or_bidi_character() -> None:
    escaped = escape(NASTY)
    assert escaped == "a\\nb\\rc\\x00d\\x1b[31me\\x7ff\\x85g\\u202eh\\u2028i\\u2066j"
    assert escaped.isprintable()
    assert escape("Zoë 日本 tab\there") == "Zoë 日本 tab\\there"


def record(message: str, *args: Any, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nInjected line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("chatapp.test", logging.WARNING, __file__, 1, message, args,
                             exc_info)


def _with(message: str, args: tuple[Any, ...], extra: dict[str, Any]) -> logging.LogRecord:
    rec = logging.LogRecord("chatapp.access", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_text_lines_escape_arguments_and_indent_tracebacks() -> None:
    line = TextFormatter().format(record("path=%s", "/x\nFAKE 200"))
    assert "\n" not in line and line.endswith("path=/x\\nFAKE 200")
    with_trace = TextFormatter().format(record("crashed on %s", "/y\r\n", exc=True))
    first, *rest = with_trace.split("\n")
    assert first.endswith("crashed on /y\\r\\n")
    assert rest and all(part.startswith("    ") for part in rest)  # nothing starts a line


def test_json_lines_are_one_object_with_fields() -> None:
    line = JsonFormatter().format(_with("%s", ("x",), {"fields": {"path": NASTY, "status": 200}}))
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "x" and data["status"] == 200 and data["logger"] == "chatapp.access"
    assert data["path"] == escape(NASTY)
    assert data["time"].endswith("Z")
    traced = json.loads(JsonFormatter().format(record("oops", exc=True)))
    assert "ValueError: boom\\nInjected line" in traced["exception"]


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatapp_level = logging.getLogger("chatapp").level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("chatapp").setLevel(chatapp_level)


def test_configure_installs_one_handler_at_the_level(restore_root: None, monkeypatch: Any) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure("json", "warning")
    configure("json", "WARNING")  # again: still one handler
    logging.getLogger("chatapp.x").info("hidden")
    logging.getLogger("hypercorn.error").info("hidden too")
    logging.getLogger("chatapp.x").warning("shown %s", "once\nonly")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown once\\nonly"]


@pytest.mark.parametrize("name, value", [("CHATAPP_LOG_LEVEL", "LOUD"),
                                         ("CHATAPP_LOG_LEVEL", "10"),
                                         ("CHATAPP_LOG_FORMAT", "xml")])
def test_bad_values_refuse_to_start_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        create_app(make_config(tmp_path, **{name: value}))
    with pytest.raises(ConfigError, match=name):
        configure(**{"log_format" if "FORMAT" in name else "level": value})


# a real server: every line, Hypercorn's too


def raw_request(port: int, path: str, agent: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("User-Agent", agent)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


FORGING_PATH = "/nothing%0a127.0.0.1%20%22GET%20/admin%20HTTP/1.1%22%20200%0d%e2%80%ae"
FORGING_AGENT = "curl\x1b[2J\x7f"


def test_json_server_logs_are_all_json_and_escaped(tmp_path: Path) -> None:
    server = Server(tmp_path, server_env(tmp_path, CHATAPP_LOG_FORMAT="json")).start()
    try:
        assert raw_request(server.port, FORGING_PATH, FORGING_AGENT) == 404
        assert Browser(server.base).register("alice") == 303
        server.terminate()
    finally:
        server.kill()
    records = [json.loads(line) for line in server.output().splitlines()]  # every line
    loggers = {r["logger"] for r in records}
    assert {"hypercorn.error", "chatapp.access"} <= loggers
    forged = [r for r in records if r.get("status") == 404]
    assert len(forged) == 1
    assert forged[0]["path"] == "/nothing\\n127.0.0.1 \"GET /admin HTTP/1.1\" 200\\r\\u202e"
    assert forged[0]["user_agent"] == "curl\\x1b[2J\\x7f"
    assert forged[0]["route"] == "<unmatched>" and forged[0]["client"] == "127.0.0.1"
    register = [r for r in records if r.get("route") == "/register" and r["method"] == "POST"]
    assert register and register[0]["status"] == 303
    assert "correct horse battery" not in server.output()


def test_text_server_logs_cannot_be_forged_and_follow_the_level(tmp_path: Path) -> None:
    server = Server(tmp_path / "info", server_env(tmp_path / "info")).start()
    quiet = Server(tmp_path / "warning",
                   server_env(tmp_path / "warning", CHATAPP_LOG_LEVEL="WARNING")).start()
    try:
        for each in (server, quiet):
            assert raw_request(each.port, FORGING_PATH, FORGING_AGENT) == 404
            each.terminate()  # graceful: every line is written before the exit
    finally:
        server.kill()
        quiet.kill()
    lines = server.output().splitlines()
    access = [line for line in lines if "chatapp.access" in line and "/nothing" in line]
    assert len(access) == 1
    forged = '"GET /nothing\\n127.0.0.1 \\x22GET /admin HTTP/1.1\\x22 200\\r\\u202e HTTP/1.1" 404'
    assert forged in access[0]
    assert not any(line.startswith(("127.0.0.1", '"GET /admin')) for line in lines)
    assert "\x1b" not in server.output() and "\u202e" not in server.output()
    assert any("Running on" in line and "hypercorn.error" in line for line in lines)
    assert "/nothing" not in quiet.output() and "Running on" not in quiet.output()


def test_a_bad_level_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    server = Server(tmp_path, server_env(tmp_path, CHATAPP_LOG_LEVEL="chatty"))
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start()
    message = "CHATAPP_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    assert message in server.output()


def test_chatapp_serve_in_json_mode_writes_only_json(tmp_path: Path) -> None:
    server = Server(tmp_path, server_env(tmp_path, CHATAPP_LOG_FORMAT="json"))
    output = tmp_path / "serve.log"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "chatapp"), "serve",
             "--bind", f"127.0.0.1:{server.port}"],
            cwd=tmp_path, env=server.env(), stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not listening(server) or Browser(server.base).request("/healthz")[0] != 200:
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(20)
    lines = output.read_text().splitlines()
    assert any("Running on" in json.loads(line)["message"] for line in lines)
    assert all(json.loads(line)["level"] for line in lines)


def listening(server: Server) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", server.port)) == 0
