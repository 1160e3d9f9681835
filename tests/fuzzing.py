"""Seeds and structure-aware mutators for fuzzing the decoders of network input.

Random bytes stop at the first length check. These mutators start from valid
input of every flavour the daemon reads (Cisco, FreeSWITCH, generic and
Kamailio RADIUS accounting; SIP call flows bare and in HEPv1/v2/v3; the
mod_json_cdr documents under tests/data/json in each of its encodings) and
damage it the way a broken or hostile sender would, while keeping enough of
its structure for the damage to reach the vendor profiles, the SIP header
reader and the CDR document reader: attribute values replaced by
near-miss times, numbers and integers, chunks retyped or resized, headers
folded, duplicated or given odd URIs, document fields given the wrong JSON
type. Each mutator draws from a `random.Random`, so that hypothesis (through
`st.randoms()`) can shrink what it finds and the daemon tests can replay a
fixed batch from a seed.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector import traffic
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.receivers.sip.hep import (
    CHUNK_AUTH_KEY,
    CHUNK_COMPRESSED_PAYLOAD,
    CHUNK_PAYLOAD,
    decode_hep,
    encode_chunks,
    encode_hep12,
)
from tests.test_durability import kamailio_packet
from tests.test_json_cdr import form_base64, form_urlencoded, fs_url_encode
from tests.test_sip_receiver import Call, answered, busy, cancelled, hep, no_answer

DATA = Path(__file__).parent / "data"

# --- shared byte-level damage ----------------------------------------------


def flip_bytes(rng: random.Random, data: bytes, start: int = 0, end: int | None = None) -> bytes:
    """`data` with one to three bytes in [start, end) changed (each to another value)."""
    stop = len(data) if end is None else min(end, len(data))
    if stop <= start:
        return data
    damaged = bytearray(data)
    for position in rng.sample(range(start, stop), min(stop - start, rng.randint(1, 3))):
        damaged[position] ^= rng.randint(1, 255)
    return bytes(damaged)


def truncate(rng: random.Random, data: bytes) -> bytes:
    """`data` cut short (never to nothing)."""
    return data[: rng.randrange(1, len(data))] if len(data) > 1 else data


def splice(rng: random.Random, data: bytes, insert: bytes) -> bytes:
    """`insert` put somewhere into `data`."""
    at = rng.randint(0, len(data))
    return data[:at] + insert + data[at:]


def maybe_damage(rng: random.Random, data: bytes, roll: float) -> bytes:
    """`data` with bytes changed (roll below 0.15) or cut short (below 0.25), else as it is."""
    if roll < 0.15:
        return flip_bytes(rng, data)
    if roll < 0.25:
        return truncate(rng, data)
    return data


def junk(rng: random.Random, alphabet: bytes = b"", size: int = 24) -> bytes:
    """A few random bytes, from `alphabet` when one is given."""
    length = rng.randint(0, size)
    if alphabet:
        return bytes(rng.choice(alphabet) for _ in range(length))
    return rng.randbytes(length)


# --- text that looks like what the decoders parse ---------------------------

_DIGITS = "0123456789"
#: digits of other scripts and widths: isdigit() says yes to each, int() to the
#: first five (decimal digits) and not to the others (superscripts, circled)
_OTHER_DIGITS = "\u0663\u06f5\u0967\uff13\U0001d7d8\u00b2\u2075\u2468"


def digit_run(rng: random.Random, longest: int = 24) -> str:
    """Digits, sometimes very many, sometimes with a foreign one in them."""
    length = rng.choice((0, 1, 3, 7, 10, 13, 15, 16, 20, rng.randint(0, longest)))
    text = "".join(rng.choice(_DIGITS) for _ in range(length))
    if text and rng.random() < 0.15:
        text = splice(rng, text.encode(), rng.choice(_OTHER_DIGITS).encode()).decode()
    return text


def number_text(rng: random.Random) -> str:
    """A phone number as switches write it, or a near miss of one."""
    digits = digit_run(rng)
    form = rng.randrange(9)
    if form == 0:
        return "+" + digits
    if form == 1:
        return "00" + digits
    if form == 2:
        return f"sip:+{digits}@gw.example.net;user=phone"
    if form == 3:
        return f'"Name" <tel:{digits};phone-context=+{digit_run(rng, 6)}>'
    if form == 4:
        return "+" + " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    if form == 5:
        return rng.choice(("anonymous", "unknown", "", "+", "*31#", "%2B49", "sip:@", "<>"))
    return digits


_ZONES = (
    "UTC", "GMT", "CET", "CEST", "EST", "EDT", "BST", "IST", "AST", "CST", "PST", "MSK",
    "GMT+5:30", "UTC-3", "UTC+0530", "GMT+14", "UTC-12:00", "GMT+15", "UTC+5:99", "XYZ", "gmt",
)  # fmt: skip
_MONTHS = ("Jan", "Feb", "Nov", "Dec", "nov", "Foo", "Sept", "")
_WEEKDAYS = ("Mon", "Sun", "Xyz", "")


def cisco_time(rng: random.Random) -> str:
    """Cisco's "HH:MM:SS.mmm ZONE Www Mmm DD YYYY", sometimes flagged, often slightly wrong."""
    flag = rng.choice(("", "", "*", ".", "*.", " *"))
    clock = ":".join(f"{rng.choice((0, 9, 23, 24, 59, 60, 99)):02d}" for _ in range(3))
    clock += "." + rng.choice(("000", "999", "5", "1234", "", "x1"))
    parts = [
        clock,
        rng.choice(_ZONES),
        rng.choice(_WEEKDAYS),
        rng.choice(_MONTHS),
        str(rng.choice((0, 1, 28, 29, 30, 31, 32, 99))),
        str(rng.choice((1, 1969, 1970, 2026, 9999, 10000, 99999))),
    ]
    if rng.random() < 0.2:
        del parts[rng.randrange(len(parts))]
    text = flag + " ".join(parts)
    return foreign_digit(rng, text.encode()).decode() if rng.random() < 0.2 else text


def freeswitch_time(rng: random.Random) -> str:
    """mod_radius_cdr's "2026-11-30T12:00:01.123456+0100", with its truncated offsets and worse."""
    year = rng.choice((1, 1970, 2026, 9999))
    month, day = rng.choice((1, 2, 12, 13, 0)), rng.choice((1, 28, 29, 31, 32))
    hour, minute = rng.choice((0, 23, 24)), rng.choice((0, 59, 60))
    fraction = rng.choice(("", ".123456", ".1", ".1234567"))
    offset = rng.choice(
        ("+0000", "+0100", "+0518", "+0527", "-03-1", "-04-2", "+051800", "-03-1800", "+99",
         "-2459", "+2400", "+0560", "-00-9", "", "Z", "+14", "-1200")
    )  # fmt: skip
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:07{fraction}{offset}"


def integer_value(rng: random.Random) -> bytes:
    """A RADIUS integer: an edge value, a random one, or one of the wrong size."""
    value = rng.choice((0, 1, 2, 3, 7, 8, 15, 16, 127, 128, 487, 2**31 - 1, 2**31, 2**32 - 1))
    if rng.random() < 0.3:
        value = rng.getrandbits(32)
    encoded = value.to_bytes(4, "big")
    shape = rng.randrange(6)
    if shape == 0:
        return encoded[:3]
    if shape == 1:
        return encoded + b"\x00"
    return encoded


def decimal_stamp(rng: random.Random) -> bytes:
    """Event-Timestamp as decimal text (Kamailio's rad_time_mode=1), or a near miss."""
    seconds = rng.choice(("1796040000", "0", "4294967295", "4294967296", "99999999999", ""))
    fraction = rng.choice(("", ".5", ".123456", ".1234567891", ".", ".x"))
    return f"{rng.choice(('', ' '))}{seconds}{fraction}".encode()


# --- RADIUS -----------------------------------------------------------------

#: a top-level attribute: its type and its value (a VSA's value holds vendor id and sub-TLV)
Attribute = tuple[int, bytes]


def radius_seeds(now: datetime | None = None, seed: int = 8) -> list[tuple[str, bytes]]:
    """(flavour, attributes) of valid accounting requests of every vendor flavour, Start and Stop."""
    calls = traffic.make_calls(3, seed=seed, now=now or datetime(2026, 11, 30, 12, tzinfo=UTC))
    seeds: list[tuple[str, bytes]] = []
    for call in calls:
        seeds += [
            ("cisco", traffic.cisco_attributes(call, d.STATUS_START)),
            ("cisco", traffic.cisco_attributes(call)),
            ("cisco", traffic.cisco_attributes(call, clock_flag="*")),
            ("freeswitch", traffic.freeswitch_attributes(call, d.STATUS_START)),
            ("freeswitch", traffic.freeswitch_attributes(call)),
            ("generic", traffic.generic_attributes(call, d.STATUS_START)),
            ("generic", traffic.generic_attributes(call)),
        ]
    when = int((now or datetime(2026, 11, 30, 12, tzinfo=UTC)).timestamp())
    for index, status in enumerate((d.STATUS_START, d.STATUS_STOP, d.STATUS_FAILED)):
        packet = kamailio_packet(
            status, f"kam-{seed}-{index}@pbx", when, code=486 if index == 2 else 200
        )
        seeds.append(("kamailio", packet))
    return seeds


def split_attributes(blob: bytes) -> list[Attribute]:
    """Top-level (type, value) pairs of an attribute blob, up to where its framing breaks."""
    attributes = []
    pos = 0
    while pos + 2 <= len(blob) and blob[pos + 1] >= 2:
        length = blob[pos + 1]
        attributes.append((blob[pos], blob[pos + 2 : pos + length]))
        pos += length
    return attributes


def join_attributes(attributes: Sequence[Attribute]) -> bytes:
    """Encode attributes, values cut to the 253 octets one can hold."""
    return b"".join(codec.encode_attribute(number, value[:253]) for number, value in attributes)


_CISCO_TIMES = {d.H323_SETUP_TIME, d.H323_CONNECT_TIME, d.H323_DISCONNECT_TIME}
_FS_TIMES = {d.FS_CALLSTARTDATE, d.FS_CALLANSWERDATE, d.FS_CALLENDDATE, d.FS_CALLTRANSFERDATE}
_INTEGER_ATTRIBUTES = {
    d.ACCT_STATUS_TYPE, d.ACCT_SESSION_TIME, d.ACCT_DELAY_TIME, d.EVENT_TIMESTAMP,
    d.ACCT_TERMINATE_CAUSE, d.SIP_METHOD, d.SIP_RESPONSE_CODE, d.SERVICE_TYPE,
}  # fmt: skip
_NUMBER_ATTRIBUTES = {d.CALLED_STATION_ID, d.CALLING_STATION_ID, d.USER_NAME}
_CISCO_NAMES = {
    d.H323_SETUP_TIME: "h323-setup-time", d.H323_CONNECT_TIME: "h323-connect-time",
    d.H323_DISCONNECT_TIME: "h323-disconnect-time", d.H323_DISCONNECT_CAUSE: "h323-disconnect-cause",
    d.H323_CALL_ORIGIN: "h323-call-origin", d.H323_CONF_ID: "h323-conf-id",
    d.H323_REMOTE_ADDRESS: "h323-remote-address", d.H323_CALL_TYPE: "h323-call-type",
}  # fmt: skip
_AVPAIRS = (
    b"session-protocol=sipv2", b"account-code=", b"accountcode=4930123456789", b"call-id=x@h",
    b"h323-foo", b"gw-rxd-cdn=ton:0,npi:1,#:4930123456789", b"account-code", b"xccount=1",
)  # fmt: skip
#: attributes worth inserting: every one a profile reads
_INSERTABLE: tuple[tuple[int, int], ...] = (
    *(
        (0, number)
        for number in (1, 25, 30, 31, 40, 41, 44, 46, 49, 55, 80, 101, 102, 103, 104, 105)
    ),
    *((d.CISCO, vendor_type) for vendor_type in (1, *range(23, 36))),
    *((d.FREESWITCH, vendor_type) for vendor_type in (1, 2, 4, 5, 13, 15, 20, 21, 22, 23, 24, 25)),
)


def attribute_value(rng: random.Random, vendor: int, number: int) -> bytes:
    """A value for one attribute: the kind it should hold, or a near miss, or noise."""
    roll = rng.random()
    if roll < 0.1:
        return junk(rng)
    if roll < 0.2:
        return integer_value(rng)
    if roll < 0.3:
        return number_text(rng).encode()
    if vendor == d.CISCO:
        if number == d.CISCO_AVPAIR:
            return rng.choice(_AVPAIRS) + junk(rng, b"=:0123456789abc ", 8)
        name = _CISCO_NAMES.get(number, "h323-x")
        if number in _CISCO_TIMES:
            text = cisco_time(rng)
        elif number == d.H323_DISCONNECT_CAUSE:
            text = rng.choice(("10", "11", "7F", "80", "ff", "-1", "", "zz", "1" * 30))
        elif number == d.H323_CALL_ORIGIN:
            text = rng.choice(
                ("originate", "answer", "callback", "Originate ", "4930123456789", "")
            )
        else:
            text = digit_run(rng) + " " + digit_run(rng)
        return (
            f"{rng.choice((name, name.upper(), ''))}{rng.choice(('=', ' = ', ''))}{text}".encode()
        )
    if vendor == d.FREESWITCH:
        if number in _FS_TIMES:
            return freeswitch_time(rng).encode()
        if number == d.FS_DIRECTION:
            return rng.choice((b"inbound", b"outbound", b" Inbound ", b""))
        if number in (d.FS_HANGUPCAUSE, d.FS_BILLUSEC):
            return integer_value(rng)
        return number_text(rng).encode()
    if number == d.EVENT_TIMESTAMP and rng.random() < 0.5:
        return decimal_stamp(rng)
    if number in _INTEGER_ATTRIBUTES:
        if number in (d.SIP_METHOD, d.SIP_RESPONSE_CODE) and rng.random() < 0.4:
            return digit_run(rng, 12).encode()
        return integer_value(rng)
    if number in _NUMBER_ATTRIBUTES:
        return number_text(rng).encode()
    if number == d.ACCT_SESSION_ID:
        return rng.choice((b"", b" ", b"\x00", b"s" * 253, digit_run(rng).encode()))
    return junk(rng, b"abc0123456789|;=-@.: ")


def vsa(vendor: int, vendor_type: int, value: bytes) -> bytes:
    """The value of one Vendor-Specific attribute holding one sub-attribute."""
    return vendor.to_bytes(4, "big") + bytes((vendor_type, min(len(value), 247) + 2)) + value[:247]


def foreign_digit(rng: random.Random, value: bytes) -> bytes:
    """`value` with one of its ASCII digits written in another script or width (UTF-8).

    `str.isdigit()` is true for each of them, `int()` takes some and not others.
    """
    places = [i for i, byte in enumerate(value) if 0x30 <= byte <= 0x39]
    if not places:
        return value
    at = rng.choice(places)
    return value[:at] + rng.choice(_OTHER_DIGITS).encode() + value[at + 1 :]


def _mutate_attribute(rng: random.Random, attribute: Attribute) -> Attribute:
    number, value = attribute
    if number == d.VENDOR_SPECIFIC and len(value) >= 6:
        vendor, vendor_type = int.from_bytes(value[:4], "big"), value[4]
        roll = rng.random()
        if roll < 0.5:
            return number, vsa(vendor, vendor_type, attribute_value(rng, vendor, vendor_type))
        if roll < 0.65:
            return number, vsa(vendor, vendor_type, foreign_digit(rng, value[6:]))
        if roll < 0.8:
            # a sub-attribute length that disagrees with the VSA: the slow path
            return number, value[:5] + bytes((rng.randrange(256),)) + value[6:]
        return number, flip_bytes(rng, value) if rng.random() < 0.5 else truncate(rng, value)
    roll = rng.random()
    if roll < 0.6:
        return number, attribute_value(rng, 0, number)
    if roll < 0.7:
        return number, foreign_digit(rng, value)
    if roll < 0.85:
        return number, flip_bytes(rng, value) if value else junk(rng)
    return number, truncate(rng, value) + junk(rng, b"0123456789", 8)


def mutate_attributes(rng: random.Random, blob: bytes) -> bytes:
    """Valid accounting attributes with one to four structural changes, re-encoded."""
    attributes = split_attributes(blob)
    for _ in range(rng.randint(1, 4)):
        operation = rng.randrange(10)
        index = rng.randrange(len(attributes)) if attributes else 0
        if operation < 5 and attributes:
            attributes[index] = _mutate_attribute(rng, attributes[index])
        elif operation == 5 and attributes:
            del attributes[index]
        elif operation == 6 and attributes:
            attributes.insert(rng.randint(0, len(attributes)), attributes[index])
        elif operation == 7:
            vendor, number = rng.choice(_INSERTABLE)
            value = attribute_value(rng, vendor, number)
            if vendor:
                attributes.insert(
                    rng.randint(0, len(attributes)), (d.VENDOR_SPECIFIC, vsa(vendor, number, value))
                )
            else:
                attributes.insert(rng.randint(0, len(attributes)), (number, value))
        elif operation == 8:
            status = rng.choice((1, 2, 3, 7, 8, 15, 0, 9, 2**31))
            attributes = [a for a in attributes if a[0] != d.ACCT_STATUS_TYPE]
            attributes.insert(0, (d.ACCT_STATUS_TYPE, status.to_bytes(4, "big")))
        else:
            rng.shuffle(attributes)
    return join_attributes(attributes)


def damage_after_signing(rng: random.Random, packet: bytes) -> bytes:
    """A signed request changed inside what its authenticator covers.

    Bytes changed within the declared length, the length field moved (longer,
    with bytes to cover, or shorter), the authenticator replaced, an
    attribute slipped in: each must fail the Request Authenticator or the
    framing. (Bytes appended past the declared length are padding, ignored
    by RFC 2865, so they are not damage.)
    """
    length = int.from_bytes(packet[2:4], "big")
    operation = rng.randrange(7)
    if operation == 0:
        return flip_bytes(rng, packet, 4, length)  # authenticator and attributes
    if operation == 1:
        return flip_bytes(rng, packet, codec.HEADER_LENGTH, length)
    if operation == 2:
        return truncate(rng, packet)
    if operation == 3:
        extra = junk(rng, size=40) or b"\x01\x03x"
        longer = length + len(extra)
        return packet[:2] + longer.to_bytes(2, "big") + packet[4:length] + extra
    if operation == 4:
        shorter = rng.randint(codec.HEADER_LENGTH, max(codec.HEADER_LENGTH, length - 1))
        return packet[:2] + shorter.to_bytes(2, "big") + packet[4:]
    if operation == 5:
        return packet[:4] + rng.choice((bytes(16), rng.randbytes(16))) + packet[20:]
    attribute = codec.encode_attribute(d.CALLED_STATION_ID, number_text(rng).encode()[:253])
    body = (
        splice(rng, packet[20:length], attribute)
        if rng.random() < 0.5
        else packet[20:length] + attribute
    )
    return packet[:2] + (20 + len(body)).to_bytes(2, "big") + packet[4:20] + body


# --- SIP ----------------------------------------------------------------------

#: callees of the call flows the SIP seeds are cut from (fiction ranges)
SEED_CALLEES = ("+442079460111", "+442079460222", "+442079460333", "+442079460444")


def sip_flows(tag: str = "seed") -> list[list[tuple[float, bytes]]]:
    """Call flows of every ending (answered, callee hangs up, busy, no answer, cancelled)."""
    return [
        answered(Call(f"{tag}-answered@pbx", SEED_CALLEES[0]), 20.5),
        answered(Call(f"{tag}-callee-bye@pbx", SEED_CALLEES[1]), 3.0, callee_hangs_up=True),
        busy(Call(f"{tag}-busy@pbx", SEED_CALLEES[2])),
        no_answer(Call(f"{tag}-no-answer@pbx", SEED_CALLEES[3])),
        cancelled(Call(f"{tag}-cancelled@pbx", SEED_CALLEES[0])),
    ]


def sip_messages() -> list[bytes]:
    """Every message of the seed flows, and the captured messages under tests/data/sip."""
    messages = [message for flow in sip_flows() for _offset, message in flow]
    messages += [path.read_bytes() for path in sorted((DATA / "sip").glob("*.sip"))]
    return messages


_HEADER_NAMES = (
    "Call-ID", "i", "From", "f", "To", "t", "CSeq", "Reason", "P-Asserted-Identity",
    "Remote-Party-ID", "X-CID", "Via", "v", "Contact", "Content-Length",
)  # fmt: skip
_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "PRACK", "invite", "INV1TE", "X" * 40, "")


def sip_uri(rng: random.Random) -> str:
    """A SIP or tel URI, or a near miss of one."""
    user = number_text(rng).replace("sip:", "").replace("@", "").replace('"', "")
    form = rng.randrange(8)
    if form == 0:
        return f"tel:{digit_run(rng)};phone-context={rng.choice(('+1-212', '+', 'example.com', '%2B44', '+4.9'))}"
    if form == 1:
        return f"sip:{user};npdi;rn=+{digit_run(rng)}@h;user=phone"
    if form == 2:
        return f"sips:{user}:secret@h"
    if form == 3:
        return rng.choice(("sip:h", "sip:@h", "tel:", "mailto:x@y", "sip:%zz@h", "sip:%2B%3@h", ""))
    return f"sip:{user}@{rng.choice(('gw.example.net', '192.0.2.1', '[2001:db8::1]', ''))}"


def header_value(rng: random.Random, name: str) -> str:
    """A value for one header: the shape it should have, or a near miss."""
    lowered = name.lower()
    if lowered in ("from", "f", "to", "t", "p-asserted-identity", "remote-party-id", "contact"):
        display = rng.choice(("", '"Alice" ', '"A \\" <b>, c" ', "Bob ", '"unterminated '))
        params = rng.choice(("", ";tag=1928", "; tag = 77b", ";TAG=x;user=phone", ";tag=", ";tag"))
        entry = (
            f"{display}<{sip_uri(rng)}>{params}" if rng.random() < 0.7 else sip_uri(rng) + params
        )
        if rng.random() < 0.3:
            entry += ", " + f"<{sip_uri(rng)}>"
        return entry
    if lowered == "cseq":
        number = rng.choice(("1", "0", "2147483648", "9" * 11, "-1", "", "\uff11", "1 2"))
        return f"{number} {rng.choice(_METHODS)}"
    if lowered == "reason":
        cause = rng.choice(("16", "0", "127", "128", "999", "", "abc", "\u0663", "17 "))
        text = rng.choice(("", ';text="User busy"', ';text="a, b; c"', ';text="open'))
        protocol = rng.choice(("Q.850", "q.850", "SIP", "Q.850 "))
        value = f"{protocol};cause={cause}{text}"
        return value + (", SIP;cause=487" if rng.random() < 0.3 else "")
    if lowered in ("via", "v"):
        return ", ".join("SIP/2.0/UDP 192.0.2.20:5060;branch=z9" for _ in range(rng.randint(0, 4)))
    if lowered in ("call-id", "i"):
        return rng.choice(("", "x@h", digit_run(rng) + "@h", "a" * 300, " "))
    return junk(rng, b'abc0123456789;=<>@:," \t').decode("latin-1")


def mutate_sip(rng: random.Random, message: bytes) -> bytes:
    """A SIP message with one to four header-level changes, and sometimes byte damage."""
    # undecodable bytes come back as they were; new text goes out as UTF-8
    text = message.decode("utf-8", "surrogateescape")
    separator = "\r\n" if "\r\n" in text else "\n"
    head, blank, body = text.partition(separator * 2)
    lines = head.split(separator)
    for _ in range(rng.randint(1, 4)):
        operation = rng.randrange(10)
        index = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
        line = lines[index]
        name, colon, _value = line.partition(":")
        if operation < 3 and colon:
            lines[index] = f"{name}:{rng.choice(('', ' ', '  '))}{header_value(rng, name.strip())}"
        elif operation == 3 and colon:
            variant = rng.choice((name.upper(), name.lower(), name + " ", name + "\t", name[:1]))
            lines[index] = variant + ":" + _value
        elif operation == 4 and len(lines) > 1:
            del lines[index]
        elif operation == 5:
            lines.insert(rng.randint(1, len(lines)), line)
        elif operation == 6:
            name = rng.choice(_HEADER_NAMES)
            lines.insert(rng.randint(1, len(lines)), f"{name}: {header_value(rng, name)}")
        elif operation == 7 and " " in line:
            cut = rng.choice([i for i, c in enumerate(line) if c in " ;,"])
            lines[index] = line[:cut] + separator + rng.choice((" ", "\t", "  ")) + line[cut:]
        elif operation == 8:
            if rng.random() < 0.5:
                lines[0] = (
                    f"{rng.choice(_METHODS)} {sip_uri(rng)} {rng.choice(('SIP/2.0', 'sip/2.0', 'SIP/3.0', ''))}"
                )
            else:
                code = rng.choice(
                    ("200", "486", "100", "699", "700", "099", "1000", "2x0", "\u0662\u0660\u0660")
                )
                lines[0] = f"SIP/2.0 {code} {rng.choice(('OK', '', 'Busy Here'))}"
        else:
            separator = rng.choice(("\r\n", "\n"))
    text = separator.join(lines) + (separator * 2 if blank else "") + body
    roll = rng.random()
    data = maybe_damage(rng, text.encode("utf-8", "surrogateescape"), roll)
    if 0.25 <= roll < 0.3:
        data = rng.choice((b"\r\n\r\n", b"\n", b"\r\n")) + data
    return data


# --- HEP ----------------------------------------------------------------------


def hep12(payload: bytes, when: datetime, version: int) -> bytes:
    """One HEPv1 or HEPv2 packet as an older agent sends it (the fields `hep` fills in)."""
    return encode_hep12(decode_hep(hep(payload, when)), version=version)


def wrap(rng: random.Random, message: bytes, when: datetime, auth_key: str | None = None) -> bytes:
    """`message` as a capture agent may send it: bare, or in HEPv1, v2 or v3 (maybe compressed)."""
    form = rng.randrange(6)
    if form == 0:
        return message
    if form in (1, 2):
        return hep12(message, when, form)
    return hep(message, when, compress=form == 5, auth_key=auth_key)


def split_chunks(packet: bytes) -> list[tuple[int, int, bytes]]:
    """(vendor, type, body) of a HEPv3 packet's chunks, up to where its framing breaks."""
    chunks = []
    offset = 6
    while offset + 6 <= len(packet):
        length = int.from_bytes(packet[offset + 4 : offset + 6], "big")
        if length < 6:
            break
        vendor = int.from_bytes(packet[offset : offset + 2], "big")
        chunk_type = int.from_bytes(packet[offset + 2 : offset + 4], "big")
        chunks.append((vendor, chunk_type, packet[offset + 6 : offset + length]))
        offset += length
    return chunks


def mutate_hep3(rng: random.Random, packet: bytes) -> bytes:
    """A HEPv3 packet with its chunks changed, re-framed, then sometimes damaged as bytes."""
    chunks = split_chunks(packet) or [(0, CHUNK_PAYLOAD, packet[6:])]
    for _ in range(rng.randint(1, 3)):
        operation = rng.randrange(9)
        index = rng.randrange(len(chunks))
        vendor, chunk_type, body = chunks[index]
        if operation == 0 and len(chunks) > 1:
            del chunks[index]
        elif operation == 1:
            chunks.insert(rng.randint(0, len(chunks)), chunks[index])
        elif operation == 2:
            chunks[index] = (vendor, rng.choice((*range(19), 0x20, 0xFFFF)), body)
        elif operation == 3:
            chunks[index] = (rng.choice((0, 1, 0x8000, 0xFFFF)), chunk_type, body)
        elif operation == 4:
            chunks[index] = (
                vendor,
                chunk_type,
                body[: rng.randint(0, len(body))] + junk(rng, size=6),
            )
        elif operation == 5 and chunk_type in (CHUNK_PAYLOAD, CHUNK_COMPRESSED_PAYLOAD):
            try:
                payload = zlib.decompress(body) if chunk_type == CHUNK_COMPRESSED_PAYLOAD else body
            except zlib.error:
                continue  # damaged by an earlier change
            payload = mutate_sip(rng, payload)
            if chunk_type == CHUNK_COMPRESSED_PAYLOAD:
                chunks[index] = (vendor, chunk_type, zlib.compress(payload))
            else:
                chunks[index] = (vendor, chunk_type, payload)
        elif operation == 6 and chunk_type == CHUNK_COMPRESSED_PAYLOAD:
            chunks[index] = (vendor, chunk_type, rng.choice((truncate, flip_bytes))(rng, body))
        elif operation == 7:
            bomb = zlib.compress(bytes(rng.choice((1000, 300_000))))
            chunks.append((0, CHUNK_COMPRESSED_PAYLOAD, bomb))
        else:
            chunks.append((0, CHUNK_AUTH_KEY, junk(rng, size=12)))
    roll = rng.random()
    data = maybe_damage(rng, encode_chunks(chunks), roll)
    if 0.25 <= roll < 0.35:
        # a chunk length field that runs past the packet or stops short
        offset = 6
        for _ in range(rng.randrange(len(chunks))):
            offset += int.from_bytes(data[offset + 4 : offset + 6], "big")
        length = rng.choice((0, 5, 6, 7, 0xFFFF, len(data) - offset + 1))
        data = data[: offset + 4] + length.to_bytes(2, "big") + data[offset + 6 :]
    elif 0.35 <= roll < 0.45:
        length = rng.choice((0, 6, len(data) - 1, len(data) + 1, 0xFFFF))
        data = data[:4] + length.to_bytes(2, "big") + data[6:]
    return data


def mutate_hep12(rng: random.Random, packet: bytes) -> bytes:
    """A HEPv1/v2 packet with its header fields or payload changed."""
    operation = rng.randrange(6)
    if operation == 0:
        return bytes((rng.choice((1, 2)),)) + packet[1:]  # the other version's layout
    if operation == 1:
        return packet[:2] + bytes((rng.choice((2, 10, 0, 255)),)) + packet[3:]
    if operation == 2:
        return packet[: rng.choice((1, 7, 8, 15, 16, 19, 20, 28, 31, 32))]
    if operation == 3:
        header = 28 if packet[:1] == b"\x02" else 16  # IPv4, with the HEPv2 time header or without
        return packet[:header] + mutate_sip(rng, packet[header:])
    return flip_bytes(rng, packet, 0, 32)


def sip_datagram(
    rng: random.Random, message: bytes, when: datetime, auth_key: str | None = None
) -> bytes:
    """A mutated capture of `message`: SIP changed, then wrapped, then its envelope changed."""
    if rng.random() < 0.6:
        message = mutate_sip(rng, message)
    data = wrap(rng, message, when, auth_key)
    if data[:4] == b"HEP3" and rng.random() < 0.6:
        return mutate_hep3(rng, data)
    if data[:1] in (b"\x01", b"\x02") and rng.random() < 0.6:
        return mutate_hep12(rng, data)
    return data


# --- JSON CDR -------------------------------------------------------------------


def json_seeds() -> list[dict[str, Any]]:
    """The mod_json_cdr documents under tests/data/json, and one of them without `variables`."""
    documents: list[dict[str, Any]] = [
        json.loads(path.read_text()) for path in sorted((DATA / "json").glob("*.json"))
    ]
    bare = copy.deepcopy(documents[0])
    del bare["variables"]
    return [*documents, bare]


_VARIABLES = (
    "uuid", "start_epoch", "start_uepoch", "answer_epoch", "answer_uepoch", "end_epoch",
    "end_uepoch", "billsec", "billmsec", "billusec", "hangup_cause", "hangup_cause_q850",
    "sip_term_status", "caller_id_number", "effective_caller_id_number", "ani",
    "destination_number", "callee_id_number", "sip_req_user", "sip_to_user", "progressmsec",
    "progress_mediamsec", "answermsec", "direction", "accountcode", "originating_leg_uuid",
    "originator",
)  # fmt: skip
_TIMES = ("created_time", "answered_time", "hangup_time", "progress_time", "progress_media_time")


def json_value(rng: random.Random) -> Any:
    """A JSON value of any type, leaning to what the reader has to reject or convert."""
    kind = rng.randrange(12)
    if kind == 0:
        return digit_run(rng, 30)
    if kind == 1:
        return number_text(rng)
    if kind == 2:
        return rng.choice((0, 1, -1, 2**32, 2**63, 10**30, 1796040000, 1796040000123456))
    if kind == 3:
        return rng.choice((0.5, -0.0, 1e308, 1796040000.5, float("inf"), float("nan"), 1e16))
    if kind == 4:
        return rng.choice((True, False, None))
    if kind == 5:
        return rng.choice(([], {}, [digit_run(rng)], {"a": digit_run(rng)}))
    if kind == 6:
        return rng.choice(
            ("NORMAL_CLEARING", "USER_BUSY", "ORIGINATOR_CANCEL", "normal_clearing", "X")
        )
    if kind == 7:
        return rng.choice(
            ("%2B4930123456789", "%", "%zz", "%E2%82", "%00", "a%22b\\", "\u0663\u0664")
        )
    if kind == 8:
        return rng.choice(("", " ", "\x00\x1f", "x" * 200, "\ud800", "\ufeff1"))
    if kind == 9:
        return "9" * rng.choice((21, 4301, 5000))
    if kind == 10:
        return rng.choice(("inbound", "outbound", "9b1f3a52-6c2d-4e8f-a0b7-3d5e7f9a1c24"))
    return junk(rng, b"0123456789 +-.eE").decode()


def numeric_value(rng: random.Random) -> Any:
    """What a time, duration, cause or index field might hold: digits as text or a JSON number."""
    kind = rng.randrange(4)
    if kind == 0:
        return digit_run(rng, 30)
    if kind == 1:
        # past int()'s 4300-digit limit, or just inside it
        return "9" * rng.choice((10, 21, 4300, 4301, 5000)) + rng.choice(("", "", "", " ", ".5"))
    if kind == 2:
        return rng.choice((0, 1, -1, 2**32, 2**63, 10**30, 1796040000, 1796040000123456))
    return rng.choice((0.5, -0.0, 1e308, 1796040000.5, float("inf"), float("nan"), 1e16))


def _containers(node: Any, found: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            _containers(value, found)
    elif isinstance(node, list):
        found.append(node)
        for value in node:
            _containers(value, found)
    return found


def mutate_document(rng: random.Random, document: dict[str, Any]) -> Any:
    """A copy of a mod_json_cdr document with one to four fields changed, added or removed."""
    root: Any = copy.deepcopy(document)
    for _ in range(rng.randint(1, 4)):
        operation = rng.randrange(9)
        containers = _containers(root, [])
        if not containers:
            break
        node = rng.choice(containers)
        if operation < 3 and node:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            node[key] = json_value(rng)
        elif operation == 3 and node:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            del node[key]
        elif operation == 4 and isinstance(root, dict):
            variables = root.get("variables")
            if isinstance(variables, dict):
                value = numeric_value(rng) if rng.random() < 0.5 else json_value(rng)
                variables[rng.choice(_VARIABLES)] = value
        elif operation in (5, 8) and isinstance(root, dict):
            flow = root.get("callflow")
            entry = flow[0] if isinstance(flow, list) and flow else flow
            if isinstance(entry, dict):
                times = entry.setdefault("times", {})
                if isinstance(times, dict):
                    times[rng.choice(_TIMES)] = numeric_value(rng)
                if rng.random() < 0.5:
                    entry["profile_index"] = numeric_value(rng)
                else:
                    entry[rng.choice(("caller_profile", "times"))] = json_value(rng)
        elif operation == 6 and isinstance(root, dict):
            flow = root.get("callflow")
            root["callflow"] = rng.choice(
                ([flow, flow], flow[0] if isinstance(flow, list) and flow else flow, [], {})
            )
        else:
            root = rng.choice((root, [root], json_value(rng)))
    return root


def encode_body(rng: random.Random, document: Any) -> tuple[bytes, str]:
    """A document as mod_json_cdr posts it (any of its encodings), with a Content-Type."""
    text = json.dumps(document)
    form = rng.randrange(5)
    if form == 0:
        body, content_type = text.encode(), "application/json"
    elif form == 1:
        body, content_type = form_urlencoded(text), "application/x-www-form-urlencoded"
    elif form == 2:
        body, content_type = form_base64(text), "application/x-www-form-base64-encoded"
    elif form == 3:
        body = b"x=1&cdr=" + fs_url_encode(base64.b64encode(text.encode())) + b"&y="
        content_type = "application/x-www-form-urlencoded"
    else:
        body, content_type = (
            text.encode(),
            rng.choice(("text/plain", "", "application/x-www-form-urlencoded")),
        )
    roll = rng.random()
    if roll < 0.1:
        body = flip_bytes(rng, body)
    elif roll < 0.2:
        body = truncate(rng, body)
    elif roll < 0.3:
        body = splice(rng, body, rng.choice((b'"', b"\\", b"%", b"%2", b"&cdr=", b"\x00", b"\xff")))
    return body, content_type


def json_post(rng: random.Random, documents: Sequence[dict[str, Any]]) -> tuple[bytes, str]:
    """A fuzzed POST body: a seed document changed, encoded, perhaps damaged."""
    document = rng.choice(documents)
    return encode_body(rng, mutate_document(rng, document) if rng.random() < 0.9 else document)


# --- what a stored row may hold -----------------------------------------------------

#: columns that hold keyed hashes (hex digests): digits there are no numbers
HASH_COLUMNS = frozenset({"called_hmac", "calling_hmac", "correlation", "call_id_hash"})
#: the longest digit run a stored label may hold (a billing prefix: country code and NDC)
MAX_STORED_DIGITS = 8
_DIGIT_RUNS = re.compile(r"\d+")
#: what called_masked may hold: E.164 or dial-string digits, the last ones as '*'
_MASKED = re.compile(r"\+?[0-9*#]*")


def digit_runs(data: bytes | str, shortest: int = 7) -> set[str]:
    """Every maximal run of ASCII digits of at least `shortest` digits in `data`."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    return {run for run in re.findall(r"[0-9]+", text) if len(run) >= shortest}


def stored_number_problems(
    table: str, rows: Sequence[dict[str, Any]], inputs: set[str], mask_digits: int = 3
) -> list[str]:
    """What in `rows` looks like a phone number kept from the input (column and reason, no value).

    Hash columns are skipped. `called_masked` must be a masked number whose
    last `mask_digits` characters are hidden: the digits it shows before the
    mask are the one long run a row may hold. Everywhere else a digit run is
    at most MAX_STORED_DIGITS long and never a whole digit run of the input
    (`inputs`, from `digit_runs`).
    """
    problems = []
    for row in rows:
        for column, value in row.items():
            if not isinstance(value, str) or column in HASH_COLUMNS:
                continue
            if column == "called_masked":
                shown = value.removeprefix("+").rstrip("*")
                hidden = len(value) - len(value.rstrip("*"))
                if not _MASKED.fullmatch(value) or hidden < min(mask_digits, len(shown) + hidden):
                    problems.append(f"{table}.{column}: not a masked number")
                continue
            for match in _DIGIT_RUNS.finditer(value):
                run = match.group()
                if len(run) > MAX_STORED_DIGITS:
                    problems.append(f"{table}.{column}: a run of {len(run)} digits")
                elif run in inputs:
                    problems.append(f"{table}.{column}: a whole digit run of the input")
    return problems
