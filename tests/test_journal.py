"""Log lines as journald files them: each line carries its level's `<N>` prefix.

journald reads a unit's stderr line by line and files each line at the
priority its `<N>` prefix names, at info without one. There is no journald on
the test host, so the tests play its part: stderr is a real socket (or file)
whose device and inode go into JOURNAL_STREAM, exactly as systemd sets it,
and the bytes that arrive are read as journald reads them: split at every
newline, each piece judged by its own prefix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.formats.keys import write_private
from collector.logs import configure_logging, get_logger, journal_priority
from tests.daemon import Collector, CollectorConfig, wait_for

ROOT = Path(__file__).resolve().parent.parent

#: the syslog priority each structlog level must reach the journal with
PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

#: logs a line at every level, from structlog and from a library's stdlib logger, a
#: message of two lines and an exception whose traceback spans many
CHILD = """
import logging, sys
from collector.logs import configure_logging, get_logger
configure_logging("debug", sys.argv[1])
log = get_logger("collector.test")
log.debug("debug line")
log.info("info line")
log.warning("warning line")
log.error("error line")
log.critical("critical line")
logging.getLogger("asyncpg").warning("library warning")
log.critical("first of two lines\\nsecond of two lines")
log.error("a NUL\\0inside")
try:
    raise ValueError("message line one\\nmessage line two")
except ValueError:
    log.exception("it failed")
"""


def journal_stream_of(target: int | Path) -> str:
    """What systemd puts in JOURNAL_STREAM for this descriptor (or file)."""
    status = os.fstat(target) if isinstance(target, int) else os.stat(target)
    return f"{status.st_dev}:{status.st_ino}"


def child_env(journal_stream: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    return env


def run_with_socket_stderr(
    args: list[str], journal: bool | str, stdout: int | None = None
) -> tuple[int, bytes]:
    """Run `args` with stderr on one end of a real stream socket pair, as systemd connects
    a unit to journald; return the exit status and every byte read from the other end.

    `journal`: True sets JOURNAL_STREAM to that socket, a string sets it to that
    value (another file's), False leaves it unset.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        with theirs:
            value = journal_stream_of(theirs.fileno()) if journal is True else journal or None
            process = subprocess.Popen(
                args,
                stderr=theirs.fileno(),
                stdout=stdout,
                env=child_env(value),
                cwd=ROOT,
            )
        chunks = []
        while chunk := ours.recv(65536):
            chunks.append(chunk)
    return process.wait(timeout=60), b"".join(chunks)


def as_journald_reads(data: bytes) -> list[tuple[int, bytes]]:
    """(priority, message) of every line, as journald's stream reader takes them apart:
    a line starting with <N> is filed at N, any other at the default, info."""
    assert data.endswith(b"\n")
    entries = []
    for line in data[:-1].split(b"\n"):
        match = re.fullmatch(rb"<([0-7])>(.*)", line, re.DOTALL)
        entries.append((int(match.group(1)), match.group(2)) if match else (6, line))
    return entries


def test_journal_priority_of_every_level() -> None:
    assert [journal_priority(level) for level in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    # levels between the standard ones, and beyond them, fall to the one below
    assert [journal_priority(level) for level in (5, 25, 35, 45, 60)] == [7, 6, 4, 3, 2]


def test_every_json_line_reaches_the_journal_with_its_level() -> None:
    status, data = run_with_socket_stderr([sys.executable, "-c", CHILD, "json"], journal=True)
    assert status == 0, data
    entries = as_journald_reads(data)
    assert len(entries) == 9  # one line per record: JSON escapes every newline
    levels = []
    for priority, message in entries:
        line = json.loads(message)
        assert priority == PRIORITY[line["level"]], (priority, line)
        levels.append(line["level"])
    assert levels == [
        "debug",
        "info",
        "warning",
        "error",
        "critical",
        "warning",
        "critical",
        "error",
        "error",
    ]
    assert "message line two" in json.loads(entries[-1][1])["exception"]


def test_every_line_of_a_multi_line_record_carries_the_prefix() -> None:
    """Console format writes a traceback over many lines: journald files each on its own,
    so each needs the record's prefix or it lands at info, out of `journalctl -p err`."""
    status, data = run_with_socket_stderr([sys.executable, "-c", CHILD, "console"], journal=True)
    assert status == 0, data
    assert all(re.match(rb"<[0-7]>", line) for line in data.splitlines()), data
    # journald ends a line at a NUL too: it is written escaped, so no piece goes unprefixed
    assert b"\0" not in data and b"a NUL\\0inside" in data
    entries = as_journald_reads(data)
    texts = [message.decode() for _, message in entries]
    first = next(i for i, text in enumerate(texts) if "first of two lines" in text)
    assert "second of two lines" in texts[first + 1]
    assert [priority for priority, _ in entries[first : first + 2]] == [2, 2]
    failed = next(i for i, text in enumerate(texts) if "it failed" in text)
    traceback = entries[failed:]
    assert len(traceback) > 4
    assert any(b"Traceback" in message for _, message in traceback)
    assert any(message.startswith(b"message line two") for _, message in traceback)
    assert {priority for priority, _ in traceback} == {3}
    warning = next(i for i, text in enumerate(texts) if "warning line" in text)
    assert entries[warning][0] == 4


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_outside_the_journal_the_output_is_unchanged(fmt: str, tmp_path: Path) -> None:
    """No JOURNAL_STREAM, or one naming another file (a unit's shell that redirected
    stderr): not a byte of prefix."""
    other = tmp_path / "elsewhere"
    other.write_bytes(b"")
    for journal in (False, journal_stream_of(other)):
        status, data = run_with_socket_stderr([sys.executable, "-c", CHILD, fmt], journal)
        assert status == 0, data
        assert not re.search(rb"(^|\n)<[0-7]>", data), data
        if fmt == "json":
            lines = [json.loads(line) for line in data.splitlines()]
            assert [line["level"] for line in lines][:5] == list(PRIORITY)
        else:
            assert b"Traceback" in data


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    try:
        yield
    finally:
        sys.excepthook = hook
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


def test_the_exact_bytes_written_to_a_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """The stream is a real file here: its device and inode in JOURNAL_STREAM make it the
    journal's; the bytes are the JSON line behind its prefix, nothing else."""
    path = tmp_path / "stream"
    with open(path, "w", encoding="utf-8") as stream:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stream.fileno()))
        configure_logging("info", "json", stream)
        log = get_logger("collector.test")
        log.warning("spool nearly full", records=3)
        log.info("configuration reloaded", keys=2)
        log.debug("not written at info")
    first, second = path.read_bytes().split(b"\n")[:2]
    assert path.read_bytes().count(b"\n") == 2
    assert first.startswith(b"<4>{") and second.startswith(b"<6>{")
    warning = json.loads(first[3:])
    assert (warning["event"], warning["level"], warning["records"]) == (
        "spool nearly full",
        "warning",
        3,
    )
    assert json.loads(second[3:])["event"] == "configuration reloaded"


def test_check_config_problems_reach_the_journal_as_errors(tmp_path: Path) -> None:
    """ExecStartPre=cdr-collector check-config: why the unit did not start is an error
    in the journal (a key file others can read among the reasons); a good
    configuration leaves nothing there but its OK line on stdout."""
    keys = tmp_path / "keys"
    write_private(keys, "t1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY" + "\n")
    record = tmp_path / "record-key"
    write_private(record, "UlJSUlJSUlJSUlJSUlJSUlJSUlI=\n")
    good = tmp_path / "good.toml"
    good.write_text(
        '[spool]\ndirectory = "spool"\n[privacy]\nkey_file = "keys"\n'
        'record_key_file = "record-key"\n[radius]\nlisten = ["127.0.0.1:0"]\n'
        '[[radius.clients]]\nname = "sbc"\naddress = "127.0.0.1"\nsecret = "x"\n'
    )
    args = [sys.executable, "-m", "collector", "check-config", "--config", str(good)]
    status, data = run_with_socket_stderr(args, journal=True, stdout=subprocess.DEVNULL)
    assert status == 0, data
    assert data == b""
    keys.chmod(0o644)
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('address = "127.0.0.1"', 'address = "nowhere"'))
    args[-1] = str(bad)
    status, data = run_with_socket_stderr(args, journal=True, stdout=subprocess.DEVNULL)
    assert status == 1
    entries = as_journald_reads(data)
    assert len(entries) >= 3
    assert {priority for priority, _ in entries} == {3}
    assert any(b"radius.clients[0].address" in message for _, message in entries)
    assert any(
        b"privacy.key_file: " + str(keys).encode() + b" is mode 0644: readable by others" in message
        for _, message in entries
    )


def journal_lines(collector: Collector) -> list[tuple[int, dict[str, Any]]]:
    """(priority, parsed JSON) of every line the daemon wrote to its journal stream."""
    entries = as_journald_reads(collector.log_path.read_bytes())
    return [(priority, json.loads(message)) for priority, message in entries]


async def test_the_daemon_under_a_journal_stream_files_each_line_at_its_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=None, log_level="info")
    collector = Collector(config)
    try:
        collector.log_path.touch()
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(collector.log_path))
        collector.start()
        collector.config_path.write_text(collector.config_path.read_text() + "\n[radius.bogus]\n")
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: b"reload refused" in collector.log_path.read_bytes())
        assert collector.stop() == 0
        lines = journal_lines(collector)
        for priority, line in lines:
            assert priority == PRIORITY[line["level"]], line
        events = {line["event"]: priority for priority, line in lines}
        assert events["collector started"] == 6
        assert events["reload refused: configuration problem"] == 3
    finally:
        collector.close()
