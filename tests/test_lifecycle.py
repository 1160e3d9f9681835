"""The daemon's life: start without a database, systemd notifications, health
endpoints, start-up failures that exit with one clear line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collector.traffic import AccountingClient, generic_attributes, make_calls
from tests.daemon import (
    ROOT,
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    running_collector,
    running_collector_async,
    wait_for,
)
from tests.faults import cdr_keys_locked, commit_waits_on_a_lock, pausable_proxy, table_counts


async def test_starts_without_a_database_and_drains_when_it_appears(
    tmp_path: Path, dsn: str
) -> None:
    calls = make_calls(500, seed=21)
    async with pausable_proxy() as proxy:
        await proxy.cut()
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), log_level="info")
        async with running_collector_async(config) as collector:
            assert collector.metric("cdr_collector_database_up") == 0
            status, body = collector.readyz()
            assert status == 200  # records have a durable place: the spool
            assert json.loads(body)["database"] == "down"
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                stats = await client.send_all([generic_attributes(c) for c in calls])
            assert stats.acknowledged == len(calls)
            assert collector.metric("cdr_collector_spool_records") == len(calls)
            async with connected(dsn) as conn:  # nothing there yet, not even the schema
                assert await conn.fetchval("SELECT to_regclass('cdrs')") is None
            await proxy.restore()
            await wait_for(
                lambda: (
                    collector.metric("cdr_collector_spool_records") == 0
                    and collector.metric("cdr_collector_database_up") == 1
                ),
                timeout=30,
            )
            assert collector.metric("cdr_collector_records_stored_total") == len(calls)
            assert collector.metric("cdr_collector_batch_commit_seconds_count") >= 1
    assert await table_counts(dsn) == {"rows": len(calls), "keys": len(calls), "doubles": 0}


async def test_systemd_notifications_ready_watchdog_status_stopping(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    collector = Collector(config)
    os.environ["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
    try:
        collector.start()
    finally:
        del os.environ["WATCHDOG_USEC"]
    try:
        # pings keep coming while it runs: three of them, however long a busy machine takes
        await wait_for(
            lambda: sum("WATCHDOG=1" in n for n in collector.poll_notifications()) >= 3,
            timeout=30,
        )
        notes = collector.poll_notifications()
        ready = [n for n in notes if "READY=1" in n]
        assert ready and "STATUS=database up" in ready[0]
        assert notes.index(ready[0]) < min(i for i, n in enumerate(notes) if "WATCHDOG=1" in n)
        assert collector.stop() == 0
        notes = collector.poll_notifications()
        assert any("STOPPING=1" in n for n in notes)
    finally:
        collector.close()


async def test_health_endpoints(tmp_path: Path, dsn: str) -> None:
    import urllib.request

    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    with running_collector(config) as collector:
        with urllib.request.urlopen(collector.metrics_url + "/healthz", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        status, body = collector.readyz()
        assert status == 200
        assert json.loads(body) == {
            "ready": True,
            "listeners_bound": True,
            "database": "up",
            "spool": "ok",
            "stopping": False,
        }
        text = urllib.request.urlopen(collector.metrics_url + "/metrics", timeout=5).read().decode()  # noqa: S310
        names = {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        for name in (
            "cdr_collector_database_up",
            "cdr_collector_spool_records",
            "cdr_collector_records_spooled_total",
            "cdr_collector_ack_latency_seconds_count",
            "cdr_collector_batch_commit_seconds_count",
        ):
            assert name in names


def proc_status(pid: int, field: str) -> int:
    """A kB field of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_metrics_carry_the_standard_process_and_python_metrics(tmp_path: Path) -> None:
    """process_* under the names operators alert on, read from the daemon's own /proc."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=None)
    with running_collector(config) as collector:
        assert collector.process is not None
        pid = collector.process.pid
        metrics = collector.metrics()
        rss = proc_status(pid, "VmRSS")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        limits = Path(f"/proc/{pid}/limits").read_text()
        ticks = os.sysconf("SC_CLK_TCK")
        started_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    resident = metrics["process_resident_memory_bytes"]
    assert resident > 16 * 1024 * 1024  # an interpreter with asyncpg, aiohttp, phonenumbers
    # read a moment apart, around one scrape: within a quarter of each other
    assert abs(resident - rss) < rss / 4, (resident, rss)
    assert metrics["process_virtual_memory_bytes"] >= resident
    assert metrics["process_cpu_seconds_total"] > 0
    # sockets, the spool, the log: as many as /proc lists, give or take the scrape's own
    assert metrics["process_open_fds"] >= 5 and abs(metrics["process_open_fds"] - fds) <= 3
    (soft,) = [line.split()[3] for line in limits.splitlines() if line.startswith("Max open files")]
    assert metrics["process_max_fds"] == float(soft)
    assert metrics["process_start_time_seconds"] == pytest.approx(
        boot + started_ticks / ticks, abs=0.02
    )
    info = [key for key in metrics if key.startswith("python_info{")]
    assert len(info) == 1 and f'version="{sys.version.split()[0]}"' in info[0]
    assert metrics['python_gc_collections_total{generation="2"}'] >= 1  # settle_memory's
    # the daemon's own names keep their prefix
    others = {key.split("{")[0] for key in metrics} - {
        key.split("{")[0] for key in metrics if key.startswith(("process_", "python_"))
    }
    assert others and all(name.startswith("cdr_collector_") for name in others), others


def statuses(collector: Collector) -> list[str]:
    """Every STATUS= the daemon sent on its notify socket so far, in order."""
    if collector.process is not None and collector.process.poll() is None:
        collector.poll_notifications()
    return [
        field.removeprefix("STATUS=")
        for note in collector.notifications
        for field in note.split("\n")
        if field.startswith("STATUS=")
    ]


async def test_status_follows_the_state_at_once_and_a_clean_stop_is_no_outage(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STATUS= changes with the database, the spool and the stop, not at the next watchdog
    ping: there is no watchdog here at all, so every status after READY=1 comes from a change
    of state. Closing the connection at SIGTERM is no database outage."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    async with pausable_proxy() as proxy:
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), log_level="info")
        collector = Collector(config)
        await collector.start_async()
        try:
            assert statuses(collector) == ["database up, spool 0 records, queue 0"]
            await proxy.cut()
            await wait_for(lambda: "database DOWN" in statuses(collector)[-1])
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                assert await client.send(generic_attributes(make_calls(1, seed=3)[0]))
            await wait_for(
                lambda: statuses(collector)[-1] == "database DOWN, spool 1 records, queue 0"
            )
            await proxy.restore()
            await wait_for(
                lambda: statuses(collector)[-1] == "database up, spool 0 records, queue 0"
            )
            assert collector.notifications[-1] == "STATUS=database up, spool 0 records, queue 0"
            assert await collector.stop_async() == 0
            collector.poll_notifications()
        finally:
            collector.close()
    sent = statuses(collector)
    assert not any("WATCHDOG=1" in note for note in collector.notifications)
    # the outage was told as it began and as it ended, the spool as it filled and drained
    assert sent[:2] == [
        "database up, spool 0 records, queue 0",
        "database DOWN, spool 0 records, queue 0",
    ]
    assert "database DOWN, spool 1 records, queue 0" in sent
    stopping = [note for note in collector.notifications if "STOPPING=1" in note]
    assert stopping == [
        "STOPPING=1\nSTATUS=stopping: draining in-flight records, database up, "
        "spool 0 records, queue 0"
    ]
    after = sent[sent.index("database up, spool 0 records, queue 0", 2) :]
    assert not any("DOWN" in status for status in after), sent
    (stopped,) = [
        json.loads(line)
        for line in collector.log_text().splitlines()
        if '"collector stopped"' in line
    ]
    assert stopped["state"] == "stopped, database up, spool 0 records"
    assert await table_counts(dsn) == {"rows": 1, "keys": 1, "doubles": 0}


def test_a_taken_port_is_one_clear_line_and_exit_1(tmp_path: Path, dsn: str) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    path = config.render()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", config.radius_port))
        result = subprocess.run(
            [sys.executable, "-m", "collector", "run", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_configuration_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[database]\ndsn = "mysql://x"\nbatch_max_records = -1\n'
        '[radius]\nlisten = ["nowhere"]\n[[radius.clients]]\nname = "a"\naddress = "300.1.1.1"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "collector", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    for key in (
        "database.dsn",
        "database.batch_max_records",
        "radius.listen",
        "radius.clients[0].address",
        "radius.clients[0].secret",
        "privacy.key_file",
    ):
        assert any(line.startswith(f"{path}: {key}:") for line in lines), key


async def test_sigterm_answers_and_stores_what_is_in_flight_and_exits_0(
    tmp_path: Path, dsn: str
) -> None:
    """SIGTERM flushes in-flight work: what a slow database holds at the signal is answered.

    The requests are known to be in flight: they form one batch (it closes
    only when the last of them arrives) whose commit waits on a lock the test
    holds, seen in pg_stat_activity. The signal comes, STOPPING=1 says the
    drain began, and only then is the lock released. Every request must be
    answered and stored; a SIGTERM that dropped the in-flight batch leaves
    them all unanswered.
    """
    requests = [generic_attributes(c) for c in make_calls(50, seed=31)]
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn,
        batch_max_records=len(requests),
        batch_max_delay_ms=600_000,
        commit_timeout_ms=600_000,
    )
    collector = Collector(config)
    await collector.start_async()
    try:
        # one transmission each: an answer can only come from the first daemon's drain
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), tries=1, timeout_s=30
        ) as client:
            async with cdr_keys_locked(dsn):
                sending = asyncio.create_task(client.send_all(requests))
                await wait_for(lambda: commit_waits_on_a_lock(dsn), timeout=60)
                collector.signal(signal.SIGTERM)
                await wait_for(
                    lambda: any("STOPPING=1" in n for n in collector.poll_notifications()),
                    timeout=60,
                )
                answered_before_the_drain = client.stats.acknowledged
            stats = await sending
        assert collector.process is not None
        status = await asyncio.to_thread(collector.process.wait, 60)
    finally:
        collector.close()
    counts = await table_counts(dsn)
    assert answered_before_the_drain == 0  # all of them were in flight at the signal
    assert status == 0
    assert (stats.acknowledged, stats.gave_up) == (len(requests), 0)
    assert counts == {"rows": len(requests), "keys": len(requests), "doubles": 0}
