"""Run the real daemon for tests: `running_collector()` starts `cdr-collector run` as a
child process on free local ports and waits for its READY=1 on a notify socket,
exactly as systemd would. The handle exposes its ports, its metrics, its log
file, and stop (SIGTERM) / kill (SIGKILL) / restart. Given sockets the test
owns, it starts the daemon on them as socket activation does (`activation`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.formats.keys import write_private

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-test"
#: fixed test keys, so separate daemon processes of one test agree on pseudonyms and record keys
PSEUDONYM_KEY = base64.b64encode(b"test-pseudonym-key-0123456789abcdef").decode()
RECORD_KEY = base64.b64encode(b"test-record-key-0123456789abcdefgh").decode()


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out for ``bind(port 0)`` and outgoing sockets."""
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_LOCK = threading.Lock()
_PORTS_GIVEN: set[int] = set()
_PORT_FLOOR = 12000
_PORT_CEILING = min(_ephemeral_floor(), 65536)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port on 127.0.0.1 that is free for UDP and TCP and stays ours.

    The port lies below the kernel's ephemeral range, so no socket bound to
    port 0 and no outgoing connection (SIPp, Kamailio's RADIUS client, the
    daemon's own sockets) can take it between this call and the bind of the
    process it is meant for; and no port is handed out twice in one test
    run, even to threads placing calls in parallel. ``kind`` is kept for
    callers that say which protocol they need; both are checked.
    """
    del kind
    span = _PORT_CEILING - _PORT_FLOOR
    if span <= 0:  # an ephemeral range starting very low: fall back to the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    with _PORT_LOCK:
        start = random.randrange(span)
        for step in range(span):
            candidate = _PORT_FLOOR + (start + step) % span
            if candidate in _PORTS_GIVEN:
                continue
            if _bindable(candidate):
                _PORTS_GIVEN.add(candidate)
                return candidate
    raise RuntimeError(f"no free port between {_PORT_FLOOR} and {_PORT_CEILING}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class CollectorConfig:
    """What a test daemon's configuration holds; `render` writes the TOML."""

    directory: Path
    dsn: str | None
    radius_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    sip_port: int | None = None
    json_port: int | None = None
    spool: bool = True
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_segment_bytes: int = 1024 * 1024
    secret: str = SECRET
    client_address: str = "127.0.0.1"
    #: the `[[radius.clients]]` name the RADIUS client's records are stored under
    client_name: str = "sbc-test"
    #: where the RADIUS listener binds ("::1" for IPv6)
    radius_host: str = "127.0.0.1"
    profile: str = "auto"
    log_level: str = "debug"
    batch_max_records: int = 1000
    batch_max_delay_ms: int = 5
    commit_timeout_ms: int = 2000
    retry_interval_ms: int = 200
    connect_timeout_ms: int = 3000
    extra: str = ""
    extra_clients: str = ""
    #: privacy.retention_days (None: the default)
    retention_days: int | None = None
    #: more [privacy] keys ("default_region = \"DE\"\n")
    privacy_extra: str = ""

    def render(self) -> Path:
        """Write keys and collector.toml into the directory; return the config path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        keys = self.directory / "keys"
        if not keys.exists():
            write_private(keys, f"t1:{PSEUDONYM_KEY}\n")
        record = self.directory / "record-key"
        if not record.exists():
            write_private(record, RECORD_KEY + "\n")
        parts = []
        if self.dsn:
            parts.append(
                f'[database]\ndsn = "{self.dsn}"\nbatch_max_records = {self.batch_max_records}\n'
                f"batch_max_delay_ms = {self.batch_max_delay_ms}\n"
                f"commit_timeout_ms = {self.commit_timeout_ms}\n"
                f"retry_interval_ms = {self.retry_interval_ms}\n"
                f"connect_timeout_ms = {self.connect_timeout_ms}\n"
            )
        if self.spool:
            parts.append(
                f'[spool]\ndirectory = "{self.directory / "spool"}"\n'
                f"max_bytes = {self.spool_max_bytes}\nsegment_max_bytes = {self.spool_segment_bytes}\n"
            )
        parts.append(f'[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n')
        parts.append(f'[logging]\nlevel = "{self.log_level}"\nformat = "json"\n')
        privacy = '[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n'
        if self.retention_days is not None:
            privacy += f"retention_days = {self.retention_days}\n"
        parts.append(privacy + self.privacy_extra)
        parts.append(
            f'[radius]\nlisten = ["{_host_port(self.radius_host, self.radius_port)}"]\n\n'
            f'[[radius.clients]]\nname = "{self.client_name}"\naddress = "{self.client_address}"\n'
            f'secret = "{self.secret}"\nprofile = "{self.profile}"\n' + self.extra_clients
        )
        if self.extra:
            parts.append(self.extra)
        path = self.directory / "collector.toml"
        path.write_text("\n".join(parts), encoding="utf-8")
        return path


@contextlib.contextmanager
def activation(
    files: Sequence[int], names: str | None = None, listen_pid: str = "$$"
) -> Iterator[tuple[list[str], list[int], dict[str, str]]]:
    """How systemd starts a socket-activated program: (command prefix, descriptors to
    pass, environment to add).

    The prefix is a shell that moves the descriptors to 3, 4, ... and sets
    LISTEN_PID to its own pid just before it execs the program (so it is the
    pid the program runs as); LISTEN_FDS and LISTEN_FDNAMES go in the
    environment. The same sockets stay open here, as systemd keeps its copy
    across a restart of the service.
    """
    # Park the descriptors above 3 + len(files) first, so moving one into place
    # never overwrites another that still has to move.
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 20) for fd in files]
    try:
        moves = " ".join(f"{3 + i}<&{fd}" for i, fd in enumerate(parked))
        closes = " ".join(f"{fd}<&-" for fd in parked)
        script = f'exec {moves} {closes}; LISTEN_PID={listen_pid} exec "$@"'
        env = {"LISTEN_FDS": str(len(files))}
        if names is not None:
            env["LISTEN_FDNAMES"] = names
        yield ["/bin/bash", "-c", script, "bash"], parked, env
    finally:
        for fd in parked:
            os.close(fd)


class Collector:
    """A daemon process under test.

    `wrapper` is a command the daemon runs under (a tracer such as strace,
    ending in "--"): `process` is then the wrapper, and `daemon_pid` the daemon.
    `activated` are sockets the test owns and hands to every process it starts
    (`start`, and `start` again after a stop), as systemd's socket unit does.
    """

    def __init__(
        self,
        config: CollectorConfig,
        wrapper: Sequence[str] = (),
        activated: Sequence[socket.socket] = (),
    ) -> None:
        self.config = config
        self.wrapper = tuple(wrapper)
        self.activated = tuple(activated)
        self.config_path = config.render()
        self.log_path = config.directory / "collector.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._notify_dir = tempfile.TemporaryDirectory(prefix="notify-")
        self.notify_path = Path(self._notify_dir.name) / "notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))
        self._notify.setblocking(False)
        self.notifications: list[str] = []

    @property
    def radius_address(self) -> tuple[str, int]:
        """Where the daemon takes RADIUS accounting."""
        return (self.config.radius_host, self.config.radius_port)

    @property
    def metrics_url(self) -> str:
        """Base URL of the metrics endpoint."""
        return f"http://127.0.0.1:{self.config.metrics_port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait for READY=1 (or fail with its log).

        Blocks the calling thread: tests whose own event loop serves the
        daemon (a proxy in front of PostgreSQL) use `start_async`.
        """
        self._spawn()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector not ready after {timeout} s:\n{self.log_text()}")
            time.sleep(0.02)

    async def start_async(self, timeout: float = 30.0) -> None:
        """`start` without blocking the event loop."""
        self._spawn()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector not ready after {timeout} s:\n{self.log_text()}")
            await asyncio.sleep(0.02)

    def _ready(self) -> bool:
        assert self.process is not None
        self.poll_notifications()
        if any("READY=1" in n for n in self.notifications):
            return True
        if self.process.poll() is not None:
            raise RuntimeError(
                f"collector exited with {self.process.returncode}:\n{self.log_text()}"
            )
        return False

    def _spawn(self) -> None:
        self.poll_notifications()
        self.notifications.clear()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        env.pop("CDR_COLLECTOR_DSN", None)
        command = [
            *self.wrapper,
            sys.executable,
            "-m",
            "collector",
            "run",
            "--config",
            str(self.config_path),
        ]
        with (
            activation([s.fileno() for s in self.activated]) as (prefix, passed, listen),
            open(self.log_path, "ab") as log,
        ):
            if self.activated:
                command = [*prefix, *command]
                env.update(listen)
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                pass_fds=passed,
            )

    @property
    def daemon_pid(self) -> int:
        """The daemon's process id: the process itself, or the wrapper's one child."""
        assert self.process is not None
        if not self.wrapper:
            return self.process.pid
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, f"{self.wrapper[0]} runs {len(children)} processes"
        return int(children[0])

    def poll_notifications(self) -> list[str]:
        """Read what the daemon sent on its notify socket so far."""
        while True:
            try:
                data = self._notify.recv(4096)
            except BlockingIOError:
                return self.notifications
            self.notifications.append(data.decode())

    def log_text(self) -> str:
        """Everything the daemon wrote to stdout/stderr."""
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop_async(self, timeout: float = 30.0) -> int:
        """`stop` without blocking the event loop."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError("collector did not stop in time")
            await asyncio.sleep(0.02)
        return self.process.returncode

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Kill if still running and release the notify socket."""
        self.kill()
        self._notify.close()
        self._notify_dir.cleanup()

    def metrics(self) -> dict[str, float]:
        """The current metric samples, keyed by 'name{labels}' as exposed."""
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total

    def readyz(self) -> tuple[int, str]:
        """Status and body of /readyz."""
        try:
            with urllib.request.urlopen(self.metrics_url + "/readyz", timeout=5) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m collector ARGS` (migrate, purge, erase, run ...) from the repository, as a
    user runs it; its output captured, its exit status returned, never raised."""
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@contextlib.contextmanager
def running_collector(config: CollectorConfig) -> Iterator[Collector]:
    """Start a daemon for the duration of a block; stop it with SIGTERM after."""
    collector = Collector(config)
    collector.start()
    try:
        yield collector
    finally:
        try:
            collector.stop()
        finally:
            collector.close()


@contextlib.asynccontextmanager
async def running_collector_async(config: CollectorConfig) -> AsyncIterator[Collector]:
    """`running_collector` for tests whose event loop must keep running (proxies)."""
    collector = Collector(config)
    await collector.start_async()
    try:
        yield collector
    finally:
        try:
            await collector.stop_async()
        finally:
            collector.close()


async def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> None:
    """Poll an async or sync predicate until it holds (or fail with a timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[Any]:
    """An asyncpg connection for assertions."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
