"""RADIUS packet codec (RFC 2865 framing, RFC 2866 accounting, RFC 5997 Status-Server).

`decode` checks the framing of an untrusted datagram and returns a `Packet`
with its attributes indexed by number, or raises `MalformedPacket` with a
short fixed reason. It must never raise anything else, whatever the bytes:
the receiver calls it for every datagram from the network. Authenticators are
checked separately (`accounting_request_ok`, `message_authenticator_ok`) so
that the cheap framing checks come first. `encode` builds packets for the
responses, the tests and the benchmarks.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from collector.receivers.radius.dictionary import MESSAGE_AUTHENTICATOR, VENDOR_SPECIFIC

ACCESS_REQUEST: Final = 1
ACCESS_ACCEPT: Final = 2
ACCOUNTING_REQUEST: Final = 4
ACCOUNTING_RESPONSE: Final = 5
STATUS_SERVER: Final = 12

HEADER_LENGTH: Final = 20
MAX_PACKET_LENGTH: Final = 4096
ZERO_AUTHENTICATOR = bytes(16)
#: RFC 2865 5.33: echoed unmodified, in order, in every response
PROXY_STATE: Final = 33


class MalformedPacket(Exception):
    """The datagram is not a well-formed RADIUS packet; `reason` is a short fixed token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def vendor_key(vendor: int, vendor_type: int) -> bytes:
    """The index key of a vendor-specific attribute in `Packet.vsas`: the vendor id
    and the vendor type as they appear on the wire (a slice is cheaper than arithmetic)."""
    return vendor.to_bytes(4, "big") + bytes((vendor_type,))


class Packet:
    """A decoded RADIUS packet: header fields and attributes by number.

    `attrs` keeps the first value of each standard attribute; `vsas` keeps
    every value of each vendor attribute (keyed by `vendor_key`), in order,
    because vendors repeat theirs (Cisco-AVPair). `raw` is the packet up to
    its declared length, for authenticator checks.
    """

    __slots__ = ("attrs", "authenticator", "code", "identifier", "raw", "vsas")

    def __init__(
        self,
        code: int,
        identifier: int,
        authenticator: bytes,
        raw: bytes,
        attrs: dict[int, bytes],
        vsas: dict[bytes, list[bytes]],
    ) -> None:
        self.code = code
        self.identifier = identifier
        self.authenticator = authenticator
        self.raw = raw
        self.attrs = attrs
        self.vsas = vsas

    @property
    def vendors(self) -> frozenset[int]:
        """The vendor ids of the packet's vendor-specific attributes."""
        return frozenset(int.from_bytes(key[:4], "big") for key in self.vsas)

    def integer(self, number: int) -> int | None:
        """A 32-bit integer attribute, or None when absent or not 4 bytes."""
        value = self.attrs.get(number)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    def text(self, number: int) -> str | None:
        """A string attribute decoded as UTF-8 (invalid bytes replaced), or None."""
        value = self.attrs.get(number)
        if value is None:
            return None
        return value.decode("utf-8", "replace")

    def vendor_texts(self, vendor: int, vendor_type: int) -> list[str]:
        """Every value of one vendor string attribute, decoded."""
        return [
            v.decode("utf-8", "replace") for v in self.vsas.get(vendor_key(vendor, vendor_type), ())
        ]

    def vendor_text(self, vendor: int, vendor_type: int) -> str | None:
        """The first value of one vendor string attribute, or None."""
        values = self.vsas.get(vendor_key(vendor, vendor_type))
        return values[0].decode("utf-8", "replace") if values else None

    def vendor_integer(self, vendor: int, vendor_type: int) -> int | None:
        """The first value of one vendor integer attribute, or None."""
        values = self.vsas.get(vendor_key(vendor, vendor_type))
        if not values or len(values[0]) != 4:
            return None
        return int.from_bytes(values[0], "big")


def decode(data: bytes) -> Packet:
    """Check the framing of `data` and index its attributes; raise MalformedPacket."""
    size = len(data)
    if size < HEADER_LENGTH:
        raise MalformedPacket("truncated")
    length = (data[2] << 8) | data[3]
    if length < HEADER_LENGTH or length > MAX_PACKET_LENGTH:
        raise MalformedPacket("bad_length")
    if length > size:
        raise MalformedPacket("truncated")
    # RFC 2865 3: octets beyond the declared length are padding and ignored
    raw = data[:length] if length < size else data
    attrs: dict[int, bytes] = {}
    vsas: dict[bytes, list[bytes]] = {}
    pos = HEADER_LENGTH
    last = length - 1
    while pos < length:
        if pos == last:
            raise MalformedPacket("attribute_truncated")
        end = pos + raw[pos + 1]
        if end <= pos + 1 or end > length:
            raise MalformedPacket("attribute_length")
        number = raw[pos]
        if number == VENDOR_SPECIFIC:
            # fast path: one sub-attribute filling the VSA (how every vendor here sends them)
            if end - pos >= 8 and raw[pos + 7] == end - pos - 6:
                key = raw[pos + 2 : pos + 7]
                values = vsas.get(key)
                if values is None:
                    vsas[key] = [raw[pos + 8 : end]]
                else:
                    values.append(raw[pos + 8 : end])
            else:
                _decode_vsa(raw, pos + 2, end, vsas)
        elif number not in attrs:
            attrs[number] = raw[pos + 2 : end]
        pos = end
    return Packet(data[0], data[1], raw[4:20], raw, attrs, vsas)


def _decode_vsa(raw: bytes, start: int, end: int, vsas: dict[bytes, list[bytes]]) -> None:
    """Index the sub-attributes of one Vendor-Specific attribute (RFC 2865 5.26 format).

    A VSA whose contents do not follow the recommended format is kept opaque
    (skipped), as RFC 2865 allows: it does not make the packet malformed.
    """
    if end - start < 4:
        return
    vendor = raw[start : start + 4]
    pos = start + 4
    found: list[tuple[bytes, bytes]] = []
    while pos < end:
        if pos + 2 > end:
            return
        sub_length = raw[pos + 1]
        if sub_length < 2 or pos + sub_length > end:
            return
        found.append((vendor + raw[pos : pos + 1], raw[pos + 2 : pos + sub_length]))
        pos += sub_length
    for key, value in found:
        vsas.setdefault(key, []).append(value)


def accounting_request_ok(packet: Packet, secret: bytes) -> bool:
    """RFC 2866 3: Request Authenticator = MD5(Code+ID+Length+16 zero octets+Attributes+Secret)."""
    raw = packet.raw
    expected = hashlib.md5(raw[:4] + ZERO_AUTHENTICATOR + raw[20:] + secret).digest()  # noqa: S324 (the protocol's hash)
    return hmac.compare_digest(expected, packet.authenticator)


def _message_authenticator_offset(raw: bytes) -> int:
    """Byte offset of the first Message-Authenticator's value, or -1 (framing already checked).

    -1 also when that attribute is not 18 octets long: RFC 3579 3.2 allows no
    other length, and a packet carrying a malformed one cannot verify.
    """
    pos = HEADER_LENGTH
    length = len(raw)
    while pos + 2 <= length:
        attr_length = raw[pos + 1]
        if raw[pos] == MESSAGE_AUTHENTICATOR:
            return pos + 2 if attr_length == 18 else -1
        if attr_length < 2:
            return -1
        pos += attr_length
    return -1


def message_authenticator_ok(packet: Packet, secret: bytes, *, accounting: bool = False) -> bool:
    """RFC 3579 3.2: HMAC-MD5 (keyed by the secret) over the packet with the attribute zeroed.

    A Status-Server (like an Access-Request) is hashed with its Request
    Authenticator as sent: the client chose it at random. An Accounting-Request
    (`accounting`, RFC 5080 2.2.2) has its Message-Authenticator computed
    before its Request Authenticator, with that field zeroed as RFC 2866 zeroes
    it for its own hash, so the check zeroes it as well. False when the
    packet has no well-formed Message-Authenticator.
    """
    raw = packet.raw
    offset = _message_authenticator_offset(raw)
    if offset < 0:
        return False
    authenticator = ZERO_AUTHENTICATOR if accounting else raw[4:20]
    zeroed = raw[:4] + authenticator + raw[20:offset] + ZERO_AUTHENTICATOR + raw[offset + 16 :]
    expected = hmac.digest(secret, zeroed, "md5")
    return hmac.compare_digest(expected, raw[offset : offset + 16])


def proxy_states(packet: Packet) -> bytes:
    """The request's Proxy-State attributes, encoded, in their order.

    RFC 2865 5.33 / RFC 2866 5: a server copies them unmodified and in order
    into its response; a RADIUS proxy in front of the collector matches its
    answers by them. Empty (and no scan) for the usual request without one.
    """
    if PROXY_STATE not in packet.attrs:
        return b""
    raw = packet.raw
    found = []
    pos, length = HEADER_LENGTH, len(raw)
    while pos < length:
        end = pos + raw[pos + 1]  # decode() has checked every attribute's framing
        if raw[pos] == PROXY_STATE:
            found.append(raw[pos:end])
        pos = end
    return b"".join(found)


def encode_attribute(number: int, value: bytes) -> bytes:
    """One attribute TLV; values longer than 253 bytes are an error."""
    if len(value) > 253:
        raise ValueError("attribute value longer than 253 bytes")
    return bytes((number, len(value) + 2)) + value


def encode_vsa(vendor: int, vendor_type: int, value: bytes) -> bytes:
    """One Vendor-Specific attribute holding one sub-attribute."""
    sub = bytes((vendor_type, len(value) + 2)) + value
    return encode_attribute(VENDOR_SPECIFIC, vendor.to_bytes(4, "big") + sub)


def integer(value: int) -> bytes:
    """A RADIUS integer value (4 octets, network order)."""
    return struct.pack("!I", value)


def encode_accounting_request(identifier: int, attributes: bytes, secret: bytes) -> bytes:
    """A complete Accounting-Request with its Request Authenticator."""
    length = HEADER_LENGTH + len(attributes)
    header = bytes((ACCOUNTING_REQUEST, identifier)) + length.to_bytes(2, "big")
    authenticator = hashlib.md5(header + ZERO_AUTHENTICATOR + attributes + secret).digest()  # noqa: S324
    return header + authenticator + attributes


def encode_response(
    code: int,
    identifier: int,
    request_authenticator: bytes,
    secret: bytes,
    attributes: bytes = b"",
    with_message_authenticator: bool = False,
) -> bytes:
    """A response with its Response Authenticator (RFC 2865 3 / RFC 2866 4.2).

    With `with_message_authenticator`, a Message-Authenticator is appended and
    computed first, over the packet carrying the request authenticator, as
    RFC 3579 3.2 requires for responses.
    """
    if with_message_authenticator:
        attributes = attributes + bytes((MESSAGE_AUTHENTICATOR, 18)) + ZERO_AUTHENTICATOR
    length = HEADER_LENGTH + len(attributes)
    header = bytes((code, identifier)) + length.to_bytes(2, "big")
    if with_message_authenticator:
        mac = hmac.digest(secret, header + request_authenticator + attributes, "md5")
        attributes = attributes[:-16] + mac
    authenticator = hashlib.md5(header + request_authenticator + attributes + secret).digest()  # noqa: S324
    return header + authenticator + attributes


def encode_status_server(identifier: int, authenticator: bytes, secret: bytes) -> bytes:
    """A Status-Server request with a Message-Authenticator (RFC 5997)."""
    attributes = bytes((MESSAGE_AUTHENTICATOR, 18)) + ZERO_AUTHENTICATOR
    length = HEADER_LENGTH + len(attributes)
    header = bytes((STATUS_SERVER, identifier)) + length.to_bytes(2, "big")
    mac = hmac.digest(secret, header + authenticator + attributes, "md5")
    return header + authenticator + attributes[:-16] + mac


def response_ok(response: bytes, request_authenticator: bytes, secret: bytes) -> bool:
    """Verify a response's authenticator against the request it answers (for clients and tests)."""
    if len(response) < HEADER_LENGTH:
        return False
    length = int.from_bytes(response[2:4], "big")
    if length < HEADER_LENGTH or length > len(response):
        return False
    expected = hashlib.md5(  # noqa: S324
        response[:4] + request_authenticator + response[20:length] + secret
    ).digest()
    return hmac.compare_digest(expected, response[4:20])
