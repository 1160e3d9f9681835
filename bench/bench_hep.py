"""Throughput of the SIP receive path: HEPv3 decode, SIP parse, dialog tracking, and the receiver.

Run it as `python bench/bench_hep.py [--calls N] [--runs N] [--udp]`. It builds
realistic captured call flows (INVITE and 200 with SDP, 100, 180, ACK, BYE,
200; every message mirrored twice as a proxy's capture agent sends them),
wraps them in HEPv3 as Kamailio's siptrace would, then times each stage on
one core and prints messages per second. With `--udp` it also runs the real
`SipReceiver` on uvloop (source look-up, decode, parse, tracking, redaction)
and a paced sender in another process over loopback UDP, stepping the rate
up, and reports the highest rate received without loss. The writer is a
stand-in that counts records and stores nothing: this measures the receive
path, not PostgreSQL. It is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import PrivacyConfig
from collector.model import StoredCdr
from collector.pipeline.intake import Ack, Pipeline
from collector.pipeline.redact import Redactor
from collector.receivers.sip.config import SipConfig, SipSource
from collector.receivers.sip.dialogs import DialogTracker
from collector.receivers.sip.hep import HepPacket, decode_hep, encode_hep
from collector.receivers.sip.message import parse_sip
from collector.receivers.sip.receiver import SipReceiver
from collector.telemetry import Telemetry

SDP = (
    "v=0\r\no=- 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\n"
    "c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def sip_message(start: str, headers: list[str], body: str = "") -> bytes:
    """One SIP message with the headers a carrier proxy typically forwards."""
    lines = [
        start,
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKbench1;rport=5060",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;received=198.51.100.7;branch=z9hG4bKbench0",
        "Max-Forwards: 69",
        "Record-Route: <sip:192.0.2.20;lr;ftag=bench>",
        *headers,
        "User-Agent: BenchPBX/1.0",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY",
        "Supported: timer, 100rel, replaces",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def call_flow(index: int) -> list[tuple[float, bytes]]:
    """(seconds after setup, message) for one answered call of 60 s."""
    call_id = f"{index:08x}-4b1c-9e7d@pbx.example.org"
    caller, callee = f"+4930{index:07d}", f"+4940{index:07d}"
    from_h = f'From: "Caller" <sip:{caller}@pbx.example.org;user=phone>;tag=ft{index:x}'
    to_h = f"To: <sip:{callee}@example.net;user=phone>"
    to_tagged = to_h + f";tag=tt{index:x}"
    common = [f"Call-ID: {call_id}"]
    contact = f"Contact: <sip:{caller}@198.51.100.7:5060>"
    return [
        (
            0.0,
            sip_message(
                f"INVITE sip:{callee}@gw.example.net;user=phone SIP/2.0",
                [
                    from_h,
                    to_h,
                    *common,
                    "CSeq: 1 INVITE",
                    contact,
                    f"P-Asserted-Identity: <sip:{caller}@pbx.example.org>",
                    "Session-Expires: 1800",
                ],
                SDP,
            ),
        ),
        (0.02, sip_message("SIP/2.0 100 Trying", [from_h, to_h, *common, "CSeq: 1 INVITE"])),
        (1.5, sip_message("SIP/2.0 180 Ringing", [from_h, to_tagged, *common, "CSeq: 1 INVITE"])),
        (
            6.0,
            sip_message(
                "SIP/2.0 200 OK", [from_h, to_tagged, *common, "CSeq: 1 INVITE", contact], SDP
            ),
        ),
        (
            6.05,
            sip_message(
                f"ACK sip:{callee}@203.0.113.9 SIP/2.0", [from_h, to_tagged, *common, "CSeq: 1 ACK"]
            ),
        ),
        (
            66.0,
            sip_message(
                f"BYE sip:{callee}@203.0.113.9 SIP/2.0", [from_h, to_tagged, *common, "CSeq: 2 BYE"]
            ),
        ),
        (66.05, sip_message("SIP/2.0 200 OK", [from_h, to_tagged, *common, "CSeq: 2 BYE"])),
    ]


def build_packets(calls: int, start: datetime | None = None, first: int = 0) -> list[bytes]:
    """HEPv3 packets of `calls` overlapping calls, in capture order, each message twice.

    Calls are numbered from `first` (distinct Call-IDs for separate runs) and
    start at `start` (a fixed date unless given).
    """
    if start is None:
        start = datetime(2024, 5, 1, tzinfo=UTC)
    timed: list[tuple[datetime, bytes]] = []
    for index in range(first, first + calls):
        setup = start + timedelta(milliseconds=10 * (index - first))  # 100 new calls per second
        for seconds, message in call_flow(index):
            for copy in range(2):
                ts = setup + timedelta(seconds=seconds, milliseconds=copy)
                timed.append((ts, message))
    timed.sort(key=lambda item: item[0])
    packets = []
    for ts, message in timed:
        epoch = int(ts.timestamp())
        packet = HepPacket(
            payload=message,
            time_seconds=epoch,
            time_micros=ts.microsecond,
            protocol_type=1,
            capture_id=2001,
            auth_key=b"bench-key",
            ip_family=2,
            ip_protocol=17,
            src_address=bytes((198, 51, 100, 7)),
            dst_address=bytes((192, 0, 2, 20)),
            src_port=5060,
            dst_port=5060,
        )
        packets.append(encode_hep(packet))
    return packets


def best_rate(label: str, work: Callable[[], int], count: int, runs: int) -> float:
    """Run `work` `runs` times; print and return the best rate in messages per CPU second.

    CPU time of this process (not wall time), so that other load on a shared
    machine does not count against the code; on an idle machine both agree.
    """
    best = float("inf")
    produced = 0
    for _ in range(runs):
        began = time.process_time()
        produced = work()
        best = min(best, time.process_time() - began)
    rate = count / best
    print(
        f"{label:<32} {rate:>9,.0f} messages/s on one core"
        f"  ({best / count * 1e6:5.2f} us each, {produced} records)"
    )
    return rate


class CountingSink:
    """Takes every redacted row and stores nothing, so that only the receive path (up to
    and including the intake's normalize and redact) is measured."""

    def __init__(self) -> None:
        self.records = 0

    def submit(self, row: StoredCdr, ack: Ack | None = None) -> bool:
        self.records += 1
        return True


def paced_sender(
    port: int, packets: list[bytes], rate: float, done: Any
) -> None:  # runs in its own process
    """Send `packets` to 127.0.0.1:`port` at `rate` per second, in bursts of 1 ms."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    burst = max(1, int(rate / 1000))
    began = time.perf_counter()
    sent = 0
    for offset in range(0, len(packets), burst):
        for packet in packets[offset : offset + burst]:
            sock.sendto(packet, target)
        sent += len(packets[offset : offset + burst])
        due = began + sent / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    done.put((sent, time.perf_counter() - began))
    sock.close()


async def udp_step(
    receiver: SipReceiver, telemetry: Telemetry, packets: list[bytes], rate: float
) -> tuple[int, int, float, float]:
    """One rate: (sent, received, achieved send rate, receiver CPU us per packet)."""
    port = receiver.addresses[0][1]
    accepted_before = (
        telemetry.registry.get_sample_value(
            "cdr_collector_packets_total",
            {"listener": "sip", "source": "bench", "outcome": "accepted"},
        )
        or 0.0
    )
    results: Any = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(
        target=paced_sender, args=(port, packets, rate, results)
    )
    cpu_before = time.process_time()
    process.start()
    loop = asyncio.get_running_loop()
    # a thread waits for the sender's report; the event loop keeps receiving meanwhile
    sent, elapsed = await loop.run_in_executor(None, results.get)
    await loop.run_in_executor(None, process.join)
    last = -1.0
    accepted = accepted_before
    while True:  # until the socket buffer is drained
        await asyncio.sleep(0.2)
        accepted = (
            telemetry.registry.get_sample_value(
                "cdr_collector_packets_total",
                {"listener": "sip", "source": "bench", "outcome": "accepted"},
            )
            or 0.0
        )
        if accepted == last:
            break
        last = accepted
    received = int(accepted - accepted_before)
    cpu = time.process_time() - cpu_before
    return sent, received, sent / elapsed, cpu / max(1, received) * 1e6


async def udp_benchmark(rates: list[float], seconds: float) -> None:
    """The receiver over loopback UDP at increasing rates; report the best loss-free one."""
    telemetry = Telemetry()
    privacy = PrivacyConfig(
        keys=(("b1", b"bench-pseudonym-key-0123456789ab"),), record_secret=b"r" * 32
    )
    config = SipConfig(listen=("127.0.0.1:0",), sources=(SipSource("bench", "127.0.0.1"),))
    writer = CountingSink()
    receiver = SipReceiver(config, Pipeline(Redactor(privacy), writer.submit), telemetry)
    receiver.bind()
    await receiver.start()
    sock = receiver._udp_sockets[0]
    print(
        f"UDP receiver on uvloop, SO_RCVBUF {sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}"
        " bytes; sender in another process"
    )
    best = 0.0
    first = 0
    try:
        for rate in rates:
            calls = max(1, int(rate * seconds / 14))
            # capture times around now, so that housekeeping does not expire the calls
            packets = build_packets(calls, datetime.now(UTC), first)
            first += calls
            records_before = writer.records
            sent, received, achieved, cpu_us = await udp_step(receiver, telemetry, packets, rate)
            lost = sent - received
            print(
                f"target {rate:>9,.0f}/s  sent {achieved:>9,.0f}/s  received {received:>8,}"
                f" of {sent:>8,}  lost {lost / sent:6.2%}  receiver CPU {cpu_us:5.1f} us/packet"
                f"  ({writer.records - records_before} records)"
            )
            if lost == 0:
                best = max(best, achieved)
    finally:
        await receiver.stop()
    print(f"highest rate received without loss: {best:,.0f} HEP packets/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per run (14 packets each)")
    parser.add_argument("--runs", type=int, default=5, help="runs per stage; the best is shown")
    parser.add_argument("--udp", action="store_true", help="also run the receiver over UDP")
    parser.add_argument(
        "--udp-rates",
        default="10000,20000,30000,40000,50000,60000,80000",
        help="packets per second to try, comma-separated",
    )
    parser.add_argument("--udp-seconds", type=float, default=3.0, help="seconds per rate")
    args = parser.parse_args()

    packets = build_packets(args.calls)
    count = len(packets)
    size = sum(len(p) for p in packets) / count
    print(f"{args.calls} calls, {count} HEPv3 packets, {size:.0f} bytes on average")

    def decode_only() -> int:
        for data in packets:
            decode_hep(data)
        return 0

    def decode_parse() -> int:
        for data in packets:
            parse_sip(decode_hep(data).payload)
        return 0

    def decode_parse_track() -> int:
        tracker = DialogTracker(max_dialogs=200_000, max_dialog_age_s=14_400.0)
        records = 0
        now = None
        for index, data in enumerate(packets):
            packet = decode_hep(data)
            msg = parse_sip(packet.payload, tracker.correlation_header)
            now = packet.timestamp
            assert now is not None
            records += len(tracker.feed(msg, now, "kamailio-1"))
            if index & 1023 == 0:
                records += len(tracker.expire(now))
        return records

    best_rate("decode_hep", decode_only, count, args.runs)
    best_rate("decode_hep + parse_sip", decode_parse, count, args.runs)
    best_rate("decode_hep + parse_sip + track", decode_parse_track, count, args.runs)

    if args.udp:
        import uvloop

        rates = [float(value) for value in args.udp_rates.split(",")]
        uvloop.run(udp_benchmark(rates, args.udp_seconds))


if __name__ == "__main__":
    main()
