"""Upgrades never lose an acknowledged record.

The fixtures under tests/data/upgrade/ were written by released code (see
their README): a spool acknowledged while PostgreSQL was away, the rows a
database refused, and the database that release made. Each later release
must replay that spool into PostgreSQL exactly once, read those refused rows
and migrate that database without losing a row; a spool or database of a
newer release is refused with a clear message, never misread or skipped as
damage. The stored columns have one declaration (`StoredCdr`), and the
migrated tables must agree with it.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import crc32c
import pytest

from collector.config import load_config
from collector.model import STORED_FIELDS, StoredCdr
from collector.pipeline.redact import Redactor
from collector.retention import erase_rejected, purge_rejected
from collector.sink.columns import CARRIED, FIELDS, STORED
from collector.sink.postgres import SCHEMA_VERSION, schema_files
from collector.sink.spool import (
    LAYOUT_1,
    MAGIC,
    Spool,
    SpoolLayoutError,
    decode_rows,
    encode_frame,
    encode_rows,
)
from tests.daemon import CollectorConfig, connected, run_command, running_collector, wait_for

FIXTURES = Path(__file__).parent / "data" / "upgrade"
LAYOUT_1_DIR = FIXTURES / "layout-1"
#: far enough that retention never touches the fixtures' calls, whenever the tests run
KEEP_DAYS = 36500


def _json_value(value: Any) -> Any:
    """A value as the fixture files hold it (times ISO, bytes hex)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _fixture(name: str) -> Any:
    return json.loads((LAYOUT_1_DIR / name).read_text())


def _read_spool(directory: Path) -> tuple[list[StoredCdr], int]:
    spool = Spool(str(directory), 1 << 30, 1 << 20)
    spool.open()
    rows: list[StoredCdr] = []
    corrupt = 0
    for segment in spool.segments:
        result = spool.read(segment)
        corrupt += result.corrupt_frames
        for batch in result.batches:
            rows.extend(batch)
    return rows, corrupt


def _stored_view(row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in row.items() if k in columns}


# --- layout 1: what the release before named frames wrote ------------------------


def test_layout_1_segments_decode_as_that_release_read_them(tmp_path: Path) -> None:
    """Every row of the old spool, field by field as the old release decoded it;
    fields that release did not have hold their declared default."""
    shutil.copytree(LAYOUT_1_DIR / "spool", tmp_path / "spool")
    rows, corrupt = _read_spool(tmp_path / "spool")
    expected = _fixture("spooled_rows.json")
    assert corrupt == 0  # old is not damage
    assert len(rows) == len(expected) == 82
    for row, old in zip(rows, expected, strict=True):
        for name in LAYOUT_1:
            assert _json_value(getattr(row, name)) == old[name], name
        for f in FIELDS:
            if f.name not in LAYOUT_1:
                assert getattr(row, f.name) == f.column.default, f.name
    kinds = {(r.protocol, r.kind) for r in rows}
    assert {("radius", "stop"), ("radius", "start"), ("radius", "reset")} <= kinds
    assert {("sip", "stop"), ("json", "stop")} <= kinds


async def test_layout_1_spool_replays_into_postgres_exactly_once(tmp_path: Path, dsn: str) -> None:
    """An upgrade while the database was away: the new release replays the old spool and
    stores what the old release would have, each record once, even when the same
    segments come back (a crash between commit and delete)."""
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, log_level="info", retention_days=KEEP_DAYS
    )
    spool = config.directory / "spool"
    expected_cdrs = _fixture("stored_cdrs.json")
    expected_open = _fixture("stored_open_calls.json")

    async def drained() -> bool:
        return not any(spool.glob("*.seg"))

    for _round in range(2):
        spool.mkdir(parents=True, exist_ok=True)
        for segment in (LAYOUT_1_DIR / "spool").glob("*.seg"):
            shutil.copy(segment, spool / segment.name)
        with running_collector(config) as collector:
            await wait_for(drained, timeout=30)
            log_text = collector.log_text()
        assert "damaged" not in log_text
        async with connected(dsn) as conn:
            cdrs = [dict(r) for r in await conn.fetch("SELECT * FROM cdrs ORDER BY record_key")]
            open_calls = [
                dict(r) for r in await conn.fetch("SELECT * FROM open_calls ORDER BY record_key")
            ]
            keys = await conn.fetchval("SELECT count(*) FROM cdr_keys")
        assert len(cdrs) == len(expected_cdrs) == 50
        assert keys == 50
        assert len({row["record_key"] for row in cdrs}) == 50
        for row, old in zip(cdrs, expected_cdrs, strict=True):
            assert _stored_view(row, set(old)) == old
        assert len(open_calls) == len(expected_open) == 15
        for row, old in zip(open_calls, expected_open, strict=True):
            assert _stored_view(row, set(old)) == old


async def test_layout_1_refused_rows_are_read_erased_and_expired(tmp_path: Path, dsn: str) -> None:
    """The refused rows the old release kept: read as it wrote them, found by `erase`
    through the number (its pseudonym under the configured key), expired by retention."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, retention_days=KEEP_DAYS)
    config_path = config.render()
    spool = config.directory / "spool"
    spool.mkdir(mode=0o700)
    name = "rejected-20261206.json"
    shutil.copy(LAYOUT_1_DIR / name, spool / name)
    lines = (spool / name).read_bytes().splitlines()
    rows = [row for line in lines for row in decode_rows(line)]
    spooled = {r["record_key"]: r for r in _fixture("spooled_rows.json")}
    assert len(rows) == 2
    for row in rows:
        old = spooled[row.record_key.hex()]
        assert {n: _json_value(getattr(row, n)) for n in LAYOUT_1} == old
        assert row.sip_code == 486
    sip_row = next(r for r in rows if r.protocol == "sip")

    migrated = run_command("migrate", "--config", str(config_path))
    assert migrated.returncode == 0, migrated.stderr
    # the SIP busy call of the fixture went to this (fiction) number
    privacy = load_config(str(config_path)).privacy
    assert sip_row.called_hmac in Redactor(privacy).number_pseudonyms("+442079460202")
    erased = run_command("erase", "--config", str(config_path), "--number", "+44 20 7946 0202")
    assert erased.returncode == 0, erased.stderr
    assert "erased 1 row(s)" in erased.stdout
    (left,) = (spool / name).read_bytes().splitlines()
    (json_row,) = decode_rows(left)
    assert json_row.protocol == "json"

    # the JSON call is of 2026-11-30: a cutoff after it expires it, one before keeps it
    assert purge_rejected(spool, datetime(2026, 11, 30, tzinfo=UTC)) == 0
    assert purge_rejected(spool, datetime(2026, 12, 1, tzinfo=UTC)) == 1
    assert not (spool / name).exists()
    assert erase_rejected(spool, [sip_row.called_hmac or ""]) == 0


def _restore(dsn: str, dump: Path) -> None:
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(dump)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def test_layout_1_database_migrates_keeping_every_row(tmp_path: Path, dsn: str) -> None:
    """The database the old release made, migrated by this one: every row kept, and
    records the old release stored are not stored again (their keys are there)."""
    _restore(dsn, LAYOUT_1_DIR / "database.sql")
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, log_level="info", retention_days=KEEP_DAYS
    )
    config_path = config.render()
    old_versions = {1, 2}  # the migrations of the release that made it
    async with connected(dsn) as conn:
        before = await conn.fetchval("SELECT count(*) FROM cdrs")
        versions = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    assert versions == old_versions
    assert before == 50

    migrated = run_command("migrate", "--config", str(config_path))
    assert migrated.returncode == 0, migrated.stderr
    pending = [name for version, name, _sql in schema_files() if version not in old_versions]
    if pending:
        assert f"from version 2 to {SCHEMA_VERSION}" in migrated.stdout
        for name in pending:
            assert name in migrated.stdout
    else:
        assert "schema is up to date" in migrated.stdout
    async with connected(dsn) as conn:
        cdrs = [dict(r) for r in await conn.fetch("SELECT * FROM cdrs ORDER BY record_key")]
        open_calls = [
            dict(r) for r in await conn.fetch("SELECT * FROM open_calls ORDER BY record_key")
        ]
    expected_cdrs = _fixture("stored_cdrs.json")
    assert len(cdrs) == len(expected_cdrs)
    for row, old in zip(cdrs, expected_cdrs, strict=True):
        assert _stored_view(row, set(old)) == old
    assert len(open_calls) == 15

    # the same records once more, from the old spool: nothing is stored twice
    spool = config.directory / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    for segment in (LAYOUT_1_DIR / "spool").glob("*.seg"):
        shutil.copy(segment, spool / segment.name)

    async def drained() -> bool:
        return not any(spool.glob("*.seg"))

    with running_collector(config) as collector:
        await wait_for(drained, timeout=30)
        duplicates = collector.metric("cdr_collector_records_duplicate_total")
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 50
    assert duplicates == 45 + 3 + 2  # every Stop of the spool was one already stored


# --- frames and databases of a newer release ---------------------------------------


def _frame(version: int, payload: bytes, count: int) -> bytes:
    header = struct.pack("!2sBBII", MAGIC, version, 0, count, len(payload))
    return header + crc32c.crc32c(payload, crc32c.crc32c(header)).to_bytes(4, "big") + payload


def _row() -> StoredCdr:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    return StoredCdr(
        kind="stop", record_key=b"\x01" * 16, source="sbc-a", protocol="radius",
        account=None, leg="", setup_time=now, connect_time=now, disconnect_time=now,
        duration_ms=1000, answered=True, disconnect_cause=16, sip_code=None, pdd_ms=None,
        called_prefix="+4930", called_country="DE", called_destination=None,
        called_masked="+4930123***", called_hmac="t1:aa", calling_country="DE",
        calling_hmac="t1:bb", correlation_hmac=None, call_id_hmac=None, high_risk=None,
        times_derived=False,
        clock_unsynced=True, times_implausible=False, incomplete=False, event_time=now,
        received_at=now,
    )  # fmt: skip


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(_frame(9, b"whatever a later release writes", 1), id="unknown-version"),
        pytest.param(
            _frame(
                2,
                json.dumps(
                    {
                        "columns": [*STORED_FIELDS, "future_column"],
                        "rows": [[*json.loads(encode_rows([_row()]))["rows"][0], 1]],
                    }
                ).encode(),
                1,
            ),
            id="unknown-column",
        ),
    ],
)
def test_a_newer_release_spool_stops_the_start_and_is_left_alone(
    tmp_path: Path, frame: bytes
) -> None:
    """A downgrade with a non-empty spool: `run` exits 1 naming the segment, and the
    segment is untouched (never replayed as something else, never deleted as damage)."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=None)
    config_path = config.render()
    spool = config.directory / "spool"
    spool.mkdir(mode=0o700)
    ours = spool / "00000000000000000006.seg"
    ours.write_bytes(encode_frame([_row()]))
    segment = spool / "00000000000000000007.seg"
    segment.write_bytes(frame + frame)
    with pytest.raises(SpoolLayoutError):
        Spool(str(spool), 1 << 30, 1 << 20).open()
    result = run_command("run", "--config", str(config_path))
    assert result.returncode == 1
    assert "written by a newer cdr-collector" in result.stderr
    assert "00000000000000000007.seg" in result.stderr
    assert segment.read_bytes() == frame + frame
    assert ours.read_bytes() == encode_frame([_row()])
    # behind a frame this release reads (a segment one release never writes), the
    # replay meets it: it stops there, never skips it as damage
    segment.write_bytes(encode_frame([_row()]) + frame)
    reader = Spool(str(spool), 1 << 30, 1 << 20)
    if b"future_column" in frame:
        reader.open()
        with pytest.raises(SpoolLayoutError):
            reader.read(reader.segments[-1])


def test_a_layout_without_a_column_gets_its_default_and_damage_is_still_damage() -> None:
    """Named columns: a payload lacking an optional column decodes with its default;
    one lacking a required column, or with a value of the wrong type, is damage."""
    row = _row()
    full = json.loads(encode_rows([row]))
    dropped = ("clock_unsynced", "pdd_ms", "correlation_hmac")
    keep = [i for i, name in enumerate(full["columns"]) if name not in dropped]
    older = {
        "columns": [full["columns"][i] for i in keep],
        "rows": [[full["rows"][0][i] for i in keep]],
    }
    (decoded,) = decode_rows(json.dumps(older).encode())
    assert decoded.clock_unsynced is False  # the declared default, not the row's True
    assert decoded._replace(clock_unsynced=True) == row
    # the same columns in another order are the same row
    order = list(reversed(range(len(full["columns"]))))
    shuffled = {
        "columns": [full["columns"][i] for i in order],
        "rows": [[full["rows"][0][i] for i in order]],
    }
    assert decode_rows(json.dumps(shuffled).encode()) == [row]
    without_key = {
        "columns": [n for n in full["columns"] if n != "record_key"],
        "rows": [
            [v for n, v in zip(full["columns"], full["rows"][0], strict=True) if n != "record_key"]
        ],
    }
    with pytest.raises(ValueError, match="required"):
        decode_rows(json.dumps(without_key).encode())
    wrong_type = json.loads(encode_rows([row]))
    wrong_type["rows"][0][full["columns"].index("duration_ms")] = "1000"
    with pytest.raises(ValueError, match="duration_ms"):
        decode_rows(json.dumps(wrong_type).encode())
    wrong_type["rows"][0][full["columns"].index("duration_ms")] = True
    with pytest.raises(ValueError, match="duration_ms"):
        decode_rows(json.dumps(wrong_type).encode())


async def test_a_database_of_a_newer_release_is_refused(
    tmp_path: Path, dsn: str, radclient: str
) -> None:
    """`migrate` exits 1; the daemon does not write into it but keeps every record in
    its spool, acknowledged, and stores them once the schema is one it knows."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    config_path = config.render()
    assert run_command("migrate", "--config", str(config_path)).returncode == 0
    async with connected(dsn) as conn:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from-the-future.sql')",
            SCHEMA_VERSION + 1,
        )
    refused = run_command("migrate", "--config", str(config_path))
    assert refused.returncode == 1
    assert f"version {SCHEMA_VERSION + 1}, newer than this cdr-collector" in refused.stderr

    request = (
        'Acct-Status-Type = Stop\nAcct-Session-Id = "newer-schema-1"\n'
        'Called-Station-Id = "+442079460111"\nCalling-Station-Id = "+4930123456"\n'
        "Acct-Session-Time = 42\n"
    )
    with running_collector(config) as collector:
        answered = subprocess.run(
            [radclient, "-x", "-r", "3", "-t", "2", f"127.0.0.1:{config.radius_port}", "acct",
             config.secret],
            input=request, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert "Accounting-Response" in answered.stdout
        assert collector.metric("cdr_collector_records_spooled_total") == 1
        async with connected(dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM cdrs") == 0
            assert "newer than this cdr-collector" in collector.log_text()
            # the operator goes back to the release the schema belongs to (here: forgets
            # the newer migration): the spooled record is stored, once
            await conn.execute(
                "DELETE FROM schema_migrations WHERE version = $1", SCHEMA_VERSION + 1
            )

            async def stored() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM cdrs") == 1)

            await wait_for(stored, timeout=20)


async def test_migrate_says_what_it_changed(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    config_path = config.render()
    first = run_command("migrate", "--config", str(config_path))
    assert first.returncode == 0, first.stderr
    assert f"schema migrated from version 0 to {SCHEMA_VERSION}:" in first.stdout
    for _version, name, _sql in schema_files():
        assert f"  {name}: " in first.stdout
    again = run_command("migrate", "--config", str(config_path))
    assert again.returncode == 0
    assert (
        again.stdout.strip() == f"schema is up to date (version {SCHEMA_VERSION}); nothing changed"
    )


# --- one declaration -----------------------------------------------------------------

_SQL_TYPES = {
    "text": "text",
    "bytea": "bytea",
    "timestamptz": "timestamp with time zone",
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "boolean": "boolean",
}


async def test_migrated_tables_hold_exactly_the_declared_columns(tmp_path: Path, dsn: str) -> None:
    """Adding a field to StoredCdr without its migration (or a column without its
    declaration) fails here, not in a carrier's database."""
    config_path = CollectorConfig(directory=tmp_path / "c", dsn=dsn).render()
    assert run_command("migrate", "--config", str(config_path)).returncode == 0
    async with connected(dsn) as conn:
        columns: dict[str, dict[str, str]] = {}
        for row in await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('cdrs', 'open_calls') AND table_schema = 'public'"
        ):
            columns.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    cdrs = {f.table_column: _SQL_TYPES[f.column.sql] for f in STORED}
    assert columns["cdrs"] == {
        **cdrs,
        "call_time": "timestamp with time zone",
        "stored_at": "timestamp with time zone",
    }
    open_calls = {f.table_column: _SQL_TYPES[f.column.sql] for f in CARRIED}
    assert columns["open_calls"] == {
        **open_calls,
        "opened_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    }
