"""`keygen --retire-unused`: a pseudonym key no stored row uses any more leaves the key file.

A key kept in the file links every row pseudonymized under it back to phone
numbers, in the live database and in every old backup of it. Once retention
has removed a key's last row, the key has no use left but that: the command
removes it. The tests store rows under two keys with the real daemon in a real
PostgreSQL (in `cdrs` and in `open_calls`), check that both keys stay while
rows use them and that a key nothing uses goes, then age the old key's rows,
purge them with `cdr-collector purge` and see the old key go too. Rows waiting
in the spool (and refused rows kept there) hold a key as well as the database.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.formats.keys import parse_keys, write_private
from collector.receivers.radius import dictionary as d
from collector.retention import plan_key_retirement
from collector.sink.spool import Spool, encode_rows
from collector.traffic import AccountingClient, Call, generic_attributes
from tests.daemon import (
    PSEUDONYM_KEY,
    SECRET,
    CollectorConfig,
    connected,
    free_port,
    run_command,
    running_collector,
    wait_for,
)
from tests.test_sink import stored

UNUSED_KEY = base64.b64encode(b"U" * 32).decode()


def _call(session: str, when: datetime) -> Call:
    return Call(
        session_id=session,
        calling="+33612345678",
        called="+4930123456789",
        setup=when - timedelta(seconds=100),
        connect=when - timedelta(seconds=90),
        disconnect=when,
        cause=16,
    )


def _key_ids(path: Path) -> list[str]:
    return [key_id for key_id, _ in parse_keys(path.read_text())]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _key_ids_in(dsn: str, table: str) -> set[str]:
    async with connected(dsn) as conn:
        rows = await conn.fetch(
            f"SELECT split_part(calling_hmac, ':', 1) AS k FROM {table}"
            f" UNION SELECT split_part(called_hmac, ':', 1) FROM {table}"
        )
    return {row["k"] for row in rows}


async def test_keys_go_once_no_row_uses_them_and_not_before(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    path = config.render()
    keys = config.directory / "keys"
    # t1 (the daemon's) and an older t0 that no row will ever use
    write_private(keys, f"t1:{PSEUDONYM_KEY}\nt0:{UNUSED_KEY}\n")
    assert run_command("migrate", "--config", str(path)).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(generic_attributes(_call("UNDER-T1", now)))
            assert await client.send(generic_attributes(_call("OPEN-T1", now), d.STATUS_START))
        rotated = run_command("keygen", "--rotate", "--config", str(path))
        assert rotated.returncode == 0, rotated.stderr
        newest = _key_ids(keys)[0]
        assert newest not in ("t1", "t0")
        collector.signal(signal.SIGHUP)  # the daemon reads the key file itself: SIGHUP
        await wait_for(lambda: "configuration reloaded" in collector.log_text())
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(generic_attributes(_call("UNDER-NEW", now)))
    assert await _key_ids_in(dsn, "cdrs") == {"t1", newest}
    assert await _key_ids_in(dsn, "open_calls") == {"t1"}

    first = run_command("keygen", "--retire-unused", "--config", str(path))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:3] == [
        "retired t0: no stored row uses it",
        f"kept {newest}: the newest key: new records use it",
        "kept t1: rows in cdrs, open_calls use it",
    ]
    assert _key_ids(keys) == [newest, "t1"]
    assert _mode(keys) == 0o600
    assert [name for name in os.listdir(keys.parent) if name.startswith("keys")] == ["keys"]

    # retention: the t1 rows (a stored call and an open one) are older than 180 days
    long_ago = now - timedelta(days=200)
    async with connected(dsn) as conn:
        await conn.execute(
            "UPDATE cdrs SET call_time = $1, received_at = $1 WHERE calling_hmac LIKE 't1:%'",
            long_ago,
        )
        await conn.execute(
            "UPDATE open_calls SET opened_at = $1, updated_at = $1, received_at = $1",
            long_ago,
        )
    again = run_command("keygen", "--retire-unused", "--config", str(path))
    assert again.returncode == 0, again.stderr
    assert "kept t1: rows in cdrs, open_calls use it" in again.stdout  # still stored
    assert _key_ids(keys) == [newest, "t1"]
    purged = run_command("purge", "--config", str(path))
    assert purged.returncode == 0, purged.stderr
    assert await _key_ids_in(dsn, "cdrs") == {newest}
    assert await _key_ids_in(dsn, "open_calls") == set()

    last = run_command("keygen", "--retire-unused", "--config", str(path))
    assert last.returncode == 0, last.stderr
    assert last.stdout.splitlines()[:2] == [
        "retired t1: no stored row uses it",
        f"kept {newest}: the newest key: new records use it",
    ]
    assert _key_ids(keys) == [newest]
    assert _mode(keys) == 0o600
    # each retirement is in the audit trail: who, which key ids went and which stayed
    assert "retirement recorded in the audit trail" in first.stdout
    async with connected(dsn) as conn:
        trail = await conn.fetch(
            "SELECT actor, rows, detail FROM privacy_audit WHERE operation = 'key-retire'"
            " ORDER BY id"
        )
    assert [(row["rows"], row["detail"]) for row in trail] == [
        (None, f"retired key ids t0; kept key ids {newest}, t1 (newest first)"),
        (None, f"retired key ids t1; kept key ids {newest} (newest first)"),
    ]
    assert all(row["actor"] for row in trail)
    # the file still configures a daemon
    assert run_command("check-config", "--config", str(path)).returncode == 0
    nothing = run_command("keygen", "--retire-unused", "--config", str(path))
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.splitlines() == [
        f"kept {newest}: the newest key: new records use it",
        f"{keys}: nothing retired",
    ]


async def test_rows_in_the_spool_keep_their_key(tmp_path: Path, dsn: str) -> None:
    """Rows waiting in a spool segment, and refused rows kept beside it, hold a key too."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    path = config.render()
    keys = config.directory / "keys"
    write_private(keys, f"t2:{UNUSED_KEY}\nt1:{PSEUDONYM_KEY}\nt0:{UNUSED_KEY}\n")
    assert run_command("migrate", "--config", str(path)).returncode == 0
    now = datetime.now(UTC)
    spool = Spool(str(config.directory / "spool"), 1 << 20, 1 << 20)
    spool.open()
    spool.append([stored(b"\x01", "stop", calling_hmac="t1:00ff", event_time=now)])
    spool.close()
    refused = stored(b"\x02", "stop", called_hmac="t0:00ee", event_time=now, received_at=now)
    (config.directory / "spool" / f"rejected-{now:%Y%m%d}.json").write_bytes(
        encode_rows([refused]) + b"\n"
    )
    result = run_command("keygen", "--retire-unused", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:4] == [
        "kept t2: the newest key: new records use it",
        "kept t1: rows in spool use it",
        "kept t0: rows in refused rows use it",
        f"{keys}: nothing retired",
    ]
    assert _key_ids(keys) == ["t2", "t1", "t0"]


def test_without_the_database_nothing_changes_and_it_says_why(tmp_path: Path) -> None:
    dsn = f"postgresql://root@127.0.0.1:{free_port()}/cdr"
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, connect_timeout_ms=1000)
    path = config.render()
    keys = config.directory / "keys"
    write_private(keys, f"t1:{PSEUDONYM_KEY}\nt0:{UNUSED_KEY}\n")
    before = keys.read_bytes()
    result = run_command("keygen", "--retire-unused", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(r"^cdr-collector: cannot reach the database: \w+", result.stderr, re.M)
    assert keys.read_bytes() == before

    no_database = replace(config, dsn=None)
    no_database.render()
    result = run_command("keygen", "--retire-unused", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{path}: database: no [database] section"
    assert keys.read_bytes() == before


def test_retire_unused_and_rotate_exclude_each_other(tmp_path: Path) -> None:
    path = CollectorConfig(directory=tmp_path / "c", dsn=None).render()
    result = run_command("keygen", "--rotate", "--retire-unused", "--config", str(path))
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_the_newest_key_stays_even_when_no_row_uses_it() -> None:
    plan = plan_key_retirement(["k3", "k2", "k1"], {"k1": {"cdrs"}})
    assert plan.retired == ["k2"]
    assert plan.kept == [
        ("k3", "the newest key: new records use it"),
        ("k1", "rows in cdrs use it"),
    ]
