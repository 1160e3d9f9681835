"""Revenue assurance against a real PostgreSQL: pending calls, findings, counts, bounds.

The sink stores redacted rows exactly as the writer does (`PostgresSink.write`),
with or without `[reconcile]` (`check_calls`); `reconcile()` then runs as the
daemon's task runs it, with the clock handed in, so a call's wait is over
without the test sleeping through it. Every call is an answered SIP row with a
Call-ID hash, and its billing rows (RADIUS, JSON) carry the same hash: what is
found must be exactly the calls without a billing row in time ('unbilled') and
those billed beyond the tolerance ('duration_mismatch'), each once, however
many collectors check at the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from collector.config import DatabaseConfig, ReconcileConfig, parse_config
from collector.model import StoredCdr
from collector.reconcile import BATCH_ROWS, Reconciler, reconcile
from collector.retention import anonymize, purge
from collector.sink.postgres import PostgresSink
from collector.telemetry import Health, Telemetry
from tests.daemon import connected, wait_for

SIP_SOURCE = "proxy-test"
WAIT = ReconcileConfig(billing_wait_s=60, duration_tolerance_ms=2000, interval_s=1)
NOW = datetime.now(UTC).replace(microsecond=0)
#: when every SIP call of these tests ended and was received
RECEIVED = NOW - timedelta(seconds=10)
#: a moment when the wait of those calls is over, and one when it is not
AFTER_WAIT = RECEIVED + timedelta(seconds=WAIT.billing_wait_s + 1)
IN_WAIT = RECEIVED + timedelta(seconds=WAIT.billing_wait_s - 1)
TALK_MS = 60_000


def key(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


def call_id_hash(call: str) -> str:
    return hashlib.blake2b(b"call-id:" + call.encode(), digest_size=16).hexdigest()


def stored_row(
    call: str,
    protocol: str,
    duration_ms: int,
    *,
    source: str = SIP_SOURCE,
    received_at: datetime = RECEIVED,
    answered: bool = True,
    incomplete: bool = False,
    leg: str = "",
    call_time: datetime | None = None,
) -> StoredCdr:
    """One redacted Stop of `call` as `protocol` reports it."""
    setup = call_time or RECEIVED - timedelta(milliseconds=duration_ms + 2000)
    connect = setup + timedelta(seconds=2) if answered else None
    disconnect = (connect or setup) + timedelta(milliseconds=duration_ms)
    return StoredCdr(
        kind="stop",
        record_key=key(f"{protocol}:{source}:{call}:{leg}"),
        source=source,
        protocol=protocol,
        account=None,
        leg=leg,
        setup_time=setup,
        connect_time=connect,
        disconnect_time=disconnect,
        duration_ms=duration_ms if answered else 0,
        answered=answered,
        disconnect_cause=16,
        sip_code=200 if answered else 486,
        pdd_ms=None,
        called_prefix="+4420",
        called_country="GB",
        called_destination=None,
        called_masked="+44207946****",
        called_hmac="t1:called",
        calling_country="DE",
        calling_hmac="t1:calling",
        correlation_hmac=None,
        call_id_hmac=call_id_hash(call),
        high_risk=False,
        times_derived=False,
        clock_unsynced=False,
        times_implausible=False,
        incomplete=incomplete,
        event_time=disconnect,
        received_at=received_at,
    )


def sip(call: str, duration_ms: int = TALK_MS, **options: object) -> StoredCdr:
    return stored_row(call, "sip", duration_ms, **options)  # type: ignore[arg-type]


def billing(call: str, duration_ms: int = TALK_MS, protocol: str = "radius") -> StoredCdr:
    return stored_row(call, protocol, duration_ms, source="sbc-test")


@pytest.fixture
async def sink(dsn: str) -> AsyncIterator[PostgresSink]:
    """The writer's sink on a migrated database, keeping calls for reconciliation."""
    sink = PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30)
    await sink.connect()
    sink.check_calls(WAIT)
    try:
        yield sink
    finally:
        await sink.close()


async def pending(conn: asyncpg.Connection) -> set[bytes]:
    return {bytes(r["record_key"]) for r in await conn.fetch("SELECT * FROM reconcile_pending")}


async def findings(conn: asyncpg.Connection) -> dict[bytes, dict[str, object]]:
    rows = await conn.fetch("SELECT * FROM reconcile_findings")
    return {bytes(r["record_key"]): dict(r) for r in rows}


async def test_calls_unbilled_mismatched_and_within_tolerance(sink: PostgresSink, dsn: str) -> None:
    """One call of each kind, the billing rows over RADIUS and JSON: the unbilled and
    the mismatched one are found, with their durations; every pending call is gone."""
    result = await sink.write(
        [
            sip("unbilled"),
            sip("mismatch"),
            billing("mismatch", TALK_MS - 5000, "json"),
            sip("tolerated"),
            billing("tolerated", TALK_MS - 1500),
            sip("exact"),
            billing("exact", TALK_MS),
            # the closest of two billing rows decides
            sip("two-billed"),
            billing("two-billed", TALK_MS + 30_000, "json"),
            billing("two-billed", TALK_MS + 500),
            # neither unanswered nor incomplete SIP calls wait for a billing row
            sip("unanswered", answered=False),
            sip("incomplete", incomplete=True),
        ]
    )
    assert len(result.stored) == 12
    async with connected(dsn) as conn:
        waiting = await pending(conn)
        assert waiting == {
            sip(c).record_key for c in ("unbilled", "mismatch", "tolerated", "exact", "two-billed")
        }

        found = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert found.checked == 5
        assert found.unbilled == {SIP_SOURCE: 1}
        assert found.mismatched == {SIP_SOURCE: 1}
        rows = await findings(conn)
        assert set(rows) == {sip("unbilled").record_key, sip("mismatch").record_key}
        unbilled = rows[sip("unbilled").record_key]
        assert unbilled["finding"] == "unbilled"
        assert (unbilled["signalled_ms"], unbilled["billed_ms"]) == (TALK_MS, None)
        assert unbilled["billing_source"] is None
        assert unbilled["call_id_hash"] == call_id_hash("unbilled")
        assert unbilled["call_time"] == sip("unbilled").setup_time
        mismatch = rows[sip("mismatch").record_key]
        assert mismatch["finding"] == "duration_mismatch"
        assert (mismatch["signalled_ms"], mismatch["billed_ms"]) == (TALK_MS, TALK_MS - 5000)
        assert (mismatch["billing_source"], mismatch["billing_protocol"]) == ("sbc-test", "json")
        billing_key = mismatch["billing_record_key"]
        assert isinstance(billing_key, bytes)
        assert billing_key == billing("mismatch", 0, "json").record_key
        assert await pending(conn) == set()
        # nothing is checked twice
        again = await reconcile(conn, WAIT, now=AFTER_WAIT + timedelta(hours=1))
        assert (again.checked, again.found) == (0, 0)


async def test_a_billing_row_before_or_after_the_sip_row_within_the_wait_matches(
    sink: PostgresSink, dsn: str
) -> None:
    """Billing before the SIP row; billing after it but before its wait is over; and
    billing after the wait (too late: unbilled, and it stays so)."""
    await sink.write([billing("billed-first")])
    await sink.write([sip("billed-first"), sip("billed-later"), sip("billed-too-late")])
    async with connected(dsn) as conn:
        early = await reconcile(conn, WAIT, now=IN_WAIT)
        assert (early.checked, early.found) == (0, 0)
        assert len(await pending(conn)) == 3
        await sink.write([billing("billed-later")])
        found = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert (found.checked, found.unbilled, found.mismatched) == (3, {SIP_SOURCE: 1}, {})
        await sink.write([billing("billed-too-late")])
        late = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert late.checked == 0
        assert set(await findings(conn)) == {sip("billed-too-late").record_key}


async def test_pending_calls_survive_a_new_connection_and_sink(
    sink: PostgresSink, dsn: str
) -> None:
    """The state is the database's: a new sink (a restarted writer) and a new
    connection find the waiting calls and check them; a spool replay of the same
    rows adds no pending call (the record key is taken)."""
    rows = [sip("before-restart"), sip("billed-before-restart"), billing("billed-before-restart")]
    await sink.write(rows)
    await sink.close()
    restarted = PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30)
    await restarted.connect()
    restarted.check_calls(WAIT)
    try:
        replayed = await restarted.write(rows)
        assert replayed.stored == [] and replayed.duplicates == 3
        async with connected(dsn) as conn:
            assert len(await pending(conn)) == 2
            found = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert (found.checked, found.unbilled) == (2, {SIP_SOURCE: 1})
    finally:
        await restarted.close()


async def test_two_collectors_checking_at_once_find_each_call_once(
    sink: PostgresSink, dsn: str
) -> None:
    """More calls than a batch, every other one billed, checked by two connections at
    the same moment (two collectors on one database): each call is checked by one of
    them, their counts add up to the calls found, and the pending table is empty."""
    calls = [f"shared-{n}" for n in range(BATCH_ROWS * 2 + 300)]
    rows: list[StoredCdr] = []
    for n, call in enumerate(calls):
        rows.append(sip(call))
        if n % 2:
            rows.append(billing(call))
    for start in range(0, len(rows), 1000):
        await sink.write(rows[start : start + 1000])
    async with connected(dsn) as first, connected(dsn) as second:
        results = await asyncio.gather(
            reconcile(first, WAIT, now=AFTER_WAIT), reconcile(second, WAIT, now=AFTER_WAIT)
        )
        assert sum(r.checked for r in results) == len(calls)
        assert sum(r.unbilled.get(SIP_SOURCE, 0) for r in results) == len(calls) // 2
        assert sum(r.found for r in results) == len(calls) // 2
        assert len(await findings(first)) == len(calls) // 2
        assert await pending(first) == set()


async def test_without_reconcile_or_from_another_source_nothing_waits(
    sink: PostgresSink, dsn: str
) -> None:
    """A collector without [reconcile] stores the same rows and keeps no pending call;
    with `sip_sources`, only those sources' calls wait; a reload can switch it."""
    sink.check_calls(None)
    result = await sink.write([sip("off-1"), billing("off-1")])
    assert len(result.stored) == 2
    sink.check_calls(ReconcileConfig(sip_sources=("proxy-other",)))
    await sink.write([sip("listed-elsewhere"), sip("listed", source="proxy-other")])
    sink.check_calls(WAIT)
    await sink.write([sip("on-again")])
    async with connected(dsn) as conn:
        assert await pending(conn) == {
            sip("listed", source="proxy-other").record_key,
            sip("on-again").record_key,
        }
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 5


async def test_retention_and_anonymization_bound_the_tables(sink: PostgresSink, dsn: str) -> None:
    """Findings of calls older than retention go with them; a call left pending since
    before retention (its collector stopped reconciling) goes too; anonymization
    clears the Call-ID hash of old findings and deletes pending calls that old."""
    old = NOW - timedelta(days=40)
    middle = NOW - timedelta(days=20)
    await sink.write(
        [
            sip("old-finding", call_time=old),
            sip("middle-finding", call_time=middle),
            sip("recent-finding"),
        ]
    )
    async with connected(dsn) as conn:
        found = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert found.unbilled == {SIP_SOURCE: 3}
    # calls that wait and will not be checked any more
    await sink.write(
        [
            sip("stale-pending", received_at=old, call_time=old),
            sip("middle-pending", received_at=middle, call_time=middle),
            sip("fresh-pending", received_at=NOW),
        ]
    )
    async with connected(dsn) as conn:
        anonymized = await anonymize(conn, 10)
        assert (anonymized.findings, anonymized.pending) == (2, 2)
        rows = await findings(conn)
        assert rows[sip("middle-finding").record_key]["call_id_hash"] is None
        assert rows[sip("recent-finding").record_key]["call_id_hash"] is not None
        assert await pending(conn) == {sip("fresh-pending", received_at=NOW).record_key}
        await conn.execute(
            "INSERT INTO reconcile_pending (record_key, source, call_id_hash, call_time,"
            " duration_ms, received_at) VALUES ($1, $2, 'h', $3, 1000, $3)",
            key("left-behind"),
            SIP_SOURCE,
            old,
        )
        purged = await purge(conn, 30)
        assert (purged.findings_deleted, purged.pending_expired) == (1, 1)
        assert "1 reconciliation finding(s)" in purged.describe(30, None)
        assert set(await findings(conn)) == {
            sip("middle-finding").record_key,
            sip("recent-finding").record_key,
        }
        assert len(await pending(conn)) == 1


async def test_the_task_waits_for_the_database_and_the_spool_then_counts(
    sink: PostgresSink, dsn: str
) -> None:
    """The reconciler checks nothing while the writer finds the database away or the
    spool holds records (a billing row may wait there); then it counts what it
    inserted by SIP source. With the section removed (a reload), it does nothing."""
    config = parse_config(
        "collector.toml",
        {
            "database": {"dsn": dsn},
            "sip": {
                "listen": ["127.0.0.1:0"],
                "sources": [{"name": SIP_SOURCE, "address": "127.0.0.1"}],
            },
            "reconcile": {"billing_wait_s": 1, "interval_s": 1},
        },
        read_files=False,
    )
    await sink.write([sip("counted", received_at=NOW - timedelta(seconds=5))])
    telemetry, health = Telemetry(), Health()
    reconciler = Reconciler(lambda: config, telemetry, health)
    health.database_up, health.spool_pending = False, False
    assert await reconciler.run_once() is None
    health.database_up, health.spool_pending = True, True
    assert await reconciler.run_once() is None
    async with connected(dsn) as conn:
        assert len(await pending(conn)) == 1
    health.spool_pending = False
    result = await reconciler.run_once()
    assert result is not None and result.unbilled == {SIP_SOURCE: 1}
    assert telemetry.unbilled_calls.labels(SIP_SOURCE)._value.get() == 1
    assert telemetry.duration_mismatch.labels(SIP_SOURCE)._value.get() == 0
    switched_off = dataclasses.replace(config, reconcile=None)
    reconciler.config_of = lambda: switched_off
    assert await reconciler.run_once() is None


async def test_a_billing_row_matches_within_a_day_of_the_call_and_not_beyond(
    sink: PostgresSink, dsn: str
) -> None:
    """A switch's clock off by hours (a time zone) still matches its call; a row of the
    same Call-ID more than a day away is another call's (a Call-ID reused later)."""
    start = RECEIVED - timedelta(milliseconds=TALK_MS + 2000)
    near = stored_row("clock-off", "radius", TALK_MS, source="sbc-test")
    near = near._replace(setup_time=start - timedelta(hours=20))
    far_before = stored_row("days-apart", "radius", TALK_MS, source="sbc-test")
    far_before = far_before._replace(setup_time=start - timedelta(hours=26))
    far_after = stored_row("days-later", "radius", TALK_MS, source="sbc-test")
    far_after = far_after._replace(setup_time=start + timedelta(hours=26))
    await sink.write([near, far_before, far_after])
    await sink.write([sip("clock-off"), sip("days-apart"), sip("days-later")])
    async with connected(dsn) as conn:
        found = await reconcile(conn, WAIT, now=AFTER_WAIT)
        assert (found.checked, found.unbilled) == (3, {SIP_SOURCE: 2})
        assert set(await findings(conn)) == {
            sip("days-apart").record_key,
            sip("days-later").record_key,
        }


async def test_each_round_closes_its_connection(sink: PostgresSink, dsn: str) -> None:
    config = parse_config(
        "collector.toml",
        {
            "database": {"dsn": dsn},
            "radius": {
                "listen": ["127.0.0.1:0"],
                "clients": [{"name": "sbc-test", "address": "127.0.0.1", "secret": "s3cr3t-x"}],
            },
            "reconcile": {},
        },
        read_files=False,
    )
    reconciler = Reconciler(lambda: config, Telemetry(), Health(database_up=True))
    async with connected(dsn) as conn:
        name = await conn.fetchval("SELECT current_database()")
        count = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
        before = await conn.fetchval(count, name)
        for _ in range(3):
            assert await reconciler.run_once() is not None

        async def closed() -> bool:
            # a closed connection's backend leaves pg_stat_activity as it exits
            return bool(await conn.fetchval(count, name) == before)

        await wait_for(closed, 10.0)
