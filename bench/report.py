"""results.md and the "Targets" table (issue #6 targets: measured ratio, met/missed),
and the machine description recorded in results.json."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path

from bench.config import REPO


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    node = ""
    with contextlib.suppress(Exception):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    rev = ""
    with contextlib.suppress(Exception):
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    import websockets

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "websockets": websockets.__version__,
        "git": rev or "(no commit)",
    }


def _f(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def targets_table(res: dict) -> list[tuple[str, str, str, str]]:
    """(scenario, target, measured, verdict)."""
    rows = []

    def get(*path):
        cur = res
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**missed**")

    def per_cpu(sc: str, a: dict | None, b: dict | None, target: str, least: float) -> None:
        """A deliveries-per-CPU-second ratio, with both figures and both events/frame:
        coalescing moves the ratio, so it is never shown without them."""
        a, b = a or {}, b or {}
        da, db = a.get("deliveries_per_cpu_s"), b.get("deliveries_per_cpu_s")
        r = _ratio(da, db)
        measured = _f(r, 2)
        if r is not None:
            measured += (
                f" ({_f(da)} vs {_f(db)}/CPU-s; {_f(a.get('events_per_frame'), 1)} vs "
                f"{_f(b.get('events_per_frame'), 1)} events/frame)"
            )
        rows.append((sc, target, measured, verdict(None if r is None else r >= least)))

    for suffix, what in (("", ""), (" [chromium clients]", ", Chromium-like clients"),
                         (" [chromium clients, compression on]",
                          ", Chromium-like clients, compression on")):
        if suffix and get("s2", "chatapp" + suffix) is None:
            continue
        peer = " [chromium clients]" if suffix else ""
        per_cpu("s2", get("s2", "chatapp" + suffix), get("s2", "websockets" + peer),
                f"≥ 1.0× websockets deliveries/CPU-s{what}", 1.0)
        per_cpu("s2", get("s2", "chatapp" + suffix), get("s2", "flask-socketio" + peer),
                f"≥ 1.5× Flask-SocketIO deliveries/CPU-s{what}", 1.5)
    c1 = get("s1", "chatapp", "latency_ms", "p99")
    w1 = get("s1", "websockets", "latency_ms", "p99")
    f1 = get("s1", "flask-socketio", "latency_ms", "p99")
    r = _ratio(c1, w1)
    rows.append(
        ("s1", "p99 ≤ 1.5× websockets p99", _f(r, 2), verdict(None if r is None else r <= 1.5))
    )
    rows.append(
        (
            "s1",
            "p99 < Flask-SocketIO p99",
            f"{_f(c1, 2)} vs {_f(f1, 2)} ms",
            verdict(None if c1 is None or f1 is None else c1 < f1),
        )
    )
    s3 = get("s3", "chatapp") or {}
    sizes = sorted(int(k) for k in s3 if k.isdigit())
    if sizes:
        big = s3[str(sizes[-1])]
        rows.append(
            (
                "s3",
                "≤ 25 KB per idle connection",
                f"{big['kb_per_conn']} KB",
                verdict(big["kb_per_conn"] <= 25),
            )
        )
        ok = big["failed"] == 0 and big["still_open_after_3s"] == big["connections"]
        rows.append(
            (
                "s3",
                f"{sizes[-1]:,} connections, one worker, no errors",
                f"{big['connected']:,} ok, {big['failed']} failed",
                verdict(ok),
            )
        )
    a4 = get("s4", "chatapp", "acked_per_s")
    rows.append(
        (
            "s4",
            "≥ 5,000 acked msgs/s on SQLite",
            _f(a4),
            verdict(None if a4 is None else a4 >= 5000),
        )
    )
    a4pg = get("s4pg", "chatapp", "acked_per_s")
    if a4pg is not None or "s4pg" in res:
        rows.append(
            (
                "s4",
                "s4 on PostgreSQL ≥ 5,000 acked msgs/s",
                _f(a4pg),
                verdict(None if a4pg is None else a4pg >= 5000),
            )
        )
    s5 = get("s5", "chatapp") or {}
    if "hist-small" in s5 and "hist-big" in s5:
        nb, ns = s5["hist-big"]["messages"], s5["hist-small"]["messages"]
        for kind in ("latest_ms", "deep_ms", "rooms_ms"):
            if kind not in s5["hist-big"]:
                continue
            what = "room list, all unread:" if kind == "rooms_ms" else f"{kind[:-3]} page:"
            r = _ratio(s5["hist-big"][kind]["p99"], s5["hist-small"][kind]["p99"])
            rows.append(
                (
                    "s5",
                    f"p99 {what} {nb:,} msgs ≤ 2× {ns:,} msgs",
                    _f(r, 2),
                    verdict(None if r is None else r <= 2.0),
                )
            )
    p6 = get("s6", "chatapp", "ping_burst_ms", "p99")
    rows.append(
        (
            "s6",
            "ping p99 < 50 ms during login burst",
            f"{_f(p6, 1)} ms",
            verdict(None if p6 is None else p6 < 50),
        )
    )
    s7 = get("s7", "chatapp") or {}
    for k in ("redis-1w", "redis-2w"):
        per_cpu("s7", get("s7", "chatapp", k), get("s7", "chatapp", "memory-1w"),
                f"{k} ≥ 0.8× memory broker deliveries/CPU-s", 0.8)
    d1, d2 = (
        get("s7", "chatapp", "redis-1w", "deliveries_per_s"),
        get("s7", "chatapp", "redis-2w", "deliveries_per_s"),
    )
    lgu = get("s7", "chatapp", "redis-2w", "loadgen_cpu_util")
    rows.append(
        (
            "s7",
            "2 workers deliver more/s than 1",
            f"{_f(d2)} vs {_f(d1)}/s (loadgen {_f(lgu, 2)} core)" if s7 else "–",
            verdict(None if d1 is None or d2 is None else d2 > d1),
        )
    )
    p9 = get("s9", "chatapp", "ping_during_uploads_ms", "p99")
    rows.append(
        (
            "s9",
            "ping p99 < 50 ms during 20 concurrent image uploads",
            f"{_f(p9, 1)} ms ({_f(get('s9', 'chatapp', 'throughput_mb_s'), 1)} MB/s uploaded)",
            verdict(None if p9 is None else p9 < 50),
        )
    )
    return rows


def write_markdown(res: dict, path: Path) -> None:
    m = res["meta"]
    lines = [
        f"# chatapp benchmark results ({'quick' if m['quick'] else 'full'} run)",
        "",
        f"{m['date']} · `{m['command']}` · {m['duration_s']:.0f} s",
        "",
        f"Machine: {m['machine']['cpu']}, {m['machine']['cores']} cores, "
        f"{m['machine']['mem_mb']:,} MB RAM, Linux {m['machine']['kernel']}, "
        f"Python {m['machine']['python']}, Node {m['machine']['node']}, "
        f"websockets {m['machine']['websockets']}; git {m['machine']['git']}. "
        "Load generator and server share the machine (loopback).",
        "",
        "## Targets (issue #6)",
        "",
        "| scenario | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    for row in targets_table(res):
        lines.append("| " + " | ".join(row) + " |")

    def fan_table(title: str, data: dict) -> None:
        lines.extend(
            [
                "",
                f"## {title}",
                "",
                "| server | deliveries/s | deliveries/server-CPU-s | server CPU (cores) "
                "| events/frame | server µs/event | p50 ms | p90 ms | p99 ms | max ms | lost "
                "| loadgen CPU (cores) | other load (cores) | server RSS MB | negotiated |",
                "|---" * 15 + "|",
            ]
        )
        for name, r in data.items():
            if "error" in r:
                lines.append(f"| {name} | error: {r['error'][:80]} |" + " |" * 13)
                continue
            la = r["latency_ms"]
            negotiated = ", ".join(f"{k} {v}" for k, v in (r.get("negotiated") or {}).items())
            if r.get("direct_frames_share") is not None:
                negotiated += f"; {r['direct_frames_share']:.0%} of frames direct"
            lines.append(
                f"| {name} | {_f(r['deliveries_per_s'])} | {_f(r['deliveries_per_cpu_s'])} "
                f"| {_f(r['server_cpu_util'], 2)} | {_f(r['events_per_frame'], 2)} "
                f"| {_f(r.get('server_us_per_event'))} "
                f"| {_f(la['p50'], 2)} | {_f(la['p90'], 2)} | {_f(la['p99'], 2)} "
                f"| {_f(la['max'], 2)} | {_f(r['lost'])} | {_f(r['loadgen_cpu_util'], 2)} "
                f"| {_f(r.get('other_cpu_util'), 2)} | {_f(r['server_rss_mb'])} "
                f"| {negotiated or '–'} |"
            )

    cfg = m["config"]
    if "s1" in res:
        fan_table(
            f"s1 latency: {cfg['s1_clients']} clients, one sender at {cfg['s1_rate']} msg/s",
            res["s1"],
        )
    if "s2" in res:
        fan_table(
            f"s2 fan-out: {cfg['s2_clients']} clients, one sender saturating "
            f"(window {cfg['s2_window']} messages)",
            res["s2"],
        )
    if "s2u" in res:
        fan_table(
            f"s2u fan-out, one user per connection: {cfg['s2_clients']} clients and users",
            res["s2u"],
        )
    for sc, title in (("s3", "s3 capacity: idle connections"),
                      ("s3u", "s3u capacity: idle connections, one user per connection")):
        if sc not in res:
            continue
        lines.extend(
            [
                "",
                f"## {title}",
                "",
                "| server | connections | users | failed | open after 3 s "
                "| time to connect all s | conn/s | RSS before MB | RSS after MB "
                "| KB/connection | negotiated |",
                "|---" * 11 + "|",
            ]
        )
        for name, per in res[sc].items():
            if "error" in per:
                lines.append(f"| {name} | error: {per['error'][:80]} |" + " |" * 9)
                continue
            for r in per.values():
                negotiated = ", ".join(f"{k} {v}" for k, v in (r.get("negotiated") or {}).items())
                lines.append(
                    f"| {name} | {_f(r['connections'])} | {_f(r.get('users'))} | {r['failed']} "
                    f"| {_f(r['still_open_after_3s'])} | {_f(r['connect_all_s'], 2)} "
                    f"| {_f(r['conn_per_s'])} | {_f(r['rss_before_mb'])} "
                    f"| {_f(r['rss_after_mb'])} | {_f(r['kb_per_conn'])} "
                    f"| {negotiated or '–'} |"
                )
    s4s = [(name4, r4, "") for name4, r4 in res.get("s4", {}).items()]
    s4s += [(name4, r4, ", PostgreSQL") for name4, r4 in res.get("s4pg", {}).items()]
    for name4, r4, engine in s4s:
        lines.extend(["", f"## s4 write path ({name4}{engine})", ""])
        if "error" in r4:
            lines.append(f"error: {r4['error']}")
        else:
            la = r4["ack_latency_ms"]
            lines.append(
                f"{r4['senders']} senders, each its own user and private room, "
                f"{r4['window_per_sender']} unacknowledged sends each: "
                f"**{_f(r4['acked_per_s'])} acked msgs/s**, ack latency p50 "
                f"{_f(la['p50'], 2)} ms / p99 {_f(la['p99'], 2)} ms, server CPU "
                f"{_f(r4['server_cpu_util'], 2)} cores"
                + (f" + PostgreSQL backends {_f(r4['db_cpu_util'], 2)} cores"
                   if r4.get("db_cpu_util") is not None else "")
                + (f" ({_f(r4['acked_per_server_cpu_s'])} acked msgs per server CPU-s)"
                   if r4.get("acked_per_server_cpu_s") is not None else "")
                + ", loadgen "
                f"{_f(r4['loadgen_cpu_util'], 2)} cores, other load "
                f"{_f(r4.get('other_cpu_util'), 2)} cores; {_f(r4['acks_total'])} acks vs "
                f"{_f(r4['rows_in_db'])} rows in the DB after stop."
            )
    r5 = res.get("s5", {}).get("chatapp")
    if r5:
        lines.extend(["", "## s5 history: GET a page of 50 (chatapp)", ""])
        if "error" in r5:
            lines.append(f"error: {r5['error']}")
        else:
            lines.extend(
                [
                    "| room | messages | latest p50 ms | latest p99 ms | deep p50 ms "
                    "| deep p99 ms | room list p50 ms | room list p99 ms | unread shown |",
                    "|---" * 9 + "|",
                ]
            )
            for slug, r in r5.items():
                if isinstance(r, dict):
                    rooms = r.get("rooms_ms") or {}
                    lines.append(
                        f"| {slug} | {_f(r['messages'])} | {_f(r['latest_ms']['p50'], 2)} "
                        f"| {_f(r['latest_ms']['p99'], 2)} | {_f(r['deep_ms']['p50'], 2)} "
                        f"| {_f(r['deep_ms']['p99'], 2)} | {_f(rooms.get('p50'), 2)} "
                        f"| {_f(rooms.get('p99'), 2)} | {_f(r.get('unread'))} |"
                    )
            lines.append(f"\nSeeding took {r5['seed_s']} s (Storage.import_messages, "
                         "server stopped).")
    for name6, r6 in res.get("s6", {}).items():
        lines.extend(["", f"## s6 login burst ({name6})", ""])
        if "error" in r6:
            lines.append(f"error: {r6['error']}")
        else:
            lines.append(
                f"{r6['bursts']} bursts of {r6['logins_per_burst']} concurrent logins "
                f"(wall {r6['burst_wall_s']} s; login p50 {_f(r6['login_ms']['p50'], 1)} ms"
                f", p99 {_f(r6['login_ms']['p99'], 1)} ms). Websocket ping RTT idle p99 "
                f"{_f(r6['ping_idle_ms']['p99'], 2)} ms; during bursts p50 "
                f"{_f(r6['ping_burst_ms']['p50'], 2)} ms, **p99 "
                f"{_f(r6['ping_burst_ms']['p99'], 2)} ms**, max "
                f"{_f(r6['ping_burst_ms']['max'], 2)} ms "
                f"({r6['ping_burst_ms']['n']} pings)."
            )
    for name9, r9 in res.get("s9", {}).items():
        lines.extend(["", f"## s9 uploads vs. pings ({name9})", ""])
        if "error" in r9:
            lines.append(f"error: {r9['error']}")
        else:
            busy, idle = r9["ping_during_uploads_ms"], r9["ping_idle_ms"]
            lines.append(
                f"{r9['uploaders']} users upload a {r9['megapixels']}-megapixel image each "
                f"at once ({r9['image_mb']['total']} MB, statuses {r9['statuses']}; rounds "
                f"{r9['round_wall_s']} s, {r9['throughput_mb_s']} MB/s, "
                f"{r9['throughput_images_s']} images/s) while {r9['pingers']} websockets "
                f"ping every {r9['ping_every_ms']} ms. Ping RTT idle p99 "
                f"{_f(idle['p99'], 2)} ms; during the uploads p50 {_f(busy['p50'], 2)} ms, "
                f"**p99 {_f(busy['p99'], 2)} ms**, max {_f(busy['max'], 2)} ms "
                f"({busy['n']} pings)."
            )
    for name7, r7 in res.get("s7", {}).items():
        if "error" in r7:
            lines.extend(["", f"## s7 scale-out ({name7})", "", f"error: {r7['error']}"])
        else:
            fan_table(
                f"s7 scale-out: s2 on {name7}, memory broker vs Redis "
                "(server CPU = hypercorn tree; Redis CPU below)",
                r7,
            )
            for k, r in r7.items():
                if "redis_cpu_s" in r:
                    lines.append(
                        f"- {k}: Redis {r['redis_cpu_s']} CPU-s in the window; "
                        f"deliveries per CPU-s including Redis "
                        f"{_f(r['deliveries_per_cpu_s_incl_redis'])}"
                    )
    if res.get("notes"):
        lines.extend(["", "## Notes", ""] + [f"- {n}" for n in res["notes"]])
    lines.extend(["", "![plot](plot.png)", ""])
    path.write_text("\n".join(lines))
