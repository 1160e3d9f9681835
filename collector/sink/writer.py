"""The single writer: batches records, commits or spools them, then acknowledges.

Receivers hand (record, acknowledgement) pairs to `submit`, which never
blocks and never awaits the database: it returns False when the bounded
queue is full, and the receiver then leaves the packet unanswered so that the
switch retransmits. One task forms batches (up to `batch_max_records`, waiting
at most `batch_max_delay_ms` for a batch to fill), commits each in one
transaction and only then fires the batch's acknowledgements together (group
commit). When PostgreSQL is away or slower than `commit_timeout_ms`, the
batch is appended to the spool and acknowledged after its fsync. While the
spool holds anything, new batches queue behind it on disk and the same task
replays it oldest first, so a Stop is never committed before the Start it
completes. An acknowledgement is fired with False only when the record is not
durable anywhere: it must then never be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from collector.config import DatabaseConfig, ServiceConfig
from collector.logs import RateLimitedLog, get_logger
from collector.model import StoredCdr
from collector.pipeline.intake import Ack
from collector.pipeline.outcome import outcome_of
from collector.sink.postgres import PermanentError, PostgresSink, RetryableError, WriteResult
from collector.sink.spool import Segment, Spool, SpoolFull, SpoolLayoutError, encode_rows
from collector.telemetry import UNKNOWN_COUNTRY, Health, Telemetry

log = get_logger(__name__)


#: rows per replay transaction
REPLAY_BATCH_ROWS: Final = 5000


#: a queued record: the record, its acknowledgement, when it was queued (monotonic)
Item = tuple[StoredCdr, Ack, float]


def _no_ack(_durable: bool) -> None:
    """Acknowledgement for records nobody waits on (SIP dialogs)."""


class Writer:
    """Owns the batching, the commit path, the spool and the acknowledgements."""

    def __init__(
        self,
        service: ServiceConfig,
        database: DatabaseConfig | None,
        sink: PostgresSink | None,
        spool: Spool | None,
        telemetry: Telemetry,
        health: Health,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.telemetry = telemetry
        self.health = health
        self.queue_max = service.queue_max_records
        self.batch_max = database.batch_max_records if database else 1000
        self.batch_delay = (database.batch_max_delay_ms if database else 20) / 1000
        self.commit_timeout = (database.commit_timeout_ms if database else 2000) / 1000
        self.retry_interval = (database.retry_interval_ms if database else 1000) / 1000
        self._items: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._connector: asyncio.Task[None] | None = None
        self._replay: tuple[Segment, list[list[StoredCdr]]] | None = None
        #: rows to keep with the rejected ones (see set_aside), and the task writing them
        self._aside: list[StoredCdr] = []
        self._aside_task: asyncio.Task[None] | None = None
        #: the spool holds frames of a newer release: they are never replayed here
        self._replay_blocked = False
        self._limited = RateLimitedLog(log)
        self._stored_children: dict[str, object] = {}
        self.spool_refusals = 0

    # --- intake ------------------------------------------------------------
    def submit(self, row: StoredCdr, ack: Ack | None = None) -> bool:
        """Queue a record; False (and nothing queued) when the queue is full or closing."""
        items = self._items
        if self._closing or len(items) >= self.queue_max:
            return False
        items.append((row, ack or _no_ack, time.monotonic()))
        size = len(items)
        if size == 1:
            self._wakeup.set()
        if size >= self.batch_max:
            self._full.set()
        return True

    @property
    def queued(self) -> int:
        """Records waiting for the writer."""
        return len(self._items)

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Open the spool, try the database once, and start the writer task."""
        if self.spool is not None:
            await asyncio.to_thread(self.spool.open)
            self._update_spool_metrics()
            if self.spool.records:
                log.info("spool holds records from before", records=self.spool.records)
        if self.sink is not None:
            await self._try_connect()
            self._connector = asyncio.create_task(self._keep_connected(), name="db-connector")
        self._task = asyncio.create_task(self._run(), name="writer")

    async def stop(self, timeout: float) -> None:
        """Flush what is queued (to the database or the spool) within `timeout`, then stop.

        Safe to call twice and without start. Records still queued after the
        timeout are acknowledged as not durable (their senders retransmit).
        """
        self._closing = True
        self._wakeup.set()
        self._full.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.warning("drain timed out", pending=len(self._items))
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._items:
            _row, ack, _queued = self._items.popleft()
            ack(False)
        if self._aside_task is not None:
            await asyncio.gather(self._aside_task, return_exceptions=True)
            self._aside_task = None
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
            self._connector = None
        if self.sink is not None:
            await self.sink.close()
        if self.spool is not None:
            self.spool.close()

    # --- database connection ----------------------------------------------
    async def _try_connect(self) -> bool:
        assert self.sink is not None
        try:
            await self.sink.connect()
        except RetryableError as exc:
            self._limited.warning("db_connect", "database unavailable", error=str(exc))
            self._set_db(False)
            return False
        # each except clause its own name: compiled (mypyc), a name holds one type
        except PermanentError as rejected:
            self._limited.warning("db_schema", "database rejected the schema", error=str(rejected))
            self._set_db(False)
            return False
        self._set_db(True)
        log.info("database connected")
        return True

    async def _keep_connected(self) -> None:
        assert self.sink is not None
        while True:
            await asyncio.sleep(self.retry_interval)
            if not self.sink.up and await self._try_connect():
                self._wakeup.set()

    def _set_db(self, up: bool) -> None:
        self.telemetry.database_up.set(1 if up else 0)
        self.health.database_up = up

    # --- the writer task ---------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                try:
                    await self._persist(batch)
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any failure
                    # not answered yet means not durable: the senders retransmit
                    self._fire(batch, False)
                    await self._step_failed(exc)
            elif self._closing:
                return
            if not self._closing and self._can_replay():
                try:
                    await self._replay_step()
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any failure
                    await self._step_failed(exc)
            self.telemetry.queue_records.set(len(self._items))

    async def _step_failed(self, exc: Exception) -> None:
        self._limited.warning(
            "writer_step", "writer step failed, retrying", error_class=type(exc).__name__
        )
        await asyncio.sleep(self.retry_interval)

    def _can_replay(self) -> bool:
        return (
            self.spool is not None
            and self.sink is not None
            and self.sink.up
            and self.spool.pending
            and not self._replay_blocked
        )

    async def _next_batch(self) -> list[Item]:
        items = self._items
        while not items:
            if self._closing or self._can_replay():
                return []  # nothing new: let the caller replay the spool (or finish)
            self._wakeup.clear()
            await self._wakeup.wait()
        # a batch closes batch_max_delay after its oldest record arrived: records
        # that queued up during the previous commit have waited already
        wait = items[0][2] + self.batch_delay - time.monotonic()
        if len(items) < self.batch_max and wait > 0 and not self._closing:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), wait)
        count = min(len(items), self.batch_max)
        return [items.popleft() for _ in range(count)]

    async def _persist(self, batch: list[Item]) -> None:
        rows = [item[0] for item in batch]
        spool_first = self.spool is not None and self.spool.pending
        if self.sink is not None and self.sink.up and not spool_first:
            try:
                result = await self._commit(rows)
            except PermanentError as rejected:  # each its own name: see _try_connect
                await self._isolate(batch, rejected)
                return
            except RetryableError as exc:
                self._limited.warning("db_write", "database write failed, spooling", error=str(exc))
                self._set_db(False)
            else:
                self._account(result)
                self._fire(batch, True)
                if self.spool is not None and self.spool.refusing and not self.spool.pending:
                    # a refusal no longer matters: nothing waits in the spool
                    self.spool.refusing = False
                    self._update_spool_metrics()
                return
        if self.spool is not None:
            try:
                await asyncio.to_thread(self.spool.append, rows)
            except SpoolFull:
                self.spool_refusals += 1
                self.health.spool_full = True
                self.telemetry.records_dropped.labels("spool_full").inc(len(rows))
                self._limited.warning(
                    "spool_full", "spool full: records not acknowledged", records=len(rows)
                )
                self._fire(batch, False)
                return
            except OSError as failed:
                self.spool_refusals += 1
                self.telemetry.records_dropped.labels("spool_error").inc(len(rows))
                self._limited.warning(
                    "spool_error", "spool write failed", error=type(failed).__name__
                )
                self._update_spool_metrics()
                self._fire(batch, False)
                return
            self.health.spool_full = False
            self.telemetry.records_spooled.inc(len(rows))
            self._update_spool_metrics()
            self._fire(batch, True)
            return
        self.telemetry.records_dropped.labels("database_unavailable").inc(len(rows))
        self._fire(batch, False)

    async def _commit(self, rows: list[StoredCdr]) -> WriteResult:
        assert self.sink is not None
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(self.sink.write(rows), self.commit_timeout)
        except TimeoutError:
            # the commit may or may not have happened: the spool copy is
            # deduplicated by its record keys when it is replayed
            self.sink.abandon()
            raise RetryableError("commit deadline passed") from None
        self.telemetry.batch_commit.observe(time.perf_counter() - started)
        self.telemetry.batch_records.observe(len(rows))
        return result

    def _account(self, result: WriteResult) -> None:
        t = self.telemetry
        if result.duplicates:
            t.records_duplicate.inc(result.duplicates)
        # summed per batch first: a labels() look-up per row would cost more than the row
        per_source: dict[str, int] = {}
        per_outcome: dict[tuple[str, str], int] = {}
        billable: dict[str, int] = {}
        implausible: dict[str, int] = {}
        # by destination country, and to high-risk prefixes by source: (legs, milliseconds)
        countries: dict[str, list[int]] = {}
        risky: dict[str, list[int]] = {}
        for row in result.stored:
            source, answered, duration_ms, sip_code, cause, doubtful, country, high_risk = row
            per_source[source] = per_source.get(source, 0) + 1
            if doubtful:
                implausible[source] = implausible.get(source, 0) + 1
            key = (source, outcome_of(answered, sip_code, cause))
            per_outcome[key] = per_outcome.get(key, 0) + 1
            if duration_ms:
                billable[source] = billable.get(source, 0) + duration_ms
            tally = countries.setdefault(country or UNKNOWN_COUNTRY, [0, 0])
            tally[0] += 1
            tally[1] += duration_ms or 0
            if high_risk:
                tally = risky.setdefault(source, [0, 0])
                tally[0] += 1
                tally[1] += duration_ms or 0
        for source, count in per_source.items():
            t.records_stored.labels(source).inc(count)
        for (source, outcome), count in per_outcome.items():
            t.calls.labels(source, outcome).inc(count)
        for source, count in implausible.items():
            t.records_implausible.labels(source).inc(count)
        for source, milliseconds in billable.items():
            t.billable_seconds.labels(source).inc(milliseconds / 1000)
        for country, (legs, milliseconds) in countries.items():
            t.destination_calls.labels(country).inc(legs)
            if milliseconds:
                t.destination_billable_seconds.labels(country).inc(milliseconds / 1000)
        for source, (legs, milliseconds) in risky.items():
            t.high_risk_calls.labels(source).inc(legs)
            if milliseconds:
                t.high_risk_billable_seconds.labels(source).inc(milliseconds / 1000)

    @staticmethod
    def _fire(batch: list[Item], durable: bool) -> None:
        for _row, ack, _queued in batch:
            try:
                ack(durable)
            except Exception:  # an acknowledgement must never stop the writer
                log.exception("acknowledgement failed")

    async def _isolate(self, batch: list[Item], error: PermanentError) -> None:
        """Find the rows the database rejects by halving the batch; store the rest."""
        if len(batch) > 1:
            middle = len(batch) // 2
            for half in (batch[:middle], batch[middle:]):
                rows = [item[0] for item in half]
                try:
                    result = await self._commit(rows)
                except PermanentError as exc:
                    await self._isolate(half, exc)
                except RetryableError:
                    self._set_db(False)
                    await self._persist(half)
                else:
                    self._account(result)
                    self._fire(half, True)
            return
        row = batch[0][0]
        self.telemetry.records_dropped.labels("rejected").inc()
        self._limited.warning(
            "rejected", "database rejected a record", error=str(error), source=row.source
        )
        await self._keep_rejected([row])
        self._fire(batch, True)

    async def _keep_rejected(self, rows: list[StoredCdr]) -> None:
        """Keep rows that will not be stored, already redacted, in the spool directory's
        rejected-YYYYMMDD.json for the operator instead of losing them (retention and
        erase reach them there)."""
        if self.spool is None:
            return
        path = self.spool.directory / f"rejected-{datetime.now(UTC):%Y%m%d}.json"
        try:
            await asyncio.to_thread(_append_rejected, path, rows)
        except OSError as exc:
            self._limited.warning(
                "rejected_file", "rejected record not kept", error=type(exc).__name__
            )

    def set_aside(self, row: StoredCdr) -> None:
        """Keep `row` with the rows the database rejected, without storing it: what could
        be read of input that is no valid record (a damaged line of a CDR file). Never
        blocks; rows set aside together share one write and fsync."""
        self._aside.append(row)
        if self._aside_task is None or self._aside_task.done():
            self._aside_task = asyncio.create_task(self._write_aside(), name="set-aside")

    async def _write_aside(self) -> None:
        while self._aside:
            rows = list(self._aside)
            self._aside.clear()
            await self._keep_rejected(rows)

    # --- replay ------------------------------------------------------------
    async def _replay_step(self) -> None:
        """Commit up to REPLAY_BATCH_ROWS spooled rows; delete a segment once all of it is in."""
        assert self.spool is not None and self.sink is not None
        if self._replay is None:
            segment = self.spool.oldest()
            if segment is None:
                return
            try:
                result = await asyncio.to_thread(self.spool.read, segment)
            except SpoolLayoutError as newer:  # each its own name: see _try_connect
                # a newer release's frames (the start-up check saw only each segment's
                # first): keep them for that release, replay nothing more, say so
                self._replay_blocked = True
                log.error("spool replay stopped", error=str(newer))
                return
            if result.missing:
                self.telemetry.spool_corrupt.inc()
                log.error(
                    "spool segment removed from disk: its records are lost",
                    path=segment.path.name,
                    records=segment.records,
                )
            if result.corrupt_frames:
                self.telemetry.spool_corrupt.inc(result.corrupt_frames)
                log.error(
                    "spool segment damaged: skipped what failed its checksum",
                    path=segment.path.name,
                    count=result.corrupt_frames,
                    bytes=result.skipped_bytes,
                )
            self._replay = (segment, result.batches)
        segment, batches = self._replay
        rows: list[StoredCdr] = []
        while batches and len(rows) < REPLAY_BATCH_ROWS:
            rows.extend(batches.pop(0))
        if rows:
            try:
                committed = await self._commit(rows)
            except RetryableError as exc:
                batches.insert(0, rows)
                self._set_db(False)
                self._limited.warning(
                    "replay", "spool replay paused: database unavailable", error=str(exc)
                )
                return
            except PermanentError as rejected:
                pairs: list[Item] = [(row, _no_ack, 0.0) for row in rows]
                await self._isolate(pairs, rejected)
            else:
                self._account(committed)
            segment.records = max(0, segment.records - len(rows))
        if not batches:
            await asyncio.to_thread(self.spool.delete, segment)
            self._replay = None
            if not self.spool.pending:
                log.info("spool drained")
        self._update_spool_metrics()

    def _update_spool_metrics(self) -> None:
        if self.spool is None:
            return
        self.telemetry.spool_records.set(self.spool.records)
        self.telemetry.spool_bytes.set(self.spool.size)
        self.health.spool_full = self.spool.full()
        self.health.spool_pending = self.spool.pending


def _append_rejected(path: Path, rows: list[StoredCdr]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # owner-only like the spool's segments: the rows carry pseudonyms and times
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as handle:
        handle.write(b"".join(encode_rows([row]) + b"\n" for row in rows))
        handle.flush()
        os.fsync(handle.fileno())
