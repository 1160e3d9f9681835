"""Retention and erasure: the "kept only as long as necessary" half of the privacy promise.

`purge` drops whole daily partitions of `cdrs` older than `retention_days`
(cheap, and nothing of the rows is left behind in dead tuples), deletes old
rows that sit in the default partition, expires record keys and erasure
requests, and forgets open calls that never ended. `erase` removes every row
that carries one phone number's pseudonym under any configured key (a
data-subject request). Both take an open connection and return counts;
neither logs a number.

`anonymize`, run before retention deletes them (`anonymize_after_days`),
clears what can single out a person from old rows of `cdrs` and `open_calls`
(the pseudonyms, the masked number, the correlation hash, the account
label) and keeps what statistics need (times, duration, cause, prefix,
destination, countries, source, protocol) until retention deletes them. The
record key stays: it is a hash of the switch's record, not of a number, and
the exactly-once storage of a retransmission depends on `cdr_keys` alone.

"Old" is judged by the call's time and, for what the daemon cannot place in a
daily partition, also by when it was received: a switch whose clock is years
ahead would otherwise keep its rows (a call time in 2106) out of reach of
retention for ever.

Besides the database, both look after the spool directory when given it: the
writer keeps each row PostgreSQL refused (already redacted, pseudonyms
included) in `rejected-YYYYMMDD.json` there, one JSON line per row, in the
spool's row encoding (which names its columns, so any later release reads
it). `anonymize` clears their identifying fields as it does the rows', `purge` removes such rows once they are older than retention (and a file
once it holds none), `erase` removes the rows of the erased number. Spool segments
are not rewritten here: the daemon appends to them, and a replayed row of an
erased number is dropped by the sink (`erasures`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from collector.disk import sync_directory
from collector.model import StoredCdr
from collector.sink.columns import BY_NAME
from collector.sink.postgres import PARTITION_NAME
from collector.sink.spool import SUFFIX as SPOOL_SUFFIX
from collector.sink.spool import (
    Frame,
    check_layout,
    decode_rows,
    encode_rows,
    scan_frames,
)

#: rows deleted per statement, so a large purge never holds long locks
DELETE_CHUNK = 50000

#: the files the writer keeps refused rows in (see collector.sink.writer)
REJECTED_FILE = re.compile(r"^rejected-(\d{8})\.json$")


@dataclass
class PurgeResult:
    """What one purge removed."""

    partitions_dropped: int = 0
    rows_deleted: int = 0
    keys_expired: int = 0
    open_calls_expired: int = 0
    erasures_expired: int = 0
    #: switch restarts no key of any kept call depends on any more
    resets_expired: int = 0
    #: refused rows removed from the spool directory's rejected-*.json files
    rejected_rows_deleted: int = 0
    #: rows the dropped partitions held (counted before each drop)
    partition_rows_deleted: int = 0
    #: rows of the privacy audit trail older than `audit_retention_days`
    audit_rows_deleted: int = 0
    #: revenue-assurance findings of calls older than retention (collector.reconcile)
    findings_deleted: int = 0
    #: calls left waiting for reconciliation since before retention (their collector
    #: stopped reconciling)
    pending_expired: int = 0

    @property
    def call_rows(self) -> int:
        """Rows of call data removed: stored CDRs, open calls, refused rows."""
        return (
            self.partition_rows_deleted
            + self.rows_deleted
            + self.open_calls_expired
            + self.rejected_rows_deleted
            + self.findings_deleted
            + self.pending_expired
        )

    def deleted_anything(self) -> bool:
        """Whether call data, erasure requests or audit rows went (record keys and switch
        restarts alone do not count: they hold nothing of a person)."""
        return bool(self.call_rows or self.erasures_expired or self.audit_rows_deleted)

    def describe(self, retention_days: int, audit_retention_days: int | None) -> str:
        """What went, for the audit trail and the purge command's output."""
        text = (
            f"retention {retention_days} days: dropped {self.partitions_dropped} partition(s) "
            f"holding {self.partition_rows_deleted} row(s), deleted {self.rows_deleted} row(s), "
            f"expired {self.keys_expired} key(s), {self.open_calls_expired} open call(s) "
            f"and {self.erasures_expired} erasure request(s), "
            f"removed {self.rejected_rows_deleted} refused row(s) from the spool directory"
        )
        if self.findings_deleted or self.pending_expired:
            text += (
                f", deleted {self.findings_deleted} reconciliation finding(s) and "
                f"{self.pending_expired} call(s) waiting for reconciliation"
            )
        if audit_retention_days is not None:
            text += (
                f"; audit retention {audit_retention_days} days: "
                f"deleted {self.audit_rows_deleted} audit row(s)"
            )
        return text


#: the fields of a row that can single out a person or link it to one (a pseudonym,
#: the masked number, the correlation and Call-ID hashes, the account label):
#: `anonymize` clears them
IDENTIFYING_FIELDS = (
    "account",
    "called_masked",
    "called_hmac",
    "calling_hmac",
    "correlation_hmac",
    "call_id_hmac",
)
#: their columns in `cdrs` and `open_calls`
IDENTIFYING_COLUMNS = tuple(BY_NAME[name].table_column for name in IDENTIFYING_FIELDS)
#: true for a row anonymize has not yet cleared
_IDENTIFIABLE = "(" + " OR ".join(f"{c} IS NOT NULL" for c in IDENTIFYING_COLUMNS) + ")"
_CLEARED = ", ".join(f"{c} = NULL" for c in IDENTIFYING_COLUMNS)
#: suffix of the partial index `anonymize` leaves on each daily partition it cleared
ANONYMIZED_INDEX_SUFFIX = "_identifiable"


@dataclass
class AnonymizeResult:
    """What one anonymization cleared."""

    #: rows of `cdrs`
    rows: int = 0
    open_calls: int = 0
    #: refused rows in the spool directory's rejected-*.json files
    rejected_rows: int = 0
    #: revenue-assurance findings whose Call-ID hash was cleared, and calls still
    #: waiting for reconciliation that were deleted (a wait that old is over)
    findings: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        """Every row anonymized."""
        return self.rows + self.open_calls + self.rejected_rows + self.findings + self.pending

    def describe(self, anonymize_after_days: int) -> str:
        """What was cleared, for the audit trail and the purge command's output."""
        text = (
            f"anonymize after {anonymize_after_days} days: anonymized {self.rows} row(s), "
            f"{self.open_calls} open call(s) and {self.rejected_rows} refused row(s) "
            "in the spool directory"
        )
        if self.findings or self.pending:
            text += (
                f", {self.findings} reconciliation finding(s); deleted {self.pending} call(s)"
                " waiting for reconciliation"
            )
        return text


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
    conn: asyncpg.Connection,
    retention_days: int,
    now: datetime | None = None,
    spool_directory: str | Path | None = None,
    audit_retention_days: int | None = None,
) -> PurgeResult:
    """Apply retention now (and to the rejected rows in `spool_directory`, when given).

    With `audit_retention_days`, rows of the privacy audit trail older than
    that go too (judged as the CDRs are: from midnight UTC). The caller
    records the purge itself in the trail.
    """
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
            # counted for the audit trail: once a day per partition, against its drop
            result.partition_rows_deleted += await conn.fetchval(
                f"SELECT count(*) FROM {row['relname']}"
            )
            await conn.execute(f"DROP TABLE IF EXISTS {row['relname']}")
            result.partitions_dropped += 1
    # the default partition holds the days without a partition of their own: the
    # distant past and, from a switch with a wrong clock, the future; a row is old
    # when its call is, or when it arrived before the cutoff whatever its call time
    result.rows_deleted = await _delete_in_chunks(
        conn,
        "DELETE FROM cdrs_default WHERE ctid IN "
        "(SELECT ctid FROM cdrs_default WHERE call_time < $1 OR received_at < $1 LIMIT $2)",
        cutoff,
    )
    # a key outlives its row by a day, so a late retransmission cannot store it again
    result.keys_expired = await _delete_in_chunks(
        conn,
        "DELETE FROM cdr_keys WHERE ctid IN "
        "(SELECT ctid FROM cdr_keys WHERE first_seen < $1 LIMIT $2)",
        cutoff - timedelta(days=1),
    )
    status = await conn.execute("DELETE FROM erasures WHERE requested_at < $1", cutoff)
    result.erasures_expired = int(status.split()[-1])
    # a switch restart marks where its session ids start again (Redactor.generation): it
    # is kept while keys of the calls it began can be: until the next restart, too, is old
    status = await conn.execute(
        "DELETE FROM source_resets r WHERE EXISTS (SELECT 1 FROM source_resets n"
        " WHERE n.source = r.source AND n.reset_at > r.reset_at AND n.seen_at < $1)",
        cutoff - timedelta(days=2),
    )
    result.resets_expired = int(status.split()[-1])
    result.open_calls_expired = await _delete_in_chunks(
        conn,
        "DELETE FROM open_calls WHERE ctid IN "
        "(SELECT ctid FROM open_calls WHERE updated_at < $1 OR received_at < $1 LIMIT $2)",
        cutoff,
    )
    result.findings_deleted = await _delete_in_chunks(
        conn,
        "DELETE FROM reconcile_findings WHERE ctid IN "
        "(SELECT ctid FROM reconcile_findings WHERE call_time < $1 LIMIT $2)",
        cutoff,
    )
    result.pending_expired = await _delete_in_chunks(
        conn,
        "DELETE FROM reconcile_pending WHERE ctid IN "
        "(SELECT ctid FROM reconcile_pending WHERE received_at < $1 OR call_time < $1 LIMIT $2)",
        cutoff,
    )
    if spool_directory is not None:
        result.rejected_rows_deleted = purge_rejected(Path(spool_directory), cutoff)
    if audit_retention_days is not None:
        status = await conn.execute(
            "DELETE FROM privacy_audit WHERE at < $1", cutoff_for(audit_retention_days, now)
        )
        result.audit_rows_deleted = int(status.split()[-1])
    return result


async def anonymize(
    conn: asyncpg.Connection,
    anonymize_after_days: int,
    now: datetime | None = None,
    spool_directory: str | Path | None = None,
) -> AnonymizeResult:
    """Clear the identifying columns of rows older than `anonymize_after_days`.

    "Older" as for `purge`: midnight UTC, by call time, and for the default
    partition and open calls also by arrival. Only rows not yet cleared are
    written. A daily partition wholly before the cutoff is cleared by one
    statement and then gets a partial index of its rows still identifiable
    (empty, save for a late record filed under that day since): a later run
    reads that index, not the partition. An index made before a column
    joined IDENTIFYING_FIELDS (`call_id_hash`, schema version 8) is made again
    with it. The default partition (normally small), `open_calls` and the
    reconciliation tables are scanned.
    """
    cutoff = cutoff_for(anonymize_after_days, now)
    result = AnonymizeResult()
    rows = await conn.fetch(
        "SELECT c.relname, (SELECT pg_get_expr(x.indpred, x.indrelid) FROM pg_index x"
        " JOIN pg_class ic ON ic.oid = x.indexrelid"
        " WHERE x.indrelid = c.oid AND ic.relname = c.relname || $1) AS predicate"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'cdrs'::regclass",
        ANONYMIZED_INDEX_SUFFIX,
    )
    for row in sorted(rows, key=lambda r: str(r["relname"])):
        name = row["relname"]
        match = PARTITION_NAME.match(name)
        if not match:
            continue
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
        if day + timedelta(days=1) > cutoff.date():
            continue
        status = await conn.execute(f"UPDATE {name} SET {_CLEARED} WHERE {_IDENTIFIABLE}")
        result.rows += int(status.split()[-1])
        predicate = row["predicate"]
        if predicate is None or not all(column in predicate for column in IDENTIFYING_COLUMNS):
            if predicate is not None:
                await conn.execute(f"DROP INDEX IF EXISTS {name}{ANONYMIZED_INDEX_SUFFIX}")
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {name}{ANONYMIZED_INDEX_SUFFIX} ON {name} (call_time)"
                f" WHERE {_IDENTIFIABLE}"
            )
            # the planner learns the partition holds no identifiable row any more
            await conn.execute(f"ANALYZE {name}")
    status = await conn.execute(
        f"UPDATE cdrs_default SET {_CLEARED}"
        f" WHERE (call_time < $1 OR received_at < $1) AND {_IDENTIFIABLE}",
        cutoff,
    )
    result.rows += int(status.split()[-1])
    status = await conn.execute(
        f"UPDATE open_calls SET {_CLEARED}"
        f" WHERE (updated_at < $1 OR received_at < $1) AND {_IDENTIFIABLE}",
        cutoff,
    )
    result.open_calls = int(status.split()[-1])
    status = await conn.execute(
        "UPDATE reconcile_findings SET call_id_hash = NULL"
        " WHERE call_time < $1 AND call_id_hash IS NOT NULL",
        cutoff,
    )
    result.findings = int(status.split()[-1])
    # a call still waiting to be reconciled after that long never will be (its collector
    # stopped reconciling): without its Call-ID hash it is nothing, so it goes
    status = await conn.execute(
        "DELETE FROM reconcile_pending WHERE received_at < $1 OR call_time < $1", cutoff
    )
    result.pending = int(status.split()[-1])
    if spool_directory is not None:
        result.rejected_rows = anonymize_rejected(Path(spool_directory), cutoff)
    return result


async def erase(
    conn: asyncpg.Connection, pseudonyms: list[str], spool_directory: str | Path | None = None
) -> int:
    """Delete every CDR and open call whose called or calling pseudonym is in `pseudonyms`.

    The pseudonyms are also recorded in `erasures`, so records of the number
    still on their way (spooled by a collector, retransmitted by a switch) are
    dropped when they arrive instead of bringing the number back. With
    `spool_directory`, the number's refused rows kept there go too. Returns
    the number of rows removed.
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
    if spool_directory is not None:
        deleted += erase_rejected(Path(spool_directory), pseudonyms)
    return deleted


async def unknown_key_ids(conn: asyncpg.Connection, pseudonyms: list[str]) -> list[str]:
    """Key ids of stored pseudonyms that are not among those of `pseudonyms`.

    `erase` can only find a number under the keys still configured: rows
    pseudonymized under a key that was removed from the key file are out of
    its reach, and the operator must hear of it.
    """
    known = {p.partition(":")[0] for p in pseudonyms}
    return sorted(set(await stored_key_ids(conn)) - known)


# --- which pseudonym keys stored rows depend on --------------------------------------------

#: the tables and columns holding "KEYID:HMAC" pseudonyms (the correlation hash is
#: under the record key, which never rotates, and `erasures` pins no key: an erasure
#: entry under a retired key links nothing)
PSEUDONYM_TABLES = ("cdrs", "open_calls")
PSEUDONYM_COLUMNS = ("called_hmac", "calling_hmac")


async def stored_key_ids(conn: asyncpg.Connection) -> dict[str, set[str]]:
    """Every key id some stored pseudonym carries, with the tables that hold it."""
    selects = [
        f"SELECT '{table}' AS t, split_part({column}, ':', 1) AS k FROM {table}"
        f" WHERE {column} IS NOT NULL"
        for table in PSEUDONYM_TABLES
        for column in PSEUDONYM_COLUMNS
    ]
    found: dict[str, set[str]] = {}
    for row in await conn.fetch(" UNION ".join(selects)):
        found.setdefault(row["k"], set()).add(row["t"])
    return found


def _key_ids_of(rows: list[StoredCdr]) -> set[str]:
    return {
        pseudonym.partition(":")[0]
        for row in rows
        for pseudonym in (row.called_hmac, row.calling_hmac)
        if pseudonym is not None
    }


def spooled_key_ids(directory: Path) -> dict[str, set[str]]:
    """Every key id the rows waiting in the spool's segments ("spool") or kept there as
    refused ("refused rows") carry.

    Raises SpoolLayoutError for a segment frame a newer release wrote: its
    rows' keys cannot be known. Damage is skipped, as replay skips it; so is
    a refused line this release cannot read.
    """
    found: dict[str, set[str]] = {}
    try:
        names = sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return found
    for path in names:
        if path.suffix != SPOOL_SUFFIX or not path.stem.isdigit():
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # replayed and deleted meanwhile
            continue
        for item in scan_frames(data):
            if not isinstance(item, Frame):
                continue
            check_layout(path, item)
            try:
                rows = decode_rows(item.payload)
            except ValueError:
                continue  # damage that passed the checksum: replay skips it too
            for key_id in _key_ids_of(rows):
                found.setdefault(key_id, set()).add("spool")
    for path, _ in _rejected_files(directory):
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_bytes().splitlines():
                for key_id in _key_ids_of(_rows_of(line) or []):
                    found.setdefault(key_id, set()).add("refused rows")
    return found


@dataclass(frozen=True)
class KeyRetirement:
    """Which keys of a key file go and which stay, and why each stays."""

    #: (key id, why it stays), newest first
    kept: list[tuple[str, str]]
    retired: list[str]


def plan_key_retirement(key_ids: list[str], uses: Mapping[str, set[str]]) -> KeyRetirement:
    """Retire every key (ids newest first, as in the key file) that nothing in `uses`
    (key id -> where rows carrying it are stored) depends on; the newest always stays."""
    kept: list[tuple[str, str]] = []
    retired: list[str] = []
    for index, key_id in enumerate(key_ids):
        where = uses.get(key_id)
        if index == 0:
            kept.append((key_id, "the newest key: new records use it"))
        elif where:
            kept.append((key_id, f"rows in {', '.join(sorted(where))} use it"))
        else:
            retired.append(key_id)
    return KeyRetirement(kept, retired)


# --- the rejected rows kept in the spool directory ---------------------------------------


def _rejected_files(directory: Path) -> list[tuple[Path, date]]:
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in directory.iterdir():
            match = REJECTED_FILE.match(path.name)
            if match is None:
                continue
            try:
                day = datetime.strptime(match.group(1), "%Y%m%d").date()
            except ValueError:
                continue
            found.append((path, day))
    return sorted(found)


def _rows_of(line: bytes) -> list[StoredCdr] | None:
    """The rows of one line as a release of any layout wrote it, or None when this
    release cannot read it (damaged, or written by a newer release)."""
    try:
        return decode_rows(line)
    except (ValueError, TypeError, KeyError):
        return None


def _rewrite(path: Path, drop: Callable[[bytes], int | None]) -> int:
    """Remove what `drop` says from each line of `path`; return the rows removed.

    `drop(line)` returns how many of the line's rows go (the whole line), or
    None to keep it. A file left empty is deleted; one that changed is
    replaced atomically (a new file, fsync'd, renamed over the old one).
    """

    def edit(line: bytes) -> tuple[bytes | None, int] | None:
        count = drop(line)
        return None if count is None else (None, count)

    return _edit_lines(path, edit)


def _edit_lines(path: Path, edit: Callable[[bytes], tuple[bytes | None, int] | None]) -> int:
    """Apply `edit` to each line of `path`; return the rows it changed or removed.

    `edit(line)` returns None to keep the line, else (its replacement, or None
    to remove it, and how many rows that changed). A file left empty is
    deleted; one that changed is replaced atomically (a new file, fsync'd,
    renamed over the old one).
    """
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    kept: list[bytes] = []
    changed = 0
    for line in lines:
        if not line.strip():
            continue
        outcome = edit(line)
        if outcome is None:
            kept.append(line)
            continue
        replacement, count = outcome
        changed += count
        if replacement is not None:
            kept.append(replacement)
    if not changed:
        return 0
    if not kept:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"\n".join(kept) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    sync_directory(path.parent)
    return changed


def _call_time(row: StoredCdr) -> datetime:
    """The time the row's call would be partitioned under (as `cdrs.call_time`)."""
    return row.setup_time or row.connect_time or row.disconnect_time or row.event_time


def purge_rejected(directory: Path, cutoff: datetime) -> int:
    """Remove refused rows older than `cutoff` (by call or by arrival) from `directory`.

    A file dated before the cutoff goes whole, readable or not: every row in
    it arrived before then.
    """
    removed = 0
    for path, day in _rejected_files(directory):
        if day < cutoff.date():
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            path.unlink(missing_ok=True)
            sync_directory(directory)
            removed += sum(len(_rows_of(line) or [None]) for line in lines if line.strip())
            continue

        def old(line: bytes) -> int | None:
            rows = _rows_of(line)
            if rows is None:
                return None  # unreadable: it goes with its file, once that is old
            if any(_call_time(r) < cutoff or r.received_at < cutoff for r in rows):
                return len(rows)
            return None

        removed += _rewrite(path, old)
    return removed


def _identifiable(row: StoredCdr) -> bool:
    return any(getattr(row, name) is not None for name in IDENTIFYING_FIELDS)


def _cleared(row: StoredCdr) -> StoredCdr:
    """`row` with every identifying field cleared (all of them are nullable)."""
    cleared: dict[str, Any] = dict.fromkeys(IDENTIFYING_FIELDS)
    return row._replace(**cleared)


def anonymize_rejected(directory: Path, cutoff: datetime) -> int:
    """Clear the identifying fields of refused rows older than `cutoff` (by call or by
    arrival) in `directory`; return how many rows changed.

    A line this release cannot read is left as it is: it goes whole with
    its file at retention.
    """

    def edit(line: bytes) -> tuple[bytes | None, int] | None:
        rows = _rows_of(line)
        if rows is None:
            return None
        old = [
            _identifiable(r) and (_call_time(r) < cutoff or r.received_at < cutoff) for r in rows
        ]
        if not any(old):
            return None
        rows = [_cleared(r) if o else r for r, o in zip(rows, old, strict=True)]
        return encode_rows(rows), sum(old)

    # a file of any day: a row refused today may be of a call long ago
    return sum(_edit_lines(path, edit) for path, _day in _rejected_files(directory))


def erase_rejected(directory: Path, pseudonyms: list[str]) -> int:
    """Remove the refused rows carrying one of `pseudonyms` from `directory`."""
    wanted = frozenset(pseudonyms)
    needles = [p.encode() for p in pseudonyms]

    def carries(line: bytes) -> int | None:
        rows = _rows_of(line)
        if rows is None:
            # unreadable: it goes if the pseudonym is anywhere in it
            return 1 if any(needle in line for needle in needles) else None
        if any(r.called_hmac in wanted or r.calling_hmac in wanted for r in rows):
            return len(rows)
        return None

    return sum(_rewrite(path, carries) for path, _day in _rejected_files(directory))
