"""Access, disclosure and the privacy audit trail, through the command line.

- `export --number` finds a number written in any form, as caller and as
  callee, under an old and a new key after `keygen --rotate`, from RADIUS
  (radclient), JSON CDRs and SIP (HEPv3); it prints the billable fields and
  the other party only as stored, never a pseudonym; no match is a header
  (CSV) or `[]` (JSON); a value that is no number is a usage error.
- Every erase, export, purge, key rotation, key change a daemon loads and
  automatic retention run that deleted something is in `privacy_audit`, with
  the operating-system user and the user behind sudo; no row holds the
  number or a pseudonym. `audit --since` prints the trail from a date.
- Audit rows older than `privacy.audit_retention_days` go with the purge,
  which records itself; migration 007 keeps every existing row.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import pwd
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from collector.pipeline.privacy import Pseudonymizer
from collector.retention import cutoff_for
from collector.sink.postgres import SCHEMA_VERSION, schema_files
from tests.daemon import (
    PSEUDONYM_KEY,
    ROOT,
    CollectorConfig,
    connected,
    running_collector,
    wait_for,
)
from tests.test_number_forms import (
    json_document,
    post_json,
    privacy_region_config,
    radius_packet,
    send_radius,
    wait_rows,
)
from tests.test_sip_receiver import Call, Sender, answered, hep_flow

#: the person asking for their data
NUMBER = "+4917612345678"
#: the same number as people write it (national numbers are German in these configs)
FORMS = ("+49 176 1234 5678", "0049 176 12345678", "0176/1234 5678", "tel:+49-176-12345678")
#: whatever of the number must never be printed or kept in the trail
NUMBER_FRAGMENTS = ("4917612345678", "17612345678", "12345678")
#: the other parties: a London number, and the Berlin caller of the SIP calls
OTHER = "+442079460123"
SIP_CALLER = "+493012345678"
OTHER_FRAGMENTS = ("442079460123", "9460123", "493012345678", "3012345678")
SUDO_USER = "auditor-on-call"


def cli(*args: str, sudo_user: str | None = SUDO_USER) -> subprocess.CompletedProcess[str]:
    """`cdr-collector ARGS` as run through sudo by `sudo_user` (SUDO_USER set)."""
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    if sudo_user is not None:
        env["SUDO_USER"] = sudo_user
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )


def os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


async def audit_rows(dsn: str, operation: str | None = None) -> list[dict[str, Any]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch(
            "SELECT * FROM privacy_audit WHERE $1::text IS NULL OR operation = $1 ORDER BY id",
            operation,
        )
    return [dict(r) for r in rows]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_export_finds_a_number_in_any_form_under_old_and_new_keys_and_is_audited(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = privacy_region_config(tmp_path / "c", dsn)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with running_collector(config) as collector:
        config_path = str(collector.config_path)
        # under the first key: callee and caller, by RADIUS and JSON, in national and
        # international forms; and a call between two others
        send_radius(
            radclient,
            collector,
            [
                radius_packet("audit-r1", "0176 12345678", OTHER),
                radius_packet("audit-r2", OTHER, "+49 176 12345678"),
                radius_packet("audit-r3", OTHER, "+33612345678"),
            ],
        )
        await post_json(
            config,
            [
                json_document("0a1b2c3d-4e5f-4a6b-8c7d-000000000001", "0049 176 12345678", OTHER),
                json_document("0a1b2c3d-4e5f-4a6b-8c7d-000000000002", OTHER, "017612345678"),
                json_document("0a1b2c3d-4e5f-4a6b-8c7d-000000000003", "+33612345678", OTHER),
            ],
        )
        await wait_rows(dsn, "cdrs", 6)
        # the key rotates, recorded by keygen; the daemon loads it at SIGHUP
        rotated = cli("keygen", "--config", config_path, "--rotate")
        assert rotated.returncode == 0, rotated.stderr
        assert "rotation recorded in the audit trail" in rotated.stdout
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: "configuration reloaded" in collector.log_text())
        await wait_for(lambda: _key_changes(dsn, 2), 30.0)
        # under the new key: callee by RADIUS and SIP, caller by JSON
        send_radius(radclient, collector, [radius_packet("audit-r4", "+4917612345678", OTHER)])
        await post_json(
            config,
            [json_document("0a1b2c3d-4e5f-4a6b-8c7d-000000000004", OTHER, "0176-1234-5678")],
        )
        assert config.sip_port is not None
        sender = Sender(config.sip_port)
        try:
            sender.send(
                hep_flow(answered(Call("audit-s1@pbx", NUMBER, caller=SIP_CALLER), 2.0), start)
            )
        finally:
            sender.close()
        rows = await wait_rows(dsn, "cdrs", 9)

    new_key = (config.directory / "keys").read_text().split(":", 1)[0]
    assert new_key != "t1"
    key_lines = (config.directory / "keys").read_text().split()
    keys = tuple(
        (line.split(":", 1)[0], base64.b64decode(line.split(":", 1)[1])) for line in key_lines
    )
    mine = set(Pseudonymizer(keys).all_pseudonyms(NUMBER.lstrip("+")))
    of_number = [r for r in rows if r["called_hmac"] in mine or r["calling_hmac"] in mine]
    assert len(of_number) == 7
    assert {r["protocol"] for r in of_number} == {"radius", "json", "sip"}
    used_keys = {
        h.split(":")[0]
        for r in of_number
        for h in (r["called_hmac"], r["calling_hmac"])
        if h in mine
    }
    assert used_keys == {"t1", new_key}
    stored_pseudonyms = {h for r in rows for h in (r["called_hmac"], r["calling_hmac"]) if h}

    outputs = []
    for form in FORMS:
        result = cli("export", "--config", config_path, "--number", form)
        assert result.returncode == 0, result.stderr
        exported = csv_rows(result.stdout)
        assert len(exported) == 7, form
        outputs.append(result.stdout + result.stderr)
    by_role: dict[str, list[dict[str, str]]] = {}
    for row in exported:
        by_role.setdefault(row["role"], []).append(row)
    assert {role: len(r) for role, r in by_role.items()} == {"callee": 4, "caller": 3}
    assert {row["protocol"] for row in exported} == {"radius", "json", "sip"}
    assert {row["record"] for row in exported} == {"call"}
    # the billable fields as stored: 42 s from RADIUS, 50 s from JSON, the SIP call's 2 s
    assert sorted(int(row["duration_ms"]) for row in exported) == [2000] + [42000] * 3 + [50000] * 3
    for row in exported:
        assert row["source"] and row["answered"] == "true" and row["disconnect_time"]
    # called the London number: it appears only masked; calling: the caller's country only
    assert {(r["called_masked"], r["called_country"]) for r in by_role["caller"]} == {
        ("+442079460***", "GB")
    }
    assert {r["calling_country"] for r in by_role["callee"]} == {"GB", "DE"}
    assert {r["called_prefix"] for r in by_role["callee"]} == {"+49176"}

    as_json = cli("export", "--config", config_path, "--number", FORMS[0], "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    documents = json.loads(as_json.stdout)
    assert len(documents) == 7
    assert {d["duration_ms"] for d in documents} == {2000, 42000, 50000}
    outputs.append(as_json.stdout + as_json.stderr)

    for text in outputs:
        for pseudonym in stored_pseudonyms:
            assert pseudonym not in text
            assert pseudonym.split(":", 1)[1] not in text
        for fragment in (*OTHER_FRAGMENTS, NUMBER_FRAGMENTS[0]):
            assert fragment not in text, fragment

    # nobody's rows: a header only, or an empty array; no number at all: a usage error
    nobody = cli("export", "--config", config_path, "--number", "+4915112345000")
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.strip().splitlines() == [
        "record,role,setup_time,connect_time,disconnect_time,duration_ms,answered,"
        "disconnect_cause,sip_code,called_prefix,called_destination,called_country,"
        "called_masked,calling_country,source,protocol"
    ]
    nobody_json = cli("export", "--config", config_path, "--number", "+4915112345000",
                      "--format", "json")  # fmt: skip
    assert nobody_json.returncode == 0 and json.loads(nobody_json.stdout) == []
    bad = cli("export", "--config", config_path, "--number", "call me 5551")
    assert bad.returncode == 2
    assert "not a phone number" in bad.stderr and "5551" not in bad.stderr + bad.stdout
    assert bad.stdout == ""

    erased = cli("erase", "--config", config_path, "--number", FORMS[2], sudo_user=None)
    assert erased.returncode == 0, erased.stderr
    assert "erased 7 row(s)" in erased.stdout

    # the trail: keys loaded at start and after the reload, the rotation, six exports,
    # the erasure; who ran each; never the number nor a pseudonym
    trail = await audit_rows(dsn)
    operations = [r["operation"] for r in trail]
    assert operations.count("export") == len(FORMS) + 3
    assert operations.count("key-rotate") == 1 and operations.count("erase") == 1
    assert operations.count("keys-loaded") == 2
    me = os_user()
    for entry in trail:
        if entry["operation"] == "keys-loaded":
            assert entry["actor"] == me  # the daemon, started without sudo
            assert entry["rows"] is None
        elif entry["operation"] == "erase":
            assert entry["actor"] == me
            assert entry["rows"] == 7
            assert entry["detail"] == "number searched under 2 key(s)"
        else:
            assert entry["actor"] == f"{me} (sudo from {SUDO_USER})"
    exports = [r for r in trail if r["operation"] == "export"]
    assert [r["rows"] for r in exports] == [7] * (len(FORMS) + 1) + [0, 0]
    assert exports[0]["detail"] == "number searched under 2 key(s); format csv"
    rotation = next(r for r in trail if r["operation"] == "key-rotate")
    assert rotation["detail"] == f"new key {new_key}; key ids {new_key}, t1 (newest first)"
    shown = cli("audit", "--config", config_path)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 1 + len(trail)
    assert f"sudo from {SUDO_USER}" in shown.stdout and "key-rotate" in shown.stdout
    dump = repr(trail) + shown.stdout
    for fragment in NUMBER_FRAGMENTS:
        assert fragment not in dump
    for pseudonym in stored_pseudonyms | mine:
        assert pseudonym.split(":", 1)[1] not in dump


async def _key_changes(dsn: str, count: int) -> bool:
    return len(await audit_rows(dsn, "keys-loaded")) >= count


async def test_keygen_without_a_reachable_database_says_the_rotation_is_not_recorded(
    tmp_path: Path,
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn="postgresql://root@127.0.0.1:9/none")
    config.connect_timeout_ms = 500
    path = str(config.render())
    result = cli("keygen", "--config", path, "--rotate")
    assert result.returncode == 0, result.stderr
    assert "rotated" in result.stdout
    assert "rotation not recorded in the audit trail" in result.stderr
    assert "records the new key ids in the audit trail when it next starts" in result.stderr


# --- purge, retention of the trail, --since ---------------------------------------------

AUDIT_DAYS = 30


async def _insert_old(conn: asyncpg.Connection, operation: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO privacy_audit (at, operation, actor, rows, detail) "
        "VALUES ($1, $2, 'someone', 1, 'planted')",
        at,
        operation,
    )


async def test_purge_deletes_old_audit_rows_and_records_itself(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn,
        retention_days=90,
        privacy_extra=f"audit_retention_days = {AUDIT_DAYS}\n",
    )
    path = str(config.render())
    assert cli("migrate", "--config", path).returncode == 0
    cutoff = cutoff_for(AUDIT_DAYS)
    async with connected(dsn) as conn:
        await _insert_old(conn, "erase", cutoff - timedelta(seconds=1))
        await _insert_old(conn, "export", cutoff)
        # a stored call older than retention, in the default partition
        await conn.execute(
            "INSERT INTO cdrs (record_key, source, protocol, call_time, duration_ms, answered,"
            " received_at) VALUES ('\\x01', 'sbc-test', 'radius', $1, 0, false, $1)",
            datetime.now(UTC) - timedelta(days=200),
        )
    result = cli("purge", "--config", path)
    assert result.returncode == 0, result.stderr
    assert "deleted 1 row(s)" in result.stdout
    assert f"audit retention {AUDIT_DAYS} days: deleted 1 audit row(s)" in result.stdout
    trail = await audit_rows(dsn)
    assert [r["operation"] for r in trail] == ["export", "purge"]
    purge_row = trail[1]
    assert purge_row["rows"] == 1
    assert purge_row["actor"] == f"{os_user()} (sudo from {SUDO_USER})"
    assert "deleted 1 row(s)" in purge_row["detail"]
    assert f"audit retention {AUDIT_DAYS} days: deleted 1 audit row(s)" in purge_row["detail"]

    # --since: from a date (UTC midnight) or a time on
    since = cli("audit", "--config", path, "--since", cutoff.date().isoformat())
    assert since.returncode == 0, since.stderr
    lines = since.stdout.splitlines()
    assert lines[0].split() == ["at", "(UTC)", "operation", "actor", "rows", "detail"]
    assert [line.split()[2] for line in lines[1:]] == ["export", "purge"]
    later = cli("audit", "--config", path, "--since", (cutoff + timedelta(seconds=1)).isoformat())
    assert [line.split()[2] for line in later.stdout.splitlines()[1:]] == ["purge"]
    none = cli("audit", "--config", path, "--since", "2999-01-01")
    assert none.returncode == 0 and none.stdout.splitlines()[1:] == ["(no entries)"]
    bad = cli("audit", "--config", path, "--since", "last tuesday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr


async def test_the_daemon_records_a_retention_run_only_when_it_deleted_something(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn,
        retention_days=90,
        privacy_extra=f"audit_retention_days = {AUDIT_DAYS}\npurge_interval_s = 1\n",
    )
    with running_collector(config) as collector:
        # the first run found nothing: its counter exists, no row was written
        await wait_for(
            lambda: any(
                k.startswith("cdr_collector_retention_deleted_rows_total{")
                and 'reason="retention"' in k
                for k in collector.metrics()
            )
        )
        assert await audit_rows(dsn, "retention") == []
        async with connected(dsn) as conn:
            await _insert_old(conn, "export", datetime.now(UTC) - timedelta(days=AUDIT_DAYS + 2))

        async def retention_rows(count: int) -> bool:
            return len(await audit_rows(dsn, "retention")) >= count

        await wait_for(lambda: retention_rows(1))
        async with connected(dsn) as conn:
            await conn.execute(
                "INSERT INTO cdrs (record_key, source, protocol, call_time, duration_ms,"
                " answered, received_at) VALUES ('\\x02', 'sbc-test', 'radius', $1, 0, false, $1)",
                datetime.now(UTC) - timedelta(days=200),
            )
        await wait_for(lambda: retention_rows(2))
    runs = await audit_rows(dsn, "retention")
    assert len(runs) == 2
    assert runs[0]["rows"] == 0 and "deleted 1 audit row(s)" in runs[0]["detail"]
    assert runs[1]["rows"] == 1 and "deleted 0 audit row(s)" in runs[1]["detail"]
    assert {r["actor"] for r in runs} == {os_user()}
    assert [r["operation"] for r in await audit_rows(dsn)] == ["keys-loaded", *["retention"] * 2]


# --- migration 007 -----------------------------------------------------------------------


async def test_migration_7_keeps_existing_rows_and_export_reads_them(
    tmp_path: Path, dsn: str
) -> None:
    """A database at the version before the trail: migrated, every row kept, exported."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, retention_days=36500)
    path = str(config.render())
    pseudonym = Pseudonymizer((("t1", base64.b64decode(PSEUDONYM_KEY)),)).pseudonym(
        NUMBER.lstrip("+")
    )
    async with connected(dsn) as conn:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in schema_files():
            if version < 7:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, name)
        when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        await conn.execute(
            "INSERT INTO cdrs (record_key, source, protocol, call_time, setup_time,"
            " connect_time, disconnect_time, duration_ms, answered, disconnect_cause,"
            " called_prefix, called_country, called_masked, called_hmac, calling_country,"
            " calling_hmac, received_at) VALUES ('\\x07', 'sbc-old', 'radius', $1, $1, $1,"
            " $2, 61000, true, 16, '+4420', 'GB', '+442079460***', 't1:other', 'DE', $3, $2)",
            when,
            when + timedelta(seconds=61),
            pseudonym,
        )
        before = [dict(r) for r in await conn.fetch("SELECT * FROM cdrs")]
    export_early = cli("export", "--config", path, "--number", NUMBER)
    assert export_early.returncode == 1
    assert "run `cdr-collector migrate" in export_early.stderr
    migrated = cli("migrate", "--config", path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"from version 6 to {SCHEMA_VERSION}" in migrated.stdout
    assert "007_privacy_audit.sql" in migrated.stdout
    async with connected(dsn) as conn:
        after = [dict(r) for r in await conn.fetch("SELECT * FROM cdrs")]
        # every value kept; columns of later versions added empty
        assert [{name: row[name] for name in before[0]} for row in after] == before
        assert all(row[name] is None for row in after for name in set(after[0]) - set(before[0]))
        assert await conn.fetchval("SELECT count(*) FROM privacy_audit") == 0
    exported = cli("export", "--config", path, "--number", NUMBER, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == [
        {
            "record": "call",
            "role": "caller",
            "setup_time": "2025-03-01T09:30:00+00:00",
            "connect_time": "2025-03-01T09:30:00+00:00",
            "disconnect_time": "2025-03-01T09:31:01+00:00",
            "duration_ms": 61000,
            "answered": True,
            "disconnect_cause": 16,
            "sip_code": None,
            "called_prefix": "+4420",
            "called_destination": None,
            "called_country": "GB",
            "called_masked": "+442079460***",
            "calling_country": "DE",
            "source": "sbc-old",
            "protocol": "radius",
        }
    ]
    assert "t1:" not in exported.stdout
