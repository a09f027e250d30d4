"""Uploaded files (SPEC §10): store a stream, make images safe, decide who reads.

A file arrives as a stream of chunks (the web layer parses the multipart body) and
goes straight to a temporary file in the uploads directory: this process never holds
more than a chunk of it. Its type comes from its first bytes (``files.sniff``);
images are re-encoded without metadata, with a thumbnail, in a worker thread. Names
on disk are random; the user's file name is only ever data in the database.
Unattached uploads older than ORPHAN_AGE go with the server's housekeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from . import files
from .limits import UPLOAD_RATE, Limits
from .names import BIDI_CONTROLS, INVISIBLE
from .refusals import Code, DomainError
from .storage import Storage, Upload, User

ORPHAN_AGE = timedelta(hours=24)
MAX_NAME = 255  # characters of a file name kept (the extension survives a cut)
WRITE_BATCH = 256 * 1024  # bytes gathered before one write in the worker thread
# Images decoded at once per process: decoding costs about 4 bytes per pixel a few
# times over (up to the 40-megapixel cap), so a burst of uploads queues instead.
DECODING_AT_ONCE = 2


class UploadError(DomainError):
    """An upload refused (``invalid``, ``file_too_large``); about the field ``file``."""

    def __init__(self, code: Code | str, message: str, field: str | None = "file") -> None:
        super().__init__(code, message, field)


def clean_filename(raw: str | None) -> str:
    """A file name fit to show and to offer for download: NFC; only its last path
    part; no controls, bidi or invisible characters; whitespace collapsed; at most
    MAX_NAME characters with the extension kept; "file" when nothing is left."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in name:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS or char in INVISIBLE or category in ("Cc", "Cf", "Cs",
                                                                      "Zl", "Zp"):
            continue
        kept.append(char)
    name = " ".join("".join(kept).split()).strip(". ")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_NAME].rstrip()
    return name or "file"


@dataclass(frozen=True)
class Stored:
    """What the server serves for an upload: the file, its type, whether inline."""

    path: Path
    content_type: str
    inline: bool


class Uploads:
    def __init__(self, storage: Storage, limits: Limits, directory: Path,
                 max_bytes: int) -> None:
        self.storage = storage
        self.limits = limits
        self.directory = directory
        self.max_bytes = max_bytes
        self._decoding = asyncio.Semaphore(DECODING_AT_ONCE)

    def prepare(self) -> None:
        """Create the directory, readable by its owner only (blocking: at start)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def check_rate(self, user: User) -> None:
        await self.limits.check(f"uploads:{user.id}", UPLOAD_RATE,
                                "too many uploads; try again later")

    async def store(self, user: User, filename: str | None,
                    chunks: AsyncIterator[bytes]) -> Upload:
        """Write the stream to disk, check and record it; UploadError when refused
        (file_too_large past ``max_bytes``, invalid for an image that is too large or
        broken), and then nothing of it stays on disk."""
        name = clean_filename(filename)
        key = secrets.token_hex(16)
        part = self.directory / f"{key}.part"
        await asyncio.to_thread(self.prepare)
        handle = await asyncio.to_thread(_open_private, part)
        try:
            size, head = await self._receive(handle, chunks)
            await asyncio.to_thread(handle.close)
            content_type = files.sniff(head)
            width = height = None
            if files.is_image(content_type):
                try:
                    async with self._decoding:
                        info = await asyncio.to_thread(
                            files.make_safe_image, part, self._path(key), self._thumb(key))
                except files.ImageRefusedError as refused:
                    raise UploadError(Code.INVALID, str(refused)) from None
                content_type, width, height = info.content_type, info.width, info.height
                size = (await asyncio.to_thread(self._path(key).stat)).st_size
                await asyncio.to_thread(part.unlink)
            else:
                await asyncio.to_thread(part.rename, self._path(key))
            return await self.storage.add_upload(user.id, name, size, content_type,
                                                 width, height, key)
        except BaseException:
            await asyncio.to_thread(_discard, handle, part, self._path(key), self._thumb(key))
            raise

    async def _receive(self, handle: BinaryIO, chunks: AsyncIterator[bytes]) -> tuple[int, bytes]:
        size = 0
        head = b""
        pending: list[bytes] = []
        waiting = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_bytes:
                raise UploadError(
                    Code.FILE_TOO_LARGE,
                    f"the file is larger than {self.max_bytes // (1024 * 1024)} MB")
            if len(head) < files.SNIFF_BYTES:
                head += chunk[: files.SNIFF_BYTES - len(head)]
            pending.append(chunk)
            waiting += len(chunk)
            if waiting >= WRITE_BATCH:
                await asyncio.to_thread(handle.writelines, pending)
                pending, waiting = [], 0
        if pending:
            await asyncio.to_thread(handle.writelines, pending)
        if size == 0:
            raise UploadError(Code.INVALID, "the file is empty")
        return size, head

    async def readable(self, user: User | None, upload_id: int) -> Upload | None:
        """The upload if this user may read it (SPEC §10), else None."""
        if user is None or not 0 < upload_id < 2**63:
            return None
        return await self.storage.upload_for(upload_id, user.id)

    async def served(self, upload: Upload, thumbnail: bool = False) -> Stored:
        if thumbnail:
            path = self._thumb(upload.disk_key)
            return Stored(path, await asyncio.to_thread(_thumbnail_type, path), True)
        return Stored(self._path(upload.disk_key), upload.content_type,
                      files.is_image(upload.content_type))

    async def prune(self, now: datetime, limit: int) -> int:
        """Delete unattached uploads older than ORPHAN_AGE, rows then files; and the
        ``.part`` files a killed process left behind (they have no row)."""
        keys = await self.storage.prune_uploads(now - ORPHAN_AGE, limit)
        if keys:
            await asyncio.to_thread(
                _remove, [p for k in keys for p in (self._path(k), self._thumb(k))])
        stale = await asyncio.to_thread(
            _stale_parts, self.directory, (now - ORPHAN_AGE).timestamp(), limit)
        return len(keys) + stale

    def _path(self, key: str) -> Path:
        return self.directory / key

    def _thumb(self, key: str) -> Path:
        return self.directory / f"{key}.thumb"


def _open_private(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _discard(handle: BinaryIO, *paths: Path) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    _remove(list(paths))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _stale_parts(directory: Path, before: float, limit: int) -> int:
    removed = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if removed >= limit:
                    break
                if entry.name.endswith(".part") and entry.stat().st_mtime < before:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    except FileNotFoundError:  # no upload yet
        pass
    return removed


def _thumbnail_type(path: Path) -> str:
    try:
        return files.thumbnail_type(path)
    except OSError:
        return "application/octet-stream"
