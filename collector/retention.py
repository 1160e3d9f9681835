"""Retention and erasure: the "kept only as long as necessary" half of the privacy promise.

`purge` drops whole daily partitions of `cdrs` older than `retention_days`
(cheap, and nothing of the rows is left behind in dead tuples), deletes old
rows that sit in the default partition, expires record keys and forgets open
calls that never ended. `erase` removes every row that carries one phone
number's pseudonym under any configured key (a data-subject request). Both
take an open connection and return counts; neither logs a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from collector.sink.postgres import PARTITION_NAME

#: rows deleted per statement, so a large purge never holds long locks
DELETE_CHUNK = 50000


@dataclass
class PurgeResult:
    """What one purge removed."""

    partitions_dropped: int = 0
    rows_deleted: int = 0
    keys_expired: int = 0
    open_calls_expired: int = 0


def cutoff_for(retention_days: int, now: datetime | None = None) -> datetime:
    """The oldest call time still kept: midnight UTC, `retention_days` days ago."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    oldest = today - timedelta(days=retention_days)
    return datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)


async def _delete_in_chunks(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    total = 0
    while True:
        status = await conn.execute(sql, *args, DELETE_CHUNK)
        count = int(status.split()[-1])
        total += count
        if count < DELETE_CHUNK:
            return total


async def purge(
    conn: asyncpg.Connection, retention_days: int, now: datetime | None = None
) -> PurgeResult:
    """Apply retention now."""
    cutoff = cutoff_for(retention_days, now)
    result = PurgeResult()
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'cdrs'::regclass"
    )
    for row in rows:
        match = PARTITION_NAME.match(row["relname"])
        if not match:
            continue
        day = date(int(match.group(1)[:4]), int(match.group(1)[4:6]), int(match.group(1)[6:]))
        if day + timedelta(days=1) <= cutoff.date():
            await conn.execute(f"DROP TABLE IF EXISTS {row['relname']}")
            result.partitions_dropped += 1
    result.rows_deleted = await _delete_in_chunks(
        conn,
        "DELETE FROM cdrs_default WHERE ctid IN "
        "(SELECT ctid FROM cdrs_default WHERE call_time < $1 LIMIT $2)",
        cutoff,
    )
    # a key outlives its row by a day, so a late retransmission cannot store it again
    result.keys_expired = await _delete_in_chunks(
        conn,
        "DELETE FROM cdr_keys WHERE ctid IN "
        "(SELECT ctid FROM cdr_keys WHERE first_seen < $1 LIMIT $2)",
        cutoff - timedelta(days=1),
    )
    await conn.execute("DELETE FROM erasures WHERE requested_at < $1", cutoff)
    result.open_calls_expired = await _delete_in_chunks(
        conn,
        "DELETE FROM open_calls WHERE ctid IN "
        "(SELECT ctid FROM open_calls WHERE updated_at < $1 LIMIT $2)",
        cutoff,
    )
    return result


async def erase(conn: asyncpg.Connection, pseudonyms: list[str]) -> int:
    """Delete every CDR and open call whose called or calling pseudonym is in `pseudonyms`.

    The pseudonyms are also recorded in `erasures`, so records of the number
    still on their way (spooled by a collector, retransmitted by a switch) are
    dropped when they arrive instead of bringing the number back.
    """
    if not pseudonyms:
        return 0
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO erasures (hmac) SELECT unnest($1::text[]) "
            "ON CONFLICT (hmac) DO UPDATE SET requested_at = now()",
            pseudonyms,
        )
        status = await conn.execute(
            "DELETE FROM cdrs WHERE called_hmac = ANY($1::text[]) OR calling_hmac = ANY($1::text[])",
            pseudonyms,
        )
        deleted = int(status.split()[-1])
        status = await conn.execute(
            "DELETE FROM open_calls WHERE called_hmac = ANY($1::text[]) "
            "OR calling_hmac = ANY($1::text[])",
            pseudonyms,
        )
        deleted += int(status.split()[-1])
    return deleted
