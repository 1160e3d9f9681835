"""CDR files through the real daemon: dropped, stored once with their billing facts, deleted;
a SIGKILL in the middle of a large file; a damaged line set aside without blocking the rest."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cdr_files import CALLED, FREESWITCH_HEADER, asterisk_line, freeswitch_line
from tests.daemon import Collector, CollectorConfig, connected, running_collector_async, wait_for

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def files_config(directory: Path, dsn: str) -> tuple[CollectorConfig, Path, Path]:
    asterisk_dir = directory / "asterisk"
    freeswitch_dir = directory / "freeswitch"
    asterisk_dir.mkdir(parents=True)
    freeswitch_dir.mkdir(parents=True)
    extra = (
        "[files]\npoll_interval_s = 1\n\n"
        f'[[files.sources]]\nname = "pbx-berlin"\ndirectory = "{asterisk_dir}"\n'
        'format = "asterisk-csv"\ntimezone = "Europe/Berlin"\nregion = "GB"\n\n'
        f'[[files.sources]]\nname = "fs-1"\ndirectory = "{freeswitch_dir}"\n'
        'format = "freeswitch-csv"\npattern = "cdr-*.csv"\nregion = "GB"\n'
    )
    return CollectorConfig(directory=directory, dsn=dsn, extra=extra), asterisk_dir, freeswitch_dir


async def count_rows(dsn: str, source: str | None = None) -> int:
    async with connected(dsn) as conn:
        if source is None:
            return int(await conn.fetchval("SELECT count(*) FROM cdrs"))
        return int(await conn.fetchval("SELECT count(*) FROM cdrs WHERE source = $1", source))


async def test_files_of_both_formats_are_stored_once_and_deleted(tmp_path: Path, dsn: str) -> None:
    config, asterisk_dir, freeswitch_dir = files_config(tmp_path / "daemon", dsn)
    async with running_collector_async(config) as collector:
        # Asterisk: written as .tmp, renamed when complete
        lines = [
            asterisk_line(1, START, ring_s=7, talk_s=125, zone="Europe/Berlin"),
            asterisk_line(2, START, disposition="BUSY", zone="Europe/Berlin"),
            asterisk_line(3, START, disposition="NO ANSWER", zone="Europe/Berlin"),
        ]
        partial = asterisk_dir / "Master-0001.csv.tmp"
        partial.write_text("\n".join(lines) + "\n")
        partial.rename(asterisk_dir / "Master-0001.csv")
        # FreeSWITCH: a file that grows for a while before it is complete
        growing = freeswitch_dir / "cdr-0001.csv"
        written = [FREESWITCH_HEADER]
        for index, cause in enumerate(("NORMAL_CLEARING", "USER_BUSY", "ORIGINATOR_CANCEL")):
            talk = 42 if cause == "NORMAL_CLEARING" else 0
            written.append(freeswitch_line(10 + index, START, talk_s=talk, cause=cause))
            growing.write_text("\n".join(written) + "\n")
            await asyncio.sleep(0.5)
        # a file the pattern does not take stays where it is
        (freeswitch_dir / "notes.txt").write_text("not a CDR file\n")
        await wait_for(lambda: not any(asterisk_dir.iterdir()), timeout=30)
        await wait_for(lambda: sorted(p.name for p in freeswitch_dir.iterdir()) == ["notes.txt"])
        await wait_for(
            lambda: collector.metric("cdr_collector_packets_total", outcome="accepted") == 6
        )
        assert (
            collector.metric(
                "cdr_collector_packets_total", listener="files", source="fs-1", outcome="accepted"
            )
            == 3
        )
        async with connected(dsn) as conn:
            rows = await conn.fetch(
                "SELECT source, protocol, setup_time, connect_time, disconnect_time, duration_ms,"
                " answered, disconnect_cause, sip_code, called_masked, called_hmac"
                " FROM cdrs ORDER BY source, called_masked"
            )
        log = collector.log_text()
    assert len(rows) == 6
    assert {row["protocol"] for row in rows} == {"file"}
    (answered,) = [r for r in rows if r["source"] == "pbx-berlin" and r["answered"]]
    assert answered["called_masked"] == "+442079460***"  # 020 7946 0001 from a UK switch
    assert answered["setup_time"] == START  # Berlin wall time read as the instant it was
    assert answered["connect_time"] == START + timedelta(seconds=7)
    assert answered["duration_ms"] == 125_000 and answered["answered"] is True
    assert answered["disconnect_cause"] == 16
    causes = sorted(
        (row["disconnect_cause"] or 0, row["answered"], row["sip_code"] or 0) for row in rows
    )
    assert causes == [
        (16, False, 487),  # FreeSWITCH ORIGINATOR_CANCEL
        (16, True, 0),
        (16, True, 0),
        (17, False, 0),
        (17, False, 0),
        (19, False, 0),
    ]
    # nothing identifying reaches the log: no number, channel, address
    for number in (CALLED % 1, CALLED % 10, "SIP/carrier", "192.0.2.50"):
        assert number not in log


async def test_a_sigkill_in_a_large_file_stores_nothing_twice(tmp_path: Path, dsn: str) -> None:
    config, asterisk_dir, _ = files_config(tmp_path / "daemon", dsn)
    total = 40_000
    bad_at = 1234
    lines = [asterisk_line(i, START + timedelta(seconds=i)) for i in range(total)]
    lines[bad_at] = lines[bad_at].replace(",65,60,", ",65,sixty,")
    collector = Collector(config)
    try:
        await collector.start_async()
        (asterisk_dir / "large.csv").write_text("\n".join(lines) + "\n")
        await wait_for(lambda: count_rows(dsn), timeout=60, interval=0.05)
        collector.kill()  # SIGKILL: in the middle of the file
        before = await count_rows(dsn)
        assert 0 < before < total - 1, "the file was done before the kill: make it larger"
        assert (asterisk_dir / "large.csv.collecting").exists()
        await collector.start_async()
        await wait_for(lambda: not any(asterisk_dir.iterdir()), timeout=120)
        assert collector.metric("cdr_collector_packets_total", outcome="malformed") == 1
        await collector.stop_async()
    finally:
        collector.close()
    async with connected(dsn) as conn:
        stored = await conn.fetchval("SELECT count(*) FROM cdrs")
        keys = await conn.fetchval("SELECT count(DISTINCT record_key) FROM cdrs")
        billed = await conn.fetchval("SELECT sum(duration_ms) FROM cdrs")
    assert stored == keys == total - 1  # every line but the damaged one, each once
    assert billed == (total - 1) * 60_000
    # the damaged line is kept, redacted, with the rejected rows (twice: it was read twice)
    kept = [
        json.loads(line)
        for path in (config.directory / "spool").glob("rejected-*.json")
        for line in path.read_text().splitlines()
    ]
    assert 1 <= len(kept) <= 2
    text = json.dumps(kept)
    assert CALLED % (bad_at % 1000) not in text and "SIP/" not in text
