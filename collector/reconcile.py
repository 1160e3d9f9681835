"""Revenue assurance: calls answered in SIP checked against their billing records.

A collector with a `[reconcile]` section keeps each answered SIP call that
has a Call-ID in `reconcile_pending` as the writer stores it (the same
statement: `sink.postgres.INSERT_STOPS_RECONCILE`). Every `interval_s`,
the reconciler takes the pending calls whose `billing_wait_s` is over and
looks for a billing row of the same Call-ID hash (RADIUS, JSON, CDR file,
from any source). A call without one is listed in `reconcile_findings` as
'unbilled'; one whose closest billed duration differs from the signalled one
by more than `duration_tolerance_ms` as 'duration_mismatch'. The pending
rows go in the same statement, so a call is checked once however many
collectors share the database (`FOR UPDATE SKIP LOCKED` hands each row to
one of them), and the counters grow by what was inserted. All its state is
in the database: a restart loses nothing and checks nothing twice.

The link is the SIP Call-ID, kept only as a keyed hash (`call_id_hash`).
SIP dialogs, Kamailio's acc_radius (Acct-Session-Id) and FreeSWITCH's
mod_json_cdr (`variables.sip_call_id`) carry it; FreeSWITCH's mod_radius_cdr
sends only the leg's uuid, which is the Call-ID when the sofia profile sets
`inbound-use-callid-as-uuid` and `outbound-use-uuid-as-callid`.

It never runs while the database is away or the spool holds records (a
billing row may be waiting there), and it never logs or stores a number or
a Call-ID: the findings hold keys, times and durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from collector.config import Config, ReconcileConfig
from collector.logs import get_logger
from collector.sink.postgres import open_admin_connection
from collector.telemetry import Health, Telemetry

log = get_logger(__name__)

#: pending calls checked per statement (one transaction each)
BATCH_ROWS = 1000

#: how far from the SIP call's times a billing row's call time may lie: a switch
#: whose clock is off by hours (a time zone) still matches, and each look-up reads
#: the daily partitions of three days at most
BILLING_WINDOW = timedelta(days=1)

#: how often a collector without [reconcile] looks whether a reload turned it on
IDLE_INTERVAL_S = 30.0

UNBILLED = "unbilled"
DURATION_MISMATCH = "duration_mismatch"

#: one batch of due calls: taken (locked, skipping those another collector holds),
#: matched to their closest billing row, the findings inserted, the calls deleted.
#: $1 due when received before, $2 batch size, $3 tolerance (ms), $4 window
CHECK_DUE = f"""
WITH due AS (
    SELECT * FROM reconcile_pending
    WHERE received_at <= $1
    ORDER BY received_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), billed AS (
    SELECT d.record_key, b.duration_ms, b.source, b.protocol, b.record_key AS billing_key
    FROM due d
    CROSS JOIN LATERAL (
        SELECT c.duration_ms, c.source, c.protocol, c.record_key FROM cdrs c
        WHERE c.call_id_hash = d.call_id_hash AND c.call_id_hash IS NOT NULL
          AND c.protocol <> 'sip'
          AND c.call_time >= d.call_time - $4::interval
          AND c.call_time < coalesce(d.disconnect_time, d.call_time) + $4::interval
        ORDER BY abs(c.duration_ms - d.duration_ms), c.record_key
        LIMIT 1
    ) b
), found AS (
    INSERT INTO reconcile_findings (record_key, finding, source, call_id_hash, call_time,
        connect_time, disconnect_time, signalled_ms, billed_ms, billing_source,
        billing_protocol, billing_record_key)
    SELECT d.record_key,
        CASE WHEN b.billing_key IS NULL THEN '{UNBILLED}' ELSE '{DURATION_MISMATCH}' END,
        d.source, d.call_id_hash, d.call_time, d.connect_time, d.disconnect_time,
        d.duration_ms, b.duration_ms, b.source, b.protocol, b.billing_key
    FROM due d LEFT JOIN billed b ON b.record_key = d.record_key
    WHERE b.billing_key IS NULL OR abs(b.duration_ms - d.duration_ms) > $3
    ON CONFLICT (record_key) DO NOTHING
    RETURNING finding, source
), gone AS (
    DELETE FROM reconcile_pending p USING due d WHERE p.record_key = d.record_key
)
SELECT n.checked, f.finding, f.source, f.calls
FROM (SELECT count(*) AS checked FROM due) n
LEFT JOIN (SELECT finding, source, count(*) AS calls FROM found GROUP BY finding, source) f
    ON true
"""


@dataclass
class ReconcileResult:
    """What one reconciliation found: calls checked, and findings by SIP source."""

    checked: int = 0
    unbilled: dict[str, int] = field(default_factory=dict)
    mismatched: dict[str, int] = field(default_factory=dict)

    @property
    def found(self) -> int:
        """Findings inserted (unbilled and mismatched calls)."""
        return sum(self.unbilled.values()) + sum(self.mismatched.values())


async def reconcile(
    conn: asyncpg.Connection, config: ReconcileConfig, now: datetime | None = None
) -> ReconcileResult:
    """Check every pending call whose wait is over (received `billing_wait_s` before
    `now`), a batch a transaction, until none is due; what was found."""
    due_before = (now or datetime.now(UTC)) - timedelta(seconds=config.billing_wait_s)
    result = ReconcileResult()
    while True:
        rows = await conn.fetch(
            CHECK_DUE, due_before, BATCH_ROWS, config.duration_tolerance_ms, BILLING_WINDOW
        )
        checked = int(rows[0]["checked"])
        result.checked += checked
        for row in rows:
            if row["finding"] is None:
                continue
            tally = result.unbilled if row["finding"] == UNBILLED else result.mismatched
            tally[row["source"]] = tally.get(row["source"], 0) + int(row["calls"])
        if checked < BATCH_ROWS:
            return result


class Reconciler:
    """The task that reconciles every `interval_s` while the section is configured.

    It reads the configuration through `config_of` at each round, so a reload
    turns it on or off and changes its settings.
    """

    def __init__(
        self, config_of: Callable[[], Config], telemetry: Telemetry, health: Health
    ) -> None:
        self.config_of = config_of
        self.telemetry = telemetry
        self.health = health

    async def run(self) -> None:
        """Reconcile at each interval, for ever (cancelled at stop)."""
        while True:
            section = self.config_of().reconcile
            await asyncio.sleep(section.interval_s if section is not None else IDLE_INTERVAL_S)
            await self.run_once()

    async def run_once(self) -> ReconcileResult | None:
        """One round, unless the section is off, the database away or the spool holds
        records; what it found (None when it did not run)."""
        config = self.config_of()
        section, database = config.reconcile, config.database
        if section is None or database is None:
            return None
        health = self.health
        if not health.database_up or health.spool_pending:
            log.debug("reconciliation deferred: the database is away or the spool holds records")
            return None
        try:
            conn = await open_admin_connection(database)
            try:
                result = await reconcile(conn, section)
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            log.warning("reconciliation failed", error_class=type(exc).__name__)
            return None
        self.count(result)
        return result

    def count(self, result: ReconcileResult) -> None:
        """Add what was found to the counters; one log line when anything was."""
        for source, calls in result.unbilled.items():
            self.telemetry.unbilled_calls.labels(source).inc(calls)
        for source, calls in result.mismatched.items():
            self.telemetry.duration_mismatch.labels(source).inc(calls)
        if result.found:
            log.info(
                "calls not billed as signalled",
                calls=result.checked,
                unbilled=sum(result.unbilled.values()),
                mismatched=sum(result.mismatched.values()),
            )
