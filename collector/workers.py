"""RADIUS worker processes: one collector using several CPUs for accounting.

With `[radius] workers = N` (N > 1), `cdr-collector run` (the main process)
does all it does alone and serves RADIUS as worker 0, and starts N-1 worker
processes (new interpreters: `python -m collector run --radius-worker I`)
that serve RADIUS only: each reads its share of the requests and decodes,
redacts and stores them through its own writer, database connection and
spool (`<spool.directory>/radius-worker-I`), answering each request once its
record is durable, exactly as the main process does. The kernel shares the
requests out: every process binds the RADIUS addresses with SO_REUSEPORT,
which keeps one client address and port on one process (its duplicate cache
answers that client's retransmissions), or, under socket activation, all of
them read the one socket systemd passed. The record key and the idempotent
insert keep every record one row whichever process stores it.

The main process talks to each worker over a socket pair (length-prefixed
JSON): readiness, state and metrics on request (its /metrics shows the
sum), reloads (SIGHUP), and switch restarts seen by one process, which every
other must know at once (see `Redactor.relay`). It restarts a worker that
ends unexpectedly, stops them all (SIGTERM: each drains as the main process
does) before it exits, and at start moves the spool of a worker that is no
longer configured into its own spool, so every acknowledged record is
replayed whatever N becomes.

This module must never fork a running event loop (workers are started with
subprocess, which execs at once), never let a worker outlive the main
process (a worker whose control connection closes stops, draining), never
restart a worker while the collector stops, and never let two processes
write one spool directory (each worker holds a lock on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.config import Config
from collector.disk import fsync_directory
from collector.logs import get_logger
from collector.sink.spool import SUFFIX as SEGMENT_SUFFIX
from collector.telemetry import Carried, Health, Telemetry

log = get_logger(__name__)

#: the hidden option of `run` that makes a process a RADIUS worker
WORKER_OPTION = "--radius-worker"
#: the descriptor of a worker's end of its control connection
CONTROL_ENV = "CDR_COLLECTOR_WORKER_CONTROL"
#: descriptors of RADIUS sockets a worker shares with the main process (socket activation)
SOCKETS_ENV = "CDR_COLLECTOR_WORKER_SOCKETS"
#: what the main process's environment holds for it alone: systemd's notification
#: socket and watchdog (NotifyAccess=main), and socket activation (taken already)
_PRIVATE_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
)

#: a worker's spool directory, below the main one: radius-worker-1, radius-worker-2, ...
SPOOL_PREFIX = "radius-worker-"
_SPOOL_NAME = re.compile(r"^radius-worker-([1-9][0-9]*)$")
#: the file a worker locks in its spool directory while it runs
LOCK_NAME = "worker.lock"
#: the files of refused rows the writer keeps beside a spool (collector.sink.writer)
_REJECTED = re.compile(r"^rejected-\d{8}\.json$")

#: how long a worker may take from its start to READY (it loads what the main process
#: loads; a previous instance may still be draining its spool directory)
START_TIMEOUT_S = 90.0
#: how long a worker may take to answer a request (state, reload)
REPLY_TIMEOUT_S = 5.0
#: how often the main process asks every worker for its state
POLL_INTERVAL_S = 5.0
#: a worker that has answered nothing for this long is killed and started again (as
#: systemd's WatchdogSec=30 does to the main process)
UNRESPONSIVE_S = 30.0
#: the wait before a worker that ended is started again, doubling while it keeps
#: ending within RESTART_STABLE_S of its start, up to RESTART_MAX_DELAY_S
RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
RESTART_STABLE_S = 60.0
#: the time a worker has beyond its own drain timeout to exit when told to stop
STOP_MARGIN_S = 10.0

_LENGTH = struct.Struct("!I")
#: the largest control message (a worker's exposition is ~100 KB)
_MAX_MESSAGE = 64 * 1024 * 1024


class WorkerStartError(Exception):
    """A worker process did not become ready at start-up: the collector does not start."""


# --- the spool of each process ---------------------------------------------------------


def worker_spool(directory: str | Path, index: int) -> Path:
    """The spool directory of worker `index` (1 and up) below the main spool `directory`."""
    return Path(directory) / f"{SPOOL_PREFIX}{index}"


def worker_spools(directory: str | Path) -> list[Path]:
    """The workers' spool directories below the main spool `directory` that exist now,
    configured or left behind, by index: where refused rows and spooled records of
    workers live (retention, erase, anonymization and key retirement read them too)."""
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for path in Path(directory).iterdir():
            match = _SPOOL_NAME.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def spool_share(max_bytes: int, processes: int) -> int:
    """Each process's part of `spool.max_bytes`: the limit holds for all of them together."""
    return max(1, max_bytes // processes)


def shaped_config(config: Config, worker: int, processes: int) -> Config:
    """The configuration process `worker` (0: the main process) of `processes` runs.

    With several processes, each spool gets its share of `spool.max_bytes`;
    a worker runs RADIUS alone (no other listener, no metrics endpoint, no
    reconciliation) and spools into its own directory.
    """
    if processes <= 1 and worker == 0:
        return config
    spool = config.spool
    if spool is not None:
        share = spool_share(spool.max_bytes, processes)
        directory = worker_spool(spool.directory, worker) if worker else Path(spool.directory)
        spool = dataclasses.replace(
            spool,
            directory=str(directory),
            max_bytes=share,
            segment_max_bytes=min(spool.segment_max_bytes, share),
        )
    if worker == 0:
        return dataclasses.replace(config, spool=spool)
    return dataclasses.replace(
        config, spool=spool, sip=None, json=None, files=None, metrics=None, reconcile=None
    )


def lock_spool(directory: Path, timeout: float) -> int:
    """Lock a worker's spool directory for this process (created if missing); the
    descriptor holds the lock until the process ends.

    Waits up to `timeout` for a previous instance still draining into it: two
    writers of one spool would corrupt it. Raises TimeoutError after that.
    """
    _make_directory(directory)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(f"{directory} is locked by another process") from None
            time.sleep(0.2)


def _make_directory(directory: Path) -> None:
    """Create a spool directory (mode 0700) durably: its entry lives in its parent, and
    a power cut could otherwise lose it with every segment acknowledged from it."""
    if directory.is_dir():
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fsync_directory(directory.parent)


def adopt_spools(directory: str | Path, keep: int) -> int:
    """Move the spooled records of workers no longer configured (index `keep` and up)
    into the main spool `directory`, for its writer to replay; how many segments moved.

    Run at start, before the main spool is opened. Each segment is renamed
    after the main spool's newest (a rename is atomic: a crash leaves every
    segment in one directory or the other, never in none); refused rows are
    appended to the main directory's file of their day. A directory whose lock
    is held (a worker of an earlier main process still draining) is left alone.
    """
    main = Path(directory)
    moved = 0
    for spool in worker_spools(main):
        match = _SPOOL_NAME.match(spool.name)
        assert match is not None
        if int(match.group(1)) < keep:
            continue
        try:
            fd = os.open(spool / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("worker spool not taken over", path=str(spool), error=exc.strerror)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("worker spool in use by another process: left alone", path=str(spool))
                continue
            count = _move_spool(spool, main)
        finally:
            os.close(fd)
        moved += count
        if count:
            log.info(
                "spool of a worker no longer configured taken over", path=str(spool), segments=count
            )
        with contextlib.suppress(OSError):
            (spool / LOCK_NAME).unlink()
            spool.rmdir()
            fsync_directory(main)
    return moved


def _move_spool(source: Path, main: Path) -> int:
    _make_directory(main)
    sequences = [
        int(path.stem)
        for path in main.iterdir()
        if path.suffix == SEGMENT_SUFFIX and path.stem.isdigit()
    ]
    following = max(sequences, default=0) + 1
    segments = sorted(
        (int(path.stem), path)
        for path in source.iterdir()
        if path.suffix == SEGMENT_SUFFIX and path.stem.isdigit()
    )
    for _, path in segments:
        path.rename(main / f"{following:020d}{SEGMENT_SUFFIX}")
        following += 1
    moved = len(segments)
    for path in sorted(source.iterdir()):
        if not _REJECTED.match(path.name):
            continue
        moved_rows = main / path.name
        if not moved_rows.exists():
            path.rename(moved_rows)
        else:
            with open(moved_rows, "ab") as handle:
                handle.write(path.read_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        moved += 1
    if moved:
        fsync_directory(main)
        fsync_directory(source)
    return len(segments)


# --- switch restarts, known to every process at once ---------------------------------


# --- the control connection ------------------------------------------------------------


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    writer.write(_LENGTH.pack(len(data)) + data)
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message; None when the other end closed the connection."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > _MAX_MESSAGE:
            return None
        data = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = json.loads(data)
    return message if isinstance(message, dict) else None


@dataclasses.dataclass
class WorkerState:
    """What a worker last said of itself."""

    ready: bool = False
    spool_records: int = 0
    queue: int = 0


class WorkerLink:
    """A worker's end of its control connection: it answers the main process's
    requests and tells it of readiness and switch restarts. When the connection
    closes (the main process ended, even by SIGKILL), `closed` is called: the
    worker stops."""

    def __init__(
        self,
        sock: socket.socket,
        state: Callable[[bool], dict[str, Any]],
        reload: Callable[[], bool],
        learn_reset: Callable[[str, datetime], None],
        closed: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.state = state
        self.reload = reload
        self.learn_reset = learn_reset
        self.closed = closed
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        #: messages being sent on their own (the loop keeps only weak references)
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_environ(
        cls,
        state: Callable[[bool], dict[str, Any]],
        reload: Callable[[], bool],
        learn_reset: Callable[[str, datetime], None],
        closed: Callable[[], None],
    ) -> WorkerLink:
        """The link whose descriptor the main process passed in CDR_COLLECTOR_WORKER_CONTROL."""
        text = os.environ.pop(CONTROL_ENV, "")
        if not text.isdigit():
            raise WorkerStartError(
                f"{WORKER_OPTION} is given by the daemon to its own RADIUS workers; "
                "set [radius] workers instead"
            )
        fd = int(text)
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        return cls(sock, state, reload, learn_reset, closed)

    async def open(self) -> None:
        """Connect the streams (before the service starts: a closed link stops it)."""
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)

    async def ready(self) -> None:
        """Tell the main process this worker serves."""
        await self._post({"kind": "ready"})

    def relay_reset(self, source: str, when: datetime) -> None:
        """Tell the main process of a switch restart this worker saw (it tells the others)."""
        if self._writer is not None:
            message = {"kind": "reset", "source": source, "at": when.isoformat()}
            _in_background(self._sending, self._post(message))

    async def _post(self, message: dict[str, Any]) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await _send(self._writer, message)

    async def serve(self) -> None:
        """Answer the main process until it closes the connection, then call `closed`."""
        assert self._reader is not None
        try:
            while (request := await _receive(self._reader)) is not None:
                try:
                    reply = self._answer(request)
                except Exception as exc:  # noqa: BLE001 - one request must not end the worker
                    log.error("request of the main process failed", error_class=type(exc).__name__)
                    reply = {"kind": "reply", "id": request.get("id"), "failed": True}
                if reply is not None:
                    await self._post(reply)
        finally:
            self.closed()

    def _answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to one request of the main process (None: it needs none)."""
        op = request.get("op")
        reply: dict[str, Any] = {"kind": "reply", "id": request.get("id")}
        if op == "state":
            reply.update(self.state(bool(request.get("metrics"))))
        elif op == "reload":
            reply["ok"] = self.reload()
        elif op == "reset":
            self.learn_reset(str(request["source"]), datetime.fromisoformat(str(request["at"])))
            return None
        else:
            return None
        return reply

    def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        else:
            self.sock.close()


def worker_sockets() -> list[socket.socket]:
    """The RADIUS sockets the main process shares with this worker (socket activation)."""
    text = os.environ.pop(SOCKETS_ENV, "")
    sockets = []
    for item in filter(None, text.split(",")):
        sock = socket.socket(fileno=int(item))
        sock.set_inheritable(False)
        sockets.append(sock)
    return sockets


# --- the main process's side -------------------------------------------------------------


class Worker:
    """One worker process as the main process sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.state = WorkerState()
        #: it reported ready since it was last started
        self.serving = False
        #: monotonic time of its last message
        self.heard = 0.0
        self.started_at = 0.0
        #: resolved True when it first reported ready, False when it ended before
        self.first_start: asyncio.Future[bool] | None = None
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: its last exposition, and what its ended runs counted (see telemetry.Carried)
        self.metrics: bytes | None = None
        self.carried = Carried()

    @property
    def label(self) -> str:
        """Its index as a metric label value."""
        return str(self.index)


class WorkerPool:
    """The main process's worker processes: started, watched, restarted, reloaded, asked
    for their metrics, stopped."""

    def __init__(
        self,
        config_path: str,
        count: int,
        shared: Sequence[socket.socket],
        telemetry: Telemetry,
        health: Health,
        learn_reset: Callable[[str, datetime], None],
    ) -> None:
        self.config_path = os.path.abspath(config_path)
        self.shared = list(shared)
        self.telemetry = telemetry
        self.health = health
        self.learn_reset = learn_reset
        self.workers = [Worker(index) for index in range(1, count)]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._request_id = 0
        #: messages being sent on their own (the loop keeps only weak references)
        self._sending: set[asyncio.Task[None]] = set()
        health.workers = count
        telemetry.watch_workers(count)

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Start every worker and wait until each is ready; WorkerStartError when one
        ends first or takes longer than START_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.first_start = loop.create_future()
            self._tasks.append(
                asyncio.create_task(self._supervise(worker), name=f"radius-worker-{worker.index}")
            )
        self._tasks.append(asyncio.create_task(self._watch(), name="radius-worker-watch"))
        for worker in self.workers:
            assert worker.first_start is not None
            try:
                started = await asyncio.wait_for(
                    asyncio.shield(worker.first_start), START_TIMEOUT_S
                )
            except TimeoutError:
                started = False
            if not started:
                raise WorkerStartError(
                    f"RADIUS worker {worker.index} did not start (see its log lines)"
                )
        log.info("radius workers started", count=len(self.workers))

    async def stop(self, timeout: float) -> None:
        """Stop every worker (SIGTERM: each drains its records to the database or its
        spool and answers what is durable) and wait for each to exit; one still running
        after `timeout` is killed (what it acknowledged is durable already)."""
        self._stopping.set()
        for worker in self.workers:
            _signal(worker, signal.SIGTERM)
        supervisors = self._tasks[: len(self.workers)]
        if supervisors:
            _, pending = await asyncio.wait(supervisors, timeout=timeout)
            if pending:
                log.warning("radius workers killed: they did not stop in time", count=len(pending))
                for worker in self.workers:
                    _signal(worker, signal.SIGKILL)
                await asyncio.wait(pending, timeout=STOP_MARGIN_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # --- one worker, from start to end, again and again ----------------------------
    async def _supervise(self, worker: Worker) -> None:
        delay = RESTART_DELAY_S
        while not self._stopping.is_set():
            try:
                await self._run_once(worker)
            except Exception as exc:  # noqa: BLE001 - a worker's trouble must not end the pool
                log.error(
                    "radius worker could not be started",
                    worker=worker.index,
                    error=str(exc),
                    error_class=type(exc).__name__,
                )
            first = worker.first_start
            if first is not None and not first.done():
                first.set_result(False)
                return  # at start-up: the collector does not start
            if self._stopping.is_set():
                return
            self.telemetry.worker_restarts.labels(worker.label).inc()
            if time.monotonic() - worker.started_at > RESTART_STABLE_S:
                delay = RESTART_DELAY_S
            log.error(
                "radius worker ended unexpectedly: starting it again",
                worker=worker.index,
                seconds=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RESTART_MAX_DELAY_S)

    async def _run_once(self, worker: Worker) -> None:
        """Start the worker's process, serve its connection until it ends, reap it."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
            env[CONTROL_ENV] = str(child.fileno())
            env[SOCKETS_ENV] = ",".join(str(sock.fileno()) for sock in self.shared)
            worker.started_at = worker.heard = time.monotonic()
            worker.process = _spawn(
                self.config_path,
                worker.index,
                env,
                (child.fileno(), *(sock.fileno() for sock in self.shared)),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        if self._stopping.is_set():  # the stop came while it was being started
            _signal(worker, signal.SIGTERM)
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        worker.writer = writer
        try:
            while (message := await _receive(reader)) is not None:
                worker.heard = time.monotonic()
                self._take(worker, message)
        finally:
            worker.writer = None
            worker.serving = False
            worker.state = WorkerState()
            if worker.metrics is not None:
                # its counts stay in the collector's sums (what it counted since
                # the last time it was asked is lost to the metrics, not to the data)
                worker.carried.add(worker.metrics)
                worker.metrics = None
            self._update_ready()
            self.telemetry.worker_up.labels(worker.label).set(0)
            for reply in worker.replies.values():
                if not reply.done():
                    reply.cancel()
            worker.replies.clear()
            writer.close()
            process, worker.process = worker.process, None
            status = await asyncio.to_thread(process.wait)
            if not self._stopping.is_set() or status != 0:
                log.warning("radius worker exited", worker=worker.index, status=status)

    def _take(self, worker: Worker, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "ready":
            worker.serving = True
            worker.state.ready = True
            self._update_ready()
            self.telemetry.worker_up.labels(worker.label).set(1)
            if worker.first_start is not None and not worker.first_start.done():
                worker.first_start.set_result(True)
            elif not self._stopping.is_set():
                log.info("radius worker started again", worker=worker.index)
        elif kind == "reply":
            reply = worker.replies.pop(int(message.get("id") or 0), None)
            if reply is not None and not reply.done():
                reply.set_result(message)
        elif kind == "reset":
            when = datetime.fromisoformat(str(message["at"]))
            source = str(message["source"])
            self.learn_reset(source, when)
            self.relay_reset(source, when, origin=worker.index)

    # --- requests ------------------------------------------------------------
    async def _ask(self, worker: Worker, request: dict[str, Any]) -> dict[str, Any] | None:
        """A worker's reply to `request`; None when it is not running or does not answer."""
        writer = worker.writer
        if writer is None:
            return None
        self._request_id += 1
        identifier = self._request_id
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.replies[identifier] = reply
        try:
            await _send(writer, {**request, "id": identifier})
            return await asyncio.wait_for(reply, REPLY_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError, asyncio.CancelledError):
            return None
        finally:
            worker.replies.pop(identifier, None)

    async def _state(self, worker: Worker, metrics: bool) -> bytes | None:
        """Ask one worker for its state (and exposition); keep what it said."""
        answer = await self._ask(worker, {"op": "state", "metrics": metrics})
        if answer is None:
            worker.state.ready = False
            return None
        worker.state = WorkerState(
            bool(answer.get("ready")),
            int(answer.get("spool_records") or 0),
            int(answer.get("queue") or 0),
        )
        text = answer.get("metrics")
        if not isinstance(text, str):
            return None
        worker.metrics = text.encode()
        return worker.metrics

    async def scrape(self, metrics: bool) -> list[bytes]:
        """Every worker's state, and with `metrics` the exposition of each by index (b""
        for one that did not answer); `Health.workers_ready` is brought up to date."""
        answers = await asyncio.gather(*(self._state(w, metrics) for w in self.workers))
        self._update_ready()
        return [text or b"" for text in answers]

    def carried(self) -> list[Carried]:
        """What the ended runs of each worker counted, by index."""
        return [worker.carried for worker in self.workers]

    def _update_ready(self) -> None:
        ready = sum(1 for w in self.workers if w.writer is not None and w.state.ready)
        self.health.workers_ready = ready
        for worker in self.workers:
            up = worker.writer is not None and worker.state.ready
            self.telemetry.worker_up.labels(worker.label).set(1 if up else 0)

    async def reload(self) -> bool:
        """Have every running worker reload the configuration (as the main process just
        did); True when each did, False (each failure logged) otherwise."""
        answers = await asyncio.gather(*(self._ask(w, {"op": "reload"}) for w in self.workers))
        ok = True
        for worker, answer in zip(self.workers, answers, strict=True):
            if answer is None or not answer.get("ok"):
                ok = False
                log.error("radius worker did not reload", worker=worker.index)
        return ok

    def relay_reset(self, source: str, when: datetime, origin: int = 0) -> None:
        """Tell every worker but `origin` of a switch restart."""
        message = {"op": "reset", "source": source, "at": when.isoformat()}
        for worker in self.workers:
            writer = worker.writer
            if worker.index != origin and writer is not None:
                _in_background(self._sending, _post(writer, message))

    async def _watch(self) -> None:
        """Ask every worker for its state now and then; kill one that has stopped answering
        (its supervisor starts it again)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_INTERVAL_S)
            if self._stopping.is_set():
                return
            # with the metrics: the counts of a worker that ends are kept (Carried)
            await self.scrape(True)
            now = time.monotonic()
            for worker in self.workers:
                if worker.writer is None:
                    continue
                if worker.serving and now - worker.heard > UNRESPONSIVE_S:
                    log.error(
                        "radius worker stopped answering: killed",
                        worker=worker.index,
                        seconds=round(now - worker.heard),
                    )
                    _signal(worker, signal.SIGKILL)
                elif not worker.serving and now - worker.started_at > START_TIMEOUT_S:
                    log.error(
                        "radius worker did not become ready: killed",
                        worker=worker.index,
                        seconds=round(now - worker.started_at),
                    )
                    _signal(worker, signal.SIGKILL)

    # --- what the main process reports -------------------------------------------
    def known(self) -> Iterable[WorkerState]:
        """What each worker last said of itself."""
        return (worker.state for worker in self.workers)

    def pids(self) -> list[int]:
        """The process id of each running worker (for tests and the log)."""
        return [w.process.pid for w in self.workers if w.process is not None]


def _spawn(
    config_path: str, index: int, env: dict[str, str], descriptors: tuple[int, ...]
) -> subprocess.Popen[bytes]:
    """Start worker `index`: this interpreter, `run --radius-worker`, with `descriptors`
    (its control connection, shared sockets) at the same numbers.

    subprocess forks and execs at once (vfork where it can): nothing of this
    process's event loop runs in the child. asyncio's own subprocesses are
    not used, as uvloop's do not pass descriptors.
    """
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector",
            "run",
            "--config",
            config_path,
            WORKER_OPTION,
            str(index),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        pass_fds=descriptors,
    )


def _in_background(tasks: set[asyncio.Task[None]], coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` as a task kept in `tasks` until it is done."""
    task = asyncio.get_running_loop().create_task(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _post(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await _send(writer, message)


def _signal(worker: Worker, signum: int) -> None:
    process = worker.process
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
