"""A Debian 12 machine under a real systemd, for the tests of the units and the install.

`debian_tree()` builds a minimal Debian 12 tree with debootstrap once and keeps
it outside the repository (CDR_TEST_CACHE, default /var/cache/cdr-collector-test),
built again only when it is missing or its recipe changes. `Container` boots it
with systemd-nspawn, systemd 252 as its PID 1, on a throw-away overlay
(--volatile=overlay) so that the cached tree stays as debootstrap left it. The
container shares the host's network: the daemon in it reaches the host's
PostgreSQL on 127.0.0.1, and its ports are the host's. Commands run in it with
nsenter, in a clean environment.

`DatabaseProxy` stands between that daemon and PostgreSQL: it forwards, refuses
(the server is gone) or hangs (the server accepts and never answers).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemon import free_port

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CDR_TEST_CACHE", "/var/cache/cdr-collector-test"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "python3-pip",
    "iproute2",
    "procps",
)
#: the whole recipe of the tree: a change here builds a new one
DEBOOTSTRAP = ("--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE)
#: what commands in the container find on PATH, as a root login shell has it
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: files of the checkout that are no part of it (the host's environment, caches)
NOT_IN_CHECKOUT = (
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "build",
)


def require_host_program(name: str) -> str:
    """The path of a program the container tests need on the host; fail (never skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: the real-systemd tests need debootstrap and "
            "systemd-container (systemd-nspawn); .ci/setup installs them"
        )
    return path


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One builder at a time: test runs of several checkouts share the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    fd = os.open(CACHE / "build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def debian_tree() -> Path:
    """The cached Debian 12 tree, built first when missing (about a minute, 340 MB).

    Built under another name and renamed when complete, so an interrupted build
    is never booted; a tree of an older recipe is removed.
    """
    debootstrap = require_host_program("debootstrap")
    tree = CACHE / f"debian12-{_digest(DEBOOTSTRAP, MIRROR)}"
    with _cache_lock():
        if (tree / "usr" / "lib" / "systemd" / "systemd").exists():
            return tree
        staging = CACHE / f"{tree.name}.building"
        shutil.rmtree(staging, ignore_errors=True)
        log = CACHE / f"{tree.name}.log"
        with log.open("wb") as output:
            done = subprocess.run(
                [debootstrap, *DEBOOTSTRAP, str(staging), MIRROR],
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=1200,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"debootstrap failed ({done.returncode}), {log}:\n{tail}")
        shutil.rmtree(tree, ignore_errors=True)
        staging.rename(tree)
        for old in CACHE.glob("debian12-*"):
            if old.is_dir() and old != tree and not old.name.endswith(".building"):
                shutil.rmtree(old, ignore_errors=True)
    return tree


def project_requirements() -> list[str]:
    """What installing the checkout needs from the package index: its build
    requirements and its dependencies, as pyproject.toml names them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def wheelhouse(python: str) -> Path:
    """A directory of wheels for `project_requirements()`, downloaded once by the
    host's pip (which reaches the package index as the host is set up to) and
    cached like the tree; pip in the container installs from it alone."""
    requirements = project_requirements()
    house = CACHE / f"wheels-{_digest(requirements)}"
    with _cache_lock():
        if house.is_dir():
            return house
        staging = CACHE / f"{house.name}.building"
        shutil.rmtree(staging, ignore_errors=True)
        done = subprocess.run(
            [python, "-m", "pip", "download", "--quiet", "--dest", str(staging), *requirements],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"pip download failed ({done.returncode}):\n{done.stderr[-3000:]}")
        staging.rename(house)
        for old in CACHE.glob("wheels-*"):
            if old.is_dir() and old != house and not old.name.endswith(".building"):
                shutil.rmtree(old, ignore_errors=True)
    return house


def copy_checkout(destination: Path) -> Path:
    """The checkout's files (as they are, committed or not) without the host's
    virtual environment and caches: what an operator has after `git clone`."""
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*NOT_IN_CHECKOUT))
    return destination


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM (an orderly poweroff, for systemd-nspawn)
    when the test process dies without its cleanup (killed by a CI timeout)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


@dataclass
class Container:
    """A booted Debian 12 under systemd-nspawn; `run` executes shell in it."""

    tree: Path
    log_path: Path
    #: (host path, container path, read-only)
    binds: Sequence[tuple[Path, str, bool]] = ()
    name: str = field(default_factory=lambda: f"cdrtest-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None
    init_pid: int = 0

    def boot(self, timeout: float = 120.0) -> None:
        """Start systemd in the container and wait until it says the system is up."""
        nspawn = require_host_program("systemd-nspawn")
        require_host_program("nsenter")
        command = [
            nspawn,
            "--directory",
            str(self.tree),
            "--boot",
            # no systemd on the host to register with or to make a scope for the container
            "--register=no",
            "--keep-unit",
            # the tree is the overlay's read-only lower layer: it stays pristine
            "--volatile=overlay",
            f"--machine={self.name}",
            "--console=read-only",
        ]
        for host, inside, read_only in self.binds:
            command.append(f"--bind{'-ro' if read_only else ''}={host}:{inside}")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_terminate_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.init_pid:
            self.init_pid = self._find_init()
            if self.process.poll() is not None:
                pytest.fail(f"systemd-nspawn exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the container's systemd did not start:\n{self.log()}")
            time.sleep(0.05)
        # --wait needs the system bus, which comes up during the boot: until then
        # systemctl fails to connect, and is asked again
        while True:
            state = self.run(
                "systemctl is-system-running --wait",
                check=False,
                timeout=max(5.0, deadline - time.monotonic()),
            )
            if state.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline or "bus" not in state.stderr:
                failed = self.run("systemctl --failed --no-pager", check=False)
                pytest.fail(
                    f"the container did not boot: {state.stdout}{state.stderr}\n{failed.stdout}"
                )
            time.sleep(0.1)

    def _find_init(self) -> int:
        """The container's PID 1 as the host sees it: the systemd below systemd-nspawn."""
        assert self.process is not None
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    for child in (task / "children").read_text().split():
                        if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                            return int(child)
                        pending.append(int(child))
        return 0

    def log(self) -> str:
        """The tail of systemd-nspawn's output (the container's console)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def run(
        self,
        script: str,
        *,
        check: bool = True,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
        cwd: str = "/",
    ) -> subprocess.CompletedProcess[str]:
        """Run `script` with bash in every namespace of the container, as root with a
        clean environment; raise (check) on a non-zero exit, with its output."""
        variables = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        done = subprocess.run(
            [
                "nsenter",
                f"--target={self.init_pid}",
                "--all",
                "env",
                "-i",
                *(f"{name}={value}" for name, value in variables.items()),
                "bash",
                "-c",
                # nsenter's own --wd would name a directory of the host
                f"cd {shlex.quote(cwd)}\n{script}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the container, exit {done.returncode}: {script}\n"
                f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
            )
        return done

    def shutdown(self) -> None:
        """Power the container off; kill it when it does not go (never leave one running)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # systemd-nspawn turns SIGTERM into an orderly poweroff of the container
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        if self.init_pid:
            # the container's PID 1 outlives a killed systemd-nspawn: killing it ends
            # every process of its PID namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class DatabaseProxy:
    """127.0.0.1:`port` -> PostgreSQL, in threads (the tests around it are synchronous).

    `refuse()`: every open connection is reset and new ones are refused, as when
    the server is gone. `hang()`: open connections carry nothing more and new ones
    are accepted and never answered, as a server that stopped responding.
    `forward()`: connections left from either are reset, new ones forwarded.
    """

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.port = free_port(socket.SOCK_STREAM)
        self._lock = threading.Lock()
        self._mode = "forward"
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        #: every socket of every open connection, with the flag its pumps check
        self._open: dict[socket.socket, threading.Event] = {}
        self._closed = threading.Event()

    # --- modes -----------------------------------------------------------------
    def forward(self) -> None:
        """Forward new connections (the database is back)."""
        with self._lock:
            self._mode = "forward"
        self._reset_all()
        self._listen()

    def refuse(self) -> None:
        """Reset every connection and refuse new ones."""
        with self._lock:
            self._mode = "refuse"
        self._stop_listening()
        self._reset_all()

    def hang(self) -> None:
        """Freeze every connection and take new ones without ever answering."""
        with self._lock:
            self._mode = "hang"
            for frozen in self._open.values():
                frozen.set()
        self._listen()

    def close(self) -> None:
        """Stop for good."""
        self._closed.set()
        self._stop_listening()
        self._reset_all()

    # --- machinery -------------------------------------------------------------
    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
            self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
            self._accepting.start()

    def _stop_listening(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            accepting, self._accepting = self._accepting, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if accepting is not None:
            accepting.join(timeout=5)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if listener.fileno() < 0:
                    return
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                return
            with self._lock:
                mode = self._mode
                frozen = threading.Event()
                self._open[client] = frozen
            if mode == "hang":
                frozen.set()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open[upstream] = frozen
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, frozen), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, frozen: threading.Event) -> None:
        try:
            while not self._closed.is_set():
                if source.fileno() < 0 or sink.fileno() < 0:
                    break
                if frozen.is_set():
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select([source], [], [], 0.1)
                if not ready or frozen.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):
            pass
        self._reset(source)
        self._reset(sink)

    def _reset(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        with contextlib.suppress(OSError):
            sock.close()

    def _reset_all(self) -> None:
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            self._reset(sock)
