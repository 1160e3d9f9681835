"""The intake: the one stage between the receivers and the writer.

A receiver holds only its intake (the OpenTelemetry Collector's
`nextConsumer`, Vector's source sender): it hands over each `CallRecord`
with the time it arrived and, when someone waits for durability, an
acknowledgement. The service composes the intake: normalize (times made
believable, billing facts decided), redact, submit to the writer. So a
receiver never sees the redactor or the writer, and a reload swaps the
pseudonym keys in one place. `accept` never awaits and never does I/O; it
returns False when the record was not taken (the writer's queue is full or
closing), and then the acknowledgement is never called: the receiver
answers as for an overload (RADIUS leaves the request unanswered, JSON
answers 503, SIP counts the call lost).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from collector.model import StoredCdr
from collector.pipeline.billing import settle
from collector.pipeline.plausible import mend
from collector.pipeline.redact import Redactor
from collector.record import CallRecord

#: told True once the record is durable (committed, or fsync'd to the spool), False
#: when it could not be made durable; called at most once, never from `accept` itself
Ack = Callable[[bool], None]

#: where redacted rows go (the writer's `submit`): False when not taken
Submit = Callable[[StoredCdr, Ack | None], bool]

#: where redacted rows that will not be stored are kept (the writer's `set_aside`)
SetAside = Callable[[StoredCdr], None]


class Intake(Protocol):
    """What a receiver hands its records to."""

    def accept(self, record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        """Take one record that arrived at `received_at`; False when it was not taken.

        `ack`, when given, is called once the record is durable or known not to be.
        """
        ...

    def set_aside(self, record: CallRecord, received_at: datetime) -> None:
        """Keep, redacted and not stored, what could be read of input that is no valid
        record (a damaged line of a CDR file): with the rows the database rejected."""
        ...


def normalize(record: CallRecord, received_at: datetime, redactor: Redactor) -> CallRecord:
    """The record with believable times (pipeline.plausible) and its answer and billable
    duration decided (pipeline.billing, from the times as sent): what redaction expects."""
    return settle(mend(record, received_at, redactor.max_age), record)


class Pipeline:
    """The service's intake: normalize, redact, submit."""

    def __init__(self, redactor: Redactor, submit: Submit, keep: SetAside | None = None) -> None:
        #: replaced on reload (new keys, regions, rate deck); the one place that holds it
        self.redactor = redactor
        self.submit = submit
        self.keep = keep

    def accept(self, record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        """Normalize, redact and submit one record; False when the writer refused it."""
        redactor = self.redactor
        row = redactor.redact(normalize(record, received_at, redactor), received_at)
        return self.submit(row, ack)

    def set_aside(self, record: CallRecord, received_at: datetime) -> None:
        """Redact one record that will not be stored and keep it with the rejected rows."""
        if self.keep is not None:
            redactor = self.redactor
            self.keep(redactor.redact(normalize(record, received_at, redactor), received_at))
