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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from collector.formats.keys import write_private
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
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
    free_port,
    running_collector,
    running_collector_async,
    wait_for,
)
from tests.test_json_cdr import json_section

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
    # the spool writes its times as epoch microseconds (16 digits), in which a 7-digit
    # fragment turns up by chance; a number is at most 15 digits, so those runs go first
    spool_text = re.sub(rb"\d{16,}", b"#", spool_bytes).decode("latin-1")
    assert_clean(spool_text, number_fragments(calls[:100]), "the spool")
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
        write_private(keys, f"t2:{new_key}\n" + keys.read_text())
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


async def test_an_erased_number_stays_erased_after_a_key_rotation(tmp_path: Path, dsn: str) -> None:
    """Records of an erased number still on their way come back under a new key: dropped."""
    now = datetime.now(UTC).replace(microsecond=0)
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(generic_attributes(_call_to(PRIVATE_NUMBER, 1, now)))
        result = subprocess.run(
            [sys.executable, "-m", "collector", "erase", "--config", str(collector.config_path),
             "--number", PRIVATE_NUMBER],
            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "erased 1 row(s)" in result.stdout
        # the pseudonym key rotates after the erasure
        keys = config.directory / "keys"
        new_key = base64.b64encode(b"a-newer-pseudonym-key-0123456789").decode()
        write_private(keys, f"t2:{new_key}\n" + keys.read_text())
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: "configuration reloaded" in collector.log_text())
        await wait_for(lambda: "erasure tags loaded" in collector.log_text())
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            # a late leg of the erased number (a switch's retransmission queue, a
            # FreeSWITCH error-log replay), as callee and as caller, and another call
            assert await client.send(generic_attributes(_call_to(PRIVATE_NUMBER, 3, now)))
            assert await client.send(generic_attributes(_call_to(PRIVATE_NUMBER, 4, now)))
            assert await client.send(generic_attributes(_call_to("+442079460999", 5, now)))
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT called_hmac, calling_hmac FROM cdrs")
    assert len(rows) == 1  # only the other call
    assert rows[0]["called_hmac"].startswith("t2:")


async def test_purge_deletes_calls_older_than_retention(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    now = datetime.now(UTC)
    old = make_calls(10, seed=8, now=now - timedelta(days=200))
    recent = make_calls(10, seed=9, now=now)
    with running_collector(config) as collector:
        # the daemon's own first retention pass (at start) must not meet the old calls:
        # this test is about the command
        await wait_for(
            lambda: any(
                k.startswith('cdr_collector_retention_deleted_rows_total{reason="retention"')
                for k in collector.metrics()
            )
        )
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
    """The demo's report, in its order, with its counts: every request answered, one
    row per call (the resent ones merged), the newest calls first, no full number."""
    env = dict(os.environ, CDR_COLLECTOR_DSN=dsn)
    result = subprocess.run(
        [sys.executable, "-m", "collector", "demo", "--calls", "120", "--seed", "77"],
        capture_output=True,
        text=True,
        timeout=300,  # a hung demo, not a slow one
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    sections = ("  database:", "  daemon:", "  sent ", "  stored:", "  metrics:")
    starts = [next(i for i, line in enumerate(output.splitlines()) if line.startswith(s))
              for s in sections]  # fmt: skip
    assert starts == sorted(starts), output
    assert "sent 132 Accounting-Requests for 120 calls (12 of them resent" in output
    assert "; 132 acknowledged," in output
    assert "stored: 120 rows for 120 calls" in output
    shown = re.findall(r"^  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  ", output, re.MULTILINE)
    assert len(shown) == 8 and shown == sorted(shown, reverse=True)
    metrics = dict(line.split() for line in output.split("  metrics:\n", 1)[1].splitlines())
    assert metrics['cdr_collector_records_stored_total{source="demo-cisco-gw"}'] == "120.0"
    assert metrics["cdr_collector_records_duplicate_total"] == "12.0"
    calls = [float(v) for k, v in metrics.items() if k.startswith("cdr_collector_calls_total")]
    assert sum(calls) == 120
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


# -- vendor text fields: `leg` and `account` -----------------------------------------------

#: what a switch may put in a free-text field that ends up in `leg` or `account`
HOSTILE_TEXTS = (
    "sip:+4930199999999@192.0.2.9",
    "030_1999_9999",
    "030,1999,9999",
    "alice%40example.com",
    "alice\uff20example.com",  # a full-width at sign
    "0301999\uff19\uff19\uff19\uff19",  # full-width digits
    "2001:db8::99",
    "4a9b3c0d1e2f3g4h5i",
)
HOSTILE_NEEDLES = ("1999", "9999", "alice", "192.0.2", "2001:db8", "sip:", "@", "\uff20", "\uff19")


def _hostile_call(index: int, when: datetime, leg: str = "originate") -> Call:
    return Call(
        session_id=f"HOSTILE{index:04d}",
        calling="+33612345678",
        called="+442071234567",
        setup=when - timedelta(seconds=100),
        connect=when - timedelta(seconds=90),
        disconnect=when,
        cause=16,
        leg=leg,
    )


def _with_user_name(attributes: bytes, user_name: str) -> bytes:
    return attributes + codec.encode_attribute(d.USER_NAME, user_name.encode())


def _with_account_code(attributes: bytes, code: str) -> bytes:
    return attributes + codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, f"account-code={code}".encode())


async def test_vendor_text_fields_never_store_numbers_uris_or_addresses(
    tmp_path: Path, dsn: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    port = free_port(socket.SOCK_STREAM)
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, json_port=port, extra=json_section(port)
    )
    packets = []
    for index, text in enumerate(HOSTILE_TEXTS):
        # Cisco: h323-call-origin becomes the leg, Cisco-AVPair account-code the account
        call = _hostile_call(index, now, leg=text)
        packets.append(_with_account_code(cisco_attributes(call), text))
        # a Start that stays open: the same fields in open_calls
        start = _hostile_call(100 + index, now, leg=text)
        packets.append(_with_account_code(cisco_attributes(start, status=d.STATUS_START), text))
        # generic and FreeSWITCH: User-Name becomes the account
        packets.append(_with_user_name(generic_attributes(_hostile_call(200 + index, now)), text))
        fs_packet = freeswitch_attributes(_hostile_call(300 + index, now))
        packets.append(
            fs_packet.replace(
                codec.encode_attribute(d.USER_NAME, b"trunk-a"),
                codec.encode_attribute(d.USER_NAME, text.encode()),
            )
        )
    # and a call whose fields are what they should be: kept
    packets.append(_with_account_code(cisco_attributes(_hostile_call(999, now, "answer")), "acme"))
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for packet in packets:
                assert await client.send(packet)
        async with aiohttp.ClientSession() as session:
            for index, text in enumerate(HOSTILE_TEXTS):
                document = {
                    "variables": {
                        "uuid": f"5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7{index:03d}",
                        "direction": text,
                        "accountcode": text,
                        "caller_id_number": "+33612345678",
                        "destination_number": "+442071234567",
                        "start_epoch": str(int(now.timestamp()) - 60),
                        "answer_epoch": str(int(now.timestamp()) - 50),
                        "end_epoch": str(int(now.timestamp())),
                        "billsec": "50",
                        "hangup_cause_q850": "16",
                    }
                }
                async with session.post(f"http://127.0.0.1:{port}/cdr", json=document) as response:
                    assert response.status == 200, await response.text()
    async with connected(dsn) as conn:
        stored = await conn.fetch("SELECT protocol, account, leg FROM cdrs")
        open_calls = await conn.fetch("SELECT account, leg FROM open_calls")
    assert len(stored) == 4 * len(HOSTILE_TEXTS) + 1
    assert len(open_calls) == len(HOSTILE_TEXTS)
    for row in [*stored, *open_calls]:
        for column in ("account", "leg"):
            value = row[column] or ""
            for needle in HOSTILE_NEEDLES:
                assert needle not in value, (column, value)
    # what the fields are for still works: a known leg and a plain label are kept,
    # an unknown leg is "other" (JSON and the other profiles have no leg: "")
    assert {row["leg"] for row in stored} == {"", "other", "answer"}
    assert {row["leg"] for row in open_calls} == {"other"}
    assert {row["account"] for row in [*stored, *open_calls]} == {None, "acme"}


async def test_a_number_in_other_digits_is_stored_and_erased_as_the_same_number(
    tmp_path: Path, dsn: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    ascii_digits = PRIVATE_NUMBER.lstrip("+")
    forms = (
        "+" + "".join(chr(0xFF10 + int(c)) for c in ascii_digits),  # full-width
        "+" + "".join(chr(0x0660 + int(c)) for c in ascii_digits),  # Arabic-Indic
        "00" + "".join(chr(0x06F0 + int(c)) for c in ascii_digits),  # Extended Arabic-Indic
    )
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for index, form in enumerate(forms):
                call = _call_to(PRIVATE_NUMBER, 2 * index + 1, now)  # odd: a call to it
                sent = codec.encode_attribute(d.CALLED_STATION_ID, ("00" + ascii_digits).encode())
                attributes = generic_attributes(call).replace(
                    sent, codec.encode_attribute(d.CALLED_STATION_ID, form.encode())
                )
                assert form.encode() in attributes
                assert await client.send(attributes)
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT called_masked, called_country FROM cdrs")
    assert len(rows) == len(forms)
    for row in rows:
        assert row["called_masked"] == PRIVATE_NUMBER[:-3] + "***"
        assert row["called_country"] == "DE"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector",
            "erase",
            "--config",
            str(config.directory / "collector.toml"),
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
    assert f"erased {len(forms)} row(s)" in result.stdout
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM cdrs") == 0
