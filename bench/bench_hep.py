"""Throughput of the SIP receive path without sockets: HEPv3 decode, SIP parse, dialog tracking.

Run it as `python bench/bench_hep.py [--calls N] [--runs N]`. It builds
realistic captured call flows (INVITE and 200 with SDP, 100, 180, ACK, BYE,
200; every message mirrored twice as a proxy's capture agent sends them),
wraps them in HEPv3 as Kamailio's siptrace would, then times each stage on
one core and prints messages per second. It does no I/O and touches no
database; it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.receivers.sip.dialogs import DialogTracker
from collector.receivers.sip.hep import HepPacket, decode_hep, encode_hep
from collector.receivers.sip.message import parse_sip

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


def build_packets(calls: int) -> list[bytes]:
    """HEPv3 packets of `calls` overlapping calls, in capture order, each message twice."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    timed: list[tuple[datetime, bytes]] = []
    for index in range(calls):
        setup = start + timedelta(milliseconds=10 * index)  # 100 new calls per second
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per run (14 packets each)")
    parser.add_argument("--runs", type=int, default=5, help="runs per stage; the best is shown")
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


if __name__ == "__main__":
    main()
