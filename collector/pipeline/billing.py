"""Billing facts: whether a call leg was answered and how long it is billed.

The one place that decides them. A receiver (or a vendor's rules) states
what its packet or document says: an answer it reports, a duration it
sends, the connect and disconnect times. What is left open is decided
here, by one rule, for every protocol:

- answered: what the record says; else it was connected (a connect time)
  or billed (a positive duration);
- billable duration: 0 when not answered; else the duration sent; else
  connect to disconnect, unless that span is longer than any call believed
  (`MAX_DURATION_MS`), which is not billed and flags the times.

`settle` applies the rule to a record before it is redacted, after
pipeline.plausible has dropped the times it does not believe: the span is
then taken between the times as sent (`sent`), as a duration sent is kept
when believable, since two times of one clock measure a call even when that
clock is wrong. The same rule
is needed in SQL for a Stop that lacks its connect time or its duration:
only the database holds the durable Start that completes it (Kamailio's
per-transaction Stop, a SIP BYE after a restart), so the sink's statements
take their expressions from `answered_sql` and `duration_sql` below rather
than writing the rule again. Pure functions, no I/O.
"""

from __future__ import annotations

from collector.pipeline.plausible import MAX_DURATION_MS
from collector.record import KIND_STOP, CallRecord


def settle(record: CallRecord, sent: CallRecord | None = None) -> CallRecord:
    """Decide what a finished call leg leaves open about its answer and billable time.

    Changes `record` in place (only a Stop's `answered`, `duration_ms` and
    `times_implausible`) and returns it. `sent` is the record as its receiver
    made it, before its times were mended (pipeline.plausible): its connect
    and disconnect times give the span (default: `record`'s own). A Stop that
    shows neither an answer nor its absence (no answer flag, connect time or
    duration) stays open: the sink completes it from its Start.
    """
    duration_ms = record.duration_ms
    connect = record.connect_time
    times = record if sent is None else sent
    start, end = times.connect_time, times.disconnect_time
    if duration_ms is None and start is not None and end is not None:
        duration_ms = max(0, round((end - start).total_seconds() * 1000))
        if duration_ms > MAX_DURATION_MS:
            # longer than any call believed: not billed, and the times flagged
            duration_ms = None
            record.times_implausible = True
    answered = record.answered
    if answered is None and record.kind is KIND_STOP:
        if duration_ms is not None:
            answered = duration_ms > 0 or connect is not None
        elif connect is not None:
            answered = True
    if answered is False:
        duration_ms = 0
    record.answered = answered
    record.duration_ms = duration_ms
    return record


def answered_sql(answered: str, connect_time: str, duration_ms: str) -> str:
    """The rule for `answered` as an SQL expression over the given column expressions."""
    return f"coalesce({answered}, {connect_time} IS NOT NULL OR coalesce({duration_ms}, 0) > 0)"


def duration_sql(answered: str, duration_ms: str, span_ms: str) -> str:
    """The rule for the billable duration as an SQL expression: `answered` is the decided
    answer, `span_ms` the milliseconds from connect to disconnect (NULL when unknown)."""
    return f"""CASE WHEN NOT {answered} THEN 0
         WHEN {duration_ms} IS NOT NULL THEN {duration_ms}
         WHEN {span_ms} <= {MAX_DURATION_MS} THEN {span_ms}
         ELSE 0 END"""
