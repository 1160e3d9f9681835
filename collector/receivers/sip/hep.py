"""HEP codec: the envelope in which capture agents mirror SIP to the collector.

Kamailio's siptrace, heplify, OpenSIPS and FreeSWITCH wrap every SIP message
they see in a HEPv3 packet: the "HEP3" magic, a 16-bit total length and a run
of type-length-value chunks (capture timestamp, agent id, optional auth key,
the SIP text itself, possibly zlib-compressed). `decode_hep` turns one
datagram (or one TCP frame, cut with `hep_frame_length`) into a `HepPacket`
holding only what the daemon needs. It is the first code that touches
untrusted bytes, so it must never raise anything but `HepError` (whose
`reason` is one of the short fixed tokens in `HEP_ERROR_REASONS`, fit for a
metric label), never inflate a compressed payload past a fixed cap, and never
hand the addresses it decodes to anything that stores them.

Older agents (Kamailio's siptrace with its default `hep_version=1`,
FreeSWITCH with `capture-server` on hep v1/v2, old OpenSIPS) send HEPv1 or
HEPv2 instead: a fixed binary header and the SIP text, with no magic, no
length field, no chunks and no auth key. `decode_hep12` reads those:

    byte 0      version (1 or 2)
    byte 1      header length as the agent counts it (not relied upon)
    byte 2      address family (2 = IPv4, 10 = IPv6)
    byte 3      IP protocol (17 = UDP, 6 = TCP)
    bytes 4-7   source and destination port, network order
    then        source and destination address, 4 or 16 bytes each
    HEPv2 only  time header: seconds (4), microseconds (4), capture id (2),
                little-endian as the C struct is laid out on the agents, and
                2 bytes of struct padding (12 bytes in all)
    then        the SIP message

(as Kamailio's siptrace writes it and its sipcapture reads it). Every
packet of either version starts with byte 1 or 2, which neither SIP text nor
HEPv3 ever does.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

#: the four bytes every HEPv3 packet starts with
HEP_MAGIC = b"HEP3"
#: the first byte of a HEPv1 or HEPv2 packet (its version), as a one-byte prefix
LEGACY_HEP_VERSIONS = (b"\x01", b"\x02")
#: magic + total length: what a TCP reader needs before it knows the frame size
HEP_HEADER_BYTES = 6
#: the largest UDP payload over IPv4; a receive buffer of this size never truncates
MAX_DATAGRAM_BYTES = 65507
#: default cap on an inflated compressed payload (SIP over UDP is at most 64 KiB)
MAX_PAYLOAD_BYTES = 262144

#: protocol type (chunk 11) of SIP
PROTO_SIP = 1

# Generic chunk type ids (vendor id 0) of the HEPv3 specification.
CHUNK_IP_FAMILY = 1
CHUNK_IP_PROTOCOL = 2
CHUNK_IPV4_SRC = 3
CHUNK_IPV4_DST = 4
CHUNK_IPV6_SRC = 5
CHUNK_IPV6_DST = 6
CHUNK_SRC_PORT = 7
CHUNK_DST_PORT = 8
CHUNK_TIME_SECONDS = 9
CHUNK_TIME_MICROS = 10
CHUNK_PROTOCOL_TYPE = 11
CHUNK_CAPTURE_ID = 12
CHUNK_AUTH_KEY = 14
CHUNK_PAYLOAD = 15
CHUNK_COMPRESSED_PAYLOAD = 16
CHUNK_CORRELATION_ID = 17

#: every reason a HepError can carry (a fixed vocabulary for metrics and logs)
HEP_ERROR_REASONS = frozenset(
    {
        "truncated",  # shorter than a header, or a chunk header cut off
        "bad_magic",  # does not start with "HEP3"
        "bad_length",  # total length field disagrees with the datagram
        "bad_chunk",  # chunk length below 6 or running past the packet
        "bad_chunk_size",  # a fixed-size chunk with the wrong size
        "bad_compression",  # compressed payload that does not inflate
        "too_large",  # compressed payload inflating past the cap
        "no_payload",  # no captured payload at all (keep-alives, stats)
        "bad_family",  # HEPv1/v2 address family neither IPv4 (2) nor IPv6 (10)
    }
)

# Total length (6-byte header included) of each fixed-size generic chunk,
# indexed by type id; 0 = variable or not checked. Index 17 is the last type
# the decoder keeps.
_FIXED_CHUNK_LENGTHS = (0, 7, 7, 10, 10, 22, 22, 8, 8, 10, 10, 7, 10, 0, 0, 0, 0, 0)
_LAST_KEPT_TYPE = 17

_chunk_header = struct.Struct(">HHH")
_unpack_chunk_header = struct.Struct(">IH").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from
# HEPv1/v2: version, header length, family, protocol, source port, destination port
_legacy_header = struct.Struct(">BBBBHH")
# HEPv2 time header: seconds, microseconds, capture id, struct padding
_legacy_time = struct.Struct("<IIH2x")
_LEGACY_HEADER_BYTES = 8
#: address family -> bytes of one address, in HEPv1/v2
_LEGACY_ADDRESS_BYTES = {2: 4, 10: 16}
_from_timestamp = datetime.fromtimestamp


class HepError(ValueError):
    """A datagram that is not a well-formed HEPv3 packet.

    `reason` is one of `HEP_ERROR_REASONS`: the receiver counts it as a
    malformed packet under that label, without logging the bytes.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, repr=False)
class HepPacket:
    """The parts of one HEPv3 packet the daemon uses.

    Only `payload`, the capture time, `protocol_type`, `capture_id`,
    `auth_key` and `correlation_id` feed the daemon; the addresses and ports
    are decoded so that the codec can be tested whole, and must never be
    copied into a record or a log line. Addresses are raw network-order bytes
    (4 or 16 of them), formatted only by whoever needs text.
    """

    payload: bytes
    time_seconds: int | None = None
    time_micros: int | None = None
    protocol_type: int | None = None
    capture_id: int | None = None
    auth_key: bytes | None = None
    correlation_id: bytes | None = None
    ip_family: int | None = None
    ip_protocol: int | None = None
    src_address: bytes | None = None
    dst_address: bytes | None = None
    src_port: int | None = None
    dst_port: int | None = None

    def __repr__(self) -> str:
        # Never the payload, the auth key or the addresses: they hold phone
        # numbers, a secret and IP addresses, and a repr ends up in logs.
        return (
            f"<HepPacket protocol_type={self.protocol_type} capture_id={self.capture_id}"
            f" payload_bytes={len(self.payload)}>"
        )

    @property
    def timestamp(self) -> datetime | None:
        """The capture time as a UTC datetime, or None when the agent sent none.

        Zero seconds count as none: an agent without a clock value sends
        zeros (heplify-server, too, takes the arrival time then), and a time
        in the first second of 1970 is never a capture time.

        Exact to the microsecond, so that two collectors given the same
        packet agree: for any 32-bit seconds value the float sum is within
        half a microsecond of the true time, and `fromtimestamp` rounds to
        the nearest microsecond (checked against integer arithmetic in the
        tests).
        """
        seconds = self.time_seconds
        if not seconds:
            return None
        micros = self.time_micros
        if not micros:
            return _from_timestamp(seconds, UTC)
        return _from_timestamp(seconds + micros / 1_000_000, UTC)


def hep_frame_length(header: bytes) -> int:
    """The total length of the HEPv3 packet that starts with `header`.

    For stream transports (TCP): read `HEP_HEADER_BYTES`, ask this how long
    the whole frame is, then read the rest. Raises HepError when the header
    is short, lacks the magic, or announces a frame shorter than itself.
    """
    if len(header) < HEP_HEADER_BYTES:
        raise HepError("truncated")
    if header[:4] != HEP_MAGIC:
        raise HepError("bad_magic")
    length = (header[4] << 8) | header[5]
    if length < HEP_HEADER_BYTES:
        raise HepError("bad_length")
    return length


def decode_hep(data: bytes, *, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> HepPacket:
    """Decode one whole HEPv3 packet (a UDP datagram or a TCP frame).

    Chunks may come in any order; chunks of a vendor other than 0 and
    generic types the daemon does not use are skipped after their length is
    checked. A chunk seen twice keeps its last value; a plain payload wins
    over a compressed one. Raises HepError, and nothing else, for every
    malformed input.
    """
    size = len(data)
    if size < HEP_HEADER_BYTES:
        raise HepError("truncated")
    if data[:4] != HEP_MAGIC:
        raise HepError("bad_magic")
    if ((data[4] << 8) | data[5]) != size:
        raise HepError("bad_length")

    # One pass validates every chunk and remembers where the kept ones start;
    # fields are read afterwards, only for chunks that exist. Unpacking
    # ">IH" reads vendor and type as one number: vendor 0 chunks of a kept
    # type are exactly those with kind <= 17.
    starts = [0] * (_LAST_KEPT_TYPE + 1)
    ends = [0] * (_LAST_KEPT_TYPE + 1)
    sizes = _FIXED_CHUNK_LENGTHS
    unpack = _unpack_chunk_header
    offset = HEP_HEADER_BYTES
    try:
        while offset < size:
            kind, length = unpack(data, offset)
            end = offset + length
            if length < 6 or end > size:
                raise HepError("bad_chunk")
            if kind <= _LAST_KEPT_TYPE:
                fixed = sizes[kind]
                if fixed:
                    if fixed != length:
                        raise HepError("bad_chunk_size")
                else:
                    ends[kind] = end  # only variable-size chunks need their end
                starts[kind] = offset + 6
            offset = end
    except struct.error:
        # Fewer than 6 bytes left for a chunk header.
        raise HepError("truncated") from None

    if ends[CHUNK_PAYLOAD]:
        payload = data[starts[CHUNK_PAYLOAD] : ends[CHUNK_PAYLOAD]]
    elif ends[CHUNK_COMPRESSED_PAYLOAD]:
        payload = _inflate(
            data[starts[CHUNK_COMPRESSED_PAYLOAD] : ends[CHUNK_COMPRESSED_PAYLOAD]],
            max_payload_bytes,
        )
    else:
        raise HepError("no_payload")

    start = starts[CHUNK_SRC_PORT]
    src_port = ((data[start] << 8) | data[start + 1]) if start else None
    start = starts[CHUNK_DST_PORT]
    dst_port = ((data[start] << 8) | data[start + 1]) if start else None
    # An agent sends either the IPv4 or the IPv6 pair; if both came, IPv6 wins.
    if start := starts[CHUNK_IPV6_SRC]:
        src_address: bytes | None = data[start : start + 16]
    elif start := starts[CHUNK_IPV4_SRC]:
        src_address = data[start : start + 4]
    else:
        src_address = None
    if start := starts[CHUNK_IPV6_DST]:
        dst_address: bytes | None = data[start : start + 16]
    elif start := starts[CHUNK_IPV4_DST]:
        dst_address = data[start : start + 4]
    else:
        dst_address = None
    start = starts[CHUNK_TIME_SECONDS]
    seconds = _unpack_u32(data, start)[0] if start else None
    start = starts[CHUNK_TIME_MICROS]
    micros = _unpack_u32(data, start)[0] if start else None
    start = starts[CHUNK_CAPTURE_ID]
    capture_id = _unpack_u32(data, start)[0] if start else None
    start = starts[CHUNK_PROTOCOL_TYPE]
    protocol_type = data[start] if start else None
    start = starts[CHUNK_IP_FAMILY]
    ip_family = data[start] if start else None
    start = starts[CHUNK_IP_PROTOCOL]
    ip_protocol = data[start] if start else None
    start = starts[CHUNK_AUTH_KEY]
    auth_key = data[start : ends[CHUNK_AUTH_KEY]] if start else None
    start = starts[CHUNK_CORRELATION_ID]
    correlation_id = data[start : ends[CHUNK_CORRELATION_ID]] if start else None
    return HepPacket(
        payload,
        seconds,
        micros,
        protocol_type,
        capture_id,
        auth_key,
        correlation_id,
        ip_family,
        ip_protocol,
        src_address,
        dst_address,
        src_port,
        dst_port,
    )


def decode_hep12(data: bytes) -> HepPacket:
    """Decode one HEPv1 or HEPv2 packet (a UDP datagram; these versions have no framing).

    The layout is in the module docstring. The header length byte is not
    used to find the payload, since agents disagree on what it counts
    (Kamailio leaves the HEPv2 time header out of it, FreeSWITCH counts it);
    the payload starts after the fixed parts the version and family imply.
    A HEPv1/v2 packet carries no auth key (`auth_key` is None) and always
    SIP (`protocol_type` is 1). Raises HepError, and nothing else, for every
    malformed input.
    """
    size = len(data)
    if size < _LEGACY_HEADER_BYTES:
        raise HepError("truncated" if data[:1] in LEGACY_HEP_VERSIONS else "bad_magic")
    version, _header_length, family, ip_protocol, src_port, dst_port = _legacy_header.unpack_from(
        data
    )
    if version != 1 and version != 2:
        raise HepError("bad_magic")
    width = _LEGACY_ADDRESS_BYTES.get(family)
    if width is None:
        raise HepError("bad_family")
    offset = _LEGACY_HEADER_BYTES + 2 * width
    seconds: int | None = None
    micros: int | None = None
    capture_id: int | None = None
    if version == 2:
        if size < offset + _legacy_time.size:
            raise HepError("truncated")
        seconds, micros, capture_id = _legacy_time.unpack_from(data, offset)
        src_address = data[_LEGACY_HEADER_BYTES : _LEGACY_HEADER_BYTES + width]
        dst_address = data[_LEGACY_HEADER_BYTES + width : offset]
        offset += _legacy_time.size
    else:
        if size < offset:
            raise HepError("truncated")
        src_address = data[_LEGACY_HEADER_BYTES : _LEGACY_HEADER_BYTES + width]
        dst_address = data[_LEGACY_HEADER_BYTES + width : offset]
    if offset >= size:
        raise HepError("no_payload")
    return HepPacket(
        data[offset:],
        seconds,
        micros,
        PROTO_SIP,
        capture_id,
        None,
        None,
        family,
        ip_protocol,
        src_address,
        dst_address,
        src_port,
        dst_port,
    )


def encode_hep12(packet: HepPacket, *, version: int = 2, header_length: int | None = None) -> bytes:
    """Encode `packet` as HEPv1 or HEPv2, the way an older capture agent would.

    Needs `ip_family`, both addresses and both ports; HEPv2 also takes the
    time and the capture id (0 when None). `header_length` is the value of
    byte 1 (by default the fixed header and the addresses, as Kamailio
    writes it). Only for tests and benchmarks. Raises ValueError when a
    field is missing or does not fit.
    """
    if version not in (1, 2):
        raise ValueError("version is 1 or 2")
    family = packet.ip_family
    src, dst = packet.src_address, packet.dst_address
    if family is None or src is None or dst is None:
        raise ValueError("ip_family and both addresses are needed")
    width = _LEGACY_ADDRESS_BYTES.get(family)
    if width is None or len(src) != width or len(dst) != width:
        raise ValueError("family 2 takes 4-byte addresses, family 10 16-byte ones")
    if header_length is None:
        header_length = _LEGACY_HEADER_BYTES + 2 * width
    parts = [
        _legacy_header.pack(
            version,
            header_length,
            family,
            17 if packet.ip_protocol is None else packet.ip_protocol,
            packet.src_port or 0,
            packet.dst_port or 0,
        ),
        src,
        dst,
    ]
    if version == 2:
        parts.append(
            _legacy_time.pack(
                packet.time_seconds or 0, packet.time_micros or 0, packet.capture_id or 0
            )
        )
    parts.append(packet.payload)
    return b"".join(parts)


def _inflate(compressed: bytes, limit: int) -> bytes:
    """Inflate a zlib (or gzip) stream, refusing to produce more than `limit` bytes."""
    # wbits 47 = 32 + 15: accept either a zlib or a gzip header, detected from the data.
    inflater = zlib.decompressobj(47)
    limit = max(1, limit)  # zlib reads a max_length of 0 as "no limit"
    try:
        inflated = inflater.decompress(compressed, limit)
    except zlib.error:
        raise HepError("bad_compression") from None
    if not inflater.eof:
        # Either the cap stopped it (output full) or the stream is cut short.
        raise HepError("too_large" if len(inflated) >= limit else "bad_compression")
    return inflated


def encode_chunks(chunks: Iterable[tuple[int, int, bytes]]) -> bytes:
    """Build a HEPv3 packet from raw (vendor id, type id, body) chunks, in the given order.

    For tests and benchmarks that need unusual packets (odd chunk order,
    vendor chunks, wrong sizes). Raises ValueError when a chunk or the packet
    does not fit the 16-bit length fields.
    """
    parts = [b""]
    total = HEP_HEADER_BYTES
    pack = _chunk_header.pack
    for vendor, chunk_type, body in chunks:
        length = 6 + len(body)
        if length > 0xFFFF:
            raise ValueError("chunk longer than 65535 bytes")
        parts.append(pack(vendor, chunk_type, length))
        parts.append(body)
        total += length
    if total > 0xFFFF:
        raise ValueError("packet longer than 65535 bytes")
    parts[0] = HEP_MAGIC + total.to_bytes(2, "big")
    return b"".join(parts)


def encode_hep(
    packet: HepPacket,
    *,
    compress: bool = False,
    extra_chunks: Iterable[tuple[int, int, bytes]] = (),
) -> bytes:
    """Encode `packet` as a HEPv3 packet, the way a capture agent would.

    Fields that are None are left out. `compress` sends the payload as a
    zlib-compressed chunk (type 16); `extra_chunks` are appended as given
    (vendor id, type id, body). Used by tests, benchmarks and the demo to
    play the part of a capture agent.
    """
    chunks: list[tuple[int, int, bytes]] = []
    if packet.ip_family is not None:
        chunks.append((0, CHUNK_IP_FAMILY, bytes((packet.ip_family,))))
    if packet.ip_protocol is not None:
        chunks.append((0, CHUNK_IP_PROTOCOL, bytes((packet.ip_protocol,))))
    for address, v4_type, v6_type in (
        (packet.src_address, CHUNK_IPV4_SRC, CHUNK_IPV6_SRC),
        (packet.dst_address, CHUNK_IPV4_DST, CHUNK_IPV6_DST),
    ):
        if address is None:
            continue
        if len(address) == 4:
            chunks.append((0, v4_type, address))
        elif len(address) == 16:
            chunks.append((0, v6_type, address))
        else:
            raise ValueError("an address is 4 (IPv4) or 16 (IPv6) bytes")
    if packet.src_port is not None:
        chunks.append((0, CHUNK_SRC_PORT, packet.src_port.to_bytes(2, "big")))
    if packet.dst_port is not None:
        chunks.append((0, CHUNK_DST_PORT, packet.dst_port.to_bytes(2, "big")))
    if packet.time_seconds is not None:
        chunks.append((0, CHUNK_TIME_SECONDS, packet.time_seconds.to_bytes(4, "big")))
    if packet.time_micros is not None:
        chunks.append((0, CHUNK_TIME_MICROS, packet.time_micros.to_bytes(4, "big")))
    if packet.protocol_type is not None:
        chunks.append((0, CHUNK_PROTOCOL_TYPE, bytes((packet.protocol_type,))))
    if packet.capture_id is not None:
        chunks.append((0, CHUNK_CAPTURE_ID, packet.capture_id.to_bytes(4, "big")))
    if packet.auth_key is not None:
        chunks.append((0, CHUNK_AUTH_KEY, packet.auth_key))
    if packet.correlation_id is not None:
        chunks.append((0, CHUNK_CORRELATION_ID, packet.correlation_id))
    if compress:
        chunks.append((0, CHUNK_COMPRESSED_PAYLOAD, zlib.compress(packet.payload)))
    else:
        chunks.append((0, CHUNK_PAYLOAD, packet.payload))
    chunks.extend(extra_chunks)
    return encode_chunks(chunks)
