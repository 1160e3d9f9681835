"""Vendor profiles: what Cisco, FreeSWITCH and plain RFC 2866 accounting packets mean.

Packets are built the way the switches build them (with `collector.traffic`
and `codec.encode_*`), encoded, decoded again and interpreted: the profile
sees exactly what the receiver would. Expected values are worked out here from
the call, never taken from the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from collector import traffic
from collector.config import PrivacyConfig
from collector.model import RecordKind
from collector.pipeline.billing import settle
from collector.pipeline.outcome import CallOutcome, call_outcome
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec, profiles
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.codec import Packet
from collector.receivers.radius.profiles import Context, NotACall
from collector.vendors import cisco
from collector.vendors.freeswitch import radius_cdr as freeswitch_radius

SECRET = b"profile-secret"
ARRIVAL = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CONF_ID = "3C5AEAB9 1DD211B2 8FD3c3e4 4B8F5A10"


def packet_of(attributes: bytes) -> Packet:
    """The packet the receiver would decode from these attributes."""
    return codec.decode(codec.encode_accounting_request(7, attributes, SECRET))


def ctx(arrival: datetime = ARRIVAL) -> Context:
    return Context("sbc-test", arrival)


def answered_call(
    end: datetime,
    talk: timedelta = timedelta(seconds=61, milliseconds=250),
    ringing: timedelta = timedelta(seconds=4, milliseconds=500),
    cause: int = 16,
    leg: str = "originate",
) -> traffic.Call:
    connect = end - talk
    return traffic.Call(
        session_id="A1B2C3D4",
        calling="+4930123456789",
        called="+442071234567",
        setup=connect - ringing,
        connect=connect,
        disconnect=end,
        cause=cause,
        leg=leg,
        conf_id=CONF_ID,
    )


def unanswered_call(end: datetime, cause: int = 17) -> traffic.Call:
    return traffic.Call(
        session_id="E5F6A7B8",
        calling="+4930123456789",
        called="+442071234567",
        setup=end - timedelta(seconds=12),
        connect=None,
        disconnect=end,
        cause=cause,
        conf_id=CONF_ID,
    )


def integer_attribute(number: int, value: int) -> bytes:
    return codec.encode_attribute(number, codec.integer(value))


def text_attribute(number: int, value: str) -> bytes:
    return codec.encode_attribute(number, value.encode())


def redactor() -> Redactor:
    return Redactor(
        PrivacyConfig(keys=(("k1", b"p" * 32),), record_secret=b"record-key-secret-0123456789")
    )


# -- Cisco -------------------------------------------------------------------------


def test_cisco_stop_with_synced_clock_keeps_the_switch_times() -> None:
    # the switch's clock is two hours off ours but not flagged: believed as is
    call = answered_call(end=ARRIVAL - timedelta(hours=2))
    record = settle(profiles.cisco(packet_of(traffic.cisco_attributes(call)), ctx()))
    assert record.kind is RecordKind.STOP
    assert record.setup_time == call.setup
    assert record.connect_time == call.connect
    assert record.disconnect_time == call.disconnect
    assert record.duration_ms == 61_250
    assert record.answered is True
    assert record.clock_unsynced is False


def test_cisco_stop_with_all_its_own_times_is_not_marked_derived() -> None:
    # setup, connect and disconnect all come from the switch's (synced) clock; the
    # packet has no Event-Timestamp, which Cisco gateways do not send by default
    call = answered_call(end=ARRIVAL - timedelta(seconds=1))
    record = profiles.cisco(packet_of(traffic.cisco_attributes(call)), ctx())
    assert (record.setup_time, record.connect_time, record.disconnect_time) == (
        call.setup,
        call.connect,
        call.disconnect,
    )
    assert record.times_derived is False


def test_cisco_values_repeating_their_names_are_stripped() -> None:
    call = answered_call(end=ARRIVAL - timedelta(seconds=1), leg="answer")
    packet = packet_of(traffic.cisco_attributes(call))
    setup_text = packet.vendor_text(d.CISCO, d.H323_SETUP_TIME)
    assert setup_text is not None and setup_text.startswith("h323-setup-time=")
    record = profiles.cisco(packet, ctx())
    assert record.setup_stamp == setup_text.removeprefix("h323-setup-time=")
    assert record.leg == "answer"
    assert record.correlation == "3C5AEAB91DD211B28FD3C3E44B8F5A10"
    assert record.session_id == "A1B2C3D4"
    assert record.called == "442071234567"
    assert record.calling == "4930123456789"


def test_cisco_call_origin_becomes_the_leg() -> None:
    legs = {
        leg: profiles.cisco(
            packet_of(traffic.cisco_attributes(answered_call(ARRIVAL, leg=leg))), ctx()
        ).leg
        for leg in ("originate", "answer")
    }
    assert legs == {"originate": "originate", "answer": "answer"}


@pytest.mark.parametrize(
    ("cause", "hex_text"), [(16, "10"), (17, "11"), (31, "1F"), (34, "22"), (127, "7F")]
)
def test_cisco_disconnect_cause_is_hexadecimal(cause: int, hex_text: str) -> None:
    call = answered_call(ARRIVAL, cause=cause)
    packet = packet_of(traffic.cisco_attributes(call))
    assert packet.vendor_text(d.CISCO, d.H323_DISCONNECT_CAUSE) == (
        f"h323-disconnect-cause={hex_text}"
    )
    assert profiles.cisco(packet, ctx()).disconnect_cause == cause


@pytest.mark.parametrize("bad", ["zz", "", "1FF", "-1"])
def test_cisco_unusable_disconnect_cause_is_dropped(bad: str) -> None:
    call = answered_call(ARRIVAL)
    attributes = codec.encode_vsa(
        d.CISCO, d.H323_DISCONNECT_CAUSE, f"h323-disconnect-cause={bad}".encode()
    ) + traffic.cisco_attributes(call)
    assert profiles.cisco(packet_of(attributes), ctx()).disconnect_cause is None


def test_cisco_unanswered_call_has_no_duration() -> None:
    call = unanswered_call(ARRIVAL - timedelta(seconds=2))
    record = settle(profiles.cisco(packet_of(traffic.cisco_attributes(call)), ctx()))
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.connect_time is None
    assert record.disconnect_cause == 17
    assert record.disconnect_time == call.disconnect


@pytest.mark.parametrize("flag", ["*", "."])
def test_cisco_flagged_clock_far_from_arrival_is_shifted_keeping_the_duration(flag: str) -> None:
    call = answered_call(end=ARRIVAL - timedelta(hours=3, minutes=7))
    record = settle(
        profiles.cisco(packet_of(traffic.cisco_attributes(call, clock_flag=flag)), ctx())
    )
    assert record.clock_unsynced is True
    assert record.times_derived is True
    # shifted onto the only time we trust (arrival, no Acct-Delay-Time) ...
    assert record.disconnect_time == ARRIVAL
    assert record.connect_time is not None and record.setup_time is not None
    # ... keeping the differences the switch measured
    assert record.disconnect_time - record.connect_time == timedelta(seconds=61, milliseconds=250)
    assert record.connect_time - record.setup_time == timedelta(seconds=4, milliseconds=500)
    assert record.duration_ms == 61_250


def test_cisco_flagged_clock_is_shifted_onto_event_timestamp_when_present() -> None:
    event = ARRIVAL - timedelta(seconds=30)
    call = answered_call(end=ARRIVAL + timedelta(days=1))
    attributes = integer_attribute(d.EVENT_TIMESTAMP, int(event.timestamp()))
    attributes += traffic.cisco_attributes(call, clock_flag="*")
    record = settle(profiles.cisco(packet_of(attributes), ctx()))
    assert record.disconnect_time == event
    assert record.duration_ms == 61_250
    assert record.clock_unsynced is True


def test_cisco_flagged_clock_close_to_ours_is_kept_but_recorded() -> None:
    call = answered_call(end=ARRIVAL - timedelta(seconds=40))
    record = profiles.cisco(packet_of(traffic.cisco_attributes(call, clock_flag="*")), ctx())
    assert record.clock_unsynced is True
    assert record.disconnect_time == call.disconnect
    assert record.setup_time == call.setup


def test_cisco_unknown_time_zone_falls_back_to_session_time() -> None:
    # the wall clock reads 3:08 ahead of the arrival: no whole quarter-hour
    # offset puts it within UNKNOWN_ZONE_TOLERANCE, so the zone stays unknown
    def stamp(name: str, when: datetime) -> bytes:
        when += timedelta(hours=3, minutes=8)
        value = f"{name}={when:%H:%M:%S}.000 XYZT Wed May 01 2024"
        number = {
            "h323-setup-time": d.H323_SETUP_TIME,
            "h323-connect-time": d.H323_CONNECT_TIME,
            "h323-disconnect-time": d.H323_DISCONNECT_TIME,
        }[name]
        return codec.encode_vsa(d.CISCO, number, value.encode())

    attributes = b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            text_attribute(d.ACCT_SESSION_ID, "zone-1"),
            integer_attribute(d.ACCT_SESSION_TIME, 42),
            stamp("h323-setup-time", ARRIVAL - timedelta(seconds=50)),
            stamp("h323-connect-time", ARRIVAL - timedelta(seconds=42)),
            stamp("h323-disconnect-time", ARRIVAL),
        )
    )
    record = profiles.cisco(packet_of(attributes), ctx())
    assert record.setup_time is None
    assert record.duration_ms == 42_000
    assert record.answered is True
    assert record.disconnect_time == ARRIVAL
    assert record.connect_time == ARRIVAL - timedelta(seconds=42)
    assert record.times_derived is True


@pytest.mark.parametrize(
    ("text", "expected", "flagged"),
    [
        ("12:00:01.250 UTC Wed May 01 2024", datetime(2024, 5, 1, 12, 0, 1, 250000, UTC), False),
        ("*14:00:01.250 CEST Wed May 01 2024", datetime(2024, 5, 1, 12, 0, 1, 250000, UTC), True),
        (".07:00:00.000 EST Mon Jan 01 2024", datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC), True),
        ("00:30:00.000 JST Wed May 01 2024", datetime(2024, 4, 30, 15, 30, tzinfo=UTC), False),
    ],
)
def test_parse_cisco_timestamp(text: str, expected: datetime, flagged: bool) -> None:
    assert cisco.parse_timestamp(text) == (expected, flagged)


@pytest.mark.parametrize(
    "text",
    [
        "12:00:01.250 XYZT Wed May 01 2024",
        "12:00:01.250 UTC Wed Foo 01 2024",
        "12:00 UTC Wed May 01 2024",
        "25:00:00.000 UTC Wed May 01 2024",
        "12:99:00.000 UTC Wed May 01 2024",
        "12:00:75.000 UTC Wed May 01 2024",
        "12:00:00.000 UTC Wed Feb 30 2024",
        "garbage",
        "",
        "*",
    ],
)
def test_parse_cisco_timestamp_refuses_what_it_cannot_read(text: str) -> None:
    parsed, _flag = cisco.parse_timestamp(text)
    assert parsed is None


# -- FreeSWITCH ------------------------------------------------------------------------


def freeswitch_stop(
    session_time: int | None,
    billusec: int | None,
    answer: bool = True,
    start: str = "2024-05-01T11:58:00.000000+0000",
    end: str = "2024-05-01T11:59:59.000000+0000",
) -> bytes:
    """A mod_radius_cdr Stop: answered at 11:58:05 UTC unless `answer` is false."""
    parts = [
        integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
        text_attribute(d.ACCT_SESSION_ID, "5d0f9c2e-1111-2222-3333-444455556666"),
        codec.encode_vsa(d.FREESWITCH, d.FS_SRC, b"+4930123456789"),
        codec.encode_vsa(d.FREESWITCH, d.FS_DST, b"+442071234567"),
        codec.encode_vsa(d.FREESWITCH, d.FS_CALLSTARTDATE, start.encode()),
        codec.encode_vsa(d.FREESWITCH, d.FS_HANGUPCAUSE, codec.integer(16)),
    ]
    if answer:
        parts.append(
            codec.encode_vsa(d.FREESWITCH, d.FS_CALLANSWERDATE, b"2024-05-01T11:58:05.000000+0000")
        )
    parts.append(codec.encode_vsa(d.FREESWITCH, d.FS_CALLENDDATE, end.encode()))
    if billusec is not None:
        parts.append(codec.encode_vsa(d.FREESWITCH, d.FS_BILLUSEC, codec.integer(billusec)))
    if session_time is not None:
        parts.append(integer_attribute(d.ACCT_SESSION_TIME, session_time))
    return b"".join(parts)


def test_freeswitch_session_time_wins_over_a_disagreeing_billusec() -> None:
    record = profiles.freeswitch(packet_of(freeswitch_stop(60, 30_500_000)), ctx())
    assert record.duration_ms == 60_000


def test_freeswitch_agreeing_billusec_only_refines_the_session_time() -> None:
    record = profiles.freeswitch(packet_of(freeswitch_stop(60, 60_250_000)), ctx())
    assert record.duration_ms is not None
    assert 60_000 <= record.duration_ms < 61_000


def test_freeswitch_billusec_wrap_after_71_minutes_does_not_corrupt_the_duration() -> None:
    end = ARRIVAL - timedelta(seconds=3)
    call = answered_call(end, talk=timedelta(minutes=75))
    packet = packet_of(traffic.freeswitch_attributes(call))
    billusec = packet.vendor_integer(d.FREESWITCH, d.FS_BILLUSEC)
    # the 32-bit field did wrap: 75 minutes are 4.5e9 microseconds
    assert billusec is not None and billusec < 75 * 60 * 1_000_000
    record = profiles.freeswitch(packet, ctx())
    assert record.duration_ms == 75 * 60 * 1000
    assert record.answered is True


def test_freeswitch_wrapped_billusec_without_session_time_is_not_trusted() -> None:
    # answered 11:58:05, ended 13:13:05: 75 minutes; Billusec holds them modulo 2**32
    talk_us = 75 * 60 * 1_000_000
    attributes = freeswitch_stop(None, talk_us & 0xFFFFFFFF, end="2024-05-01T13:13:05.000000+0000")
    record = profiles.freeswitch(packet_of(attributes), ctx(ARRIVAL + timedelta(hours=2)))
    assert record.duration_ms == talk_us // 1000


def test_freeswitch_unanswered_stop_without_answer_date() -> None:
    record = profiles.freeswitch(packet_of(freeswitch_stop(0, 0, answer=False)), ctx())
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.connect_time is None
    assert record.setup_time == datetime(2024, 5, 1, 11, 58, tzinfo=UTC)


def test_freeswitch_callstartdate_is_the_setup_stamp() -> None:
    call = answered_call(ARRIVAL - timedelta(seconds=2))
    packet = packet_of(traffic.freeswitch_attributes(call))
    record = profiles.freeswitch(packet, ctx())
    # the instant Callstartdate names, whatever local offset it was printed with
    assert record.setup_stamp == f"{call.setup.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"
    assert record.setup_time == call.setup
    assert record.connect_time == call.connect
    assert record.disconnect_time == call.disconnect
    assert record.calling == "+4930123456789"
    assert record.called == "+442071234567"


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T17:30:00.000000+051800",  # mod_radius_cdr's "+05" then 1800 seconds
        "2024-05-01T17:30:00.000000+0530",
        "2024-05-01T07:00:00.000000-0500",
        "2024-05-01T12:00:00.000000+0000",
        "2024-05-01T13:00:00.000000+0100",
    ],
)
def test_freeswitch_offsets_in_every_form(text: str) -> None:
    assert freeswitch_radius.parse_time(text) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_freeswitch_negative_half_hour_offset_as_mod_radius_cdr_prints_it() -> None:
    # mod_radius_cdr prints "%+03d%02d" of (gmtoff / 3600, gmtoff % 3600) in C:
    # at -03:30 (Newfoundland) that is -3 and -1800, so the text reads "-03-1800"
    parsed = freeswitch_radius.parse_time("2024-05-01T08:30:00.000000-03-1800")
    assert parsed == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_freeswitch_stop_with_all_its_own_dates_is_not_marked_derived() -> None:
    # mod_radius_cdr sends Callstartdate/-answerdate/-enddate but no Event-Timestamp
    record = profiles.freeswitch(packet_of(freeswitch_stop(115, 114_000_000)), ctx())
    assert record.setup_time == datetime(2024, 5, 1, 11, 58, tzinfo=UTC)
    assert record.connect_time == datetime(2024, 5, 1, 11, 58, 5, tzinfo=UTC)
    assert record.disconnect_time == datetime(2024, 5, 1, 11, 59, 59, tzinfo=UTC)
    assert record.times_derived is False


def test_freeswitch_odd_offset_in_a_packet_gives_utc_setup_time() -> None:
    attributes = freeswitch_stop(60, None, start="2024-05-01T17:28:00.000000+051800")
    record = profiles.freeswitch(packet_of(attributes), ctx())
    assert record.setup_time == datetime(2024, 5, 1, 11, 58, tzinfo=UTC)


def test_freeswitch_cancelled_call_keeps_sip_code_487() -> None:
    call = unanswered_call(ARRIVAL, cause=487)
    record = profiles.freeswitch(packet_of(traffic.freeswitch_attributes(call)), ctx())
    assert record.sip_code == 487
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.connect_time is None
    # 487 is a FreeSWITCH cause number, not a Q.850 cause: never stored as one
    assert record.disconnect_cause is None or 0 <= record.disconnect_cause <= 127


def test_freeswitch_unanswered_call() -> None:
    call = unanswered_call(ARRIVAL, cause=19)
    record = profiles.freeswitch(packet_of(traffic.freeswitch_attributes(call)), ctx())
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.disconnect_cause == 19
    assert record.sip_code is None


# -- generic RFC 2866 -------------------------------------------------------------------


def generic_stop(delay: int | None = None, event: datetime | None = None) -> bytes:
    parts = [
        integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
        text_attribute(d.ACCT_SESSION_ID, "gen-0001"),
        text_attribute(d.USER_NAME, "customer-7"),
        text_attribute(d.CALLING_STATION_ID, "+4930123456789"),
        text_attribute(d.CALLED_STATION_ID, "00442071234567"),
        integer_attribute(d.ACCT_SESSION_TIME, 95),
    ]
    if event is not None:
        parts.append(integer_attribute(d.EVENT_TIMESTAMP, int(event.timestamp())))
    if delay is not None:
        parts.append(integer_attribute(d.ACCT_DELAY_TIME, delay))
    return b"".join(parts)


def test_generic_stop_with_event_timestamp() -> None:
    event = ARRIVAL - timedelta(minutes=3)
    record = profiles.generic(packet_of(generic_stop(event=event, delay=9)), ctx())
    assert record.kind is RecordKind.STOP
    assert record.event_time == event  # Event-Timestamp wins over arrival - delay
    assert record.disconnect_time == event
    assert record.connect_time == event - timedelta(seconds=95)
    assert record.duration_ms == 95_000
    assert settle(record).answered is True
    assert record.times_derived is False
    assert record.account == "customer-7"
    assert record.calling == "+4930123456789"
    assert record.called == "00442071234567"


def test_generic_stop_without_event_timestamp_uses_arrival_minus_delay() -> None:
    record = profiles.generic(packet_of(generic_stop(delay=17)), ctx())
    assert record.event_time == ARRIVAL - timedelta(seconds=17)
    assert record.disconnect_time == ARRIVAL - timedelta(seconds=17)
    assert record.duration_ms == 95_000
    assert record.times_derived is True


def test_generic_retransmissions_with_new_delay_make_one_record_key() -> None:
    first = profiles.generic(packet_of(generic_stop(delay=0)), ctx(ARRIVAL))
    again = profiles.generic(
        packet_of(generic_stop(delay=31)), ctx(ARRIVAL + timedelta(seconds=31, milliseconds=400))
    )
    # the derived times differ between the two copies ...
    assert first.event_time != again.event_time
    redact = redactor()
    stored_first = redact.redact(first, ARRIVAL)
    stored_again = redact.redact(again, ARRIVAL + timedelta(seconds=31))
    # ... the identity of the call leg does not
    assert stored_first.record_key == stored_again.record_key
    other = profiles.generic(
        packet_of(generic_stop(delay=0).replace(b"gen-0001", b"gen-0002")), ctx(ARRIVAL)
    )
    assert redact.redact(other, ARRIVAL).record_key != stored_first.record_key


def test_generic_failed_is_an_unanswered_stop() -> None:
    attributes = b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_FAILED),
            text_attribute(d.ACCT_SESSION_ID, "failed-1"),
            integer_attribute(d.ACCT_SESSION_TIME, 12),  # even if a switch sends one
            integer_attribute(d.EVENT_TIMESTAMP, int(ARRIVAL.timestamp())),
        )
    )
    record = settle(profiles.generic(packet_of(attributes), ctx()))
    assert record.kind is RecordKind.STOP
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.disconnect_time == ARRIVAL


@pytest.mark.parametrize("status", [d.STATUS_ACCOUNTING_ON, d.STATUS_ACCOUNTING_OFF])
@pytest.mark.parametrize("profile", ["generic", "cisco", "freeswitch", "kamailio"])
def test_accounting_on_and_off_reset_the_switch(status: int, profile: str) -> None:
    event = ARRIVAL - timedelta(seconds=5)
    attributes = integer_attribute(d.ACCT_STATUS_TYPE, status) + integer_attribute(
        d.EVENT_TIMESTAMP, int(event.timestamp())
    )
    record = profiles.PROFILES[profile](packet_of(attributes), ctx())
    assert record.kind is RecordKind.RESET
    assert record.event_time == event
    assert record.source == "sbc-test"


def test_interim_update_is_an_interim_record() -> None:
    attributes = generic_stop(event=ARRIVAL).replace(
        integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
        integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_INTERIM),
    )
    record = profiles.generic(packet_of(attributes), ctx())
    assert record.kind is RecordKind.INTERIM
    assert record.session_id == "gen-0001"


def test_start_is_a_start_record_connected_at_the_event() -> None:
    call = answered_call(ARRIVAL)
    record = profiles.generic(
        packet_of(traffic.generic_attributes(call, status=d.STATUS_START)), ctx()
    )
    assert record.kind is RecordKind.START
    assert call.connect is not None
    # Event-Timestamp has whole seconds
    assert record.connect_time == datetime.fromtimestamp(int(call.connect.timestamp()), UTC)


@pytest.mark.parametrize("status", [4, 5, 6, 9, 10, 0, 0xFFFFFFFF])
@pytest.mark.parametrize("profile", ["generic", "cisco", "freeswitch", "kamailio"])
def test_unsupported_status_type_is_not_a_call(status: int, profile: str) -> None:
    attributes = integer_attribute(d.ACCT_STATUS_TYPE, status) + text_attribute(
        d.ACCT_SESSION_ID, "x"
    )
    with pytest.raises(NotACall) as caught:
        profiles.PROFILES[profile](packet_of(attributes), ctx())
    assert caught.value.reason == "unsupported_status_type"


@pytest.mark.parametrize("profile", ["generic", "cisco", "freeswitch", "kamailio"])
def test_missing_session_id_is_not_a_call(profile: str) -> None:
    attributes = integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP) + integer_attribute(
        d.ACCT_SESSION_TIME, 3
    )
    with pytest.raises(NotACall) as caught:
        profiles.PROFILES[profile](packet_of(attributes), ctx())
    assert "session" in caught.value.reason


def test_missing_status_type_is_not_a_call() -> None:
    with pytest.raises(NotACall):
        profiles.generic(packet_of(text_attribute(d.ACCT_SESSION_ID, "x")), ctx())


def test_not_a_call_never_carries_a_number() -> None:
    attributes = integer_attribute(d.ACCT_STATUS_TYPE, 99) + text_attribute(
        d.CALLED_STATION_ID, "4930123456789"
    )
    with pytest.raises(NotACall) as caught:
        profiles.generic(packet_of(attributes), ctx())
    assert "4930123456789" not in str(caught.value)


# -- detection --------------------------------------------------------------------------


def kamailio_attributes() -> bytes:
    return b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_START),
            integer_attribute(d.SERVICE_TYPE, d.SERVICE_TYPE_SIP_SESSION),
            integer_attribute(d.SIP_RESPONSE_CODE, 200),
            integer_attribute(d.SIP_METHOD, d.SIP_METHOD_INVITE),
            text_attribute(d.SIP_FROM_TAG, "a1b2"),
            text_attribute(d.SIP_TO_TAG, "c3d4"),
            text_attribute(d.ACCT_SESSION_ID, "call-id-1@example.invalid"),
        )
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (traffic.cisco_attributes(answered_call(ARRIVAL)), "cisco"),
        (traffic.freeswitch_attributes(answered_call(ARRIVAL)), "freeswitch"),
        (kamailio_attributes(), "kamailio"),
        (traffic.generic_attributes(answered_call(ARRIVAL)), "generic"),
    ],
)
def test_detect_picks_the_profile(attributes: bytes, expected: str) -> None:
    packet = packet_of(attributes)
    assert profiles.detect(packet) is profiles.PROFILES[expected]
    auto = profiles.interpret(packet, "auto", ctx())
    assert auto == profiles.PROFILES[expected](packet, ctx())


def test_configured_profile_overrides_detection() -> None:
    packet = packet_of(traffic.cisco_attributes(answered_call(ARRIVAL)))
    record = profiles.interpret(packet, "generic", ctx())
    assert record.leg == ""  # the generic profile does not read h323-call-origin
    assert record.correlation is None


# -- hostile values: a profile returns a record or raises NotACall, nothing else ------------

HOSTILE = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,  # one falsifying example per test keeps a failing run short
)
#: the packet-level property draws many values; shrinking a failure of it takes
#: longer than the whole suite may, and the parametrized cases above pin bugs down
HOSTILE_PACKETS = settings(HOSTILE, phases=[Phase.explicit, Phase.reuse, Phase.generate])
ZONES = ["UTC", "GMT", "CET", "CEST", "EST", "PST", "JST", "NZDT", "XYZ", ""]
MONTHS = ["Jan", "Feb", "Dec", "Foo", ""]


@st.composite
def cisco_times(draw: st.DrawFn) -> str:
    flag = draw(st.sampled_from(["", "*", "."]))
    hour, minute, second = (draw(st.integers(0, 99)) for _ in range(3))
    millis = draw(st.integers(0, 999))
    zone = draw(st.sampled_from(ZONES))
    month = draw(st.sampled_from(MONTHS))
    day, year = draw(st.integers(0, 99)), draw(st.integers(0, 9999))
    return f"{flag}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d} {zone} Mon {month} {day:02d} {year:04d}"


@st.composite
def freeswitch_times(draw: st.DrawFn) -> str:
    year, month, day = (
        draw(st.integers(0, 9999)),
        draw(st.integers(0, 13)),
        draw(st.integers(0, 32)),
    )
    hour, minute = draw(st.integers(0, 25)), draw(st.integers(0, 61))
    sign = draw(st.sampled_from(["+", "-"]))
    hours = draw(st.integers(-99, 99))
    rest = draw(st.sampled_from(["", "00", "30", "45", "1800", "-1800", "2700", "9999"]))
    return (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00.000000{sign}{hours:02d}{rest}"
    )


@HOSTILE
@given(st.one_of(cisco_times(), st.text(max_size=40)))
def test_parse_cisco_timestamp_never_raises(text: str) -> None:
    parsed, _flag = cisco.parse_timestamp(text)
    assert parsed is None or parsed.utcoffset() == timedelta(0)


@HOSTILE
@given(st.one_of(freeswitch_times(), st.text(max_size=40)))
def test_parse_freeswitch_time_never_raises(text: str) -> None:
    parsed = freeswitch_radius.parse_time(text)
    assert parsed is None or parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "23:00:00.000 PST Fri Dec 31 9999",  # UTC would be in year 10000
        "00:30:00.000 JST Mon Jan 01 0001",  # UTC would be in year 0
        "99:00:00.000 UTC Fri Dec 31 9999",
    ],
)
def test_cisco_timestamp_outside_the_calendar_is_refused_not_raised(text: str) -> None:
    assert cisco.parse_timestamp(text)[0] is None


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:00:00.000000-0500",
        "0001-01-01T00:30:00.000000+0100",
        "2024-05-01T12:00:00.000000+9900",  # an offset of 99 hours
    ],
)
def test_freeswitch_time_outside_the_calendar_is_refused_not_raised(text: str) -> None:
    assert freeswitch_radius.parse_time(text) is None


def test_flagged_cisco_clock_with_absurd_dates_does_not_break_the_profile() -> None:
    def stamp(number: int, name: str, text: str) -> bytes:
        return codec.encode_vsa(d.CISCO, number, f"{name}={text}".encode())

    attributes = b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            text_attribute(d.ACCT_SESSION_ID, "absurd-1"),
            stamp(d.H323_SETUP_TIME, "h323-setup-time", "*00:00:01.000 UTC Mon Jan 01 0001"),
            stamp(d.H323_CONNECT_TIME, "h323-connect-time", "*00:00:02.000 UTC Mon Jan 01 0001"),
            stamp(
                d.H323_DISCONNECT_TIME, "h323-disconnect-time", "*23:00:00.000 UTC Fri Dec 31 9999"
            ),
        )
    )
    record = profiles.cisco(packet_of(attributes), ctx())  # shifting must not overflow
    assert record.clock_unsynced is True
    assert record.disconnect_time is not None
    assert abs(record.disconnect_time - ARRIVAL) <= cisco.UNSYNCED_TOLERANCE


_NUMBERS = [
    d.USER_NAME,
    d.CALLED_STATION_ID,
    d.CALLING_STATION_ID,
    d.ACCT_DELAY_TIME,
    d.ACCT_SESSION_TIME,
    d.EVENT_TIMESTAMP,
    d.SIP_METHOD,
    d.SIP_RESPONSE_CODE,
    d.SIP_FROM_TAG,
    d.SIP_TO_TAG,
]
_VSAS = [(d.CISCO, t) for t in (1, 23, 24, 25, 26, 28, 29, 30)] + [
    (d.FREESWITCH, t) for t in (4, 5, 13, 15, 20, 21, 23)
]
_VALUES = st.one_of(
    st.binary(max_size=24),
    st.integers(0, 2**32 - 1).map(codec.integer),
    cisco_times().map(lambda t: f"h323-setup-time={t}".encode()),
    cisco_times().map(str.encode),
    freeswitch_times().map(str.encode),
)


@HOSTILE_PACKETS
@given(
    status=st.sampled_from([d.STATUS_START, d.STATUS_STOP, d.STATUS_INTERIM, d.STATUS_FAILED]),
    attributes=st.lists(st.tuples(st.sampled_from(_NUMBERS), _VALUES), max_size=8),
    vsas=st.lists(st.tuples(st.sampled_from(_VSAS), _VALUES), max_size=10),
    arrival_offset=st.integers(-(10**9), 10**9),
)
def test_profiles_return_a_record_or_raise_not_a_call(
    status: int,
    attributes: list[tuple[int, bytes]],
    vsas: list[tuple[tuple[int, int], bytes]],
    arrival_offset: int,
) -> None:
    body = integer_attribute(d.ACCT_STATUS_TYPE, status) + text_attribute(
        d.ACCT_SESSION_ID, "fuzz-1"
    )
    body += b"".join(codec.encode_attribute(n, v) for n, v in attributes)
    body += b"".join(codec.encode_vsa(vendor, t, v) for (vendor, t), v in vsas)
    packet = packet_of(body)
    context = ctx(ARRIVAL + timedelta(seconds=arrival_offset))
    for name, profile in profiles.PROFILES.items():
        try:
            record = profile(packet, context)
        except NotACall:
            continue
        # kamailio's session id is the Call-ID joined with the dialog tags
        assert record.session_id.split("\x1f")[0] == "fuzz-1", name
        assert record.duration_ms is None or record.duration_ms >= 0, name


# -- Kamailio: which transactions are calls ------------------------------------------------

#: a Kamailio method bit that is neither INVITE, CANCEL nor BYE (INFO)
SIP_METHOD_INFO = 16


def kamailio_event(
    status: int,
    method: int | None,
    code: int,
    from_tag: str = "a1b2",
    to_tag: str | None = "c3d4",
    event: datetime = ARRIVAL,
) -> bytes:
    """What acc_radius sends for one accounted transaction of Call-ID call-id-1."""
    parts = [
        integer_attribute(d.ACCT_STATUS_TYPE, status),
        integer_attribute(d.SERVICE_TYPE, d.SERVICE_TYPE_SIP_SESSION),
        integer_attribute(d.SIP_RESPONSE_CODE, code),
        integer_attribute(d.EVENT_TIMESTAMP, int(event.timestamp())),
        text_attribute(d.SIP_FROM_TAG, from_tag),
        text_attribute(d.ACCT_SESSION_ID, "call-id-1@example.invalid"),
    ]
    if method is not None:
        parts.append(integer_attribute(d.SIP_METHOD, method))
    if to_tag is not None:
        parts.append(text_attribute(d.SIP_TO_TAG, to_tag))
    return b"".join(parts)


def test_kamailio_bye_ends_the_call_its_start_began() -> None:
    start = profiles.kamailio(
        packet_of(kamailio_event(d.STATUS_START, d.SIP_METHOD_INVITE, 200)), ctx()
    )
    # the callee hangs up: its BYE carries the tags the other way round
    bye = kamailio_event(
        d.STATUS_STOP,
        d.SIP_METHOD_BYE,
        200,
        from_tag="c3d4",
        to_tag="a1b2",
        event=ARRIVAL + timedelta(seconds=30),
    )
    stop = profiles.interpret(packet_of(bye), "auto", ctx(ARRIVAL + timedelta(seconds=30)))
    assert (start.kind, stop.kind) == (RecordKind.START, RecordKind.STOP)
    assert stop.answered is True
    assert stop.disconnect_time == ARRIVAL + timedelta(seconds=30)
    redact = redactor()
    assert redact.redact(start, ARRIVAL).record_key == redact.redact(stop, ARRIVAL).record_key


def test_kamailio_stop_without_sip_method_still_ends_the_call() -> None:
    record = profiles.kamailio(packet_of(kamailio_event(d.STATUS_STOP, None, 200)), ctx())
    assert record.kind is RecordKind.STOP
    assert record.answered is True


def test_kamailio_cancel_is_answered_but_not_a_call() -> None:
    # report_cancels=1: the CANCEL's 200 arrives as a Stop; the INVITE's own
    # Failed record (487) is the cancelled call
    packet = packet_of(kamailio_event(d.STATUS_STOP, d.SIP_METHOD_CANCEL, 200, to_tag=None))
    with pytest.raises(NotACall) as caught:
        profiles.interpret(packet, "auto", ctx())
    # the reason the receiver answers (so Kamailio stops resending) and stores nothing for
    assert caught.value.reason == profiles.UNSUPPORTED == "unsupported_status_type"
    cancelled = profiles.kamailio(
        packet_of(kamailio_event(d.STATUS_FAILED, d.SIP_METHOD_INVITE, 487, to_tag="c3d4")), ctx()
    )
    assert cancelled.kind is RecordKind.STOP
    assert cancelled.sip_code == 487
    assert cancelled.answered is False


@pytest.mark.parametrize(
    ("method", "code"),
    [
        (d.SIP_METHOD_INVITE, 183),  # early_media=1: the 183 with a body
        (d.SIP_METHOD_INVITE, 180),
        (SIP_METHOD_INFO, 202),  # any accounted non-INVITE request
        (SIP_METHOD_INFO, 404),
        (d.SIP_METHOD_CANCEL, 481),
    ],
)
def test_kamailio_failed_transaction_that_is_no_failed_call(method: int, code: int) -> None:
    packet = packet_of(kamailio_event(d.STATUS_FAILED, method, code, to_tag=None))
    with pytest.raises(NotACall) as caught:
        profiles.kamailio(packet, ctx())
    assert caught.value.reason == profiles.UNSUPPORTED


@pytest.mark.parametrize(
    ("method", "code", "cause"),
    [(d.SIP_METHOD_INVITE, 486, 17), (d.SIP_METHOD_INVITE, 404, 1), (None, 486, 17)],
)
def test_kamailio_failed_invite_is_an_unanswered_call(
    method: int | None, code: int, cause: int
) -> None:
    record = settle(
        profiles.kamailio(
            packet_of(kamailio_event(d.STATUS_FAILED, method, code, to_tag=None)), ctx()
        )
    )
    assert record.kind is RecordKind.STOP
    assert (record.answered, record.duration_ms) == (False, 0)
    assert (record.sip_code, record.disconnect_cause) == (code, cause)


def test_kamailio_in_dialog_request_is_no_call_event_unless_a_reinvite() -> None:
    with pytest.raises(NotACall) as caught:
        profiles.kamailio(packet_of(kamailio_event(d.STATUS_INTERIM, SIP_METHOD_INFO, 200)), ctx())
    assert caught.value.reason == profiles.UNSUPPORTED
    reinvite = profiles.kamailio(
        packet_of(kamailio_event(d.STATUS_INTERIM, d.SIP_METHOD_INVITE, 200)), ctx()
    )
    assert reinvite.kind is RecordKind.INTERIM


# -- Event-Timestamp as decimal text (Kamailio rad_time_mode=1) -----------------------------


@pytest.mark.parametrize("profile", ["kamailio", "generic"])
def test_event_timestamp_as_decimal_text(profile: str) -> None:
    attributes = kamailio_event(d.STATUS_START, d.SIP_METHOD_INVITE, 200).replace(
        integer_attribute(d.EVENT_TIMESTAMP, int(ARRIVAL.timestamp())),
        text_attribute(d.EVENT_TIMESTAMP, "1782907100.123456"),
    )
    record = profiles.PROFILES[profile](packet_of(attributes), ctx())
    expected = datetime(2026, 7, 1, 11, 58, 20, 123456, tzinfo=UTC)
    assert expected.timestamp() == 1782907100.123456
    assert record.event_time == expected
    assert record.connect_time == expected
    assert record.times_derived is False


@pytest.mark.parametrize("text", ["", "abc", "1782907100.", ".5", "99999999999", "1e9"])
def test_event_timestamp_text_that_is_no_time_falls_back_to_arrival(text: str) -> None:
    attributes = kamailio_event(d.STATUS_START, d.SIP_METHOD_INVITE, 200).replace(
        integer_attribute(d.EVENT_TIMESTAMP, int(ARRIVAL.timestamp())),
        text_attribute(d.EVENT_TIMESTAMP, text) if text else b"",
    )
    record = profiles.kamailio(packet_of(attributes), ctx())
    assert record.event_time == ARRIVAL
    assert record.times_derived is True


# -- Cisco: time zones named ambiguously or not at all ----------------------------------------


@pytest.mark.parametrize(
    ("zone", "utc"),
    [
        ("GMT+4", datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
        ("UTC-3", datetime(2026, 7, 1, 15, 0, tzinfo=UTC)),
        ("GMT+5:30", datetime(2026, 7, 1, 6, 30, tzinfo=UTC)),
        ("UTC+0545", datetime(2026, 7, 1, 6, 15, tzinfo=UTC)),
        ("GMT-09:30", datetime(2026, 7, 1, 21, 30, tzinfo=UTC)),
        ("GMT+0", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_cisco_zone_name_spelling_its_offset(zone: str, utc: datetime) -> None:
    assert cisco.parse_timestamp(f"12:00:00.000 {zone} Wed Jul 1 2026") == (utc, False)


@pytest.mark.parametrize("zone", ["GMT+15", "UTC-13", "GMT+5:75", "GMT+", "GMTX4"])
def test_cisco_zone_name_spelling_no_offset_in_use(zone: str) -> None:
    assert cisco.parse_timestamp(f"12:00:00.000 {zone} Wed Jul 1 2026") == (None, False)


def cisco_stop_in_zone(
    zone: str, offset: timedelta, call: traffic.Call, event: datetime | None = None
) -> bytes:
    """A Cisco Stop whose clock shows local time at `offset`, with the name `zone`."""

    def stamp(number: int, name: str, when: datetime) -> bytes:
        local = when.astimezone(UTC) + offset
        text = f"{name}={local:%H:%M:%S}.{local.microsecond // 1000:03d} {zone} {local:%a %b %d %Y}"
        return codec.encode_vsa(d.CISCO, number, text.encode())

    assert call.connect is not None
    parts = [
        integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
        text_attribute(d.ACCT_SESSION_ID, "0000001A"),
        codec.encode_vsa(d.CISCO, d.H323_CALL_ORIGIN, b"h323-call-origin=answer"),
        stamp(d.H323_SETUP_TIME, "h323-setup-time", call.setup),
        stamp(d.H323_CONNECT_TIME, "h323-connect-time", call.connect),
        stamp(d.H323_DISCONNECT_TIME, "h323-disconnect-time", call.disconnect),
        codec.encode_vsa(d.CISCO, d.H323_DISCONNECT_CAUSE, b"h323-disconnect-cause=10"),
        integer_attribute(d.ACCT_SESSION_TIME, 61),
    ]
    if event is not None:
        parts.append(integer_attribute(d.EVENT_TIMESTAMP, int(event.timestamp())))
    return b"".join(parts)


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("IST", timedelta(hours=5, minutes=30)),  # India
        ("IST", timedelta(hours=1)),  # Irish Standard Time
        ("IST", timedelta(hours=2)),  # Israel
        ("CST", timedelta(hours=8)),  # China
        ("CST", timedelta(hours=-6)),  # US Central
        ("BST", timedelta(hours=6)),  # Bangladesh
    ],
)
def test_cisco_ambiguous_zone_is_told_apart_by_the_arrival(zone: str, offset: timedelta) -> None:
    call = answered_call(end=ARRIVAL - timedelta(seconds=1))
    record = profiles.cisco(packet_of(cisco_stop_in_zone(zone, offset, call)), ctx())
    assert (record.setup_time, record.connect_time, record.disconnect_time) == (
        call.setup,
        call.connect,
        call.disconnect,
    )
    assert record.times_derived is False


def test_cisco_ambiguous_zone_is_told_apart_by_event_timestamp_first() -> None:
    # a Stop that waited two hours somewhere: Event-Timestamp still says when it was made
    end = ARRIVAL - timedelta(hours=2)
    call = answered_call(end=end)
    attributes = cisco_stop_in_zone("IST", timedelta(hours=5, minutes=30), call, event=end)
    record = profiles.cisco(packet_of(attributes), ctx())
    assert record.disconnect_time == call.disconnect
    assert record.setup_time == call.setup


def test_cisco_ambiguous_zone_far_from_every_reading_keeps_the_usual_one() -> None:
    call = answered_call(end=ARRIVAL - timedelta(hours=3, minutes=40))
    record = profiles.cisco(packet_of(cisco_stop_in_zone("IST", timedelta(0), call)), ctx())
    # IST's usual reading (+01:00), as before
    assert record.disconnect_time == call.disconnect - timedelta(hours=1)


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("BRT", timedelta(hours=-3)),
        ("MEZ", timedelta(hours=1)),
        ("NPT", timedelta(hours=5, minutes=45)),
        ("LINT", timedelta(hours=14)),
        ("SST", timedelta(hours=-11)),
    ],
)
def test_cisco_unknown_zone_is_read_from_the_arrival(zone: str, offset: timedelta) -> None:
    call = answered_call(end=ARRIVAL - timedelta(seconds=2))
    record = profiles.cisco(packet_of(cisco_stop_in_zone(zone, offset, call)), ctx())
    assert (record.setup_time, record.connect_time, record.disconnect_time) == (
        call.setup,
        call.connect,
        call.disconnect,
    )
    assert record.times_derived is False


def test_cisco_unknown_zone_without_a_disconnect_time_stays_unknown() -> None:
    call = answered_call(end=ARRIVAL - timedelta(seconds=2))
    packet = packet_of(cisco_stop_in_zone("BRT", timedelta(hours=-3), call))
    del packet.vsas[codec.vendor_key(d.CISCO, d.H323_DISCONNECT_TIME)]
    record = profiles.cisco(packet, ctx())
    assert record.setup_time is None
    assert record.disconnect_time == ARRIVAL
    assert record.times_derived is True


def test_cisco_start_resolves_its_zone_from_the_setup_time() -> None:
    call = traffic.Call(
        session_id="0000001B",
        calling="+4930123456789",
        called="+442071234567",
        setup=ARRIVAL - timedelta(seconds=1),
        connect=None,
        disconnect=ARRIVAL,
        cause=16,
        leg="originate",
        conf_id=CONF_ID,
    )
    local = ARRIVAL - timedelta(seconds=1) + timedelta(hours=8)
    text = f"h323-setup-time={local:%H:%M:%S}.000 CST {local:%a %b %d %Y}"
    attributes = traffic.cisco_attributes(call, status=d.STATUS_START).replace(
        codec.encode_vsa(
            d.CISCO,
            d.H323_SETUP_TIME,
            f"h323-setup-time={ARRIVAL - timedelta(seconds=1):%H:%M:%S}.000 UTC "
            f"{ARRIVAL:%a %b %d %Y}".encode(),
        ),
        codec.encode_vsa(d.CISCO, d.H323_SETUP_TIME, text.encode()),
    )
    record = profiles.cisco(packet_of(attributes), ctx())
    assert record.setup_time == call.setup


def test_cisco_clock_flag_does_not_change_the_record_key() -> None:
    # the clock lost its sync between the Start and the Stop of one call
    call = answered_call(end=ARRIVAL - timedelta(seconds=1))
    start = profiles.cisco(
        packet_of(traffic.cisco_attributes(call, status=d.STATUS_START, clock_flag="*")), ctx()
    )
    stop = profiles.cisco(packet_of(traffic.cisco_attributes(call)), ctx())
    assert start.setup_stamp == stop.setup_stamp
    assert start.setup_stamp is not None and start.setup_stamp[0].isdigit()
    redact = redactor()
    assert redact.redact(start, ARRIVAL).record_key == redact.redact(stop, ARRIVAL).record_key


# -- Cisco: Start without connect time; sessions that are no calls --------------------------


def test_cisco_start_without_connect_time_is_not_connected() -> None:
    call = unanswered_call(end=ARRIVAL + timedelta(seconds=30))
    record = profiles.cisco(packet_of(traffic.cisco_attributes(call, status=d.STATUS_START)), ctx())
    assert record.kind is RecordKind.START
    assert record.setup_time == call.setup
    assert record.connect_time is None
    answered = answered_call(end=ARRIVAL + timedelta(seconds=30))
    connected = profiles.cisco(
        packet_of(traffic.cisco_attributes(answered, status=d.STATUS_START)), ctx()
    )
    assert connected.connect_time == answered.connect


def cisco_exec_stop() -> bytes:
    """`aaa accounting exec`: an administrator's shell session on the router."""
    return b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            text_attribute(d.USER_NAME, "admin"),
            text_attribute(d.ACCT_SESSION_ID, "00000012"),
            text_attribute(d.CALLING_STATION_ID, "192.0.2.77"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"task_id=18"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"service=shell"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"priv-lvl=15"),
            integer_attribute(d.ACCT_SESSION_TIME, 300),
        )
    )


@pytest.mark.parametrize("profile", ["auto", "cisco"])
def test_cisco_login_session_is_not_a_call(profile: str) -> None:
    with pytest.raises(NotACall) as caught:
        profiles.interpret(packet_of(cisco_exec_stop()), profile, ctx())
    assert caught.value.reason == profiles.UNSUPPORTED


def test_cisco_voice_accounting_with_avpairs_only_is_a_call() -> None:
    attributes = b"".join(
        (
            integer_attribute(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            text_attribute(d.ACCT_SESSION_ID, "00000013"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"call-id=abc@192.0.2.1"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"session-protocol=sipv2"),
            integer_attribute(d.ACCT_SESSION_TIME, 30),
        )
    )
    record = profiles.cisco(packet_of(attributes), ctx())
    assert record.duration_ms == 30_000


# -- FreeSWITCH: offsets cut short, one key per call, other leg, own causes -----------------


def mod_radius_cdr_date(utc: datetime, gmtoff: int) -> str:
    """A date as mod_radius_cdr prints it: "%+03d%02d" of C's gmtoff / 3600 and
    gmtoff % 3600 (both truncating toward zero), kept to 31 characters."""
    hours = int(gmtoff / 3600)
    rest = gmtoff - hours * 3600
    local = utc + timedelta(seconds=gmtoff)
    return (f"{local:%Y-%m-%dT%H:%M:%S.%f}" + f"{hours:+03d}" + f"{rest:02d}")[:31]


@pytest.mark.parametrize(
    ("gmtoff", "printed"),
    [
        (5 * 3600 + 1800, "+0518"),  # India
        (5 * 3600 + 2700, "+0527"),  # Nepal
        (9 * 3600 + 1800, "+0918"),  # Australian Central
        (-(3 * 3600 + 1800), "-03-1"),  # Newfoundland
        (-(4 * 3600 + 2700), "-04-2"),
        (-1800, "+00-1"),
        (3600, "+0100"),
        (-5 * 3600, "-0500"),
    ],
)
def test_freeswitch_offsets_as_the_32_byte_buffer_leaves_them(gmtoff: int, printed: str) -> None:
    utc = datetime(2024, 5, 1, 12, 0, 1, 250000, tzinfo=UTC)
    text = mod_radius_cdr_date(utc, gmtoff)
    assert text.endswith(printed)
    assert freeswitch_radius.parse_time(text) == utc


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T08:30:00.000000-03-3", "2024-05-01T08:30:00.000000-03-18"],
)
def test_freeswitch_cut_offsets_that_cannot_be(text: str) -> None:
    assert freeswitch_radius.parse_time(text) is None


def freeswitch_leg(status: int, start: str, extra: bytes = b"") -> bytes:
    parts = [
        integer_attribute(d.ACCT_STATUS_TYPE, status),
        text_attribute(d.ACCT_SESSION_ID, "5d0f9c2e-1111-2222-3333-444455556666"),
        codec.encode_vsa(d.FREESWITCH, d.FS_SRC, b"+4930123456789"),
        codec.encode_vsa(d.FREESWITCH, d.FS_DST, b"+442071234567"),
        codec.encode_vsa(d.FREESWITCH, d.FS_CALLSTARTDATE, start.encode()),
    ]
    if status == d.STATUS_STOP:
        parts += [
            codec.encode_vsa(d.FREESWITCH, d.FS_CALLENDDATE, b"2026-07-01T13:00:30.000000+0100"),
            codec.encode_vsa(d.FREESWITCH, d.FS_HANGUPCAUSE, codec.integer(17)),
            integer_attribute(d.ACCT_SESSION_TIME, 0),
            codec.encode_vsa(d.FREESWITCH, d.FS_DIRECTION, b"inbound"),
        ]
    return b"".join(parts) + extra


def test_freeswitch_start_and_stop_with_different_offsets_share_the_record_key() -> None:
    # the Start prints the summer offset; the Stop the offset of January 1970
    start = profiles.interpret(
        packet_of(freeswitch_leg(d.STATUS_START, "2026-07-01T14:00:00.000000+0200")),
        "auto",
        ctx(),
    )
    stop = profiles.interpret(
        packet_of(freeswitch_leg(d.STATUS_STOP, "2026-07-01T13:00:00.000000+0100")),
        "auto",
        ctx(),
    )
    assert start.setup_time == stop.setup_time == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    redact = redactor()
    key = redact.redact(start, ARRIVAL).record_key
    assert key == redact.redact(stop, ARRIVAL).record_key
    # a later call reusing the uuid is another record
    later = profiles.freeswitch(
        packet_of(freeswitch_leg(d.STATUS_STOP, "2026-07-02T13:00:00.000000+0100")), ctx()
    )
    assert redact.redact(later, ARRIVAL).record_key != key


def test_freeswitch_other_leg_id_is_the_correlation_and_never_stored_raw() -> None:
    other = "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"
    extra = codec.encode_vsa(d.FREESWITCH, d.FS_OTHER_LEG_ID, other.encode())
    start = profiles.freeswitch(
        packet_of(freeswitch_leg(d.STATUS_START, "2026-07-01T14:00:00.000000+0200", extra)),
        ctx(),
    )
    assert start.correlation == other
    stored = redactor().redact(start, ARRIVAL)
    assert stored.correlation_hmac is not None
    assert other not in repr(stored)
    alone = profiles.freeswitch(
        packet_of(freeswitch_leg(d.STATUS_START, "2026-07-01T14:00:00.000000+0200")), ctx()
    )
    assert alone.correlation is None


def test_freeswitch_legs_of_a_bridged_call_share_the_a_legs_uuid_as_correlation() -> None:
    a_leg = "5d0f9c2e-1111-2222-3333-444455556666"  # freeswitch_leg's Acct-Session-Id
    b_leg = "9e8d7c6b-5555-4444-3333-222211110000"
    # the A-leg's Stop says inbound: its own uuid
    a_stop = profiles.freeswitch(
        packet_of(freeswitch_leg(d.STATUS_STOP, "2026-07-01T13:00:00.000000+0100")), ctx()
    )
    # the B-leg's Start names the A-leg; its Stop says outbound
    b_start_attrs = freeswitch_leg(
        d.STATUS_START,
        "2026-07-01T13:00:01.000000+0100",
        codec.encode_vsa(d.FREESWITCH, d.FS_OTHER_LEG_ID, a_leg.encode()),
    ).replace(a_leg.encode(), b_leg.encode(), 1)
    b_start = profiles.freeswitch(packet_of(b_start_attrs), ctx())
    b_stop_attrs = (
        freeswitch_leg(d.STATUS_STOP, "2026-07-01T13:00:01.000000+0100")
        .replace(a_leg.encode(), b_leg.encode(), 1)
        .replace(
            codec.encode_vsa(d.FREESWITCH, d.FS_DIRECTION, b"inbound"),
            codec.encode_vsa(d.FREESWITCH, d.FS_DIRECTION, b"outbound"),
        )
    )
    b_stop = profiles.freeswitch(packet_of(b_stop_attrs), ctx())
    assert a_stop.correlation == b_start.correlation == a_leg
    assert b_stop.correlation is None  # completed from its Start by the sink
    redact = redactor()
    assert (
        redact.redact(a_stop, ARRIVAL).correlation_hmac
        == redact.redact(b_start, ARRIVAL).correlation_hmac
    )
    assert redact.redact(a_stop, ARRIVAL).record_key != redact.redact(b_stop, ARRIVAL).record_key


def test_freeswitch_direction_only_in_the_stop_does_not_split_the_call() -> None:
    # mod_radius_cdr sends Freeswitch-Direction in the Stop alone, and the leg
    # joins the record key: the Start and the Stop must still make one key
    stop_packet = packet_of(freeswitch_leg(d.STATUS_STOP, "2026-07-01T13:00:00.000000+0100"))
    assert stop_packet.vendor_text(d.FREESWITCH, d.FS_DIRECTION) == "inbound"
    start = profiles.freeswitch(
        packet_of(freeswitch_leg(d.STATUS_START, "2026-07-01T13:00:00.000000+0100")), ctx()
    )
    stop = profiles.freeswitch(stop_packet, ctx())
    assert start.leg == stop.leg
    redact = redactor()
    assert redact.redact(start, ARRIVAL).record_key == redact.redact(stop, ARRIVAL).record_key


@pytest.mark.parametrize(
    ("hangups", "answered", "cause", "sip_code", "outcome"),
    [
        # FreeSWITCH's own causes, as 1.10.8 and later number them and as earlier releases did
        ((702, 502), False, 16, 487, CallOutcome.CANCELLED),  # LOSE_RACE: another leg answered
        ((805, 605), False, 16, 487, CallOutcome.CANCELLED),  # PICKED_OFF: picked up elsewhere
        ((487,), False, 16, 487, CallOutcome.CANCELLED),  # ORIGINATOR_CANCEL
        ((702, 502), True, 16, None, CallOutcome.ANSWERED),  # LOSE_RACE after it had answered
        ((800, 600), True, 16, None, CallOutcome.ANSWERED),  # BLIND_TRANSFER
        ((801, 601), True, 16, None, CallOutcome.ANSWERED),  # ATTENDED_TRANSFER
        ((142,), True, 16, None, CallOutcome.ANSWERED),  # SUCCESS
        ((700, 500), False, None, None, CallOutcome.FAILED),  # CRASH
        ((809, 609), False, None, None, CallOutcome.FAILED),  # GATEWAY_DOWN
        ((815, 615), False, 17, None, CallOutcome.BUSY),  # BUSY_EVERYWHERE: SIP 600
        ((816, 616), False, 21, None, CallOutcome.FAILED),  # DECLINE: SIP 603
        ((26,), False, 26, None, CallOutcome.FAILED),  # a Q.850 cause FreeSWITCH has no name for
        ((900,), False, None, None, CallOutcome.FAILED),  # a cause newer than the table
    ],
)
def test_freeswitch_own_hangup_causes(
    hangups: tuple[int, ...],
    answered: bool,
    cause: int | None,
    sip_code: int | None,
    outcome: CallOutcome,
) -> None:
    for hangup in hangups:
        attributes = freeswitch_stop(
            60 if answered else 0, None, answer=answered, start="2024-05-01T11:58:00.000000+0000"
        ).replace(
            codec.encode_vsa(d.FREESWITCH, d.FS_HANGUPCAUSE, codec.integer(16)),
            codec.encode_vsa(d.FREESWITCH, d.FS_HANGUPCAUSE, codec.integer(hangup)),
        )
        record = profiles.freeswitch(packet_of(attributes), ctx())
        assert record.answered is answered
        assert (record.disconnect_cause, record.sip_code) == (cause, sip_code)
        assert call_outcome(record) is outcome


@pytest.mark.parametrize("text", ["\u00b2", "\u0663\u0660\u0660", "12345678901"])
def test_kamailio_response_code_text_that_is_no_number_is_ignored(text: str) -> None:
    attributes = kamailio_event(d.STATUS_START, d.SIP_METHOD_INVITE, 200).replace(
        integer_attribute(d.SIP_RESPONSE_CODE, 200), text_attribute(d.SIP_RESPONSE_CODE, text)
    )
    assert profiles.kamailio(packet_of(attributes), ctx()).sip_code is None
