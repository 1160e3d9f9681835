"""The privacy promise, tested like any other feature.

- No phone number from the traffic reaches a log line (at debug level), a
  column, the spool or a metric.
- Erasure removes every row of one number, under every configured key.
- Retention deletes what is older than `retention_days`.
- The demo prints no full number.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.receivers.radius import codec
from collector.traffic import (
    AccountingClient,
    Call,
    cisco_attributes,
    freeswitch_attributes,
    generic_attributes,
    make_calls,
)
from tests.daemon import (
    ROOT,
    SECRET,
    CollectorConfig,
    connected,
    running_collector,
    running_collector_async,
    wait_for,
)

PRIVATE_NUMBER = "+4917612345678"


def number_fragments(calls: list[Call]) -> set[str]:
    """The parts of each number that must never appear: the full digits and the last 7."""
    fragments = set()
    for call in calls:
        for number in (call.calling, call.called):
            digits = number.lstrip("+")
            fragments.add(digits)
            fragments.add(digits[-7:])
    return fragments


def assert_clean(text: str, fragments: set[str], where: str) -> None:
    leaked = sorted(f for f in fragments if f in text)
    assert not leaked, f"{len(leaked)} number fragment(s) found in {where}"


def traffic(calls: list[Call]) -> list[bytes]:
    styles = (cisco_attributes, freeswitch_attributes, generic_attributes)
    return [styles[i % 3](call) for i, call in enumerate(calls)]


async def dump_tables(dsn: str) -> str:
    async with connected(dsn) as conn:
        parts = []
        for table in ("cdrs", "open_calls", "cdr_keys"):
            rows = await conn.fetch(f"SELECT * FROM {table}")
            parts.append(repr([dict(r) for r in rows]))
    return "\n".join(parts)


async def test_no_number_reaches_logs_columns_spool_or_metrics(tmp_path: Path, dsn: str) -> None:
    calls = make_calls(300, seed=42)
    fragments = number_fragments(calls)
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="debug")
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            stats = await client.send_all(traffic(calls), concurrency=32)
            assert stats.acknowledged == len(calls)
            # a packet under the wrong secret, full of numbers, and one truncated mid-attribute
            bad = codec.encode_accounting_request(7, cisco_attributes(calls[0]), b"wrong")
            truncated = codec.encode_accounting_request(
                8, generic_attributes(calls[1]), SECRET.encode()
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(bad, collector.radius_address)
                sock.sendto(truncated[:-3], collector.radius_address)
            await asyncio.sleep(0.3)
        metrics = "\n".join(f"{k} {v}" for k, v in collector.metrics().items())
        collector.signal(signal.SIGHUP)  # the reload path logs too
        await wait_for(lambda: "configuration reloaded" in collector.log_text())
    log = collector.log_text()
    assert '"level": "debug"' in log or '"level": "info"' in log
    assert "bad Request Authenticator" in log
    assert_clean(log, fragments, "the log")
    assert_clean(metrics, fragments, "the metrics")
    assert_clean(await dump_tables(dsn), fragments, "the tables")

    # the same traffic with the database away goes to the spool: check its files
    spool_config = CollectorConfig(directory=tmp_path / "s", dsn=dsn.replace(":5432/", ":9/"))
    with running_collector(spool_config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            await client.send_all(traffic(calls[:100]), concurrency=32)
    spool_bytes = b"".join(p.read_bytes() for p in (spool_config.directory / "spool").glob("*.seg"))
    assert len(spool_bytes) > 10000
    assert_clean(spool_bytes.decode("latin-1"), number_fragments(calls[:100]), "the spool")
    assert_clean(collector.log_text(), fragments, "the spooling daemon's log")


def _call_to(number: str, index: int, when: datetime) -> Call:
    return Call(
        session_id=f"ERASE{index:04d}",
        calling="+33612345678" if index % 2 else number,
        called=number if index % 2 else "+442071234567",
        setup=when - timedelta(seconds=100),
        connect=when - timedelta(seconds=90),
        disconnect=when,
        cause=16,
    )


async def test_erase_removes_every_row_of_a_number_under_every_key(
    tmp_path: Path, dsn: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    others = make_calls(20, seed=3)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for index in range(4):
                assert await client.send(generic_attributes(_call_to(PRIVATE_NUMBER, index, now)))
            await client.send_all([generic_attributes(c) for c in others])
        # rotate the pseudonym key: new records use the new key
        keys = config.directory / "keys"
        new_key = base64.b64encode(b"a-newer-pseudonym-key-0123456789").decode()
        keys.write_text(f"t2:{new_key}\n" + keys.read_text())
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: "configuration reloaded" in collector.log_text())
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for index in range(4, 6):
                assert await client.send(
                    generic_attributes(_call_to("+49 176 12345678", index, now))
                )
    async with connected(dsn) as conn:
        before = await conn.fetchval("SELECT count(*) FROM cdrs")
        key_ids = await conn.fetch("SELECT DISTINCT split_part(called_hmac, ':', 1) AS k FROM cdrs")
    assert before == 26
    assert {r["k"] for r in key_ids} == {"t1", "t2"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector",
            "erase",
            "--config",
            str(collector.config_path),
            "--number",
            "tel:+49-176-1234-5678",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "erased 6 row(s)" in result.stdout
    assert "12345678" not in result.stdout + result.stderr
    async with connected(dsn) as conn:
        after = await conn.fetchval("SELECT count(*) FROM cdrs")
    assert after == 20


async def test_purge_deletes_calls_older_than_retention(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    now = datetime.now(UTC)
    old = make_calls(10, seed=8, now=now - timedelta(days=200))
    recent = make_calls(10, seed=9, now=now)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            await client.send_all([generic_attributes(c) for c in old + recent])
    async with connected(dsn) as conn:
        # an old daily partition, as a daemon running back then would have made it
        day = (now - timedelta(days=190)).date()
        await conn.execute(
            f"CREATE TABLE cdrs_p{day:%Y%m%d} PARTITION OF cdrs "
            f"FOR VALUES FROM ('{day}') TO ('{day + timedelta(days=1)}')"
        )
        await conn.execute(
            "INSERT INTO cdrs (record_key, source, protocol, call_time, duration_ms, answered, received_at) "
            "VALUES ('\\x01', 'old', 'radius', $1, 0, false, $1)",
            datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        )
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 21
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector",
            "purge",
            "--config",
            str(config.directory / "collector.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "dropped 1 partition(s), deleted 10 row(s)" in result.stdout
    async with connected(dsn) as conn:
        remaining = await conn.fetch("SELECT call_time FROM cdrs")
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'cdrs'::regclass"
        )
    assert len(remaining) == 10
    cutoff = now - timedelta(days=180)
    assert all(r["call_time"] > cutoff for r in remaining)
    assert partitions >= 2  # the default partition and today's at least


def test_demo_prints_stored_rows_without_a_full_number(dsn: str) -> None:
    env = dict(os.environ, CDR_COLLECTOR_DSN=dsn)
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "collector", "demo", "--calls", "120", "--seed", "77"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - began < 60
    output = result.stdout
    assert "stored: 120 rows for 120 calls" in output
    assert re.search(r"\+\d{6,}\*\*\*", output), "masked numbers are shown"
    assert_clean(
        output + result.stderr, number_fragments(make_calls(120, seed=77)), "the demo output"
    )


async def test_erased_number_does_not_come_back_from_a_spool(tmp_path: Path, dsn: str) -> None:
    from tests.faults import pausable_proxy

    now = datetime.now(UTC).replace(microsecond=0)
    others = make_calls(30, seed=13)
    async with pausable_proxy() as proxy:
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn))
        async with running_collector_async(config) as collector:
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                for index in range(2):
                    assert await client.send(
                        generic_attributes(_call_to(PRIVATE_NUMBER, index, now))
                    )
                await proxy.cut()
                await wait_for(lambda: collector.metric("cdr_collector_database_up") == 0)
                # the database is away: these wait in the spool
                for index in range(2, 5):
                    assert await client.send(
                        generic_attributes(_call_to(PRIVATE_NUMBER, index, now))
                    )
                await client.send_all([generic_attributes(c) for c in others])
            assert collector.metric("cdr_collector_spool_records") == 33
            erase_config = collector.config_path.read_text().replace(proxy.dsn_for(dsn), dsn)
            erase_path = config.directory / "erase.toml"
            erase_path.write_text(erase_config)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "collector",
                    "erase",
                    "--config",
                    str(erase_path),
                    "--number",
                    PRIVATE_NUMBER,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=ROOT,
            )
            assert result.returncode == 0, result.stderr
            assert "erased 2 row(s)" in result.stdout
            await proxy.restore()
            await wait_for(lambda: collector.metric("cdr_collector_spool_records") == 0, timeout=30)
    async with connected(dsn) as conn:
        rows = await conn.fetchval("SELECT count(*) FROM cdrs")
    assert rows == 30
