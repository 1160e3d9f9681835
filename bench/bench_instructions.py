"""Benchmark: CPU instructions per RADIUS Stop record, compiled (mypyc) and pure Python.

Counts instructions with valgrind's callgrind (this works where perf has no
hardware counters, and is steady on a busy machine, unlike time) for the
daemon's in-process path of one record: the RADIUS receiver's datagram
handler (client look-up, duplicate cache, decode, Request Authenticator,
the Cisco or the generic profile), the intake (normalize, redact), the writer's queue, and
the acknowledgement (the Accounting-Response, its authenticator, the
latency histogram). No socket I/O and no database: the answers go to a
transport that keeps them, and batches of 1,000 rows are acknowledged as
committed. The COPY itself is left out: its rows are encoded by asyncpg
(`copy_records_to_table`) with the type codecs of a live connection.

Each build runs twice under callgrind on the same packets, after the same
warm-up (2,000 records: caches filled as a running daemon has them): once
with N more records, once with none. The difference, divided by N, is the
cost of one record; start-up, imports and the warm-up cancel out. The
pure-Python run sets CDR_COLLECTOR_PURE_PYTHON=1 on the same installation.
Cisco-style Stops, each a new call, numbers from 5,000 number blocks, as in
bench_radius.py; `--profile generic` sends plain RFC 2866 Stops (Event-Timestamp,
Acct-Session-Time, the numbers, a User-Name) to a client with the generic
profile, as bench/compare.sh does. A warm-up shorter than the number blocks
leaves billing-prefix cache misses (phonenumbers, about 100 µs each) in the
measured records.

    python bench/bench_instructions.py [--records 20000] [--warmup 2000] [--profile cisco|generic]

Needs valgrind (Debian: apt-get install valgrind); about 4 minutes for both
builds with the default 20,000 records on the development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector import compiled  # noqa: E402

SECRET = b"bench-secret"
#: as bench_radius.py: distinct number blocks (country code + 6 digits) the traffic draws from
BLOCKS = 5000
#: rows acknowledged together, as one committed batch
BATCH = 1000
CLIENT = ("127.0.0.1", 40000)


def write_packets(path: Path, count: int, profile: str = "cisco") -> None:
    """`count` signed Stops of `profile`, each a new call, length-prefixed."""
    from collector.receivers.radius import codec
    from collector.receivers.radius import dictionary as d
    from collector.traffic import cisco_attributes, generic_attributes, make_calls

    calls = make_calls(count, seed=7, now=datetime.now(UTC), blocks=BLOCKS)
    with path.open("wb") as out:
        for index, call in enumerate(calls):
            if profile == "generic":
                attributes = generic_attributes(call) + codec.encode_attribute(
                    d.USER_NAME, b"trunk-a"
                )
            else:
                attributes = cisco_attributes(call)
            packet = codec.encode_accounting_request(index % 256, attributes, SECRET)
            out.write(len(packet).to_bytes(2, "big") + packet)


def read_packets(path: Path) -> list[bytes]:
    data = path.read_bytes()
    packets = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 2], "big")
        packets.append(data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return packets


class _Transport(asyncio.DatagramTransport):
    """Where the answers go: counted, not sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self.sent += 1

    def is_closing(self) -> bool:
        return False


def worker(packets_file: Path, warmup: int, records: int, profile: str) -> None:
    """Process `warmup` records, then `records` more, in this process (run under callgrind)."""
    from collector.config import PrivacyConfig, ServiceConfig
    from collector.pipeline.intake import Pipeline
    from collector.pipeline.redact import Redactor
    from collector.receivers.radius.config import RadiusClient, RadiusConfig
    from collector.receivers.radius.receiver import RadiusReceiver, _Endpoint
    from collector.sink.writer import Writer
    from collector.telemetry import Health, Telemetry

    packets = read_packets(packets_file)
    assert len(packets) >= warmup + records, "fewer packets than records"
    telemetry = Telemetry()
    writer = Writer(
        ServiceConfig(queue_max_records=10 * BATCH), None, None, None, telemetry, Health()
    )
    privacy = PrivacyConfig(
        keys=(("b1", b"bench-pseudonym-key-0123456789ab"),), record_secret=b"r" * 32
    )
    config = RadiusConfig(
        listen=(), clients=(RadiusClient("bench", CLIENT[0], SECRET, profile=profile),)
    )
    receiver = RadiusReceiver(config, Pipeline(Redactor(privacy), writer.submit), telemetry)
    transport = _Transport()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:  # never bound: no I/O
        endpoint = _Endpoint(unused, receiver._handle, lambda: None)
        endpoint.connection_made(transport)
        handle = endpoint.datagram_received
        queue = writer._items
        for index in range(warmup + records):
            handle(packets[index], CLIENT)
            if len(queue) >= BATCH or index == warmup + records - 1:
                batch = list(queue)
                queue.clear()
                Writer._fire(batch, True)
    accepted = telemetry.packets.labels("radius", "bench", "accepted").value
    if accepted != warmup + records or transport.sent != accepted:
        raise SystemExit(f"only {accepted:.0f} of {warmup + records} records were accepted")


def instructions(packets_file: Path, warmup: int, records: int, pure: bool, profile: str) -> int:
    """Instructions callgrind counted for one worker run."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop(compiled.PURE_PYTHON_VARIABLE, None)
    if pure:
        env[compiled.PURE_PYTHON_VARIABLE] = "1"
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--worker",
                str(packets_file),
                "--warmup",
                str(warmup),
                "--records",
                str(records),
                "--profile",
                profile,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        totals = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.MULTILINE)
        assert totals is not None, "no totals in the callgrind output"
        return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000, help="records measured")
    parser.add_argument("--warmup", type=int, default=2000, help="records before (not measured)")
    parser.add_argument("--profile", choices=("cisco", "generic"), default="cisco")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.warmup, args.records, args.profile)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    modules = compiled.compiled_modules()
    if not any(modules.values()):
        print(f"note: this installation is not compiled ({compiled.pure_python_reason()})")
    print(
        f"{sum(modules.values())} of {len(modules)} hot modules compiled; {args.records:,}"
        f" {args.profile} Stops after {args.warmup:,} of warm-up; instructions counted by callgrind"
    )
    with tempfile.TemporaryDirectory() as directory:
        packets = Path(directory) / "packets"
        write_packets(packets, args.warmup + args.records, args.profile)
        results = {}
        for name, pure in (("compiled", False), ("pure Python", True)):
            started = time.monotonic()
            with_records = instructions(packets, args.warmup, args.records, pure, args.profile)
            without = instructions(packets, args.warmup, 0, pure, args.profile)
            results[name] = (with_records - without) / args.records
            print(
                f"{name:>12}: {results[name]:>9,.0f} instructions/record"
                f"  (runs: {with_records:,} and {without:,} without the records;"
                f" {time.monotonic() - started:.0f} s)",
                flush=True,
            )
    print(f"pure Python / compiled: {results['pure Python'] / results['compiled']:.2f}")


if __name__ == "__main__":
    main()
