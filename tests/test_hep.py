"""HEPv3 codec: the specification's example packet, round trips, framing and hostile input."""

from __future__ import annotations

import gzip
import ipaddress
import random
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.receivers.sip.hep import (
    HEP_ERROR_REASONS,
    MAX_PAYLOAD_BYTES,
    HepError,
    HepPacket,
    decode_hep,
    decode_hep12,
    encode_chunks,
    encode_hep,
    encode_hep12,
    hep_frame_length,
)

# The example packet published in the HEP3 Network Protocol Specification
# (section "Example HEP3 packet"), octet for octet, one chunk per line.
SPEC_EXAMPLE = bytes.fromhex(
    "48455033"  # "HEP3"
    "0071"  # total length 113
    "00000001000702"  # IP family 2 (IPv4)
    "00000002000711"  # IP protocol 17 (UDP)
    "00000003000ad4ca0001"  # source 212.202.0.1
    "00000004000a527400d3"  # destination 82.116.0.211
    "0000000700082eea"  # source port 12010
    "00000008000813c4"  # destination port 5060
    "00000009000a4e4982cb"  # seconds 1313440459
    "0000000a000a0001d4c0"  # microseconds 120000
    "0000000b000701"  # protocol type 1 (SIP)
    "0000000c000a000000e4"  # capture id 228
    "0000000f0014494e56495445207369703a626f62"  # payload "INVITE sip:bob"
)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hep_error(data: bytes, **kwargs: int) -> str:
    with pytest.raises(HepError) as caught:
        decode_hep(data, **kwargs)
    assert caught.value.reason in HEP_ERROR_REASONS
    return caught.value.reason


def chunks_of(data: bytes) -> list[tuple[int, int, bytes]]:
    """Split a well-formed packet back into (vendor, type, body) chunks."""
    chunks = []
    offset = 6
    while offset < len(data):
        vendor = int.from_bytes(data[offset : offset + 2], "big")
        chunk_type = int.from_bytes(data[offset + 2 : offset + 4], "big")
        length = int.from_bytes(data[offset + 4 : offset + 6], "big")
        chunks.append((vendor, chunk_type, data[offset + 6 : offset + length]))
        offset += length
    return chunks


# -- the specification's example -------------------------------------------


def test_spec_example_decodes() -> None:
    assert len(SPEC_EXAMPLE) == 113
    packet = decode_hep(SPEC_EXAMPLE)
    assert packet.payload == b"INVITE sip:bob"
    assert packet.ip_family == 2
    assert packet.ip_protocol == 17
    assert packet.src_address is not None
    assert packet.dst_address is not None
    assert str(ipaddress.ip_address(packet.src_address)) == "212.202.0.1"
    assert str(ipaddress.ip_address(packet.dst_address)) == "82.116.0.211"
    assert (packet.src_port, packet.dst_port) == (12010, 5060)
    assert (packet.time_seconds, packet.time_micros) == (1313440459, 120000)
    # The specification's "Mon Aug 15 22:34:19 2011" is local time at UTC+2.
    assert packet.timestamp == datetime(2011, 8, 15, 20, 34, 19, 120000, tzinfo=UTC)
    assert packet.protocol_type == 1
    assert packet.capture_id == 228
    assert packet.auth_key is None
    assert packet.correlation_id is None


def test_spec_example_encodes_octet_for_octet() -> None:
    assert encode_hep(decode_hep(SPEC_EXAMPLE)) == SPEC_EXAMPLE


def test_spec_example_frame_length() -> None:
    assert hep_frame_length(SPEC_EXAMPLE[:6]) == 113


# -- decoding rules ----------------------------------------------------------


def full_packet(**changes: object) -> HepPacket:
    packet = HepPacket(
        payload=b"SIP/2.0 200 OK\r\n\r\n",
        time_seconds=1700000000,
        time_micros=999999,
        protocol_type=1,
        capture_id=2001,
        auth_key=b"s3cret",
        correlation_id=b"corr-1",
        ip_family=10,
        ip_protocol=6,
        src_address=ipaddress.ip_address("2001:db8::1").packed,
        dst_address=ipaddress.ip_address("2001:db8::2").packed,
        src_port=5061,
        dst_port=65535,
    )
    for name, value in changes.items():
        setattr(packet, name, value)
    return packet


def test_ipv6_auth_key_and_correlation_round_trip() -> None:
    packet = full_packet()
    assert decode_hep(encode_hep(packet)) == packet


def test_chunks_in_any_order() -> None:
    packet = full_packet()
    chunks = chunks_of(encode_hep(packet))
    for seed in range(20):
        random.Random(seed).shuffle(chunks)
        assert decode_hep(encode_chunks(chunks)) == packet


def test_unknown_and_vendor_chunks_are_skipped() -> None:
    packet = full_packet()
    extra = [
        (0, 13, b"\x00\x1e"),  # keep-alive timer, not kept
        (0, 19, b"node-1"),  # capture agent name, not kept
        (0, 0x20, b"\x01\x02"),  # MOS value
        (0, 0xFFFF, b""),  # unassigned generic type, empty body
        (2, 9, b"\x01\x02"),  # Kamailio vendor chunk reusing type 9 with another size
        (2, 15, b"not the payload"),  # vendor chunk reusing the payload type
        (7, 1, b""),
    ]
    data = encode_hep(packet, extra_chunks=extra)
    assert decode_hep(data) == packet


def test_compressed_payload_zlib_and_gzip() -> None:
    payload = b"INVITE sip:+4930123@example.net SIP/2.0\r\n" * 40
    packet = full_packet(payload=payload)
    assert decode_hep(encode_hep(packet, compress=True)) == packet
    chunks = [c for c in chunks_of(encode_hep(packet)) if c[1] != 15]
    chunks.append((0, 16, gzip.compress(payload)))
    assert decode_hep(encode_chunks(chunks)).payload == payload


def test_plain_payload_wins_over_compressed() -> None:
    data = encode_chunks([(0, 16, zlib.compress(b"compressed")), (0, 15, b"plain")])
    assert decode_hep(data).payload == b"plain"


def test_compression_bomb_is_refused() -> None:
    bomb = zlib.compress(b"\x00" * (MAX_PAYLOAD_BYTES + 1))
    assert len(bomb) < 2000
    assert hep_error(encode_chunks([(0, 16, bomb)])) == "too_large"
    # Exactly at the cap is fine.
    exact = zlib.compress(b"\x00" * MAX_PAYLOAD_BYTES)
    assert len(decode_hep(encode_chunks([(0, 16, exact)])).payload) == MAX_PAYLOAD_BYTES
    assert hep_error(encode_chunks([(0, 16, zlib.compress(b"x" * 100))]), max_payload_bytes=99) == (
        "too_large"
    )


@pytest.mark.parametrize(
    "body",
    [b"not zlib at all", zlib.compress(b"x" * 1000)[:-6], b""],
    ids=["garbage", "cut-short", "empty"],
)
def test_bad_compression(body: bytes) -> None:
    assert hep_error(encode_chunks([(0, 16, body)])) == "bad_compression"


def test_timestamp_absent_or_seconds_only() -> None:
    assert decode_hep(encode_chunks([(0, 15, b"x")])).timestamp is None
    data = encode_chunks([(0, 9, (1313440459).to_bytes(4, "big")), (0, 15, b"x")])
    assert decode_hep(data).timestamp == datetime(2011, 8, 15, 20, 34, 19, tzinfo=UTC)


def test_zero_timestamp_is_no_timestamp() -> None:
    # An agent without a clock value sends zeros: the receiver then takes the arrival time.
    zero = (0).to_bytes(4, "big")
    assert decode_hep(encode_chunks([(0, 9, zero), (0, 10, zero), (0, 15, b"x")])).timestamp is None
    assert decode_hep(encode_chunks([(0, 9, zero), (0, 15, b"x")])).timestamp is None
    one = (1).to_bytes(4, "big")
    assert decode_hep(encode_chunks([(0, 9, one), (0, 15, b"x")])).timestamp == EPOCH + timedelta(
        seconds=1
    )


def test_largest_datagram() -> None:
    payload = b"x" * (65507 - 6 - 6)
    data = encode_chunks([(0, 15, payload)])
    assert len(data) == 65507
    assert decode_hep(data).payload == payload
    with pytest.raises(ValueError, match="65535"):
        encode_chunks([(0, 15, b"x" * 65530)])


# -- malformed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"HEP3\x00", "truncated"),
        (b"HEP2\x00\x06", "bad_magic"),
        (b"\x02\x10\x02\x00\x13\xc4", "bad_magic"),
        (SPEC_EXAMPLE + b"\x00", "bad_length"),
        (SPEC_EXAMPLE[:-1], "bad_length"),
        (b"HEP3\x00\x0a\x00\x00", "bad_length"),
        (b"HEP3\x00\x06", "no_payload"),
        (b"HEP3\x00\x09\x00\x00\x00", "truncated"),
        (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x05", "bad_chunk"),
        (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x07", "bad_chunk"),
        (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x00", "bad_chunk"),
        (b"HEP3\x00\x0c\x00\x05\x00\x0f\x00\x07", "bad_chunk"),  # vendor chunks are checked too
    ],
)
def test_malformed_packets(data: bytes, reason: str) -> None:
    assert hep_error(data) == reason


@pytest.mark.parametrize(
    ("chunk_type", "size"),
    [
        (1, 1),
        (2, 1),
        (3, 4),
        (4, 4),
        (5, 16),
        (6, 16),
        (7, 2),
        (8, 2),
        (9, 4),
        (10, 4),
        (11, 1),
        (12, 4),
    ],
)
def test_fixed_size_chunks_must_have_their_size(chunk_type: int, size: int) -> None:
    payload = (0, 15, b"SIP")
    assert decode_hep(encode_chunks([(0, chunk_type, b"\x01" * size), payload]))
    for wrong in (0, size - 1, size + 1):
        if wrong < 0:
            continue
        data = encode_chunks([(0, chunk_type, b"\x01" * wrong), payload])
        assert hep_error(data) == "bad_chunk_size"


def test_keepalive_without_payload() -> None:
    data = encode_chunks([(0, 12, (7).to_bytes(4, "big")), (0, 13, b"\x00\x1e")])
    assert hep_error(data) == "no_payload"


def test_repr_and_errors_hold_no_secret_or_number() -> None:
    packet = full_packet(payload=b"INVITE sip:+4930111222@example.net SIP/2.0\r\n\r\n")
    text = repr(packet)
    for secret in ("4930111222", "s3cret", "2001:db8", "corr-1"):
        assert secret not in text
    assert "payload_bytes=" in text
    with pytest.raises(HepError) as caught:
        decode_hep(encode_hep(packet)[:-1])
    assert str(caught.value) == "bad_length"


# -- TCP framing --------------------------------------------------------------


def test_frame_length_splits_a_stream() -> None:
    first = encode_hep(full_packet(payload=b"first"))
    second = SPEC_EXAMPLE
    stream = first + second
    payloads = []
    while stream:
        length = hep_frame_length(stream[:6])
        payloads.append(decode_hep(stream[:length]).payload)
        stream = stream[length:]
    assert payloads == [b"first", b"INVITE sip:bob"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [(b"HEP3\x00", "truncated"), (b"HEX3\x00\x71", "bad_magic"), (b"HEP3\x00\x05", "bad_length")],
)
def test_frame_length_rejects(header: bytes, reason: str) -> None:
    with pytest.raises(HepError) as caught:
        hep_frame_length(header)
    assert caught.value.reason == reason


# -- HEPv1 / HEPv2 --------------------------------------------------------------

# The specification example's call leg as an older agent sends it: a fixed
# header (version, header length, family, protocol, ports in network order),
# both addresses, for HEPv2 the time header Kamailio's siptrace writes
# (seconds, microseconds and a 16-bit capture id, little-endian, padded to 12
# bytes), then the SIP text. Octet for octet.
HEP1_EXAMPLE = bytes.fromhex(
    "01"  # version 1
    "10"  # header length 16: fixed header and addresses
    "02"  # family: IPv4
    "11"  # protocol 17 (UDP)
    "2eea"  # source port 12010
    "13c4"  # destination port 5060
    "d4ca0001"  # source 212.202.0.1
    "527400d3"  # destination 82.116.0.211
    "494e56495445207369703a626f62"  # payload "INVITE sip:bob"
)
HEP2_EXAMPLE = bytes.fromhex(
    "02"  # version 2
    "10"  # header length 16 (Kamailio leaves the time header out of it)
    "02"  # family: IPv4
    "11"  # protocol 17 (UDP)
    "2eea"  # source port 12010
    "13c4"  # destination port 5060
    "d4ca0001"  # source 212.202.0.1
    "527400d3"  # destination 82.116.0.211
    "cb82494e"  # seconds 1313440459, little-endian
    "c0d40100"  # microseconds 120000, little-endian
    "e400"  # capture id 228, little-endian
    "0000"  # struct padding
    "494e56495445207369703a626f62"  # payload "INVITE sip:bob"
)
HEP2_IPV6_EXAMPLE = bytes.fromhex(
    "02"  # version 2
    "1c"  # header length 28, as FreeSWITCH counts it (time header included)
    "0a"  # family: IPv6
    "06"  # protocol 6 (TCP)
    "13c4"  # source port 5060
    "13c5"  # destination port 5061
    "20010db8000000000000000000000001"  # source 2001:db8::1
    "20010db8000000000000000000000002"  # destination 2001:db8::2
    "00000000"  # seconds 0: no clock value
    "00000000"  # microseconds 0
    "0700"  # capture id 7
    "0000"  # struct padding
    "5349502f322e3020323030204f4b"  # payload "SIP/2.0 200 OK"
)


def hep12_error(data: bytes) -> str:
    with pytest.raises(HepError) as caught:
        decode_hep12(data)
    assert caught.value.reason in HEP_ERROR_REASONS
    return caught.value.reason


def test_hep1_example_decodes() -> None:
    packet = decode_hep12(HEP1_EXAMPLE)
    assert packet.payload == b"INVITE sip:bob"
    assert (packet.ip_family, packet.ip_protocol) == (2, 17)
    assert (packet.src_port, packet.dst_port) == (12010, 5060)
    assert packet.src_address is not None and packet.dst_address is not None
    assert str(ipaddress.ip_address(packet.src_address)) == "212.202.0.1"
    assert str(ipaddress.ip_address(packet.dst_address)) == "82.116.0.211"
    assert packet.timestamp is None  # HEPv1 has no time: the receiver takes the arrival time
    assert packet.capture_id is None
    assert packet.auth_key is None  # nor an auth key
    assert packet.protocol_type == 1  # always SIP


def test_hep2_example_decodes() -> None:
    packet = decode_hep12(HEP2_EXAMPLE)
    assert packet.payload == b"INVITE sip:bob"
    assert (packet.time_seconds, packet.time_micros) == (1313440459, 120000)
    assert packet.timestamp == datetime(2011, 8, 15, 20, 34, 19, 120000, tzinfo=UTC)
    assert packet.capture_id == 228
    assert packet.auth_key is None
    assert (packet.src_port, packet.dst_port) == (12010, 5060)
    assert packet.src_address == bytes((212, 202, 0, 1))


def test_hep2_ipv6_with_the_time_header_counted_in_the_header_length() -> None:
    packet = decode_hep12(HEP2_IPV6_EXAMPLE)
    assert packet.payload == b"SIP/2.0 200 OK"
    assert (packet.ip_family, packet.ip_protocol) == (10, 6)
    assert packet.src_address is not None
    assert str(ipaddress.ip_address(packet.src_address)) == "2001:db8::1"
    assert (packet.src_port, packet.dst_port) == (5060, 5061)
    assert packet.capture_id == 7
    assert packet.timestamp is None  # zero seconds: no clock value


def test_hep12_examples_encode_octet_for_octet() -> None:
    for data, version, header_length in (
        (HEP1_EXAMPLE, 1, None),
        (HEP2_EXAMPLE, 2, None),
        (HEP2_IPV6_EXAMPLE, 2, 28),
    ):
        assert encode_hep12(decode_hep12(data), version=version, header_length=header_length) == (
            data
        )


def test_hep12_is_not_hep3_and_back() -> None:
    assert hep_error(HEP2_EXAMPLE) == "bad_magic"
    assert hep12_error(SPEC_EXAMPLE) == "bad_magic"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad_magic"),
        (b"\x02\x10\x02\x11\x2e", "truncated"),
        (HEP1_EXAMPLE[:15], "truncated"),  # addresses cut short
        (HEP2_EXAMPLE[:20], "truncated"),  # time header cut short
        (HEP1_EXAMPLE[:16], "no_payload"),
        (HEP2_EXAMPLE[:28], "no_payload"),
        (b"\x03" + HEP1_EXAMPLE[1:], "bad_magic"),
        (HEP1_EXAMPLE[:2] + b"\x07" + HEP1_EXAMPLE[3:], "bad_family"),
        (HEP1_EXAMPLE[:2] + b"\x00" + HEP1_EXAMPLE[3:], "bad_family"),
    ],
)
def test_hep12_malformed(data: bytes, reason: str) -> None:
    assert hep12_error(data) == reason


def test_hep12_encoder_refuses_what_it_cannot_encode() -> None:
    packet = decode_hep12(HEP1_EXAMPLE)
    with pytest.raises(ValueError, match="version"):
        encode_hep12(packet, version=3)
    with pytest.raises(ValueError, match="addresses"):
        encode_hep12(HepPacket(b"x", ip_family=2))
    with pytest.raises(ValueError, match="family"):
        encode_hep12(HepPacket(b"x", ip_family=2, src_address=bytes(16), dst_address=bytes(16)))


# -- properties ---------------------------------------------------------------

_optional_u8 = st.none() | st.integers(0, 255)
_optional_u16 = st.none() | st.integers(0, 0xFFFF)
_optional_u32 = st.none() | st.integers(0, 0xFFFFFFFF)
_address = st.none() | st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16)

packets = st.builds(
    HepPacket,
    payload=st.binary(max_size=3000),
    time_seconds=_optional_u32,
    time_micros=_optional_u32,
    protocol_type=_optional_u8,
    capture_id=_optional_u32,
    auth_key=st.none() | st.binary(max_size=64),
    correlation_id=st.none() | st.binary(max_size=64),
    ip_family=_optional_u8,
    ip_protocol=_optional_u8,
    src_address=_address,
    dst_address=_address,
    src_port=_optional_u16,
    dst_port=_optional_u16,
)


@settings(max_examples=300)
@given(packet=packets, compress=st.booleans(), seed=st.integers(0, 1000))
def test_round_trip(packet: HepPacket, compress: bool, seed: int) -> None:
    chunks = chunks_of(encode_hep(packet, compress=compress))
    random.Random(seed).shuffle(chunks)
    decoded = decode_hep(encode_chunks(chunks))
    assert decoded == packet
    if not packet.time_seconds:
        assert decoded.timestamp is None  # absent, or zero: the receiver takes the arrival time
    else:
        assert decoded.timestamp is not None
        micros = (decoded.timestamp - EPOCH) // timedelta(microseconds=1)
        assert micros == packet.time_seconds * 1_000_000 + (packet.time_micros or 0)


def _check_total(data: bytes) -> None:
    try:
        packet = decode_hep(data)
    except HepError as error:
        reason: str | None = error.reason
    else:
        reason = None
        assert isinstance(packet.payload, bytes)
        _ = packet.timestamp  # must not raise either
    assert reason is None or reason in HEP_ERROR_REASONS


@settings(max_examples=1000)
@given(st.binary(max_size=600))
def test_fuzz_any_bytes(data: bytes) -> None:
    _check_total(data)
    # Give the chunk walker a chance too: right magic and length around the same bytes.
    _check_total(b"HEP3" + (len(data) + 6).to_bytes(2, "big") + data)


@settings(max_examples=1000)
@given(
    packet=packets,
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    fix_length=st.booleans(),
    cut=st.integers(0, 10_000),
)
def test_fuzz_mutated_valid_packets(
    packet: HepPacket, compress: bool, edits: list[tuple[int, int]], fix_length: bool, cut: int
) -> None:
    data = bytearray(encode_hep(packet, compress=compress))
    for position, value in edits:
        data[position % len(data)] = value
    if fix_length:
        data[4:6] = len(data).to_bytes(2, "big")
    _check_total(bytes(data))
    truncated = bytes(data[: cut % (len(data) + 1)])
    if fix_length and len(truncated) >= 6:
        truncated = truncated[:4] + len(truncated).to_bytes(2, "big") + truncated[6:]
    _check_total(truncated)


# -- HEPv1 / HEPv2 properties ---------------------------------------------------

_v4 = st.tuples(st.just(2), st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
_v6 = st.tuples(
    st.just(10), st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16)
)


@st.composite
def legacy_packets(draw: st.DrawFn) -> tuple[HepPacket, int]:
    """A HEPv1 or HEPv2 packet as an agent would fill it in, and its version."""
    version = draw(st.sampled_from([1, 2]))
    family, src, dst = draw(_v4 | _v6)
    timed = version == 2
    packet = HepPacket(
        payload=draw(st.binary(min_size=1, max_size=2000)),
        time_seconds=draw(st.integers(0, 0xFFFFFFFF)) if timed else None,
        time_micros=draw(st.integers(0, 0xFFFFFFFF)) if timed else None,
        protocol_type=1,
        capture_id=draw(st.integers(0, 0xFFFF)) if timed else None,
        ip_family=family,
        ip_protocol=draw(st.integers(0, 255)),
        src_address=src,
        dst_address=dst,
        src_port=draw(st.integers(0, 0xFFFF)),
        dst_port=draw(st.integers(0, 0xFFFF)),
    )
    return packet, version


@settings(max_examples=300)
@given(legacy=legacy_packets(), header_length=st.none() | st.integers(0, 255))
def test_hep12_round_trip(legacy: tuple[HepPacket, int], header_length: int | None) -> None:
    packet, version = legacy
    data = encode_hep12(packet, version=version, header_length=header_length)
    assert decode_hep12(data) == packet


def _check_total_hep12(data: bytes) -> None:
    try:
        packet = decode_hep12(data)
    except HepError as error:
        reason: str | None = error.reason
    else:
        reason = None
        assert isinstance(packet.payload, bytes) and packet.payload
        assert packet.auth_key is None
        _ = packet.timestamp  # must not raise either
    assert reason is None or reason in HEP_ERROR_REASONS


@settings(max_examples=1000)
@given(version=st.sampled_from([b"\x01", b"\x02"]), data=st.binary(max_size=200))
def test_hep12_fuzz_any_bytes(version: bytes, data: bytes) -> None:
    _check_total_hep12(data)
    _check_total_hep12(version + data)


@settings(max_examples=1000)
@given(
    legacy=legacy_packets(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
)
def test_hep12_fuzz_mutated_valid_packets(
    legacy: tuple[HepPacket, int], edits: list[tuple[int, int]], cut: int
) -> None:
    packet, version = legacy
    data = bytearray(encode_hep12(packet, version=version))
    for position, value in edits:
        data[position % len(data)] = value
    _check_total_hep12(bytes(data))
    _check_total_hep12(bytes(data[: cut % (len(data) + 1)]))
