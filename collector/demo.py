"""`cdr-collector demo`: the whole path in one command, for a newcomer.

It writes a throw-away configuration (fresh keys, free local ports) into a
temporary directory, starts the real daemon in this process against the
local PostgreSQL (database `cdr_demo`, created if missing) or, when no
server answers, against its spool alone, sends a realistic burst of Cisco,
FreeSWITCH and plain RFC 2866 accounting with retransmissions, then prints
what was stored (redacted, as it is in the table) and the key metrics, and
stops. It never prints a full phone number: the rows come back from the
database, where none exists.
"""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from collector.config import load_config
from collector.formats.keys import format_keys, format_record_key, new_secret, write_private
from collector.formats.rate_deck import format_rate_deck
from collector.logs import configure_logging
from collector.receivers.radius import dictionary as d
from collector.service import Service
from collector.traffic import (
    AccountingClient,
    cisco_attributes,
    freeswitch_attributes,
    generic_attributes,
    make_calls,
)

DEMO_SECRET = "demo-secret"  # noqa: S105 - a throw-away demo on loopback


def default_dsn() -> str:
    """$CDR_COLLECTOR_DSN, else the local server as the current user, database cdr_demo."""
    return (
        os.environ.get("CDR_COLLECTOR_DSN")
        or f"postgresql://{getpass.getuser()}@127.0.0.1:5432/cdr_demo"
    )


async def _database_unreachable(dsn: str) -> str | None:
    """Why the demo cannot use `dsn` (one line, no credentials), or None when it can."""
    from collector.sink.postgres import ensure_database

    try:
        await ensure_database(dsn, 3)
        conn = await asyncpg.connect(dsn, timeout=3)
    except TimeoutError:
        return "no answer within 3 s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except asyncpg.PostgresError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    await conn.close()
    return None


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: the demo's destinations, longest prefix wins
DEMO_RATE_DECK = (
    ("49", "Germany"),
    ("4915", "Germany Mobile"),
    ("4916", "Germany Mobile"),
    ("4917", "Germany Mobile"),
    ("44", "United Kingdom"),
    ("447", "United Kingdom Mobile"),
    ("1", "North America"),
)


def write_demo_config(directory: Path, dsn: str | None) -> Path:
    """A complete configuration for the demo, with fresh keys, on free ports."""
    write_private(directory / "keys", format_keys([("demo1", new_secret())]))
    write_private(directory / "record-key", format_record_key(new_secret()))
    (directory / "prefixes.csv").write_text(format_rate_deck(DEMO_RATE_DECK), encoding="utf-8")
    database = f'[database]\ndsn = "{dsn}"\nbatch_max_delay_ms = 5\n\n' if dsn else ""
    text = f"""{database}[spool]
directory = "{directory / "spool"}"

[metrics]
listen = "127.0.0.1:{_free_port(socket.SOCK_STREAM)}"

[logging]
level = "warning"
format = "console"

[privacy]
key_file = "keys"
record_key_file = "record-key"
rate_deck = "prefixes.csv"
mask_digits = 3

[radius]
listen = ["127.0.0.1:{_free_port(socket.SOCK_DGRAM)}"]

[[radius.clients]]
name = "demo-cisco-gw"
address = "127.0.0.1/32"
secret = "{DEMO_SECRET}"
profile = "auto"
"""
    path = directory / "collector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _quantile(latencies: list[float], q: float) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_demo(calls: int = 200, dsn: str | None = None, seed: int | None = None) -> int:
    """Run the demo; return the process exit status."""
    dsn = dsn or default_dsn()
    print("cdr-collector demo")
    why = await _database_unreachable(dsn)
    reachable = why is None
    if reachable:
        print(f"  database: {dsn.rsplit('@', 1)[-1]}")
    else:
        print(
            f"  database: {dsn.rsplit('@', 1)[-1]} not reachable ({why});"
            " records go to the spool only"
        )
    with tempfile.TemporaryDirectory(prefix="cdr-collector-demo-") as tmp:
        config = load_config(str(write_demo_config(Path(tmp), dsn if reachable else None)))
        configure_logging(config.logging.level, config.logging.format)
        service = Service(config)
        await service.start()
        try:
            radius = service.receiver("radius")
            assert radius is not None
            host, port = radius.addresses[0]
            print(
                f"  daemon: RADIUS accounting on {host}:{port}, metrics on "
                f"http://{service.metrics_address[0]}:{service.metrics_address[1]}/metrics"
                if service.metrics_address
                else f"  daemon: RADIUS on {host}:{port}"
            )
            started_at = datetime.now(UTC)
            burst = make_calls(calls, seed=seed)
            requests = []
            for index, call in enumerate(burst):
                style = index % 3
                if style == 0:
                    requests.append(cisco_attributes(call))
                elif style == 1:
                    requests.append(freeswitch_attributes(call))
                else:
                    requests.append(generic_attributes(call))
            # a few switches resend: every tenth call is sent twice, as a new packet
            resent = [requests[i] + b"" for i in range(0, len(requests), 10)]
            resent = [r + bytes((d.ACCT_DELAY_TIME, 6)) + (3).to_bytes(4, "big") for r in resent]
            began = time.monotonic()
            async with AccountingClient((host, port), DEMO_SECRET.encode(), sockets=2) as client:
                stats = await client.send_all(requests + resent, concurrency=64)
            elapsed = time.monotonic() - began
            print(
                f"  sent {stats.sent} Accounting-Requests for {calls} calls "
                f"({len(resent)} of them resent as new packets) in {elapsed:.2f} s; "
                f"{stats.acknowledged} acknowledged, p50 {_quantile(stats.latencies, 0.5) * 1000:.1f} ms, "
                f"p99 {_quantile(stats.latencies, 0.99) * 1000:.1f} ms"
            )
            if reachable:
                await _show_rows(dsn, started_at, calls)
            else:
                assert service.spool is not None
                print(
                    f"  spool: {service.spool.records} records waiting for a database "
                    f"(already redacted) in {service.spool.size} bytes"
                )
            _show_metrics(service)
        finally:
            await service.stop()
    return 0


async def _show_rows(dsn: str, since: datetime, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval(
            "SELECT count(*) FROM cdrs WHERE source = 'demo-cisco-gw' AND received_at >= $1", since
        )
        rows = await conn.fetch(
            "SELECT call_time, duration_ms, answered, disconnect_cause, called_prefix, "
            "called_destination, called_country, called_masked, called_hmac, calling_country, "
            "calling_hmac FROM cdrs WHERE source = 'demo-cisco-gw' AND received_at >= $1 "
            "ORDER BY call_time DESC LIMIT 8",
            since,
        )
        summary = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE answered) AS answered, "
            "round(avg(duration_ms) FILTER (WHERE answered) / 1000.0, 1) AS acd_s, "
            "round(sum(duration_ms) / 60000.0, 1) AS minutes "
            "FROM cdrs WHERE source = 'demo-cisco-gw' AND received_at >= $1",
            since,
        )
    finally:
        await conn.close()
    assert summary is not None
    print(f"  stored: {total} rows for {calls} calls (one per call, retransmissions merged)")
    print(
        f"  ASR {100 * summary['answered'] / max(1, total):.0f} %, ACD {summary['acd_s']} s, "
        f"{summary['minutes']} billable minutes"
    )
    print()
    header = f"  {'call_time (UTC)':19}  {'dur s':>6}  {'Q.850':>5}  {'prefix':8}  {'destination':22}  {'cc':2}  {'called_masked':16}  {'called_hmac':18}  {'calling':7}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for row in rows:
        print(
            f"  {row['call_time']:%Y-%m-%d %H:%M:%S}  {row['duration_ms'] / 1000:6.1f}  "
            f"{row['disconnect_cause'] if row['disconnect_cause'] is not None else '-':>5}  "
            f"{row['called_prefix'] or '-':8}  {(row['called_destination'] or '-')[:22]:22}  "
            f"{row['called_country'] or '-':2}  {row['called_masked'] or '-':16}  "
            f"{(row['called_hmac'] or '-')[:17]}…  {row['calling_country'] or '-':7}"
        )
    print()


def _show_metrics(service: Service) -> None:
    text = service.telemetry.exposition().decode()
    wanted = (
        "cdr_collector_packets_total",
        "cdr_collector_records_stored_total",
        "cdr_collector_records_duplicate_total",
        "cdr_collector_records_spooled_total",
        "cdr_collector_calls_total",
        "cdr_collector_database_up",
        "cdr_collector_ack_latency_seconds_count",
    )
    print("  metrics:")
    for line in text.splitlines():
        if line.startswith(wanted) and not line.endswith(" 0.0"):
            print("    " + line)
