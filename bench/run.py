"""Run every benchmark scenario against chatapp and the peers; write bench/results/.

    .venv/bin/python -m bench.run            # full run (~15-20 min on 2 cores)
    .venv/bin/python -m bench.run --quick    # small counts (~4 min)
    .venv/bin/python -m bench.run --only s1,s2 --targets chatapp,websockets

See bench/README.md for what each scenario measures. This is the runner (options,
variants, time limits, results.json); the parts: bench/config.py (paths, Config),
bench/targets.py (the servers), bench/scenarios.py (s1..s7; s8 in bench/search.py),
bench/report.py (results.md and the targets table), bench/plot.py (plot.png).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py` as well as `python -m bench.run`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen as lg
from bench import scenarios, upload_ping
from bench import search as search_bench
from bench.config import CLIENT_KINDS, NODE_DIR, REPO, RESULTS, Config, log
from bench.plot import write_plot
from bench.report import machine, targets_table, write_markdown
from bench.s4_postgres import s4pg
from bench.scenarios import FANOUTS, LIMITS, s7
from bench.targets import ALL_TARGETS, TARGET_CLASSES, Chatapp, Target

# s4 on PostgreSQL (bench/s4_postgres.py) runs right after s4; s9, websocket pings
# while 20 images upload (bench/upload_ping.py), starts its own server and runs last.
_s4 = scenarios.ALL_SCENARIOS.index("s4") + 1
ALL_SCENARIOS = [*scenarios.ALL_SCENARIOS[:_s4], "s4pg", *scenarios.ALL_SCENARIOS[_s4:], "s9"]
CHAT_ONLY = {**scenarios.CHAT_ONLY, "s4pg": s4pg}


def ensure_node(notes: list[str]) -> bool:
    if not shutil.which("node"):
        notes.append("node-ws skipped: no `node` on PATH")
        return False
    if not (NODE_DIR / "node_modules" / "ws").exists():
        npm = shutil.which("npm")
        if not npm:
            notes.append("node-ws skipped: no npm to install `ws`")
            return False
        log("npm install (bench/peers/node)")
        r = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            notes.append(f"node-ws skipped: npm install failed: {r.stderr[-300:]}")
            return False
    return True


async def amain(args) -> int:
    cfg = Config(args.quick, args.redis_url)
    cfg.client_kinds = args.clients.split(",")
    cfg.compressions = args.ws_compression.split(",")
    cfg.worker_class = args.worker_class
    lg.raise_nofile(65536)
    only = args.only.split(",") if args.only else ALL_SCENARIOS
    names = args.targets.split(",") if args.targets else ALL_TARGETS
    notes: list[str] = []
    if "node-ws" in names and not ensure_node(notes):
        names.remove("node-ws")
    if "chatapp" in names and not (REPO / "chatapp" / "asgi.py").exists():
        notes.append("chatapp skipped: chatapp/asgi.py not found")
        names.remove("chatapp")
    targets = {n: TARGET_CLASSES[n](cfg) for n in names}
    t_start = time.perf_counter()
    res: dict = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m bench.run"] + sys.argv[1:]),
            "quick": args.quick,
            "machine": machine(),
            "config": {k: v for k, v in vars(cfg).items()},
        },
        "notes": notes,
    }
    out = Path(args.output)
    os.makedirs(out, exist_ok=True)

    async def guarded(label: str, coro, limit: float):
        log(f"{label} ...")
        try:
            r = await asyncio.wait_for(coro, limit)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            traceback.print_exc()
            r = {"error": f"{type(e).__name__}: {e}"}
        log(f"{label}: {json.dumps(r)[:400]}")
        return r

    def variants(t: Target, sc: str):
        """Each client kind in turn; chatapp with chromium clients once per compression
        setting. s5 (HTTP only) runs once."""
        for kind in cfg.client_kinds if sc != "s5" else ["plain"]:
            lg.OFFER_DEFLATE = kind == "chromium"
            t.clients = kind
            settings = cfg.compressions if kind == "chromium" else ["off"]
            for setting in settings if isinstance(t, Chatapp) else ["off"]:
                if isinstance(t, Chatapp):
                    t.compression = setting
                yield t.label
        lg.OFFER_DEFLATE, t.clients = False, "plain"
        if isinstance(t, Chatapp):
            t.compression = "off"

    for sc in only:
        limit = LIMITS.get(sc, 300)
        if sc in FANOUTS:
            res[sc] = {}
            for t in targets.values():
                for label in variants(t, sc):
                    res[sc][label] = await guarded(f"{sc} {label}", FANOUTS[sc](t, cfg), limit)
                    if isinstance(t, Chatapp):
                        t.cleanup()
        elif sc in CHAT_ONLY and "chatapp" in targets:
            t = targets["chatapp"]
            res[sc] = {}
            for label in variants(t, sc):
                res[sc][label] = await guarded(f"{sc} {label}", CHAT_ONLY[sc](t, cfg), limit)
                t.cleanup()
        elif sc == "s8":  # storage-level: no server, every engine
            engines = ["sqlite", "postgres"]
            res[sc] = {"chatapp": await guarded(
                "s8 search", search_bench.run(cfg.s8_messages, engines), 3600)}
        elif sc == "s9":  # its own chatapp server, started and stopped by the scenario
            res[sc] = {"chatapp": await guarded(
                "s9 upload ping", upload_ping.run(20, 10, 20, 6, 2), 1200)}
        elif sc == "s7" and "chatapp" in targets:
            t = targets["chatapp"]
            res[sc] = {}
            for label in variants(t, sc):
                prior = res.get("s2", {}).get(label)
                prior = prior if prior and "error" not in prior else None
                res[sc][label] = await guarded(f"s7 {label}", s7(t, cfg, prior), 400)
                t.cleanup()
    res["meta"]["duration_s"] = round(time.perf_counter() - t_start, 1)
    res["targets"] = [list(r) for r in targets_table(res)]
    (out / "results.json").write_text(json.dumps(res, indent=2))
    write_markdown(res, out / "results.md")
    try:
        write_plot(res, out / "plot.png")
    except Exception as e:  # noqa: BLE001
        log(f"plot failed: {e}")
    log(f"wrote {out / 'results.md'} in {res['meta']['duration_s']} s")
    print((out / "results.md").read_text())
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description="chatapp benchmarks vs peers (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="small counts, ~4 minutes")
    p.add_argument("--only", help="comma-separated scenarios, e.g. s1,s2")
    p.add_argument("--targets", help=f"comma-separated, from {','.join(ALL_TARGETS)}")
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--output", default=str(RESULTS),
        help="where results.md, results.json and plot.png go (default bench/results; "
        "a partial run elsewhere keeps the full run's figures)",
    )
    p.add_argument(
        "--clients", default="plain,chromium",
        help="client kinds, comma-separated: plain (no extension offered) and/or chromium "
        "(offers permessage-deflate as Chromium does); every scenario but s5 runs per kind",
    )
    p.add_argument(
        "--ws-compression", default="off,on",
        help="chatapp's CHATAPP_WS_COMPRESSION settings to run with chromium clients",
    )
    p.add_argument(
        "--worker-class", default="asyncio", choices=["asyncio", "uvloop"],
        help="chatapp's Hypercorn worker class (uvloop: pip install uvloop)",
    )
    args = p.parse_args()
    for name, given, allowed in (("client kind", args.clients, CLIENT_KINDS),
                                 ("compression setting", args.ws_compression, ["off", "on"])):
        bad = set(given.split(",")) - set(allowed)
        if bad or not given:
            p.error(f"unknown {name}(s): {','.join(sorted(bad)) or '(none)'}")
    if args.only:
        bad = set(args.only.split(",")) - set(ALL_SCENARIOS)
        if bad:
            p.error(f"unknown scenario(s): {','.join(sorted(bad))}")
    if args.targets:
        bad = set(args.targets.split(",")) - set(ALL_TARGETS)
        if bad:
            p.error(f"unknown target(s): {','.join(sorted(bad))}")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
