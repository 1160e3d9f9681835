"""The two shapes a call record takes inside the daemon.

`CallRecord` (declared in collector.record, which is compiled, and exported
here with the record kinds and protocols) is what a receiver understood from
the wire: normalized field names, UTC datetimes, but still holding the raw
phone numbers and the session id. It never leaves the process. `StoredCdr`
is what the pipeline makes of it after redaction: the only shape that may reach the database, the spool, a log
line or a metric. Nothing in `StoredCdr` may hold a full phone number, an IP
address or a SIP URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, NamedTuple

from collector.record import CallRecord as CallRecord
from collector.record import Protocol as Protocol
from collector.record import RecordKind as RecordKind


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
