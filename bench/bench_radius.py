"""Benchmark: RADIUS Stop records stored per second, end to end, with acknowledgement after commit.

Starts `cdr-collector run` as its own process against the local PostgreSQL
(database cdr_bench, recreated), then a lean loader in this process keeps a
window of Accounting-Requests in flight (Cisco-style Stops, each a new call)
and counts verified Accounting-Responses. Prints records/s, acknowledgement
latency percentiles, and the daemon's resident memory. A second phase sends
at a fixed rate (default: half the measured maximum) to measure latency
under steady load.

With `--workers N` the daemon runs N RADIUS processes (`[radius] workers`):
the loader then spreads its requests over `--source-ports` client ports
(the kernel gives each port to one process), and the figures include how
many packets each process read and the CPU time each used.

    python bench/bench_radius.py [--records 100000] [--window 2000] [--rate R] [--soak-seconds S]
                                 [--workers N] [--source-ports P]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compare import wait_ready  # noqa: E402  (bench/compare.py, beside this script)

from collector.formats.keys import write_private  # noqa: E402
from collector.receivers.radius import codec  # noqa: E402
from collector.traffic import cisco_attributes, make_calls  # noqa: E402

SECRET = b"bench-secret"
#: distinct number blocks (country code + 6 digits) the traffic draws from, like a
#: carrier's real mix; the prefix cache is keyed by them
BLOCKS = 5000
ADMIN_DSN = os.environ.get("CDR_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (the daemon and its RADIUS workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on the machine (server and backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


def per_worker_packets(port: int) -> list[float]:
    """RADIUS packets each process read (worker 0 first); empty with one process."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[int, float] = {}
    for line in text.splitlines():
        if line.startswith("cdr_collector_worker_packets_total{"):
            index = int(line.split('worker="')[1].split('"')[0])
            found[index] = float(line.rsplit(" ", 1)[1])
    return [found[index] for index in sorted(found)] if len(found) > 1 else []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Loader(asyncio.DatagramProtocol):
    """Keeps `window` requests in flight over many source ports; verifies every answer."""

    def __init__(
        self,
        packets: list[bytes],
        window: int,
        server: tuple[str, int],
        rate: float | None,
    ) -> None:
        self.packets = packets
        self.window = window
        self.server = server
        self.rate = rate
        self.next_index = 0
        self.in_flight: dict[tuple[int, int], tuple[bytes, float]] = {}
        self.latencies: list[float] = []
        self.done = asyncio.get_event_loop().create_future()
        self.transports: list[asyncio.DatagramTransport] = []
        self.free: list[tuple[int, int]] = []
        self.acked = 0
        self.bad = 0
        self.started = 0.0

    def send_more(self) -> None:
        now = time.monotonic()
        limit = len(self.packets)
        if self.rate:
            limit = min(limit, int((now - self.started) * self.rate) + 1)
        while self.free and self.next_index < limit and len(self.in_flight) < self.window:
            slot = self.free.pop()
            transport_index, identifier = slot
            index = self.next_index
            self.next_index += 1
            packet = codec.encode_accounting_request(identifier, self.packets[index], SECRET)
            self.in_flight[slot] = (packet[4:20], now)
            self.transports[transport_index].sendto(packet, self.server)

    def received(self, transport_index: int, data: bytes) -> None:
        slot = (transport_index, data[1])
        entry = self.in_flight.pop(slot, None)
        if entry is None:
            return
        request_authenticator, sent = entry
        if not codec.response_ok(data, request_authenticator, SECRET):
            self.bad += 1
        self.acked += 1
        self.latencies.append(time.monotonic() - sent)
        self.free.append(slot)
        if self.acked == len(self.packets) and not self.done.done():
            self.done.set_result(None)
        else:
            self.send_more()


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, loader: Loader, index: int) -> None:
        self.loader = loader
        self.index = index

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.loader.received(self.index, data)


async def load(
    packets: list[bytes],
    server: tuple[str, int],
    window: int,
    rate: float | None,
    source_ports: int = 0,
) -> Loader:
    """Send `packets` keeping `window` in flight, from `source_ports` client ports (at
    least enough for the window: 256 Identifiers each)."""
    loop = asyncio.get_running_loop()
    loader = Loader(packets, window, server, rate)
    sockets = max(source_ports, (window + 255) // 256)
    per_socket = min(256, (window + sockets - 1) // sockets)
    for index in range(sockets):
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_Socket, loader, index), local_addr=("127.0.0.1", 0)
        )
        loader.transports.append(transport)
        loader.free.extend((index, identifier) for identifier in range(per_socket))
    loader.started = time.monotonic()
    loader.send_more()
    if rate:

        async def pace() -> None:
            while not loader.done.done():
                loader.send_more()
                await asyncio.sleep(0.001)

        pacer = asyncio.create_task(pace())
    timeout = max(60.0, len(packets) / (rate or 2000) * 3)
    await asyncio.wait_for(loader.done, timeout)
    if rate:
        pacer.cancel()
    for transport in loader.transports:
        transport.close()
    return loader


def daemon_latency_buckets(port: int) -> dict[float, float]:
    """Cumulative ack_latency_seconds bucket counts from the daemon's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("cdr_collector_ack_latency_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            # one series per RADIUS client: summed
            buckets[upper] = buckets.get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def metric_value(port: int, name: str) -> float:
    """The sum of one metric's samples (all label sets) on the daemon's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_for_drain(port: int, limit_s: float = 300.0) -> tuple[float, float]:
    """Wait until the daemon's spool is empty; (records spooled in all, seconds waited)."""
    began = time.monotonic()
    while metric_value(port, "cdr_collector_spool_records") > 0:
        if time.monotonic() - began > limit_s:
            break
        await asyncio.sleep(0.5)
    return metric_value(port, "cdr_collector_records_spooled_total"), time.monotonic() - began


def histogram_summary(before: dict[float, float], after: dict[float, float]) -> str:
    """Which bucket holds the median and the 99th percentile of the observations in between."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    if not total:
        return "no observations"
    parts = []
    for q in (0.5, 0.99):
        bound = next(b for b, c in counts.items() if c >= q * total)
        parts.append(f"p{round(q * 100)} <= {bound * 1000:g} ms")
    within_50 = counts.get(0.05, 0.0) / total * 100
    return ", ".join(parts) + f", {within_50:.1f} % within 50 ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def build_packets(count: int) -> list[bytes]:
    calls = make_calls(count, blocks=BLOCKS)
    return [cisco_attributes(call) for call in calls]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="steady phase rate (default: half the max)"
    )
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument(
        "--soak-seconds", type=float, default=0.0, help="extra steady soak for memory"
    )
    parser.add_argument("--batch-max-records", type=int, default=1000)
    parser.add_argument("--batch-max-delay-ms", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, default=1, help="RADIUS processes ([radius] workers; default 1)"
    )
    parser.add_argument(
        "--source-ports",
        type=int,
        default=0,
        help="client ports the loader sends from (default: 256 requests a port, 64 with workers)",
    )
    args = parser.parse_args()
    ports = args.source_ports or (64 if args.workers > 1 else 0)

    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute("DROP DATABASE IF EXISTS cdr_bench WITH (FORCE)")
    await admin.execute("CREATE DATABASE cdr_bench")
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/cdr_bench"

    with tempfile.TemporaryDirectory(prefix="cdr-bench-") as tmp:
        directory = Path(tmp)
        write_private(directory / "keys", "b1:" + "QmVuY2htYXJrLXBzZXVkb255bS1rZXktMDEyMzQ1Ng==\n")
        write_private(directory / "record-key", "QmVuY2htYXJrLXJlY29yZC1rZXktMDEyMzQ1Njc4OQ==\n")
        port = free_port(socket.SOCK_DGRAM)
        metrics_port = free_port(socket.SOCK_STREAM)
        (directory / "c.toml").write_text(
            f'[database]\ndsn = "{dsn}"\nbatch_max_records = {args.batch_max_records}\n'
            f"batch_max_delay_ms = {args.batch_max_delay_ms}\n"
            f'[spool]\ndirectory = "{directory / "spool"}"\n'
            f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
            f'[logging]\nlevel = "warning"\n'
            f'[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n'
            f'[radius]\nlisten = ["127.0.0.1:{port}"]\nworkers = {args.workers}\n'
            f'[[radius.clients]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "{SECRET.decode()}"\nprofile = "cisco"\n'
        )
        daemon = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "--config", str(directory / "c.toml")],
            cwd=ROOT,
        )
        try:
            wait_ready(metrics_port, timeout=60.0)
            server = ("127.0.0.1", port)
            # warm-up (connections, partitions, caches)
            await load(build_packets(2000), server, 256, None, ports)
            sent = 2000 + args.records
            processes = process_tree(daemon.pid)
            rss_start = sum(rss_kib(pid) for pid in processes)

            packets = build_packets(args.records)
            cpu_before = [cpu_seconds(pid) for pid in processes]
            split_before = per_worker_packets(metrics_port)
            others_before = (cpu_seconds(os.getpid()), postgres_cpu_seconds(), machine_busy())
            began = time.monotonic()
            loader = await load(packets, server, args.window, None, ports)
            elapsed = time.monotonic() - began
            cpu = [cpu_seconds(pid) - was for pid, was in zip(processes, cpu_before, strict=True)]
            loader_cpu = cpu_seconds(os.getpid()) - others_before[0]
            postgres_cpu = postgres_cpu_seconds() - others_before[1]
            busy, ticks = machine_busy()
            busy_share = (busy - others_before[2][0]) / max(1.0, ticks - others_before[2][1])
            maximum = args.records / elapsed
            print(
                f"max load ({args.workers} RADIUS process(es), {len(loader.transports)} client "
                f"ports): {args.records} Stop records acknowledged after commit in {elapsed:.2f} s "
                f"= {maximum:,.0f} records/s (bad answers {loader.bad})"
            )
            split = [
                after - before
                for after, before in zip(
                    per_worker_packets(metrics_port), split_before or [0.0] * 64, strict=False
                )
            ]
            print(
                "  daemon CPU per process: "
                + ", ".join(f"{seconds / elapsed * 100:.0f} %" for seconds in cpu)
                + f" of a core; {sum(cpu) / args.records * 1e6:.0f} µs per record in all"
                + (
                    "; packets read per process: " + ", ".join(f"{count:,.0f}" for count in split)
                    if split
                    else ""
                )
            )
            print(
                f"  machine {busy_share * 100:.0f} % busy ({os.cpu_count()} CPUs): loader "
                f"{loader_cpu / elapsed * 100:.0f} %, PostgreSQL {postgres_cpu / elapsed * 100:.0f} %"
                f" of a core (the daemon: above)"
            )
            print(
                f"  ack latency p50 {percentile(loader.latencies, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(loader.latencies, 0.99) * 1000:.1f} ms, "
                f"max {max(loader.latencies) * 1000:.1f} ms"
            )

            rate = args.rate or maximum / 2
            count = int(rate * args.steady_seconds)
            before = daemon_latency_buckets(metrics_port)
            loader = await load(build_packets(count), server, args.window, rate, ports)
            sent += count
            after = daemon_latency_buckets(metrics_port)
            print(
                f"steady {rate:,.0f}/s for {args.steady_seconds:.0f} s ({count} records): "
                f"p50 {percentile(loader.latencies, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(loader.latencies, 0.99) * 1000:.1f} ms, "
                f"max {max(loader.latencies) * 1000:.1f} ms (seen by the loader)"
            )
            print(
                "  inside the daemon (request received -> response sent): "
                + histogram_summary(before, after)
            )
            if args.soak_seconds:
                samples = []
                soak_end = time.monotonic() + args.soak_seconds
                while time.monotonic() < soak_end:
                    chunk = int(rate * 30)
                    await load(build_packets(chunk), server, args.window, rate, ports)
                    sent += chunk
                    samples.append(sum(rss_kib(pid) for pid in processes))
                print(
                    "soak RSS (MiB, every 30 s): " + ", ".join(f"{s / 1024:.0f}" for s in samples)
                )
            rss_end = sum(rss_kib(pid) for pid in processes)
            print(
                f"daemon RSS: {rss_start / 1024:.0f} MiB after warm-up, {rss_end / 1024:.0f} MiB at the end"
            )
            spooled, waited = await wait_for_drain(metrics_port)
            if spooled:
                print(
                    f"spooled while the database lagged: {spooled:,.0f} records, "
                    f"spool empty {waited:.1f} s after the load ended"
                )
            conn = await asyncpg.connect(dsn)
            stored = await conn.fetchval("SELECT count(*) FROM cdrs")
            await conn.close()
            print(f"rows in cdrs: {stored} of {sent} calls sent")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
