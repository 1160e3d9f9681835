"""CDR files: CSV files that switches drop into a directory, read once and then deleted.

Each `[[files.sources]]` names a directory, the format of its files and the
time zone of their times. Every `poll_interval_s` the receiver lists each
directory; a file whose name matches `pattern` is taken once it is
complete: its size and modification time stayed the same over two polls (a
switch that writes `x.csv.tmp` and renames it when done is covered, the
`.tmp` name never matches). Taking a file renames it to `NAME.collecting`
in the same directory (the claim), so a switch that drops a new file under
the same name does not mix with it. Each line becomes a record handed to
the intake (normalize, redact, submit) with its acknowledgement; once every record of the file
is durable (committed, or fsync'd to the spool), the file is deleted (it
holds full phone numbers: it must not stay on disk) and the directory
fsync'd. A record that was not made durable is handed over again at the
next poll. After a crash, a claimed file is read again from its start:
every record's key is deterministic from its line (the switch's unique id,
else a digest of the line), so what was already stored is not stored
twice.

A line that is no CDR of its format (too few columns, a time that is no
time) is counted malformed and set aside through the intake, with whatever
numbers it held where they could be told apart, so that it is kept,
redacted, with the rejected rows; the rest of the file goes on. Blank
lines, a title line, a byte order mark and CRLF line ends are skipped.
Nothing read from a file is logged: a line holds numbers, channel names
and addresses; log lines name the source and the file's name only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

from collector.disk import sync_directory
from collector.logs import RateLimitedLog, get_logger
from collector.model import CallRecord, RecordKind
from collector.model import Protocol as RecordProtocol
from collector.pipeline.intake import Intake
from collector.receivers.files.config import FilesConfig, FileSource
from collector.telemetry import PacketCounts, Telemetry
from collector.vendors import asterisk
from collector.vendors.csv_cdr import LineError, line_digest, split_line
from collector.vendors.freeswitch import csv_cdr as freeswitch_csv

log = get_logger(__name__)

#: what a claimed file's name ends with
CLAIM_SUFFIX: Final = ".collecting"
#: polls a file's size and modification time must stay the same before it is taken
STABLE_POLLS: Final = 2
#: records of one file handed over and not yet acknowledged, at most
MAX_IN_FLIGHT: Final = 5000
#: lines read between two yields to the event loop
LINES_PER_TURN: Final = 500

#: (fields, source, zone, received_at) -> record; raises LineError
Parse = Callable[[list[str], str, ZoneInfo, datetime], CallRecord]

#: each format's line reader and title-line test
FORMATS: Final[dict[str, tuple[Parse, Callable[[list[str]], bool]]]] = {
    "asterisk-csv": (asterisk.csv_record, asterisk.is_header),
    "freeswitch-csv": (freeswitch_csv.csv_record, freeswitch_csv.is_header),
}


@dataclass
class _Job:
    """One claimed file being read: where its lines are, which records are still in flight."""

    path: Path
    handle: IO[bytes]
    received_at: datetime
    line_number: int = 0
    #: the next line is the file's first (a BOM and a title line are allowed there)
    first: bool = True
    done_reading: bool = False
    in_flight: int = 0
    #: records acknowledged as not durable, or not taken: handed over again
    again: list[CallRecord] = field(default_factory=list)
    #: after a record was not made durable, nothing more is handed over before this
    #: (monotonic): the database and the spool get a poll interval, not a busy loop
    resume_at: float = 0.0
    lines_read: int = 0
    records: int = 0
    malformed: int = 0


class _SourceScanner:
    """The files of one source: which are stable, which one is being read."""

    def __init__(self, receiver: FilesReceiver, source: FileSource) -> None:
        self.receiver = receiver
        self.source = source
        self.directory = Path(source.directory)
        self.zone = ZoneInfo(source.timezone)
        self.parse, self.is_header = FORMATS[source.format]
        #: name -> ((size, mtime_ns), polls it has stayed so)
        self.seen: dict[str, tuple[tuple[int, int], int]] = {}
        self.job: _Job | None = None

    # --- choosing a file ---------------------------------------------------
    def poll(self) -> None:
        """One look at the directory: go on with the claimed file, or claim a complete one."""
        if self.job is None:
            self.job = self._next_job()

    def _next_job(self) -> _Job | None:
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            self.receiver.limited.warning(
                "files_directory",
                "CDR file directory cannot be listed",
                source=self.source.name,
                error=exc.strerror or type(exc).__name__,
            )
            return None
        claimed = sorted(e.name for e in entries if e.name.endswith(CLAIM_SUFFIX))
        if claimed:  # left by a stop or a crash: read again from its start
            return self._open(self.directory / claimed[0])
        candidates: list[tuple[int, str]] = []
        current: dict[str, tuple[tuple[int, int], int]] = {}
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not fnmatch.fnmatchcase(name, self.source.pattern):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            shape = (info.st_size, info.st_mtime_ns)
            before = self.seen.get(name)
            polls = before[1] + 1 if before is not None and before[0] == shape else 0
            current[name] = (shape, polls)
            if polls >= STABLE_POLLS:
                candidates.append((info.st_mtime_ns, name))
        self.seen = current
        if not candidates:
            return None
        _, name = min(candidates)
        claimed_path = self.directory / (name + CLAIM_SUFFIX)
        try:
            os.rename(self.directory / name, claimed_path)
        except OSError as exc:
            self.receiver.limited.warning(
                "files_claim",
                "CDR file cannot be claimed",
                source=self.source.name,
                path=name,
                error=exc.strerror or type(exc).__name__,
            )
            return None
        self.seen.pop(name, None)
        sync_directory(self.directory)
        return self._open(claimed_path)

    def _open(self, path: Path) -> _Job | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the job holds it across polls
        except OSError as exc:
            self.receiver.limited.warning(
                "files_open",
                "CDR file cannot be opened",
                source=self.source.name,
                path=_plain_name(path),
                error=exc.strerror or type(exc).__name__,
            )
            return None
        log.info("CDR file taken", source=self.source.name, path=_plain_name(path))
        return _Job(path, handle, datetime.now(UTC))

    # --- reading it --------------------------------------------------------
    async def feed(self, paused: Callable[[], bool]) -> None:
        """Hand over the job's next records, as many as the window and the consumer take."""
        job = self.job
        if job is None or time.monotonic() < job.resume_at:
            return
        while job.again and not paused():
            if job.in_flight >= MAX_IN_FLIGHT:
                return
            again = job.again.pop()
            if not self._hand_over(job, again):
                job.again.append(again)
                return
        turn = 0
        while not job.done_reading and not paused() and job.in_flight < MAX_IN_FLIGHT:
            raw = job.handle.readline()
            if not raw:
                job.done_reading = True
                job.handle.close()
                break
            job.line_number += 1
            record = self._record(job, raw)
            if record is not None and not self._hand_over(job, record):
                job.again.append(record)
                return
            turn += 1
            if turn >= LINES_PER_TURN:
                turn = 0
                await asyncio.sleep(0)
        self.finish_if_done()

    def _record(self, job: _Job, raw: bytes) -> CallRecord | None:
        """The record of one line; None for a line that holds none (blank, title, refused)."""
        text = raw.decode("utf-8", "replace")
        if job.first:
            text = text.removeprefix("\ufeff")
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        was_first, job.first = job.first, False
        job.lines_read += 1
        source = self.source.name
        fields: list[str] = []
        try:
            fields = split_line(text)
            if was_first and self.is_header(fields):
                job.lines_read -= 1
                return None
            return self.parse(fields, source, self.zone, job.received_at)
        except LineError as exc:
            job.malformed += 1
            self.receiver.count(source, "malformed")
            self.receiver.limited.warning(
                "files_line",
                "CDR file line not read",
                source=source,
                path=_plain_name(job.path),
                line=job.line_number,
                reason=exc.reason,
            )
            refused = CallRecord(
                kind=RecordKind.STOP,
                source=source,
                protocol=RecordProtocol.FILE,
                session_id=line_digest(fields or [text]),
                event_time=job.received_at,
                calling=exc.calling,
                called=exc.called,
                incomplete=True,
            )
            self.receiver.intake.set_aside(refused, job.received_at)
            return None

    def _hand_over(self, job: _Job, record: CallRecord) -> bool:
        scanner = self

        def ack(durable: bool) -> None:
            job.in_flight -= 1
            if durable:
                scanner.receiver.count(record.source, "accepted")
            else:
                scanner.receiver.count(record.source, "not_durable")
                job.again.append(record)
                job.resume_at = time.monotonic() + scanner.receiver.config.poll_interval_s
            scanner.receiver.wake()

        job.in_flight += 1
        if self.receiver.intake.accept(record, job.received_at, ack):
            job.records += 1
            return True
        job.in_flight -= 1
        return False

    def finish_if_done(self) -> None:
        """Delete the file once it is read and every record of it is durable."""
        job = self.job
        if job is None or not job.done_reading or job.in_flight or job.again:
            return
        self.job = None
        try:
            job.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.receiver.limited.warning(
                "files_delete",
                "CDR file stored but not deleted",
                source=self.source.name,
                path=_plain_name(job.path),
                error=exc.strerror or type(exc).__name__,
            )
            return
        sync_directory(self.directory)
        self.receiver.files_done += 1
        log.info(
            "CDR file stored and deleted",
            source=self.source.name,
            path=_plain_name(job.path),
            records=job.lines_read,
            malformed=job.malformed,
        )

    def close(self) -> None:
        """Let go of the file being read (it stays claimed: the next start reads it again)."""
        job, self.job = self.job, None
        if job is not None and not job.handle.closed:
            job.handle.close()


def _plain_name(path: Path) -> str:
    """The name a switch gave the file (without the claim's suffix), for log lines."""
    return path.name.removesuffix(CLAIM_SUFFIX)


class FilesReceiver:
    """Polls the configured directories and hands each complete file's records on."""

    #: the configuration section it is built and reloaded from
    section = "files"

    def __init__(
        self,
        config: FilesConfig,
        intake: Intake,
        telemetry: Telemetry,
        listener: str = "files",
    ) -> None:
        self.config = config
        self.intake = intake
        self.packets = PacketCounts(telemetry, listener)
        self.limited = RateLimitedLog(log)
        self.scanners = [_SourceScanner(self, source) for source in config.sources]
        self.paused = False
        #: files read, stored and deleted since start
        self.files_done = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """No sockets: files arrive in directories."""
        return []

    def bind(self, inherited: list[Any] | None = None) -> None:
        """Nothing to bind."""
        del inherited

    async def start(self) -> None:
        """Start polling."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="files")

    def pause(self) -> None:
        """Take no new file and hand over no new record; acknowledgements still arrive."""
        self.paused = True
        self.wake()

    async def stop(self) -> None:
        """Stop polling; claimed files stay for the next start. Idempotent; safe without start."""
        self.paused = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for scanner in self.scanners:
            scanner.close()

    def reload(self, config: FilesConfig) -> None:
        """Take new sources; a source whose directory, format or zone is unchanged keeps its
        file in progress."""
        kept = {(s.source.name, s.source.directory): s for s in self.scanners}
        scanners: list[_SourceScanner] = []
        for source in config.sources:
            old = kept.pop((source.name, source.directory), None)
            if old is not None and old.source == source:
                scanners.append(old)
            else:
                if old is not None:
                    old.close()
                scanners.append(_SourceScanner(self, source))
        for gone in kept.values():
            gone.close()
        self.scanners = scanners
        self.config = config
        self.wake()

    def wake(self) -> None:
        """Look again before the next poll (an acknowledgement arrived)."""
        self._wakeup.set()

    def count(self, source: str, outcome: str) -> None:
        """One line of `source` with `outcome` (packets_total: a line is a file's packet)."""
        self.packets.count(source, outcome)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            polling = loop.time() >= next_poll
            if polling:
                next_poll = loop.time() + self.config.poll_interval_s
            for scanner in list(self.scanners):
                if polling and not self.paused:
                    scanner.poll()
                try:
                    await scanner.feed(lambda: self.paused)
                except OSError as exc:
                    self.limited.warning(
                        "files_read",
                        "CDR file cannot be read",
                        source=scanner.source.name,
                        error=exc.strerror or type(exc).__name__,
                    )
                    scanner.close()
                scanner.finish_if_done()
            interval = max(0.0, next_poll - loop.time())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)
