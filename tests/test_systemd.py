"""systemd integration: the notify protocol on real sockets, the watchdog, socket
activation with real inherited descriptors, and the unit files as systemd reads them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import config, systemd
from collector.receivers.radius.config import RadiusConfig
from collector.receivers.sip.config import SipConfig
from collector.systemd import (
    Notifier,
    find_activated,
    listen_fds,
    listen_fds_with_names,
    run_watchdog,
)
from tests.daemon import activation

REPO = Path(__file__).resolve().parent.parent
SERVICE_UNIT = REPO / "systemd" / "cdr-collector.service"
SOCKET_UNIT = REPO / "systemd" / "cdr-collector.socket"
INSTALLED_BINARY = "/opt/cdr-collector/bin/cdr-collector"
WATCHDOG_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class NotifyListener:
    """Plays the service manager: a bound AF_UNIX datagram socket read by a thread.

    A thread, not the event loop, so that arrival times stay true while a test
    blocks the loop on purpose.
    """

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.02)
        self.received: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            arrived = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode().split("\n"))
            with self._lock:
                self.received.append((arrived, fields))

    def messages(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 2.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages()
            if len(got) >= count:
                return [fields for _, fields in got]
            time.sleep(0.005)
        raise AssertionError(f"expected {count} notifications, got {self.messages()!r}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in WATCHDOG_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def path_listener(clean_env: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    # A short directory of its own: sun_path holds at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="cdr-notify-") as directory:
        path = os.path.join(directory, "notify")
        listener = NotifyListener(path)
        clean_env.setenv("NOTIFY_SOCKET", path)
        yield listener
        listener.close()


@pytest.fixture
def abstract_listener(clean_env: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    name = f"cdr-collector-test-{uuid.uuid4().hex}"
    listener = NotifyListener(b"\0" + name.encode())
    clean_env.setenv("NOTIFY_SOCKET", "@" + name)
    yield listener
    listener.close()


# --- the notify protocol --------------------------------------------------


def test_ready_carries_status(path_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ()
    assert notifier.enabled
    assert notifier.ready("listening on 0.0.0.0:1813")
    assert path_listener.wait_for(1) == [{"READY": "1", "STATUS": "listening on 0.0.0.0:1813"}]


def test_stopping_and_status(path_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ()
    assert notifier.status("draining 12 records")
    assert notifier.stopping()
    assert path_listener.wait_for(2) == [{"STATUS": "draining 12 records"}, {"STOPPING": "1"}]


def test_reloading_sends_monotonic_usec(path_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading("reloading clients and keys")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.ready()
    reload_message, ready_message = path_listener.wait_for(2)
    assert reload_message["RELOADING"] == "1"
    assert before <= int(reload_message["MONOTONIC_USEC"]) <= after
    assert reload_message["STATUS"] == "reloading clients and keys"
    assert ready_message == {"READY": "1"}


def test_status_text_cannot_smuggle_fields(path_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ()
    assert notifier.status("bad\nREADY=1\r\nSTOPPING=1")
    assert path_listener.wait_for(1) == [{"STATUS": "bad READY=1  STOPPING=1"}]


def test_abstract_socket(abstract_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ()
    assert notifier.ready("abstract")
    assert notifier.watchdog()
    assert abstract_listener.wait_for(2) == [
        {"READY": "1", "STATUS": "abstract"},
        {"WATCHDOG": "1"},
    ]


# --- the watchdog ----------------------------------------------------------


class RecordedSleeps:
    """`asyncio` as collector.systemd sees it, its `sleep` noted in `events` before it sleeps.

    The watchdog's waits then show in order with its pings: what they ask
    for is checked, and no duration is measured (a busy machine stretches
    every wait, and a test that timed them failed under load).
    """

    def __init__(self, events: list[tuple[str, object]]) -> None:
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.events.append(("sleep", delay))
        await asyncio.sleep(delay)


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the event loop turn until `predicate` holds; fail after a generous `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within the timeout"
        await asyncio.sleep(0.01)


async def test_watchdog_pings_at_half_the_timeout(
    path_listener: NotifyListener, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("WATCHDOG_USEC", "200000")  # systemd kills after 0.2 s: ping every 0.1 s
    clean_env.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environ()
    assert notifier.watchdog_interval() == pytest.approx(0.1)
    events: list[tuple[str, object]] = []
    clean_env.setattr(systemd, "asyncio", RecordedSleeps(events))

    def status() -> str:
        pings = sum(1 for kind, _ in events if kind == "ping")
        events.append(("ping", pings))
        return f"records={pings}"

    task = asyncio.create_task(run_watchdog(notifier, status))
    await until(lambda: len(events) >= 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # a ping, then a wait of half WATCHDOG_USEC, and again: cancelled in a wait
    pings = len(events) // 2
    assert events == [e for n in range(pings) for e in (("ping", n), ("sleep", 0.1))]
    received = await asyncio.to_thread(path_listener.wait_for, pings, 30.0)
    assert len(received) == pings
    assert all(fields["WATCHDOG"] == "1" for fields in received)
    # status_fn is asked afresh for every ping
    assert [fields["STATUS"] for fields in received] == [f"records={n}" for n in range(pings)]


async def test_watchdog_pings_stop_while_the_loop_is_blocked(
    path_listener: NotifyListener, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("WATCHDOG_USEC", "200000")
    notifier = Notifier.from_environ()
    events: list[str] = []

    def status() -> str:
        events.append("ping")
        return "ok"

    def handler_that_never_yields() -> None:
        events.append("blocked")
        time.sleep(0.6)  # three times WATCHDOG_USEC
        events.append("unblocked")

    task = asyncio.create_task(run_watchdog(notifier, status))
    await until(lambda: events.count("ping") >= 2)
    asyncio.get_running_loop().call_soon(handler_that_never_yields)
    await until(lambda: "unblocked" in events and events[-1] == "ping")  # pings resume
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the pings come from the event loop itself: none while it was blocked
    blocked = events.index("blocked")
    assert events[blocked + 1] == "unblocked", events
    pings = events.count("ping")
    assert len(await asyncio.to_thread(path_listener.wait_for, pings, 30.0)) == pings


async def test_watchdog_survives_a_failing_status_function(
    path_listener: NotifyListener,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_env.setenv("WATCHDOG_USEC", "100000")
    notifier = Notifier.from_environ()

    def broken_status() -> str:
        raise RuntimeError("status broke")

    task = asyncio.create_task(run_watchdog(notifier, broken_status))
    received = await asyncio.to_thread(path_listener.wait_for, 3, 30.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(received) >= 3
    assert all(fields == {"WATCHDOG": "1"} for fields in received)
    assert len([r for r in caplog.records if r.name == "collector.systemd"]) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}, 15.0),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "SELF"}, 15.0),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"NOTIFY_SOCKET": "/run/x"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000"}, None),  # nobody to ping
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    environ = {k: str(os.getpid()) if v == "SELF" else v for k, v in environ.items()}
    assert Notifier.from_environ(environ).watchdog_interval() == expected


async def test_run_watchdog_returns_without_a_watchdog(clean_env: pytest.MonkeyPatch) -> None:
    await asyncio.wait_for(run_watchdog(Notifier.from_environ(), lambda: "unused"), 1.0)


# --- no systemd, or a broken one -------------------------------------------


def exercise(notifier: Notifier) -> list[bool]:
    return [
        notifier.ready("up"),
        notifier.status("s"),
        notifier.watchdog("w"),
        notifier.reloading(),
        notifier.stopping("bye"),
    ]


def test_without_notify_socket_everything_is_a_no_op(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environ()
    assert not notifier.enabled
    assert exercise(notifier) == [False] * 5
    assert notifier.watchdog_interval() is None
    assert caplog.records == []


def test_notify_socket_pointing_nowhere_logs_once(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="collector.systemd")
    clean_env.setenv("NOTIFY_SOCKET", str(tmp_path / "absent"))
    notifier = Notifier.from_environ()
    assert notifier.enabled
    assert exercise(notifier) + exercise(notifier) == [False] * 10
    warnings = [r for r in caplog.records if r.name == "collector.systemd"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_abstract_socket_nobody_listens_on(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("NOTIFY_SOCKET", f"@cdr-collector-absent-{uuid.uuid4().hex}")
    assert exercise(Notifier.from_environ()) == [False] * 5
    assert len([r for r in caplog.records if r.name == "collector.systemd"]) == 1


def test_delivery_resumes_once_the_socket_exists(clean_env: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory(prefix="cdr-notify-") as directory:
        path = os.path.join(directory, "notify")
        notifier = Notifier(path)
        assert not notifier.ready("too early")
        listener = NotifyListener(path)
        try:
            assert notifier.ready("now")
            assert listener.wait_for(1) == [{"READY": "1", "STATUS": "now"}]
        finally:
            listener.close()
            notifier.close()


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/path", "@"])
def test_unsupported_notify_socket_is_off(
    value: str, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("NOTIFY_SOCKET", value)
    notifier = Notifier.from_environ()
    assert not notifier.enabled
    assert exercise(notifier) == [False] * 5
    assert len([r for r in caplog.records if r.name == "collector.systemd"]) == 1


# --- socket activation -------------------------------------------------------

CHILD = """
import json, os, socket, subprocess, sys
from collector.systemd import listen_fds, listen_fds_with_names

taken = listen_fds_with_names()
report = {
    "sockets": [
        {
            "name": name,
            "fd": sock.fileno(),
            "family": int(sock.family),
            "type": int(sock.type),
            "address": list(sock.getsockname()[:2]),
            "inheritable": sock.get_inheritable(),
        }
        for name, sock in taken
    ],
    "environ": {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")},
    "grandchild": subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('LISTEN_FDS'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip(),
    "second_call": len(listen_fds()),
    "fd3_open": os.path.exists("/proc/self/fd/3"),
    "fd3_inheritable": os.get_inheritable(3) if os.path.exists("/proc/self/fd/3") else None,
}
for name, sock in taken:
    if sock.type == socket.SOCK_DGRAM:
        sock.setblocking(False)
        try:
            report["queued"] = sock.recv(100).decode()
        except BlockingIOError:
            report["queued"] = None
print(json.dumps(report))
"""


def run_activated(files: list[int], names: str | None, listen_pid: str = "$$") -> dict[str, object]:
    """Start a child the way systemd does (see tests.daemon.activation) and return its report."""
    with activation(files, names, listen_pid) as (prefix, passed, listen):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env.update(listen)
        env["PYTHONPATH"] = str(REPO)
        done = subprocess.run(
            [*prefix, sys.executable, "-c", CHILD],
            pass_fds=passed,
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_listen_fds_takes_inherited_sockets(
    udp_socket: socket.socket, tcp_listener: socket.socket
) -> None:
    # Queued before the child exists, read by the child: the same socket, and
    # what the kernel keeps for a daemon that is restarting.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"accounting-request", udp_socket.getsockname())

    report = run_activated([udp_socket.fileno(), tcp_listener.fileno()], "radius:sip-tcp")

    assert report["sockets"] == [
        {
            "name": "radius",
            "fd": 3,
            "family": int(socket.AF_INET),
            "type": int(socket.SOCK_DGRAM),
            "address": list(udp_socket.getsockname()),
            "inheritable": False,
        },
        {
            "name": "sip-tcp",
            "fd": 4,
            "family": int(socket.AF_INET),
            "type": int(socket.SOCK_STREAM),
            "address": list(tcp_listener.getsockname()),
            "inheritable": False,
        },
    ]
    assert report["queued"] == "accounting-request"
    assert report["environ"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
    assert report["grandchild"] == "None"
    assert report["second_call"] == 0


def test_listen_fds_without_names(udp_socket: socket.socket) -> None:
    report = run_activated([udp_socket.fileno()], None)
    sockets = report["sockets"]
    assert isinstance(sockets, list)
    assert [entry["name"] for entry in sockets] == ["unknown"]


def test_listen_fds_for_another_pid_takes_nothing(udp_socket: socket.socket) -> None:
    report = run_activated([udp_socket.fileno()], "radius", listen_pid="1")
    assert report["sockets"] == []
    # Not ours to touch: still open and still inheritable, yet the variables
    # are gone so that our own children do not mistake them for theirs.
    assert report["fd3_open"] is True
    assert report["fd3_inheritable"] is True
    assert report["environ"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
    assert report["grandchild"] == "None"


def test_listen_fds_leaves_other_descriptors_alone(udp_socket: socket.socket) -> None:
    read_end, write_end = os.pipe()
    try:
        report = run_activated([read_end, udp_socket.fileno()], "fifo:radius")
    finally:
        os.close(read_end)
        os.close(write_end)
    sockets = report["sockets"]
    assert isinstance(sockets, list)
    assert [(entry["name"], entry["fd"]) for entry in sockets] == [("radius", 4)]
    assert report["fd3_inheritable"] is True


def test_listen_fds_without_activation(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("LISTEN_PID", raising=False)
    clean_env.delenv("LISTEN_FDS", raising=False)
    assert listen_fds() == []


@pytest.mark.parametrize(("pid", "count"), [("SELF", "many"), ("x", "1"), ("SELF", "-1")])
def test_malformed_activation_variables_are_ignored(
    pid: str, count: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("LISTEN_PID", str(os.getpid()) if pid == "SELF" else pid)
    clean_env.setenv("LISTEN_FDS", count)
    assert listen_fds_with_names() == []
    assert "LISTEN_PID" not in os.environ
    assert "LISTEN_FDS" not in os.environ


def udp_and_tcp_on_one_port() -> tuple[socket.socket, socket.socket]:
    # the port the kernel picks for UDP may be held over TCP by another program (an
    # outgoing connection's local port): try again with another one
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("0.0.0.0", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return udp, tcp
    raise AssertionError("no port free for both UDP and TCP in 20 tries")


def test_find_activated_matches_the_configured_address() -> None:
    sip, sip_tcp = udp_and_tcp_on_one_port()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as radius,
        sip,
        sip_tcp,
    ):
        radius.bind(("127.0.0.1", 0))
        sip_tcp.listen()
        inherited = [sip_tcp, radius, sip]
        radius_port = radius.getsockname()[1]
        sip_port = sip.getsockname()[1]

        dgram, stream = socket.SOCK_DGRAM, socket.SOCK_STREAM
        radius_address = ("127.0.0.1", radius_port)
        assert find_activated(inherited, socket.AF_INET, dgram, radius_address) is radius
        assert find_activated(inherited, socket.AF_INET, dgram, ("0.0.0.0", sip_port)) is sip
        assert find_activated(inherited, socket.AF_INET, stream, ("0.0.0.0", sip_port)) is sip_tcp
        # a wildcard socket does not serve a specific address, nor the reverse
        assert find_activated(inherited, socket.AF_INET, dgram, ("127.0.0.1", sip_port)) is None
        assert find_activated(inherited, socket.AF_INET, dgram, ("0.0.0.0", radius_port)) is None
        assert find_activated(inherited, socket.AF_INET, stream, ("127.0.0.1", radius_port)) is None
        assert find_activated([], socket.AF_INET, dgram, ("0.0.0.0", 1813)) is None


def test_find_activated_ipv6_and_dual_stack() -> None:
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as dual,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6only,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as loopback,
    ):
        dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        dual.bind(("::", 0))
        v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6only.bind(("::", 0))
        loopback.bind(("::1", 0))
        dual_port, v6only_port = dual.getsockname()[1], v6only.getsockname()[1]
        inherited = [dual, v6only, loopback]
        dgram = socket.SOCK_DGRAM

        # what systemd makes of "ListenDatagram=PORT" also serves "0.0.0.0:PORT"
        assert find_activated(inherited, socket.AF_INET, dgram, ("0.0.0.0", dual_port)) is dual
        assert find_activated(inherited, socket.AF_INET, dgram, ("0.0.0.0", v6only_port)) is None
        assert find_activated(inherited, socket.AF_INET6, dgram, ("::", v6only_port)) is v6only
        assert find_activated(inherited, socket.AF_INET6, dgram, ("::", dual_port)) is dual
        long_form = ("0:0:0:0:0:0:0:1", loopback.getsockname()[1])
        assert find_activated(inherited, socket.AF_INET6, dgram, long_form) is loopback
        assert find_activated(inherited, socket.AF_INET, dgram, ("127.0.0.1", long_form[1])) is None


def test_find_activated_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unix:
        unix.bind(path)
        assert find_activated([unix], socket.AF_UNIX, socket.SOCK_DGRAM, path) is unix
        assert find_activated([unix], socket.AF_UNIX, socket.SOCK_DGRAM, path + "x") is None
        assert find_activated([unix], socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 1)) is None


# --- the unit files, as systemd reads them -----------------------------------


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is missing: install the Debian package `systemd` "
            "(CI must, the unit-file checks cannot be skipped)"
        )
    return found


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_service_exposure_is_at_most_2() -> None:
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(SERVICE_UNIT)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = done.stdout.decode(errors="replace")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output + done.stderr.decode(errors="replace")
    assert float(match.group(1)) <= 2.0, output


#: what systemd calls its unit types: a message that starts with a unit (its file
#: path and line, or its name) names the unit it is about
_UNIT_SUFFIXES = "service|socket|target|device|mount|automount|swap|path|timer|slice|scope"
_MESSAGE_UNIT = re.compile(rf"^(?:\S*/)?([^/\s:]+\.(?:{_UNIT_SUFFIXES}))(?::\d+)?:\s")
OWN_UNITS = frozenset({SERVICE_UNIT.name, SOCKET_UNIT.name})


def verify_findings(output: str) -> list[str]:
    """The lines of `systemd-analyze verify` output that concern the project's units.

    verify also loads every unit ours depend on (multi-user.target and all it
    wants), and reports what it dislikes in them: Debian's freeradius.service,
    for one, uses the deprecated MemoryLimit=. A line that names another unit
    is about that unit and left out; every other line is kept, those naming
    our units and those naming no unit at all, so that nothing about ours can
    slip through as somebody else's.
    """
    findings = []
    for line in output.splitlines():
        if not line.strip():
            continue
        named = _MESSAGE_UNIT.match(line)
        if named is not None and named.group(1) not in OWN_UNITS:
            continue
        findings.append(line)
    return findings


def test_verify_findings_keep_every_line_not_about_another_unit() -> None:
    output = (
        "/lib/systemd/system/freeradius.service:23: Unit uses MemoryLimit=; please use"
        " MemoryMax= instead.\n"
        "multi-user.target: Some complaint about it\n"
        "/tmp/x/cdr-collector.service:22: Unit uses MemoryLimit=; please use MemoryMax=.\n"
        "/tmp/x/cdr-collector.socket:50: Unknown key 'ListenBogus' in section [Install]\n"
        "cdr-collector.service: Command /nonexistent is not executable\n"
        "Failed to prepare filename /tmp/x/cdr-collector.service: Invalid argument\n"
        "\n"
    )
    assert verify_findings(output) == [
        "/tmp/x/cdr-collector.service:22: Unit uses MemoryLimit=; please use MemoryMax=.",
        "/tmp/x/cdr-collector.socket:50: Unknown key 'ListenBogus' in section [Install]",
        "cdr-collector.service: Command /nonexistent is not executable",
        "Failed to prepare filename /tmp/x/cdr-collector.service: Invalid argument",
    ]


def verify_units(directory: Path, service_extra: str = "") -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on copies of the units in `directory`.

    verify insists that ExecStart= binaries exist, and cdr-collector is not
    installed under /opt here: the copies' commands point at an executable
    that does. `service_extra` is added to the [Service] section.
    Everything else is verified exactly as shipped.
    """
    service_text = SERVICE_UNIT.read_text()
    assert service_text.count(INSTALLED_BINARY + " ") == 3
    service_text = service_text.replace(INSTALLED_BINARY, "/bin/true")
    if service_extra:
        assert service_text.count("\n[Service]\n") == 1
        service_text = service_text.replace("\n[Service]\n", "\n[Service]\n" + service_extra)
    (directory / SERVICE_UNIT.name).write_text(service_text)
    shutil.copy(SOCKET_UNIT, directory / SOCKET_UNIT.name)
    return subprocess.run(
        [
            systemd_analyze(),
            "verify",
            str(directory / SERVICE_UNIT.name),
            str(directory / SOCKET_UNIT.name),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """No warning about our units, whatever other units the machine has installed
    (CI installs Debian's freeradius, whose unit verify complains about)."""
    done = verify_units(tmp_path)
    # verify exits 0 even for unknown keys and bad values; any message is a finding.
    assert done.returncode == 0, done.stderr
    assert verify_findings(done.stderr) == [], done.stderr
    assert verify_findings(done.stdout) == [], done.stdout


def test_a_warning_about_our_units_still_fails_verify(tmp_path: Path) -> None:
    """The same check catches a deprecated setting and an unknown key in our own unit."""
    done = verify_units(tmp_path, "MemoryLimit=1G\nNoSuchSetting=1\n")
    findings = verify_findings(done.stderr)
    assert len(findings) == 2, done.stderr
    assert all(line.startswith(str(tmp_path / SERVICE_UNIT.name) + ":") for line in findings)
    assert "MemoryLimit=" in findings[0]
    assert "NoSuchSetting" in findings[1]


def test_service_matches_the_daemon() -> None:
    settings = unit_settings(SERVICE_UNIT)
    assert settings["Type"] == ["notify"]
    assert settings["ExecStartPre"] == [
        f"{INSTALLED_BINARY} check-config --config /etc/cdr-collector/collector.toml"
    ]
    assert settings["ExecStart"] == [
        f"{INSTALLED_BINARY} run --config /etc/cdr-collector/collector.toml"
    ]
    # the configuration checked first: a refused one fails `systemctl reload`
    assert settings["ExecReload"] == [
        f"{INSTALLED_BINARY} check-config --config /etc/cdr-collector/collector.toml",
        "/bin/kill -HUP $MAINPID",
    ]
    # no start limit: operators' restarts and socket activation are never refused
    assert settings["StartLimitIntervalSec"] == ["0"]
    assert "StartLimitBurst" not in settings
    assert settings["WatchdogSec"] == ["30"]
    drain_s = config.ServiceConfig().drain_timeout_ms / 1000
    assert int(settings["TimeoutStopSec"][0]) > drain_s + 10
    # the spool's parent, and the example's CDR file directory
    assert settings["StateDirectory"] == ["cdr-collector cdr-collector/incoming"]
    assert "Sockets" not in settings


def test_socket_unit_matches_the_default_listeners() -> None:
    settings = unit_settings(SOCKET_UNIT)
    defaults = [*RadiusConfig().listen, *SipConfig().listen]
    assert settings["ListenDatagram"] == defaults
    assert settings["Service"] == [SERVICE_UNIT.name]
