"""Retention and erasure beyond the rows of `cdrs`' daily partitions.

- Rows and open calls dated far ahead (call times in the future, so in the
  default partition) still expire, by when they arrived.
- The rows PostgreSQL refused, kept by the writer in the spool directory's
  `rejected-YYYYMMDD.json`, hold pseudonyms and times too: `erase` removes a
  number's rows there and `purge` removes the old ones.
- `erase` can only search under configured keys: the stored key ids it cannot
  search under are reported.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from collector.config import load_config
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.retention import erase, purge, unknown_key_ids
from collector.sink.spool import decode_rows
from collector.traffic import AccountingClient, Call, generic_attributes
from tests.daemon import (
    SECRET,
    CollectorConfig,
    connected,
    run_command,
    running_collector,
    wait_for,
)

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
