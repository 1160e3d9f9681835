"""RADIUS on several processes: `[radius] workers = N`, and several whole daemons.

The real daemon, real sockets, a real PostgreSQL and FreeRADIUS's `radclient`
as the switch. Many radclient processes (each its own source port) spread
their requests over the processes; the tests check that every process read
some (`cdr_collector_worker_packets_total{worker}`), that every request is
answered and every call is one row, also when the same traffic comes again
after its answers and while it is in flight (retransmissions), under
SO_REUSEPORT and under socket activation, where every process reads one
socket; that SIGHUP reaches every process, SIGTERM drains them all, a killed
worker is started again and what it spooled is replayed, and that a spool
left behind by a worker no longer configured is replayed too. Last, two whole
daemons taking the same retransmitted traffic into one database under load
(the README's "Past one machine") store each call once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.config import parse_config
from collector.receivers.radius import codec
from collector.receivers.radius.config import MAX_WORKERS, available_cpus
from collector.service import fix_mmap_threshold
from collector.settings import ConfigError
from collector.telemetry import Carried, Telemetry, merge_expositions
from collector.traffic import AccountingClient, cisco_attributes, make_calls
from collector.workers import LOCK_NAME, adopt_spools, worker_spool
from tests.conftest import require_program
from tests.daemon import (
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    free_port,
    run_command,
    wait_for,
)
from tests.test_radius_radclient import CISCO_STOP, FIXED_DATES_RETENTION, assert_unanswered
from tests.test_session_generations import _accounting_on, _stop

PG_BIN = Path("/usr/lib/postgresql/15/bin")
WORKER_PACKETS = "cdr_collector_worker_packets_total"


# --- helpers -----------------------------------------------------------------------------


def set_workers(path: Path, workers: int | str) -> None:
    """Give the rendered configuration's [radius] section `workers`."""
    text = re.sub(r"(?m)^workers = .*\n", "", path.read_text())
    value = f'"{workers}"' if isinstance(workers, str) else str(workers)
    path.write_text(text.replace("[radius]\n", f"[radius]\nworkers = {value}\n", 1))


@contextlib.contextmanager
def running_workers(
    config: CollectorConfig, workers: int, activated: Sequence[socket.socket] = ()
) -> Iterator[Collector]:
    """The daemon with `workers` RADIUS processes, stopped (SIGTERM) after the block."""
    collector = Collector(config, activated=activated)
    set_workers(collector.config_path, workers)
    collector.start(timeout=60)
    try:
        yield collector
    finally:
        try:
            collector.stop(timeout=60)
        finally:
            collector.close()


def worker_pids(collector: Collector) -> list[int]:
    """The process ids of the daemon's RADIUS workers."""
    pid = collector.daemon_pid
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            if b"--radius-worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def running(pid: int) -> bool:
    """Whether process `pid` exists."""
    return Path(f"/proc/{pid}").exists()


def udp_sockets_on(port: int) -> int:
    """How many UDP sockets of this host are bound to `port` (IPv4)."""
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return sum(1 for line in lines if int(line.split()[1].split(":")[1], 16) == port)


def cisco_stop(index: int) -> str:
    """radclient's text of the Cisco Stop of call `index` (a key of its own)."""
    return CISCO_STOP.replace("0000A1B2", f"{index:08X}").replace(
        "1A2B3C4D 5E6F7A8B", f"{index:08X} 5E6F7A8B"
    )


def radclient_clients(
    radclient: str,
    address: tuple[str, int],
    secret: str,
    requests: Sequence[str],
    clients: int,
    timeout: float = 3.0,
    retries: int = 3,
) -> list[subprocess.CompletedProcess[str]]:
    """Send `requests` from `clients` radclient processes at once, each from its own
    source port (as many switches, or one with several ports); each process sends its
    share 16 at a time, resending after `timeout` up to `retries` times."""
    processes = []
    for part in range(clients):
        share = requests[part::clients]
        if not share:
            continue
        process = subprocess.Popen(
            [
                radclient,
                "-p",
                "16",
                "-r",
                str(retries),
                "-t",
                str(timeout),
                f"{address[0]}:{address[1]}",
                "acct",
                secret,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append((process, "\n".join(share)))
    results = []
    for process, text in processes:
        stdout, stderr = process.communicate(text, timeout=120)
        results.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    return results


def assert_all_answered(results: list[subprocess.CompletedProcess[str]]) -> None:
    for result in results:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def per_worker(collector: Collector) -> dict[str, float]:
    """RADIUS packets read by each process, by worker label."""
    found = {}
    for key, value in collector.metrics().items():
        if key.startswith(WORKER_PACKETS + "{"):
            found[key.split('worker="')[1].split('"')[0]] = value
    return found


async def stored(dsn: str) -> tuple[int, int]:
    """(rows of cdrs, distinct record keys among them)."""
    async with connected(dsn) as conn:
        row = await conn.fetchrow("SELECT count(*) AS n, count(DISTINCT record_key) AS k FROM cdrs")
    return int(row["n"]), int(row["k"])


def radius_config(tmp_path: Path, dsn: str, name: str = "c", **extra: object) -> CollectorConfig:
    """A daemon that believes the fixed dates of the radclient packets."""
    return CollectorConfig(
        directory=tmp_path / name,
        dsn=dsn,
        log_level="info",
        retention_days=FIXED_DATES_RETENTION,
        **extra,  # type: ignore[arg-type]
    )


# --- configuration -----------------------------------------------------------------------


def _radius(workers: object, listen: str = "127.0.0.1:1813") -> dict[str, object]:
    return {
        "spool": {"directory": "/tmp/spool"},
        "radius": {
            "listen": [listen],
            "workers": workers,
            "clients": [{"name": "sbc", "address": "192.0.2.1", "secret": "x"}],
        },
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "must be at least 1"),
        (-2, "must be at least 1"),
        (MAX_WORKERS + 1, f"must be at most {MAX_WORKERS}"),
        ("many", 'must be a whole number of processes or "auto"'),
        (True, 'must be a whole number of processes or "auto"'),
        (2.5, 'must be a whole number of processes or "auto"'),
    ],
)
def test_a_bad_workers_value_is_refused_naming_file_key_and_reason(
    value: object, reason: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config("/etc/c.toml", _radius(value), read_files=False)
    (problem,) = refused.value.problems
    assert (problem.file, problem.key) == ("/etc/c.toml", "radius.workers")
    assert reason in problem.reason


def test_workers_default_auto_and_a_shared_port() -> None:
    config = parse_config("/etc/c.toml", _radius(3), read_files=False)
    assert config.radius is not None and config.radius.workers == 3
    assert "in 3 processes" in config.radius.summary()
    auto = parse_config("/etc/c.toml", _radius("auto"), read_files=False)
    assert auto.radius is not None and auto.radius.workers == min(available_cpus(), MAX_WORKERS)
    alone = _radius(1)
    del alone["radius"]["workers"]  # type: ignore[attr-defined]
    one = parse_config("/etc/c.toml", alone, read_files=False)
    assert one.radius is not None and one.radius.workers == 1
    assert one.radius.summary() == "1 RADIUS client(s)"
    # every process must bind the same port: port 0 would give each its own
    with pytest.raises(ConfigError) as refused:
        parse_config("/etc/c.toml", _radius(2, "127.0.0.1:0"), read_files=False)
    (problem,) = refused.value.problems
    assert problem.key == "radius.listen" and "same port" in problem.reason
    assert parse_config("/etc/c.toml", _radius(1, "127.0.0.1:0"), read_files=False)


def test_the_worker_option_is_the_daemons_own(tmp_path: Path) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=None)
    done = run_command("run", "--config", str(config.render()), "--radius-worker", "1")
    assert done.returncode == 1
    assert "set [radius] workers instead" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# --- metrics of several processes --------------------------------------------------------


def test_merged_metrics_sum_what_counts_and_keep_what_must_not_be_summed() -> None:
    main, worker = Telemetry(), Telemetry()
    for telemetry in (main, worker):
        telemetry.prime({"radius": ["sbc"]})
    main.database_up.set(1)
    worker.database_up.set(1)
    main.records_stored.labels("sbc").inc(3)
    worker.records_stored.labels("sbc").inc(4)
    main.packets.labels("radius", "sbc", "accepted").inc(3)
    worker.packets.labels("radius", "sbc", "accepted").inc(4)
    worker.packets.labels("radius", "sbc", "duplicate").inc(2)
    main.ack_latency.labels("sbc").observe(0.003)
    worker.ack_latency.labels("sbc").observe(0.2)
    main.spool_max_bytes.set(100)
    worker.spool_max_bytes.set(100)
    main.active_calls.labels("sbc").set(7)  # the main process counts them, from the database
    for telemetry in (main, worker):  # one reload of the collector, taken by both
        telemetry.config_reloads.labels("ok").inc()
    text = merge_expositions([main.exposition(), worker.exposition()]).decode()
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps)), "a family appears twice"

    def value(name: str, **labels: str) -> float:
        (found,) = [
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        return found

    assert value("cdr_collector_database_up") == 1  # not 2
    assert value("cdr_collector_records_stored_total", source="sbc") == 7
    assert value("cdr_collector_packets_total", source="sbc", outcome="duplicate") == 2
    assert value("cdr_collector_ack_latency_seconds_count", source="sbc") == 2
    assert value("cdr_collector_ack_latency_seconds_bucket", source="sbc", le="0.005") == 1
    assert value("cdr_collector_spool_max_bytes") == 200
    assert value("cdr_collector_active_calls", source="sbc") == 7
    assert value(WORKER_PACKETS, worker="0") == 3
    assert value(WORKER_PACKETS, worker="1") == 6
    assert value("cdr_collector_config_reloads_total", result="ok") == 1

    # the worker ends and a new one starts, counting from 0: the sums never go back
    # (Prometheus would take that for a reset and count everything again)
    carried = Carried()
    carried.add(worker.exposition())
    successor = Telemetry()
    successor.prime({"radius": ["sbc"]})
    successor.database_up.set(1)
    successor.records_stored.labels("sbc").inc(1)
    successor.config_reloads.labels("ok").inc()
    text = merge_expositions([main.exposition(), successor.exposition()], [None, carried]).decode()
    assert value("cdr_collector_records_stored_total", source="sbc") == 8
    assert value("cdr_collector_ack_latency_seconds_count", source="sbc") == 2
    assert value(WORKER_PACKETS, worker="1") == 6
    assert value("cdr_collector_config_reloads_total", result="ok") == 1
    # what is a state (gauges) is the live processes' alone
    assert value("cdr_collector_spool_max_bytes") == 100
    assert value("cdr_collector_database_up") == 1
    # and a worker that does not answer: its last counts stand in for it
    text = merge_expositions([main.exposition(), b""], [None, carried]).decode()
    assert value("cdr_collector_records_stored_total", source="sbc") == 7
    # one process down: the collector's database is down
    worker.database_up.set(0)
    text = merge_expositions([main.exposition(), worker.exposition()]).decode()
    assert "cdr_collector_database_up 0.0" in text.splitlines()


# --- the spool of a worker no longer configured ------------------------------------------


def test_spools_of_workers_no_longer_configured_move_into_the_main_spool(tmp_path: Path) -> None:
    main = tmp_path / "spool"
    main.mkdir()
    (main / f"{7:020d}.seg").write_bytes(b"main")
    for index, payloads in ((1, [b"one-a"]), (2, [b"two-a", b"two-b"]), (3, [b"three"])):
        spool = worker_spool(main, index)
        spool.mkdir()
        for sequence, payload in enumerate(payloads, 1):
            (spool / f"{sequence:020d}.seg").write_bytes(payload)
    (worker_spool(main, 2) / "rejected-20261130.json").write_bytes(b'{"two":1}\n')
    (main / "rejected-20261130.json").write_bytes(b'{"main":1}\n')
    # worker 3's directory is in use by a process still draining into it
    lock = os.open(worker_spool(main, 3) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert adopt_spools(main, keep=2) == 2  # worker 1 stays configured
    finally:
        os.close(lock)
    segments = sorted(p.name for p in main.glob("*.seg"))
    assert segments == [f"{n:020d}.seg" for n in (7, 8, 9)]
    assert [(main / name).read_bytes() for name in segments] == [b"main", b"two-a", b"two-b"]
    assert (main / "rejected-20261130.json").read_bytes() == b'{"main":1}\n{"two":1}\n'
    assert not worker_spool(main, 2).exists()
    assert (worker_spool(main, 1) / f"{1:020d}.seg").read_bytes() == b"one-a"
    assert (worker_spool(main, 3) / f"{1:020d}.seg").read_bytes() == b"three"
    # no longer locked: taken over at the next start
    assert adopt_spools(main, keep=1) == 2
    assert len(list(main.glob("*.seg"))) == 5
    assert not list(main.glob("radius-worker-*"))


# --- two processes, SO_REUSEPORT ------------------------------------------------------------


async def test_two_processes_share_the_clients_and_store_each_call_once_whatever_is_resent(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = radius_config(tmp_path, dsn, batch_max_delay_ms=100)
    calls = [cisco_stop(index) for index in range(600)]
    with running_workers(config, 2) as collector:
        # each process has its own socket on the port
        assert udp_sockets_on(config.radius_port) == 2
        assert len(worker_pids(collector)) == 1
        ready = collector.readyz()
        assert ready[0] == 200 and '"radius_workers": {"ready": 1, "of": 1}' in ready[1]

        # many switches' ports: the kernel gives some to each process
        assert_all_answered(
            radclient_clients(radclient, collector.radius_address, SECRET, calls, clients=24)
        )
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 600)
        first = per_worker(collector)
        assert set(first) == {"0", "1"} and first["0"] > 0 and first["1"] > 0, first
        assert sum(first.values()) >= 600

        # the same calls again, answered already: new packets (new ports, Identifiers)
        assert_all_answered(
            radclient_clients(radclient, collector.radius_address, SECRET, calls, clients=24)
        )
        # and again, resent every 30 ms while the first copy waits for its batch
        assert_all_answered(
            radclient_clients(
                radclient,
                collector.radius_address,
                SECRET,
                calls,
                clients=24,
                timeout=0.03,
                retries=60,
            )
        )
        await wait_for(lambda: collector.metric("cdr_collector_records_duplicate_total") >= 1200)
        # retransmissions of a request in flight reached the process that had it: its
        # duplicate cache took them (not answered twice, not stored twice)
        assert collector.metric("cdr_collector_packets_total", outcome="duplicate") > 0
        metrics = collector.metrics()
        assert metrics["cdr_collector_database_up"] == 1
        assert metrics['cdr_collector_records_stored_total{source="sbc-test"}'] == 600
        assert metrics["cdr_collector_spool_max_bytes"] == config.spool_max_bytes
        accepted = collector.metric("cdr_collector_packets_total", outcome="accepted")
        assert collector.metric("cdr_collector_ack_latency_seconds_count") == accepted
        assert metrics['cdr_collector_worker_up{worker="1"}'] == 1
    assert await stored(dsn) == (600, 600)
    # each process's spool directory: the main one, and the worker's below it
    assert worker_spool(config.directory / "spool", 1).is_dir()


async def test_sighup_reloads_every_process(radclient: str, tmp_path: Path, dsn: str) -> None:
    config = radius_config(tmp_path, dsn)
    new_secret = "n3w-Secret-after-reload"
    with running_workers(config, 2) as collector:
        path = collector.config_path
        path.write_text(
            path.read_text().replace(f'secret = "{SECRET}"', f'secret = "{new_secret}"')
        )
        collector.poll_notifications()
        collector.notifications.clear()
        collector.signal(signal.SIGHUP)

        def reloaded() -> bool:
            notes = collector.poll_notifications()
            began = [i for i, note in enumerate(notes) if "RELOADING=1" in note]
            return bool(began) and any("READY=1" in note for note in notes[began[-1] :])

        await wait_for(reloaded, timeout=30)
        lines = [
            line for line in collector.log_text().splitlines() if "configuration reloaded" in line
        ]
        assert any('"worker": 1' in line for line in lines), lines
        assert any('"worker"' not in line for line in lines), lines
        before = per_worker(collector)
        calls = [cisco_stop(index) for index in range(200)]
        # the new secret is good on every process: every request, whichever reads it
        assert_all_answered(
            radclient_clients(radclient, collector.radius_address, new_secret, calls, clients=24)
        )
        after = per_worker(collector)
        assert all(after[worker] > before.get(worker, 0) for worker in ("0", "1")), (before, after)
        # the old one is good on none
        for port_try in range(4):
            result = subprocess.run(
                [
                    radclient,
                    "-x",
                    "-r",
                    "1",
                    "-t",
                    "1",
                    f"127.0.0.1:{config.radius_port}",
                    "acct",
                    SECRET,
                ],
                input=cisco_stop(1000 + port_try),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert_unanswered(result)
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 200)
    assert await stored(dsn) == (200, 200)


async def test_sigterm_drains_every_process(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, log_level="info", batch_max_delay_ms=50
    )
    calls = make_calls(20000)
    acknowledged = 0

    def counted(_index: int) -> None:
        nonlocal acknowledged
        acknowledged += 1

    collector = Collector(config)
    set_workers(collector.config_path, 2)
    await collector.start_async(timeout=60)
    try:
        pids = worker_pids(collector)
        assert len(pids) == 1
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), sockets=16
        ) as client:
            sending = asyncio.create_task(
                client.send_all(
                    [cisco_attributes(c) for c in calls], concurrency=512, on_ack=counted
                )
            )
            await wait_for(lambda: acknowledged >= 2000, timeout=60)
            assert await collector.stop_async(timeout=60) == 0
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
    finally:
        collector.close()
    # every answered request's record is stored; the worker ended before the main process
    rows, keys = await stored(dsn)
    assert rows == keys >= acknowledged
    assert not any(running(pid) for pid in pids)
    stops = [
        line for line in collector.log_text().splitlines() if '"event": "collector stopped"' in line
    ]
    assert len(stops) == 2 and '"worker": 1' in stops[0] and '"worker"' not in stops[1], stops


# --- a PostgreSQL of the test's own, to stop ---------------------------------------------


@dataclass
class OwnPostgres:
    """A PostgreSQL 15 cluster in a temporary directory, run by the postgres OS user."""

    directory: Path
    port: int

    def pg_ctl(self, *args: str) -> None:
        command = [
            require_program("runuser"), "-u", "postgres", "--",
            str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), *args,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        self.pg_ctl("-l", str(self.directory / "server.log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def dsn(self, database: str = "cdr") -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A running PostgreSQL of its own (database `cdr`), stopped and removed after."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 server binaries are missing from {PG_BIN}")
    postgres = pwd.getpwnam("postgres")
    directory = Path(tempfile.mkdtemp(prefix="cdr-workers-pg-", dir="/tmp"))
    try:
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)
        server = OwnPostgres(directory, free_port(socket.SOCK_STREAM))
        subprocess.run(
            [
                require_program("runuser"), "-u", "postgres", "--",
                str(PG_BIN / "initdb"), "-D", str(directory / "data"), "-U", "root",
                "--auth=trust", "--no-sync", "-E", "UTF8",
            ],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        with (directory / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {server.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{directory}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        server.start()
        try:
            subprocess.run(
                [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "root", "cdr"],
                capture_output=True, timeout=60, check=True,
            )  # fmt: skip
            yield server
        finally:
            with contextlib.suppress(AssertionError):
                server.pg_ctl("-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def segments(directory: Path) -> int:
    return len(list(directory.glob("*.seg")))


async def test_a_killed_worker_is_started_again_and_spools_left_behind_are_replayed(
    radclient: str, tmp_path: Path
) -> None:
    with own_postgres() as server:
        dsn = server.dsn()
        config = radius_config(
            tmp_path,
            dsn,
            commit_timeout_ms=500,
            connect_timeout_ms=500,
            retry_interval_ms=200,
        )
        spool = config.directory / "spool"
        first = [cisco_stop(index) for index in range(300)]
        with running_workers(config, 2) as collector:
            await wait_for(lambda: collector.metric("cdr_collector_database_up") == 1)
            server.stop()
            # the database is away: both processes answer from their spools
            assert_all_answered(
                radclient_clients(radclient, collector.radius_address, SECRET, first, clients=24)
            )
            assert segments(spool) > 0 and segments(worker_spool(spool, 1)) > 0
            assert collector.metric("cdr_collector_spool_records") == 300
            spooled = collector.metric("cdr_collector_records_spooled_total")
            assert spooled == 300
            read = per_worker(collector)["1"]
            (pid,) = worker_pids(collector)
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda: collector.readyz()[0] == 503, timeout=10, interval=0.02)
            await wait_for(
                lambda: (
                    collector.metric("cdr_collector_worker_restarts_total", worker="1") == 1
                    and collector.metric("cdr_collector_worker_up", worker="1") == 1
                ),
                timeout=60,
            )
            assert worker_pids(collector) not in ([], [pid])
            assert "radius worker ended unexpectedly" in collector.log_text()
            # the collector's counts do not go back with the worker that ended
            assert collector.metric("cdr_collector_records_spooled_total") == spooled
            assert per_worker(collector)["1"] == read
            # what the killed worker acknowledged is in its spool: the new one replays it
            server.start()
            await wait_for(
                lambda: collector.metric("cdr_collector_records_stored_total") == 300, timeout=60
            )
            await wait_for(lambda: collector.metric("cdr_collector_spool_records") == 0)
            assert segments(worker_spool(spool, 1)) == 0
            assert collector.readyz()[0] == 200
        assert await stored(dsn) == (300, 300)

        # the database away again, the worker spools, the collector stops...
        second = [cisco_stop(1000 + index) for index in range(300)]
        server.stop()
        with running_workers(config, 2) as collector:
            assert_all_answered(
                radclient_clients(radclient, collector.radius_address, SECRET, second, clients=24)
            )
        assert segments(worker_spool(spool, 1)) > 0
        # ... and comes back with one process: the worker's spool is replayed all the same
        server.start()
        with running_workers(config, 1) as collector:
            await wait_for(
                lambda: collector.metric("cdr_collector_records_stored_total") == 300, timeout=60
            )
            await wait_for(lambda: collector.metric("cdr_collector_spool_records") == 0)
            assert "spool of a worker no longer configured taken over" in collector.log_text()
        assert not worker_spool(spool, 1).exists()
        assert await stored(dsn) == (600, 600)


# --- switch restarts ---------------------------------------------------------------------


def sockets_per_process(collector: Collector) -> dict[str, socket.socket]:
    """A client socket whose requests the kernel gives to each process, by worker label:
    found by sending an unsupported packet from new sockets until each process read one."""
    found: dict[str, socket.socket] = {}
    spare = []
    for _ in range(64):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        before = per_worker(collector)
        sock.sendto(bytes([99, 1, 0, 20]) + bytes(16), collector.radius_address)
        for _ in range(100):
            after = per_worker(collector)
            read = [w for w in after if after[w] > before.get(w, 0)]
            if read:
                break
        if read and read[0] not in found:
            found[read[0]] = sock
        else:
            spare.append(sock)
        if len(found) == 2:
            break
    for sock in spare:
        sock.close()
    assert set(found) == {"0", "1"}, found
    return found


def exchange(
    sock: socket.socket, server: tuple[str, int], attributes: bytes, identifier: int
) -> None:
    """One Accounting-Request from `sock`, and its verified answer."""
    packet = codec.encode_accounting_request(identifier, attributes, SECRET.encode())
    sock.settimeout(10)
    sock.sendto(packet, server)
    assert codec.response_ok(sock.recv(4096), packet[4:20], SECRET.encode())


async def test_a_switch_restart_seen_by_one_process_is_known_to_the_other_at_once(
    tmp_path: Path, dsn: str
) -> None:
    """The generic profile keys a Stop by its session id and the switch's generation: a
    Stop reusing an id after an Accounting-On that another process read is a new call,
    though that process will read the restart from the database only 30 s later."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, profile="generic", log_level="info")
    now = datetime.now(UTC).replace(microsecond=0)
    with running_workers(config, 2) as collector:
        by_process = sockets_per_process(collector)
        one, other = by_process["1"], by_process["0"]
        server = collector.radius_address
        exchange(one, server, _stop("+442071234567", now - timedelta(minutes=20), 60), 1)
        exchange(one, server, _accounting_on(now - timedelta(minutes=10)), 2)
        # the switch counts from the start again: the same id, a new call, to the other process
        exchange(other, server, _stop("+33612345678", now - timedelta(minutes=5), 90), 3)
        # and the first call's Stop sent late, to the other process: still the old call
        exchange(other, server, _stop("+442071234567", now - timedelta(minutes=20), 60), 4)
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 2)
        for sock in by_process.values():
            sock.close()
    assert await stored(dsn) == (2, 2)


# --- socket activation: every process reads systemd's one socket ----------------------------


async def test_socket_activation_shares_the_one_socket_with_every_worker(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = radius_config(tmp_path, dsn, batch_max_delay_ms=50)
    activated = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    activated.bind(("127.0.0.1", config.radius_port))  # as systemd binds: no SO_REUSEPORT
    try:
        with running_workers(config, 2, activated=[activated]) as collector:
            # no process bound a socket of its own (it could not have: the port is taken)
            assert udp_sockets_on(config.radius_port) == 1
            calls = [cisco_stop(index) for index in range(400)]
            assert_all_answered(
                radclient_clients(radclient, collector.radius_address, SECRET, calls, clients=24)
            )
            await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 400)
            split = per_worker(collector)
            assert split["0"] > 0 and split["1"] > 0, split
            # retransmissions now reach any process, in flight or answered: still one row
            retransmitted = [cisco_attributes(call) for call in make_calls(1000)]
            async with AccountingClient(
                collector.radius_address, SECRET.encode(), sockets=4, timeout_s=0.02
            ) as client:
                stats = await client.send_all(retransmitted + retransmitted, concurrency=256)
            assert stats.acknowledged == 2000 and stats.retransmissions > 0
            await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 1400)
    finally:
        activated.close()
    assert await stored(dsn) == (1400, 1400)


# --- past one machine: two whole daemons, one database ----------------------------------------


async def test_two_daemons_take_the_same_retransmitted_traffic_into_one_database(
    tmp_path: Path, dsn: str
) -> None:
    first = CollectorConfig(directory=tmp_path / "a", dsn=dsn, log_level="info")
    second = CollectorConfig(directory=tmp_path / "b", dsn=dsn, log_level="info")
    # every switch sends each Stop to both (a primary and a secondary accounting server,
    # both answering), resending every 50 ms until answered and with a new Identifier
    # after each second: under load, copies of one call are in flight in both at once
    packets = [cisco_attributes(call) for call in make_calls(6000)]
    one, two = Collector(first), Collector(second)
    set_workers(two.config_path, 2)  # one of them with a worker besides
    one.start(timeout=60)
    try:
        two.start(timeout=60)
        try:

            async def send(collector: Collector) -> int:
                async with AccountingClient(
                    collector.radius_address,
                    SECRET.encode(),
                    sockets=8,
                    timeout_s=0.05,
                    bump_delay=True,
                    # a resend takes a new Identifier: the answer to the copy before
                    # may then arrive for another request, and fails its check
                    bad_responses_max=1_000_000,
                ) as client:
                    stats = await client.send_all(packets, concurrency=512)
                    return stats.acknowledged

            assert list(await asyncio.gather(send(one), send(two))) == [6000, 6000]
            await wait_for(
                lambda: (
                    one.metric("cdr_collector_records_stored_total")
                    + two.metric("cdr_collector_records_stored_total")
                    == 6000
                ),
                timeout=60,
            )
            assert one.metric("cdr_collector_records_duplicate_total") > 0
            assert two.metric("cdr_collector_records_duplicate_total") > 0
        finally:
            two.stop(timeout=60)
            two.close()
    finally:
        one.stop(timeout=60)
        one.close()
    assert await stored(dsn) == (6000, 6000)


def test_the_mmap_threshold_is_fixed_where_glibc_allows_it() -> None:
    # a soak with two processes grew the main one's heap 8 MiB a minute while glibc
    # raised its mmap threshold; mallopt() answers 0 to a parameter it does not know
    assert platform.libc_ver()[0] == "glibc", "the machine the tests run on has glibc"
    assert fix_mmap_threshold() is True
