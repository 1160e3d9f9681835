"""Benchmark: the database path alone, the writer's COPY + idempotent insert.

Recreates the database cdr_bench_db on the local PostgreSQL, then commits
redacted Stop rows (each a new call) through `PostgresSink.write` in batches
of `--batch` rows, exactly as the writer does, and prints rows/s and the
commit time per batch. A second pass sends the same rows again: every one is
a duplicate and nothing is stored (the cost of retransmissions and spool
replays).

`--protocol sip` makes the rows SIP rows (two in three answered, each with a
Call-ID hash) and `--reconcile` has the sink keep the answered ones for
revenue assurance (`reconcile_pending`), as with a [reconcile] section.

`--connections N` commits from N connections at once (the rows dealt out
among them), as N collectors or worker processes do: the single database's
ceiling. Besides rows/s it prints the CPU PostgreSQL's processes spent per
row (from /proc) and this client's, so the rate a core of PostgreSQL can take
is known whatever else the machine runs.

    python bench/bench_db.py [--rows 200000] [--batch 1000] [--connections 1] [--protocol sip] [--reconcile]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_radius import postgres_cpu_seconds  # bench/bench_radius.py, beside this script

from collector.config import DatabaseConfig, ReconcileConfig
from collector.model import StoredCdr
from collector.sink.postgres import PostgresSink

ADMIN_DSN = os.environ.get("CDR_BENCH_DSN", "postgresql://root@127.0.0.1:5432/postgres")


def make_rows(count: int, protocol: str = "radius") -> list[StoredCdr]:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for n in range(count):
        setup = now - timedelta(seconds=n % 3600)
        answered = n % 3 != 0
        key = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16).digest()
        rows.append(
            StoredCdr(
                kind="stop",
                record_key=key,
                source=f"sbc-{n % 4}",
                protocol=protocol,
                account=None,
                leg="originate",
                setup_time=setup,
                connect_time=setup + timedelta(seconds=4) if answered else None,
                disconnect_time=setup + timedelta(seconds=64),
                duration_ms=60_000 if answered else 0,
                answered=answered,
                disconnect_cause=16 if answered else 17,
                sip_code=None,
                pdd_ms=None,
                called_prefix="+4420",
                called_country="GB",
                called_destination=None,
                called_masked="+44207946****",
                called_hmac="b1:" + key.hex(),
                calling_country="DE",
                calling_hmac="b1:" + key[::-1].hex(),
                correlation_hmac=None,
                # billing rows carry their Call-ID's hash (the reconcile index holds them)
                call_id_hmac=key[::-1].hex(),
                high_risk=False,
                times_derived=False,
                clock_unsynced=False,
                times_implausible=False,
                incomplete=False,
                event_time=setup + timedelta(seconds=64),
                received_at=now,
            )
        )
    return rows


async def write_slice(sink: PostgresSink, rows: list[StoredCdr], batch: int) -> int:
    stored = 0
    for start in range(0, len(rows), batch):
        result = await sink.write(rows[start : start + batch])
        stored += len(result.stored)
    return stored


async def write_all(
    sinks: list[PostgresSink], rows: list[StoredCdr], batch: int
) -> tuple[float, int, str]:
    """Commit `rows` through every sink at once; (seconds, rows stored, CPU per row)."""
    slices = [rows[n :: len(sinks)] for n in range(len(sinks))]
    database_before, client_before = postgres_cpu_seconds(), time.process_time()
    began = time.perf_counter()
    counts = await asyncio.gather(
        *(write_slice(sink, part, batch) for sink, part in zip(sinks, slices, strict=True))
    )
    elapsed = time.perf_counter() - began
    database = (postgres_cpu_seconds() - database_before) / len(rows) * 1e6
    client = (time.process_time() - client_before) / len(rows) * 1e6
    return elapsed, sum(counts), f"CPU a row: PostgreSQL {database:.1f} µs, client {client:.1f} µs"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--protocol", choices=("radius", "sip"), default="radius")
    parser.add_argument("--reconcile", action="store_true")
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()

    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute("DROP DATABASE IF EXISTS cdr_bench_db WITH (FORCE)")
    await admin.execute("CREATE DATABASE cdr_bench_db")
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/cdr_bench_db"

    sinks = [
        PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30) for _ in range(args.connections)
    ]
    for sink in sinks:
        await sink.connect()
    try:
        if args.reconcile:
            for sink in sinks:
                sink.check_calls(ReconcileConfig())
        rows = make_rows(args.rows, args.protocol)
        # the day partitions exist before the clock starts (only the first batch would pay)
        await write_all(sinks[:1], rows[:1], 1)
        rows = rows[1:]
        batches = -(-len(rows) // args.batch)
        elapsed, stored, cpu = await write_all(sinks, rows, args.batch)
        print(
            f"new rows:   {stored} stored in {elapsed:.2f} s = {stored / elapsed:,.0f} rows/s "
            f"over {args.connections} connection(s) "
            f"({elapsed / batches * args.connections * 1000:.1f} ms per {args.batch}-row batch); "
            f"{cpu}"
        )
        elapsed, stored, cpu = await write_all(sinks, rows, args.batch)
        print(
            f"duplicates: {len(rows)} sent again in {elapsed:.2f} s = "
            f"{len(rows) / elapsed:,.0f} rows/s, {stored} stored; {cpu}"
        )
    finally:
        for sink in sinks:
            await sink.close()


if __name__ == "__main__":
    asyncio.run(main())
