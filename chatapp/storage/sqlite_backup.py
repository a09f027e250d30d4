"""Online backup and offline restore of an SQLite store (``chatapp backup``/``restore``).

Blocking functions: callers run them in a thread. A backup is one step of SQLite's
backup API, so it copies one read transaction: a consistent snapshot, while the
server keeps writing (WAL lets writers go on beside a reader). The copy is made in a
temporary file beside the target and moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from . import StorageError
from .sqlite_schema import MIGRATIONS

REQUIRED_TABLES = {"meta", "users", "rooms", "memberships", "messages"}


def backup(source: str, target: str, *, force: bool = False) -> None:
    """Copy the live database ``source`` to ``target`` (a new file unless ``force``)."""
    check_database(source, thorough=False)
    destination = Path(target)
    if destination.is_dir():
        raise StorageError(f"{target} is a directory")
    if destination.exists() and not force:
        raise StorageError(f"{target} exists (use --force to replace it)")
    if not destination.parent.is_dir():
        raise StorageError(f"no directory {destination.parent}")
    with _beside(destination, "backup") as temporary:
        _copy(sqlite3.connect(source, timeout=10), temporary)
        if force:
            os.replace(temporary, destination)
        else:
            try:
                os.link(temporary, destination)  # fails if the target appeared meanwhile
            except FileExistsError:
                raise StorageError(f"{target} exists (use --force to replace it)") from None


def restore(source: str, target: str) -> str:
    """Replace the database ``target`` by the backup ``source`` with a new epoch; return it.

    The caller makes sure no server has ``target`` open.
    """
    check_database(source)
    destination = Path(target)
    epoch = secrets.token_hex(8)
    with _beside(destination, "restore") as temporary:
        # Clients that see a new epoch in `hello` reload: their seqs and caches belong
        # to the replaced store.
        _copy(sqlite3.connect(_read_only(source), uri=True), temporary, epoch)
        # The old database's WAL must not be replayed into the new file.
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{destination}{suffix}")
        os.replace(temporary, destination)
    return epoch


def check_database(path: str, *, thorough: bool = True) -> None:
    """Raise StorageError unless ``path`` is a chatapp SQLite database this version reads
    (``thorough``: and SQLite finds nothing damaged in it, which reads the whole file)."""
    file = Path(path)
    if not file.exists():
        raise StorageError(f"{path}: no such file")
    if not file.is_file():
        raise StorageError(f"{path} is not a file")
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            epoch = (
                conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
                if "meta" in tables else None
            )
            check = conn.execute("PRAGMA quick_check").fetchone()[0] if thorough else "ok"
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise StorageError(f"{path} is not a chatapp SQLite database ({error})") from None
    if version < 1 or not REQUIRED_TABLES <= tables or epoch is None:
        raise StorageError(f"{path} is an SQLite database, but not chatapp's")
    if version > len(MIGRATIONS):
        raise StorageError(
            f"{path} has schema version {version}, newer than this chatapp knows "
            f"({len(MIGRATIONS)}): upgrade chatapp first"
        )
    if check != "ok":
        raise StorageError(f"{path} is damaged: {check}")


@contextmanager
def _beside(destination: Path, doing: str) -> Iterator[Path]:
    """A new temporary file beside ``destination`` (its directory made if missing) for
    the block to fill and move into place; the directory is synced after, the file
    removed if it is still there; a driver or OS error is a StorageError."""
    temporary: Path | None = None
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_beside(destination)
        yield temporary
        _fsync_directory(destination.parent)
    except (sqlite3.Error, OSError) as error:
        raise StorageError(f"{doing} failed: {error}") from error
    finally:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def _copy(src: sqlite3.Connection, temporary: Path, epoch: str | None = None) -> None:
    """Copy the database ``src`` (closed afterwards) into ``temporary``, with a new
    ``epoch`` if one is given, and sync it to disk."""
    try:
        dst = sqlite3.connect(temporary, isolation_level=None)
        try:
            src.backup(dst)  # pages=-1: the whole file in one read transaction
            # One self-contained file: no -wal beside it to forget.
            dst.execute("PRAGMA journal_mode = DELETE")
            if epoch is not None:
                dst.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,))
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(temporary)


def _read_only(path: str) -> str:
    """A URI that never creates the file nor writes to it."""
    return f"file:{quote(str(Path(path).resolve()))}?mode=ro"


def _temporary_beside(destination: Path) -> Path:
    """A new empty file (an empty SQLite database) that only its owner may read: it will
    hold password hashes and session tokens."""
    path = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
