"""Fuzzing each decoder of network input through its public entry point.

Every decoder the receivers call on bytes from the network promises to
return a result or raise its own "malformed" error, never anything else:

- RADIUS: `codec.decode` raises `MalformedPacket`; `profiles.interpret`
  (every profile, on any packet that decodes) raises `NotACall`.
- HEP: `decode_hep`, `decode_hep12` and `hep_frame_length` raise `HepError`.
- SIP: `parse_sip` raises `SipError`; the properties of the message it
  returns raise nothing.
- JSON CDR: `decode_body` and `json_record` raise `JsonCdrError`.

The receivers catch exactly those (anything else is counted as an internal
error, or becomes an HTTP 500 that no counter sees). The inputs are valid
packets of every flavour with structure-aware damage (see tests/fuzzing.py),
so that it reaches the vendor profiles and header readers behind the length
checks; every crash found, by these tests or by a longer coverage-guided run,
is kept as an `@example`. Each test runs a fixed number of examples (a few
seconds each).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.model import CallRecord
from collector.receivers.json_cdr import JsonCdrError, decode_body, json_record
from collector.receivers.radius import codec
from collector.receivers.radius.profiles import PROFILES, Context, NotACall, interpret
from collector.receivers.sip.hep import (
    HEP_ERROR_REASONS,
    HepError,
    decode_hep,
    decode_hep12,
    hep_frame_length,
)
from collector.receivers.sip.message import SIP_ERROR_REASONS, SipError, SipMessage, parse_sip
from tests import fuzzing

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
SECRET = b"fuzz-secret"
PROFILE_NAMES = ("auto", *PROFILES)
#: a reason is a short fixed token, never data from the input
RADIUS_REASON = re.compile(r"[a-z_]{1,32}")
#: what NotACall may say
NOT_A_CALL_REASONS = frozenset({"no_session_id", "no_status_type", "unsupported_status_type"})
#: a JsonCdrError names a field, never a value: words and dotted names, no number
JSON_REASON = re.compile(r"[A-Za-z0-9_. ]{1,80}")
MANY_DIGITS = re.compile(r"[0-9]{4,}")


def fuzz_settings(examples: int) -> settings:
    """A fixed number of examples and no deadline: the run time stays bounded and steady."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


RADIUS_SEEDS = fuzzing.radius_seeds()
SIP_MESSAGES = fuzzing.sip_messages()
JSON_DOCUMENTS = fuzzing.json_seeds()
_randoms = st.randoms(use_true_random=False, note_method_calls=False)


# --- RADIUS -----------------------------------------------------------------


@st.composite
def resigned_requests(draw: st.DrawFn) -> bytes:
    """A valid request of one vendor flavour with its attributes changed, signed again."""
    rng = draw(_randoms)
    _flavour, attributes = draw(st.sampled_from(RADIUS_SEEDS))
    return codec.encode_accounting_request(
        rng.randrange(256), fuzzing.mutate_attributes(rng, attributes), SECRET
    )


@st.composite
def damaged_requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(signed request, the same with bytes changed after signing)."""
    rng = draw(_randoms)
    signed = draw(resigned_requests() | st.sampled_from(RADIUS_SEEDS).map(_sign))
    return signed, fuzzing.damage_after_signing(rng, signed)


def _sign(seed: tuple[str, bytes]) -> bytes:
    return codec.encode_accounting_request(7, seed[1], SECRET)


def decode_radius(data: bytes) -> codec.Packet | None:
    """`codec.decode`, as the receiver calls it: a Packet, or None for MalformedPacket."""
    try:
        packet = codec.decode(data)
    except codec.MalformedPacket as exc:
        reason: str = exc.reason
    else:
        codec.proxy_states(packet)
        codec.message_authenticator_ok(packet, SECRET)
        return packet
    assert RADIUS_REASON.fullmatch(reason)
    return None


def interpret_everywhere(packet: codec.Packet) -> list[CallRecord]:
    """The packet under every profile: a CallRecord or NotACall, nothing else."""
    records = []
    reasons: set[str] = set()
    for profile in PROFILE_NAMES:
        try:
            records.append(interpret(packet, profile, Context("sbc-fuzz", NOW)))
        except NotACall as exc:
            reasons.add(exc.reason)
    assert reasons <= NOT_A_CALL_REASONS
    for record in records:
        assert record.source == "sbc-fuzz"
        for moment in (record.setup_time, record.connect_time, record.disconnect_time):
            assert moment is None or moment.tzinfo is not None
    return records


@fuzz_settings(1500)
@given(data=resigned_requests())
def test_radius_request_with_changed_attributes_is_a_record_or_not_a_call(data: bytes) -> None:
    packet = decode_radius(data)
    if packet is not None:
        assert codec.accounting_request_ok(packet, SECRET)
        interpret_everywhere(packet)


@fuzz_settings(800)
@given(pair=damaged_requests())
def test_radius_request_changed_after_signing_never_authenticates(
    pair: tuple[bytes, bytes],
) -> None:
    signed, damaged = pair
    assert damaged != signed
    packet = decode_radius(damaged)
    if packet is not None:
        assert not codec.accounting_request_ok(packet, SECRET)
        assert not codec.message_authenticator_ok(packet, SECRET)
        interpret_everywhere(packet)


# --- HEP and SIP ---------------------------------------------------------------


def read_capture(data: bytes) -> bytes | None:
    """What the SIP receiver does before the SIP parser: the payload, or None when refused."""
    try:
        if data[:4] == b"HEP3":
            assert hep_frame_length(data[:6]) >= 6
            packet = decode_hep(data)
        elif data[:1] in (b"\x01", b"\x02"):
            packet = decode_hep12(data)
        else:
            return data
    except HepError as exc:
        reason: str = exc.reason
    else:
        assert f"payload_bytes={len(packet.payload)}>" in repr(packet)  # and never the payload
        stamp = packet.timestamp
        assert stamp is None or stamp.tzinfo is not None
        return packet.payload
    assert reason in HEP_ERROR_REASONS
    return None


def read_sip(data: bytes) -> SipMessage | None:
    """`parse_sip` and every property of what it returns, as the tracker reads them."""
    try:
        message = parse_sip(data, "X-CID")
    except SipError as exc:
        reason: str = exc.reason
    else:
        check_message(message)
        return message
    assert reason in SIP_ERROR_REASONS
    return None


def check_message(message: SipMessage) -> None:
    """Every property of a parsed message: none of them raises, each in its range."""
    assert message.call_id
    assert message.status == 0 or 100 <= message.status <= 699
    assert 0 <= message.cseq < 10**10
    for user in (message.from_user, message.to_user, message.ruri_user, message.pai_user):
        assert user is None or isinstance(user, str)
    assert message.via_count >= message.count_vias(2) >= 0
    cause = message.reason_cause
    assert cause is None or 1 <= cause <= 127
    assert message.correlation is None or isinstance(message.correlation, str)
    assert message.is_request == (message.status == 0)
    repr(message)


@st.composite
def captures(draw: st.DrawFn) -> bytes:
    """A SIP message of a call flow, changed, wrapped bare or in HEPv1/v2/v3, envelope changed."""
    rng = draw(_randoms)
    message = draw(st.sampled_from(SIP_MESSAGES))
    return fuzzing.sip_datagram(rng, message, NOW, auth_key=draw(st.sampled_from([None, "k"])))


@fuzz_settings(1500)
@given(data=captures())
def test_sip_capture_decodes_or_is_refused_with_its_reason(data: bytes) -> None:
    payload = read_capture(data)
    if payload is not None:
        read_sip(payload)


@st.composite
def sip_texts(draw: st.DrawFn) -> bytes:
    rng = draw(_randoms)
    message = draw(st.sampled_from(SIP_MESSAGES))
    for _ in range(draw(st.integers(1, 3))):
        message = fuzzing.mutate_sip(rng, message)
    return message


@fuzz_settings(1500)
@given(data=sip_texts())
def test_sip_message_with_changed_headers_parses_or_is_a_sip_error(data: bytes) -> None:
    read_sip(data)


# --- JSON CDR -------------------------------------------------------------------------


@st.composite
def json_posts(draw: st.DrawFn) -> tuple[bytes, str]:
    """A mod_json_cdr document with fields changed, in one of its encodings, maybe damaged."""
    rng = draw(_randoms)
    return fuzzing.json_post(rng, JSON_DOCUMENTS)


def read_json_cdr(body: bytes, content_type: str) -> CallRecord | None:
    """`decode_body` then `json_record`, as the endpoint calls them."""
    try:
        return json_record(decode_body(body, content_type), "fs-fuzz", NOW)
    except JsonCdrError as exc:
        reason: str = exc.reason
    assert JSON_REASON.fullmatch(reason) and not MANY_DIGITS.search(reason), reason
    return None


#: a callflow's profile_index past int()'s 4300-digit limit raised ValueError (an HTTP 500)
LONG_PROFILE_INDEX = (
    b'{"variables": {"uuid": "9b1f3a52"}, "callflow": [{"profile_index": "'
    + b"9" * 4301
    + b'", "caller_profile": {}}]}'
)


@fuzz_settings(1000)
@given(post=json_posts())
@example(post=(LONG_PROFILE_INDEX, "application/json"))
def test_json_cdr_with_changed_fields_is_a_record_or_a_json_cdr_error(
    post: tuple[bytes, str],
) -> None:
    body, content_type = post
    record = read_json_cdr(body, content_type)
    if record is not None:
        assert record.session_id
        assert record.duration_ms is None or record.duration_ms >= 0
