"""Never lose an acknowledged record, never store one twice: fault runs.

Each run sends thousands of calls from a client that resends unanswered
requests (as softswitches do), injects a fault while they flow, and ends with
the number of rows equal to the number of calls and no record key twice.
Figures of each run (sent, acknowledged, stored, duplicates, time to drain)
are printed (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.sink.spool import SUFFIX, encode_frame
from collector.traffic import (
    AccountingClient,
    SendStats,
    cisco_attributes,
    generic_attributes,
    make_calls,
)
from tests.conftest import require_program
from tests.daemon import (
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    running_collector,
    running_collector_async,
    wait_for,
)
from tests.faults import cdr_keys_locked, commit_waits_on_a_lock, pausable_proxy, table_counts
from tests.syscalls import check_acknowledgements, strace_wrapper

CALLS = 3000


def report(name: str, calls: int, stats: SendStats, counts: dict[str, int], drain_s: float) -> None:
    print(
        f"\n[{name}] calls {calls}, requests sent {stats.sent}, retransmissions {stats.retransmissions}, "
        f"acknowledged {stats.acknowledged}, rows {counts['rows']}, distinct keys {counts['keys']}, "
        f"keys stored twice {counts['doubles']}, drain {drain_s:.2f} s"
    )


def requests_for(count: int, seed: int) -> list[bytes]:
    calls = make_calls(count, seed=seed)
    return [cisco_attributes(c) if i % 2 else generic_attributes(c) for i, c in enumerate(calls)]


async def spool_empty(collector: Collector) -> bool:
    return (
        collector.metric("cdr_collector_spool_records") == 0
        and collector.metric("cdr_collector_database_up") == 1
    )


async def test_database_outage_in_the_middle_of_the_load(tmp_path: Path, dsn: str) -> None:
    async with pausable_proxy() as proxy:
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), log_level="info")
        async with running_collector_async(config) as collector:
            async with AccountingClient(
                collector.radius_address, SECRET.encode(), timeout_s=1.0
            ) as client:
                sending = asyncio.create_task(
                    client.send_all(requests_for(CALLS, 1), concurrency=64, rate=1500)
                )
                # the outage comes after 300 answers and lasts 600 spooled records:
                # points in the load, not in time, so a busy machine moves neither
                await wait_for(lambda: client.stats.acknowledged >= 300, timeout=60)
                await proxy.cut()
                await wait_for(
                    lambda: collector.metric("cdr_collector_records_spooled_total") >= 600,
                    timeout=60,
                )
                spooled_while_down = collector.metric("cdr_collector_records_spooled_total")
                assert collector.metric("cdr_collector_database_up") == 0
                await proxy.restore()
                stats = await sending
            began = time.monotonic()
            await wait_for(lambda: spool_empty(collector), timeout=60)
            drain = time.monotonic() - began
    counts = await table_counts(dsn)
    report("database outage", CALLS, stats, counts, drain)
    assert spooled_while_down > 0
    assert stats.acknowledged == CALLS
    assert counts == {"rows": CALLS, "keys": CALLS, "doubles": 0}


async def _kill_and_restart(
    tmp_path: Path, dsn: str, signum: int
) -> tuple[SendStats, dict[str, int], float, int]:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    collector = Collector(config)
    collector.start()
    exit_status = -1
    try:
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), timeout_s=0.5
        ) as client:
            sending = asyncio.create_task(
                client.send_all(requests_for(CALLS, signum), concurrency=64, rate=1500)
            )
            # the signal comes after 300 answers: a point in the load, not in time
            await wait_for(lambda: client.stats.acknowledged >= 300, timeout=60)
            assert collector.process is not None
            if signum == signal.SIGKILL:
                collector.kill()
            else:
                collector.signal(signum)
                exit_status = await asyncio.to_thread(collector.process.wait, 30)
            acked_before = client.stats.acknowledged
            assert 0 < acked_before < CALLS
            await asyncio.sleep(0.5)
            collector.start()  # same ports, same spool: the client's resends reach the new process
            stats = await sending
        began = time.monotonic()
        await wait_for(lambda: spool_empty(collector), timeout=60)
        drain = time.monotonic() - began
    finally:
        collector.stop()
        collector.close()
    return stats, await table_counts(dsn), drain, exit_status


async def test_sigkill_in_the_middle_of_the_load(tmp_path: Path, dsn: str) -> None:
    stats, counts, drain, _status = await _kill_and_restart(tmp_path, dsn, signal.SIGKILL)
    report("SIGKILL", CALLS, stats, counts, drain)
    assert stats.acknowledged == CALLS
    assert counts == {"rows": CALLS, "keys": CALLS, "doubles": 0}


async def test_sigterm_in_the_middle_of_the_load(tmp_path: Path, dsn: str) -> None:
    stats, counts, drain, status = await _kill_and_restart(tmp_path, dsn, signal.SIGTERM)
    report("SIGTERM", CALLS, stats, counts, drain)
    assert status == 0
    assert stats.acknowledged == CALLS
    assert counts == {"rows": CALLS, "keys": CALLS, "doubles": 0}


async def test_a_spooled_record_is_answered_only_after_its_fsync(tmp_path: Path) -> None:
    """Acknowledged only once durable, on the spool path: checked on the real daemon's calls.

    Method: strace. A kill -9 of the daemon cannot show a missing fsync (the
    page cache keeps the write and the disk gets it anyway), and the machine
    cannot be cut here. The promise is an order of calls, so the test reads
    that order: every response must follow the fsync of each segment write
    before it, and of the spool directory (and of the parent of a directory
    the daemon made) after a segment was created in it. Without the fsync
    after an append, the first response follows an unsynced write and fails.
    """
    strace = require_program("strace")
    calls = 300
    trace = tmp_path / "syscalls.txt"
    # no database: every record goes to the spool; small batches and segments, so
    # that the run appends many frames and creates several segments
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn="postgresql://root@127.0.0.1:9/nowhere",
        log_level="info",
        batch_max_records=20,
        spool_segment_bytes=8 * 1024,
    )
    collector = Collector(config, wrapper=strace_wrapper(strace, trace))
    await collector.start_async(timeout=60)
    try:
        # one transmission each, never resent: every response in the trace answers a new record
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), tries=1, timeout_s=30
        ) as client:
            stats = await client.send_all(requests_for(calls, 37), concurrency=16)
        os.kill(collector.daemon_pid, signal.SIGTERM)
        assert collector.process is not None
        assert await asyncio.to_thread(collector.process.wait, 60) == 0
    finally:
        collector.close()
    check = check_acknowledgements(trace.read_text(), config.radius_port, SUFFIX)
    print(
        f"\n[fsync before answer] responses {check.responses}, frames {check.frames}, "
        f"segments created {check.segments_created}, directories made {check.directories_made}"
    )
    assert stats.acknowledged == calls
    assert check.responses == calls  # every answer was seen in the trace
    assert check.frames >= 10 and check.segments_created >= 3
    assert check.directories_made >= 1  # the spool directory itself
    assert check.violations == []


@pytest.mark.parametrize("interruption", ["sigkill", "connection_cut"])
async def test_replay_interrupted_at_its_commit_loses_no_segment(
    tmp_path: Path, dsn: str, interruption: str
) -> None:
    """A segment is deleted only after its rows are committed.

    The replay's commit is held at a known moment (a lock on `cdr_keys` makes
    it wait, seen in pg_stat_activity), then the daemon is killed, or its
    database connection cut. Every acknowledged record must end up stored
    exactly once: a segment deleted before its commit loses its rows.
    """
    calls = 400
    async with pausable_proxy() as proxy:
        config = CollectorConfig(
            directory=tmp_path / "c",
            dsn=proxy.dsn_for(dsn),
            log_level="info",
            batch_max_records=50,
            spool_segment_bytes=16 * 1024,
            commit_timeout_ms=60_000,  # the held commit waits for the test, not a deadline
        )
        spool = config.directory / "spool"
        collector = Collector(config)
        await collector.start_async()
        try:
            assert collector.metric("cdr_collector_database_up") == 1  # schema in place
            await proxy.cut()
            async with AccountingClient(
                collector.radius_address, SECRET.encode(), timeout_s=1.0
            ) as client:
                stats = await client.send_all(requests_for(calls, 41), concurrency=32)
            assert stats.acknowledged == calls
            assert collector.metric("cdr_collector_records_spooled_total") == calls
            segments = sorted(spool.glob("*" + SUFFIX))
            assert len(segments) >= 3
            async with cdr_keys_locked(dsn):
                await proxy.restore()
                # the replay of the oldest segment is committing now, and cannot finish
                await wait_for(lambda: commit_waits_on_a_lock(dsn), timeout=30)
                assert sorted(spool.glob("*" + SUFFIX)) == segments
                if interruption == "sigkill":
                    collector.kill()
                else:
                    await proxy.cut()
                    await wait_for(
                        lambda: collector.metric("cdr_collector_database_up") == 0, timeout=30
                    )
            # the lock is released: the interrupted transaction is rolled back, never committed
            if interruption == "sigkill":
                await collector.start_async()
            else:
                await proxy.restore()
            began = time.monotonic()
            await wait_for(lambda: spool_empty(collector), timeout=60)
            drain = time.monotonic() - began
            assert not list(spool.glob("*" + SUFFIX))
        finally:
            await collector.stop_async()
            collector.close()
    counts = await table_counts(dsn)
    report(f"replay interrupted ({interruption})", calls, stats, counts, drain)
    assert counts == {"rows": calls, "keys": calls, "doubles": 0}


async def test_torn_spool_tail_is_skipped_and_the_rest_replayed(tmp_path: Path, dsn: str) -> None:
    calls = 1000
    # 1. no database: everything is acknowledged from the spool
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn.replace(":5432/", ":9/"),
        log_level="info",
        spool_segment_bytes=128 * 1024,
    )
    with running_collector(config) as collector:
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), timeout_s=1.0
        ) as client:
            stats = await client.send_all(requests_for(calls, 7), concurrency=64)
        assert stats.acknowledged == calls
        assert collector.metric("cdr_collector_records_spooled_total") == calls
    # 2. a crash in the middle of an append: a partial frame at the end of the newest
    #    segment (never acknowledged), and a garbage tail on an older one
    segments = sorted((config.directory / "spool").glob("*.seg"))
    assert len(segments) >= 2
    frame = encode_frame([])  # a valid frame, then cut in half
    with open(segments[-1], "ab") as handle:
        handle.write(frame[: len(frame) // 2])
    with open(segments[0], "ab") as handle:
        handle.write(b"CS\x01\x00" + os.urandom(64))
    # 3. the database is back
    config.dsn = dsn
    with running_collector(config) as collector:
        began = time.monotonic()
        await wait_for(lambda: spool_empty(collector), timeout=60)
        drain = time.monotonic() - began
        corrupt = collector.metric("cdr_collector_spool_corrupt_total")
        log = collector.log_text()
    counts = await table_counts(dsn)
    report("torn spool tail", calls, stats, counts, drain)
    assert corrupt >= 2
    assert "spool segment damaged" in log
    assert counts == {"rows": calls, "keys": calls, "doubles": 0}
    assert not list((config.directory / "spool").glob("*.seg"))


async def test_spool_at_its_limit_stops_acknowledging_and_loses_nothing(
    tmp_path: Path, dsn: str
) -> None:
    calls = 2000
    async with pausable_proxy() as proxy:
        await proxy.cut()
        config = CollectorConfig(
            directory=tmp_path / "c",
            dsn=proxy.dsn_for(dsn),
            log_level="info",
            spool_max_bytes=160 * 1024,
            spool_segment_bytes=32 * 1024,
            batch_max_records=50,
        )
        async with running_collector_async(config) as collector:
            async with AccountingClient(
                collector.radius_address, SECRET.encode(), timeout_s=0.5
            ) as client:
                sending = asyncio.create_task(
                    client.send_all(requests_for(calls, 11), concurrency=64)
                )
                await wait_for(
                    lambda: (
                        collector.metric("cdr_collector_records_dropped_total", reason="spool_full")
                        > 0
                    ),
                    timeout=30,
                )
                acked_when_full = client.stats.acknowledged

                # readiness says so while the spool is full (a smaller batch that
                # still fits may clear the flag between two refusals: ask again)
                def reported_full() -> bool:
                    status, body = collector.readyz()
                    return status == 503 and '"spool": "full"' in body

                await wait_for(reported_full, timeout=30)
                refused_when_full = collector.metric(
                    "cdr_collector_records_dropped_total", reason="spool_full"
                )
                # the switch keeps resending; the daemon keeps refusing what does not fit
                await wait_for(
                    lambda: (
                        collector.metric("cdr_collector_records_dropped_total", reason="spool_full")
                        >= refused_when_full + 200
                    ),
                    timeout=60,
                )
                # nothing is answered that the spool does not hold (read in this order:
                # a record is in the spool before its answer leaves)
                acked_while_full = client.stats.acknowledged
                spooled = collector.metric("cdr_collector_spool_records")
                spool_bytes = collector.metric("cdr_collector_spool_bytes")
                assert acked_while_full <= spooled
                await proxy.restore()
                stats = await sending
            began = time.monotonic()
            await wait_for(lambda: spool_empty(collector), timeout=60)
            drain = time.monotonic() - began
    counts = await table_counts(dsn)
    report("spool at its limit", calls, stats, counts, drain)
    assert spool_bytes <= 160 * 1024
    assert 0 < acked_when_full < calls
    assert stats.acknowledged == calls
    assert counts == {"rows": calls, "keys": calls, "doubles": 0}


def kamailio_packet(
    status: int,
    call_id: str,
    when: int,
    calling: str = "+493012345678",
    called: str = "+442079460123",
    code: int = 200,
    method: int = 1,
    from_tag: bytes = b"from-tag-1",
    to_tag: bytes = b"to-tag-9",
) -> bytes:
    parts = [
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(status)),
        codec.encode_attribute(d.SERVICE_TYPE, codec.integer(d.SERVICE_TYPE_SIP_SESSION)),
        codec.encode_attribute(d.SIP_RESPONSE_CODE, codec.integer(code)),
        codec.encode_attribute(d.SIP_METHOD, codec.integer(method)),
        codec.encode_attribute(d.EVENT_TIMESTAMP, codec.integer(when)),
        codec.encode_attribute(d.SIP_FROM_TAG, from_tag),
        codec.encode_attribute(d.SIP_TO_TAG, to_tag),
        codec.encode_attribute(d.ACCT_SESSION_ID, call_id.encode()),
        codec.encode_attribute(d.CALLING_STATION_ID, calling.encode()),
        codec.encode_attribute(d.CALLED_STATION_ID, called.encode()),
    ]
    return b"".join(parts)


async def test_stop_without_duration_is_completed_from_its_start_across_a_restart(
    tmp_path: Path, dsn: str
) -> None:
    now = int(time.time())
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, profile="kamailio")
    collector = Collector(config)
    collector.start()
    try:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(kamailio_packet(d.STATUS_START, "call-a@h", now - 95))
        collector.kill()
        collector.start()
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            # the callee hangs up: tags swapped, no Acct-Session-Time
            stop = kamailio_packet(
                d.STATUS_STOP, "call-a@h", now, method=8, from_tag=b"to-tag-9", to_tag=b"from-tag-1"
            )
            assert await client.send(stop)
    finally:
        collector.stop()
        collector.close()
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT duration_ms, answered, incomplete, sip_code FROM cdrs")
        open_calls = await conn.fetchval("SELECT count(*) FROM open_calls")
    assert len(rows) == 1
    assert rows[0]["duration_ms"] == 95000
    assert rows[0]["answered"] is True
    assert rows[0]["incomplete"] is False
    assert open_calls == 0


async def test_start_and_stop_both_spooled_are_joined_on_replay(tmp_path: Path, dsn: str) -> None:
    now = int(time.time())
    async with pausable_proxy() as proxy:
        await proxy.cut()
        config = CollectorConfig(
            directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), profile="kamailio"
        )
        async with running_collector_async(config) as collector:
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                assert await client.send(kamailio_packet(d.STATUS_START, "call-b@h", now - 42))
                assert await client.send(kamailio_packet(d.STATUS_STOP, "call-b@h", now, method=8))
            assert collector.metric("cdr_collector_records_spooled_total") == 2
            await proxy.restore()
            await wait_for(lambda: spool_empty(collector), timeout=30)
    async with connected(dsn) as conn:
        row = await conn.fetchrow("SELECT duration_ms, incomplete FROM cdrs")
    assert row is not None
    assert row["duration_ms"] == 42000
    assert row["incomplete"] is False


async def test_accounting_on_closes_that_clients_open_calls_only(tmp_path: Path, dsn: str) -> None:
    now = int(time.time())
    config = CollectorConfig(
        directory=tmp_path / "c",
        dsn=dsn,
        profile="kamailio",
        extra_clients='\n[[radius.clients]]\nname = "other"\naddress = "127.0.0.2"\nsecret = "x-other"\nprofile = "kamailio"\n',
    )
    reboot = codec.encode_attribute(
        d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_ACCOUNTING_ON)
    ) + codec.encode_attribute(d.EVENT_TIMESTAMP, codec.integer(now - 10))
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(kamailio_packet(d.STATUS_START, "open-1@h", now - 60))
            assert await client.send(kamailio_packet(d.STATUS_START, "open-2@h", now - 30))
            assert await client.send(reboot)
            assert await client.send(kamailio_packet(d.STATUS_START, "after@h", now - 5))
        async with AccountingClient(
            collector.radius_address, b"x-other", local_host="127.0.0.2"
        ) as other:
            assert await other.send(kamailio_packet(d.STATUS_START, "other-client@h", now - 60))
    async with connected(dsn) as conn:
        rows = await conn.fetch(
            "SELECT duration_ms, answered, incomplete FROM cdrs ORDER BY duration_ms"
        )
        still_open = await conn.fetchval("SELECT count(*) FROM open_calls")
    assert [r["duration_ms"] for r in rows] == [20000, 50000]
    assert all(r["incomplete"] and r["answered"] for r in rows)
    assert still_open == 2  # the call opened after the marker, and the other client's call


async def test_sighup_reloads_secrets_and_keeps_the_old_config_when_the_new_one_is_bad(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn)
    calls = make_calls(3, seed=5)
    with running_collector(config) as collector:
        async with AccountingClient(
            collector.radius_address, b"new-secret", tries=2, timeout_s=0.5
        ) as client:
            assert not await client.send(cisco_attributes(calls[0]))
        # left unanswered, not answered with the daemon's own secret
        assert client.stats.bad_responses == 0
        text = collector.config_path.read_text().replace(
            f'secret = "{SECRET}"', 'secret = "new-secret"'
        )
        collector.config_path.write_text(text)
        collector.signal(signal.SIGHUP)
        await wait_for(
            lambda: any(
                "configuration reloaded" in line for line in collector.log_text().splitlines()
            )
        )
        reloaded = next(
            line for line in collector.log_text().splitlines() if "configuration reloaded" in line
        )
        # what each receiver section serves, as it reports it
        assert "1 RADIUS client(s)" in reloaded
        async with AccountingClient(collector.radius_address, b"new-secret") as client:
            assert await client.send(cisco_attributes(calls[1]))
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), tries=2, timeout_s=0.5
        ) as client:
            assert not await client.send(cisco_attributes(calls[2]))
        assert client.stats.bad_responses == 0
        collector.config_path.write_text(text + "\n[radius.bogus]\n")
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: "reload refused" in collector.log_text())
        async with AccountingClient(collector.radius_address, b"new-secret") as client:
            assert await client.send(cisco_attributes(calls[2]))
        assert collector.metric("cdr_collector_config_reloads_total", result="failed") == 1
    counts = await table_counts(dsn)
    assert counts["rows"] == 2


async def test_sighup_under_load_drops_no_packet(tmp_path: Path, dsn: str) -> None:
    calls = 2000
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    with running_collector(config) as collector:
        # one transmission per request: a request lost during a reload would fail the run
        async with AccountingClient(
            collector.radius_address, SECRET.encode(), tries=1, timeout_s=10
        ) as client:
            sending = asyncio.create_task(
                client.send_all(requests_for(calls, 17), concurrency=32, rate=800)
            )
            # five reloads while the load flows, each one done before the next signal
            # (two signals in a row may make one reload)
            for reload in range(1, 6):
                await wait_for(
                    lambda answered=reload * 250: client.stats.acknowledged >= answered, timeout=60
                )
                collector.signal(signal.SIGHUP)
                await wait_for(
                    lambda done=reload: (
                        collector.metric("cdr_collector_config_reloads_total", result="ok") == done
                    ),
                    timeout=60,
                )
            stats = await sending
        reloads = collector.metric("cdr_collector_config_reloads_total", result="ok")
    counts = await table_counts(dsn)
    report("SIGHUP under load", calls, stats, counts, 0.0)
    assert reloads == 5
    assert stats.gave_up == 0
    assert stats.acknowledged == calls
    assert counts == {"rows": calls, "keys": calls, "doubles": 0}


async def test_spool_directory_removed_while_the_database_is_down(tmp_path: Path, dsn: str) -> None:
    calls = 1500
    requests = requests_for(calls, 29)
    async with pausable_proxy() as proxy:
        await proxy.cut()
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), log_level="info")
        async with running_collector_async(config) as collector:
            async with AccountingClient(
                collector.radius_address, SECRET.encode(), timeout_s=0.5
            ) as client:
                await client.send_all(requests[:500], concurrency=64)
                assert client.stats.acknowledged == 500  # from the spool
                shutil.rmtree(config.directory / "spool")
                # the spool comes back, with what was acknowledged before
                await asyncio.wait_for(client.send_all(requests[500:], concurrency=64), 20)
                await proxy.restore()
                stats = client.stats
            began = time.monotonic()
            await wait_for(lambda: spool_empty(collector), timeout=20)
            drain = time.monotonic() - began
            status, _body = collector.readyz()
        assert collector.process is not None and collector.process.returncode == 0
    counts = await table_counts(dsn)
    report("spool directory removed", calls, stats, counts, drain)
    assert status == 200
    assert stats.acknowledged == calls
    assert counts == {"rows": calls, "keys": calls, "doubles": 0}


async def test_database_dropped_and_created_again_while_running(tmp_path: Path, dsn: str) -> None:
    calls = 1000
    requests = requests_for(calls, 31)
    name = dsn.rpartition("/")[2]
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    async with running_collector_async(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            await client.send_all(requests[:200], concurrency=64)
            async with connected(dsn.replace(f"/{name}", "/postgres")) as admin:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.execute(f'CREATE DATABASE "{name}"')  # empty: no schema
            stats = await client.send_all(requests[200:], concurrency=64)
        began = time.monotonic()
        await wait_for(lambda: spool_empty(collector), timeout=20)
        drain = time.monotonic() - began
    counts = await table_counts(dsn)
    report("database dropped and created again", calls - 200, stats, counts, drain)
    assert stats.acknowledged == calls
    # the first 200 went with the old database; every later one is in the new one
    assert counts == {"rows": calls - 200, "keys": calls - 200, "doubles": 0}


async def test_rows_the_database_refuses_are_kept_aside_counted_and_their_batch_stored(
    tmp_path: Path, dsn: str
) -> None:
    """A row the database refuses for good (here: a constraint the test adds) goes to
    `rejected-*.json` and `records_dropped_total{reason="rejected"}`; the rest of its
    batch is stored. The same when the batch comes back from the spool."""
    calls = make_calls(24, seed=41)
    labelled = [
        generic_attributes(call)
        + codec.encode_attribute(d.USER_NAME, b"refused" if index % 4 == 0 else b"trunk-a")
        for index, call in enumerate(calls)
    ]
    live, spooled = labelled[:12], labelled[12:]
    spool = tmp_path / "c" / "spool"

    def refused_rows() -> int:
        return sum(
            len([line for line in path.read_bytes().splitlines() if line.strip()])
            for path in spool.glob("rejected-*.json")
        )

    async with pausable_proxy() as proxy:
        config = CollectorConfig(directory=tmp_path / "c", dsn=proxy.dsn_for(dsn), log_level="info")
        async with running_collector_async(config) as collector:
            async with connected(dsn) as conn:
                await conn.execute(
                    "ALTER TABLE cdrs ADD CONSTRAINT refuse_some "
                    "CHECK (account IS DISTINCT FROM 'refused')"
                )
            async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
                assert all(await asyncio.gather(*(client.send(r) for r in live)))
                assert refused_rows() == 3
                assert (
                    collector.metric("cdr_collector_records_dropped_total", reason="rejected") == 3
                )
                await proxy.cut()
                assert all(await asyncio.gather(*(client.send(r) for r in spooled)))
                assert collector.metric("cdr_collector_spool_records") == 12
                await proxy.restore()
                await wait_for(lambda: spool_empty(collector), timeout=60)
            assert refused_rows() == 6
            assert collector.metric("cdr_collector_records_dropped_total", reason="rejected") == 6
            # the spool's gauges follow the replay down
            assert collector.metric("cdr_collector_spool_bytes") == 0
    counts = await table_counts(dsn)
    assert counts == {"rows": 18, "keys": 18, "doubles": 0}
