"""Times and durations a switch cannot have meant: mended, flagged, never passed on as true.

A 32-bit field at its maximum (Acct-Session-Time or Acct-Delay-Time of
2^32-1), an Event-Timestamp of 0, a gateway whose clock was never set (a
connect time in 1900) or one stamped 2106: taken at face value they give
calls dated 1890 (which the next retention run deletes, while their record
key then refuses the corrected resend) or 79 years of billable time. This
processor checks every record against a window around its arrival: no older
than retention keeps anything, and at least a year (`max_age`: a late record
of last month, replayed from a switch's error log, is believable and keeps
its own times, even when retention then deletes it), no further ahead than a
switch's clock can plausibly run (`MAX_CLOCK_AHEAD`), and no call longer than
`MAX_DURATION_MS`. What falls outside is replaced by the arrival time where
the record needs a time (its event, the end of a Stop) and dropped
otherwise, and the record is flagged `times_implausible` (a column of its
own, so billing can find them). The record key is untouched: it never holds
a derived time. A plain function on one record, no I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.record import KIND_END, KIND_STOP, CallRecord

#: the longest call billed as such; a longer duration is not believed (nor computed in SQL)
MAX_DURATION_MS = 10 * 86400 * 1000
#: how far ahead of the arrival a switch's clock may run before its times are not believed
MAX_CLOCK_AHEAD = timedelta(days=1)

#: the shortest look back: a record this old at its arrival is still believed
MIN_MAX_AGE = timedelta(days=366)


def max_age(retention_days: int) -> timedelta:
    """How old a time may be at arrival and still be believed: retention, at least a year."""
    return max(timedelta(days=retention_days), MIN_MAX_AGE)


#: kinds that end a call: their end time, if not believable, becomes the arrival time
_ENDING = frozenset({KIND_STOP, KIND_END})


def mend(record: CallRecord, received_at: datetime, max_age: timedelta) -> CallRecord:
    """`record` itself when its times are believable, else a mended copy flagged
    `times_implausible` (and `times_derived` where the arrival time stands in)."""
    oldest = received_at - max_age
    newest = received_at + MAX_CLOCK_AHEAD
    event = record.event_time
    setup, connect, disconnect = record.setup_time, record.connect_time, record.disconnect_time
    duration = record.duration_ms
    if (
        oldest <= event <= newest
        and (setup is None or oldest <= setup <= newest)
        and (connect is None or oldest <= connect <= newest)
        and (disconnect is None or oldest <= disconnect <= newest)
        and (duration is None or 0 <= duration <= MAX_DURATION_MS)
    ):
        return record
    derived = record.times_derived
    if not oldest <= event <= newest:
        event, derived = received_at, True
    if setup is not None and not oldest <= setup <= newest:
        setup = None
    if connect is not None and not oldest <= connect <= newest:
        connect = None
    if disconnect is not None and not oldest <= disconnect <= newest:
        disconnect = received_at if record.kind in _ENDING else None
        derived = True
    if duration is not None and not 0 <= duration <= MAX_DURATION_MS:
        duration = None
    mended = record.copy()
    mended.event_time = event
    mended.setup_time = setup
    mended.connect_time = connect
    mended.disconnect_time = disconnect
    mended.duration_ms = duration
    mended.times_derived = derived
    mended.times_implausible = True
    return mended
