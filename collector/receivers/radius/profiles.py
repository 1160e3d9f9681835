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

#: offsets of the time zone names Cisco IOS prints (configured with `clock timezone`)
_ZONES = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "UT": 0,
    "WET": 0,
    "WEST": 60,
    "BST": 60,
    "IST": 60,
    "CET": 60,
    "CEST": 120,
    "MET": 60,
    "MEST": 120,
    "EET": 120,
    "EEST": 180,
    "MSK": 180,
    "EST": -300,
    "EDT": -240,
    "CST": -360,
    "CDT": -300,
    "MST": -420,
    "MDT": -360,
    "PST": -480,
    "PDT": -420,
    "AKST": -540,
    "AKDT": -480,
    "HST": -600,
    "JST": 540,
    "KST": 540,
    "HKT": 480,
    "SGT": 480,
    "AWST": 480,
    "AEST": 600,
    "AEDT": 660,
    "NZST": 720,
    "NZDT": 780,
    "SAST": 120,
}


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


#: UTC midnight of a Cisco "ZONE Www Mmm DD YYYY" date, cached (a few distinct values a day)
_CISCO_DAYS: dict[str, datetime | None] = {}


def parse_cisco_timestamp(value: str) -> tuple[datetime | None, bool]:
    """Parse Cisco's "HH:MM:SS.mmm ZONE Www Mmm DD YYYY" (optional */. flag) to UTC."""
    text = value.strip()
    flagged = False
    while text[:1] in ("*", "."):
        flagged = True
        text = text[1:]
    # fast path: "HH:MM:SS.mmm " then a date seen before
    if len(text) > 13 and text[2] == ":" and text[5] == ":" and text[8] == "." and text[12] == " ":
        day = _CISCO_DAYS.get(text[13:])
        if day is None and text[13:] not in _CISCO_DAYS:
            day = _cisco_day(text[13:])
            if len(_CISCO_DAYS) > 1000:
                _CISCO_DAYS.clear()
            _CISCO_DAYS[text[13:]] = day
        clock = text[:12]
        if (
            day is not None
            and clock[:2].isdigit()
            and clock[3:5].isdigit()
            and clock[6:8].isdigit()
            and clock[9:12].isdigit()
        ):
            hour, minute, second = int(clock[:2]), int(clock[3:5]), int(clock[6:8])
            if hour > 23 or minute > 59 or second > 59:
                return None, flagged
            try:
                return day + timedelta(
                    seconds=hour * 3600 + minute * 60 + second, milliseconds=int(clock[9:12])
                ), flagged
            except OverflowError:
                return None, flagged
    return _parse_cisco_slow(text), flagged


def _cisco_day(date_text: str) -> datetime | None:
    """UTC instant of local midnight of "ZONE Www Mmm DD YYYY", or None."""
    parsed = _parse_cisco_slow("00:00:00.000 " + date_text)
    return parsed


def _parse_cisco_slow(text: str) -> datetime | None:
    parts = text.split()
    if len(parts) != 6:
        return None
    clock, zone, _weekday, month_name, day, year = parts
    offset = _ZONES.get(zone.upper())
    month = _MONTHS.get(month_name[:3].lower())
    if offset is None or month is None:
        return None
    hms, _, fraction = clock.partition(".")
    pieces = hms.split(":")
    if len(pieces) != 3:
        return None
    try:
        hour, minute, second = (int(p) for p in pieces)
        micro = int((fraction + "000000")[:6]) if fraction else 0
        local = datetime(
            int(year),
            month,
            int(day),
            hour,
            minute,
            second,
            micro,
            tzinfo=timezone(timedelta(minutes=offset)),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


_FS_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)([+-])(\d{2})(-?)(\d{2}|\d{4})?"
)


def parse_freeswitch_time(value: str) -> datetime | None:
    """Parse mod_radius_cdr's "2026-11-30T12:00:01.123456+0100" to UTC.

    It prints the offset with C's "%+03d%02d" of (gmtoff / 3600, gmtoff % 3600):
    hours, then the remainder in seconds with its own sign, so +05:30 arrives
    as "+051800" and -03:30 as "-03-1800"; the plain "+0530" form is accepted too.
    """
    match = _FS_TIME.fullmatch(value.strip())
    if match is None:
        return None
    stamp, sign_text, hours_text, rest_sign, rest_text = match.groups()
    sign = -1 if sign_text == "-" else 1
    rest = int(rest_text or 0)
    rest_minutes = rest // 60 if len(rest_text or "") == 4 else rest
    offset = sign * int(hours_text) * 60 + (-1 if rest_sign else sign) * rest_minutes
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


def _base(packet: Packet, ctx: Context, kind: RecordKind) -> tuple[datetime, bool]:
    """The event time: Event-Timestamp when present, else arrival minus Acct-Delay-Time."""
    stamp = packet.integer(d.EVENT_TIMESTAMP)
    if stamp is not None:
        return _epoch(stamp), False
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
        raise NotACall("unsupported_status_type")
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
            record.duration_ms = session_time * 1000
            record.answered = session_time > 0
            if session_time > 0:
                record.connect_time = event_time - timedelta(seconds=session_time)
    elif kind is RecordKind.START:
        record.connect_time = event_time
    return record


def cisco(packet: Packet, ctx: Context) -> CallRecord:
    """Cisco IOS voice gateways and CUBE: h323-* VSAs, hex Q.850 cause, call origin as leg."""
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    values = _cisco_values(packet)
    vsa = values.get

    setup_text = vsa(d.H323_SETUP_TIME)
    connect_text = vsa(d.H323_CONNECT_TIME)
    disconnect_text = vsa(d.H323_DISCONNECT_TIME)
    flagged = False
    times: list[datetime | None] = []
    for text in (setup_text, connect_text, disconnect_text):
        if text:
            parsed, flag = parse_cisco_timestamp(text)
            flagged = flagged or flag
            times.append(parsed)
        else:
            times.append(None)
    setup_time, connect_time, disconnect_time = times
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
        session_id=_session(packet),
        event_time=event_time,
        leg=origin,
        setup_stamp=setup_text or None,
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
    the event time and the duration.
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
        if record.kind is RecordKind.START:
            record.connect_time = reference
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
    elif record.kind is RecordKind.START and record.connect_time is None:
        record.connect_time = reference


def freeswitch(packet: Packet, ctx: Context) -> CallRecord:
    """FreeSWITCH mod_radius_cdr: vendor 27880 attributes, Acct-Session-Time preferred."""
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
    cause = hangup if hangup is not None and 0 < hangup <= 127 else None
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=_session(packet),
        event_time=event_time,
        setup_stamp=start_text or None,
        account=packet.text(d.USER_NAME),
        calling=packet.vendor_text(fs, d.FS_SRC) or packet.text(d.CALLING_STATION_ID),
        called=packet.vendor_text(fs, d.FS_DST) or packet.text(d.CALLED_STATION_ID),
        setup_time=setup_time,
        connect_time=connect_time,
        disconnect_time=disconnect_time,
        disconnect_cause=cause,
        sip_code=487 if hangup == 487 else None,
        times_derived=derived
        and (disconnect_time if kind is RecordKind.STOP else (connect_time or setup_time)) is None,
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
        record.duration_ms = duration_ms
        if duration_ms is not None:
            record.answered = duration_ms > 0 or (
                connect_time is not None and status != d.STATUS_FAILED
            )
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
    swapped) still finds its Start. The tags join the session id, which is
    only ever stored as part of the keyed record key, never in `leg`.
    """
    status, kind = _status(packet)
    if kind is RecordKind.RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    from_tag = packet.text(d.SIP_FROM_TAG) or ""
    to_tag = packet.text(d.SIP_TO_TAG) or ""
    code = packet.integer(d.SIP_RESPONSE_CODE)
    if code is None:
        text_code = packet.text(d.SIP_RESPONSE_CODE)
        code = int(text_code) if text_code and text_code.isdigit() else None
    if from_tag and to_tag and status != d.STATUS_FAILED:
        tags = "|".join(sorted((from_tag, to_tag)))
    else:
        tags = from_tag
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=Protocol.RADIUS,
        session_id=_session(packet) + "\x1f" + tags,
        event_time=event_time,
        account=packet.text(d.USER_NAME),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        times_derived=derived,
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
