"""Vendor profiles: what a RADIUS accounting packet means, as a CallRecord.

Each switch family encodes a call differently: Cisco in h323-* VSAs whose
values repeat their own name and carry clock-quality flags, FreeSWITCH in
vendor 27880 attributes, Kamailio as transaction events to be joined
(Start/Stop without a duration), everything else in plain RFC 2866 terms.
`interpret` picks the client's profile (or guesses it from the packet for
`auto`) and returns a CallRecord, or raises NotACall for a packet that
carries no call (Status-Server, an unknown status type). A profile reads
the attributes; what their values mean to the vendor (time formats, causes,
legs, which events are calls) is in `collector.vendors`, shared with the
other transports that carry the vendor's records. Profiles are pure
functions: no I/O, and never a raw number in an exception message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from collector.pipeline.outcome import q850_from_sip_status
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.codec import Packet
from collector.record import (
    KIND_INTERIM,
    KIND_RESET,
    KIND_START,
    KIND_STOP,
    PROTOCOL_RADIUS,
    CallRecord,
    RecordKind,
)
from collector.vendors import cisco as cisco_vendor
from collector.vendors import kamailio as kamailio_vendor
from collector.vendors.freeswitch import causes as freeswitch_causes
from collector.vendors.freeswitch import legs as freeswitch_legs
from collector.vendors.freeswitch import radius_cdr as freeswitch_radius

_STATUS_KINDS = {
    d.STATUS_START: KIND_START,
    d.STATUS_STOP: KIND_STOP,
    d.STATUS_INTERIM: KIND_INTERIM,
    d.STATUS_ACCOUNTING_ON: KIND_RESET,
    d.STATUS_ACCOUNTING_OFF: KIND_RESET,
    d.STATUS_FAILED: KIND_STOP,
}

#: the NotACall reason of valid accounting that describes no call (an
#: unsupported status type, a Kamailio CANCEL or in-dialog request, a Cisco
#: login session): the receiver answers it, so the client stops resending,
#: counts it as "unsupported" and stores nothing
UNSUPPORTED: Final = "unsupported_status_type"


class NotACall(Exception):
    """The packet is valid RADIUS but lacks what a call record needs; `reason` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


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
    event_time, derived = _base(packet, ctx, KIND_RESET)
    return CallRecord(
        kind=KIND_RESET,
        source=ctx.source,
        protocol=PROTOCOL_RADIUS,
        session_id="",
        event_time=event_time,
        times_derived=derived,
    )


def generic(packet: Packet, ctx: Context) -> CallRecord:
    """RFC 2866 only: Acct-Session-Time, Event-Timestamp, Acct-Delay-Time."""
    status, kind = _status(packet)
    if kind is KIND_RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=PROTOCOL_RADIUS,
        session_id=_session(packet),
        event_time=event_time,
        account=packet.text(d.USER_NAME),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        times_derived=derived,
    )
    session_time = packet.integer(d.ACCT_SESSION_TIME)
    if kind is KIND_STOP:
        record.disconnect_time = event_time
        if status == d.STATUS_FAILED:
            # what the packet says; its billable time (none) follows (pipeline.billing)
            record.answered = False
        elif session_time is not None:
            # the duration sent: answered or not follows from it (pipeline.billing)
            record.duration_ms = session_time * 1000
            if session_time > 0:
                record.connect_time = event_time - timedelta(seconds=session_time)
    elif kind is KIND_START:
        record.connect_time = event_time
    return record


def cisco(packet: Packet, ctx: Context) -> CallRecord:
    """Cisco IOS voice gateways and CUBE: h323-* VSAs, hex Q.850 cause, call origin as leg.

    The same router also accounts logins and network sessions (`aaa accounting
    exec`/`network`): a packet with neither an h323-* VSA nor a voice
    Cisco-AVPair is no call.
    """
    status, kind = _status(packet)
    if kind is KIND_RESET:
        return _reset(packet, ctx)
    session = _session(packet)
    if not _cisco_voice(packet):
        raise NotACall(UNSUPPORTED)
    event_time, derived = _base(packet, ctx, kind)
    vsas = packet.vsas

    def vsa(vendor_type: int) -> str | None:
        # only the six values a call needs are decoded, not every Cisco VSA sent
        items = vsas.get(_CISCO_KEYS[vendor_type])
        return cisco_vendor.strip_name(items[0].decode("utf-8", "replace")) if items else None

    setup_text = vsa(d.H323_SETUP_TIME)
    connect_text = vsa(d.H323_CONNECT_TIME)
    disconnect_text = vsa(d.H323_DISCONNECT_TIME)
    setup_time, connect_time, disconnect_time, flagged = cisco_vendor.call_times(
        kind, event_time, (setup_text, connect_text, disconnect_text)
    )
    session_time = packet.integer(d.ACCT_SESSION_TIME)

    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=PROTOCOL_RADIUS,
        session_id=session,
        event_time=event_time,
        leg=cisco_vendor.leg(vsa(d.H323_CALL_ORIGIN)),
        setup_stamp=cisco_vendor.setup_stamp(setup_text),
        account=_cisco_account(packet),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        disconnect_cause=cisco_vendor.disconnect_cause(vsa(d.H323_DISCONNECT_CAUSE)),
        # the event time is only a fallback: derived when it must stand in for the anchor
        times_derived=derived
        and (disconnect_time if kind is KIND_STOP else (connect_time or setup_time)) is None,
        clock_unsynced=flagged,
        correlation=cisco_vendor.correlation(vsa(d.H323_CONF_ID)),
    )
    if kind is KIND_STOP:
        both_ends = connect_time is not None and disconnect_time is not None
        apart = (
            connect_time is not None
            and disconnect_time is not None
            and (disconnect_time > connect_time)
        )
        # Cisco's answer: its h323 times enclose some time, or Acct-Session-Time counts
        # some. A connect time equal to the disconnect time (or alone) is no answer.
        record.answered = status != d.STATUS_FAILED and (apart or bool(session_time))
        if session_time is not None and not both_ends:
            # whole seconds: the h323 times, when both are sent, bill to the millisecond
            # instead (pipeline.billing)
            record.duration_ms = session_time * 1000
        if not record.answered:
            connect_time = None
    _place_times(record, ctx, setup_time, connect_time, disconnect_time, flagged)
    return record


def _cisco_voice(packet: Packet) -> bool:
    """Whether a Cisco packet is voice accounting: an h323-* VSA or a voice Cisco-AVPair."""
    for key, items in packet.vsas.items():
        if key[:4] != _CISCO_PREFIX:
            continue
        if key[4] == d.CISCO_AVPAIR:
            voice = any(cisco_vendor.is_voice_avpair(raw) for raw in items)
        else:
            voice = d.H323_REMOTE_ADDRESS <= key[4] <= d.H323_INCOMING_CONF_ID or items[
                0
            ].lstrip().lower().startswith(b"h323-")
        if voice:
            return True
    return False


_CISCO_PREFIX = d.CISCO.to_bytes(4, "big")


#: the index keys (Packet.vsas) of Cisco's h323-* VSAs, by vendor type
_CISCO_KEYS: dict[int, bytes] = {number: _CISCO_PREFIX + bytes((number,)) for number in range(256)}


_AVPAIR_KEY = _CISCO_PREFIX + bytes((d.CISCO_AVPAIR,))


def _cisco_account(packet: Packet) -> str | None:
    """An account code sent as Cisco-AVPair "account-code=...", else User-Name."""
    for raw in packet.vsas.get(_AVPAIR_KEY, ()):
        if b"ccount" not in raw:  # most pairs are something else: skip the decoding
            continue
        name, sep, value = raw.decode("utf-8", "replace").partition("=")
        if sep and name.strip().lower() in cisco_vendor.ACCOUNT_AVPAIRS:
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

    A Cisco clock flagged unsynchronized and far from the event time we know
    is not trusted (`cisco.clock_shift`): its times are shifted onto that
    event time, and the record says its times were derived. Missing times are filled from
    the event time and the duration (a Stop's; a Start's connect time is never
    made up).
    """
    del ctx
    reference = record.event_time
    anchor = disconnect_time if record.kind is KIND_STOP else (connect_time or setup_time)
    shift = cisco_vendor.clock_shift(anchor, reference, flagged)
    if shift is None:
        shift = timedelta(0)
    else:
        record.times_derived = True
    try:
        _shift_and_fill(record, reference, setup_time, connect_time, disconnect_time, shift)
    except OverflowError:
        # times that cannot be placed on the calendar are not times: keep none of them
        # (nor bill between them)
        record.setup_time = record.connect_time = None
        record.disconnect_time = reference if record.kind is KIND_STOP else None
        record.times_derived = record.times_implausible = True


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
    if record.kind is KIND_STOP:
        if record.disconnect_time is None:
            record.disconnect_time = reference
        if record.answered and record.connect_time is None and record.duration_ms is not None:
            record.connect_time = record.disconnect_time - timedelta(
                milliseconds=record.duration_ms
            )
            record.times_derived = True
    # a Start is connected only when it says so (h323-connect-time): one sent at
    # setup is a call not answered yet


def freeswitch(packet: Packet, ctx: Context) -> CallRecord:
    """FreeSWITCH mod_radius_cdr: vendor 27880 attributes, Acct-Session-Time preferred.

    The correlation of both legs of a bridged call is the A-leg's uuid, and
    `leg` is what `collector.vendors.freeswitch.legs` decides for RADIUS (as
    for JSON CDRs); the sink completes a Stop's missing correlation from its
    Start. Times are read as `freeswitch.radius_cdr` says, and
    Freeswitch-Hangupcause (either numbering) means what `freeswitch.causes`
    says, as for JSON CDRs. Its `call_id` is the leg's uuid (Acct-Session-Id),
    which is the SIP Call-ID only when the sofia profile says so (see
    `collector.reconcile`).
    """
    status, kind = _status(packet)
    if kind is KIND_RESET:
        return _reset(packet, ctx)
    event_time, derived = _base(packet, ctx, kind)
    fs = d.FREESWITCH
    start_text = packet.vendor_text(fs, d.FS_CALLSTARTDATE)
    answer_text = packet.vendor_text(fs, d.FS_CALLANSWERDATE)
    end_text = packet.vendor_text(fs, d.FS_CALLENDDATE)
    setup_time = freeswitch_radius.parse_time(start_text) if start_text else None
    connect_time = freeswitch_radius.parse_time(answer_text) if answer_text else None
    disconnect_time = freeswitch_radius.parse_time(end_text) if end_text else None
    hangup = packet.vendor_integer(fs, d.FS_HANGUPCAUSE)
    cause = freeswitch_causes.cause_of_number(hangup) if hangup is not None else None
    session = _session(packet)
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=PROTOCOL_RADIUS,
        session_id=session,
        event_time=event_time,
        leg=freeswitch_legs.leg(PROTOCOL_RADIUS, packet.vendor_text(fs, d.FS_DIRECTION)),
        setup_stamp=freeswitch_radius.setup_stamp(start_text, setup_time),
        account=packet.text(d.USER_NAME),
        calling=packet.vendor_text(fs, d.FS_SRC) or packet.text(d.CALLING_STATION_ID),
        called=packet.vendor_text(fs, d.FS_DST) or packet.text(d.CALLED_STATION_ID),
        setup_time=setup_time,
        connect_time=connect_time,
        disconnect_time=disconnect_time,
        disconnect_cause=cause.q850 if cause is not None else None,
        times_derived=derived
        and (disconnect_time if kind is KIND_STOP else (connect_time or setup_time)) is None,
        # the pipeline only ever stores its keyed pseudonym
        correlation=freeswitch_legs.radius_a_leg(
            session,
            packet.vendor_text(fs, d.FS_DIRECTION),
            packet.vendor_text(fs, d.FS_OTHER_LEG_ID),
        ),
        # mod_radius_cdr never sends the SIP Call-ID: the leg's uuid is it when the sofia
        # profile sets inbound-use-callid-as-uuid and outbound-use-uuid-as-callid
        call_id=session or None,
    )
    if kind is KIND_STOP:
        session_time = packet.integer(d.ACCT_SESSION_TIME)
        billusec = packet.vendor_integer(fs, d.FS_BILLUSEC)
        duration_ms: int | None = None  # the duration sent, when it is
        if status == d.STATUS_FAILED:
            pass
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
        # whether the packet shows an answer: a Failed status shows none; a billed time
        # shows one when above 0 or sent with an answer date; an answer date with an end
        # date shows one (billed from one to the other, see pipeline.billing); else the
        # packet shows nothing and the cause decides
        shown: bool | None = None
        if status == d.STATUS_FAILED:
            shown = False
        elif duration_ms is not None:
            shown = duration_ms > 0 or connect_time is not None
        elif connect_time is not None and disconnect_time is not None:
            shown = True
        # the cause and what it implies are FreeSWITCH's, the same for every transport
        end = freeswitch_causes.leg_end(cause, shown)
        record.disconnect_cause, record.sip_code, record.answered = (
            end.disconnect_cause,
            end.sip_code,
            end.answered,
        )
        record.duration_ms = duration_ms
        if record.disconnect_time is None:
            record.disconnect_time = event_time
        if not record.answered:
            record.connect_time = None
    elif kind is KIND_START and record.connect_time is None:
        record.connect_time = connect_time
    return record


def kamailio(packet: Packet, ctx: Context) -> CallRecord:
    """Kamailio acc_radius: Start on the 2xx to INVITE, Stop on BYE, Failed for failed INVITEs.

    Kamailio accounts transactions, not calls: its Stop has no
    Acct-Session-Time, so the duration comes from joining the Stop to its
    durable Start (done by the sink). The call is Acct-Session-Id (Call-ID)
    plus its dialog tags, its correlation the Call-ID alone (see
    `collector.vendors.kamailio`). Transactions that are no event of a call
    (a CANCEL, an early-media 183, a MESSAGE) raise NotACall (see
    `kamailio.is_call_event`).
    """
    status, kind = _status(packet)
    if kind is KIND_RESET:
        return _reset(packet, ctx)
    session = _session(packet)
    code = _integer_or_digits(packet, d.SIP_RESPONSE_CODE)
    method = _integer_or_digits(packet, d.SIP_METHOD)
    failed = status == d.STATUS_FAILED
    if not kamailio_vendor.is_call_event(
        failed, kind, None if method is None else _SIP_METHODS.get(method, "OTHER"), code
    ):
        raise NotACall(UNSUPPORTED)
    event_time, derived = _base(packet, ctx, kind)
    record = CallRecord(
        kind=kind,
        source=ctx.source,
        protocol=PROTOCOL_RADIUS,
        session_id=kamailio_vendor.session_id(
            session, packet.text(d.SIP_FROM_TAG) or "", packet.text(d.SIP_TO_TAG) or "", failed
        ),
        event_time=event_time,
        account=packet.text(d.USER_NAME),
        calling=packet.text(d.CALLING_STATION_ID),
        called=packet.text(d.CALLED_STATION_ID),
        times_derived=derived,
        # the Call-ID, as the call's SIP records carry it (see dialogs.DialogTracker)
        correlation=kamailio_vendor.correlation(session),
        call_id=kamailio_vendor.correlation(session),
    )
    if status == d.STATUS_FAILED:
        record.answered = False  # a failed INVITE: nothing to bill (pipeline.billing)
        record.sip_code = code
        record.disconnect_cause = q850_from_sip_status(code) if code is not None else None
        record.disconnect_time = event_time
        record.setup_time = event_time
    elif kind is KIND_STOP:
        # Kamailio accounts a Stop only for the BYE of an established dialog: answered,
        # whatever Acct-Session-Time (if sent at all) says
        record.answered = True
        record.sip_code = 200
        record.disconnect_cause = 16
        record.disconnect_time = event_time
        session_time = packet.integer(d.ACCT_SESSION_TIME)
        if session_time is not None:
            record.duration_ms = session_time * 1000
            record.connect_time = event_time - timedelta(seconds=session_time)
    elif kind is KIND_START:
        record.connect_time = event_time
        record.sip_code = code
    return record


#: Kamailio's Sip-Method bitmask values, as the method names they stand for
_SIP_METHODS = {
    d.SIP_METHOD_INVITE: "INVITE",
    d.SIP_METHOD_CANCEL: "CANCEL",
    d.SIP_METHOD_ACK: "ACK",
    d.SIP_METHOD_BYE: "BYE",
}


def _integer_or_digits(packet: Packet, number: int) -> int | None:
    """An integer attribute, or one sent as decimal text; None otherwise."""
    value = packet.integer(number)
    if value is None:
        text = packet.text(number)
        value = (
            int(text) if text and text.isascii() and text.isdigit() and len(text) <= 10 else None
        )
    return value


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
