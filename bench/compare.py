"""FreeRADIUS + rlm_sql against cdr-collector: the same Stop records, the same client, one run.

What a carrier would otherwise run is FreeRADIUS with `rlm_sql_postgresql`
writing the stock `radacct` table. This script starts both on this machine
against the local PostgreSQL (databases `fr_compare` and `cdr_compare`,
recreated) and sends each the same file of Accounting-Request Stops with
FreeRADIUS's own `radclient` (a C client that keeps `--window` requests in
flight and resends what is not answered), so neither side is measured with
the other's tools:

- FreeRADIUS 3.2 (Debian `freeradius`, `freeradius-postgresql`): a copy of
  /etc/freeradius/3.0 in a temporary directory, one virtual server whose
  accounting is `acct_unique` then `sql` and nothing else, the stock
  PostgreSQL schema and queries, its default thread pool;
- cdr-collector: `cdr-collector run` with the generic RFC 2866 profile,
  acknowledging each request once its record is committed.

Both listen with the same 8 MiB socket receive buffer: with the kernel's
default (208 KiB) FreeRADIUS drops part of each burst of 512 requests and
radclient waits 3 s before each resend, which made FreeRADIUS look ten
times slower than it is. Each run is timed from the first request until
every record is a row (the table is counted every 50 ms) and until the last
answer. Printed: both rates, their ratio, rows stored against calls sent,
and radclient's accepted, rejected and lost. Run as root (FreeRADIUS drops
to its own user).

    bench/compare.sh [--records 50000] [--window 512]
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
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.formats.keys import write_private  # noqa: E402
from collector.traffic import Call, make_calls  # noqa: E402

SECRET = "compare-secret"
ADMIN_DSN = os.environ.get("CDR_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
RADDB = Path("/etc/freeradius/3.0")
#: bytes of socket receive buffer each server gets
RECEIVE_BUFFER = 8 * 1024 * 1024


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
class Run:
    """One server's run: when the last row was stored and the last answer came."""

    #: seconds from the first request until every record was a row
    stored_s: float
    #: seconds until radclient had every answer (resends of unanswered requests included)
    answered_s: float
    rows: int
    report: str


async def radclient(
    port: int, requests: Path, wanted: int, window: int, dsn: str, table: str
) -> Run:
    """Send every request of the file (`wanted` of them), counting the rows of `table`."""
    conn = await asyncpg.connect(dsn)
    try:
        began = time.monotonic()
        client = await asyncio.create_subprocess_exec(
            "radclient", "-q", "-s", "-f", str(requests), "-p", str(window),
            "-r", "10", "-t", "3", f"127.0.0.1:{port}", "acct", SECRET,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output = asyncio.ensure_future(client.communicate())
        stored_s: float | None = None
        while not output.done():
            if stored_s is None and await conn.fetchval(f"SELECT count(*) FROM {table}") >= wanted:
                stored_s = time.monotonic() - began
            await asyncio.wait({output}, timeout=0.05)
        answered_s = time.monotonic() - began
        # every answered request is durable: what is there now is all there will be
        rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
        out, _ = await output
    finally:
        await conn.close()
    return Run(stored_s or answered_s, answered_s, rows, out.decode(errors="replace").strip())


def summary_line(text: str) -> str:
    """radclient's packet summary on one line ("accepted 3000, rejected 0, lost 0")."""
    found = re.findall(r"(?m)^\s*(Accepted|Rejected|Lost)\s*:\s*(\d+)", text)
    return ", ".join(f"{name.lower()} {count}" for name, count in found)


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


async def run_freeradius(directory: Path, requests: Path, records: int, window: int) -> Run:
    dsn = await recreate("fr_compare")
    schema = RADDB / "mods-config" / "sql" / "main" / "postgresql" / "schema.sql"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(schema.read_text())
    finally:
        await conn.close()
    port = free_port(socket.SOCK_DGRAM)
    raddb = freeradius_tree(directory / "freeradius", port, dsn)
    server = subprocess.Popen(
        ["freeradius", "-f", "-l", "stdout", "-d", str(raddb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await asyncio.sleep(2.0)
        if server.poll() is not None:
            raise RuntimeError(
                "FreeRADIUS did not start:\n" + (server.stdout.read() if server.stdout else "")
            )
        run = await radclient(port, requests, records, window, dsn, "radacct")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return run


async def run_collector(directory: Path, requests: Path, records: int, window: int) -> Run:
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
        f'[[radius.clients]]\nname = "compare"\naddress = "127.0.0.1"\nsecret = "{SECRET}"\n'
        'profile = "generic"\n'
    )
    daemon = subprocess.Popen([sys.executable, "-m", "collector", "run", "--config", str(config)])
    try:
        wait_ready(metrics_port)
        run = await radclient(port, requests, records, window, dsn, "cdrs")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    require("radclient", "freeradius-utils")
    require("freeradius", "freeradius freeradius-postgresql")
    if not (Path("/usr/lib/freeradius") / "rlm_sql_postgresql.so").exists():
        sys.exit("rlm_sql_postgresql is missing: apt-get install freeradius-postgresql")
    calls = make_calls(args.records, blocks=5000)
    with tempfile.TemporaryDirectory(prefix="cdr-compare-") as tmp:
        directory = Path(tmp)
        requests = directory / "stops.txt"
        requests.write_text("".join(request_text(call) for call in calls))
        print(f"{args.records} Stop records, radclient window {args.window}, one run")
        stored: dict[str, float] = {}
        answered: dict[str, float] = {}
        for name, runner in (
            ("FreeRADIUS + rlm_sql", run_freeradius),
            ("cdr-collector", run_collector),
        ):
            run = await runner(directory, requests, args.records, args.window)
            stored[name] = args.records / run.stored_s
            answered[name] = args.records / run.answered_s
            print(
                f"  {name:22} {stored[name]:9,.0f} records/s stored "
                f"({run.rows} rows for {args.records} calls in {run.stored_s:.2f} s); "
                f"every answer after {run.answered_s:.2f} s = {answered[name]:,.0f}/s; "
                f"radclient: {summary_line(run.report) or run.report[:200]}"
            )
        fr, cc = "FreeRADIUS + rlm_sql", "cdr-collector"
        print(
            f"  ratio cdr-collector / FreeRADIUS: {stored[cc] / stored[fr]:.1f} (stored), "
            f"{answered[cc] / answered[fr]:.1f} (answered)"
        )


if __name__ == "__main__":
    asyncio.run(main())
