"""CDR file lines for tests, in the column orders Asterisk's cdr_csv and FreeSWITCH's
mod_cdr_csv write (see collector.vendors.asterisk and collector.vendors.freeswitch.csv_cdr).

Every number here is fictional: UK numbers from Ofcom's ranges kept for drama
(020 7946 0xxx) and German ones from the range kept for examples.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

#: called numbers as a switch in the UK would log them (national form)
CALLED = "02079460%03d"
#: calling numbers in international form without the plus
CALLING = "44207946%04d"


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def stamp(when: datetime, zone: str = "UTC") -> str:
    """A time as both switches write it: wall time in the switch's zone."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def asterisk_line(
    index: int,
    start: datetime,
    *,
    ring_s: int = 5,
    talk_s: int = 60,
    disposition: str = "ANSWERED",
    zone: str = "UTC",
    uniqueid: bool = True,
    userfield: bool = False,
    new_columns: bool = False,
    account: str = "trunk-a",
) -> str:
    """One Master.csv line (no line end); talk_s 0 with a disposition other than ANSWERED
    leaves the answer time empty, as cdr_csv does."""
    answered = disposition == "ANSWERED"
    answer = start + timedelta(seconds=ring_s)
    end = answer + timedelta(seconds=talk_s if answered else 0)
    called = CALLED % (index % 1000)
    fields = [
        _quoted(account),
        _quoted(CALLING % (index % 10000)),
        _quoted(called),
        _quoted("from-carrier"),
        _quoted(f'"Caller, {index}" <{CALLING % (index % 10000)}>'),
        _quoted(f"SIP/carrier-in-{index:08x}"),
        _quoted(f"SIP/carrier-out-{index:08x}"),
        _quoted("Dial"),
        _quoted(f"SIP/{called}@192.0.2.50,60,tT"),
        _quoted(stamp(start, zone)),
        _quoted(stamp(answer, zone) if answered else ""),
        _quoted(stamp(end, zone)),
        str(int((end - start).total_seconds())),
        str(talk_s if answered else 0),
        _quoted(disposition),
        _quoted("DOCUMENTATION"),
    ]
    if uniqueid:
        fields.append(_quoted(f"pbx1-{int(start.timestamp())}.{index}"))
    if userfield:
        fields.append(_quoted('route=7, note="x"'))
    if new_columns:
        fields += [_quoted(""), _quoted(f"pbx1-{int(start.timestamp())}.{index}"), str(index)]
    return ",".join(fields)


FREESWITCH_HEADER = ",".join(
    _quoted(name)
    for name in (
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
)


def freeswitch_line(
    index: int,
    start: datetime,
    *,
    ring_s: int = 4,
    talk_s: int = 30,
    cause: str = "NORMAL_CLEARING",
    zone: str = "UTC",
    uuid: str | None = None,
) -> str:
    """One line of mod_cdr_csv's default template; talk_s 0 is a leg never answered."""
    answered = talk_s > 0
    answer = start + timedelta(seconds=ring_s)
    end = answer + timedelta(seconds=talk_s)
    leg = uuid if uuid is not None else f"5b1c{index:04x}-0000-4000-8000-{index:012x}"
    fields = [
        f"Caller {index}",
        "+" + CALLING % (index % 10000),
        CALLED % (index % 1000),
        "public",
        stamp(start, zone),
        stamp(answer, zone) if answered else "",
        stamp(end, zone),
        str(int((end - start).total_seconds())),
        str(talk_s),
        cause,
        leg,
        f"7d2e{index:04x}-0000-4000-8000-{index:012x}" if answered else "",
        "",
        "PCMA",
        "PCMA",
    ]
    return ",".join(_quoted(value) for value in fields)
