"""RADIUS codec: hostile input, round trips, authenticators checked against pyrad and RFC 2865.

`decode` runs on every datagram from the network, so the property tests feed
it random bytes and damaged copies of valid packets: it must return a Packet
or raise MalformedPacket, never anything else. The authenticator checks are
tested against packets built by an independent implementation (pyrad, with
the small dictionary in tests/data/radius/) and against the worked example of
RFC 2865 section 7.1.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.codec import MalformedPacket, Packet

DICTIONARY_PATH = Path(__file__).parent / "data" / "radius" / "dictionary"
SECRET = b"radius-test-secret"

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIPS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# RFC 2865 section 7.1, "Simple User/Password Access-Request": the request a
# NAS sends (Identifier 0, shared secret "xyzzy5461") and the Access-Accept
# the server answers, octet for octet.
RFC2865_SECRET = b"xyzzy5461"
REASON_TOKEN = re.compile(r"[a-z_]{1,32}")
RFC2865_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a"
    "01066e656d6f"  # User-Name "nemo"
    "02120dbe708d93d413ce3196e43f782a0aee"  # User-Password (hidden)
    "0406c0a80110"  # NAS-IP-Address 192.168.1.16
    "050600000003"  # NAS-Port 3
)
RFC2865_ACCEPT = bytes.fromhex(
    "0200002686fe220e7624ba2a1005f6bf9b55e0b2"
    "060600000001"  # Service-Type Login-User
    "0f0600000000"  # Login-Service Telnet
    "0e06c0a80103"  # Login-IP-Host 192.168.1.3
)


@pytest.fixture(scope="module")
def radius_dictionary() -> Any:
    """pyrad's view of tests/data/radius/dictionary."""
    return Dictionary(str(DICTIONARY_PATH))


def decode_or_malformed(data: bytes) -> Packet | None:
    """Decode `data`; None when it was rejected with MalformedPacket (anything else fails)."""
    reason: str | None = None
    try:
        packet = codec.decode(data)
    except MalformedPacket as exc:
        reason = exc.reason
    if reason is not None:
        # a short fixed token (a metric label), never data from the packet
        assert REASON_TOKEN.fullmatch(reason), reason
        return None
    touch_everything(packet)
    return packet


def touch_everything(packet: Packet) -> None:
    """Call every accessor and check on a decoded packet: none of them may raise."""
    for number in list(packet.attrs):
        packet.integer(number)
        packet.text(number)
    for key in list(packet.vsas):
        vendor, vendor_type = int.from_bytes(key[:4], "big"), key[4]
        packet.vendor_texts(vendor, vendor_type)
        packet.vendor_text(vendor, vendor_type)
        packet.vendor_integer(vendor, vendor_type)
    codec.accounting_request_ok(packet, SECRET)
    codec.message_authenticator_ok(packet, SECRET)
    assert len(packet.raw) == int.from_bytes(packet.raw[2:4], "big")
    assert len(packet.authenticator) == 16


def stop_attributes() -> bytes:
    """A realistic accounting Stop with repeated Cisco-AVPairs."""
    return b"".join(
        (
            codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_STOP)),
            codec.encode_attribute(d.ACCT_SESSION_ID, b"3C5AEAB9-1DD211B2-8FD3C3E4"),
            codec.encode_attribute(d.CALLED_STATION_ID, b"4930123456789"),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(61)),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"session-protocol=sipv2"),
            codec.encode_vsa(d.CISCO, d.H323_CONF_ID, b"h323-conf-id=1 2 3 4"),
            codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"call-id=abc@192.0.2.1"),
        )
    )


VALID_REQUEST = codec.encode_accounting_request(42, stop_attributes(), SECRET)


def attribute_offsets(raw: bytes) -> list[int]:
    """Offsets of every top-level attribute of a well-formed packet."""
    offsets = []
    pos = codec.HEADER_LENGTH
    length = int.from_bytes(raw[2:4], "big")
    while pos < length:
        offsets.append(pos)
        pos += raw[pos + 1]
    return offsets


# -- hostile input -------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=700))
def test_random_bytes_decode_or_raise_malformed(data: bytes) -> None:
    decode_or_malformed(data)


@FUZZ
@given(code=st.integers(0, 255), identifier=st.integers(0, 255), body=st.binary(max_size=600))
def test_random_attributes_behind_a_consistent_header_decode_or_raise_malformed(
    code: int, identifier: int, body: bytes
) -> None:
    # a header whose length matches the datagram, so the attribute walk is reached
    data = bytes((code, identifier)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    decode_or_malformed(data)


@FUZZ
@given(st.integers(0, len(VALID_REQUEST) - 1))
def test_truncated_packet_is_malformed(cut: int) -> None:
    with pytest.raises(MalformedPacket):
        codec.decode(VALID_REQUEST[:cut])


@FUZZ
@given(st.integers(0, 0xFFFF))
def test_any_length_field_decodes_or_raises_malformed(length: int) -> None:
    data = VALID_REQUEST[:2] + length.to_bytes(2, "big") + VALID_REQUEST[4:]
    packet = decode_or_malformed(data)
    if length < codec.HEADER_LENGTH or length > len(VALID_REQUEST):
        assert packet is None
    if packet is not None:
        # whatever was accepted was read only up to the declared length
        assert packet.raw == data[:length]


@FUZZ
@given(
    index=st.integers(0, 6),
    attr_length=st.one_of(st.sampled_from([0, 1, 255]), st.integers(0, 255)),
)
def test_attribute_length_byte_decodes_or_raises_malformed(index: int, attr_length: int) -> None:
    offset = attribute_offsets(VALID_REQUEST)[index]
    original = VALID_REQUEST[offset + 1]
    data = bytearray(VALID_REQUEST)
    data[offset + 1] = attr_length
    packet = decode_or_malformed(bytes(data))
    if attr_length in (0, 1):
        assert packet is None  # an attribute shorter than its own header
    if attr_length == original:
        assert packet is not None


@pytest.mark.parametrize("attr_length", [0, 1])
def test_attribute_length_below_two_is_malformed(attr_length: int) -> None:
    body = codec.encode_attribute(d.ACCT_SESSION_ID, b"abc") + bytes((d.USER_NAME, attr_length))
    data = bytes((4, 1)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    with pytest.raises(MalformedPacket):
        codec.decode(data)


def test_attribute_running_past_the_packet_is_malformed() -> None:
    body = codec.encode_attribute(d.ACCT_SESSION_ID, b"abc") + bytes((d.USER_NAME, 40)) + b"xy"
    data = bytes((4, 1)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    with pytest.raises(MalformedPacket):
        codec.decode(data)


def test_lone_attribute_type_octet_is_malformed() -> None:
    body = codec.encode_attribute(d.ACCT_SESSION_ID, b"abc") + bytes((d.USER_NAME,))
    data = bytes((4, 1)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    with pytest.raises(MalformedPacket):
        codec.decode(data)


@pytest.mark.parametrize("length", [0, 19, 4097, 0xFFFF])
def test_declared_length_outside_rfc_bounds_is_malformed(length: int) -> None:
    data = bytes((4, 1)) + length.to_bytes(2, "big") + bytes(max(20, min(length, 5000)) - 4)
    with pytest.raises(MalformedPacket):
        codec.decode(data)


@FUZZ
@given(junk=st.binary(max_size=240), position=st.integers(0, 7))
def test_junk_vendor_specific_decodes_or_raises_malformed(junk: bytes, position: int) -> None:
    attrs = stop_attributes()
    offsets = [*attribute_offsets(codec.encode_accounting_request(1, attrs, SECRET)), None]
    cut = (offsets[position] or (20 + len(attrs))) - 20
    body = attrs[:cut] + codec.encode_attribute(d.VENDOR_SPECIFIC, junk) + attrs[cut:]
    packet = decode_or_malformed(codec.encode_accounting_request(1, body, SECRET))
    # a VSA is framed by its outer length: whatever it holds, the packet stays valid
    assert packet is not None
    assert packet.text(d.ACCT_SESSION_ID) == "3C5AEAB9-1DD211B2-8FD3C3E4"
    assert codec.accounting_request_ok(packet, SECRET)


def test_vsa_with_broken_sub_attribute_is_kept_opaque() -> None:
    # vendor 9, sub-attribute claiming 60 octets of a 5-octet remainder
    junk = (9).to_bytes(4, "big") + bytes((1, 60)) + b"abc"
    body = codec.encode_attribute(d.VENDOR_SPECIFIC, junk) + codec.encode_attribute(
        d.ACCT_SESSION_ID, b"s1"
    )
    packet = codec.decode(codec.encode_accounting_request(1, body, SECRET))
    assert packet.vendor_texts(d.CISCO, d.CISCO_AVPAIR) == []
    assert packet.text(d.ACCT_SESSION_ID) == "s1"


def test_several_sub_attributes_in_one_vsa_all_come_back() -> None:
    """RFC 2865 5.26 lets one Vendor-Specific attribute carry several sub-attributes:
    each is kept under its vendor and type, with its value whole and in order."""
    subs = [
        (d.CISCO_AVPAIR, b"session-protocol=sipv2"),
        (d.H323_CONF_ID, b"h323-conf-id=1 2 3 4"),
        (d.CISCO_AVPAIR, b"x"),
    ]
    contents = (d.CISCO).to_bytes(4, "big") + b"".join(
        bytes((vendor_type, len(value) + 2)) + value for vendor_type, value in subs
    )
    body = codec.encode_attribute(d.VENDOR_SPECIFIC, contents)
    body += codec.encode_attribute(d.ACCT_SESSION_ID, b"s1")
    packet = codec.decode(codec.encode_accounting_request(1, body, SECRET))
    assert packet.vendor_texts(d.CISCO, d.CISCO_AVPAIR) == ["session-protocol=sipv2", "x"]
    assert packet.vendor_texts(d.CISCO, d.H323_CONF_ID) == ["h323-conf-id=1 2 3 4"]
    assert packet.vendors == frozenset({d.CISCO})
    assert packet.text(d.ACCT_SESSION_ID) == "s1"


@FUZZ
@given(st.data())
def test_flipped_byte_anywhere_decodes_or_raises_malformed(data: st.DataObject) -> None:
    raw = bytearray(VALID_REQUEST)
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    packet = decode_or_malformed(bytes(raw))
    if packet is not None and position >= 4:
        # the Request Authenticator covers every octet but the code and identifier
        assert not codec.accounting_request_ok(packet, SECRET)


# -- round trips ----------------------------------------------------------------

standard_numbers = st.integers(1, 255).filter(
    lambda n: n not in (d.VENDOR_SPECIFIC, d.MESSAGE_AUTHENTICATOR)
)


@ROUND_TRIPS
@given(
    attributes=st.lists(st.tuples(standard_numbers, st.binary(max_size=60)), max_size=12),
    vsas=st.lists(
        st.tuples(
            st.sampled_from([d.CISCO, d.FREESWITCH, 311, 0x00FFFFFF]),
            st.integers(0, 255),
            st.binary(max_size=60),
        ),
        max_size=12,
    ),
    identifier=st.integers(0, 255),
)
def test_encoded_attributes_and_vsas_come_back(
    attributes: list[tuple[int, bytes]],
    vsas: list[tuple[int, int, bytes]],
    identifier: int,
) -> None:
    body = b"".join(codec.encode_attribute(n, v) for n, v in attributes)
    body += b"".join(codec.encode_vsa(vendor, t, v) for vendor, t, v in vsas)
    raw = codec.encode_accounting_request(identifier, body, SECRET)
    packet = codec.decode(raw)
    assert packet.code == codec.ACCOUNTING_REQUEST
    assert packet.identifier == identifier
    assert codec.accounting_request_ok(packet, SECRET)
    first: dict[int, bytes] = {}
    for number, value in attributes:
        first.setdefault(number, value)
    assert packet.attrs == first
    expected_vsas: dict[bytes, list[bytes]] = {}
    for vendor, vendor_type, value in vsas:
        expected_vsas.setdefault(codec.vendor_key(vendor, vendor_type), []).append(value)
    assert packet.vsas == expected_vsas
    assert packet.vendors == frozenset(vendor for vendor, _, _ in vsas)


def test_repeated_cisco_avpairs_are_kept_in_order() -> None:
    pairs = [b"session-protocol=sipv2", b"call-id=1@x", b"session-protocol=again", b"a=b"]
    body = codec.encode_attribute(d.ACCT_SESSION_ID, b"s") + b"".join(
        codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, p) for p in pairs
    )
    packet = codec.decode(codec.encode_accounting_request(1, body, SECRET))
    assert packet.vendor_texts(d.CISCO, d.CISCO_AVPAIR) == [p.decode() for p in pairs]
    assert packet.vendor_text(d.CISCO, d.CISCO_AVPAIR) == "session-protocol=sipv2"


def test_integer_and_text_accessors() -> None:
    body = (
        codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(0xDEADBEEF))
        + codec.encode_attribute(d.ACCT_DELAY_TIME, b"\x00\x01")  # not 4 octets
        + codec.encode_attribute(d.USER_NAME, "trunk-ä".encode() + b"\xff")
        + codec.encode_vsa(d.FREESWITCH, d.FS_BILLUSEC, codec.integer(123456))
    )
    packet = codec.decode(codec.encode_accounting_request(1, body, SECRET))
    assert packet.integer(d.ACCT_SESSION_TIME) == 0xDEADBEEF
    assert packet.integer(d.ACCT_DELAY_TIME) is None
    assert packet.integer(d.EVENT_TIMESTAMP) is None
    assert packet.text(d.USER_NAME) == "trunk-ä\ufffd"
    assert packet.vendor_integer(d.FREESWITCH, d.FS_BILLUSEC) == 123456
    assert packet.vendor_text(d.CISCO, d.CISCO_AVPAIR) is None


def test_attribute_longer_than_253_octets_is_refused_by_the_encoder() -> None:
    codec.encode_attribute(d.USER_NAME, bytes(253))
    with pytest.raises(ValueError, match="253"):
        codec.encode_attribute(d.USER_NAME, bytes(254))


def test_padding_beyond_the_declared_length_is_ignored() -> None:
    padding = codec.encode_attribute(d.ACCT_SESSION_ID, b"not-this-one") + b"\x00" * 17
    packet = codec.decode(VALID_REQUEST + padding)
    assert packet.raw == VALID_REQUEST
    assert packet.text(d.ACCT_SESSION_ID) == "3C5AEAB9-1DD211B2-8FD3C3E4"
    assert codec.accounting_request_ok(packet, SECRET)


def test_padding_does_not_break_the_message_authenticator() -> None:
    raw = codec.encode_status_server(9, bytes(range(16)), SECRET)
    packet = codec.decode(raw + b"\xaa" * 30)
    assert packet.raw == raw
    assert codec.message_authenticator_ok(packet, SECRET)


# -- RFC 2865 section 7.1 ----------------------------------------------------------


def test_rfc2865_example_request_decodes() -> None:
    packet = codec.decode(RFC2865_REQUEST)
    assert packet.code == codec.ACCESS_REQUEST
    assert packet.identifier == 0
    assert packet.text(d.USER_NAME) == "nemo"
    assert packet.attrs[d.NAS_IP_ADDRESS] == bytes((192, 168, 1, 16))
    assert packet.integer(5) == 3  # NAS-Port
    assert packet.authenticator == bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")


def test_rfc2865_example_accept_is_reproduced_and_verified() -> None:
    request = codec.decode(RFC2865_REQUEST)
    attributes = RFC2865_ACCEPT[20:]
    built = codec.encode_response(
        codec.ACCESS_ACCEPT, request.identifier, request.authenticator, RFC2865_SECRET, attributes
    )
    assert built == RFC2865_ACCEPT
    assert codec.response_ok(RFC2865_ACCEPT, request.authenticator, RFC2865_SECRET)
    assert not codec.response_ok(RFC2865_ACCEPT, request.authenticator, b"xyzzy5462")


# -- Request Authenticator against pyrad -------------------------------------------


def pyrad_stop(radius_dictionary: Any, secret: bytes) -> bytes:
    """An Accounting-Request built by pyrad, independently of the codec."""
    request = pyrad_packet.AcctPacket(id=77, secret=secret, dict=radius_dictionary)
    request["Acct-Status-Type"] = "Stop"
    request["Acct-Session-Id"] = "pyrad-session-1"
    request["Called-Station-Id"] = "4930123456789"
    request["Acct-Session-Time"] = 93
    request["Cisco-AVPair"] = ["session-protocol=sipv2", "call-id=x@y", "z=1"]
    request["h323-conf-id"] = "h323-conf-id=AB 12"
    return bytes(request.RequestPacket())


def test_pyrad_request_passes_the_authenticator_check(radius_dictionary: Any) -> None:
    packet = codec.decode(pyrad_stop(radius_dictionary, SECRET))
    assert codec.accounting_request_ok(packet, SECRET)
    assert packet.identifier == 77
    assert packet.integer(d.ACCT_STATUS_TYPE) == d.STATUS_STOP
    assert packet.text(d.ACCT_SESSION_ID) == "pyrad-session-1"
    assert packet.integer(d.ACCT_SESSION_TIME) == 93
    assert packet.vendor_texts(d.CISCO, d.CISCO_AVPAIR) == [
        "session-protocol=sipv2",
        "call-id=x@y",
        "z=1",
    ]
    assert packet.vendor_text(d.CISCO, d.H323_CONF_ID) == "h323-conf-id=AB 12"


def test_pyrad_request_with_another_secret_is_rejected(radius_dictionary: Any) -> None:
    packet = codec.decode(pyrad_stop(radius_dictionary, b"another-secret"))
    assert not codec.accounting_request_ok(packet, SECRET)


@pytest.mark.parametrize("position", [2, 3, 4, 19, 20, 25, -1])
def test_pyrad_request_with_one_flipped_byte_is_rejected(
    radius_dictionary: Any, position: int
) -> None:
    raw = bytearray(pyrad_stop(radius_dictionary, SECRET))
    raw[position] ^= 0x01
    try:
        packet = codec.decode(bytes(raw))
    except MalformedPacket:
        return  # a flipped length octet may break the framing instead: also a rejection
    assert not codec.accounting_request_ok(packet, SECRET)


def test_codec_request_passes_pyrad_verification(radius_dictionary: Any) -> None:
    raw = codec.encode_accounting_request(5, stop_attributes(), SECRET)
    received = pyrad_packet.AcctPacket(secret=SECRET, dict=radius_dictionary, packet=raw)
    assert received.VerifyAcctRequest()
    assert received["Acct-Session-Id"] == ["3C5AEAB9-1DD211B2-8FD3C3E4"]
    assert received["Cisco-AVPair"] == ["session-protocol=sipv2", "call-id=abc@192.0.2.1"]
    tampered = pyrad_packet.AcctPacket(secret=b"wrong", dict=radius_dictionary, packet=raw)
    assert not tampered.VerifyAcctRequest()


# -- Response Authenticator ----------------------------------------------------------


def test_accounting_response_verifies_with_response_ok_and_pyrad(radius_dictionary: Any) -> None:
    raw = pyrad_stop(radius_dictionary, SECRET)
    request = pyrad_packet.AcctPacket(secret=SECRET, dict=radius_dictionary, packet=raw)
    packet = codec.decode(raw)
    response = codec.encode_response(
        codec.ACCOUNTING_RESPONSE, packet.identifier, packet.authenticator, SECRET
    )
    assert response[0] == codec.ACCOUNTING_RESPONSE
    assert response[1] == packet.identifier
    assert codec.response_ok(response, packet.authenticator, SECRET)
    reply = request.CreateReply(packet=response)
    assert request.VerifyReply(reply, response)


def test_response_with_wrong_secret_or_request_or_flipped_byte_fails() -> None:
    packet = codec.decode(VALID_REQUEST)
    attributes = codec.encode_attribute(18, b"thanks")  # Reply-Message
    response = codec.encode_response(
        codec.ACCOUNTING_RESPONSE, packet.identifier, packet.authenticator, SECRET, attributes
    )
    assert codec.response_ok(response, packet.authenticator, SECRET)
    assert not codec.response_ok(response, packet.authenticator, SECRET + b"x")
    assert not codec.response_ok(response, bytes(16), SECRET)
    for position in range(len(response)):
        damaged = bytearray(response)
        damaged[position] ^= 0x80
        assert not codec.response_ok(bytes(damaged), packet.authenticator, SECRET), position


@pytest.mark.parametrize("data", [b"", b"\x05\x01\x00", bytes(19), b"\x05\x01\x00\x10" + bytes(16)])
def test_response_ok_refuses_short_or_misframed_responses(data: bytes) -> None:
    assert not codec.response_ok(data, bytes(16), SECRET)


# -- Status-Server and Message-Authenticator (RFC 3579 3.2, RFC 5997) ---------------


def test_codec_status_server_verifies() -> None:
    raw = codec.encode_status_server(3, bytes(range(16)), SECRET)
    packet = codec.decode(raw)
    assert packet.code == codec.STATUS_SERVER
    assert d.MESSAGE_AUTHENTICATOR in packet.attrs
    assert codec.message_authenticator_ok(packet, SECRET)
    assert not codec.message_authenticator_ok(packet, b"another-secret")


def test_status_server_message_authenticator_is_hmac_md5_of_the_packet() -> None:
    # recomputed here from RFC 3579 3.2, not with the codec
    authenticator = bytes(range(100, 116))
    raw = codec.encode_status_server(200, authenticator, SECRET)
    zeroed = raw[:22] + bytes(16) + raw[38:]
    assert raw[20:22] == bytes((d.MESSAGE_AUTHENTICATOR, 18))
    assert raw[22:38] == hmac.new(SECRET, zeroed, hashlib.md5).digest()
    assert raw[4:20] == authenticator


@pytest.mark.parametrize("position", [0, 1, 3, 4, 12, 19, 22, 30, 37])
def test_status_server_with_one_flipped_byte_fails(position: int) -> None:
    raw = bytearray(codec.encode_status_server(3, bytes(range(16)), SECRET))
    raw[position] ^= 0x04
    try:
        packet = codec.decode(bytes(raw))
    except MalformedPacket:
        return
    assert not codec.message_authenticator_ok(packet, SECRET)


def test_packet_without_message_authenticator_fails_the_check() -> None:
    packet = codec.decode(VALID_REQUEST)
    assert not codec.message_authenticator_ok(packet, SECRET)


def test_message_authenticator_of_the_wrong_length_fails_the_check() -> None:
    body = bytes((d.MESSAGE_AUTHENTICATOR, 10)) + bytes(8)
    raw = bytes((codec.STATUS_SERVER, 1)) + (20 + len(body)).to_bytes(2, "big") + bytes(16) + body
    assert not codec.message_authenticator_ok(codec.decode(raw), SECRET)


def test_pyrad_status_server_verifies_with_the_codec(radius_dictionary: Any) -> None:
    request = pyrad_packet.AcctPacket(
        code=pyrad_packet.StatusServer, id=12, secret=SECRET, dict=radius_dictionary
    )
    packet = codec.decode(bytes(request.RequestPacket()))
    assert packet.code == codec.STATUS_SERVER
    assert codec.message_authenticator_ok(packet, SECRET)
    assert not codec.message_authenticator_ok(packet, b"nope")


def test_codec_status_server_verifies_with_pyrad(radius_dictionary: Any) -> None:
    raw = codec.encode_status_server(4, bytes(range(16)), SECRET)
    received = pyrad_packet.AcctPacket(secret=SECRET, dict=radius_dictionary, packet=raw)
    assert received.VerifyAcctRequest()
    wrong = pyrad_packet.AcctPacket(secret=b"nope", dict=radius_dictionary, packet=raw)
    assert not wrong.VerifyAcctRequest()


def test_status_server_response_verifies_with_pyrad(radius_dictionary: Any) -> None:
    request = pyrad_packet.AcctPacket(
        code=pyrad_packet.StatusServer, id=21, secret=SECRET, dict=radius_dictionary
    )
    packet = codec.decode(bytes(request.RequestPacket()))
    response = codec.encode_response(
        codec.ACCOUNTING_RESPONSE,
        packet.identifier,
        packet.authenticator,
        SECRET,
        with_message_authenticator=True,
    )
    assert codec.response_ok(response, packet.authenticator, SECRET)
    reply = request.CreateReply(packet=response)
    # pyrad checks the Response Authenticator and, because the reply carries one,
    # the Message-Authenticator computed with the Request Authenticator
    assert request.VerifyReply(reply, response, enforce_ma=True)
    damaged = bytearray(response)
    damaged[-1] ^= 0x01
    assert not request.VerifyReply(request.CreateReply(packet=bytes(damaged)), bytes(damaged))


# -- Message-Authenticator on Accounting-Request (RFC 5080 2.2.2) --------------------


def pyrad_signed_stop(radius_dictionary: Any, secret: bytes) -> bytes:
    """An Accounting-Request with a Message-Authenticator, both computed by pyrad."""
    request = pyrad_packet.AcctPacket(id=78, secret=secret, dict=radius_dictionary)
    request["Acct-Status-Type"] = "Stop"
    request["Acct-Session-Id"] = "pyrad-signed-1"
    request["Called-Station-Id"] = "4930123456789"
    request.add_message_authenticator()
    return bytes(request.RequestPacket())


def test_pyrad_accounting_message_authenticator_verifies_with_the_codec(
    radius_dictionary: Any,
) -> None:
    packet = codec.decode(pyrad_signed_stop(radius_dictionary, SECRET))
    assert codec.accounting_request_ok(packet, SECRET)
    assert codec.message_authenticator_ok(packet, SECRET, accounting=True)
    assert not codec.message_authenticator_ok(packet, b"another-secret", accounting=True)
    # hashed with the Request Authenticator as sent (the Status-Server rule), it fails
    assert not codec.message_authenticator_ok(packet, SECRET)


def test_accounting_message_authenticator_is_hmac_md5_with_both_authenticators_zeroed(
    radius_dictionary: Any,
) -> None:
    raw = pyrad_signed_stop(radius_dictionary, SECRET)
    offset = raw.index(bytes((d.MESSAGE_AUTHENTICATOR, 18))) + 2
    # recomputed here from RFC 3579 3.2 and RFC 5080 2.2.2, not with the codec
    zeroed = raw[:4] + bytes(16) + raw[20:offset] + bytes(16) + raw[offset + 16 :]
    assert raw[offset : offset + 16] == hmac.new(SECRET, zeroed, hashlib.md5).digest()


@pytest.mark.parametrize("value", [bytes(16), b"\xff" * 16], ids=["zeros", "ones"])
def test_accounting_message_authenticator_of_another_value_fails(
    radius_dictionary: Any, value: bytes
) -> None:
    raw = pyrad_signed_stop(radius_dictionary, SECRET)
    offset = raw.index(bytes((d.MESSAGE_AUTHENTICATOR, 18))) + 2
    forged = raw[:offset] + value + raw[offset + 16 :]
    # the Request Authenticator recomputed: only the Message-Authenticator is wrong
    forged = codec.encode_accounting_request(forged[1], forged[20:], SECRET)
    packet = codec.decode(forged)
    assert codec.accounting_request_ok(packet, SECRET)
    assert not codec.message_authenticator_ok(packet, SECRET, accounting=True)


def test_a_second_message_authenticator_does_not_hide_a_malformed_first() -> None:
    body = bytes((d.MESSAGE_AUTHENTICATOR, 10)) + bytes(8)
    body += bytes((d.MESSAGE_AUTHENTICATOR, 18)) + bytes(16)
    raw = codec.encode_accounting_request(5, body, SECRET)
    offset = 20 + 10 + 2
    zeroed = raw[:4] + bytes(16) + raw[20:]
    signed = raw[:offset] + hmac.new(SECRET, zeroed, hashlib.md5).digest()
    signed = codec.encode_accounting_request(5, signed[20:], SECRET)
    assert not codec.message_authenticator_ok(codec.decode(signed), SECRET, accounting=True)


# -- dictionary numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("User-Name", d.USER_NAME),
        ("NAS-IP-Address", d.NAS_IP_ADDRESS),
        ("Vendor-Specific", d.VENDOR_SPECIFIC),
        ("Called-Station-Id", d.CALLED_STATION_ID),
        ("Calling-Station-Id", d.CALLING_STATION_ID),
        ("Acct-Status-Type", d.ACCT_STATUS_TYPE),
        ("Acct-Delay-Time", d.ACCT_DELAY_TIME),
        ("Acct-Session-Id", d.ACCT_SESSION_ID),
        ("Acct-Session-Time", d.ACCT_SESSION_TIME),
        ("Event-Timestamp", d.EVENT_TIMESTAMP),
        ("Message-Authenticator", d.MESSAGE_AUTHENTICATOR),
    ],
)
def test_standard_attribute_numbers_match_the_rfc_dictionary(
    radius_dictionary: Any, name: str, number: int
) -> None:
    assert radius_dictionary.attributes[name].code == number


def test_cisco_numbers_match_the_vendor_dictionary(radius_dictionary: Any) -> None:
    assert radius_dictionary.vendors["Cisco"] == d.CISCO
    assert radius_dictionary.attributes["Cisco-AVPair"].code == d.CISCO_AVPAIR
    assert radius_dictionary.attributes["h323-conf-id"].code == d.H323_CONF_ID
    assert radius_dictionary.attributes["h323-call-origin"].code == d.H323_CALL_ORIGIN


def test_status_values_follow_rfc2866() -> None:
    assert (d.STATUS_START, d.STATUS_STOP, d.STATUS_INTERIM) == (1, 2, 3)
    assert (d.STATUS_ACCOUNTING_ON, d.STATUS_ACCOUNTING_OFF, d.STATUS_FAILED) == (7, 8, 15)
