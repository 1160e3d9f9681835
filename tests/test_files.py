"""CDR files: the two formats' lines, the file receiver against a real PostgreSQL, its config."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from collector.config import DatabaseConfig, PrivacyConfig, ServiceConfig, parse_config
from collector.formats.keys import write_private
from collector.model import CallRecord, Protocol
from collector.pipeline.intake import Ack, Pipeline
from collector.pipeline.redact import Redactor
from collector.receivers.files.config import FilesConfig, FileSource
from collector.receivers.files.receiver import CLAIM_SUFFIX, FilesReceiver
from collector.settings import ConfigError
from collector.sink.postgres import PostgresSink
from collector.sink.spool import Spool
from collector.sink.writer import Writer
from collector.telemetry import Health, Telemetry
from collector.vendors import asterisk
from collector.vendors.csv_cdr import LineError, split_line
from collector.vendors.freeswitch import csv_cdr as freeswitch_csv
from tests.cdr_files import CALLED, CALLING, FREESWITCH_HEADER, asterisk_line, freeswitch_line
from tests.daemon import connected, wait_for

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(hours=2)
UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def read_asterisk(line: str, zone: ZoneInfo = UTC_ZONE) -> CallRecord:
    return asterisk.csv_record(split_line(line), "pbx", zone, NOW)


def read_freeswitch(line: str, zone: ZoneInfo = UTC_ZONE) -> CallRecord:
    return freeswitch_csv.csv_record(split_line(line), "fs", zone, NOW)


# --- the formats ----------------------------------------------------------------------------


def test_an_answered_asterisk_line_bills_billsec_from_the_answer() -> None:
    record = read_asterisk(
        asterisk_line(7, START, ring_s=5, talk_s=61, zone="Europe/Berlin"), BERLIN
    )
    # written in Berlin wall time, read back as the same instants
    assert record.setup_time == START
    assert record.connect_time == START + timedelta(seconds=5)
    assert record.disconnect_time == START + timedelta(seconds=66)
    assert record.duration_ms == 61_000  # billsec, not duration (which holds the ringing)
    assert (record.answered, record.disconnect_cause, record.protocol) == (True, 16, Protocol.FILE)
    assert (record.calling, record.called) == (CALLING % 7, CALLED % 7)
    assert record.account == "trunk-a"


@pytest.mark.parametrize(
    ("disposition", "cause"),
    [("BUSY", 17), ("NO ANSWER", 19), ("CONGESTION", 34), ("FAILED", None)],
)
def test_asterisk_dispositions_give_their_cause(disposition: str, cause: int | None) -> None:
    record = read_asterisk(asterisk_line(1, START, disposition=disposition))
    assert (record.answered, record.disconnect_cause, record.connect_time) == (False, cause, None)


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"uniqueid": False}, ()),
        ({"uniqueid": True}, ("uniqueid",)),
        ({"uniqueid": False, "userfield": True}, ("userfield",)),
        ({"uniqueid": True, "userfield": True}, ("uniqueid", "userfield")),
        ({"uniqueid": False, "new_columns": True}, asterisk.NEW_COLUMNS),
        ({"uniqueid": True, "new_columns": True}, ("uniqueid", *asterisk.NEW_COLUMNS)),
        (
            {"uniqueid": True, "userfield": True, "new_columns": True},
            ("uniqueid", "userfield", *asterisk.NEW_COLUMNS),
        ),
    ],
)
def test_asterisk_optional_columns_are_told_by_count_and_form(
    options: dict[str, Any], names: tuple[str, ...]
) -> None:
    fields = split_line(asterisk_line(3, START, **options))
    assert asterisk.columns(fields) == asterisk.BASE_COLUMNS + names
    assert read_asterisk(asterisk_line(3, START, **options)).duration_ms == 60_000


def test_record_keys_come_from_the_unique_id_else_the_whole_line() -> None:
    with_id = read_asterisk(asterisk_line(3, START))
    assert with_id.session_id.startswith(f"pbx1-{int(START.timestamp())}.3")
    # the same line read again: the same identity; another line: another
    assert read_asterisk(asterisk_line(3, START)).session_id == with_id.session_id
    plain = read_asterisk(asterisk_line(3, START, uniqueid=False))
    assert plain.session_id == read_asterisk(asterisk_line(3, START, uniqueid=False)).session_id
    assert plain.session_id != read_asterisk(asterisk_line(4, START, uniqueid=False)).session_id
    fs = read_freeswitch(freeswitch_line(9, START, uuid="0b0e8f3c-1111-4222-8333-944455556666"))
    assert fs.session_id == "0b0e8f3c-1111-4222-8333-944455556666"
    assert fs.correlation == fs.session_id  # a bridged A-leg
    anonymous = read_freeswitch(freeswitch_line(9, START, uuid=""))
    assert anonymous.session_id.startswith("line:")


def test_quoted_fields_keep_commas_and_quotes() -> None:
    fields = split_line(asterisk_line(5, START, userfield=True))
    assert fields[4] == '"Caller, 5" <44207946' + "0005>"
    assert fields[17] == 'route=7, note="x"'
    assert asterisk.columns(fields)[16:] == ("uniqueid", "userfield")


@pytest.mark.parametrize(
    ("cause", "talk_s", "expected"),
    [
        ("NORMAL_CLEARING", 30, (True, 16, None)),
        ("USER_BUSY", 0, (False, 17, None)),
        ("ORIGINATOR_CANCEL", 0, (False, 16, 487)),
        ("NO_ANSWER", 0, (False, 19, None)),
        ("GATEWAY_DOWN", 0, (False, None, None)),
    ],
)
def test_freeswitch_causes_are_read_as_on_every_other_path(
    cause: str, talk_s: int, expected: tuple[bool, int | None, int | None]
) -> None:
    record = read_freeswitch(
        freeswitch_line(2, START, cause=cause, talk_s=talk_s, zone="Europe/Berlin"), BERLIN
    )
    assert (record.answered, record.disconnect_cause, record.sip_code) == expected
    assert record.setup_time == START
    assert record.duration_ms == talk_s * 1000


def test_the_older_freeswitch_template_of_13_columns_is_read() -> None:
    fields = split_line(freeswitch_line(2, START))[:13]
    record = freeswitch_csv.csv_record(fields, "fs", UTC_ZONE, NOW)
    assert record.duration_ms == 30_000 and record.called == CALLED % 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('"a","b"', "column_count"),
        (asterisk_line(1, START).replace(START.strftime("%Y-%m-%d"), "yesterday"), "bad_time"),
        (asterisk_line(1, START).replace(",65,60,", ",65,sixty,"), "bad_seconds"),
        ('"a,"b"', "unbalanced_quotes"),
    ],
)
def test_unreadable_asterisk_lines_say_why_without_values(line: str, reason: str) -> None:
    with pytest.raises(LineError) as caught:
        read_asterisk(line)
    assert caught.value.reason == reason
    assert str(caught.value) == reason  # nothing from the line in the message


def test_title_lines_are_recognised() -> None:
    assert freeswitch_csv.is_header(split_line(FREESWITCH_HEADER))
    assert not freeswitch_csv.is_header(split_line(freeswitch_line(1, START)))
    title = ",".join(f'"{name}"' for name in asterisk.BASE_COLUMNS)
    assert asterisk.is_header(split_line(title))
    assert not asterisk.is_header(split_line(asterisk_line(1, START)))


# --- the receiver, against PostgreSQL ---------------------------------------------------------


class Intake:
    """The service's intake (a Pipeline: normalize, redact, submit to a real writer), which
    can be told to stop taking records, and remembers what it set aside. It wraps the
    Pipeline rather than subclass it: compiled (mypyc), Pipeline takes no Python subclass."""

    def __init__(self, redactor: Redactor, writer: Writer) -> None:
        self.pipeline = Pipeline(redactor, writer.submit, writer.set_aside)
        self.aside: list[CallRecord] = []
        #: refuse every record after this many were taken (None: never)
        self.take_at_most: int | None = None
        self.taken = 0

    def accept(self, record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        if self.take_at_most is not None and self.taken >= self.take_at_most:
            return False
        self.taken += 1
        return self.pipeline.accept(record, received_at, ack)

    def set_aside(self, record: CallRecord, received_at: datetime) -> None:
        self.aside.append(record)
        self.pipeline.set_aside(record, received_at)


@dataclass
class Harness:
    directory: Path
    spool: Path
    dsn: str
    intake: Intake
    telemetry: Telemetry
    writer: Writer

    def receiver(self, fmt: str = "asterisk-csv", **source: Any) -> FilesReceiver:
        config = FilesConfig(
            poll_interval_s=1,
            sources=(
                FileSource(name="pbx-1", directory=str(self.directory), format=fmt, **source),
            ),
        )
        return FilesReceiver(config, self.intake, self.telemetry)

    def lines(self, outcome: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "cdr_collector_packets_total",
            {"listener": "files", "source": "pbx-1", "outcome": outcome},
        )
        return value or 0.0


def _privacy() -> PrivacyConfig:
    return PrivacyConfig(keys=(("t1", b"k" * 32),), record_secret=b"r" * 32, default_region="GB")


@pytest.fixture
async def harness(tmp_path: Path, dsn: str) -> AsyncIterator[Harness]:
    directory = tmp_path / "drop"
    directory.mkdir()
    spool_dir = tmp_path / "spool"
    telemetry = Telemetry()
    sink = PostgresSink(DatabaseConfig(dsn=dsn, batch_max_delay_ms=5), retention_days=30)
    spool = Spool(str(spool_dir), 64 * 1024 * 1024, 1024 * 1024)
    writer = Writer(ServiceConfig(), DatabaseConfig(dsn=dsn), sink, spool, telemetry, Health())
    await writer.start()
    intake = Intake(Redactor(_privacy()), writer)
    try:
        yield Harness(directory, spool_dir, dsn, intake, telemetry, writer)
    finally:
        await writer.stop(5)


async def rows(dsn: str) -> list[asyncpg.Record]:
    async with connected(dsn) as conn:
        return list(await conn.fetch("SELECT * FROM cdrs ORDER BY setup_time, duration_ms"))


def write(path: Path, text: str, *, mtime_ago_s: float = 0) -> None:
    path.write_bytes(text.encode())
    if mtime_ago_s:
        when = datetime.now().timestamp() - mtime_ago_s
        os.utime(path, (when, when))


async def test_a_renamed_file_is_stored_once_and_deleted(harness: Harness) -> None:
    lines = [
        asterisk_line(i, START + timedelta(minutes=i), zone="Europe/Berlin") for i in range(20)
    ]
    tmp = harness.directory / "cdr-0001.csv.tmp"
    write(tmp, "\n".join(lines) + "\n")
    receiver = harness.receiver(timezone="Europe/Berlin")
    await receiver.start()
    try:
        tmp.rename(harness.directory / "cdr-0001.csv")
        await wait_for(lambda: receiver.files_done == 1)
    finally:
        await receiver.stop()
    stored = await rows(harness.dsn)
    assert len(stored) == 20
    assert list(harness.directory.iterdir()) == []
    first = stored[0]
    assert first["protocol"] == "file" and first["source"] == "pbx-1"
    assert first["setup_time"] == START  # Berlin wall time read back as the instant it was
    assert first["duration_ms"] == 60_000 and first["answered"] is True
    assert first["disconnect_cause"] == 16
    assert first["called_masked"] == "+442079460***"  # 020 7946 0000 from a UK switch
    assert first["called_hmac"].startswith("t1:") and first["calling_hmac"].startswith("t1:")
    assert harness.lines("accepted") == 20


async def test_a_growing_file_is_taken_only_once_it_stays_the_same(harness: Harness) -> None:
    path = harness.directory / "growing.csv"
    receiver = harness.receiver(fmt="freeswitch-csv")
    await receiver.start()
    try:
        written = [FREESWITCH_HEADER]
        for i in range(6):
            written.append(freeswitch_line(i, START + timedelta(minutes=i)))
            write(path, "\n".join(written) + "\n")
            await asyncio.sleep(0.7)  # less than the two polls a file must stay unchanged
            assert path.exists(), "taken while it was still growing"
        await wait_for(lambda: receiver.files_done == 1)
    finally:
        await receiver.stop()
    stored = await rows(harness.dsn)
    assert len(stored) == 6  # every line, the title line not
    assert not path.exists()


async def test_bom_crlf_blank_and_bad_lines(harness: Harness) -> None:
    good = [asterisk_line(i, START + timedelta(minutes=i)) for i in range(4)]
    bad = asterisk_line(99, START).replace(",65,60,", ",65,sixty,")
    text = "\ufeff" + "\r\n".join([good[0], "", good[1], bad, "  ", good[2], '"x","y"', good[3]])
    write(harness.directory / "messy.csv", text + "\r\n", mtime_ago_s=60)
    receiver = harness.receiver()
    await receiver.start()
    try:
        await wait_for(lambda: receiver.files_done == 1)
    finally:
        await receiver.stop()
    await harness.writer.stop(5)  # waits for what was set aside
    assert len(await rows(harness.dsn)) == 4
    assert harness.lines("malformed") == 2 and harness.lines("accepted") == 4
    # the bad lines are kept, redacted, with the rejected rows
    (rejected,) = harness.spool.glob("rejected-*.json")
    kept = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert len(kept) == 2
    text_kept = rejected.read_text()
    assert CALLED % 99 not in text_kept and CALLING % 99 not in text_kept
    assert "SIP/" not in text_kept and "192.0.2.50" not in text_kept
    refused = harness.intake.aside
    assert [r.called for r in refused] == [CALLED % 99, None]  # the numbers where told apart


async def test_a_stop_in_the_middle_reads_the_file_again_and_stores_nothing_twice(
    harness: Harness,
) -> None:
    count = 3000
    lines = [asterisk_line(i, START + timedelta(seconds=i)) for i in range(count)]
    write(harness.directory / "large.csv", "\n".join(lines) + "\n", mtime_ago_s=60)
    harness.intake.take_at_most = 1200  # the writer stops taking: the file is part-read
    receiver = harness.receiver()
    await receiver.start()
    try:
        await wait_for(lambda: harness.lines("accepted") == 1200)
    finally:
        await receiver.stop()
    claimed = harness.directory / ("large.csv" + CLAIM_SUFFIX)
    assert claimed.exists() and len(await rows(harness.dsn)) == 1200
    harness.intake.take_at_most = None
    again = harness.receiver()
    await again.start()
    try:
        await wait_for(lambda: again.files_done == 1)
    finally:
        await again.stop()
    async with connected(harness.dsn) as conn:
        stored = await conn.fetchval("SELECT count(*) FROM cdrs")
        keys = await conn.fetchval("SELECT count(DISTINCT record_key) FROM cdrs")
    assert stored == keys == count
    assert list(harness.directory.iterdir()) == []


async def test_records_not_made_durable_are_handed_over_again(harness: Harness) -> None:
    """An acknowledgement that says "not durable" leaves the file in place and the line is
    handed over again (here: the intake fails the first acknowledgement of each record)."""
    failed: set[str] = set()
    real_accept = harness.intake.accept

    def flaky(record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        if record.session_id not in failed and ack is not None:
            failed.add(record.session_id)
            asyncio.get_running_loop().call_soon(ack, False)
            return True
        return real_accept(record, received_at, ack)

    harness.intake.accept = flaky  # type: ignore[method-assign]
    lines = [freeswitch_line(i, START + timedelta(minutes=i)) for i in range(5)]
    write(harness.directory / "a.csv", "\n".join(lines) + "\n", mtime_ago_s=60)
    receiver = harness.receiver(fmt="freeswitch-csv")
    await receiver.start()
    try:
        await wait_for(lambda: receiver.files_done == 1)
    finally:
        await receiver.stop()
    assert len(await rows(harness.dsn)) == 5
    assert harness.lines("not_durable") == 5 and harness.lines("accepted") == 5


# --- the schema -----------------------------------------------------------------------------


async def test_the_protocol_check_takes_every_protocol_and_refuses_what_is_no_name(
    dsn: str,
) -> None:
    sink = PostgresSink(DatabaseConfig(dsn=dsn), retention_days=30)
    await sink.connect()
    await sink.close()
    insert = (
        "INSERT INTO cdrs (record_key, source, protocol, call_time, duration_ms, answered,"
        " received_at) VALUES ($1, 's', $2, now(), 0, false, now())"
    )
    async with connected(dsn) as conn:
        for index, protocol in enumerate(Protocol):
            await conn.execute(insert, bytes([index]) * 16, protocol.value)
        for wrong in ("", "File", " file", "file'; --", "x" * 40):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(insert, b"\xff" * 16, wrong)


# --- the configuration ----------------------------------------------------------------------


def _config(tmp_path: Path, files: str) -> str:
    write_private(tmp_path / "keys", "t1:" + "a2V5LWtleS1rZXkta2V5LWtleS1rZXk=\n")
    write_private(tmp_path / "record-key", "cmVjb3JkLWtleS1yZWNvcmQta2V5LXJlY29yZA==\n")
    return (
        f'[spool]\ndirectory = "{tmp_path / "spool"}"\n'
        '[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n' + files
    )


def _problems(tmp_path: Path, files: str) -> list[str]:
    import tomllib

    path = tmp_path / "collector.toml"
    text = _config(tmp_path, files)
    path.write_text(text)
    try:
        parse_config(str(path), tomllib.loads(text))
    except ConfigError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def test_a_files_section_is_read(tmp_path: Path) -> None:
    import tomllib

    (tmp_path / "drop").mkdir()
    text = _config(
        tmp_path,
        '[files]\n[[files.sources]]\nname = "pbx"\ndirectory = "drop"\n'
        'format = "freeswitch-csv"\ntimezone = "Europe/Berlin"\nregion = "de"\n',
    )
    path = tmp_path / "collector.toml"
    config = parse_config(str(path), tomllib.loads(text))
    assert config.files is not None
    (source,) = config.files.sources
    assert source.directory == str(tmp_path / "drop") and source.pattern == "*.csv"
    assert config.files.poll_interval_s == 2
    # under the protocol its records carry, where the redactor looks it up
    assert config.source_regions()[(Protocol.FILE.value, "pbx")] == "DE"


def test_files_problems_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "readonly").mkdir(mode=0o500)
    problems = _problems(
        tmp_path,
        "[files]\npoll_interval_s = 0\nwhat = 1\n"
        '[[files.sources]]\nname = "a"\ndirectory = "."\nformat = "cisco"\n'
        'timezone = "Mars/Olympus"\npattern = "sub/*.csv"\n'
        '[[files.sources]]\nname = "b"\ndirectory = "missing"\nformat = "asterisk-csv"\n'
        '[[files.sources]]\nname = "c"\ndirectory = "readonly"\nformat = "asterisk-csv"\n',
    )
    path = tmp_path / "collector.toml"
    expected = [
        "files.poll_interval_s: must be greater than 0",
        "files.what: unknown key",
        "files.sources[0].format: must be one of asterisk-csv, freeswitch-csv",
        "files.sources[0].timezone: 'Mars/Olympus' is not a time zone name",
        "files.sources[0].pattern: must be a file name pattern",
        f"files.sources[1].directory: '{tmp_path / 'missing'}' does not exist",
    ]
    if os.geteuid() != 0:  # root may write anywhere
        expected.append(f"files.sources[2].directory: '{tmp_path / 'readonly'}' is not readable")
    for start in expected:
        assert any(p.startswith(f"{path}: {start}") for p in problems), (start, problems)
