"""What the per-concern storage modules (accounts, admin, webhooks) use of their engine.

Each engine's storage class defines these; the mixins inherit the declarations so
that each names them once, and a type checker sees them."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SQLite engine does not import asyncpg
    import asyncpg


class SQLiteParts:
    async def _write(self, op: Any) -> Any:
        raise NotImplementedError

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        raise NotImplementedError

    async def _delete_some(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError


class PostgresParts:
    def _conn(self, pool: asyncpg.Pool | None = None
              ) -> AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    def _unbounded(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    async def _one(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        raise NotImplementedError

    async def _run(self, sql: str, *args: Any) -> str:
        raise NotImplementedError
