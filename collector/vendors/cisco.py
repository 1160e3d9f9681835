"""Cisco IOS voice gateways and CUBE: what their accounting values mean.

A Cisco gateway reports a call in h323-* VSAs and Cisco-AVPairs whose values
repeat their own name ("h323-setup-time=..."), with times in its own
"HH:MM:SS.mmm ZONE Www Mmm DD YYYY" form (flagged `*` or `.` when its clock
is not synchronized, the zone being whatever name `clock timezone` was
given), the disconnect cause as a hexadecimal Q.850 number, and the call
origin (originate, answer, callback) as the leg. The RADIUS cisco profile
reads the attributes and calls in here for what they mean. This module is
pure: no I/O, no transport, never a raw number in an exception message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from collector.record import KIND_START, KIND_STOP, RecordKind

#: a softswitch clock flagged unsynchronized is believed only within this distance of ours
UNSYNCED_TOLERANCE = timedelta(minutes=5)

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


#: offsets (minutes east of UTC) of the time zone names Cisco IOS prints. IOS
#: prints whatever name `clock timezone NAME h m` was given, so some names stand
#: for several zones: the first offset is the usual reading, the others are
#: zones that share the abbreviation, told apart by the packet's reference time
#: (see `resolve_offset`).
_ZONES: dict[str, tuple[int, ...]] = {
    "UTC": (0,),
    "GMT": (0,),
    "Z": (0,),
    "UT": (0,),
    "WET": (0,),
    "WEST": (60,),
    "BST": (60, 360),  # British Summer Time; Bangladesh Standard Time
    "IST": (60, 330, 120),  # Irish Standard Time (summer); India; Israel
    "CET": (60,),
    "CEST": (120,),
    "MET": (60,),
    "MEST": (120,),
    "EET": (120,),
    "EEST": (180,),
    "MSK": (180,),
    "AST": (-240, 180),  # Atlantic; Arabia
    "ADT": (-180,),
    "EST": (-300, 600),  # US Eastern; Australian Eastern (older name)
    "EDT": (-240, 660),  # US Eastern Daylight; Australian Eastern Daylight (older name)
    "CST": (-360, 480, -300),  # US Central; China; Cuba
    "CDT": (-300, -240),  # US Central Daylight; Cuba Daylight
    "MST": (-420, 480),  # US Mountain; Malaysia
    "MDT": (-360,),
    "PST": (-480, 480),  # US Pacific; Philippines
    "PDT": (-420,),
    "AKST": (-540,),
    "AKDT": (-480,),
    "HST": (-600,),
    "JST": (540,),
    "KST": (540,),
    "HKT": (480,),
    "SGT": (480,),
    "AWST": (480,),
    "AEST": (600,),
    "AEDT": (660,),
    "NZST": (720,),
    "NZDT": (780,),
    "SAST": (120,),
}

#: "GMT+4", "UTC-3", "GMT+5:30", "UTC+0530": a name that spells its own offset
_SPELLED_ZONE = re.compile(r"(?:GMT|UTC|UT)([+-])(\d{1,2})(?::?(\d{2}))?")

#: the widest offsets in use, in minutes (UTC-12:00 to UTC+14:00)
_MIN_OFFSET, _MAX_OFFSET = -12 * 60, 14 * 60

#: an ambiguous zone name takes the reading that puts the packet's anchor time
#: within this distance of the reference time (the readings differ by an hour
#: or more, so this cannot pick the wrong one on a synced clock)
AMBIGUOUS_ZONE_TOLERANCE = timedelta(minutes=30)
#: an unknown zone name takes the whole quarter-hour offset that puts the anchor
#: time within this distance of the reference time (less than half of 15 minutes)
UNKNOWN_ZONE_TOLERANCE = timedelta(minutes=5)

#: the prefixes of the names Cisco values repeat before an "=" ("h323-setup-time=...")
_NAMED_PREFIXES = ("h323-", "Cisco", "cisco", "sip-")

#: Cisco-AVPair names only voice accounting carries (CUBE and IOS voice gateways)
VOICE_AVPAIRS: Final = (
    b"h323-",
    b"call-id",
    b"session-protocol",
    b"conf-id",
    b"incoming-req-uri",
    b"outgoing-req-uri",
    b"in-trunkgroup-label",
    b"out-trunkgroup-label",
    b"remote-media-",
    b"release-source",
    b"feature-vsa",
    b"gw-",
)


#: the Cisco-AVPair names that carry an account code
ACCOUNT_AVPAIRS: Final = frozenset({"account-code", "accountcode"})


def strip_name(value: str) -> str:
    """Cisco values repeat their attribute name: "h323-setup-time=12:00:01..." -> "12:00:01..."."""
    head, sep, tail = value.partition("=")
    if sep and head.startswith(_NAMED_PREFIXES):
        return tail.strip()
    return value.strip()


def is_voice_avpair(raw: bytes) -> bool:
    """Whether a Cisco-AVPair (as sent) is one only voice accounting carries."""
    return raw.lstrip().lower().startswith(VOICE_AVPAIRS)


def disconnect_cause(text: str | None) -> int | None:
    """h323-disconnect-cause, a hexadecimal Q.850 cause ("10" is 16), or None."""
    if not text:
        return None
    try:
        cause = int(text, 16)
    except ValueError:
        return None
    return cause if 0 <= cause <= 127 else None


def leg(call_origin: str | None) -> str:
    """The leg of a record: h323-call-origin (originate, answer, callback), lower case."""
    return (call_origin or "").lower()


def correlation(conf_id: str | None) -> str | None:
    """What joins the legs of one call: h323-conf-id, spaces removed, upper case."""
    return conf_id.replace(" ", "").upper() if conf_id else None


def setup_stamp(setup_text: str | None) -> str | None:
    """h323-setup-time as it joins the record key: without the clock flag, which can
    change between the Start and the Stop of one call."""
    return (setup_text or "").lstrip("*. ") or None


def clock_shift(anchor: datetime | None, reference: datetime, flagged: bool) -> timedelta | None:
    """How far to move the times of a packet whose clock is flagged and clearly wrong.

    A flagged clock more than UNSYNCED_TOLERANCE away from the event time we
    know (Event-Timestamp, else arrival) is not trusted: its times move onto
    that event time, keeping their differences so durations stay right.
    None when the switch's own times stand.
    """
    if anchor is not None and flagged and abs(anchor - reference) > UNSYNCED_TOLERANCE:
        return reference - anchor
    return None


#: midnight of a Cisco "ZONE Www Mmm DD YYYY" date as a wall clock (read as if
#: UTC) and its zone name, cached (a few distinct values a day)
_DAYS: dict[str, tuple[datetime, str] | None] = {}


def zone_offsets(zone: str) -> tuple[int, ...]:
    """The offsets (minutes east of UTC) a Cisco zone name may stand for, usual first.

    Empty for a name we cannot read. A spelled offset ("GMT+4") is read the
    way people write it (UTC+4); the POSIX reading (UTC-4) is the alternative.
    """
    zone = zone.upper()
    offsets = _ZONES.get(zone)
    if offsets is not None:
        return offsets
    match = _SPELLED_ZONE.fullmatch(zone)
    if match is None:
        return ()
    sign_text, hours_text, minutes_text = match.groups()
    minutes = int(minutes_text or 0)
    offset = (int(hours_text) * 60 + minutes) * (-1 if sign_text == "-" else 1)
    if minutes >= 60 or not _MIN_OFFSET <= offset <= _MAX_OFFSET:
        return ()
    if offset == 0 or not _MIN_OFFSET <= -offset <= _MAX_OFFSET:
        return (offset,)
    return (offset, -offset)


def _to_utc(wall: datetime, offset: int) -> datetime | None:
    """The instant of a wall clock (held as if UTC) at `offset` minutes east of UTC."""
    shift = _SHIFTS.get(offset)
    if shift is None:
        shift = timedelta(0, offset * 60)
        if len(_SHIFTS) < 4096:
            _SHIFTS[offset] = shift
    try:
        return wall - shift
    except OverflowError:
        return None


#: the values of "00".."99" and "000".."999"
_DIGITS: dict[str, int] = {f"{n:02d}": n for n in range(100)} | {f"{n:03d}": n for n in range(1000)}

#: offsets (minutes) as timedeltas, made once each
_SHIFTS: dict[int, timedelta] = {}


def parse_timestamp(value: str) -> tuple[datetime | None, bool]:
    """Parse Cisco's "HH:MM:SS.mmm ZONE Www Mmm DD YYYY" (optional */. flag) to UTC.

    A zone name with several readings takes its usual one; an unknown name
    gives None. The cisco profile resolves those against the packet (see
    `resolve_offset`).
    """
    wall, zone, flagged = wall_clock(value)
    if wall is None:
        return None, flagged
    offsets = zone_offsets(zone)
    return (_to_utc(wall, offsets[0]) if offsets else None), flagged


def wall_clock(value: str) -> tuple[datetime | None, str, bool]:
    """Cisco's "HH:MM:SS.mmm ZONE Www Mmm DD YYYY" (optional */. flag) as it reads.

    Returns the wall clock held in a UTC datetime (not yet an instant: its zone
    is applied later), the zone name and whether the clock flag was set.
    """
    text = value.strip()
    flagged = False
    while text[:1] in ("*", "."):
        flagged = True
        text = text[1:]
    # fast path: "HH:MM:SS.mmm " then a date seen before
    if len(text) > 13 and text[2] == ":" and text[5] == ":" and text[8] == "." and text[12] == " ":
        date_text = text[13:]
        day = _DAYS.get(date_text)
        if day is None and date_text not in _DAYS:
            day = _day(date_text)
            if len(_DAYS) > 1000:
                _DAYS.clear()
            _DAYS[date_text] = day
        # two- and three-digit fields by table: ASCII digits only, as int() reads them
        hour = _DIGITS.get(text[:2])
        minute = _DIGITS.get(text[3:5])
        second = _DIGITS.get(text[6:8])
        millis = _DIGITS.get(text[9:12])
        if (
            day is not None
            and hour is not None
            and minute is not None
            and second is not None
            and millis is not None
        ):
            if hour > 23 or minute > 59 or second > 59:
                return None, day[1], flagged
            try:
                return (
                    # (positional: timedelta's keywords cost a third more)
                    day[0] + timedelta(0, hour * 3600 + minute * 60 + second, millis * 1000),
                    day[1],
                    flagged,
                )
            except OverflowError:
                return None, day[1], flagged
    wall, zone = _parse_slow(text)
    return wall, zone, flagged


def _day(date_text: str) -> tuple[datetime, str] | None:
    """Midnight of "ZONE Www Mmm DD YYYY" as a wall clock, and the zone name; or None."""
    wall, zone = _parse_slow("00:00:00.000 " + date_text)
    return (wall, zone) if wall is not None else None


def _parse_slow(text: str) -> tuple[datetime | None, str]:
    parts = text.split()
    if len(parts) != 6:
        return None, ""
    clock, zone, _weekday, month_name, day, year = parts
    zone = zone.upper()
    month = _MONTHS.get(month_name[:3].lower())
    if month is None:
        return None, zone
    hms, _, fraction = clock.partition(".")
    pieces = hms.split(":")
    if len(pieces) != 3:
        return None, zone
    try:
        hour, minute, second = (int(p) for p in pieces)
        micro = int((fraction + "000000")[:6]) if fraction else 0
        wall = datetime(int(year), month, int(day), hour, minute, second, micro, tzinfo=UTC)
    except (ValueError, OverflowError):
        return None, zone
    return wall, zone


def resolve_offset(wall: datetime, offsets: tuple[int, ...], reference: datetime) -> int | None:
    """The offset of an ambiguous or unknown zone, from a time that should be near `reference`.

    An ambiguous name takes the reading that puts `wall` closest to the
    reference when it is within AMBIGUOUS_ZONE_TOLERANCE, else its usual one.
    An unknown name (no offsets) takes the whole quarter-hour offset between
    UTC-12:00 and UTC+14:00 that puts `wall` within UNKNOWN_ZONE_TOLERANCE of
    the reference, else None.
    """
    ahead = wall - reference  # how far the wall clock reads ahead of UTC
    if offsets:
        best = min(offsets, key=lambda offset: abs(ahead - timedelta(minutes=offset)))
        if abs(ahead - timedelta(minutes=best)) <= AMBIGUOUS_ZONE_TOLERANCE:
            return best
        return offsets[0]
    quarters = round(ahead.total_seconds() / 900)
    offset = quarters * 15
    if not _MIN_OFFSET <= offset <= _MAX_OFFSET:
        return None
    if abs(ahead - timedelta(minutes=offset)) > UNKNOWN_ZONE_TOLERANCE:
        return None
    return offset


def call_times(
    kind: RecordKind, reference: datetime, texts: tuple[str | None, str | None, str | None]
) -> tuple[datetime | None, datetime | None, datetime | None, bool]:
    """Setup, connect and disconnect time in UTC, and whether a clock flag was set.

    A zone name with one reading is applied as it is. An ambiguous or unknown
    name is resolved once per packet, from the time sent closest to the
    packet itself (the disconnect time of a Stop, the connect or else setup
    time of a Start) against the reference time (Event-Timestamp, else
    arrival minus Acct-Delay-Time), and the offset found applies to every time
    of the packet with that name. An Interim-Update comes long after those
    times and resolves nothing: ambiguous names keep their usual reading,
    unknown ones give no time.
    """
    walls = [wall_clock(text) if text else (None, "", False) for text in texts]
    flagged = any(flag for _wall, _zone, flag in walls)
    if kind is KIND_STOP:
        anchor = walls[2]
    elif kind is KIND_START:
        anchor = walls[1] if walls[1][0] is not None else walls[0]
    else:
        anchor = (None, "", False)
    anchor_wall, anchor_zone, _flag = anchor
    resolved: dict[str, int | None] = {}
    instants: list[datetime | None] = []
    for wall, zone, _flag in walls:
        if wall is None:
            instants.append(None)
            continue
        if zone not in resolved:
            offsets = zone_offsets(zone)
            if len(offsets) == 1:
                resolved[zone] = offsets[0]
            elif anchor_wall is not None and zone == anchor_zone:
                resolved[zone] = resolve_offset(anchor_wall, offsets, reference)
            else:
                resolved[zone] = offsets[0] if offsets else None
        offset = resolved[zone]
        instants.append(_to_utc(wall, offset) if offset is not None else None)
    return instants[0], instants[1], instants[2], flagged
