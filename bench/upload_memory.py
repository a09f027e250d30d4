"""How much server memory a large upload costs (SPEC §10: "never more than a small
buffer"). Starts a real ``hypercorn --config hypercorn.toml`` server, registers a user,
streams one upload of ``--mb`` megabytes (default 25, the default limit) as fast as
the socket takes it, and reads the worker's peak resident memory (``VmHWM``) before
and after. Also a non-image file and a PNG of the same size for the re-encode path.

    .venv/bin/python -m bench.upload_memory [--mb 25]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Browser, Server  # noqa: E402

CHUNK = 64 * 1024


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def big_png(size: int) -> bytes:
    """A PNG of about ``size`` bytes (noise does not compress), under 40 megapixels."""
    from PIL import Image

    side = int((size / 3) ** 0.5) + 1
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def upload(server: Server, browser: Browser, content: bytes, name: str) -> tuple[int, dict]:
    boundary = "memboundary" + os.urandom(8).hex()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\";"
            f" filename=\"{name}\"\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    csrf = browser.csrf("/")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.putrequest("POST", "/api/v1/uploads")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + len(content) + len(tail)))
    conn.putheader("X-CSRF-Token", csrf)
    conn.putheader("Cookie", browser.cookie_header)
    conn.putheader("Origin", server.base)
    conn.endheaders()
    conn.send(head)
    view = memoryview(content)
    for start in range(0, len(content), CHUNK):
        conn.send(view[start:start + CHUNK])
    conn.send(tail)
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=25)
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024) - 1024
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"CHATAPP_UPLOAD_MAX_MB": str(args.mb + 1)}).start()
        try:
            browser = Browser(server.base)
            browser.register("memtest")
            [pid] = server.worker_pids()[-1:] or [server.process.pid]  # type: ignore[union-attr]
            for label, content, name in (
                ("random bytes (stored as is)", random_bytes(size), "noise.bin"),
                ("PNG (re-encoded, thumbnail)", big_png(size), "noise.png"),
            ):
                zlib.crc32(content)  # (touch it: the client's own memory is not measured)
                before = vm(pid, "VmRSS")
                exact = reset_peak(pid)
                status, body = upload(server, browser, content, name)
                peak = vm(pid, "VmHWM")
                print(f"{label}: {len(content) / 2**20:.1f} MB -> HTTP {status}"
                      f" ({body.get('content_type') or body})")
                print(f"  worker RSS before {before / 1024:.1f} MB, peak during"
                      f" {peak / 1024:.1f} MB: +{(peak - before) / 1024:.1f} MB"
                      f"{'' if exact else ' (peak since start: clear_refs refused)'}")
        finally:
            server.kill()


if __name__ == "__main__":
    main()
