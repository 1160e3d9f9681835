"""The PostgreSQL sink on a real database: how record kinds become rows.

The "end" kind closes a call the collector knows only from its durable start
(a BYE seen after a restart): it must complete that call and must never
create a row, or block a later Stop, when no open call has its key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from collector.config import DatabaseConfig, ServiceConfig
from collector.model import StoredCdr
from collector.sink.postgres import (
    PostgresSink,
    RetryableError,
    close_stale_calls,
    decode_timestamptz,
    encode_timestamptz,
    move_default_rows,
    partition_name,
)
from collector.sink.writer import Writer
from collector.telemetry import Health, Telemetry
from tests.daemon import connected

NOW = datetime.now(UTC).replace(microsecond=0)


def stored(key: bytes, kind: str, **fields: object) -> StoredCdr:
    base = StoredCdr(
        kind=kind,
        record_key=key,
        source="proxy-1",
        protocol="sip",
        account=None,
        leg="",
        setup_time=None,
        connect_time=None,
        disconnect_time=None,
        duration_ms=None,
        answered=None,
        disconnect_cause=None,
        sip_code=None,
        pdd_ms=None,
        called_prefix=None,
        called_country=None,
        called_destination=None,
        called_masked=None,
        called_hmac=None,
        calling_country=None,
        calling_hmac=None,
        correlation_hmac=None,
        call_id_hmac=None,
        high_risk=None,
        times_derived=False,
        clock_unsynced=False,
        times_implausible=False,
        incomplete=False,
        event_time=NOW,
        received_at=NOW,
    )
    return base._replace(**fields)  # type: ignore[arg-type]


def start(key: bytes) -> StoredCdr:
    return stored(
        key,
        "start",
        setup_time=NOW - timedelta(seconds=64),
        connect_time=NOW - timedelta(seconds=60),
        called_prefix="+4420",
        called_country="GB",
        called_masked="+44207946****",
        called_hmac="t1:" + key.hex(),
        calling_country="DE",
        calling_hmac="t1:" + "ab" * 16,
        pdd_ms=4000,
        event_time=NOW - timedelta(seconds=60),
    )


def end(key: bytes) -> StoredCdr:
    return stored(key, "end", disconnect_time=NOW, sip_code=200, disconnect_cause=16)


@pytest.fixture
async def sink(dsn: str) -> AsyncIterator[PostgresSink]:
    sink = PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30)
    await sink.connect()
    try:
        yield sink
    finally:
        await sink.close()


async def test_end_completes_its_durable_start(sink: PostgresSink, dsn: str) -> None:
    key = b"\x01" * 16
    await sink.write([start(key)])
    result = await sink.write([end(key)])
    assert len(result.stored) == 1
    async with connected(dsn) as conn:
        row = await conn.fetchrow("SELECT * FROM cdrs")
        still_open = await conn.fetchval("SELECT count(*) FROM open_calls")
    assert row is not None and still_open == 0
    assert row["answered"] is True and row["incomplete"] is False
    assert row["duration_ms"] == 60_000
    assert row["connect_time"] == NOW - timedelta(seconds=60)
    assert row["called_prefix"] == "+4420" and row["calling_hmac"] == "t1:" + "ab" * 16
    assert (row["sip_code"], row["disconnect_cause"]) == (200, 16)


async def test_end_without_an_open_call_leaves_no_trace(sink: PostgresSink, dsn: str) -> None:
    key = b"\x02" * 16
    result = await sink.write([end(key), end(b"\x03" * 16)])
    assert result.stored == []
    # the key is not taken: the call's real Stop, when it comes, is stored
    stop = stored(key, "stop", disconnect_time=NOW, duration_ms=5000, answered=True)
    result = await sink.write([stop])
    assert len(result.stored) == 1
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT duration_ms FROM cdrs")
    assert [r["duration_ms"] for r in rows] == [5000]


async def test_start_and_end_in_one_batch_and_the_end_twice(sink: PostgresSink, dsn: str) -> None:
    key = b"\x04" * 16
    result = await sink.write([start(key), end(key), end(key)])
    assert len(result.stored) == 1
    # a late copy of the same end finds the call closed: nothing more
    result = await sink.write([end(key)])
    assert result.stored == []
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 1


async def test_a_stop_wins_over_an_end_with_the_same_key(sink: PostgresSink, dsn: str) -> None:
    key = b"\x05" * 16
    await sink.write([start(key)])
    stop = stored(key, "stop", disconnect_time=NOW, duration_ms=59_500, answered=True, sip_code=200)
    result = await sink.write([end(key), stop])
    assert len(result.stored) == 1
    async with connected(dsn) as conn:
        row = await conn.fetchrow("SELECT duration_ms FROM cdrs")
    assert row is not None and row["duration_ms"] == 59_500


@pytest.mark.parametrize("how", ["detached", "dropped"])
async def test_rows_of_days_without_a_partition_wait_for_the_default_partition(
    sink: PostgresSink, dsn: str, how: str
) -> None:
    """Without cdrs_default such rows cannot be stored: retried, never rejected as bad."""
    async with connected(dsn) as conn:
        await conn.execute("ALTER TABLE cdrs DETACH PARTITION cdrs_default")
        if how == "dropped":
            await conn.execute("DROP TABLE cdrs_default")
    far = NOW + timedelta(days=400)  # no daily partition that far ahead
    stop = stored(
        b"\x06" * 16,
        "stop",
        setup_time=far,
        disconnect_time=far + timedelta(seconds=30),
        duration_ms=0,
        answered=False,
    )
    with pytest.raises(RetryableError):
        await sink.write([stop])
    await sink.connect()  # what the writer does next: the default partition is back
    result = await sink.write([stop])
    assert len(result.stored) == 1
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 1


@pytest.mark.parametrize(
    ("database_up", "spool_full", "spool_pending", "ready"),
    [
        (True, False, False, True),
        (True, True, False, True),  # little disk left, but nothing has to go to the spool
        (True, True, True, False),  # new batches queue behind a spool that takes no more
        (True, False, True, True),
        (False, False, False, True),  # the spool takes the records
        (False, True, False, False),
        (False, True, True, False),
    ],
)
def test_readiness_with_a_full_spool(
    database_up: bool, spool_full: bool, spool_pending: bool, ready: bool
) -> None:
    health = Health(
        listeners_bound=True,
        database_up=database_up,
        spool_configured=True,
        spool_full=spool_full,
        spool_pending=spool_pending,
    )
    assert health.ready() is ready


async def test_a_days_rows_in_the_default_partition_get_their_own_partition(
    sink: PostgresSink, dsn: str
) -> None:
    """A clock days ahead must not send that whole day's traffic to cdrs_default."""
    today = NOW.date()
    ahead = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) + timedelta(days=5)
    early = [
        stored(bytes([7, n]) * 8, "stop", setup_time=ahead, disconnect_time=ahead, duration_ms=0)
        for n in range(3)
    ]
    await sink.write(early)  # beyond the partition window: the default partition takes them
    day = ahead.date()
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 3
        # that day's partition cannot be created over them: the day would stay in default
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                f"CREATE TABLE {partition_name(day)} PARTITION OF cdrs "
                f"FOR VALUES FROM ('{day}') TO ('{day + timedelta(days=1)}')"
            )
        moved = await move_default_rows(conn, [day, day + timedelta(days=1)])
        assert moved == {day: 3}
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {partition_name(day)}") == 3
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 3
        assert await move_default_rows(conn, [day]) == {}  # nothing left to do
    # the day's later rows land in its partition, not in the default one
    later = stored(b"\x08" * 16, "stop", setup_time=ahead, disconnect_time=ahead, duration_ms=0)
    await sink.write([later])
    async with connected(dsn) as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {partition_name(day)}") == 4
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 0


async def test_sip_calls_left_open_past_the_limit_are_stored_incomplete(
    sink: PostgresSink, dsn: str
) -> None:
    """An answered SIP call whose BYE never came after a restart: one incomplete row."""
    old = NOW - timedelta(hours=6)
    stale = start(b"\x09" * 16)._replace(
        protocol="sip", connect_time=old, setup_time=old - timedelta(seconds=3), event_time=old
    )
    fresh_sip = start(b"\x0a" * 16)._replace(protocol="sip")
    radius = start(b"\x0b" * 16)._replace(protocol="radius", event_time=old, connect_time=old)
    await sink.write([stale, fresh_sip, radius])
    async with connected(dsn) as conn:
        assert await close_stale_calls(conn, "sip", NOW - timedelta(hours=5)) == 1
        row = await conn.fetchrow("SELECT * FROM cdrs")
        left = {r["record_key"] for r in await conn.fetch("SELECT record_key FROM open_calls")}
        assert await close_stale_calls(conn, "sip", NOW - timedelta(hours=5)) == 0
    assert row is not None
    assert row["record_key"] == b"\x09" * 16
    assert (row["answered"], row["incomplete"], row["times_derived"]) == (True, True, True)
    assert (row["connect_time"], row["disconnect_time"], row["duration_ms"]) == (old, old, 0)
    assert row["sip_code"] == 200 and row["called_prefix"] == "+4420"
    assert left == {b"\x0a" * 16, b"\x0b" * 16}
    # its BYE, should it come after all, adds nothing
    result = await sink.write([end(b"\x09" * 16)])
    assert result.stored == []


# --- one key, several protocols -------------------------------------------------------
# One switch reporting a call over RADIUS (or JSON) and SIP under one source name can
# give its records of that call the same record key: each protocol's record is a row
# of its own, and a retransmission within a protocol is still one row.


async def test_records_of_one_key_in_three_protocols_are_three_rows(
    sink: PostgresSink, dsn: str
) -> None:
    key = b"\x21" * 16
    stops = [
        stored(key, "stop", protocol=protocol, disconnect_time=NOW, duration_ms=ms, answered=True)
        for protocol, ms in (("radius", 1000), ("sip", 2000), ("json", 3000))
    ]
    first = await sink.write([stops[0], stops[1]])
    second = await sink.write([stops[2], stops[0]])  # the RADIUS Stop resent
    third = await sink.write(stops)  # and everything once more
    assert (len(first.stored), len(second.stored), len(third.stored)) == (2, 1, 0)
    assert (second.duplicates, third.duplicates) == (1, 3)
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT protocol, duration_ms FROM cdrs ORDER BY protocol")
        keys = await conn.fetch("SELECT protocol FROM cdr_keys WHERE record_key = $1", key)
    assert [(r["protocol"], r["duration_ms"]) for r in rows] == [
        ("json", 3000),
        ("radius", 1000),
        ("sip", 2000),
    ]
    assert sorted(r["protocol"] for r in keys) == ["json", "radius", "sip"]


async def test_each_protocols_stop_closes_its_own_open_call(sink: PostgresSink, dsn: str) -> None:
    key = b"\x22" * 16
    sip_start = start(key)._replace(protocol="sip", connect_time=NOW - timedelta(seconds=30))
    radius_start = start(key)._replace(protocol="radius")
    await sink.write([sip_start, radius_start])
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM open_calls") == 2
    # the SIP BYE (an end) completes the SIP call from the SIP start alone
    assert len((await sink.write([end(key)._replace(protocol="sip")])).stored) == 1
    async with connected(dsn) as conn:
        left = await conn.fetch("SELECT protocol FROM open_calls")
        sip = await conn.fetchrow("SELECT * FROM cdrs WHERE protocol = 'sip'")
    assert [r["protocol"] for r in left] == ["radius"]
    assert sip is not None and sip["duration_ms"] == 30_000
    # the RADIUS Stop without a duration is completed from the RADIUS start
    radius_stop = stored(key, "stop", protocol="radius", disconnect_time=NOW, answered=True)
    assert len((await sink.write([radius_stop])).stored) == 1
    async with connected(dsn) as conn:
        radius = await conn.fetchrow("SELECT * FROM cdrs WHERE protocol = 'radius'")
        assert await conn.fetchval("SELECT count(*) FROM open_calls") == 0
    assert radius is not None and radius["duration_ms"] == 60_000


async def test_a_radius_restart_closes_only_that_protocols_open_calls(
    sink: PostgresSink, dsn: str
) -> None:
    """Accounting-On from a Kamailio named like its SIP source: the calls its RADIUS
    accounting left open end there; the calls seen in SIP go on until their BYE."""
    radius_call, sip_call = b"\x23" * 16, b"\x24" * 16
    await sink.write(
        [
            start(radius_call)._replace(protocol="radius"),
            start(sip_call)._replace(protocol="sip"),
        ]
    )
    reset = stored(b"\x25" * 16, "reset", protocol="radius", event_time=NOW)
    result = await sink.write([reset])
    assert len(result.stored) == 1
    async with connected(dsn) as conn:
        closed = await conn.fetchrow("SELECT protocol, incomplete FROM cdrs")
        left = await conn.fetch("SELECT record_key, protocol FROM open_calls")
    assert closed is not None and (closed["protocol"], closed["incomplete"]) == ("radius", True)
    assert [(r["record_key"], r["protocol"]) for r in left] == [(sip_call, "sip")]
    assert len((await sink.write([end(sip_call)._replace(protocol="sip")])).stored) == 1


def test_the_writer_queue_takes_exactly_queue_max_records() -> None:
    """The queue holds queue_max_records and refuses the next: a receiver then answers
    as for an overload (the switch resends)."""
    writer = Writer(ServiceConfig(queue_max_records=3), None, None, None, Telemetry(), Health())
    rows = [stored(bytes([n]) * 16, "stop") for n in range(5)]
    assert [writer.submit(row) for row in rows[:3]] == [True, True, True]
    assert writer.queued == 3
    assert [writer.submit(row) for row in rows[3:]] == [False, False]
    assert writer.queued == 3


async def test_times_cross_the_writers_own_codec_exactly(sink: PostgresSink, dsn: str) -> None:
    """The writer's connection encodes timestamptz itself (postgres.encode_timestamptz):
    every instant must arrive as the same instant, to the microsecond, whatever its
    zone, before or after PostgreSQL's epoch; what it reads back is UTC."""
    east = timezone(timedelta(hours=5, minutes=30))
    times = [
        datetime(2026, 12, 7, 14, 55, 28, 123456, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch
        datetime(2000, 1, 1, tzinfo=UTC),  # the epoch itself
        datetime(2026, 12, 7, 20, 25, 28, 1, tzinfo=east),  # another zone, 1 µs
        datetime(1970, 1, 1, tzinfo=UTC),
    ]
    for index, when in enumerate(times):
        key = bytes([0x70, index]) * 8
        row = stored(
            key,
            "stop",
            setup_time=when,
            connect_time=when,
            disconnect_time=when + timedelta(microseconds=1),
            duration_ms=0,
            answered=False,
            event_time=when,
            received_at=when,
        )
        result = await sink.write([row])
        assert len(result.stored) == 1
    # read with asyncpg's own codec on a connection of its own
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT record_key, setup_time, disconnect_time, received_at"
            " FROM cdrs ORDER BY record_key"
        )
    finally:
        await conn.close()
    assert [row["setup_time"] for row in rows] == times
    assert [row["received_at"] for row in rows] == times
    assert [row["disconnect_time"] - row["setup_time"] for row in rows] == [
        timedelta(microseconds=1)
    ] * len(times)
    # and what the writer's connection itself reads is the same instants, in UTC
    assert sink.conn is not None
    back = await sink.conn.fetch("SELECT setup_time FROM cdrs ORDER BY record_key")
    assert [row["setup_time"] for row in back] == times
    assert all(row["setup_time"].tzinfo is UTC for row in back)
    assert decode_timestamptz(encode_timestamptz(times[3])) == times[3]


def test_infinity_from_the_database_reads_as_the_latest_time() -> None:
    assert decode_timestamptz((2**63 - 1,)) == datetime.max.replace(tzinfo=UTC)
    assert decode_timestamptz((-(2**63),)) == datetime.min.replace(tzinfo=UTC)
