"""The SIP capture path end to end: HEPv3 / raw SIP over UDP and TCP -> the daemon -> PostgreSQL.

The test plays the capture agent: it builds SIP call flows, wraps each
message in HEPv3 with `encode_hep` (or sends it bare), mirrors it as a proxy
does (the copy received and the copy forwarded) and sends it from loopback
addresses to a real daemon process, then reads what PostgreSQL holds and what
/metrics counts. Bad input (malformed, fuzzed, wrongly keyed, from unknown
addresses, broken TCP streams) must be counted, never stored, never break the
listener, and never leak a number, URI or address into a row or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import random
import signal
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.pipeline.billing import settle
from collector.pipeline.privacy import Pseudonymizer
from collector.receivers.sip.config import SipConfig, SipSource
from collector.receivers.sip.hep import HepPacket, encode_chunks, encode_hep, encode_hep12
from collector.receivers.sip.receiver import SipReceiver
from collector.telemetry import Telemetry
from tests.daemon import (
    PSEUDONYM_KEY,
    Collector,
    CollectorConfig,
    connected,
    free_port,
    running_collector,
    wait_for,
)
from tests.intake import FakeIntake

PROXY = "proxy-a"  # 127.0.0.1, no auth key
KEYED = "proxy-keyed"  # 127.0.0.3, HEP auth key required
HEP_KEY = "hep-test-key"
UNKNOWN_ADDRESS = "127.0.0.2"  # no source owns it
KEYED_ADDRESS = "127.0.0.3"
PACKETS = "cdr_collector_packets_total"
CALLER = "+493012345678"
PAI = "+493012345600"
#: fiction numbers (Ofcom drama range), one per call, so each row is found by its pseudonym
CALLEES = {
    "answered": "+442079460101",
    "busy": "+442079460202",
    "no_answer": "+442079460303",
    "cancelled": "+442079460404",
    "compressed": "+442079460505",
    "tcp": "+442079460606",
    "callee_bye": "+442079460707",
    "keyed": "+442079460808",
    "after_fuzz": "+442079460909",
    "left_open": "+442079460999",
    "reloaded": "+442079460888",
    "spoofed": "+442079460111",
    "unkeyed_tcp": "+442079460222",
}
ADDRESSES = ("198.51.100.7", "192.0.2.20", "203.0.113.9")
SDP = (
    "v=0\r\no=- 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\n"
    "c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
)
_pseudonyms = Pseudonymizer((("t1", base64.b64decode(PSEUDONYM_KEY)),))


def called_hmac(number: str) -> str:
    """The pseudonym the daemon stores for `number` (same test key)."""
    return _pseudonyms.pseudonym(number.lstrip("+"))


def sip_section(port: int, *, unknown_allowed: bool = False, settings: str = "") -> str:
    """The [sip] TOML: two sources (one keyed), and a third when `unknown_allowed`;
    `settings` are more [sip] lines."""
    extra = (
        f'[sip]\nlisten = ["127.0.0.1:{port}"]\nmax_dialogs = 1000\n{settings}\n'
        f'[[sip.sources]]\nname = "{PROXY}"\naddress = "127.0.0.1"\n\n'
        f'[[sip.sources]]\nname = "{KEYED}"\naddress = "{KEYED_ADDRESS}/32"\n'
        f'hep_auth_key = "{HEP_KEY}"\n'
    )
    if unknown_allowed:
        extra += f'\n[[sip.sources]]\nname = "proxy-late"\naddress = "{UNKNOWN_ADDRESS}"\n'
    return extra


def sip_config(directory: Path, dsn: str, settings: str = "") -> CollectorConfig:
    """A daemon with [radius] (as the harness writes it) and a [sip] listener on a free port."""
    port = free_port()
    return CollectorConfig(
        directory=directory, dsn=dsn, sip_port=port, extra=sip_section(port, settings=settings)
    )


# --- building captured SIP ------------------------------------------------


@dataclass(frozen=True)
class Call:
    """The SIP messages of one call through a proxy, caller to callee."""

    call_id: str
    callee: str
    caller: str = CALLER
    caller_tag: str = "8a3f0c1d"
    callee_tag: str = "77b0e2aa"

    def _message(
        self,
        start: str,
        *,
        cseq: int,
        method: str,
        to_tag: bool,
        from_callee: bool = False,
        extra: Sequence[str] = (),
        body: str = "",
    ) -> bytes:
        caller = f"<sip:{self.caller}@pbx.example.org;user=phone>"
        callee = f"<sip:{self.callee}@carrier.example.net;user=phone>"
        if from_callee:
            from_h = f"From: {callee};tag={self.callee_tag}"
            to_h = f"To: {caller};tag={self.caller_tag}"
        else:
            from_h = f'From: "Alice Example" {caller};tag={self.caller_tag}'
            to_h = f"To: {callee}" + (f";tag={self.callee_tag}" if to_tag else "")
        lines = [
            start,
            f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{cseq}{method.lower()}",
            "Max-Forwards: 70",
            from_h,
            to_h,
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            "Contact: <sip:alice@198.51.100.7:5060>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def invite(self) -> bytes:
        return self._message(
            f"INVITE sip:{self.callee}@carrier.example.net;user=phone SIP/2.0",
            cseq=1,
            method="INVITE",
            to_tag=False,
            extra=[f"P-Asserted-Identity: <sip:{PAI}@pbx.example.org>"],
            body=SDP,
        )

    def response(
        self, status: int, *, method: str = "INVITE", cseq: int = 1, extra: Sequence[str] = ()
    ) -> bytes:
        return self._message(
            f"SIP/2.0 {status} Whatever",
            cseq=cseq,
            method=method,
            to_tag=status != 100,
            extra=extra,
            body=SDP if status == 200 and method == "INVITE" else "",
        )

    def request(self, method: str, cseq: int, *, from_callee: bool = False) -> bytes:
        target = "alice@198.51.100.7" if from_callee else "bob@203.0.113.9"
        return self._message(
            f"{method} sip:{target}:5060 SIP/2.0",
            cseq=cseq,
            method=method,
            to_tag=method != "CANCEL",
            from_callee=from_callee,
        )


Step = tuple[float, bytes]


def answered(call: Call, talk_s: float, *, callee_hangs_up: bool = False) -> list[Step]:
    """INVITE, 100, 180 after 0.5 s, 200 after 1.5 s, ACK, BYE `talk_s` later, 200."""
    bye_at = 1.5 + talk_s
    return [
        (0.0, call.invite()),
        (0.01, call.response(100)),
        (0.5, call.response(180)),
        (1.5, call.response(200)),
        (1.52, call.request("ACK", 1)),
        (bye_at, call.request("BYE", 2 if not callee_hangs_up else 1, from_callee=callee_hangs_up)),
        (
            bye_at + 0.02,
            call._message(
                "SIP/2.0 200 OK",
                cseq=2 if not callee_hangs_up else 1,
                method="BYE",
                to_tag=True,
                from_callee=callee_hangs_up,
            ),
        ),
    ]


def busy(call: Call) -> list[Step]:
    """INVITE, 100, 486 with a Q.850 Reason, ACK."""
    return [
        (0.0, call.invite()),
        (0.01, call.response(100)),
        (0.2, call.response(486, extra=['Reason: Q.850;cause=17;text="User busy"'])),
        (0.21, call.request("ACK", 1)),
    ]


def no_answer(call: Call) -> list[Step]:
    """INVITE, 180, 480 without a Reason (the cause comes from RFC 3398: 18)."""
    return [
        (0.0, call.invite()),
        (0.3, call.response(180)),
        (20.3, call.response(480)),
        (20.31, call.request("ACK", 1)),
    ]


def cancelled(call: Call) -> list[Step]:
    """INVITE, 180, CANCEL after 4 s, 200 to the CANCEL, 487, ACK."""
    return [
        (0.0, call.invite()),
        (0.4, call.response(180)),
        (4.4, call.request("CANCEL", 1)),
        (4.41, call.response(200, method="CANCEL")),
        (4.42, call.response(487)),
        (4.43, call.request("ACK", 1)),
    ]


def mirrored(message: bytes) -> list[bytes]:
    """The two copies a proxy's capture agent sends: as received and as forwarded."""
    start, _, rest = message.partition(b"\r\n")
    forwarded = start + b"\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKproxy1\r\n" + rest
    return [message, forwarded]


def hep(
    payload: bytes,
    when: datetime | None,
    *,
    auth_key: str | None = None,
    protocol_type: int = 1,
    compress: bool = False,
) -> bytes:
    """One HEPv3 packet as Kamailio's siptrace builds it."""
    seconds = micros = None
    if when is not None:
        stamp = when.timestamp()
        seconds, micros = int(stamp), when.microsecond
    packet = HepPacket(
        payload=payload,
        time_seconds=seconds,
        time_micros=micros,
        protocol_type=protocol_type,
        capture_id=2001,
        auth_key=auth_key.encode() if auth_key else None,
        ip_family=2,
        ip_protocol=17,
        src_address=bytes((198, 51, 100, 7)),
        dst_address=bytes((192, 0, 2, 20)),
        src_port=5060,
        dst_port=5060,
    )
    return encode_hep(packet, compress=compress)


def hep_flow(
    steps: Iterable[Step], start: datetime, *, auth_key: str | None = None, compress: bool = False
) -> list[bytes]:
    """Every step mirrored twice and wrapped in HEPv3 with its capture time."""
    packets = []
    for offset, message in steps:
        when = start + timedelta(seconds=offset)
        for index, copy in enumerate(mirrored(message)):
            packets.append(
                hep(
                    copy,
                    when + timedelta(microseconds=150 * index),
                    auth_key=auth_key,
                    compress=compress,
                )
            )
    return packets


class Sender:
    """A UDP socket bound to one loopback address, sending to the daemon's SIP port."""

    def __init__(self, port: int, address: str = "127.0.0.1") -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sent = 0

    def send(self, packets: Iterable[bytes]) -> None:
        for packet in packets:
            self.sock.sendto(packet, self.target)
            self.sent += 1
            if self.sent % 200 == 0:
                time.sleep(0.005)  # stay far below the receive buffer, as a real agent does

    def close(self) -> None:
        self.sock.close()


async def fetch_rows(dsn: str) -> list[dict[str, Any]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT * FROM cdrs WHERE protocol = 'sip' ORDER BY call_time")
    return [dict(row) for row in rows]


async def wait_rows(dsn: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal rows
        rows = await fetch_rows(dsn)
        return len(rows) >= count

    await wait_for(enough, timeout)
    return rows


def by_callee(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by the scenario whose callee they carry."""
    names = {called_hmac(number): name for name, number in CALLEES.items()}
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = names[row["called_hmac"]]
        assert name not in found, f"two rows for the {name} call"
        found[name] = row
    return found


def assert_nothing_identifying(text: str) -> None:
    """No full number (any form), SIP URI, display name or address in `text`."""
    for number in (CALLER, PAI, *CALLEES.values()):
        digits = number.lstrip("+")
        assert digits not in text
        assert "0" + digits[2:] not in text  # national form
        assert digits[-9:] not in text
    for address in ADDRESSES:
        assert address not in text
    assert "sip:" not in text
    assert "Alice" not in text
    assert "example.org" not in text


def packets(collector: Collector, source: str, outcome: str) -> float:
    return collector.metric(PACKETS, listener="sip", source=source, outcome=outcome)


async def wait_packets(collector: Collector, source: str, outcome: str, count: int) -> None:
    await wait_for(lambda: packets(collector, source, outcome) >= count, 10.0)


async def send_tcp(
    port: int, chunks: Sequence[bytes], pause_s: float = 0.05, *, local: str | None = None
) -> None:
    """Write each chunk separately on one TCP connection (from `local`), pausing between writes."""
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(local, 0) if local else None
    )
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause_s)
    finally:
        writer.close()
        await writer.wait_closed()


# --- tests -----------------------------------------------------------------


async def test_captured_calls_become_redacted_rows(tmp_path: Path, dsn: str) -> None:
    """HEP over UDP (plain and compressed), raw SIP, HEP over TCP: one row per call, exact."""
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    flows = {
        "answered": answered(Call("c-answered@pbx", CALLEES["answered"]), 30.25),
        "callee_bye": answered(
            Call("c-callee-bye@pbx", CALLEES["callee_bye"]), 12.0, callee_hangs_up=True
        ),
        "no_answer": no_answer(Call("c-no-answer@pbx", CALLEES["no_answer"])),
        "cancelled": cancelled(Call("c-cancelled@pbx", CALLEES["cancelled"])),
        "compressed": answered(Call("c-compressed@pbx", CALLEES["compressed"]), 5.0),
    }
    busy_flow = busy(Call("c-busy@pbx", CALLEES["busy"]))
    tcp_packets = hep_flow(answered(Call("c-tcp@pbx", CALLEES["tcp"]), 7.5), start)
    open_packets = hep_flow(answered(Call("c-open@pbx", CALLEES["left_open"]), 1.0)[:5], start)

    with running_collector(config) as collector:
        sender = Sender(config.sip_port)
        try:
            for name, steps in flows.items():
                sender.send(hep_flow(steps, start, compress=name == "compressed"))
            # Raw SIP, as siptrace sends it without HEP: arrival time is the clock.
            for _offset, message in busy_flow:
                sender.send(mirrored(message))
            # HEP over TCP: three frames in one write, one frame split over two
            # writes, then the rest in one write.
            head = b"".join(tcp_packets[:3])
            split = tcp_packets[3]
            tail = b"".join(tcp_packets[4:])
            await send_tcp(config.sip_port, [head, split[:9], split[9:], tail])
            # A call still ringing and answered when the daemon stops.
            sender.send(open_packets)
        finally:
            sender.close()
        total = sender.sent + len(tcp_packets)
        await wait_packets(collector, PROXY, "accepted", total)
        rows = await wait_rows(dsn, 7)
        await wait_for(lambda: collector.metric("cdr_collector_sip_open_dialogs") == 1, 5.0)
        assert packets(collector, PROXY, "accepted") == total
        assert packets(collector, PROXY, "malformed") == 0
        assert collector.metric("cdr_collector_post_dial_delay_seconds_count") == 6
        assert collector.metric("cdr_collector_calls_total", source=PROXY, outcome="answered") == 4
        assert (
            collector.metric("cdr_collector_billable_seconds_total", source=PROXY)
            == 30.25 + 12.0 + 5.0 + 7.5
        )
    # The open call was not turned into an incomplete row at stop.
    rows = await fetch_rows(dsn)
    assert len(rows) == 7
    assert "sip dialogs open at stop" in collector.log_text()
    async with connected(dsn) as conn:
        # answered before the stop: kept as an open call, for its BYE after a restart
        open_calls = await conn.fetch("SELECT * FROM open_calls")
    assert [r["called_hmac"] for r in open_calls] == [called_hmac(CALLEES["left_open"])]
    assert open_calls[0]["connect_time"] == start + timedelta(seconds=1.5)

    calls = by_callee(rows)
    assert set(calls) == {
        "answered",
        "callee_bye",
        "busy",
        "no_answer",
        "cancelled",
        "compressed",
        "tcp",
    }
    for row in rows:
        assert row["protocol"] == "sip"
        assert row["source"] == PROXY
        assert row["leg"] == ""
        assert row["incomplete"] is False
        assert row["called_prefix"] == "+4420"
        assert row["called_country"] == "GB"
        assert len(row["called_masked"]) == 13
        assert row["called_masked"].endswith("***")
        assert row["calling_country"] == "DE"
        assert row["calling_hmac"] == called_hmac(PAI)  # P-Asserted-Identity wins over From
    for name, duration_ms in (
        ("answered", 30250),
        ("callee_bye", 12000),
        ("compressed", 5000),
        ("tcp", 7500),
    ):
        row = calls[name]
        assert row["answered"] is True, name
        assert row["duration_ms"] == duration_ms, name  # capture times, to the millisecond
        assert row["sip_code"] == 200, name
        assert row["disconnect_cause"] == 16, name
        assert row["pdd_ms"] == 500, name
        assert row["setup_time"] == start, name
        assert row["times_derived"] is False, name
    assert calls["answered"]["called_masked"] == "+442079460***"
    assert calls["busy"]["answered"] is False
    assert calls["busy"]["duration_ms"] == 0
    assert calls["busy"]["sip_code"] == 486
    assert calls["busy"]["disconnect_cause"] == 17  # from the Reason header
    assert abs(calls["busy"]["setup_time"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert calls["no_answer"]["sip_code"] == 480
    assert calls["no_answer"]["disconnect_cause"] == 18  # RFC 3398
    assert calls["no_answer"]["duration_ms"] == 0
    assert calls["no_answer"]["pdd_ms"] == 300
    assert calls["cancelled"]["sip_code"] == 487
    assert calls["cancelled"]["disconnect_cause"] == 16
    assert calls["cancelled"]["answered"] is False
    assert calls["cancelled"]["disconnect_time"] == start + timedelta(seconds=4.4)  # the CANCEL
    assert_nothing_identifying(repr(rows))
    assert_nothing_identifying(collector.log_text())


async def test_a_call_answered_before_a_restart_ends_with_its_bye_after_it(
    tmp_path: Path, dsn: str
) -> None:
    """SIGTERM or SIGKILL mid-call: the BYE seen by the next process still bills the call."""
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    caller_bye = answered(Call("c-restart-1@pbx", CALLEES["answered"]), 42.5)
    callee_bye = answered(
        Call("c-restart-2@pbx", CALLEES["callee_bye"]), 17.25, callee_hangs_up=True
    )
    with running_collector(config) as collector:
        sender = Sender(config.sip_port)
        try:
            for steps in (caller_bye, callee_bye):
                sender.send(hep_flow(steps[:5], start))  # up to the ACK
            async with connected(dsn) as conn:

                async def both_open() -> bool:
                    return int(await conn.fetchval("SELECT count(*) FROM open_calls")) == 2

                await wait_for(both_open, 10.0)
            collector.kill()  # no goodbye: only what is durable survives
            await collector.start_async()
            sender.send(hep_flow(caller_bye[5:], start))
            collector.stop()
            await collector.start_async()
            sender.send(hep_flow(callee_bye[5:], start))
            rows = await wait_rows(dsn, 2)
            await asyncio.sleep(0.5)  # a late copy would show as a third row
        finally:
            sender.close()
    rows = await fetch_rows(dsn)
    assert len(rows) == 2
    calls = by_callee(rows)
    for name, duration_ms in (("answered", 42_500), ("callee_bye", 17_250)):
        row = calls[name]
        assert row["answered"] is True, name
        assert row["incomplete"] is False, name
        assert row["duration_ms"] == duration_ms, name
        assert row["setup_time"] == start, name
        assert row["connect_time"] == start + timedelta(seconds=1.5), name
        assert (row["sip_code"], row["disconnect_cause"]) == (200, 16), name
        assert row["calling_hmac"] == called_hmac(PAI), name
        assert row["called_prefix"] == "+4420", name
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM open_calls") == 0


def fuzzed(valid: Sequence[bytes], count: int, seed: int) -> list[bytes]:
    """Mutations of valid packets: flipped bytes, cuts, garbage tails, shuffled chunks."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(valid))
        kind = rng.randrange(4)
        if kind == 0:
            for _flip in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[rng.randrange(1, len(data)) :]
        elif kind == 2:
            data += rng.randbytes(rng.randint(1, 64))
        else:
            position = rng.randrange(6, min(len(data), 80))
            data[position : position + 2] = b"\x00\x00"
        out.append(bytes(data))
    return out


async def test_bad_input_is_counted_and_the_listener_keeps_serving(
    tmp_path: Path, dsn: str
) -> None:
    """Malformed, fuzzed, unsupported, wrongly keyed, unknown-source packets and a broken
    TCP stream are each counted once and stored never; good calls around them still are."""
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    port = config.sip_port
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    good = hep_flow(busy(Call("c-fuzz-source@pbx", CALLEES["busy"])), start)
    invite = Call("c-x@pbx", CALLEES["busy"]).invite()

    malformed = [
        b"HEP3",  # truncated header
        b"HEP3\x00\x40" + bytes(10),  # length field disagrees with the datagram
        hep(invite, start)[:-3],  # cut short
        encode_chunks([(0, 9, b"\x00\x00")]),  # fixed-size chunk with the wrong size
        encode_chunks([(0, 9, (1).to_bytes(4, "big"))]),  # no payload at all
        hep(b"NOT SIP AT ALL\r\n\r\n", start),  # HEP around something that is not SIP
        b"\x00\x01garbage that is neither HEP nor SIP",
        b"INVITE sip:x SIP/2.0\r\nCall-ID: only\r\n\r\n",  # raw SIP without From/To/CSeq
        b"\r\n\r\n",  # a keep-alive
    ]
    unsupported = [
        hep(b"RTCP report", start, protocol_type=5),
        hep(b"{}", start, protocol_type=100),
    ]
    fuzz = fuzzed(good, 400, seed=20240501)

    with running_collector(config) as collector:
        sender = Sender(port)
        keyed = Sender(port, KEYED_ADDRESS)
        stranger = Sender(port, UNKNOWN_ADDRESS)
        try:
            # The good call first: its mutated copies below then find it closed.
            sender.send(good)
            sender.send(malformed)
            sender.send(unsupported)
            sender.send(fuzz)
            # The keyed source: missing key, wrong key (both refused), right key (a call).
            keyed.send([hep(invite, start)])
            keyed.send([hep(invite, start, auth_key="wrong-key")])
            keyed.send(
                hep_flow(
                    answered(Call("c-keyed@pbx", CALLEES["keyed"]), 2.0), start, auth_key=HEP_KEY
                )
            )
            stranger.send(hep_flow(busy(Call("c-stranger@pbx", "+442079460000")), start))
            # A TCP stream that stops being HEP: the connection is closed, counted once.
            await send_tcp(port, [hep(invite, start) + b"GARBAGE!" + bytes(64)])
            # A TCP connection from an unknown address is closed at once.
            stray = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            stray.bind((UNKNOWN_ADDRESS, 0))
            stray.connect(("127.0.0.1", port))
            stray.close()
            # And the listener still serves a good call afterwards, over UDP and TCP
            # (the busy call again: a late copy of a closed call, stored no second time).
            sender.send(hep_flow(busy(Call("c-after@pbx", CALLEES["after_fuzz"])), start))
            await send_tcp(port, [b"".join(good)])
        finally:
            for each in (sender, keyed, stranger):
                each.close()

        proxy_total = sender.sent + 2 + len(good)  # + the stream's first frame and the TCP call

        def counted() -> bool:
            outcomes = ("accepted", "malformed", "unsupported", "bad_authenticator")
            return sum(packets(collector, PROXY, o) for o in outcomes) >= proxy_total

        await wait_for(counted, 10.0)
        await wait_packets(collector, KEYED, "accepted", 14)
        await wait_packets(collector, "unknown", "unknown_client", 9)
        rows = await wait_rows(dsn, 3)
        await asyncio.sleep(0.3)  # room for anything unexpected to arrive

        outcomes = {
            outcome: packets(collector, PROXY, outcome)
            for outcome in ("accepted", "malformed", "unsupported", "bad_authenticator")
        }
        assert sum(outcomes.values()) == proxy_total, outcomes  # every packet counted once
        assert outcomes["malformed"] >= len(malformed) + 1  # + the broken stream
        assert outcomes["unsupported"] >= len(unsupported)
        assert outcomes["bad_authenticator"] == 0
        assert packets(collector, KEYED, "bad_authenticator") == 2
        assert packets(collector, KEYED, "accepted") == 14
        # 8 datagrams of the stranger's call + its one TCP connection
        assert packets(collector, "unknown", "unknown_client") == 9
        assert collector.process is not None and collector.process.poll() is None
        log_text = collector.log_text()

    rows = await fetch_rows(dsn)
    calls = by_callee(rows)
    # Fuzzed copies of the busy call made no second row; the stranger's call made none.
    assert {"keyed", "after_fuzz", "busy"} == set(calls)
    assert calls["keyed"]["source"] == KEYED
    assert calls["keyed"]["duration_ms"] == 2000
    assert calls["after_fuzz"]["sip_code"] == 486
    assert calls["busy"]["sip_code"] == 486
    assert "Traceback" not in log_text
    assert_nothing_identifying(repr(rows))
    assert_nothing_identifying(log_text)


async def test_a_keyed_source_takes_only_hep_that_carries_its_key(tmp_path: Path, dsn: str) -> None:
    """Raw SIP (which cannot carry a key) and HEP without the key from a keyed source's
    address are refused and counted bad_authenticator, over UDP and TCP; one spoofed
    datagram must not bill a call. HEP with the key from the same address is stored."""
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    port = config.sip_port
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    spoofed_call = answered(Call("c-spoofed@pbx", CALLEES["spoofed"]), 30.0)
    spoofed = [copy for _offset, message in spoofed_call for copy in mirrored(message)]
    keyed_udp = hep_flow(
        answered(Call("c-keyed@pbx", CALLEES["keyed"]), 2.0), start, auth_key=HEP_KEY
    )
    unkeyed_tcp = hep_flow(busy(Call("c-unkeyed-tcp@pbx", CALLEES["unkeyed_tcp"])), start)
    keyed_tcp = hep_flow(
        answered(Call("c-keyed-tcp@pbx", CALLEES["tcp"]), 4.0), start, auth_key=HEP_KEY
    )
    with running_collector(config) as collector:
        keyed = Sender(port, KEYED_ADDRESS)
        try:
            # Datagrams of one socket are handled in order: the raw call before the keyed one.
            keyed.send(spoofed)
            keyed.send(keyed_udp)
        finally:
            keyed.close()
        await send_tcp(port, [b"".join(unkeyed_tcp + keyed_tcp)], local=KEYED_ADDRESS)
        await wait_packets(collector, KEYED, "accepted", len(keyed_udp) + len(keyed_tcp))
        await wait_rows(dsn, 2)
        assert packets(collector, KEYED, "accepted") == len(keyed_udp) + len(keyed_tcp)
        assert packets(collector, KEYED, "bad_authenticator") == len(spoofed) + len(unkeyed_tcp)
        assert packets(collector, KEYED, "malformed") == 0
        log_text = collector.log_text()
    calls = by_callee(await fetch_rows(dsn))
    assert set(calls) == {"keyed", "tcp"}
    assert calls["keyed"]["duration_ms"] == 2000
    assert calls["tcp"]["duration_ms"] == 4000
    assert "Traceback" not in log_text
    assert_nothing_identifying(log_text)


async def test_a_future_dated_invite_does_not_stop_the_expiry_of_other_dialogs(
    tmp_path: Path, dsn: str
) -> None:
    """One INVITE whose HEP time is ten days ahead, then a dialog from another source
    that is already older than max_dialog_age_s: the stale one is closed (stored
    incomplete) by the next housekeeping run, the future-dated one stays open."""
    config = sip_config(tmp_path / "collector", dsn, settings="max_dialog_age_s = 60\n")
    assert config.sip_port is not None
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = Call("c-ahead@pbx", CALLEES["answered"]).invite()
    stale = Call("c-stale@pbx", CALLEES["left_open"])
    with running_collector(config) as collector:
        proxy = Sender(config.sip_port)
        keyed = Sender(config.sip_port, KEYED_ADDRESS)
        try:
            proxy.send([hep(ahead, now + timedelta(days=10))])
            await wait_packets(collector, PROXY, "accepted", 1)
            keyed.send(
                [
                    hep(message, now - timedelta(hours=2, seconds=-offset), auth_key=HEP_KEY)
                    for offset, message in answered(stale, 3600.0)[:5]  # up, never hung up
                ]
            )
        finally:
            proxy.close()
            keyed.close()
        rows = await wait_rows(dsn, 1)
        await wait_for(lambda: collector.metric("cdr_collector_sip_open_dialogs") == 1, 10.0)
    assert len(rows) == 1
    row = by_callee(rows)["left_open"]
    assert (row["source"], row["incomplete"], row["answered"]) == (KEYED, True, True)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Wait until the other side closes (FIN or reset); True, or fail after a while."""
    try:
        while await asyncio.wait_for(reader.read(4096), 20.0):
            pass
    except ConnectionResetError:
        pass
    return True


async def test_idle_and_stalled_tcp_connections_from_one_peer_do_not_lock_others_out(
    tmp_path: Path, dsn: str
) -> None:
    """300 HEP/TCP connections from one capture agent's address, idle or stopped inside a
    packet header, more than the old global cap of 256: the address gets at most
    tcp_max_connections_per_address of them, another agent's calls over TCP are still
    stored, and the idle and stalled connections are closed (a stalled frame counts
    malformed) until the flooding address can send a call again."""
    per_address = 16
    config = sip_config(
        tmp_path / "collector",
        dsn,
        settings=(
            f"tcp_max_connections_per_address = {per_address}\n"
            "tcp_idle_timeout_s = 3\ntcp_frame_timeout_ms = 1000\n"
        ),
    )
    assert config.sip_port is not None
    port = config.sip_port
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    keyed_call = hep_flow(
        answered(Call("c-keyed-flood@pbx", CALLEES["keyed"]), 2.0), start, auth_key=HEP_KEY
    )
    later_call = hep_flow(busy(Call("c-after-flood@pbx", CALLEES["busy"])), start)
    flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    stalled = per_address // 2
    with running_collector(config) as collector:
        try:
            for index in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if per_address - stalled <= index < per_address:
                    writer.write(b"HEP3\x03")  # five bytes of a six-byte header, then nothing
                flood.append((reader, writer))
            # another agent, while the flood holds its connections
            await send_tcp(port, [b"".join(keyed_call)], local=KEYED_ADDRESS)
            rows = await wait_rows(dsn, 1)
            assert by_callee(rows)["keyed"]["source"] == KEYED
            # every flood connection ends: refused at once, or closed idle or stalled
            for reader, _writer in flood:
                assert await closed_by_peer(reader)
        finally:
            for _reader, writer in flood:
                writer.close()
        await send_tcp(port, [b"".join(later_call)])
        rows = await wait_rows(dsn, 2)
        refused = packets(collector, PROXY, "overloaded")
        assert 300 - per_address >= refused >= 250
        assert packets(collector, PROXY, "malformed") == stalled
        assert packets(collector, KEYED, "accepted") == len(keyed_call)
        log_text = collector.log_text()
    assert set(by_callee(rows)) == {"keyed", "busy"}
    assert "Traceback" not in log_text


async def test_reload_takes_a_new_source_without_a_restart(tmp_path: Path, dsn: str) -> None:
    """SIGHUP: an address that was unknown becomes a source; calls open across it survive."""

    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    across = hep_flow(answered(Call("c-across@pbx", CALLEES["answered"]), 3.0), start)
    late = hep_flow(busy(Call("c-late@pbx", CALLEES["reloaded"])), start)
    with running_collector(config) as collector:
        sender = Sender(config.sip_port)
        stranger = Sender(config.sip_port, UNKNOWN_ADDRESS)
        try:
            sender.send(across[:8])  # INVITE .. ACK: the call is up
            stranger.send(late[:2])
            await wait_packets(collector, "unknown", "unknown_client", 2)
            config.extra = sip_section(config.sip_port, unknown_allowed=True)
            config.render()
            collector.signal(signal.SIGHUP)
            await wait_for(
                lambda: collector.metric("cdr_collector_config_reloads_total", result="ok") == 1,
                10.0,
            )
            sender.send(across[8:])
            stranger.send(late)
        finally:
            sender.close()
            stranger.close()
        rows = await wait_rows(dsn, 2)
    calls = by_callee(rows)
    assert calls["answered"]["duration_ms"] == 3000
    assert calls["reloaded"]["source"] == "proxy-late"


# --- in process: HEPv1/v2 and capture times -----------------------------------


def in_process_receiver(**settings: Any) -> tuple[SipReceiver, FakeIntake, Telemetry]:
    """A receiver fed by calling its datagram handler directly (no socket, no daemon);
    `settings` are more SipConfig fields."""
    telemetry = Telemetry()
    config = SipConfig(
        listen=("127.0.0.1:0",),
        sources=(
            SipSource(PROXY, "127.0.0.1"),
            SipSource(KEYED, KEYED_ADDRESS, hep_auth_key=HEP_KEY),
        ),
        **settings,
    )
    intake = FakeIntake()
    return SipReceiver(config, intake, telemetry), intake, telemetry


def legacy_flow(steps: Iterable[Step], start: datetime | None, version: int) -> list[bytes]:
    """Every step mirrored twice and wrapped in HEPv1 (no time) or HEPv2 (capture time)."""
    packets = []
    for offset, message in steps:
        for index, copy in enumerate(mirrored(message)):
            seconds = micros = None
            if start is not None:
                when = start + timedelta(seconds=offset, microseconds=150 * index)
                seconds, micros = int(when.timestamp()), when.microsecond
            packet = HepPacket(
                payload=copy,
                time_seconds=seconds,
                time_micros=micros,
                capture_id=2001,
                ip_family=2,
                ip_protocol=17,
                src_address=bytes((198, 51, 100, 7)),
                dst_address=bytes((192, 0, 2, 20)),
                src_port=5060,
                dst_port=5060,
            )
            packets.append(encode_hep12(packet, version=version))
    return packets


def outcome_count(telemetry: Telemetry, source: str, outcome: str) -> float:
    labels = {"listener": "sip", "source": source, "outcome": outcome}
    return telemetry.registry.get_sample_value(PACKETS, labels) or 0.0


def test_hep_v1_and_v2_packets_become_records() -> None:
    receiver, intake, telemetry = in_process_receiver()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    v2_call = Call("hep2-call@pbx.example.org", CALLEES["answered"])
    v1_call = Call("hep1-call@pbx.example.org", CALLEES["busy"])
    packets = legacy_flow(answered(v2_call, 3.0), start, 2) + legacy_flow(busy(v1_call), None, 1)
    before = datetime.now(UTC)
    for packet in packets:
        receiver._datagram(packet, ("127.0.0.1", 40000))
    after = datetime.now(UTC)
    assert outcome_count(telemetry, PROXY, "accepted") == len(packets)
    assert outcome_count(telemetry, PROXY, "malformed") == 0
    rows = {row.called: row for row in intake.records}
    assert len(rows) == 2
    v2 = settle(rows[v2_call.callee])  # as the intake decides its billing facts
    assert (v2.answered, v2.sip_code, v2.duration_ms) == (True, 200, 3000)
    assert v2.setup_time == start  # the HEPv2 capture time
    assert v2.connect_time == start + timedelta(seconds=1.5)
    v1 = rows[v1_call.callee]
    assert (v1.answered, v1.sip_code, v1.disconnect_cause) == (False, 486, 17)
    assert v1.setup_time is not None and before <= v1.setup_time <= after  # arrival time


def test_legacy_hep_is_refused_where_an_auth_key_is_required() -> None:
    receiver, intake, telemetry = in_process_receiver()
    call = Call("keyed-legacy@pbx.example.org", CALLEES["keyed"])
    packets = legacy_flow(busy(call), datetime(2024, 5, 1, tzinfo=UTC), 2)
    for packet in packets:
        receiver._datagram(packet, (KEYED_ADDRESS, 40000))
    assert outcome_count(telemetry, KEYED, "bad_authenticator") == len(packets)
    assert outcome_count(telemetry, KEYED, "accepted") == 0
    assert intake.records == []


def test_a_zero_capture_time_is_replaced_by_the_arrival_time() -> None:
    receiver, intake, telemetry = in_process_receiver()
    call = Call("zero-time@pbx.example.org", CALLEES["no_answer"])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = no_answer(call)
    before = datetime.now(UTC)
    for _offset, message in steps[:2]:
        # heplify and some agents send seconds 0 and micros 0 when they have no time
        receiver._datagram(hep(message, epoch), ("127.0.0.1", 40000))
    # A call set up in 1970 would be expired (incomplete) by the next housekeeping run.
    assert receiver.tracker.expire(datetime.now(UTC)) == []
    assert receiver.tracker.open_dialogs == 1
    for _offset, message in steps[2:]:
        receiver._datagram(hep(message, epoch), ("127.0.0.1", 40000))
    after = datetime.now(UTC)
    assert len(intake.records) == 1
    row = intake.records[0]
    assert (row.sip_code, row.incomplete) == (480, False)
    assert row.setup_time is not None and before <= row.setup_time <= after
    assert row.disconnect_time is not None and before <= row.disconnect_time <= after
    assert outcome_count(telemetry, PROXY, "accepted") == 4


async def test_hep_tcp_connections_beyond_the_cap_are_refused_and_counted() -> None:
    cap = 24
    receiver, intake, telemetry = in_process_receiver(
        tcp_max_connections=cap, tcp_max_connections_per_address=cap
    )
    await receiver.start()
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        host, port = receiver.addresses[0]
        for _ in range(cap):
            streams.append(await asyncio.open_connection(host, port))
        await wait_for(lambda: len(receiver.streams) == cap, 5.0)
        reader, extra = await asyncio.open_connection(host, port)
        # refused: the daemon closes it at once
        assert await asyncio.wait_for(reader.read(1), 5.0) == b""
        extra.close()
        assert outcome_count(telemetry, PROXY, "overloaded") == 1
        assert len(receiver.streams) == cap
        # the connections already open keep serving
        start = datetime.now(UTC).replace(microsecond=0)
        call = Call("tcp-capped@pbx.example.org", CALLEES["tcp"])
        _first_reader, first = streams[0]
        first.write(b"".join(hep_flow(busy(call), start)))
        await first.drain()
        await wait_for(lambda: len(intake.records) == 1, 5.0)
        assert intake.records[0].sip_code == 486
    finally:
        for _reader, stream in streams:
            stream.close()
        await receiver.stop()


def test_a_kernel_chosen_port_whose_tcp_twin_is_taken_is_given_up_for_another(
    monkeypatch: Any,
) -> None:
    # listen port 0: the UDP port the kernel picks may be held over TCP (by an
    # outgoing connection's local port, or as here a listener); the receiver then
    # tries another port instead of failing to start
    import collector.receivers.sip.receiver as sip_receiver

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    clashing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    clashing.bind(("127.0.0.1", taken.getsockname()[1]))
    from collector.receivers.addresses import udp_socket as real_udp_socket

    handed: list[socket.socket] = []

    def first_the_clashing_one(*args: Any) -> socket.socket:
        sock = clashing if not handed else real_udp_socket(*args)
        handed.append(sock)
        return sock

    monkeypatch.setattr(sip_receiver, "udp_socket", first_the_clashing_one)
    receiver, _intake, _telemetry = in_process_receiver()
    try:
        receiver.bind()
        # tried, closed, replaced (the next port the kernel picks may clash as well)
        assert handed[0] is clashing and clashing.fileno() == -1
        assert len(handed) >= 2 and all(sock.fileno() == -1 for sock in handed[:-1])
        assert handed[-1].fileno() != -1
        (address,) = receiver.addresses
        assert address[1] != taken.getsockname()[1]
        tcp_port = receiver._tcp_sockets[0].getsockname()[1]
        assert tcp_port == address[1]
    finally:
        taken.close()
        for sock in receiver._udp_sockets + receiver._tcp_sockets:
            sock.close()
