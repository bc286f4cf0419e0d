"""Each API process hears revoked keys (PostgreSQL LISTEN) and forgets them at once.

A revocation commits with `NOTIFY api_key_revoked, '<key id>'` (see `paysaga.store.api_keys`).
PostgreSQL sends it to every listening connection as the revocation commits, before the revoker
can answer its caller; so the cache reads whatever has arrived on the listening socket, without
waiting, before it trusts an entry (`drain`), and the next request after a revocation finds the
key gone in every process. While the connection is down, nothing is heard: the cache is emptied
and not used until it listens again, so a lost notification can never keep a revoked key alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import make_conninfo

from paysaga.database import listen_url
from paysaga.store.api_keys import REVOKED_CHANNEL

if TYPE_CHECKING:
    from api.deps import KeyCache

log = logging.getLogger("paysaga.api")

# A connection that dies silently (a network cut, not a server restart) is noticed within about
# 20 s by TCP keepalives; the cache's own expiry bounds the rest. Ignored on a Unix socket.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
}


def conninfo_of(database_url: str) -> str:
    """The database URL with the keepalives."""
    return make_conninfo(database_url, **KEEPALIVES)


class RevocationListener:
    """Keeps one connection listening on `REVOKED_CHANNEL` and evicts what it hears from `cache`;
    reconnects after `retry_seconds` when the connection is lost."""

    def __init__(self, database_url: str, cache: KeyCache, retry_seconds: float = 1.0) -> None:
        self._database_url = listen_url(database_url)  # LISTEN never through PgBouncer
        self._cache = cache
        self._retry_seconds = retry_seconds
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    conninfo_of(self._database_url), autocommit=True
                )
            except (psycopg.Error, OSError):
                log.warning("cannot listen for revoked API keys: the key cache is off; retrying")
                await asyncio.sleep(self._retry_seconds)
                continue
            try:
                await conn.execute(f"LISTEN {REVOKED_CHANNEL}")
                await self._hear_until_lost(conn)
            except psycopg.Error:
                pass  # the connection is gone: listen again on a new one
            finally:
                await conn.close()
            log.warning("stopped hearing revoked API keys: the key cache is off; reconnecting")
            await asyncio.sleep(self._retry_seconds)

    async def _hear_until_lost(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Drain revocations as they arrive, the cache on, until the connection is lost."""
        loop, fd = asyncio.get_running_loop(), conn.fileno()
        self._conn = conn
        self._lost.clear()
        loop.add_reader(fd, self.drain)
        self._cache.listen(self.drain)  # emptied: nothing was heard while not listening
        try:
            await self._lost.wait()
        finally:
            self._cache.stop_listening()
            loop.remove_reader(fd)
            self._conn = None

    def drain(self) -> None:
        """Evict every key whose revocation has arrived; never waits (a read of what the socket
        holds), so the cache calls it before each hit."""
        conn = self._conn
        if conn is None or self._lost.is_set():
            return
        try:
            conn.pgconn.consume_input()
        except psycopg.Error:
            self._cache.stop_listening()  # at once: no entry is trusted from now on
            self._lost.set()
            return
        while (notify := conn.pgconn.notifies()) is not None:
            self._cache.evict(notify.extra.decode())
