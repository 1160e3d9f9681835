"""Fraud signals: calls per destination country, and calls to high-risk prefixes.

A running daemon with `[fraud] high_risk_prefixes_file` takes RADIUS Stops
(a real UDP client that resends until answered): each stored row says
whether its called number began with a listed prefix (`cdrs.high_risk`),
and the counters count what was committed, once, however often a switch
resent it. The list is read again on reload. Before any traffic, every
per-source series a dashboard or an alert reads exists at 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.formats.prefixes import parse_prefixes
from collector.traffic import AccountingClient, Call, generic_attributes
from tests.daemon import SECRET, CollectorConfig, connected, running_collector, wait_for

SOURCE = "sbc-test"


def call(index: int, called: str, seconds: int | None) -> Call:
    """A call to `called`, answered for `seconds` (None: busy)."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    connect = end - timedelta(seconds=seconds) if seconds is not None else None
    return Call(
        session_id=f"FRAUD{index:04d}",
        calling="+4940123456",
        called=called,
        setup=end - timedelta(seconds=(seconds or 0) + 5),
        connect=connect,
        disconnect=end,
        cause=16 if seconds is not None else 17,
    )


async def send(collector_port: int, calls: list[Call], *, bump_delay: bool = False) -> None:
    async with AccountingClient(
        ("127.0.0.1", collector_port), SECRET.encode(), timeout_s=0.5, bump_delay=bump_delay
    ) as client:
        for item in calls:
            assert await client.send(generic_attributes(item))


def test_prefix_lists_are_read_as_operators_write_them() -> None:
    text = "\ufeff# IRSF ranges, 2026-12\n+88213\n 37167  # premium\n\n+881 6\n88213\n"
    assert parse_prefixes(text) == ("88213", "37167", "8816")
    for bad, line in (("+88213\n37a\n", 2), ("1234567890123456\n", 1), ("++49\n", 1)):
        with pytest.raises(ValueError, match=f"line {line}:"):
            parse_prefixes(bad)
    with pytest.raises(ValueError, match="holds no prefix"):
        parse_prefixes("# nothing yet\n")


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_prefix_list_is_refused_naming_file_key_and_line(tmp_path: Path) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=None)
    (tmp_path / "risky").write_text("+88213\n+37-167\n")
    config.extra = f'[fraud]\nhigh_risk_prefixes_file = "{tmp_path / "risky"}"\n'
    path = config.render()
    result = check_config(path)
    assert result.returncode != 0
    assert "fraud.high_risk_prefixes_file" in result.stderr
    assert "line 2:" in result.stderr and str(path) in result.stderr
    (tmp_path / "risky").unlink()
    result = check_config(path)
    assert result.returncode != 0 and "fraud.high_risk_prefixes_file" in result.stderr


async def test_every_series_a_panel_reads_exists_at_zero_before_any_traffic(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    config.extra_clients = (
        '\n[[radius.clients]]\nname = "sbc-quiet"\naddress = "192.0.2.9"\nsecret = "s3cr3t-quiet"\n'
    )
    with running_collector(config) as collector:
        samples = collector.metrics()
    for source in (SOURCE, "sbc-quiet"):
        expected = [
            f'cdr_collector_records_stored_total{{source="{source}"}}',
            f'cdr_collector_billable_seconds_total{{source="{source}"}}',
            f'cdr_collector_unbilled_calls_total{{source="{source}"}}',
            f'cdr_collector_duration_mismatch_total{{source="{source}"}}',
            f'cdr_collector_high_risk_calls_total{{source="{source}"}}',
            f'cdr_collector_ack_latency_seconds_count{{source="{source}"}}',
            f'cdr_collector_active_calls{{source="{source}"}}',
        ]
        expected += [
            f'cdr_collector_calls_total{{outcome="{outcome}",source="{source}"}}'
            for outcome in ("answered", "busy", "no_answer", "failed", "cancelled")
        ]
        expected += [
            f'cdr_collector_packets_total{{listener="radius",outcome="{outcome}",source="{source}"}}'
            for outcome in ("accepted", "bad_authenticator", "malformed", "duplicate")
        ]
        for name in expected:
            assert samples.get(name) == 0.0, name
    assert (
        samples[
            'cdr_collector_packets_total{listener="radius",outcome="unknown_client",source="unknown"}'
        ]
        == 0.0
    )
    assert samples['cdr_collector_destination_calls_total{country="unknown"}'] == 0.0
    # every country is there before its first call (a burst to a new one shows as a rise)
    for country in ("DE", "LV", "CU", "TV"):
        assert samples[f'cdr_collector_destination_calls_total{{country="{country}"}}'] == 0.0
    for reason in ("spool_full", "spool_error", "database_unavailable", "rejected"):
        assert samples[f'cdr_collector_records_dropped_total{{reason="{reason}"}}'] == 0.0
    assert samples["cdr_collector_spool_max_bytes"] == config.spool_max_bytes


async def test_high_risk_and_destination_counts_are_of_committed_rows_once(
    tmp_path: Path, dsn: str
) -> None:
    risky = tmp_path / "high-risk-prefixes"
    risky.write_text("# satellite and premium ranges\n+88213\n37167\n")
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    config.extra = f'[fraud]\nhigh_risk_prefixes_file = "{risky}"\n'
    calls = [
        call(1, "+882130012345", 60),  # international network, listed
        call(2, "+37167123456", None),  # Latvian premium, listed, busy
        call(3, "+4930123456789", 30),
        call(4, "+4989123456789", 12),
        call(5, "+37129123456", 7),  # Latvia, not listed
    ]
    with running_collector(config) as collector:
        await send(config.radius_port, calls)
        # each sent again as a switch does when an answer is lost: stored once, counted once
        await send(config.radius_port, calls, bump_delay=True)
        await wait_for(lambda: collector.metric("cdr_collector_records_duplicate_total") >= 5)
        metric = collector.metric
        assert metric("cdr_collector_high_risk_calls_total", source=SOURCE) == 2
        assert metric("cdr_collector_high_risk_billable_seconds_total", source=SOURCE) == 60
        assert metric("cdr_collector_destination_calls_total", country="DE") == 2
        assert metric("cdr_collector_destination_billable_seconds_total", country="DE") == 42
        assert metric("cdr_collector_destination_calls_total", country="LV") == 2
        assert metric("cdr_collector_destination_billable_seconds_total", country="LV") == 7
        # +882 belongs to no country
        assert metric("cdr_collector_destination_calls_total", country="unknown") == 1
        async with connected(dsn) as conn:
            flags = {
                r["called_prefix"]: r["high_risk"]
                for r in await conn.fetch("SELECT called_prefix, high_risk FROM cdrs")
            }
        assert flags == {
            "+882": True,
            "+37167": True,
            "+4930": False,
            "+4989": False,
            "+37129": False,
        }

        # the list changes: a reload reads it again, and only new calls are judged by it
        risky.write_text("+4930\n")
        collector.signal(signal.SIGHUP)
        await wait_for(
            lambda: collector.metric("cdr_collector_config_reloads_total", result="ok") == 1
        )
        await send(config.radius_port, [call(6, "+4930987654321", 20), call(7, "+882130099999", 5)])
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 7)
        assert metric("cdr_collector_high_risk_calls_total", source=SOURCE) == 3
        assert metric("cdr_collector_high_risk_billable_seconds_total", source=SOURCE) == 80
        async with connected(dsn) as conn:
            risky_rows = await conn.fetchval("SELECT count(*) FROM cdrs WHERE high_risk")
            unflagged = await conn.fetchval("SELECT count(*) FROM cdrs WHERE NOT high_risk")
        assert (risky_rows, unflagged) == (3, 4)
