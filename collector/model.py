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
from typing import Annotated, NamedTuple


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
    FILE = "file"


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
    #: a time or duration the switch sent was not believable (see pipeline.plausible)
    times_implausible: bool = False
    incomplete: bool = False
    correlation: str | None = None
    #: the SIP Call-ID of this leg where the record knows it (a SIP dialog's, Kamailio's
    #: accounting, FreeSWITCH's sip_call_id): joins a billing record to the signalling
    #: of its call (see collector.reconcile); the pipeline stores only its keyed hash
    call_id: str | None = None

    def __repr__(self) -> str:
        # never the numbers or the session id: a repr can end up in a log or a traceback
        return (
            f"CallRecord(kind={self.kind.value}, source={self.source!r}, "
            f"protocol={self.protocol.value}, duration_ms={self.duration_ms}, "
            f"answered={self.answered}, sip_code={self.sip_code}, "
            f"disconnect_cause={self.disconnect_cause})"
        )


@dataclass(frozen=True, slots=True)
class Column:
    """How one field of `StoredCdr` is stored: the one declaration every column list derives from.

    The staging table, the COPY column list, the SQL that turns staged rows
    into `cdrs` and `open_calls` rows, the spool's frames and the refused-row
    files are all built from these (`collector.sink.columns`). Adding a column
    is: a field here, the code that fills it, and a migration adding it to
    the tables (a test compares the migrated tables with this declaration).
    """

    #: SQL type in the staging table, and in `cdrs` / `open_calls` where it is a column there
    sql: str
    #: what a row written before this field existed (an older spool frame or
    #: refused-row file) holds for it
    default: object = None
    #: a column of `cdrs` (else it only steers the sink: the record kind, the event time)
    stored: bool = True
    #: kept in `open_calls` by a Start, so a Stop that lacks it is completed from there
    carried: bool = False
    #: its name in `cdrs` and `open_calls` when that differs from the field's
    column: str | None = None


_CARRIED_TEXT = Column("text", carried=True)


class StoredCdr(NamedTuple):
    """A redacted record: the only shape that is stored, spooled or refused.

    Each field's `Column` says how it is stored. `record_key` identifies the
    call leg for exactly-once storage and joins a Stop to its Start (both
    carry the same key). It is a keyed hash, never the raw session id.
    """

    kind: Annotated[str, Column("text", default="stop", stored=False)]
    record_key: Annotated[bytes, Column("bytea", carried=True)]
    source: Annotated[str, Column("text", carried=True)]
    protocol: Annotated[str, Column("text", carried=True)]
    account: Annotated[str | None, _CARRIED_TEXT]
    leg: Annotated[str, Column("text", default="", carried=True)]
    setup_time: Annotated[datetime | None, Column("timestamptz", carried=True)]
    connect_time: Annotated[datetime | None, Column("timestamptz", carried=True)]
    disconnect_time: Annotated[datetime | None, Column("timestamptz")]
    duration_ms: Annotated[int | None, Column("bigint")]
    answered: Annotated[bool | None, Column("boolean")]
    disconnect_cause: Annotated[int | None, Column("smallint")]
    sip_code: Annotated[int | None, Column("smallint")]
    pdd_ms: Annotated[int | None, Column("integer")]
    called_prefix: Annotated[str | None, _CARRIED_TEXT]
    called_country: Annotated[str | None, _CARRIED_TEXT]
    called_destination: Annotated[str | None, _CARRIED_TEXT]
    called_masked: Annotated[str | None, _CARRIED_TEXT]
    called_hmac: Annotated[str | None, _CARRIED_TEXT]
    calling_country: Annotated[str | None, _CARRIED_TEXT]
    calling_hmac: Annotated[str | None, _CARRIED_TEXT]
    correlation_hmac: Annotated[str | None, Column("text", carried=True, column="correlation")]
    call_id_hmac: Annotated[str | None, Column("text", carried=True, column="call_id_hash")]
    #: the called number starts with a prefix of `[fraud] high_risk_prefixes_file`
    #: (None: no usable called number)
    high_risk: Annotated[bool | None, Column("boolean", carried=True)]
    times_derived: Annotated[bool, Column("boolean", default=False, carried=True)]
    clock_unsynced: Annotated[bool, Column("boolean", default=False, carried=True)]
    times_implausible: Annotated[bool, Column("boolean", default=False, carried=True)]
    incomplete: Annotated[bool, Column("boolean", default=False)]
    event_time: Annotated[datetime, Column("timestamptz", stored=False)]
    received_at: Annotated[datetime, Column("timestamptz", carried=True)]


#: field names of StoredCdr, in order (the staging table's columns)
STORED_FIELDS: tuple[str, ...] = StoredCdr._fields
