"""FreeRADIUS + rlm_sql against cdr-collector: the same Stop records, the same client, one run.

What a carrier would otherwise run is FreeRADIUS with `rlm_sql_postgresql`
writing the stock `radacct` table. This script starts both on this machine
against the local PostgreSQL (databases `fr_compare` and `cdr_compare`,
recreated) and sends each the same Accounting-Request Stops with the same
load generator, so neither side is measured with the other's tools:

- FreeRADIUS 3.2 (Debian `freeradius`, `freeradius-postgresql`): a copy of
  /etc/freeradius/3.0 in a temporary directory, one virtual server whose
  accounting is `acct_unique` then `sql` and nothing else, the stock
  PostgreSQL schema and queries, its default thread pool;
- cdr-collector: `cdr-collector run` with the generic RFC 2866 profile,
  acknowledging each request once its record is committed.

The load generator is `bench/radload.c` (compiled with gcc at start): it
keeps `--window` requests in flight, verifies every answer's authenticator,
resends what is not answered within 3 s (up to 10 times) and reports the
latency from a request's first send to its valid answer. It costs about
5 µs of CPU per request, where FreeRADIUS's own `radclient` (`--loader
radclient`) costs about 80 µs and needs 90 % of a core at 11,000
requests/s, which capped what could be measured on a 2-core machine.

Both servers listen with the same 8 MiB socket receive buffer: with the
kernel's default (208 KiB) FreeRADIUS drops part of each burst of 512
requests and the client waits 3 s before each resend, which made FreeRADIUS
look ten times slower than it is. Each run is timed from the first request
until every record is a row (the table is counted, every 50 ms near the
end) and until the last answer. Printed for each server: both rates, rows
stored against calls sent, the loader's counts and latencies, and the CPU
seconds used meanwhile by the loader, by the server (its children
included), by PostgreSQL (its own processes and the backends of the
server's database, not the one that counts the rows) and by interrupts (the
loopback's packet delivery), in total and per record, and what all other
processes used (other work on a shared machine shows there). `--rate R`
adds a phase of as many new records sent at R requests/s (`half`: half the
stored rate just measured) for the latency at a load the server keeps up
with. Run as root (FreeRADIUS drops to its own user).

    bench/compare.sh [--records 50000] [--window 512] [--loader radload|radclient]
                     [--rate R|half] [--only collector|freeradius] [--workers N|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.formats.keys import write_private  # noqa: E402
from collector.receivers.radius import codec  # noqa: E402
from collector.receivers.radius import dictionary as d  # noqa: E402
from collector.traffic import Call, make_calls  # noqa: E402

SECRET = "compare-secret"
ADMIN_DSN = os.environ.get("CDR_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
RADDB = Path("/etc/freeradius/3.0")
#: bytes of socket receive buffer each server gets
RECEIVE_BUFFER = 8 * 1024 * 1024
#: the load generator's source, compiled at start
RADLOAD_SOURCE = Path(__file__).resolve().parent / "radload.c"
#: both loaders: resend after this many seconds, this many times
RESEND_AFTER_S = 3
RESENDS = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        sys.exit(f"{program} is missing: apt-get install {package}")
    return path


def request_text(call: Call) -> str:
    """One Stop in radclient's input format (attribute = value lines, blank line after)."""
    return (
        "Acct-Status-Type = Stop\n"
        f'Acct-Session-Id = "{call.session_id}"\n'
        'User-Name = "trunk-a"\n'
        "NAS-IP-Address = 127.0.0.1\n"
        f'Calling-Station-Id = "{call.calling}"\n'
        f'Called-Station-Id = "{call.called}"\n'
        f"Acct-Session-Time = {call.duration_ms // 1000}\n"
        f"Event-Timestamp = {int(call.disconnect.timestamp())}\n"
        "\n"
    )


def request_record(call: Call) -> bytes:
    """The same Stop as `request_text`, as radload reads it: 2-byte length, then the attributes."""
    attributes = b"".join(
        (
            codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_STOP)),
            codec.encode_attribute(d.ACCT_SESSION_ID, call.session_id.encode()),
            codec.encode_attribute(d.USER_NAME, b"trunk-a"),
            codec.encode_attribute(d.NAS_IP_ADDRESS, socket.inet_aton("127.0.0.1")),
            codec.encode_attribute(d.CALLING_STATION_ID, call.calling.encode()),
            codec.encode_attribute(d.CALLED_STATION_ID, call.called.encode()),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(call.duration_ms // 1000)),
            codec.encode_attribute(
                d.EVENT_TIMESTAMP, codec.integer(int(call.disconnect.timestamp()))
            ),
        )
    )
    return len(attributes).to_bytes(2, "big") + attributes


@dataclass
class Requests:
    """One set of new calls, in both loaders' input formats."""

    count: int
    text: Path
    binary: Path


def write_requests(directory: Path, name: str, count: int) -> Requests:
    calls = make_calls(count, blocks=5000)
    text = directory / f"{name}.txt"
    text.write_text("".join(request_text(call) for call in calls))
    binary = directory / f"{name}.bin"
    binary.write_bytes(b"".join(request_record(call) for call in calls))
    return Requests(count, text, binary)


def compile_radload(directory: Path) -> Path:
    """bench/radload.c built with gcc -O2, its MD5 checked against RFC 1321's vectors."""
    gcc = shutil.which("gcc")
    if gcc is None:
        sys.exit("gcc is missing (it builds bench/radload.c): apt-get install gcc")
    binary = directory / "radload"
    built = subprocess.run(
        [gcc, "-O2", "-std=c99", "-Wall", "-o", str(binary), str(RADLOAD_SOURCE)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        sys.exit(f"gcc could not build {RADLOAD_SOURCE}:\n{built.stderr}")
    checked = subprocess.run([str(binary), "--self-test"], capture_output=True, text=True)
    if checked.returncode != 0:
        sys.exit(f"radload --self-test failed:\n{checked.stdout}{checked.stderr}")
    return binary


async def recreate(name: str) -> str:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def freeradius_tree(directory: Path, port: int, dsn: str) -> Path:
    """A FreeRADIUS configuration: the stock tree, one accounting server, sql to `dsn`."""
    raddb = directory / "raddb"
    shutil.copytree(RADDB, raddb, symlinks=True)
    # no other site; of the modules only those the stock queries need (expr: %{tolower:})
    for entry in (raddb / "sites-enabled").iterdir():
        entry.unlink()
    for entry in (raddb / "mods-enabled").iterdir():
        if entry.name not in ("expr", "always"):
            entry.unlink()
    database = dsn.rsplit("/", 1)[1]
    sql = (raddb / "mods-available" / "sql").read_text()
    sql = sql.replace('dialect = "sqlite"', 'dialect = "postgresql"', 1)
    sql = sql.replace('driver = "rlm_sql_null"', 'driver = "rlm_sql_${dialect}"', 1)
    sql = re.sub(r'(?m)^\s*#?\s*server = "localhost"', '\tserver = "127.0.0.1"', sql, count=1)
    sql = re.sub(r"(?m)^\s*#?\s*port = 3306", "\tport = 5432", sql, count=1)
    sql = re.sub(r'(?m)^\s*#?\s*login = "radius"', '\tlogin = "root"', sql, count=1)
    sql = re.sub(r'(?m)^\s*#?\s*password = "radpass"', '\tpassword = ""', sql, count=1)
    sql = sql.replace('radius_db = "radius"', f'radius_db = "{database}"', 1)
    (raddb / "mods-enabled" / "sql").write_text(sql)
    (raddb / "sites-enabled" / "compare").write_text(
        "server compare {\n"
        f"\tlisten {{\n\t\ttype = acct\n\t\tipaddr = 127.0.0.1\n\t\tport = {port}\n"
        # the receive buffer cdr-collector asks for (sip/radius receive_buffer_bytes),
        # so that neither drops a burst the other would have queued
        f"\t\trecv_buff = {RECEIVE_BUFFER}\n\t}}\n"
        "\tpreacct {\n\t\tacct_unique\n\t}\n"
        "\taccounting {\n\t\tsql\n\t}\n"
        "}\n"
    )
    (raddb / "clients.conf").write_text(
        f"client compare {{\n\tipaddr = 127.0.0.1\n\tsecret = {SECRET}\n}}\n"
    )
    # radiusd.conf as shipped, but logging to stdout and no pid file of the system's
    conf = (raddb / "radiusd.conf").read_text()
    conf = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {directory}", conf, count=1)
    (raddb / "radiusd.conf").write_text(conf)
    return raddb


@dataclass
class ProcessCpu:
    """One process as /proc shows it now."""

    name: str
    parent: int
    #: clock ticks of CPU it used itself, and its reaped children
    own: int
    children: int


def process_stats() -> dict[int, ProcessCpu]:
    """Every process now, by pid."""
    found: dict[int, ProcessCpu] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        # after "pid (comm)": state ppid ... utime stime cutime cstime (fields 14-17 of proc(5))
        fields = [int(value) for value in raw[raw.rindex(")") + 2 :].split()[1:15]]
        found[int(entry.name)] = ProcessCpu(
            name, fields[0], fields[10] + fields[11], fields[12] + fields[13]
        )
    return found


#: a backend's process title: "postgres: CLUSTER: USER DATABASE HOST(PORT) STATE"
BACKEND_TITLE = re.compile(r"postgres: (?:[^:]+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])")


def serves_other_database(pid: int, database: str) -> bool:
    """Whether a postgres process is a backend connected to another database."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    found = BACKEND_TITLE.match(title)
    return found is not None and found.group(1) != database


@dataclass
class CpuSample:
    """CPU seconds used so far by the server's process tree, by PostgreSQL and by the machine."""

    server_s: float
    postgres_s: float
    #: busy time of all cores (/proc/stat): what the others leave is everyone else's
    machine_s: float
    #: of which interrupts and softirqs (the loopback's packet delivery), charged to no process
    interrupts_s: float

    @classmethod
    def take(cls, server_pid: int, database: str, counting_backend: int) -> CpuSample:
        stats = process_stats()
        tree = {server_pid}
        grew = True
        while grew:  # the server's descendants, however deep
            grown = {pid for pid, process in stats.items() if process.parent in tree}
            grew = not grown <= tree
            tree |= grown
        server = sum(stats[pid].own + stats[pid].children for pid in tree if pid in stats)
        # PostgreSQL's own processes and the backends of `database` (others on a shared
        # machine use the same server); a backend that exits meanwhile is not counted
        postgres = sum(
            process.own
            for pid, process in stats.items()
            if process.name == "postgres"
            and pid != counting_backend
            and not serves_other_database(pid, database)
        )
        # cpu user nice system idle iowait irq softirq steal ...
        ticks = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        ]
        busy = sum(ticks) - ticks[3] - ticks[4]
        interrupts = ticks[5] + ticks[6]
        return cls(
            server / CLOCK_TICKS,
            postgres / CLOCK_TICKS,
            busy / CLOCK_TICKS,
            interrupts / CLOCK_TICKS,
        )


@dataclass
class Phase:
    """One loader run against one server."""

    records: int
    #: seconds from the first request until every record was a row
    stored_s: float
    #: seconds until the loader had every answer (resends of unanswered requests included)
    answered_s: float
    rows: int
    #: the loader's counts and latencies (radload's summary line, radclient's totals)
    report: dict[str, str]
    loader_cpu_s: float
    server_cpu_s: float
    postgres_cpu_s: float
    #: the whole machine's busy CPU time meanwhile, and its interrupts' part
    machine_cpu_s: float
    interrupts_cpu_s: float

    def describe(self, name: str) -> str:
        stored = self.records / self.stored_s
        answered = self.records / self.answered_s
        report = self.report
        counts = ", ".join(
            f"{key} {report[key]}"
            for key in ("accepted", "rejected", "bad", "stale", "lost", "retransmits")
            if key in report
        )
        if "p50_ms" in report:
            counts += (
                f"; latency p50 {float(report['p50_ms']):.1f} ms, "
                f"p99 {float(report['p99_ms']):.1f} ms, max {float(report['max_ms']):.1f} ms"
            )
        per_record = 1e6 / self.records
        ours = self.loader_cpu_s + self.server_cpu_s + self.postgres_cpu_s
        # other workers on a shared machine show here (and this script's counting)
        others = max(0.0, self.machine_cpu_s - self.interrupts_cpu_s - ours)
        available = (os.cpu_count() or 1) * self.answered_s
        return (
            f"  {name:22} {stored:9,.0f} records/s stored "
            f"({self.rows} rows for {self.records} calls{'' if self.rows == self.records else ' !'}"
            f" in {self.stored_s:.2f} s); every answer after {self.answered_s:.2f} s"
            f" = {answered:,.0f}/s\n"
            f"  {'':22} loader: {counts}\n"
            f"  {'':22} CPU s (µs/record): loader {self.loader_cpu_s:.2f}"
            f" ({self.loader_cpu_s * per_record:.1f}), server {self.server_cpu_s:.2f}"
            f" ({self.server_cpu_s * per_record:.1f}), PostgreSQL {self.postgres_cpu_s:.2f}"
            f" ({self.postgres_cpu_s * per_record:.1f}), interrupts {self.interrupts_cpu_s:.2f}"
            f" ({self.interrupts_cpu_s * per_record:.1f}); all other processes {others:.2f}"
            f" of the {available:.2f} the machine had"
        )


def radload_report(text: str) -> dict[str, str]:
    """radload's summary line as key -> value."""
    lines = [line for line in text.splitlines() if line.startswith("sent=")]
    if not lines:
        return {"output": text.strip()[:300]}
    return dict(field.split("=", 1) for field in lines[-1].split())


def radclient_report(text: str) -> dict[str, str]:
    """radclient's packet summary ("Accepted : 3000" ...) as key -> value."""
    found = re.findall(r"(?m)^\s*(Accepted|Rejected|Lost)\s*:\s*(\d+)", text)
    if not found:
        return {"output": text.strip()[:300]}
    return {name.lower(): count for name, count in found}


@dataclass
class Loader:
    """The client program and how to call it."""

    name: str
    #: the compiled radload; None for radclient
    radload: Path | None
    window: int

    def command(self, port: int, requests: Requests, rate: float | None) -> list[str]:
        target = f"127.0.0.1:{port}"
        if self.radload is None:
            return [
                "radclient", "-q", "-s", "-f", str(requests.text), "-p", str(self.window),
                "-r", str(RESENDS), "-t", str(RESEND_AFTER_S), target, "acct", SECRET,
            ]  # fmt: skip
        command = [
            str(self.radload), "-w", str(self.window), "-t", str(RESEND_AFTER_S),
            "-r", str(RESENDS), "-s", SECRET, "-f", str(requests.binary),
            # never longer than a slow server at 100 records/s would need
            "-d", str(max(600, requests.count // 100)),
        ]  # fmt: skip
        if rate is not None:
            command += ["-R", f"{rate:.0f}"]
        return [*command, target]

    def report(self, text: str) -> dict[str, str]:
        return radclient_report(text) if self.radload is None else radload_report(text)


@dataclass
class Server:
    """A running server under test."""

    pid: int
    port: int
    dsn: str
    table: str


async def measure(
    loader: Loader, server: Server, requests: Requests, rate: float | None, output: Path
) -> Phase:
    """Send every request of `requests`, counting the rows of the server's table meanwhile."""
    conn = await asyncpg.connect(server.dsn)
    try:
        backend = conn.get_server_pid()
        rows_before: int = await conn.fetchval(f"SELECT count(*) FROM {server.table}")
        wanted = rows_before + requests.count
        database = server.dsn.rsplit("/", 1)[1]
        cpu_before = CpuSample.take(server.pid, database, backend)
        began = time.monotonic()
        with output.open("wb") as sink:
            client = subprocess.Popen(
                loader.command(server.port, requests, rate),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        # wait4 rather than the Popen: it gives this child's own CPU time
        ended = asyncio.ensure_future(asyncio.to_thread(os.wait4, client.pid, 0))
        stored_s: float | None = None
        pause = 0.05
        while not ended.done():
            if stored_s is None:
                count: int = await conn.fetchval(f"SELECT count(*) FROM {server.table}")
                elapsed = time.monotonic() - began
                if count >= wanted:
                    stored_s = elapsed
                elif count > rows_before:
                    # a count of 200,000 rows costs PostgreSQL 20-40 ms: every 50 ms
                    # only near the end, which is then known to within 50 ms
                    remaining = elapsed * (wanted - count) / (count - rows_before)
                    pause = min(1.0, max(0.05, remaining / 2))
            await asyncio.wait({ended}, timeout=pause)
        answered_s = time.monotonic() - began
        _, status, usage = await ended
        client.returncode = os.waitstatus_to_exitcode(status)
        cpu_after = CpuSample.take(server.pid, database, backend)
        # every answered request is durable: what is there now is all there will be
        rows: int = await conn.fetchval(f"SELECT count(*) FROM {server.table}") - rows_before
        text = await asyncio.to_thread(output.read_text, errors="replace")
    finally:
        await conn.close()
    return Phase(
        records=requests.count,
        stored_s=stored_s or answered_s,
        answered_s=answered_s,
        rows=rows,
        report=loader.report(text),
        loader_cpu_s=usage.ru_utime + usage.ru_stime,
        server_cpu_s=cpu_after.server_s - cpu_before.server_s,
        postgres_cpu_s=cpu_after.postgres_s - cpu_before.postgres_s,
        machine_cpu_s=cpu_after.machine_s - cpu_before.machine_s,
        interrupts_cpu_s=cpu_after.interrupts_s - cpu_before.interrupts_s,
    )


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("cdr-collector did not become ready")


@asynccontextmanager
async def freeradius(directory: Path, _workers: str) -> AsyncIterator[Server]:
    """FreeRADIUS + rlm_sql on a fresh `fr_compare` database, until the block ends
    (its own default thread pool: the collector's `workers` is not its setting)."""
    dsn = await recreate("fr_compare")
    schema = RADDB / "mods-config" / "sql" / "main" / "postgresql" / "schema.sql"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(schema.read_text())
    finally:
        await conn.close()
    port = free_port(socket.SOCK_DGRAM)
    raddb = freeradius_tree(directory / "freeradius", port, dsn)
    # its log goes to a file: a pipe nobody reads fills up and stops its threads mid-run
    log = directory / "freeradius.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            ["freeradius", "-f", "-l", "stdout", "-d", str(raddb)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        await asyncio.sleep(2.0)
        if server.poll() is not None:
            raise RuntimeError("FreeRADIUS did not start:\n" + log.read_text(errors="replace"))
        yield Server(server.pid, port, dsn, "radacct")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        complaints = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if re.search(r"(?i)\b(error|warning)\b", line)
        ]
        if complaints:
            print(f"  FreeRADIUS logged {len(complaints)} errors/warnings, first: {complaints[0]}")


@asynccontextmanager
async def collector(directory: Path, workers: str) -> AsyncIterator[Server]:
    """`cdr-collector run` on a fresh `cdr_compare` database, until the block ends."""
    dsn = await recreate("cdr_compare")
    home = directory / "collector"
    home.mkdir()
    write_private(home / "keys", "c1:" + base64.b64encode(os.urandom(32)).decode() + "\n")
    write_private(home / "record-key", base64.b64encode(os.urandom(32)).decode() + "\n")
    port = free_port(socket.SOCK_DGRAM)
    metrics_port = free_port(socket.SOCK_STREAM)
    config = home / "collector.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n'
        f'[spool]\ndirectory = "{home / "spool"}"\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        '[logging]\nlevel = "warning"\n'
        '[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n'
        f'[radius]\nlisten = ["127.0.0.1:{port}"]\nreceive_buffer_bytes = {RECEIVE_BUFFER}\n'
        + (f"workers = {workers}\n" if workers.isdigit() else f'workers = "{workers}"\n')
        + f'[[radius.clients]]\nname = "compare"\naddress = "127.0.0.1"\nsecret = "{SECRET}"\n'
        'profile = "generic"\n'
    )
    # started in its own directory: the package is the one installed for this
    # interpreter (CDR_BENCH_PYTHON, see compare.sh), not this checkout's sources
    daemon = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config)], cwd=home
    )
    try:
        wait_ready(metrics_port)
        yield Server(daemon.pid, port, dsn, "cdrs")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


SERVERS = {
    "freeradius": ("FreeRADIUS + rlm_sql", freeradius),
    "collector": ("cdr-collector", collector),
}


def rate_option(text: str) -> str:
    """--rate: requests/s, or 'half' (of the stored rate just measured)."""
    if text != "half":
        try:
            if float(text) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError("a rate in requests/s, or 'half'") from None
    return text


def fixed_rate_text(rate: str) -> str:
    return "half the maximum" if rate == "half" else f"{float(rate):,.0f} requests/s"


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=512, help="requests in flight")
    parser.add_argument("--loader", choices=("radload", "radclient"), default="radload")
    parser.add_argument(
        "--rate",
        type=rate_option,
        help="add a phase of as many new records at this many requests/s ('half': of the maximum)",
    )
    parser.add_argument("--only", choices=tuple(SERVERS), help="run one server only")
    parser.add_argument(
        "--workers",
        default="auto",
        help="the collector's [radius] workers (processes serving RADIUS): N or auto",
    )
    args = parser.parse_args(argv)
    if args.rate is not None and args.loader == "radclient":
        parser.error("--rate needs --loader radload (radclient has no fixed rate)")
    return args


async def main() -> None:
    args = parse()
    names = [args.only] if args.only else list(SERVERS)
    if "freeradius" in names:
        require("freeradius", "freeradius freeradius-postgresql")
        if not (Path("/usr/lib/freeradius") / "rlm_sql_postgresql.so").exists():
            sys.exit("rlm_sql_postgresql is missing: apt-get install freeradius-postgresql")
    with tempfile.TemporaryDirectory(prefix="cdr-compare-") as tmp:
        directory = Path(tmp)
        if args.loader == "radclient":
            require("radclient", "freeradius-utils")
            loader = Loader("radclient", None, args.window)
        else:
            loader = Loader("radload", compile_radload(directory), args.window)
        requests = write_requests(directory, "stops", args.records)
        # the fixed-rate phase sends new calls: the same ones again would be duplicates
        at_rate = write_requests(directory, "stops-rate", args.records) if args.rate else None
        print(
            f"{args.records} Stop records, {loader.name} window {args.window}, one run"
            + (f", then {args.records} more at {fixed_rate_text(args.rate)}" if args.rate else "")
        )
        stored: dict[str, float] = {}
        answered: dict[str, float] = {}
        for key in names:
            name, start = SERVERS[key]
            async with start(directory, args.workers) as server:
                phase = await measure(loader, server, requests, None, directory / "out.txt")
                stored[key] = phase.records / phase.stored_s
                answered[key] = phase.records / phase.answered_s
                print(phase.describe(name))
                if at_rate is not None:
                    rate = stored[key] / 2 if args.rate == "half" else float(args.rate)
                    fixed = await measure(loader, server, at_rate, rate, directory / "out.txt")
                    print(fixed.describe(f"  at {rate:,.0f} requests/s"))
        if len(stored) == 2:
            print(
                "  ratio cdr-collector / FreeRADIUS: "
                f"{stored['collector'] / stored['freeradius']:.1f} (stored), "
                f"{answered['collector'] / answered['freeradius']:.1f} (answered)"
            )


if __name__ == "__main__":
    asyncio.run(main())
