"""What every part of the benchmark shares: the paths, the client kinds, the per-run
counts and durations (``Config``; ``--quick`` makes them small) and the log line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
RAW = RESULTS / "raw"
PY = sys.executable
HYPERCORN = str(Path(sys.executable).with_name("hypercorn"))
NODE_DIR = BENCH / "peers" / "node"

# Client kinds: ``plain`` offers no extension (bots, the load generator so far);
# ``chromium`` offers permessage-deflate exactly as Chromium does.
CLIENT_KINDS = ["plain", "chromium"]


def log(*a) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


class Config:
    def __init__(self, quick: bool, redis_url: str) -> None:
        self.quick = quick
        self.redis_url = redis_url
        q = quick
        self.s1_clients = 50 if q else 100
        self.s1_rate = 50
        self.s1_duration = 3.0 if q else 10.0
        self.s2_clients = 200 if q else 1000
        self.s2_duration = 3.0 if q else 10.0
        self.s2_window = 32
        self.s3_sizes = [500, 2000] if q else [2000, 10000]
        self.s4_senders = 20 if q else 100
        self.s4_duration = 3.0 if q else 10.0
        # s8: search over this many messages, seeded into each engine (bench/search.py)
        self.s8_messages = 100_000 if q else 1_000_000
        self.s5_sizes = {"hist-small": 10_000, "hist-big": 100_000 if q else 1_000_000}
        self.s5_requests = 60 if q else 300
        self.s6_users = 10 if q else 20
        self.s6_rounds = 2 if q else 5
        self.users = 5 if q else 20  # users whose cookies the many connections share
        self.warmup = 1.0 if q else 2.0
        # s2u/s3u: s2 and s3 with one user per connection (presence, hello's online list)
        self.s3u_sizes = [2000] if q else [10000]
        self.client_kinds = list(CLIENT_KINDS)
        self.compressions = ["off", "on"]  # chatapp's setting for chromium clients
        self.worker_class = "asyncio"
