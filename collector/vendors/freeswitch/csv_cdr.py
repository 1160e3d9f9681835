"""FreeSWITCH's mod_cdr_csv lines (its default template), read as call records.

The template mod_cdr_csv ships as its default ("example" in
cdr_csv.conf.xml) writes, each quoted: caller_id_name, caller_id_number,
destination_number, context, start_stamp, answer_stamp, end_stamp,
duration, billsec, hangup_cause, uuid, bleg_uuid, accountcode, read_codec,
write_codec. Older releases' template ends after accountcode (13 columns),
and the other shipped templates (snom, linksys) append to the same first
15: so the first 13 columns are read by position and any more are ignored.
Stamps are "YYYY-MM-DD HH:MM:SS" in the switch's local time, an empty field
when the leg never got there (no answer).

The decisions, and why:

- hangup_cause is a name of `causes` (its Q.850 cause, the SIP code it
  implies, whether it ends a leg before answer) through `leg_end`, as for
  mod_radius_cdr and mod_json_cdr: one leg is stored with one
  disconnect_cause whichever way it came.
- billsec is the billable duration (duration includes the ringing); the leg
  shows it was answered by an answer stamp or billable seconds.
- The session is the leg's uuid (a digest of the whole line when it is
  missing), the setup stamp as written joins the key.
- A leg with a bleg_uuid is an A-leg that was bridged: its own uuid is the
  call's correlation, as on the JSON path. Other legs' A-leg the line does
  not say: no correlation.
- caller_id_name is never part of a record: it may hold anything, a number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from collector.model import CallRecord, Protocol, RecordKind
from collector.vendors.csv_cdr import LineError, identifier, leg_times, line_digest
from collector.vendors.freeswitch import legs
from collector.vendors.freeswitch.causes import cause_of_name, leg_end

#: the default template's columns, in order
COLUMNS: Final = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
    "read_codec",
    "write_codec",
)
#: the columns a line must have (the older template's)
REQUIRED_COLUMNS: Final = 13


def is_header(fields: list[str]) -> bool:
    """A title line ("caller_id_name","caller_id_number",...), not a CDR."""
    return len(fields) >= REQUIRED_COLUMNS and fields[4].strip().lower() == "start_stamp"


def csv_record(fields: list[str], source: str, zone: ZoneInfo, received_at: datetime) -> CallRecord:
    """The call leg one mod_cdr_csv line describes; LineError when it is none."""
    if len(fields) < REQUIRED_COLUMNS:
        calling = fields[1] or None if len(fields) > 2 else None
        called = fields[2] or None if len(fields) > 2 else None
        raise LineError("column_count", calling, called)
    value = dict(zip(COLUMNS, fields, strict=False))
    calling, called = value["caller_id_number"] or None, value["destination_number"] or None
    start, answer, end, billsec = leg_times(
        (value["start_stamp"], value["answer_stamp"], value["end_stamp"]),
        value["billsec"],
        value["duration"],
        zone,
        calling,
        called,
    )
    shown: bool | None = True if answer is not None or billsec else None
    if shown is None and billsec == 0 and answer is None:
        shown = False
    end_of_leg = leg_end(cause_of_name(value["hangup_cause"], None), shown)
    uuid = identifier(value["uuid"])
    bridged = identifier(value["bleg_uuid"]) is not None
    return CallRecord(
        kind=RecordKind.STOP,
        source=source,
        protocol=Protocol.FILE,
        session_id=uuid if uuid is not None else line_digest(fields),
        event_time=end or start or received_at,
        leg=legs.leg(Protocol.FILE, None),
        setup_stamp=value["start_stamp"] or None,
        account=value["accountcode"] or None,
        calling=calling,
        called=called,
        setup_time=start,
        connect_time=answer,
        disconnect_time=end,
        duration_ms=billsec * 1000 if billsec is not None else None,
        answered=end_of_leg.answered,
        disconnect_cause=end_of_leg.disconnect_cause,
        sip_code=end_of_leg.sip_code,
        correlation=uuid if bridged else None,
    )
