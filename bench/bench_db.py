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

    python bench/bench_db.py [--rows 200000] [--batch 1000] [--protocol sip] [--reconcile]
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


async def write_all(sink: PostgresSink, rows: list[StoredCdr], batch: int) -> tuple[float, int]:
    began = time.perf_counter()
    stored = 0
    for start in range(0, len(rows), batch):
        result = await sink.write(rows[start : start + batch])
        stored += len(result.stored)
    return time.perf_counter() - began, stored


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--protocol", choices=("radius", "sip"), default="radius")
    parser.add_argument("--reconcile", action="store_true")
    args = parser.parse_args()

    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute("DROP DATABASE IF EXISTS cdr_bench_db WITH (FORCE)")
    await admin.execute("CREATE DATABASE cdr_bench_db")
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/cdr_bench_db"

    sink = PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30)
    await sink.connect()
    try:
        if args.reconcile:
            sink.check_calls(ReconcileConfig())
        rows = make_rows(args.rows, args.protocol)
        batches = -(-args.rows // args.batch)
        elapsed, stored = await write_all(sink, rows, args.batch)
        print(
            f"new rows:   {stored} stored in {elapsed:.2f} s = {stored / elapsed:,.0f} rows/s "
            f"({elapsed / batches * 1000:.1f} ms per {args.batch}-row batch)"
        )
        elapsed, stored = await write_all(sink, rows, args.batch)
        print(
            f"duplicates: {args.rows} sent again in {elapsed:.2f} s = "
            f"{args.rows / elapsed:,.0f} rows/s, {stored} stored"
        )
    finally:
        await sink.close()


if __name__ == "__main__":
    asyncio.run(main())
