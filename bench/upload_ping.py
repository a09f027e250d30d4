"""Uploads off the event loop (issue #15: "20 concurrent image uploads keep websocket
ping p99 under 50 ms"). Starts a real ``hypercorn --config hypercorn.toml`` chatapp
(one worker, SQLite), opens ``--pingers`` websockets that each send the protocol's
``ping`` every ``--every-ms`` and time the ``pong``, and then, ``--rounds`` times,
has ``--uploaders`` users each POST one large image to ``/api/v1/uploads`` at the
same moment (half PNG, half JPEG, ``--megapixels`` each: every one is decoded,
stripped, re-encoded and thumbnailed by Pillow in a worker thread, at most two at a
time). Reports ping p50/p99/max while idle and while the uploads run, and the
uploads' throughput (MB and images per second, wall time of each round).

    .venv/bin/python -m bench.upload_ping [--uploaders 20] [--megapixels 6]

The pings are timed in this process, which also sends the uploads: its own event
loop's delays count in the round trips (an upper bound for the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen as lg  # noqa: E402
from bench.chatapp_driver import User, register_users  # noqa: E402
from tests.servers import Server  # noqa: E402


def image(kind: str, megapixels: float) -> bytes:
    """A photo-like image (smooth gradients plus noise, so it neither compresses to
    nothing nor is pure noise) of about ``megapixels``."""
    from PIL import Image, ImageFilter

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    small = Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3))
    base = small.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.frombytes("RGB", (width // 4, height // 4),
                            os.urandom((width // 4) * (height // 4) * 3))
    noise = noise.resize((width, height), Image.Resampling.NEAREST)
    picture = Image.blend(base, noise, 0.15).filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    if kind == "png":
        picture.save(out, format="PNG", compress_level=1)
    else:
        picture.save(out, format="JPEG", quality=92)
    return out.getvalue()


async def upload(user: User, csrf: str, content: bytes, name: str) -> tuple[int, float]:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name,
                   content_type="image/png" if name.endswith(".png") else "image/jpeg")
    t0 = time.perf_counter()
    async with user.http.post(user.base + "/api/v1/uploads", data=form,
                              headers={"X-CSRF-Token": csrf, "Origin": user.base},
                              timeout=aiohttp.ClientTimeout(total=600)) as response:
        await response.read()
        return response.status, time.perf_counter() - t0


async def run(uploaders: int, pingers: int, every_ms: float, megapixels: float,
              rounds: int) -> dict:
    t0 = time.perf_counter()
    images = [(image("png" if i % 2 == 0 else "jpeg", megapixels),
               f"photo{i}.{'png' if i % 2 == 0 else 'jpg'}") for i in range(uploaders)]
    generate_s = time.perf_counter() - t0
    sizes = [len(content) for content, _ in images]
    with tempfile.TemporaryDirectory(prefix="chatapp-upload-ping-") as tmp:
        server = Server(Path(tmp), {"CHATAPP_UPLOAD_MAX_MB": "50"}).start()
        users: list[User] = []
        clients: list[lg.Client] = []
        try:
            users = await register_users(server.base, [f"up{i}" for i in range(uploaders)])
            csrf = await asyncio.gather(*(u.api_token() for u in users))
            stats = lg.Stats()
            for i in range(pingers):
                clients.append(await lg.connect(server.ws_url, stats, origin=server.base,
                                                cookie=users[i % len(users)].cookie))

            async def ping_loop(client: lg.Client, stop: asyncio.Event,
                                into: list[int]) -> None:
                while not stop.is_set():
                    into.append(await client.ping(limit_s=30))
                    await asyncio.sleep(every_ms / 1000)

            async def pings_while(work: asyncio.Future | None, seconds: float = 0) -> list[int]:
                rtts: list[int] = []
                stop = asyncio.Event()
                tasks = [asyncio.ensure_future(ping_loop(c, stop, rtts)) for c in clients]
                if work is None:
                    await asyncio.sleep(seconds)
                else:
                    await work
                stop.set()
                await asyncio.gather(*tasks)
                return rtts

            idle = await pings_while(None, 3.0)
            busy: list[int] = []
            walls: list[float] = []
            statuses: list[int] = []
            per_upload: list[float] = []
            for _ in range(rounds):
                start = time.perf_counter()
                work = asyncio.ensure_future(asyncio.gather(*(
                    upload(u, token, content, name)
                    for u, token, (content, name) in zip(users, csrf, images, strict=True))))
                busy += await pings_while(work)
                walls.append(time.perf_counter() - start)
                for status, seconds in work.result():
                    statuses.append(status)
                    per_upload.append(seconds)
                await asyncio.sleep(1.0)
            total_mb = sum(sizes) / 2**20 * rounds
            return {
                "uploaders": uploaders,
                "pingers": pingers,
                "ping_every_ms": every_ms,
                "megapixels": megapixels,
                "image_mb": {"min": round(min(sizes) / 2**20, 1),
                             "max": round(max(sizes) / 2**20, 1),
                             "total": round(sum(sizes) / 2**20, 1)},
                "generate_s": round(generate_s, 1),
                "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
                "round_wall_s": [round(w, 2) for w in walls],
                "upload_s": lg.percentiles([int(s * 1e9) for s in per_upload], 1e-9),
                "throughput_mb_s": round(total_mb / sum(walls), 1),
                "throughput_images_s": round(uploaders * rounds / sum(walls), 2),
                "ping_idle_ms": lg.percentiles(idle),
                "ping_during_uploads_ms": lg.percentiles(busy),
                "server_closed_connections": stats.closed,
            }
        finally:
            for client in clients:
                client.close()
            for user in users:
                await user.close()
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploaders", type=int, default=20)
    parser.add_argument("--pingers", type=int, default=10)
    parser.add_argument("--every-ms", type=float, default=20)
    parser.add_argument("--megapixels", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    result = asyncio.run(run(args.uploaders, args.pingers, args.every_ms, args.megapixels,
                             args.rounds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
