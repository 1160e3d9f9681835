"""A stand-in for the service's intake, for receivers built in-process.

A receiver holds only its intake; these tests give it one that records what
it was handed (each record, its arrival time and its acknowledgement) and
lets the test fire the acknowledgements, instead of a writer and a database.
"""

from __future__ import annotations

from datetime import datetime

from collector.model import CallRecord
from collector.pipeline.intake import Ack


def _no_ack(_durable: bool) -> None:
    """The acknowledgement of a record nobody waits on (a SIP call)."""


class FakeIntake:
    """Takes every record (or none, when `refusing`) and keeps it with its acknowledgement."""

    def __init__(self) -> None:
        self.held: list[tuple[CallRecord, Ack]] = []
        #: what was set aside (input that was no valid record)
        self.aside: list[CallRecord] = []
        #: refuse every record, as an intake whose writer queue is full
        self.refusing = False

    def accept(self, record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        if self.refusing:
            return False
        del received_at
        self.held.append((record, ack or _no_ack))
        return True

    def set_aside(self, record: CallRecord, received_at: datetime) -> None:
        del received_at
        self.aside.append(record)

    @property
    def records(self) -> list[CallRecord]:
        """What was taken, in order."""
        return [record for record, _ack in self.held]
