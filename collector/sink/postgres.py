"""PostgreSQL sink: schema migrations and the idempotent batch insert.

One batch is one transaction: COPY the redacted rows into a temporary
staging table, upsert Starts into `open_calls`, then insert Stops into `cdrs`
only where `cdr_keys` newly accepts their record key for their protocol (so a
retransmission, a spool replay, a restart or a second collector all end in
one row, while one call's RADIUS, JSON and SIP records are three), completing
a Stop that lacks a duration from its Start, and close the open calls of a
switch that restarted (Accounting-On/Off) by marker. Errors are classified
here, once: `RetryableError` (the database is away or busy: spool and retry)
or `PermanentError` (this data cannot be stored as it is). It never logs row
contents.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from collector.config import DatabaseConfig, ReconcileConfig
from collector.logs import get_logger
from collector.model import StoredCdr
from collector.pipeline.billing import answered_sql, duration_sql
from collector.pipeline.plausible import MAX_DURATION_MS
from collector.sink.columns import (
    CARRIED,
    COPY_COLUMNS,
    CREATE_STAGING,
    STAGING_TABLE,
    cdrs_select,
)

log = get_logger(__name__)

MIGRATION_LOCK: Final = 0x43445243  # advisory lock id shared by every collector instance
PARTITION_NAME = re.compile(r"^cdrs_p(\d{8})$")


class SinkError(Exception):
    """A batch could not be committed."""


class RetryableError(SinkError):
    """The database is unreachable, shutting down, overloaded or timed out: try again later."""


class PermanentError(SinkError):
    """The database rejected the data itself: retrying the same rows cannot succeed."""


class SchemaVersionError(PermanentError):
    """The database's schema is not the one this release writes: newer (a downgrade,
    refused) or older with migrations switched off (run `cdr-collector migrate`)."""


#: SQLSTATE classes that mean "this data is wrong": 22 data exception, 23 integrity violation
_PERMANENT_CLASSES = ("22", "23")

#: where rows of days without a partition of their own go (retention purges it by name)
DEFAULT_PARTITION: Final = "cdrs_default"

#: where PostgreSQL's timestamptz counts from: microseconds since this instant, on the wire
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
#: timestamptz's 'infinity' and '-infinity' on the wire (no row of ours holds them)
_PG_INFINITY: Final = 2**63 - 1


def encode_timestamptz(value: datetime) -> tuple[int]:
    """A time as the microseconds since PostgreSQL's epoch that timestamptz sends.

    The writer's connection encodes every time of its COPY rows with this
    instead of asyncpg's own codec, which compares each value with two naive
    "infinity" datetimes (an aware/naive comparison, about 0.4 µs each) before
    converting it: 1.4 µs a time, 5.5 µs of the 7.5 µs a row's COPY costs
    (bench/bench_db.py). A naive time is local time, as asyncpg takes it.
    """
    if value.tzinfo is None:
        value = value.astimezone(UTC)
    return ((value - _PG_EPOCH) // _MICROSECOND,)


def decode_timestamptz(value: tuple[int]) -> datetime:
    """The inverse of encode_timestamptz, in UTC; 'infinity' is the latest datetime."""
    micro = value[0]
    if micro >= _PG_INFINITY:
        return datetime.max.replace(tzinfo=UTC)
    if micro <= -_PG_INFINITY:
        return datetime.min.replace(tzinfo=UTC)
    return _PG_EPOCH + timedelta(microseconds=micro)


#: SQLSTATEs that mean the database or its schema is gone (dropped, restored empty):
#: 3D000 invalid catalog name, 3F000 invalid schema name, 42P01 undefined table
_SCHEMA_GONE = frozenset({"3D000", "3F000", "42P01"})


def _no_partition(exc: BaseException) -> bool:
    """A row with no partition to go to: `cdrs` lost its default partition (detached)."""
    return getattr(exc, "sqlstate", None) == "23514" and "no partition" in str(exc)


def classify(exc: BaseException) -> SinkError:
    """Map any failure of a database operation to retryable or permanent, in one place."""
    if isinstance(exc, SinkError):
        return exc
    state = getattr(exc, "sqlstate", None)
    if _no_partition(exc):
        # not the rows' fault: spool them; the next connect restores the default partition
        return RetryableError(f"{type(exc).__name__} (SQLSTATE {state}, no partition)")
    if isinstance(state, str) and state[:2] in _PERMANENT_CLASSES:
        return PermanentError(f"{type(exc).__name__} (SQLSTATE {state})")
    if isinstance(exc, ssl.SSLError):
        # the reason is what the operator needs ("Hostname mismatch, certificate is not
        # valid for 'db.example'"); it names the server, never the DSN's password
        why = getattr(exc, "verify_message", None) or exc.reason or "handshake failed"
        return RetryableError(f"{type(exc).__name__} (TLS: {why})")
    return RetryableError(f"{type(exc).__name__}" + (f" (SQLSTATE {state})" if state else ""))


_OPEN_COLUMNS = ", ".join(f.table_column for f in CARRIED)
_OPEN_VALUES = ", ".join(f"s.{f.name}" for f in CARRIED)
#: a later Start or Interim of an open call fills in what the first one lacked
_OPEN_MERGE = ",\n    ".join(
    f"{f.table_column} = coalesce(o.{f.table_column}, EXCLUDED.{f.table_column})"
    for f in CARRIED
    if f.nullable
)

#: a key taken by a record of the same protocol, or by any record before schema version 5
#: (those keys do not say which protocol took them, so they guard every one)
_KEY_TAKEN: Final = "k.record_key = {row}.record_key AND k.protocol IN ({row}.protocol, '')"

UPSERT_OPEN_CALLS = f"""
INSERT INTO open_calls AS o ({_OPEN_COLUMNS}, opened_at, updated_at)
SELECT DISTINCT ON (s.record_key, s.protocol) {_OPEN_VALUES}, s.event_time, s.event_time
FROM {STAGING_TABLE} s
LEFT JOIN erasures e1 ON e1.hmac = s.called_hmac
LEFT JOIN erasures e2 ON e2.hmac = s.calling_hmac
WHERE s.kind IN ('start', 'interim')
  AND e1.hmac IS NULL AND e2.hmac IS NULL
  AND NOT EXISTS (SELECT 1 FROM cdr_keys k WHERE {_KEY_TAKEN.format(row="s")})
ORDER BY s.record_key, s.protocol, (s.kind = 'start') DESC, s.event_time
ON CONFLICT (record_key, protocol) DO UPDATE SET
    updated_at = greatest(o.updated_at, EXCLUDED.updated_at),
    opened_at = least(o.opened_at, EXCLUDED.opened_at),
    {_OPEN_MERGE}
"""

#: kinds whose rows may become rows of `cdrs`
_CLOSING = frozenset({"stop", "end"})

RETURNING = (
    "RETURNING source, answered, duration_ms, sip_code, disconnect_cause, times_implausible,"
    " called_country, high_risk"
)


def _span(start: str, end: str, used: str) -> str:
    """A lateral select of `ms`, the milliseconds from `start` to `end` (never below 0),
    and `too_long`, whether that span is used (`used`) and longer than any call believed:
    such a duration is not billed (see pipeline.plausible)."""
    ms = f"greatest(0, round(extract(epoch FROM {end} - {start}) * 1000))::bigint"
    return (
        f"SELECT s_.ms, coalesce(({used}) AND s_.ms > {MAX_DURATION_MS}, false) AS too_long "
        f"FROM (SELECT CASE WHEN {start} IS NOT NULL AND {end} IS NOT NULL THEN {ms} END AS ms) s_"
    )


#: a Stop (or the End of a call known from its Start) completed from its open call
#: `o`: the columns the statement decides; every other column comes from the staged
#: row, completed from the open call where it lacks it (see columns.cdrs_select)
_STOP_COMPUTED = {
    "call_time": "coalesce(s.setup_time, o.setup_time, c.connect_time, s.disconnect_time, s.event_time)",
    "connect_time": "CASE WHEN a.answered THEN c.connect_time END",
    "duration_ms": duration_sql("a.answered", "s.duration_ms", "span.ms"),
    "answered": "a.answered",
    "times_derived": "s.times_derived OR coalesce(o.times_derived, false)",
    "clock_unsynced": "s.clock_unsynced OR coalesce(o.clock_unsynced, false)",
    "times_implausible": "s.times_implausible OR coalesce(o.times_implausible, false) OR span.too_long",
    "incomplete": """s.incomplete OR span.too_long OR (s.duration_ms IS NULL AND c.connect_time IS NULL
                     AND s.answered IS DISTINCT FROM false)""",
}
_STOP_COLUMNS, _STOP_VALUES = cdrs_select(_STOP_COMPUTED, carried="o", staged="s")

#: the keys of `rows` that no record of their protocol (nor any record from before
#: schema version 5) took yet, taken now: what it returns may become rows of `cdrs`
_TAKE_KEYS = """
    INSERT INTO cdr_keys (record_key, protocol) SELECT r.record_key, r.protocol FROM {rows} r
    WHERE NOT EXISTS (SELECT 1 FROM cdr_keys k WHERE k.record_key = r.record_key AND k.protocol = '')
    ON CONFLICT DO NOTHING RETURNING record_key, protocol"""

#: the CTEs of INSERT_STOPS: the staged rows to store, their keys taken, their open calls closed
_STOPS_CTES = f"""
WITH s AS (
    SELECT DISTINCT ON (record_key, protocol) * FROM {STAGING_TABLE} st
    WHERE kind = 'stop'
       OR (kind = 'end' AND EXISTS (SELECT 1 FROM open_calls o
                                    WHERE o.record_key = st.record_key AND o.protocol = st.protocol))
    ORDER BY record_key, protocol, (kind = 'end'), received_at
), fresh AS ({_TAKE_KEYS.format(rows="s")}
), closed AS (
    DELETE FROM open_calls WHERE (record_key, protocol) IN (SELECT record_key, protocol FROM s)
)"""

#: the insert of INSERT_STOPS (its rows completed from their open calls)
_STOPS_INSERT = f"""
INSERT INTO cdrs ({_STOP_COLUMNS})
SELECT {_STOP_VALUES}
FROM s
JOIN fresh USING (record_key, protocol)
LEFT JOIN open_calls o ON o.record_key = s.record_key AND o.protocol = s.protocol
LEFT JOIN erasures e1 ON e1.hmac = coalesce(s.called_hmac, o.called_hmac)
LEFT JOIN erasures e2 ON e2.hmac = coalesce(s.calling_hmac, o.calling_hmac)
CROSS JOIN LATERAL (SELECT coalesce(s.connect_time, o.connect_time) AS connect_time) c
CROSS JOIN LATERAL (SELECT {answered_sql("s.answered", "c.connect_time", "s.duration_ms")} AS answered) a
CROSS JOIN LATERAL ({_span("c.connect_time", "s.disconnect_time", "a.answered AND s.duration_ms IS NULL")}) span
WHERE e1.hmac IS NULL AND e2.hmac IS NULL"""

INSERT_STOPS = f"""{_STOPS_CTES}{_STOPS_INSERT}
{RETURNING}
"""

#: the columns RETURNING names, for a statement that returns them from a CTE
_RETURNED = RETURNING.removeprefix("RETURNING ")

#: INSERT_STOPS for a collector with [reconcile]: the same rows stored, and each
#: answered SIP call with a Call-ID (from the SIP sources in $1; every one when
#: NULL) kept in `reconcile_pending` by the same statement, to wait for its billing
#: record (see collector.reconcile). A call whose end was not seen (incomplete) or
#: whose times were not believed is not checked: its duration is not the call's.
INSERT_STOPS_RECONCILE = f"""{_STOPS_CTES}, stored AS ({_STOPS_INSERT}
RETURNING *
), pending AS (
    INSERT INTO reconcile_pending (record_key, source, call_id_hash, call_time,
        connect_time, disconnect_time, duration_ms, received_at)
    SELECT record_key, source, call_id_hash, call_time, connect_time, disconnect_time,
        duration_ms, received_at
    FROM stored
    WHERE protocol = 'sip' AND answered AND call_id_hash IS NOT NULL
      AND NOT incomplete AND NOT times_implausible
      AND ($1::text[] IS NULL OR source = ANY($1::text[]))
    ON CONFLICT (record_key) DO NOTHING
)
SELECT {_RETURNED} FROM stored
"""

_RESET_ANSWERED = answered_sql("NULL", "c.connect_time", "NULL")
#: the open calls of a switch that restarted, closed at its marker as incomplete rows
_RESET_COMPUTED = {
    "call_time": "coalesce(c.setup_time, c.connect_time, c.opened_at)",
    "disconnect_time": "c.marker",
    # a call closed by its switch's restart: answered when its Start was, billed up to the marker
    "duration_ms": duration_sql(_RESET_ANSWERED, "NULL", "span.ms"),
    "answered": _RESET_ANSWERED,
    "times_implausible": "c.times_implausible OR span.too_long",
    "incomplete": "true",
}
_RESET_COLUMNS, _RESET_VALUES = cdrs_select(_RESET_COMPUTED, carried="c", staged=None)

CLOSE_BY_RESET = f"""
WITH r AS (
    SELECT source, protocol, max(event_time) AS marker, max(received_at) AS received_at
    FROM {STAGING_TABLE} WHERE kind = 'reset' GROUP BY source, protocol
), closed AS (
    DELETE FROM open_calls o USING r
    WHERE o.source = r.source AND o.protocol = r.protocol AND o.opened_at <= r.marker
    RETURNING o.*, r.marker
), fresh AS ({_TAKE_KEYS.format(rows="closed")}
)
INSERT INTO cdrs ({_RESET_COLUMNS})
SELECT {_RESET_VALUES}
FROM closed c JOIN fresh USING (record_key, protocol)
CROSS JOIN LATERAL ({_span("c.connect_time", "c.marker", "true")}) span
{RETURNING}
"""


#: every collector learns of the restarts one of them saw (see Redactor.generation)
RECORD_RESETS = f"""
INSERT INTO source_resets (source, reset_at)
SELECT DISTINCT source, event_time FROM {STAGING_TABLE} WHERE kind = 'reset'
ON CONFLICT DO NOTHING
"""


async def load_resets(conn: asyncpg.Connection) -> dict[str, list[datetime]]:
    """The restarts of every source recorded so far, oldest first."""
    resets: dict[str, list[datetime]] = {}
    for row in await conn.fetch("SELECT source, reset_at FROM source_resets ORDER BY reset_at"):
        resets.setdefault(row["source"], []).append(row["reset_at"])
    return resets


#: answered SIP calls whose BYE never came: their durable START is all that is left
#: (the collector restarted while they were up, and the BYE was lost); their end is
#: unknown: no duration, times derived
_STALE_COMPUTED = {
    "call_time": "coalesce(c.setup_time, c.connect_time, c.opened_at)",
    "disconnect_time": "coalesce(c.connect_time, c.updated_at)",
    "duration_ms": "0",
    "answered": "c.connect_time IS NOT NULL",
    "sip_code": "CASE WHEN c.connect_time IS NOT NULL THEN 200 END",
    "times_derived": "true",
    "incomplete": "true",
}
_STALE_COLUMNS, _STALE_VALUES = cdrs_select(_STALE_COMPUTED, carried="c", staged=None)

CLOSE_STALE = f"""
WITH closed AS (
    DELETE FROM open_calls WHERE protocol = $1 AND updated_at < $2
    RETURNING *
), fresh AS ({_TAKE_KEYS.format(rows="closed")}
)
INSERT INTO cdrs ({_STALE_COLUMNS})
SELECT {_STALE_VALUES}
FROM closed c JOIN fresh USING (record_key, protocol)
{RETURNING}
"""


async def close_stale_calls(conn: asyncpg.Connection, protocol: str, older_than: datetime) -> int:
    """Store the calls of `protocol` open since before `older_than` as incomplete rows;
    how many.

    SIP's dialog tracker closes a call that outlives `max_dialog_age_s` as
    incomplete; a call answered before a restart of the collector whose BYE
    never came is only a START in `open_calls`, and gets the same treatment
    here (its end unknown: no duration, times derived). Meant for the
    maintenance connection, with `older_than` from the receiver's section
    (`stale_calls`), well past the receiver's own limit.
    """
    rows = await conn.fetch(CLOSE_STALE, protocol, older_than)
    return len(rows)


@dataclass
class WriteResult:
    """What one committed batch changed: rows newly stored, and their summaries for metrics."""

    stored: list[asyncpg.Record] = field(default_factory=list)
    duplicates: int = 0


def schema_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    directory = importlib.resources.files("collector.sink") / "schema"
    for entry in directory.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


_MIGRATION_TITLE = re.compile(r"^cdr-collector schema, version \d+[.:]\s*")


def describe_migration(sql: str) -> str:
    """What a migration does: its opening comment, without its "schema, version N" title."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    text = _MIGRATION_TITLE.sub("", " ".join(lines))
    first, stop, _rest = text.partition(". ")
    return (first + "." if stop else text) or "(no description)"


#: the schema version this release writes (its newest migration)
SCHEMA_VERSION = max(version for version, _name, _sql in schema_files())


@dataclass(frozen=True)
class Migration:
    """One migration applied by `migrate`."""

    version: int
    name: str
    description: str


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    """The migrations a database has had (empty for a new database)."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


def _refuse_newer(done: set[int]) -> None:
    newer = sorted(v for v in done if v > SCHEMA_VERSION)
    if newer:
        raise SchemaVersionError(
            f"the database schema is at version {max(newer)}, newer than this cdr-collector "
            f"knows (version {SCHEMA_VERSION}): a newer release wrote it; run that release "
            "(downgrades are refused, so that nothing is stored in a layout it does not expect)"
        )


async def check_schema(conn: asyncpg.Connection) -> None:
    """Raise SchemaVersionError unless the database is at exactly this release's version."""
    done = await applied_versions(conn)
    _refuse_newer(done)
    missing = sorted(v for v, _n, _s in schema_files() if v not in done)
    if missing:
        raise SchemaVersionError(
            f"the database schema lacks migration(s) {', '.join(map(str, missing))} "
            "(database.migrate is off): run `cdr-collector migrate`"
        )


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply pending migrations under an advisory lock, in one transaction; what was applied.

    Refuses (SchemaVersionError) a database that a newer release migrated.
    Migrations only ever add: every existing row is kept.
    """
    applied: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        _refuse_newer(done)
        for version, name, sql in schema_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(Migration(version, name, describe_migration(sql)))
    return applied


def partition_name(day: date) -> str:
    """The name of the daily partition holding calls of `day` (UTC)."""
    return f"cdrs_p{day:%Y%m%d}"


async def move_default_rows(conn: asyncpg.Connection, days: Iterable[date]) -> dict[date, int]:
    """Give each of `days` whose calls sit in the default partition a partition of its own.

    A switch whose clock runs days ahead sends rows for a day that has no
    partition yet; they go to `cdrs_default`. When that day comes, its
    partition cannot be created over them (PostgreSQL refuses a range the
    default partition already holds rows of), and the whole day's traffic
    would follow them into the default partition. Here the day's partition
    is created as a plain table, the rows move into it and it is attached,
    in one transaction. Meant for a maintenance connection (the retention
    loop), never for the writer's: the default partition is scanned.
    Returns the rows moved per day.
    """
    moved: dict[date, int] = {}
    for day in sorted(set(days)):
        name = partition_name(day)
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            continue
        low = datetime(day.year, day.month, day.day, tzinfo=UTC)
        high = low + timedelta(days=1)
        waiting = await conn.fetchval(
            f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE call_time >= $1 AND call_time < $2",
            low,
            high,
        )
        if not waiting:
            continue
        async with conn.transaction():
            await conn.execute(
                f"CREATE TABLE {name} (LIKE cdrs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            await conn.execute(
                f"WITH m AS (DELETE FROM {DEFAULT_PARTITION} "
                f"WHERE call_time >= $1 AND call_time < $2 RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM m",
                low,
                high,
            )
            await conn.execute(
                f"ALTER TABLE cdrs ATTACH PARTITION {name} "
                f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
            )
        moved[day] = int(waiting)
        log.info("rows moved out of the default partition", table=name, rows=int(waiting))
    return moved


def call_day(row: StoredCdr) -> date:
    """The UTC day a row will be partitioned under (as far as the row alone tells)."""
    when = row.setup_time or row.connect_time or row.disconnect_time or row.event_time
    return when.astimezone(UTC).date()


async def ensure_database(dsn: str, timeout: float) -> bool:
    """Create the DSN's database if it does not exist (a convenience for new installs).

    Returns True when it was created. Needs CREATEDB on the server; any
    failure is left for the real connection attempt to report.
    """
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        return False
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin, timeout=timeout)
    try:
        await conn.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await conn.close()
    return True


class PostgresSink:
    """Owns the writer's connection: connects lazily, migrates, commits batches."""

    def __init__(self, config: DatabaseConfig, retention_days: int) -> None:
        self.config = config
        self.retention_days = retention_days
        self.conn: asyncpg.Connection | None = None
        self.migrated = False
        self._known_days: set[date] = set()
        self._next_attempt = 0.0
        #: with [reconcile]: the SIP sources whose answered calls are kept for it
        #: (an empty tuple: every source); None without
        self._reconcile_sources: tuple[str, ...] | None = None

    def check_calls(self, reconcile: ReconcileConfig | None) -> None:
        """Keep answered SIP calls for revenue assurance from the next batch on when
        `reconcile` is set (its `sip_sources`, or every SIP source), not when None.
        Called at start and at each reload."""
        if reconcile is None:
            self._reconcile_sources = None
        else:
            self._reconcile_sources = reconcile.sip_sources or ()

    @property
    def up(self) -> bool:
        """True while the connection is open and its last operation succeeded."""
        return self.conn is not None and not self.conn.is_closed()

    async def connect(self) -> None:
        """Open the connection, migrate if configured, prepare staging and partitions.

        Raises RetryableError (or PermanentError for a schema problem).
        """
        await self.close()
        cfg = self.config
        timeout = cfg.connect_timeout_ms / 1000
        try:
            if cfg.migrate and not self.migrated:
                await ensure_database(cfg.dsn, timeout)
            conn = await asyncpg.connect(
                cfg.dsn,
                timeout=timeout,
                command_timeout=cfg.statement_timeout_ms / 1000 + 5,
                server_settings={
                    "application_name": "cdr-collector",
                    "statement_timeout": str(cfg.statement_timeout_ms),
                    "timezone": "UTC",
                    # the staging table is temporary and never analyzed, so the
                    # planner guesses one row for it and its CTEs and joins them
                    # with nested loops: quadratic in the batch (200 ms for 1000
                    # rows instead of 25). Hash joins are right for every
                    # statement this connection runs.
                    "enable_nestloop": "off",
                },
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._forget_schema_if_gone(exc)
            raise classify(exc) from None
        try:
            if cfg.migrate and not self.migrated:
                applied = await migrate(conn)
                if applied:
                    log.info("schema migrated", version=applied[-1].version)
                self.migrated = True
            elif not self.migrated:
                await check_schema(conn)
                self.migrated = True
            await conn.set_type_codec(
                "timestamptz",
                schema="pg_catalog",
                encoder=encode_timestamptz,
                decoder=decode_timestamptz,
                format="tuple",
            )
            await conn.execute(CREATE_STAGING)
            rows = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'cdrs'::regclass"
            )
            self._known_days = set()
            for row in rows:
                match = PARTITION_NAME.match(row["relname"])
                if match:
                    self._known_days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
            if DEFAULT_PARTITION not in {row["relname"] for row in rows}:
                await self._restore_default_partition(conn)
            self.conn = conn
            today = datetime.now(UTC).date()
            await self.ensure_partitions({today + timedelta(days=n) for n in range(-1, 3)})
        except BaseException as exc:
            self.conn = None
            conn.terminate()
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._forget_schema_if_gone(exc)
            raise classify(exc) from None

    @staticmethod
    async def _restore_default_partition(conn: asyncpg.Connection) -> None:
        """Give `cdrs` its default partition back (an operator detached or dropped it).

        Without one, a row of a day that has no partition of its own cannot be
        stored at all; its batch stays in the spool until this succeeds.
        """
        try:
            await conn.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF cdrs DEFAULT")
            log.warning("cdrs had no default partition: created", table=DEFAULT_PARTITION)
            return
        except asyncpg.DuplicateTableError:
            pass  # detached, not dropped: attach it again
        try:
            await conn.execute(f"ALTER TABLE cdrs ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
            log.warning("cdrs had no default partition: attached again", table=DEFAULT_PARTITION)
        except asyncpg.PostgresError as exc:
            # its rows overlap a daily partition now: leave it to the operator, loudly
            log.error(
                "cdrs has no default partition and it cannot be attached again:"
                " rows of days without a partition wait in the spool",
                table=DEFAULT_PARTITION,
                error_class=type(exc).__name__,
            )

    def _forget_schema_if_gone(self, exc: BaseException) -> None:
        """After the database or its tables vanished, the next connect creates them again."""
        if getattr(exc, "sqlstate", None) in _SCHEMA_GONE and self.migrated:
            log.warning("database schema missing: it is created again at the next connect")
            self.migrated = False

    async def close(self) -> None:
        """Close the connection (gracefully if possible)."""
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    def abandon(self) -> None:
        """Drop the connection at once (after a timeout its state is unknown)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()

    async def ensure_partitions(self, days: Iterable[date]) -> None:
        """Create the daily partitions of `days` that do not exist yet.

        Days outside [today - retention, today + 2] get none: their rows go to
        the default partition, so a switch with a wrong clock cannot make the
        daemon create partitions without end.
        """
        assert self.conn is not None
        today = datetime.now(UTC).date()
        oldest = today - timedelta(days=self.retention_days)
        newest = today + timedelta(days=2)
        for day in sorted(set(days) - self._known_days):
            if not oldest <= day <= newest:
                continue
            name = partition_name(day)
            try:
                await self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF cdrs "
                    f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
                )
            except asyncpg.CheckViolationError:
                # rows of that day already sit in the default partition: keep using it
                log.warning(
                    "partition not created: its rows are in the default partition", table=name
                )
            except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
                pass  # another collector created it at the same moment
            self._known_days.add(day)

    async def write(self, rows: Sequence[StoredCdr]) -> WriteResult:
        """Commit one batch idempotently; raise RetryableError or PermanentError."""
        conn = self.conn
        if conn is None or conn.is_closed():
            raise RetryableError("not connected")
        kinds = {row.kind for row in rows}
        try:
            days = {call_day(row) for row in rows if row.kind in _CLOSING} - self._known_days
            if days:
                try:
                    await self.ensure_partitions(days)
                except asyncpg.PostgresError as exc:
                    # not about the rows: without their partition they go to the default one
                    if exc.sqlstate and exc.sqlstate[:2] not in ("08", "57"):
                        log.warning("partition not created", error_class=type(exc).__name__)
                    else:
                        raise
            result = WriteResult()
            async with conn.transaction():
                await conn.copy_records_to_table(STAGING_TABLE, records=rows, columns=COPY_COLUMNS)
                if "start" in kinds or "interim" in kinds:
                    await conn.execute(UPSERT_OPEN_CALLS)
                if not kinds.isdisjoint(_CLOSING):
                    sources = self._reconcile_sources
                    if sources is None:
                        result.stored.extend(await conn.fetch(INSERT_STOPS))
                    else:
                        result.stored.extend(
                            await conn.fetch(INSERT_STOPS_RECONCILE, list(sources) or None)
                        )
                    stops = sum(1 for row in rows if row.kind == "stop")
                    # (an "end" row stored hides one duplicate Stop from this count at most)
                    result.duplicates = max(0, stops - len(result.stored))
                if "reset" in kinds:
                    await conn.execute(RECORD_RESETS)
                    result.stored.extend(await conn.fetch(CLOSE_BY_RESET))
            return result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            error = classify(exc)
            if isinstance(error, RetryableError):
                self.abandon()
            raise error from None


async def open_admin_connection(config: DatabaseConfig) -> asyncpg.Connection:
    """A short-lived connection for commands (migrate, purge, erase), UTC session."""
    return await asyncpg.connect(
        config.dsn,
        timeout=config.connect_timeout_ms / 1000,
        server_settings={"application_name": "cdr-collector-admin", "timezone": "UTC"},
    )


def summarize(stored: Iterable[Any]) -> dict[str, int]:
    """Count stored rows per source."""
    counts: dict[str, int] = {}
    for row in stored:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    return counts
