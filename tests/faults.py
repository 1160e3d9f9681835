"""Faults the tests cause for real: a TCP proxy in front of PostgreSQL that can
be cut (every connection reset, new ones refused) and restored, or hung (nothing
answers, nothing is refused) and resumed, a lock that
holds the daemon's commits at a moment the test can see, and helpers to count
what reached the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from tests.daemon import connected, free_port


class PausableProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL until `cut()`, again after `restore()`.

    `hang()` is a database that stops answering without refusing anything (a
    stopped process, a saturated disk): connections are still accepted and
    what is sent is taken, but nothing goes on in either direction until
    `resume()`, when what was held is delivered as a database waking up would
    read it (a commit sent before the hang may then still happen).
    """

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.port = free_port(socket.SOCK_STREAM)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        #: bytes taken from either side while hung (a commit in flight shows here)
        self.held_bytes = 0

    async def start(self) -> None:
        """Listen and forward."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def cut(self) -> None:
        """Reset every open connection and refuse new ones (the database is gone)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(OSError, RuntimeError):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()

    async def restore(self) -> None:
        """Accept connections again."""
        await self.start()

    def hang(self) -> None:
        """Stop forwarding anything, on open connections and new ones; refuse nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, beginning with what was held."""
        self._flowing.set()

    async def close(self) -> None:
        """Stop for good."""
        await self.cut()
        self._flowing.set()  # connections held by a hang find the proxy closed

    def dsn_for(self, dsn: str) -> str:
        """`dsn` rewritten to go through the proxy."""
        return dsn.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        if self._server is None:  # cut or closed while this connection waited
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        a = asyncio.create_task(self._pipe(reader, up_writer))
        b = asyncio.create_task(self._pipe(up_reader, writer))
        self._pipes.update((a, b))
        try:
            await asyncio.gather(a, b, return_exceptions=True)
        finally:
            self._pipes.discard(a)
            self._pipes.discard(b)
            for w in (writer, up_writer):
                self._writers.discard(w)
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self._flowing.is_set():
                    self.held_bytes += len(data)
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@contextlib.asynccontextmanager
async def pausable_proxy() -> AsyncIterator[PausableProxy]:
    """A running PausableProxy for one test."""
    proxy = PausableProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def table_counts(dsn: str) -> dict[str, Any]:
    """Rows in cdrs, distinct record keys, and record keys stored more than once."""
    async with connected(dsn) as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT record_key) AS keys FROM cdrs"
        )
        doubles = await conn.fetchval(
            "SELECT count(*) FROM (SELECT record_key FROM cdrs GROUP BY record_key HAVING count(*) > 1) d"
        )
    assert row is not None
    return {"rows": row["rows"], "keys": row["keys"], "doubles": doubles}


async def commit_waits_on_a_lock(dsn: str) -> bool:
    """True once a daemon's statement on `cdr_keys` in this test's database waits for a lock."""
    async with connected(dsn) as conn:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'cdr-collector' AND wait_event_type = 'Lock'"
            " AND query LIKE '%cdr_keys%'"
        )
    return bool(waiting)


@contextlib.asynccontextmanager
async def cdr_keys_locked(dsn: str) -> AsyncIterator[Any]:
    """Hold `cdr_keys` locked against writes: a commit of records waits until the block ends."""
    async with connected(dsn) as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("LOCK TABLE cdr_keys IN EXCLUSIVE MODE")
            yield conn
        finally:
            await transaction.rollback()
