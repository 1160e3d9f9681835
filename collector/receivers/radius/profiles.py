"""Vendor profiles: what a RADIUS accounting packet means, as a CallRecord.

Each switch family encodes a call differently: Cisco in h323-* VSAs whose
values repeat their own name and carry clock-quality flags, FreeSWITCH in
vendor 27880 attributes, Kamailio as transaction events to be joined
(Start/Stop without a duration), everything else in plain RFC 2866 terms.
`interpret` picks the client's profile (or guesses it from the packet for
`auto`) and returns a CallRecord, or None for a packet that carries no call
(Status-Server, an unknown status type). Profiles are pure functions: no I/O,
and never a raw number in an exception message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.outcome import q850_from_sip_status
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.codec import Packet
from collector.vendors import freeswitch as freeswitch_vendor

#: a softswitch clock flagged unsynchronized is believed only within this distance of ours
UNSYNCED_TOLERANCE = timedelta(minutes=5)

_STATUS_KINDS = {
    d.STATUS_START: RecordKind.START,
    d.STATUS_STOP: RecordKind.STOP,
    d.STATUS_INTERIM: RecordKind.INTERIM,
    d.STATUS_ACCOUNTING_ON: RecordKind.RESET,
    d.STATUS_ACCOUNTING_OFF: RecordKind.RESET,
    d.STATUS_FAILED: RecordKind.STOP,
}

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
#: (see `_resolve_offset`).
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

#: the NotACall reason of valid accounting that describes no call (an
#: unsupported status type, a Kamailio CANCEL or in-dialog request, a Cisco
#: login session): the receiver answers it, so the client stops resending,
#: counts it as "unsupported" and stores nothing
UNSUPPORTED = "unsupported_status_type"


class NotACall(Exception):
    """The packet is valid RADIUS but lacks what a call record needs; `reason` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _strip_name(value: str) -> str:
    """Cisco values repeat their attribute name: "h323-setup-time=12:00:01..." -> "12:00:01..."."""
    head, sep, tail = value.partition("=")
    if sep and head.startswith(("h323-", "Cisco", "cisco", "sip-")):
        return tail.strip()
    return value.strip()


#: midnight of a Cisco "ZONE Www Mmm DD YYYY" date as a wall clock (read as if
#: UTC) and its zone name, cached (a few distinct values a day)
_CISCO_DAYS: dict[str, tuple[datetime, str] | None] = {}


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
    try:
        return wall - timedelta(minutes=offset)
    except OverflowError:
        return None


def parse_cisco_timestamp(value: str) -> tuple[datetime | None, bool]:
    """Parse Cisco's "HH:MM:SS.mmm ZONE Www Mmm DD YYYY" (optional */. flag) to UTC.

    A zone name with several readings takes its usual one; an unknown name
    gives None. The cisco profile resolves those against the packet (see
    `_resolve_offset`).
    """
    wall, zone, flagged = cisco_wall_clock(value)
    if wall is None:
        return None, flagged
    offsets = zone_offsets(zone)
    return (_to_utc(wall, offsets[0]) if offsets else None), flagged


def cisco_wall_clock(value: str) -> tuple[datetime | None, str, bool]:
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
        day = _CISCO_DAYS.get(date_text)
        if day is None and date_text not in _CISCO_DAYS:
            day = _cisco_day(date_text)
            if len(_CISCO_DAYS) > 1000:
                _CISCO_DAYS.clear()
            _CISCO_DAYS[date_text] = day
        clock = text[:12]
        if (
            day is not None
            # isdigit() also takes superscripts and other digits int() refuses
            and clock.isascii()
            and clock[:2].isdigit()
            and clock[3:5].isdigit()
            and clock[6:8].isdigit()
            and clock[9:12].isdigit()
        ):
            hour, minute, second = int(clock[:2]), int(clock[3:5]), int(clock[6:8])
            if hour > 23 or minute > 59 or second > 59:
                return None, day[1], flagged
            try:
                return (
                    day[0]
                    + timedelta(
                        seconds=hour * 3600 + minute * 60 + second,
                        milliseconds=int(clock[9:12]),
                    ),
                    day[1],
                    flagged,
                )
            except OverflowError:
                return None, day[1], flagged
    wall, zone = _parse_cisco_slow(text)
    return wall, zone, flagged


def _cisco_day(date_text: str) -> tuple[datetime, str] | None:
    """Midnight of "ZONE Www Mmm DD YYYY" as a wall clock, and the zone name; or None."""
    wall, zone = _parse_cisco_slow("00:00:00.000 " + date_text)
    return (wall, zone) if wall is not None else None


def _parse_cisco_slow(text: str) -> tuple[datetime | None, str]:
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


def _resolve_offset(wall: datetime, offsets: tuple[int, ...], reference: datetime) -> int | None:
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


_FS_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)([+-])(\d{2})(?:(\d{4}|\d{2})|-(\d{4}|\d))?"
)

#: what mod_radius_cdr's 32-byte buffer leaves of a remainder of 1800 or 2700
#: seconds after a positive hour ("+05" "1800" -> "+0518"), as minutes
_FS_TRUNCATED_MINUTES = {"18": 30, "27": 45}
#: the same after a negative hour ("-03" "-1800" -> "-03-1")
_FS_TRUNCATED_NEGATIVE_MINUTES = {"1": 30, "2": 45}


def parse_freeswitch_time(value: str) -> datetime | None:
    """Parse mod_radius_cdr's "2026-11-30T12:00:01.123456+0100" to UTC.

    It prints the offset with C's "%+03d%02d" of (gmtoff / 3600, gmtoff % 3600):
    hours, then the remainder in seconds with its own sign, into a 32-byte
    buffer that keeps 31 characters. So +05:30 arrives as "+0518" (the "1800"
    cut to two digits), +05:45 as "+0527", -03:30 as "-03-1" and -04:45 as
    "-04-2". The uncut forms ("+051800", "-03-1800") and the plain "+0530"
    are accepted too.
    """
    match = _FS_TIME.fullmatch(value.strip())
    if match is None:
        return None
    stamp, sign_text, hours_text, rest_text, negative_text = match.groups()
    sign = -1 if sign_text == "-" else 1
    if negative_text is not None:
        if len(negative_text) == 4:
            rest_minutes, rest_sign = int(negative_text) // 60, -1
        else:
            cut = _FS_TRUNCATED_NEGATIVE_MINUTES.get(negative_text)
            if cut is None:
                return None
            rest_minutes, rest_sign = cut, -1
    elif rest_text is not None and len(rest_text) == 4:
        rest_minutes, rest_sign = int(rest_text) // 60, sign
    elif rest_text is not None:
        rest_minutes, rest_sign = _FS_TRUNCATED_MINUTES.get(rest_text, int(rest_text)), sign
    else:
        rest_minutes, rest_sign = 0, sign
    offset = sign * int(hours_text) * 60 + rest_sign * rest_minutes
    if not -24 * 60 < offset < 24 * 60 or rest_minutes >= 60:
        return None
    try:
        naive = datetime.fromisoformat(stamp)
        return naive.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class Context:
    """What a profile needs besides the packet: who sent it and when it arrived."""

    __slots__ = ("arrival", "source")

    def __init__(self, source: str, arrival: datetime) -> None:
        self.source = source
        self.arrival = arrival


#: Event-Timestamp as text, as Kamailio's acc_radius sends it with rad_time_mode=1
_DECIMAL_STAMP = re.compile(rb"\s*(\d{1,10})(?:\.(\d{1,9}))?\s*")


def _decimal_stamp(raw: bytes) -> datetime | None:
    """A "1782907100.123456" Event-Timestamp (seconds since the epoch, as text), or None."""
    match = _DECIMAL_STAMP.fullmatch(raw)
    if match is None:
        return None
    seconds = int(match.group(1))
    if seconds >= 2**32:  # no further than the integer form reaches
        return None
    fraction = (match.group(2) or b"").decode()
    return _epoch(seconds) + timedelta(microseconds=int((fraction + "000000")[:6]))


def _base(packet: Packet, ctx: Context, kind: RecordKind) -> tuple[datetime, bool]:
    """The event time: Event-Timestamp when present, else arrival minus Acct-Delay-Time.

    Event-Timestamp is a 32-bit integer, or decimal text with a fraction
    ("1782907100.123456", Kamailio's rad_time_mode=1).
    """
    stamp = packet.integer(d.EVENT_TIMESTAMP)
    if stamp is not None:
        return _epoch(stamp), False
    raw = packet.attrs.get(d.EVENT_TIMESTAMP)
    if raw is not None:
        decimal = _decimal_stamp(raw)
        if decimal is not None:
            return decimal, False
    delay = packet.integer(d.ACCT_DELAY_TIME) or 0
    return ctx.arrival - timedelta(seconds=delay), True


def _session(packet: Packet) -> str:
    session = packet.text(d.ACCT_SESSION_ID)
    if not session:
        raise NotACall("no_session_id")
    return session


def _status(packet: Packet) -> tuple[int, RecordKind]:
    status = packet.integer(d.ACCT_STATUS_TYPE)
    if status is None:
        raise NotACall("no_status_type")
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        raise NotACall(UNSUPPORTED)
    return status, kind


def _reset(packet: Packet, ctx: Context) -> CallRecord:
    event_time, derived = _base(packet, ctx, RecordKind.RESET)
    return CallRecord(
        kind=RecordKind.RESET,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id="",
        event_time=event_time,
        times_derived=derived,
    )


def generic(packet: Packet, ctx: Context) -> CallRecord:
    """RFC 2866 only: Acct-Session-Time, Event-Timestamp, Acct-Delay-Time."""
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=_session(packet),
        event_time=event_time,
        account=packet.text(d.USER_NAME),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        times_derived=derived,
    )
    session_time = packet.integer(d.ACCT_SESSION_TIME)
    if kind is RecordKind.STOP:
        record.disconnect_time = event_time
        if status == d.STATUS_FAILED:
            record.answered = False
            record.duration_ms = 0
        elif session_time is not None:
            # answered or not follows from it (pipeline.billing)
            record.duration_ms = session_time * 1000
            if session_time > 0:
                record.connect_time = event_time - timedelta(seconds=session_time)
    elif kind is RecordKind.START:
        record.connect_time = event_time
    return record


def cisco(packet: Packet, ctx: Context) -> CallRecord:
    """Cisco IOS voice gateways and CUBE: h323-* VSAs, hex Q.850 cause, call origin as leg.

    The same router also accounts logins and network sessions (`aaa accounting
    exec`/`network`): a packet with neither an h323-* VSA nor a voice
    Cisco-AVPair is no call.
    """
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    session = _session(packet)
    if not _cisco_voice(packet):
        raise NotACall(UNSUPPORTED)
    event_time, derived = _base(packet, ctx, kind)
    vsa = _cisco_values(packet).get

    setup_text = vsa(d.H323_SETUP_TIME)
    connect_text = vsa(d.H323_CONNECT_TIME)
    disconnect_text = vsa(d.H323_DISCONNECT_TIME)
    setup_time, connect_time, disconnect_time, flagged = _cisco_times(
        kind, event_time, (setup_text, connect_text, disconnect_text)
    )
    cause_text = vsa(d.H323_DISCONNECT_CAUSE)
    cause: int | None = None
    if cause_text:
        try:
            cause = int(cause_text, 16)
        except ValueError:
            cause = None
        if cause is not None and not 0 <= cause <= 127:
            cause = None
    origin = (vsa(d.H323_CALL_ORIGIN) or "").lower()
    conf_id = vsa(d.H323_CONF_ID)
    session_time = packet.integer(d.ACCT_SESSION_TIME)

    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=session,
        event_time=event_time,
        leg=origin,
        # the clock flag can change between the Start and the Stop of one call
        setup_stamp=(setup_text or "").lstrip("*. ") or None,
        account=_cisco_account(packet),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        disconnect_cause=cause,
        # the event time is only a fallback: derived when it must stand in for the anchor
        times_derived=derived
        and (disconnect_time if kind is RecordKind.STOP else (connect_time or setup_time)) is None,
        clock_unsynced=flagged,
        correlation=conf_id.replace(" ", "").upper() if conf_id else None,
    )
    if kind is RecordKind.STOP:
        answered_ms: int | None = None
        if connect_time is not None and disconnect_time is not None:
            answered_ms = max(0, round((disconnect_time - connect_time).total_seconds() * 1000))
        if status == d.STATUS_FAILED:
            record.answered, record.duration_ms = False, 0
        elif answered_ms is not None and (answered_ms > 0 or session_time):
            record.answered, record.duration_ms = True, answered_ms
        elif session_time is not None:
            record.answered = session_time > 0
            record.duration_ms = session_time * 1000
        else:
            record.answered = (
                connect_time is not None and answered_ms is not None and answered_ms > 0
            )
            record.duration_ms = answered_ms or 0
        if not record.answered:
            connect_time = None
    _place_times(record, ctx, setup_time, connect_time, disconnect_time, flagged)
    return record


def _cisco_times(
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
    walls = [cisco_wall_clock(text) if text else (None, "", False) for text in texts]
    flagged = any(flag for _wall, _zone, flag in walls)
    if kind is RecordKind.STOP:
        anchor = walls[2]
    elif kind is RecordKind.START:
        anchor = walls[1] if walls[1][0] is not None else walls[0]
    else:
        anchor = (None, "", False)
    anchor_wall, anchor_zone, _flag = anchor
    resolved: dict[str, int | None] = {}
    times: list[datetime | None] = []
    for wall, zone, _flag in walls:
        if wall is None:
            times.append(None)
            continue
        if zone not in resolved:
            offsets = zone_offsets(zone)
            if len(offsets) == 1:
                resolved[zone] = offsets[0]
            elif anchor_wall is not None and zone == anchor_zone:
                resolved[zone] = _resolve_offset(anchor_wall, offsets, reference)
            else:
                resolved[zone] = offsets[0] if offsets else None
        offset = resolved[zone]
        times.append(_to_utc(wall, offset) if offset is not None else None)
    return times[0], times[1], times[2], flagged


#: Cisco-AVPair names only voice accounting carries (CUBE and IOS voice gateways)
_VOICE_AVPAIRS = (
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


def _cisco_voice(packet: Packet) -> bool:
    """Whether a Cisco packet is voice accounting: an h323-* VSA or a voice Cisco-AVPair."""
    for key, items in packet.vsas.items():
        if key[:4] != _CISCO_PREFIX:
            continue
        if key[4] == d.CISCO_AVPAIR:
            voice = any(raw.lstrip().lower().startswith(_VOICE_AVPAIRS) for raw in items)
        else:
            voice = d.H323_REMOTE_ADDRESS <= key[4] <= d.H323_INCOMING_CONF_ID or items[
                0
            ].lstrip().lower().startswith(b"h323-")
        if voice:
            return True
    return False


_CISCO_PREFIX = d.CISCO.to_bytes(4, "big")


def _cisco_values(packet: Packet) -> dict[int, str]:
    """The first value of every Cisco VSA but Cisco-AVPair, decoded, its name prefix removed."""
    found: dict[int, str] = {}
    for key, items in packet.vsas.items():
        if key[:4] != _CISCO_PREFIX or key[4] == d.CISCO_AVPAIR:
            continue
        text = items[0].decode("utf-8", "replace")
        head, sep, tail = text.partition("=")
        found[key[4]] = (
            tail.strip()
            if sep and head.startswith(("h323-", "Cisco", "cisco", "sip-"))
            else text.strip()
        )
    return found


_AVPAIR_KEY = _CISCO_PREFIX + bytes((d.CISCO_AVPAIR,))


def _cisco_account(packet: Packet) -> str | None:
    """An account code sent as Cisco-AVPair "account-code=...", else User-Name."""
    for raw in packet.vsas.get(_AVPAIR_KEY, ()):
        if b"ccount" not in raw:  # most pairs are something else: skip the decoding
            continue
        name, sep, value = raw.decode("utf-8", "replace").partition("=")
        if sep and name.strip().lower() in ("account-code", "accountcode"):
            return value.strip() or None
    return packet.text(d.USER_NAME)


def _place_times(
    record: CallRecord,
    ctx: Context,
    setup_time: datetime | None,
    connect_time: datetime | None,
    disconnect_time: datetime | None,
    flagged: bool,
) -> None:
    """Keep the switch's own times unless its clock is flagged and clearly wrong.

    A flagged clock more than UNSYNCED_TOLERANCE away from the event time we
    know (Event-Timestamp, else arrival) is not trusted: its times are shifted
    onto that event time, keeping their differences so durations stay right,
    and the record says its times were derived. Missing times are filled from
    the event time and the duration (a Stop's; a Start's connect time is never
    made up).
    """
    del ctx
    reference = record.event_time
    anchor = disconnect_time if record.kind is RecordKind.STOP else (connect_time or setup_time)
    shift = timedelta(0)
    if anchor is not None and flagged and abs(anchor - reference) > UNSYNCED_TOLERANCE:
        shift = reference - anchor
        record.times_derived = True
    try:
        _shift_and_fill(record, reference, setup_time, connect_time, disconnect_time, shift)
    except OverflowError:
        # times that cannot be placed on the calendar are not times: keep none of them
        record.setup_time = record.connect_time = None
        record.disconnect_time = reference if record.kind is RecordKind.STOP else None
        record.times_derived = True


def _shift_and_fill(
    record: CallRecord,
    reference: datetime,
    setup_time: datetime | None,
    connect_time: datetime | None,
    disconnect_time: datetime | None,
    shift: timedelta,
) -> None:
    record.setup_time = setup_time + shift if setup_time else None
    record.connect_time = connect_time + shift if connect_time else None
    record.disconnect_time = disconnect_time + shift if disconnect_time else None
    if record.kind is RecordKind.STOP:
        if record.disconnect_time is None:
            record.disconnect_time = reference
        if record.answered and record.connect_time is None and record.duration_ms is not None:
            record.connect_time = record.disconnect_time - timedelta(
                milliseconds=record.duration_ms
            )
            record.times_derived = True
    # a Start is connected only when it says so (h323-connect-time): one sent at
    # setup is a call not answered yet


def _freeswitch_setup_stamp(start_text: str | None, setup_time: datetime | None) -> str | None:
    """Freeswitch-Callstartdate as it joins the record key: the UTC instant it names.

    The Start and the Stop of one call may print the same instant with different
    local offsets (the Stop takes the offset of January 1970 in a zone with
    daylight saving time), so the text as sent would split one call in two.
    """
    if setup_time is not None:
        return setup_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return start_text or None


def freeswitch(packet: Packet, ctx: Context) -> CallRecord:
    """FreeSWITCH mod_radius_cdr: vendor 27880 attributes, Acct-Session-Time preferred.

    The correlation of both legs of a bridged call is the A-leg's uuid (as
    for JSON CDRs): an inbound leg's own Acct-Session-Id, an outbound leg's
    Freeswitch-Other-Leg-Id (sent in its Start: it is bridged from birth);
    the sink completes a Stop's missing correlation from its Start.
    Freeswitch-Direction (Stop only) never reaches `leg`: the leg joins the
    record key, which must be the same for the Start and the Stop of a call.
    Freeswitch-Hangupcause (either numbering) means what
    `collector.vendors.freeswitch` says, as for JSON CDRs.
    """
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    fs = d.FREESWITCH
    start_text = packet.vendor_text(fs, d.FS_CALLSTARTDATE)
    answer_text = packet.vendor_text(fs, d.FS_CALLANSWERDATE)
    end_text = packet.vendor_text(fs, d.FS_CALLENDDATE)
    setup_time = parse_freeswitch_time(start_text) if start_text else None
    connect_time = parse_freeswitch_time(answer_text) if answer_text else None
    disconnect_time = parse_freeswitch_time(end_text) if end_text else None
    hangup = packet.vendor_integer(fs, d.FS_HANGUPCAUSE)
    cause = freeswitch_vendor.cause_of_number(hangup) if hangup is not None else None
    other_leg = (packet.vendor_text(fs, d.FS_OTHER_LEG_ID) or "").strip()
    if (packet.vendor_text(fs, d.FS_DIRECTION) or "").strip().lower() == "inbound":
        a_leg = _session(packet)  # this is the A-leg: its own uuid
    else:
        a_leg = other_leg
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=_session(packet),
        event_time=event_time,
        setup_stamp=_freeswitch_setup_stamp(start_text, setup_time),
        account=packet.text(d.USER_NAME),
        calling=packet.vendor_text(fs, d.FS_SRC) or packet.text(d.CALLING_STATION_ID),
        called=packet.vendor_text(fs, d.FS_DST) or packet.text(d.CALLED_STATION_ID),
        setup_time=setup_time,
        connect_time=connect_time,
        disconnect_time=disconnect_time,
        disconnect_cause=cause.q850 if cause is not None else None,
        times_derived=derived
        and (disconnect_time if kind is RecordKind.STOP else (connect_time or setup_time)) is None,
        # the pipeline only ever stores its keyed pseudonym
        correlation=a_leg or None,
    )
    if kind is RecordKind.STOP:
        session_time = packet.integer(d.ACCT_SESSION_TIME)
        billusec = packet.vendor_integer(fs, d.FS_BILLUSEC)
        if status == d.STATUS_FAILED:
            duration_ms: int | None = 0
        elif session_time is not None:
            # Freeswitch-Billusec is a 32-bit field fed a 64-bit value: it wraps
            # after 71 minutes. Use it for millisecond precision only when it
            # agrees with the whole seconds of Acct-Session-Time.
            if billusec is not None and billusec // 1_000_000 == session_time:
                duration_ms = billusec // 1000
            else:
                duration_ms = session_time * 1000
        elif billusec is not None:
            duration_us = billusec
            if connect_time is not None and disconnect_time is not None:
                # the 32-bit field wraps after 71 minutes: restore the lost multiples of 2**32
                span_us = round((disconnect_time - connect_time).total_seconds() * 1_000_000)
                duration_us += max(0, round((span_us - billusec) / 2**32)) * 2**32
            duration_ms = duration_us // 1000
        elif connect_time is not None and disconnect_time is not None:
            duration_ms = max(0, round((disconnect_time - connect_time).total_seconds() * 1000))
        else:
            duration_ms = None
        shown: bool | None = None  # whether the packet shows an answer
        if duration_ms is not None:
            shown = duration_ms > 0 or (connect_time is not None and status != d.STATUS_FAILED)
        # the cause and what it implies are FreeSWITCH's, the same for every transport
        end = freeswitch_vendor.leg_end(cause, shown)
        record.disconnect_cause, record.sip_code, record.answered = (
            end.disconnect_cause,
            end.sip_code,
            end.answered,
        )
        if duration_ms is None and end.answered is False:
            duration_ms = 0
        record.duration_ms = duration_ms
        if record.disconnect_time is None:
            record.disconnect_time = event_time
        if not record.answered:
            record.connect_time = None
    elif kind is RecordKind.START and record.connect_time is None:
        record.connect_time = connect_time
    return record


def kamailio(packet: Packet, ctx: Context) -> CallRecord:
    """Kamailio acc_radius: Start on the 2xx to INVITE, Stop on BYE, Failed for failed INVITEs.

    Kamailio accounts transactions, not calls: its Stop has no
    Acct-Session-Time, so the duration comes from joining the Stop to its
    durable Start (done by the sink). The call is Acct-Session-Id (Call-ID)
    plus its two dialog tags, sorted so that a BYE from the callee (tags
    swapped) still finds its Start; the Call-ID alone is its correlation. The tags join the session id, which is
    only ever stored as part of the keyed record key, never in `leg`.
    Transactions that are no event of a call (a CANCEL, an early-media 183, a
    MESSAGE) raise NotACall (see `_kamailio_call_event`).
    """
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    session = _session(packet)
    code = _integer_or_digits(packet, d.SIP_RESPONSE_CODE)
    _kamailio_call_event(status, kind, _integer_or_digits(packet, d.SIP_METHOD), code)
    event_time, derived = _base(packet, ctx, kind)
    from_tag = packet.text(d.SIP_FROM_TAG) or ""
    to_tag = packet.text(d.SIP_TO_TAG) or ""
    if from_tag and to_tag and status != d.STATUS_FAILED:
        tags = "|".join(sorted((from_tag, to_tag)))
    else:
        tags = from_tag
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=session + "\x1f" + tags,
        event_time=event_time,
        account=packet.text(d.USER_NAME),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        times_derived=derived,
        # the Call-ID, as the call's SIP records carry it (see dialogs.DialogTracker)
        correlation=session or None,
    )
    if status == d.STATUS_FAILED:
        record.answered = False
        record.duration_ms = 0
        record.sip_code = code
        record.disconnect_cause = q850_from_sip_status(code) if code is not None else None
        record.disconnect_time = event_time
        record.setup_time = event_time
    elif kind is RecordKind.STOP:
        record.answered = True
        record.sip_code = 200
        record.disconnect_cause = 16
        record.disconnect_time = event_time
        session_time = packet.integer(d.ACCT_SESSION_TIME)
        if session_time is not None:
            record.duration_ms = session_time * 1000
            record.connect_time = event_time - timedelta(seconds=session_time)
    elif kind is RecordKind.START:
        record.connect_time = event_time
        record.sip_code = code
    return record


def _integer_or_digits(packet: Packet, number: int) -> int | None:
    """An integer attribute, or one sent as decimal text; None otherwise."""
    value = packet.integer(number)
    if value is None:
        text = packet.text(number)
        value = (
            int(text) if text and text.isascii() and text.isdigit() and len(text) <= 10 else None
        )
    return value


def _kamailio_call_event(
    status: int, kind: RecordKind, method: int | None, code: int | None
) -> None:
    """Raise NotACall for a Kamailio transaction that is no event of a call.

    acc_radius picks Acct-Status-Type from the request alone: Start for the 2xx
    to an initial INVITE, Stop for any BYE or CANCEL (whatever the reply),
    Alive for any other in-dialog request, Failed for the rest, which with
    early_media, report_cancels or the acc flag on other requests includes an
    INVITE's 183, a CANCEL's 200 and a MESSAGE's 202. Only a BYE ends a call
    (a CANCELled INVITE has its own Failed record with 487), only a failed
    INVITE is a failed call (not one reported with a 1xx or 2xx), and only a
    re-INVITE updates one. Without Sip-Method, every event counts.
    """
    if method is None:
        return
    if status == d.STATUS_FAILED:
        if method != d.SIP_METHOD_INVITE or (code is not None and 100 <= code < 300):
            raise NotACall(UNSUPPORTED)
    elif kind is RecordKind.STOP:
        if method != d.SIP_METHOD_BYE:
            raise NotACall(UNSUPPORTED)
    elif method != d.SIP_METHOD_INVITE:
        raise NotACall(UNSUPPORTED)


Profile = Callable[[Packet, Context], CallRecord]

PROFILES: dict[str, Profile] = {
    "generic": generic,
    "cisco": cisco,
    "freeswitch": freeswitch,
    "kamailio": kamailio,
}


def detect(packet: Packet) -> Profile:
    """Guess the profile from what the packet carries (for clients set to `auto`)."""
    vendors = packet.vendors
    if d.CISCO in vendors:
        return cisco
    if d.FREESWITCH in vendors:
        return freeswitch
    attrs = packet.attrs
    if d.SIP_METHOD in attrs or d.SIP_FROM_TAG in attrs or d.SIP_RESPONSE_CODE in attrs:
        return kamailio
    return generic


def interpret(packet: Packet, profile: str, ctx: Context) -> CallRecord:
    """The CallRecord a packet describes under a profile name; raises NotACall."""
    handler = detect(packet) if profile == "auto" else PROFILES[profile]
    return handler(packet, ctx)
