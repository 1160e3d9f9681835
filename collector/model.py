"""The two shapes a call record takes inside the daemon.

`CallRecord` is what a receiver understood from the wire: normalized field
names, UTC datetimes, but still holding the raw phone numbers and the session
id. It never leaves the process. `StoredCdr` is what the pipeline makes of it
after redaction: the only shape that may reach the database, the spool, a log
line or a metric. Nothing in `StoredCdr` may hold a full phone number, an IP
address or a SIP URI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


class RecordKind(enum.StrEnum):
    """What a record asks the sink to do with it."""

    #: a finished call leg (RADIUS Stop or Failed, a SIP dialog that ended, a JSON CDR)
    STOP = "stop"
    #: a call leg began (RADIUS Start): kept as an open call, completes a later Stop
    START = "start"
    #: a call leg is still up (RADIUS Interim-Update): refreshes the open call
    INTERIM = "interim"
    #: the sending switch restarted (Accounting-On/Off): its calls open before
    #: `event_time` are closed as incomplete
    RESET = "reset"
    #: the end of a call leg known only from its durable start (a SIP BYE seen
    #: after the collector restarted): stored only when an open call has its key,
    #: completed from it, and otherwise dropped without a trace
    END = "end"


class Protocol(enum.StrEnum):
    """How a record reached the daemon; stored in `cdrs.protocol`."""

    RADIUS = "radius"
    SIP = "sip"
    JSON = "json"


@dataclass(slots=True, repr=False)
class CallRecord:
    """One call leg as a receiver decoded it, before redaction.

    Times are timezone-aware UTC datetimes or None. `setup_stamp` is the setup
    time exactly as the packet carried it (None when the packet has none): it
    joins the record key so that a session id reused after a switch reboot makes
    a new record, while a derived time never does (it shifts between
    retransmissions).
    """

    kind: RecordKind
    source: str
    protocol: Protocol
    session_id: str
    event_time: datetime
    leg: str = ""
    setup_stamp: str | None = None
    account: str | None = None
    calling: str | None = None
    called: str | None = None
    setup_time: datetime | None = None
    connect_time: datetime | None = None
    disconnect_time: datetime | None = None
    duration_ms: int | None = None
    answered: bool | None = None
    disconnect_cause: int | None = None
    sip_code: int | None = None
    pdd_ms: int | None = None
    times_derived: bool = False
    clock_unsynced: bool = False
    incomplete: bool = False
    correlation: str | None = None

    def __repr__(self) -> str:
        # never the numbers or the session id: a repr can end up in a log or a traceback
        return (
            f"CallRecord(kind={self.kind.value}, source={self.source!r}, "
            f"protocol={self.protocol.value}, duration_ms={self.duration_ms}, "
            f"answered={self.answered}, sip_code={self.sip_code}, "
            f"disconnect_cause={self.disconnect_cause})"
        )


class StoredCdr(NamedTuple):
    """A redacted record, in the column order of the sink's staging table.

    `record_key` identifies the call leg for exactly-once storage and joins a
    Stop to its Start (both carry the same key). It is a keyed hash, never the
    raw session id.
    """

    kind: str
    record_key: bytes
    source: str
    protocol: str
    account: str | None
    leg: str
    setup_time: datetime | None
    connect_time: datetime | None
    disconnect_time: datetime | None
    duration_ms: int | None
    answered: bool | None
    disconnect_cause: int | None
    sip_code: int | None
    pdd_ms: int | None
    called_prefix: str | None
    called_country: str | None
    called_destination: str | None
    called_masked: str | None
    called_hmac: str | None
    calling_country: str | None
    calling_hmac: str | None
    correlation_hmac: str | None
    times_derived: bool
    clock_unsynced: bool
    incomplete: bool
    event_time: datetime
    received_at: datetime


#: column names of StoredCdr, in order (the staging table and the spool use them)
STORED_FIELDS: tuple[str, ...] = StoredCdr._fields
