"""The SIP test peers themselves: a real Kamailio and real SIPp calls.

Plain sockets of this test stand in for the daemon: a RADIUS accounting
responder (it answers with a valid Accounting-Response, RFC 2866, so
Kamailio does not retransmit) and a HEP collector. Calls of every scenario
go through one proxy at once, and the test checks what Kamailio reported:
RADIUS Start and Stop for answered calls, Failed for the others, and a HEPv3
copy of every SIP message it received and sent. It decodes RADIUS and HEP
minimally by itself on purpose: the daemon's codecs are not what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import struct
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from tests.daemon import free_port
from tests.peers.kamailio import (
    PROBE_CALL_ID_PREFIX,
    KamailioNotInstalled,
    KamailioProxy,
    kamailio_proxy,
)
from tests.peers.sipp import (
    DEFAULT_CALLEE,
    DEFAULT_CALLER,
    PlacedCalls,
    Scenario,
    SippNotInstalled,
    place_calls,
)

RADIUS_SECRET = "peer-test-secret"
HEP_AUTH_KEY = "peer-test-hep-key"

# RADIUS codes and attribute numbers (RFC 2865, RFC 2866, SIP accounting draft).
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
NAS_IP_ADDRESS = 4
SERVICE_TYPE = 6
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_SESSION_ID = 44
EVENT_TIMESTAMP = 55
SIP_METHOD = 101
SIP_RESPONSE_CODE = 102
SIP_TO_TAG = 104
SIP_FROM_TAG = 105

STATUS_START = 1
STATUS_STOP = 2
STATUS_FAILED = 15
SERVICE_SIP_SESSION = 15
METHOD_INVITE = 1  # Kamailio's method bits
METHOD_BYE = 8

# HEPv3 chunk types (vendor 0).
HEP_SOURCE_IPV4 = 0x0003
HEP_DESTINATION_IPV4 = 0x0004
HEP_SOURCE_PORT = 0x0007
HEP_DESTINATION_PORT = 0x0008
HEP_PROTOCOL_TYPE = 0x000B
HEP_CAPTURE_ID = 0x000C
HEP_AUTH_KEY_CHUNK = 0x000E
HEP_PAYLOAD = 0x000F
HEP_PROTOCOL_SIP = 1

# What the proxy receives ("in") and sends ("out") for one call of each
# scenario: a request by its method, a response by code and CSeq method.
ANSWERED_FLOW = Counter(
    [
        "in INVITE", "out 100 INVITE", "out INVITE",
        "in 180 INVITE", "out 180 INVITE", "in 200 INVITE", "out 200 INVITE",
        "in ACK", "out ACK", "in BYE", "out BYE", "in 200 BYE", "out 200 BYE",
    ]
)  # fmt: skip
BUSY_FLOW = Counter(
    [
        "in INVITE", "out 100 INVITE", "out INVITE",
        "in 486 INVITE", "out 486 INVITE",
        "in ACK", "out ACK",  # the caller's ACK ends at the proxy; it ACKs the callee itself
    ]
)  # fmt: skip
CANCELLED_FLOW = Counter(
    [
        "in INVITE", "out 100 INVITE", "out INVITE", "in 180 INVITE", "out 180 INVITE",
        "in CANCEL", "out 200 CANCEL", "out CANCEL", "in 200 CANCEL",
        "in 487 INVITE", "out 487 INVITE", "in ACK", "out ACK",
    ]
)  # fmt: skip
NO_ANSWER_FLOW = Counter(
    [
        "in INVITE", "out 100 INVITE", "out INVITE", "in 180 INVITE", "out 180 INVITE",
        "in 480 INVITE", "out 480 INVITE", "in ACK", "out ACK",
    ]
)  # fmt: skip

FLOWS: dict[Scenario, Counter[str]] = {
    "answered": ANSWERED_FLOW,
    "callee_hangup": ANSWERED_FLOW,
    "busy": BUSY_FLOW,
    "cancelled": CANCELLED_FLOW,
    "no_answer": NO_ANSWER_FLOW,
}
#: RADIUS requests per call: Start and Stop when answered, else one Failed.
ACCOUNTING: dict[Scenario, int] = {
    "answered": 2,
    "callee_hangup": 2,
    "busy": 1,
    "cancelled": 1,
    "no_answer": 1,
}
FAILED_CODES: dict[Scenario, int] = {"busy": 486, "cancelled": 487, "no_answer": 480}


@dataclass(frozen=True)
class AccountingRequest:
    """One RADIUS Accounting-Request as the responder received it."""

    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[int, bytes], ...]
    authentic: bool

    def value(self, kind: int) -> bytes | None:
        """The first value of attribute ``kind``, or None."""
        return next((value for number, value in self.attributes if number == kind), None)

    def integer(self, kind: int) -> int | None:
        value = self.value(kind)
        return None if value is None else int.from_bytes(value, "big")

    def text(self, kind: int) -> str | None:
        value = self.value(kind)
        return None if value is None else value.decode()


def decode_accounting_request(data: bytes, secret: bytes) -> AccountingRequest:
    """Split a RADIUS packet into attributes and check its Request Authenticator."""
    code, identifier, length = struct.unpack_from("!BBH", data)
    assert code == ACCOUNTING_REQUEST, f"RADIUS code {code}, not an Accounting-Request"
    assert length == len(data), "RADIUS length field disagrees with the datagram"
    authenticator = data[4:20]
    attributes = []
    offset = 20
    while offset < length:
        kind, size = data[offset], data[offset + 1]
        assert size >= 2, "RADIUS attribute shorter than its header"
        attributes.append((kind, data[offset + 2 : offset + size]))
        offset += size
    # RFC 2866 3: MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
    expected = hashlib.md5(data[:4] + bytes(16) + data[20:] + secret).digest()
    return AccountingRequest(
        identifier, authenticator, tuple(attributes), expected == authenticator
    )


def accounting_response(request: AccountingRequest, secret: bytes) -> bytes:
    """An Accounting-Response without attributes for ``request``.

    RFC 2866 3: Response Authenticator = MD5(Code + Identifier + Length +
    Request Authenticator + Attributes + Secret).
    """
    header = struct.pack("!BBH", ACCOUNTING_RESPONSE, request.identifier, 20)
    return header + hashlib.md5(header + request.authenticator + secret).digest()


class Recorder(asyncio.DatagramProtocol):
    """Keeps what arrives and lets the test wait for a number of arrivals."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.count = 0

    def note_arrival(self) -> None:
        self.count += 1
        self.arrived.set()

    async def wait_for(self, count: int, timeout_s: float) -> None:
        """Return once ``count`` datagrams arrived or ``timeout_s`` passed (the asserts tell)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.count < count:
                    self.arrived.clear()
                    await self.arrived.wait()


class RadiusAccountingResponder(Recorder):
    """Answers every Accounting-Request at once and keeps what it received."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.requests: list[AccountingRequest] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector loop hands over a Transport that is not an
        # asyncio.DatagramTransport subclass, though it has sendto().
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request = decode_accounting_request(data, self.secret)
        self.requests.append(request)
        assert self.transport is not None
        self.transport.sendto(accounting_response(request, self.secret), addr)
        self.note_arrival()


@dataclass(frozen=True)
class HepPacket:
    """The parts of one HEPv3 packet this test looks at."""

    chunks: dict[int, bytes]

    @property
    def capture_id(self) -> int:
        return int.from_bytes(self.chunks[HEP_CAPTURE_ID], "big")

    @property
    def source(self) -> tuple[str, int]:
        return _ipv4(self.chunks[HEP_SOURCE_IPV4]), _port(self.chunks[HEP_SOURCE_PORT])

    @property
    def destination(self) -> tuple[str, int]:
        return _ipv4(self.chunks[HEP_DESTINATION_IPV4]), _port(self.chunks[HEP_DESTINATION_PORT])

    @property
    def sip(self) -> str:
        return self.chunks[HEP_PAYLOAD].decode(errors="replace")

    def header(self, name: str) -> str:
        for line in self.sip.split("\r\n")[1:]:
            if not line:
                break
            field, _, value = line.partition(":")
            if field.strip().lower() == name.lower():
                return value.strip()
        raise KeyError(name)

    def label(self, proxy_port: int) -> str:
        """'in'/'out' as seen by the proxy, then the method or 'code method'."""
        direction = "in" if self.destination[1] == proxy_port else "out"
        first_line = self.sip.split("\r\n", 1)[0]
        if first_line.startswith("SIP/2.0 "):
            code = first_line.split()[1]
            return f"{direction} {code} {self.header('CSeq').split()[1]}"
        return f"{direction} {first_line.split()[0]}"


def decode_hep3(data: bytes) -> HepPacket:
    """Split a HEPv3 packet into its generic chunks (type -> value)."""
    assert data[:4] == b"HEP3", f"not HEPv3: {data[:4]!r}"
    (length,) = struct.unpack_from("!H", data, 4)
    assert length == len(data), "HEP length field disagrees with the datagram"
    chunks: dict[int, bytes] = {}
    offset = 6
    while offset < length:
        vendor, kind, size = struct.unpack_from("!HHH", data, offset)
        assert size >= 6, "HEP chunk shorter than its header"
        if vendor == 0:
            chunks[kind] = data[offset + 6 : offset + size]
        offset += size
    return HepPacket(chunks)


def _ipv4(value: bytes) -> str:
    return ".".join(str(octet) for octet in value)


def _port(value: bytes) -> int:
    return int.from_bytes(value, "big")


class HepCollector(Recorder):
    """Keeps every datagram that arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.datagrams.append(data)
        self.note_arrival()


async def test_calls_through_kamailio_are_accounted_and_mirrored(tmp_path: Path) -> None:
    """Every call shape, all at once through one proxy: RADIUS and HEP as expected."""
    loop = asyncio.get_running_loop()
    radius_transport, radius = await loop.create_datagram_endpoint(
        lambda: RadiusAccountingResponder(RADIUS_SECRET), local_addr=("127.0.0.1", 0)
    )
    hep_transport, hep = await loop.create_datagram_endpoint(
        HepCollector, local_addr=("127.0.0.1", 0)
    )
    default_callee_port = free_port()
    try:
        async with kamailio_proxy(
            radius_port=radius_transport.get_extra_info("sockname")[1],
            radius_secret=RADIUS_SECRET,
            hep_port=hep_transport.get_extra_info("sockname")[1],
            uas_port=default_callee_port,
            hep_auth_key=HEP_AUTH_KEY,
            workdir=tmp_path / "kamailio",
        ) as proxy:
            port = proxy.sip_port
            batches = await asyncio.gather(
                place_calls(
                    port, "answered", count=2, rate=20, duration_s=1,
                    logdir=tmp_path / "answered",
                ),
                place_calls(
                    port, "callee_hangup", duration_s=1, logdir=tmp_path / "callee_hangup"
                ),
                # Through the proxy's default route: the Request-URI names the proxy.
                place_calls(
                    port, "busy", uas_port=default_callee_port, logdir=tmp_path / "busy"
                ),
                place_calls(port, "cancelled", ring_s=0.5, logdir=tmp_path / "cancelled"),
                place_calls(port, "no_answer", ring_s=0.3, logdir=tmp_path / "no_answer"),
            )  # fmt: skip
            placed = {batch.scenario: batch for batch in batches}
            # The last Stop and HEP copies may trail the 200 for the last BYE.
            await radius.wait_for(sum(ACCOUNTING[b.scenario] * b.count for b in batches), 5)
            await hep.wait_for(sum(FLOWS[b.scenario].total() * b.count for b in batches), 5)
            await asyncio.sleep(0.3)  # room for anything unexpected to show up
            log = proxy.log_text()
    finally:
        radius_transport.close()
        hep_transport.close()

    for batch in batches:
        assert batch.all_succeeded, batch.describe()
    assert "ERROR" not in log, log
    check_radius(radius.requests, placed)
    check_hep(hep.datagrams, proxy, placed)


def check_radius(requests: list[AccountingRequest], placed: dict[Scenario, PlacedCalls]) -> None:
    """Start+Stop per answered call, one Failed per failed call, nothing else."""
    assert all(request.authentic for request in requests), "bad Request Authenticator"
    assert len({(r.identifier, r.authenticator) for r in requests}) == len(requests), (
        "Kamailio retransmitted: an Accounting-Response was not accepted"
    )
    by_session: defaultdict[str | None, list[AccountingRequest]] = defaultdict(list)
    for request in requests:
        by_session[request.text(ACCT_SESSION_ID)].append(request)
    assert set(by_session) == {call_id for b in placed.values() for call_id in b.call_ids}

    now = time.time()
    for request in requests:
        assert request.integer(SERVICE_TYPE) == SERVICE_SIP_SESSION
        assert request.text(CALLING_STATION_ID) == DEFAULT_CALLER
        assert request.text(CALLED_STATION_ID) == DEFAULT_CALLEE
        assert request.value(NAS_IP_ADDRESS) == bytes([127, 0, 0, 1])
        assert request.integer(ACCT_DELAY_TIME) == 0
        timestamp = request.integer(EVENT_TIMESTAMP)
        assert timestamp is not None and abs(timestamp - now) < 120
        assert request.text(SIP_FROM_TAG), "no Sip-From-Tag"
        assert request.text(SIP_TO_TAG), "no Sip-To-Tag"

    for call_id in (*placed["answered"].call_ids, *placed["callee_hangup"].call_ids):
        start, stop = by_session[call_id]
        assert start.integer(ACCT_STATUS_TYPE) == STATUS_START
        assert start.integer(SIP_METHOD) == METHOD_INVITE
        assert start.integer(SIP_RESPONSE_CODE) == 200
        assert stop.integer(ACCT_STATUS_TYPE) == STATUS_STOP
        assert stop.integer(SIP_METHOD) == METHOD_BYE
        assert stop.integer(SIP_RESPONSE_CODE) == 200
        # The caller's tag stays the From tag even when the callee hangs up.
        assert start.text(SIP_FROM_TAG) == stop.text(SIP_FROM_TAG)
        assert start.text(SIP_TO_TAG) == stop.text(SIP_TO_TAG)
        call_number = call_id.split("@")[0].rsplit("-", 1)[1]
        assert (start.text(SIP_FROM_TAG) or "").endswith(f"SIPpTag00{call_number}")
        assert (start.text(SIP_TO_TAG) or "").endswith(f"SIPpTag01{call_number}")

    for scenario, code in FAILED_CODES.items():
        (failed,) = by_session[placed[scenario].call_ids[0]]
        assert failed.integer(ACCT_STATUS_TYPE) == STATUS_FAILED, scenario
        assert failed.integer(SIP_METHOD) == METHOD_INVITE, scenario
        assert failed.integer(SIP_RESPONSE_CODE) == code, scenario


def check_hep(
    datagrams: list[bytes], proxy: KamailioProxy, placed: dict[Scenario, PlacedCalls]
) -> None:
    """One HEPv3 copy of each SIP message the proxy received and one of each it sent."""
    flows: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for packet in map(decode_hep3, datagrams):
        assert packet.capture_id == proxy.hep_capture_id
        assert packet.chunks[HEP_AUTH_KEY_CHUNK] == HEP_AUTH_KEY.encode()
        assert packet.chunks[HEP_PROTOCOL_TYPE] == bytes([HEP_PROTOCOL_SIP])
        assert proxy.sip_address in (packet.source, packet.destination)
        assert packet.source[0] == packet.destination[0] == "127.0.0.1"
        call_id = packet.header("Call-ID")
        if not call_id.startswith(PROBE_CALL_ID_PREFIX):
            flows[call_id][packet.label(proxy.sip_port)] += 1
    expected = {
        call_id: FLOWS[batch.scenario] for batch in placed.values() for call_id in batch.call_ids
    }
    assert dict(flows) == expected


def tags(value: str) -> list[str]:
    """The tag parameters of a To/From value, in order (this test's own plain reading)."""
    return [param.split("=", 1)[1] for param in value.split(">", 1)[1].split(";")[1:]]


async def test_a_2xx_with_two_to_tags_is_relayed_unchanged(tmp_path: Path) -> None:
    """What Kamailio does with `To: ...;tag=a;tag=b` in a 200 (some phones send it).

    It relays the 200 with both tags, in order, as received; its own parser
    keeps the last one: acc reports it as the dialog's Sip-To-Tag. A caller
    that keeps the last tag too (the two_to_tags scenario) gets its ACK and
    BYE relayed with that tag alone, and the call is accounted as usual. A
    collector that knew the dialog by the first tag only would never see
    the call end.
    """
    loop = asyncio.get_running_loop()
    radius_transport, radius = await loop.create_datagram_endpoint(
        lambda: RadiusAccountingResponder(RADIUS_SECRET), local_addr=("127.0.0.1", 0)
    )
    hep_transport, hep = await loop.create_datagram_endpoint(
        HepCollector, local_addr=("127.0.0.1", 0)
    )
    try:
        async with kamailio_proxy(
            radius_port=radius_transport.get_extra_info("sockname")[1],
            radius_secret=RADIUS_SECRET,
            hep_port=hep_transport.get_extra_info("sockname")[1],
            hep_auth_key=HEP_AUTH_KEY,
            workdir=tmp_path / "kamailio",
        ) as proxy:
            placed = await place_calls(
                proxy.sip_port, "two_to_tags", duration_s=0.5, logdir=tmp_path / "sipp"
            )
            await radius.wait_for(2, 5)
            await hep.wait_for(ANSWERED_FLOW.total(), 5)
            await asyncio.sleep(0.3)
            log = proxy.log_text()
    finally:
        radius_transport.close()
        hep_transport.close()

    assert placed.all_succeeded, placed.describe()
    assert "ERROR" not in log, log
    (call_id,) = placed.call_ids
    call_number = call_id.split("@")[0].rsplit("-", 1)[1]
    by_label: defaultdict[str, list[HepPacket]] = defaultdict(list)
    for packet in map(decode_hep3, hep.datagrams):
        if packet.header("Call-ID") == call_id:
            by_label[packet.label(proxy.sip_port)].append(packet)
    assert Counter({label: len(copies) for label, copies in by_label.items()}) == ANSWERED_FLOW
    (received,) = by_label["in 200 INVITE"]
    (relayed,) = by_label["out 200 INVITE"]
    both = tags(received.header("To"))
    assert [tag[-len(f"SIPpTag01{call_number}") :] for tag in both] == [
        f"SIPpTag01{call_number}",
        f"SIPpTag02{call_number}",
    ]
    assert tags(relayed.header("To")) == both  # relayed unchanged, both tags in order
    for label in ("in ACK", "out ACK", "in BYE", "out BYE"):
        (request,) = by_label[label]
        assert tags(request.header("To")) == [both[-1]], label  # the caller kept the last
    start, stop = radius.requests
    assert (start.integer(ACCT_STATUS_TYPE), stop.integer(ACCT_STATUS_TYPE)) == (
        STATUS_START,
        STATUS_STOP,
    )
    assert start.text(SIP_TO_TAG) == stop.text(SIP_TO_TAG) == both[-1]  # acc keeps the last


async def test_missing_kamailio_raises_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Kamailio fails the test loudly (simulated: it is installed here)."""
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(KamailioNotInstalled, match="apt-get install kamailio"):
        async with kamailio_proxy(radius_port=1813, radius_secret="s", hep_port=9060):
            pass


async def test_missing_sipp_raises_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without SIPp fails the test loudly (simulated: it is installed here)."""
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(SippNotInstalled, match="apt-get install sip-tester"):
        await place_calls(5060, "answered")
