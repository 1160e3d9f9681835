"""Anonymization before deletion (`privacy.anonymize_after_days`).

Rows older than the cutoff (midnight UTC, `anonymize_after_days` ago, judged as
retention judges: by call time, and in the default partition and `open_calls`
also by arrival) lose their pseudonyms, masked number, correlation hash and
account label, in `cdrs`, `open_calls` and the refused rows of the spool
directory; the columns statistics need stay. `cdr-collector purge` and the
daemon's retention timer apply it and record it in the audit trail; a second
run finds nothing; a retransmission of an anonymized record is still stored once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from collector.model import StoredCdr
from collector.retention import IDENTIFYING_COLUMNS, IDENTIFYING_FIELDS, _cleared
from collector.sink.postgres import partition_name
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
from tests.test_retention import _labelled, _rejected_lines

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
FAR_AHEAD = datetime(2100, 1, 1, 12, tzinfo=UTC)
AFTER_DAYS = 30
IDENTIFYING = {
    "account": "customer-7",
    "called_masked": "+4930123456***",
    "called_hmac": "t1:calledpseudonym",
    "calling_hmac": "t1:callingpseudonym",
    "correlation": "correlationhash",
    "call_id_hash": "callidhash",
}


def test_every_identifying_field_is_cleared_and_named_as_a_column() -> None:
    values: list[object] = [None] * len(StoredCdr._fields)
    for name in IDENTIFYING_FIELDS:
        values[StoredCdr._fields.index(name)] = "x"
    row = StoredCdr._make(values)
    assert all(getattr(_cleared(row), name) is None for name in IDENTIFYING_FIELDS)
    assert set(IDENTIFYING_COLUMNS) == set(IDENTIFYING)


async def _insert_cdr(
    conn: asyncpg.Connection, key: str, call_time: datetime, received_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO cdrs (record_key, source, protocol, account, call_time, duration_ms,"
        " answered, disconnect_cause, called_prefix, called_country, called_destination,"
        " calling_country, called_masked, called_hmac, calling_hmac, correlation, received_at,"
        " call_id_hash)"
        " VALUES ($1, 'sbc-test', 'radius', $2, $3, 90000, true, 16, '4930', 'DE', 'Berlin',"
        " 'FR', $4, $5, $6, $7, $8, $9)",
        key.encode(),
        IDENTIFYING["account"],
        call_time,
        IDENTIFYING["called_masked"],
        IDENTIFYING["called_hmac"],
        IDENTIFYING["calling_hmac"],
        IDENTIFYING["correlation"],
        received_at,
        IDENTIFYING["call_id_hash"],
    )


async def _insert_open_call(conn: asyncpg.Connection, key: str, updated_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO open_calls (record_key, source, protocol, account, opened_at, updated_at,"
        " connect_time, called_prefix, called_masked, called_hmac, calling_hmac, correlation,"
        " received_at, call_id_hash) VALUES ($1, 'sbc-test', 'radius', $2, $3, $3, $3, '4930',"
        " $4, $5, $6, $7, $3, $8)",
        key.encode(),
        IDENTIFYING["account"],
        updated_at,
        IDENTIFYING["called_masked"],
        IDENTIFYING["called_hmac"],
        IDENTIFYING["calling_hmac"],
        IDENTIFYING["correlation"],
        IDENTIFYING["call_id_hash"],
    )


async def _anonymized(conn: asyncpg.Connection, table: str) -> dict[str, bool]:
    """Each row's key, and whether every identifying column of it is cleared."""
    cleared = " AND ".join(f"{c} IS NULL" for c in IDENTIFYING_COLUMNS)
    rows = await conn.fetch(f"SELECT record_key, {cleared} AS cleared FROM {table}")
    return {bytes(r["record_key"]).decode(): r["cleared"] for r in rows}


async def test_the_purge_command_anonymizes_to_the_second_and_once(
    tmp_path: Path, dsn: str
) -> None:
    """With 30 days: a call a second before midnight 30 days ago is anonymized, one at
    that midnight keeps its pseudonyms; statistics stay; a second purge anonymizes 0;
    each purge writes an `anonymize` row in the audit trail."""
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, privacy_extra=f"anonymize_after_days = {AFTER_DAYS}\n"
    )
    toml = str(config.render())
    assert run_command("migrate", "--config", toml).returncode == 0

    async def place_rows(conn: asyncpg.Connection) -> datetime:
        await conn.execute("DELETE FROM cdrs; DELETE FROM open_calls; DELETE FROM privacy_audit")
        oldest = datetime.now(UTC).date() - timedelta(days=AFTER_DAYS)
        cutoff = datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)
        for day in ((cutoff - DAY).date(), cutoff.date()):
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF cdrs "
                f"FOR VALUES FROM ('{day}') TO ('{day + DAY}')"
            )
        now = datetime.now(UTC)
        for key, call_time, received_at in (
            ("partition-before", cutoff - SECOND, now),
            ("partition-at", cutoff, now),
            ("default-call-before", cutoff - 10 * DAY, now),
            ("default-arrived-before", FAR_AHEAD, cutoff - SECOND),
            ("default-arrived-at", FAR_AHEAD, cutoff),
        ):
            await _insert_cdr(conn, key, call_time, received_at)
        await _insert_open_call(conn, "open-before", cutoff - SECOND)
        await _insert_open_call(conn, "open-at", cutoff)
        return cutoff

    async with connected(dsn) as conn:
        for _attempt in range(2):  # once more if midnight UTC passed meanwhile
            cutoff = await place_rows(conn)
            first = run_command("purge", "--config", toml)
            if datetime.now(UTC).date() - timedelta(days=AFTER_DAYS) == cutoff.date():
                break
        assert first.returncode == 0, first.stderr
        assert (
            f"anonymize after {AFTER_DAYS} days: anonymized 3 row(s), 1 open call(s) "
            "and 0 refused row(s)" in first.stdout
        )
        assert await _anonymized(conn, "cdrs") == {
            "partition-before": True,
            "partition-at": False,
            "default-call-before": True,
            "default-arrived-before": True,
            "default-arrived-at": False,
        }
        assert await _anonymized(conn, "open_calls") == {"open-before": True, "open-at": False}
        # what statistics need is untouched
        stats = await conn.fetch(
            "SELECT source, protocol, duration_ms, answered, disconnect_cause, called_prefix,"
            " called_country, called_destination, calling_country, call_time, received_at"
            " FROM cdrs WHERE called_hmac IS NULL"
        )
        assert len(stats) == 3
        for row in stats:
            assert (row["source"], row["protocol"], row["duration_ms"], row["answered"]) == (
                "sbc-test",
                "radius",
                90000,
                True,
            )
            assert (row["disconnect_cause"], row["called_prefix"]) == (16, "4930")
            assert (row["called_country"], row["called_destination"]) == ("DE", "Berlin")
            assert row["calling_country"] == "FR"
        # the partition before the cutoff now has its (empty) index of rows to clear
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = $1",
            partition_name((cutoff - DAY).date()) + "_identifiable",
        )

        second = run_command("purge", "--config", toml)
        assert second.returncode == 0, second.stderr
        assert "anonymized 0 row(s), 0 open call(s) and 0 refused row(s)" in second.stdout
        trail = await conn.fetch(
            "SELECT rows, detail FROM privacy_audit WHERE operation = 'anonymize' ORDER BY id"
        )
        assert [r["rows"] for r in trail] == [4, 0]
        assert "anonymized 3 row(s)" in trail[0]["detail"]
        # the recent rows still carry their pseudonyms
        assert await _anonymized(conn, "cdrs") == {
            "partition-before": True,
            "partition-at": False,
            "default-call-before": True,
            "default-arrived-before": True,
            "default-arrived-at": False,
        }


def test_anonymize_after_days_must_be_below_retention_days(tmp_path: Path, dsn: str) -> None:
    for days in (180, 365):
        config = CollectorConfig(
            directory=tmp_path / str(days),
            dsn=dsn,
            privacy_extra=f"anonymize_after_days = {days}\n",
        )
        toml = str(config.render())
        result = run_command("check-config", "--config", toml)
        assert result.returncode != 0
        assert (
            f"{toml}: privacy.anonymize_after_days: {days} is not below retention_days (180)"
            in result.stderr
        )
    config = CollectorConfig(
        directory=tmp_path / "ok", dsn=dsn, privacy_extra="anonymize_after_days = 179\n"
    )
    result = run_command("check-config", "--config", str(config.render()))
    assert result.returncode == 0, result.stderr


def _call(session: str, disconnect: datetime) -> Call:
    return Call(
        session_id=session,
        calling="+33612345678",
        called="+4930123456789",
        setup=disconnect - 100 * SECOND,
        connect=disconnect - 90 * SECOND,
        disconnect=disconnect,
        cause=16,
    )


async def test_the_daemon_anonymizes_on_its_timer_and_a_retransmission_stays_single(
    tmp_path: Path, dsn: str
) -> None:
    """The daemon anonymizes an old stored row and an old refused row, records that in the
    audit trail (only runs that cleared something), keeps the recent row's pseudonyms,
    and still refuses a retransmission of the anonymized record (cdr_keys is untouched)."""
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn,
        privacy_extra="anonymize_after_days = 5\npurge_interval_s = 1\n",
    )
    spool = config.directory / "spool"
    now = datetime.now(UTC).replace(microsecond=0)
    old = _call("OLD1", now - 10 * DAY)
    with running_collector(config) as collector:
        async with connected(dsn) as conn:
            await conn.execute(
                "ALTER TABLE cdrs ADD CONSTRAINT refuse_some "
                "CHECK (account IS DISTINCT FROM 'refused')"
            )
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                assert await client.send(_labelled(generic_attributes(old), "old"))
                assert await client.send(_labelled(generic_attributes(_call("NEW1", now)), "new"))
                refused = _call("REFUSED1", now - 10 * DAY)
                assert await client.send(_labelled(generic_attributes(refused), "refused"))

            async def cleared() -> bool:
                n = await conn.fetchval("SELECT count(*) FROM cdrs WHERE called_hmac IS NULL")
                lines = _rejected_lines(spool)
                return n == 1 and len(lines) == 1 and decode_rows(lines[0])[0].called_hmac is None

            await wait_for(cleared)
            rows = await conn.fetch(
                "SELECT account, called_hmac, calling_hmac, called_masked, duration_ms,"
                " disconnect_cause, called_prefix, called_country FROM cdrs ORDER BY call_time"
            )
            assert [r["account"] for r in rows] == [None, "new"]
            assert rows[0]["called_masked"] is None and rows[0]["calling_hmac"] is None
            # statistics as the recent row of the same numbers has them
            assert rows[0]["duration_ms"] == 90000
            for column in ("disconnect_cause", "called_prefix", "called_country"):
                assert rows[0][column] == rows[1][column]
            assert rows[0]["called_prefix"] and rows[0]["called_country"] == "DE"
            assert rows[1]["called_hmac"] and rows[1]["calling_hmac"] and rows[1]["called_masked"]
            (refused_row,) = decode_rows(_rejected_lines(spool)[0])
            assert (refused_row.account, refused_row.calling_hmac) == (None, None)
            assert refused_row.duration_ms == 90000

            # the switch sends the anonymized record again
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                assert await client.send(_labelled(generic_attributes(old), "old"))
            assert collector.metric("cdr_collector_records_duplicate_total") == 1
            assert await conn.fetchval("SELECT count(*) FROM cdrs") == 2
            trail = await conn.fetch(
                "SELECT rows FROM privacy_audit WHERE operation = 'anonymize' ORDER BY id"
            )
            # passes that cleared nothing (one a second) left no row
            assert sum(r["rows"] for r in trail) == 2
            assert all(r["rows"] > 0 for r in trail)
    # an anonymized row no longer matches its number
    # (both calls dialled the same number: the recent one alone is found)
    export = run_command(
        "export",
        "--config",
        str(config.directory / "collector.toml"),
        "--number",
        old.called,
        "--format",
        "json",
    )
    assert export.returncode == 0, export.stderr
    found = json.loads(export.stdout)
    assert len(found) == 1
    assert datetime.fromisoformat(found[0]["disconnect_time"]) > now - DAY
