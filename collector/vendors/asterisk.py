"""Asterisk's CDRs as cdr_csv writes them to Master.csv, read as call records.

Facts from Asterisk's cdr_csv.c that this module follows. Each line holds,
in this order: accountcode, src (the caller's number), dst (the dialled
number), dcontext, clid (the caller id, "Name" <number>), channel,
dstchannel, lastapp, lastdata, start, answer, end, duration (end - start,
in seconds), billsec (end - answer), disposition, amaflags. Then, each only
when its option is on: uniqueid (`loguniqueid`), userfield
(`loguserfield`), and peeraccount, linkedid, sequence (`newcdrcolumns`).
Every field is quoted (durations and the sequence are not); a time is
"YYYY-MM-DD HH:MM:SS" in the switch's local time (in UTC with
`usegmtime`), and an empty field when it never happened (no answer).

The decisions, and why:

- The line's column count says which options were on: 16, 18, 19 and 21
  columns are unambiguous; with 17 (or 20) the extra column is the uniqueid
  when it has a uniqueid's form (epoch.sequence, optionally after the
  system name and a dash), else the userfield.
- The billable duration is billsec, not duration: duration includes the
  ringing. A leg is answered when its disposition is ANSWERED, else when it
  has an answer time or billable seconds.
- The disposition gives the Q.850 cause: ANSWERED 16 (normal clearing),
  BUSY 17, NO ANSWER 19 (Asterisk also writes it when the caller hung up
  while it rang: the file cannot tell those apart), CONGESTION 34 (no
  circuit available). FAILED names no cause (the channel could not be
  reached, for any reason), so none is stored and the call counts as failed.
- The record's session is the uniqueid with the sequence (newcdrcolumns) or
  else the destination channel: one channel that dials several peers makes
  one CDR per peer under one uniqueid. Without a uniqueid, a digest of the
  whole line. Either way the setup time as written joins the record key, so
  a line read twice is one row and two lines are two.
- linkedid (newcdrcolumns) joins the rows of one call as their correlation.
- clid, channel, dstchannel, lastapp and lastdata carry caller names, SIP
  URIs, peer names and addresses: they are never part of a record (the
  destination channel only of its keyed identity), never logged.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from collector.model import CallRecord, Protocol, RecordKind
from collector.vendors.csv_cdr import (
    LineError,
    identifier,
    leg_times,
    line_digest,
)

#: the columns every Master.csv line has, in order
BASE_COLUMNS: Final = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
#: what `newcdrcolumns` appends
NEW_COLUMNS: Final = ("peeraccount", "linkedid", "sequence")
_SRC, _DST = 1, 2

#: disposition -> Q.850 cause (None: the disposition names none)
DISPOSITION_CAUSES: Final[dict[str, int | None]] = {
    "ANSWERED": 16,
    "BUSY": 17,
    "NO ANSWER": 19,
    "CONGESTION": 34,
    "FAILED": None,
}

#: a uniqueid: epoch seconds, a dot, a counter; optionally after "systemname-"
_UNIQUEID = re.compile(r"(?:[^\s,]+-)?\d{9,11}\.\d+")


def columns(fields: list[str]) -> tuple[str, ...]:
    """The names of a line's columns, from how many it has (see the module docstring)."""
    extra = len(fields) - len(BASE_COLUMNS)
    new = extra >= 3
    optional = extra - 3 if new else extra
    if extra < 0 or optional > 2:
        raise LineError(
            "column_count",
            fields[_SRC] if len(fields) > _DST else None,
            fields[_DST] if len(fields) > _DST else None,
        )
    named: tuple[str, ...] = ()
    if optional == 2:
        named = ("uniqueid", "userfield")
    elif optional == 1:
        first = fields[len(BASE_COLUMNS)]
        named = ("uniqueid",) if _UNIQUEID.fullmatch(first) else ("userfield",)
    return BASE_COLUMNS + named + (NEW_COLUMNS if new else ())


def is_header(fields: list[str]) -> bool:
    """A title line an export tool put first ("accountcode","src",...), not a CDR."""
    return len(fields) >= len(BASE_COLUMNS) and fields[9].strip().lower() == "start"


def csv_record(fields: list[str], source: str, zone: ZoneInfo, received_at: datetime) -> CallRecord:
    """The call leg one Master.csv line describes; LineError when it is none."""
    names = columns(fields)
    value = dict(zip(names, fields, strict=True))
    calling, called = value["src"] or None, value["dst"] or None
    start, answer, end, billsec = leg_times(
        (value["start"], value["answer"], value["end"]),
        value["billsec"],
        value["duration"],
        zone,
        calling,
        called,
    )
    disposition = value["disposition"].strip().upper()
    cause = DISPOSITION_CAUSES.get(disposition)
    if disposition == "ANSWERED":
        answered: bool | None = True
    elif disposition in DISPOSITION_CAUSES:
        answered = answer is not None or bool(billsec)
    else:
        answered = None
    uniqueid = identifier(value.get("uniqueid", ""))
    if uniqueid is not None:
        other = value.get("sequence") or value["dstchannel"]
        session = f"{uniqueid}\x1f{other}"
    else:
        session = line_digest(fields)
    return CallRecord(
        kind=RecordKind.STOP,
        source=source,
        protocol=Protocol.FILE,
        session_id=session,
        event_time=end or start or received_at,
        setup_stamp=value["start"] or None,
        account=value["accountcode"] or None,
        calling=calling,
        called=called,
        setup_time=start,
        connect_time=answer if answered is not False else None,
        disconnect_time=end,
        duration_ms=billsec * 1000 if billsec is not None and answered is not False else None,
        answered=answered,
        disconnect_cause=cause if disposition != "ANSWERED" or answered else None,
        correlation=identifier(value.get("linkedid", "")),
    )
