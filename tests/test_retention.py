"""Retention and erasure beyond the rows of `cdrs`' daily partitions.

- Rows and open calls dated far ahead (call times in the future, so in the
  default partition) still expire, by when they arrived.
- The rows PostgreSQL refused, kept by the writer in the spool directory's
  `rejected-YYYYMMDD.json`, hold pseudonyms and times too: `erase` removes a
  number's rows there and `purge` removes the old ones.
- `erase` can only search under configured keys: the stored key ids it cannot
  search under are reported.
- `erase` removes the number's open calls, as caller and as callee.
- The cutoff, exactly: for every table (and the refused-row files) what is at
  the cutoff is kept and what is a second (or, for daily partitions and
  files, a day) before it goes; a record key outlives its row by a day, so a
  retransmission after the purge is still refused while its row is kept.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from collector.config import load_config
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.retention import erase, purge, unknown_key_ids
from collector.sink.postgres import partition_name
from collector.sink.spool import decode_rows, encode_rows
from collector.traffic import AccountingClient, Call, cisco_attributes, generic_attributes
from tests.daemon import (
    SECRET,
    CollectorConfig,
    connected,
    run_command,
    running_collector,
    wait_for,
)
from tests.test_sink import stored

PRIVATE_NUMBER = "+4917612345678"
OTHER_NUMBER = "+442071234567"


def _call(session: str, called: str, disconnect: datetime) -> Call:
    return Call(
        session_id=session,
        calling="+33612345678",
        called=called,
        setup=disconnect - timedelta(seconds=100),
        connect=disconnect - timedelta(seconds=90),
        disconnect=disconnect,
        cause=16,
    )


def _labelled(attributes: bytes, account: str) -> bytes:
    return attributes + codec.encode_attribute(d.USER_NAME, account.encode())


async def test_purge_expires_rows_and_open_calls_dated_far_ahead(tmp_path: Path, dsn: str) -> None:
    """Rows dated decades ahead (the daemon now stores such times as implausible, at
    their arrival, but an older release stored them as sent, in the default partition)
    expire by when they arrived."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    future = datetime(2100, 1, 1, 12, tzinfo=UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    long_ago = now - timedelta(days=200)  # retention is 180 days
    assert run_command("migrate", "--config", str(config.render())).returncode == 0
    async with connected(dsn) as conn:
        for key, account, received in (
            (b"\x01", "ahead-old", long_ago),
            (b"\x02", "ahead-new", now),
            (b"\x03", "today", now),
        ):
            call_time = now if account == "today" else future
            await conn.execute(
                "INSERT INTO cdrs (record_key, source, protocol, account, call_time, duration_ms,"
                " answered, received_at) VALUES ($1, 'sbc-test', 'radius', $2, $3, 0, false, $4)",
                key,
                account,
                call_time,
                received,
            )
        for key, account, received in (
            (b"\x04", "ahead-old", long_ago),
            (b"\x05", "ahead-new", now),
        ):
            await conn.execute(
                "INSERT INTO open_calls (record_key, source, protocol, account, opened_at,"
                " updated_at, connect_time, received_at)"
                " VALUES ($1, 'sbc-test', 'radius', $2, $3, $3, $3, $4)",
                key,
                account,
                future,
                received,
            )
        # (no daily partitions: the daemon, which makes them, never ran)
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 3
    result = run_command("purge", "--config", str(config.directory / "collector.toml"))
    assert result.returncode == 0, result.stderr
    assert "deleted 1 row(s)" in result.stdout
    assert "and 1 open call(s)" in result.stdout
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT account FROM cdrs ORDER BY account")
        open_calls = await conn.fetch("SELECT account FROM open_calls")
    assert [r["account"] for r in rows] == ["ahead-new", "today"]
    assert [r["account"] for r in open_calls] == ["ahead-new"]


def _rejected_lines(spool: Path) -> list[bytes]:
    return [
        line
        for path in spool.glob("rejected-*.json")
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


async def test_rejected_rows_in_the_spool_directory_are_erased_and_expire(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    spool = config.directory / "spool"
    now = datetime.now(UTC).replace(microsecond=0)
    with running_collector(config) as collector:
        async with connected(dsn) as conn:
            # the database refuses some rows for good: the writer keeps them in a file
            await conn.execute(
                "ALTER TABLE cdrs ADD CONSTRAINT refuse_some "
                "CHECK (account IS DISTINCT FROM 'refused')"
            )
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for account, call in (
                ("refused", _call("REFUSED1", PRIVATE_NUMBER, now)),
                ("refused", _call("REFUSED2", OTHER_NUMBER, now)),
                ("refused", _call("REFUSED3", OTHER_NUMBER, now - timedelta(days=200))),
                ("stored", _call("STORED1", PRIVATE_NUMBER, now)),
            ):
                assert await client.send(_labelled(generic_attributes(call), account))
        await wait_for(lambda: len(_rejected_lines(spool)) == 3)
    (rejected,) = spool.glob("rejected-*.json")
    assert rejected.stat().st_mode & 0o777 == 0o600  # owner-only, like the spool's segments
    privacy = load_config(str(config.directory / "collector.toml")).privacy
    pseudonyms = Redactor(privacy).number_pseudonyms(PRIVATE_NUMBER)
    assert pseudonyms[0].encode() in rejected.read_bytes()

    # the operator's command reaches the spool directory as well
    toml = str(config.directory / "collector.toml")
    result_cli = run_command("erase", "--config", toml, "--number", PRIVATE_NUMBER)
    assert result_cli.returncode == 0, result_cli.stderr
    assert "erased 2 row(s)" in result_cli.stdout  # the stored row and the refused one
    async with connected(dsn) as conn:
        assert await erase(conn, pseudonyms, spool_directory=spool) == 0  # nothing left
        assert pseudonyms[0].encode() not in rejected.read_bytes()
        assert len(rejected.read_bytes().splitlines()) == 2
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 0

        # retention: the refused row of a call 200 days old goes now ...
        purged = run_command("purge", "--config", toml)
        assert purged.returncode == 0, purged.stderr
        assert "removed 1 refused row(s)" in purged.stdout
        (line,) = rejected.read_bytes().splitlines()
        (kept,) = decode_rows(line)
        assert kept.protocol == "radius"  # the recent one is kept, still readable
        # ... and a file from before the cutoff goes whole
        old_day = (now - timedelta(days=181)).date()
        rejected.rename(spool / f"rejected-{old_day:%Y%m%d}.json")
        result = await purge(conn, 180, spool_directory=spool)
        assert result.rejected_rows_deleted == 1
    assert list(spool.glob("rejected-*")) == []
    assert [p.suffix for p in spool.iterdir() if p.suffix != ".seg"] == []


async def test_erase_reports_stored_key_ids_it_cannot_search_under(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    now = datetime.now(UTC).replace(microsecond=0)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(generic_attributes(_call("KEYED1", PRIVATE_NUMBER, now)))
    privacy = load_config(str(config.directory / "collector.toml")).privacy
    pseudonyms = Redactor(privacy).number_pseudonyms(PRIVATE_NUMBER)
    conn: asyncpg.Connection
    async with connected(dsn) as conn:
        assert await unknown_key_ids(conn, pseudonyms) == []
        # the key "t1" was removed from the key file: erase searches under "t2" only
        assert await unknown_key_ids(conn, ["t2:" + pseudonyms[0].partition(":")[2]]) == ["t1"]


async def test_erase_removes_the_numbers_open_calls_as_caller_and_as_callee(
    tmp_path: Path, dsn: str
) -> None:
    """Calls still going (a Start, no Stop yet) sit in `open_calls` with both pseudonyms:
    `cdr-collector erase` removes those of the number on either side and no other."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    now = datetime.now(UTC).replace(microsecond=0)
    calls_out = replace(_call("OPEN-OUT", OTHER_NUMBER, now), calling=PRIVATE_NUMBER)
    calls_in = _call("OPEN-IN", PRIVATE_NUMBER, now)  # ... and is called
    unrelated = _call("OPEN-OTHER", OTHER_NUMBER, now)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for call in (calls_out, calls_in, unrelated):
                assert await client.send(generic_attributes(call, d.STATUS_START))
            assert await client.send(generic_attributes(_call("DONE", PRIVATE_NUMBER, now)))
        privacy = load_config(str(collector.config_path)).privacy
        pseudonyms = set(Redactor(privacy).number_pseudonyms(PRIVATE_NUMBER))
        async with connected(dsn) as conn:
            before = await conn.fetch("SELECT called_hmac, calling_hmac FROM open_calls")
            assert await conn.fetchval("SELECT count(*) FROM cdrs") == 1
        # the number is there on both sides before the request
        assert sorted((r["calling_hmac"] in pseudonyms, r["called_hmac"] in pseudonyms)
                      for r in before) == [(False, False), (False, True), (True, False)]  # fmt: skip

        result = run_command(
            "erase", "--config", str(collector.config_path), "--number", PRIVATE_NUMBER
        )
        assert result.returncode == 0, result.stderr
        assert "erased 3 row(s)" in result.stdout  # two open calls and the stored call
    async with connected(dsn) as conn:
        left = await conn.fetch("SELECT called_hmac, calling_hmac FROM open_calls")
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 0
    assert len(left) == 1
    assert {left[0]["called_hmac"], left[0]["calling_hmac"]}.isdisjoint(pseudonyms)


# --- the cutoff, exactly ---------------------------------------------------------------------
#
# What is kept is judged against a cutoff: midnight UTC, `retention_days` before today.
# For each place that keeps something, the tests below put an item exactly at where its
# own cutoff falls (kept) and one a second before it (gone); where whole days go at
# once (daily partitions of `cdrs`, refused-row files), the last second of the day
# before the cutoff goes and the cutoff's own day stays. So a cutoff a day early, a day
# late or one `<` turned into `<=` each fails one of them:
# - `cdrs` partitions: a day goes once all of it is before the cutoff;
# - `cdrs_default` (days without a partition): a row goes when its call or its arrival
#   is before the cutoff (a switch's clock far ahead cannot keep a row for ever);
# - `open_calls`: when its last update or its arrival is before the cutoff;
# - `cdr_keys`: a day after the cutoff, since a key outlives its row by a day (a late
#   retransmission of a row still kept must find its key);
# - refused rows in the spool directory: a file dated before the cutoff's day goes
#   whole, unreadable lines too; in a later file, a row goes as in `cdrs_default`;
# - `erasures`: when requested before the cutoff;
# - `source_resets`: a restart once the next one of its source was seen more than two
#   days before the cutoff (a day beyond the keys it generated).
# They run `purge` at a fixed moment, so the day cannot turn during a test; the cutoff
# is written out here, not computed by the code under test.

RETENTION_DAYS = 180
PURGE_AT = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
#: midnight UTC 180 days before 2026-11-30: the oldest time kept at PURGE_AT
CUTOFF = datetime(2026, 6, 3, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
#: a call time from a switch whose clock is far ahead: no daily partition holds it
FAR_AHEAD = datetime(2100, 1, 1, 12, tzinfo=UTC)
RETENTION_DELETED = "cdr_collector_retention_deleted_rows_total"


async def _migrated(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    result = run_command("migrate", "--config", str(config.render()))
    assert result.returncode == 0, result.stderr


async def _insert_cdr(
    conn: asyncpg.Connection, account: str, call_time: datetime, received_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO cdrs (record_key, source, protocol, account, call_time, duration_ms,"
        " answered, received_at) VALUES ($1, 'sbc-test', 'radius', $2, $3, 0, false, $4)",
        account.encode(),
        account,
        call_time,
        received_at,
    )


async def _accounts(conn: asyncpg.Connection, table: str) -> list[str]:
    return [r["account"] for r in await conn.fetch(f"SELECT account FROM {table} ORDER BY 1")]


async def test_purge_drops_the_day_before_the_cutoff_and_keeps_the_cutoffs_day(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    async with connected(dsn) as conn:
        for day in ((CUTOFF - DAY).date(), CUTOFF.date()):
            await conn.execute(
                f"CREATE TABLE {partition_name(day)} PARTITION OF cdrs "
                f"FOR VALUES FROM ('{day}') TO ('{day + DAY}')"
            )
        for account, call_time in (
            ("1-day-before-first-second", CUTOFF - DAY),
            ("2-day-before-last-second", CUTOFF - SECOND),
            ("3-cutoff", CUTOFF),
            ("4-cutoff-day-last-second", CUTOFF + DAY - SECOND),
        ):
            await _insert_cdr(conn, account, call_time, call_time)
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        partitions = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'cdrs'::regclass ORDER BY 1"
        )
        assert [r["relname"] for r in partitions] == ["cdrs_default", "cdrs_p20260603"]
        assert await _accounts(conn, "cdrs") == ["3-cutoff", "4-cutoff-day-last-second"]
    assert (result.partitions_dropped, result.rows_deleted) == (1, 0)


async def test_purge_deletes_default_partition_rows_from_the_second_before_the_cutoff(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    async with connected(dsn) as conn:
        for account, call_time, received_at in (
            ("call-before", CUTOFF - SECOND, PURGE_AT),
            ("call-at", CUTOFF, PURGE_AT),
            ("arrived-before", FAR_AHEAD, CUTOFF - SECOND),
            ("arrived-at", FAR_AHEAD, CUTOFF),
        ):
            await _insert_cdr(conn, account, call_time, received_at)
        assert await conn.fetchval("SELECT count(*) FROM cdrs_default") == 4
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        assert await _accounts(conn, "cdrs") == ["arrived-at", "call-at"]
    assert (result.partitions_dropped, result.rows_deleted) == (0, 2)


async def test_purge_forgets_open_calls_from_the_second_before_the_cutoff(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    async with connected(dsn) as conn:
        for key, account, updated_at, received_at in (
            (b"\x01", "updated-before", CUTOFF - SECOND, PURGE_AT),
            (b"\x02", "updated-at", CUTOFF, PURGE_AT),
            (b"\x03", "arrived-before", PURGE_AT, CUTOFF - SECOND),
            (b"\x04", "arrived-at", PURGE_AT, CUTOFF),
        ):
            await conn.execute(
                "INSERT INTO open_calls (record_key, source, protocol, account, opened_at,"
                " updated_at, received_at) VALUES ($1, 'sbc-test', 'radius', $2, $3, $3, $4)",
                key,
                account,
                updated_at,
                received_at,
            )
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        assert await _accounts(conn, "open_calls") == ["arrived-at", "updated-at"]
    assert result.open_calls_expired == 2


async def test_purge_expires_record_keys_a_day_after_the_cutoff(tmp_path: Path, dsn: str) -> None:
    await _migrated(tmp_path, dsn)
    async with connected(dsn) as conn:
        for key, first_seen in (
            (b"gone", CUTOFF - DAY - SECOND),
            (b"kept-last", CUTOFF - DAY),
            (b"kept-its-row-gone", CUTOFF - SECOND),  # its row went with this purge
        ):
            await conn.execute(
                "INSERT INTO cdr_keys (record_key, protocol, first_seen) VALUES ($1, 'radius', $2)",
                key,
                first_seen,
            )
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        kept = await conn.fetch("SELECT record_key FROM cdr_keys ORDER BY first_seen")
    assert [bytes(r["record_key"]) for r in kept] == [b"kept-last", b"kept-its-row-gone"]
    assert result.keys_expired == 1


async def test_purge_forgets_erasure_requests_from_the_second_before_the_cutoff(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    async with connected(dsn) as conn:
        for tag, requested_at in (("t1:before", CUTOFF - SECOND), ("t1:at", CUTOFF)):
            await conn.execute(
                "INSERT INTO erasures (hmac, requested_at) VALUES ($1, $2)", tag, requested_at
            )
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        kept = await conn.fetch("SELECT hmac FROM erasures")
    assert [r["hmac"] for r in kept] == ["t1:at"]
    assert result.erasures_expired == 1


async def test_purge_forgets_a_restart_once_the_next_was_seen_two_days_before_the_cutoff(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    earlier = CUTOFF - 10 * DAY
    async with connected(dsn) as conn:
        for source, reset_at in (
            ("sbc-a", earlier),
            ("sbc-a", CUTOFF - 2 * DAY - SECOND),  # the next restart, just old enough
            ("sbc-b", earlier),
            ("sbc-b", CUTOFF - 2 * DAY),  # the next restart, not yet
        ):
            await conn.execute(
                "INSERT INTO source_resets (source, reset_at, seen_at) VALUES ($1, $2, $2)",
                source,
                reset_at,
            )
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT)
        kept = await conn.fetch("SELECT source, reset_at FROM source_resets ORDER BY 1, 2")
    assert [(r["source"], r["reset_at"]) for r in kept] == [
        ("sbc-a", CUTOFF - 2 * DAY - SECOND),
        ("sbc-b", earlier),
        ("sbc-b", CUTOFF - 2 * DAY),
    ]
    assert result.resets_expired == 1


def _refused(account: str, call_time: datetime, received_at: datetime) -> bytes:
    """One line of a refused-row file, as the writer appends it."""
    row = stored(
        account.encode(),
        "stop",
        account=account,
        setup_time=call_time,
        event_time=call_time,
        received_at=received_at,
    )
    return encode_rows([row]) + b"\n"


async def test_purge_removes_refused_rows_from_the_second_before_the_cutoff(
    tmp_path: Path, dsn: str
) -> None:
    await _migrated(tmp_path, dsn)
    spool = tmp_path / "spool"
    spool.mkdir()
    unreadable = b'{"damaged": \n'
    # refused on the day before the cutoff's: the file goes whole, unreadable line and all
    (spool / "rejected-20260602.json").write_bytes(
        _refused("day-before", CUTOFF - 100 * SECOND, CUTOFF - SECOND) + unreadable
    )
    # refused on the cutoff's day: row by row
    cutoff_day = spool / "rejected-20260603.json"
    cutoff_day.write_bytes(
        _refused("call-before", CUTOFF - SECOND, CUTOFF)
        + _refused("call-at", CUTOFF, CUTOFF)
        + _refused("arrived-before", CUTOFF + 3600 * SECOND, CUTOFF - SECOND)
        + _refused("arrived-at", CUTOFF + 3600 * SECOND, CUTOFF)
        + unreadable  # kept until its file is old
    )
    async with connected(dsn) as conn:
        result = await purge(conn, RETENTION_DAYS, now=PURGE_AT, spool_directory=spool)
    assert sorted(p.name for p in spool.iterdir()) == ["rejected-20260603.json"]
    lines = cutoff_day.read_bytes().splitlines(keepends=True)
    assert lines[-1] == unreadable
    assert [row.account for line in lines[:-1] for row in decode_rows(line)] == [
        "call-at",
        "arrived-at",
    ]
    assert result.rejected_rows_deleted == 2 + 2


async def test_the_purge_command_and_the_daemon_keep_the_configured_days_to_the_second(
    tmp_path: Path, dsn: str
) -> None:
    """`cdr-collector purge` and the daemon's own retention pass judge by the configured
    `retention_days` and today's date (UTC): with 90 days, a call at midnight 90 days
    ago is kept and one a second earlier goes."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, retention_days=90)
    toml = str(config.render())
    assert run_command("migrate", "--config", toml).returncode == 0

    async def boundary_rows(conn: asyncpg.Connection) -> datetime:
        await conn.execute("DELETE FROM cdrs")
        today = datetime.now(UTC).date() - timedelta(days=90)
        cutoff = datetime(today.year, today.month, today.day, tzinfo=UTC)
        received = datetime.now(UTC)
        await _insert_cdr(conn, "before", cutoff - SECOND, received)
        await _insert_cdr(conn, "at", cutoff, received)
        return cutoff

    def turned(cutoff: datetime) -> bool:
        """Midnight UTC passed since the rows were placed: the cutoff moved a day."""
        return datetime.now(UTC).date() - timedelta(days=90) != cutoff.date()

    async with connected(dsn) as conn:
        for _attempt in range(2):  # once more if the day turned meanwhile
            cutoff = await boundary_rows(conn)
            result = run_command("purge", "--config", toml)
            if not turned(cutoff):
                break
        assert result.returncode == 0, result.stderr
        assert "retention 90 days: dropped 0 partition(s), deleted 1 row(s)" in result.stdout
        assert await _accounts(conn, "cdrs") == ["at"]

        for _attempt in range(2):
            cutoff = await boundary_rows(conn)
            with running_collector(config) as collector:
                # its first pass runs at start
                await wait_for(lambda: collector.metric(RETENTION_DELETED, reason="retention") > 0)
            if not turned(cutoff):
                break
        assert await _accounts(conn, "cdrs") == ["at"]


async def test_a_retransmission_after_the_purge_is_refused_while_its_row_is_kept(
    tmp_path: Path, dsn: str
) -> None:
    """A record key can be older than the cutoff while its row is kept only when the
    switch's clock runs ahead of the collector's (up to a day is believed): the row is
    filed under its call's day, the key under when it arrived. A retransmission of that
    record after a purge must still find its key, or the call is stored twice."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    arrival = datetime.now(UTC)
    # the switch's clock says the call began at the next midnight UTC (at most a day ahead)
    next_midnight = datetime.combine(arrival.date() + DAY, datetime.min.time(), UTC)
    call = Call(
        session_id="AHEAD1",
        calling="+33612345678",
        called=PRIVATE_NUMBER,
        setup=next_midnight,
        connect=next_midnight + 2 * SECOND,
        disconnect=next_midnight + 10 * SECOND,
        cause=16,
    )
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(cisco_attributes(call))
        async with connected(dsn) as conn:
            stored_row = await conn.fetchrow("SELECT tableoid::regclass::text AS p FROM cdrs")
            first_seen = await conn.fetchval("SELECT first_seen FROM cdr_keys")
            assert stored_row["p"] == partition_name(next_midnight.date())
            assert first_seen < next_midnight
            # retention runs 180 days later: its cutoff is that midnight, so the
            # row is kept and its key, a day older than the cutoff at most, is kept too
            result = await purge(conn, 180, now=next_midnight + 180 * DAY + 3600 * SECOND)
            assert result.keys_expired == 0
            assert await conn.fetchval("SELECT count(*) FROM cdrs") == 1
        # the switch sends the record again (a new packet: its retransmission queue)
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(cisco_attributes(call))
        assert collector.metric("cdr_collector_records_duplicate_total") == 1
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 1
