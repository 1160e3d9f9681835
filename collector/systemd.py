"""Talk to systemd: readiness, status and watchdog notifications, and socket activation.

The daemon runs as a ``Type=notify`` service. This module tells the service
manager when the daemon is ready, reloading or stopping, keeps its watchdog fed
from the event loop (so a loop that stops turning gets the process restarted),
and hands over the sockets systemd opened for it (``cdr-collector.socket``), so
the kernel keeps queueing packets while the daemon restarts. It depends on the
standard library only and does nothing at all outside systemd. It must never
raise into the daemon, block the event loop for more than a moment, make the
daemon's work depend on systemd being there, or touch file descriptors that
were not passed to this very process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "LISTEN_FDS_START",
    "Notifier",
    "find_activated",
    "listen_fds",
    "listen_fds_with_names",
    "run_watchdog",
]

logger = logging.getLogger(__name__)

LISTEN_FDS_START = 3
"""The first file descriptor systemd passes on socket activation (SD_LISTEN_FDS_START)."""

# A notification is one datagram to a local socket that systemd drains at
# once; the timeout only bounds the pathological case of a full queue, where
# losing one message is better than stalling every receiver for longer.
_SEND_TIMEOUT_S = 0.5

_Address = str | bytes


def _socket_address(notify_socket: str) -> _Address | None:
    """Turn a NOTIFY_SOCKET value into an AF_UNIX address, or None if unsupported."""
    if len(notify_socket) < 2:
        return None
    if notify_socket.startswith("/"):
        return notify_socket
    if notify_socket.startswith("@"):
        # Linux abstract namespace: the name starts with a NUL byte instead of "@".
        return b"\0" + os.fsencode(notify_socket[1:])
    return None  # e.g. "vsock:" addresses, which only virtual machines are given


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _one_line(text: str) -> str:
    # A newline would end the STATUS= field and let the rest pass as another field.
    return text.replace("\r", " ").replace("\n", " ")


class Notifier:
    """Sends sd_notify(3) messages to the service manager over NOTIFY_SOCKET.

    Built once at start with :meth:`from_environ`. Without NOTIFY_SOCKET (run
    from a shell, in tests, under another supervisor) every method is a no-op,
    so callers never need to ask whether systemd is there. A message that
    cannot be delivered is logged once, as a warning, and otherwise ignored:
    systemd will notice a daemon that never becomes ready or stops pinging the
    watchdog, and the daemon's own work must not suffer for it. Every sending
    method returns whether the message was handed to the kernel, for tests and
    for callers that want to say so in a log line.
    """

    def __init__(
        self,
        notify_socket: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        """Prepare a notifier for the socket named like NOTIFY_SOCKET (None: a no-op)."""
        self._address: _Address | None = None
        if notify_socket:
            self._address = _socket_address(notify_socket)
            if self._address is None:
                logger.warning(
                    "NOTIFY_SOCKET %r is neither a path nor an abstract socket; "
                    "systemd notifications are off",
                    notify_socket,
                )
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._socket: socket.socket | None = None
        self._failure_logged = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Build from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (default: os.environ)."""
        env = os.environ if environ is None else environ
        return cls(
            env.get("NOTIFY_SOCKET"),
            watchdog_usec=_int_or_none(env.get("WATCHDOG_USEC")),
            watchdog_pid=_int_or_none(env.get("WATCHDOG_PID")),
        )

    @property
    def enabled(self) -> bool:
        """Whether there is a notification socket to send to."""
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send raw ``KEY=VALUE`` fields as one datagram; True if the kernel accepted it."""
        if self._address is None or not fields:
            return False
        try:
            if self._socket is None:
                # Close-on-exec by default (PEP 446): children never inherit it.
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(_SEND_TIMEOUT_S)
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            self._note_failure(exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Report that start-up (or a reload) is complete: READY=1, with an optional STATUS."""
        return self.send("READY=1", *self._status_field(status))

    def stopping(self, status: str | None = None) -> bool:
        """Report that shutdown has begun: STOPPING=1, with an optional STATUS."""
        return self.send("STOPPING=1", *self._status_field(status))

    def reloading(self, status: str | None = None) -> bool:
        """Report that a reload has begun; follow it with :meth:`ready` once done.

        Sends RELOADING=1 with MONOTONIC_USEC, which Type=notify-reload (systemd
        253 and later) requires. With Type=notify systemd also treats the unit
        as reloading until the next READY=1.
        """
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(
            "RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", *self._status_field(status)
        )

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self, status: str | None = None) -> bool:
        """Feed the watchdog (WATCHDOG=1), refreshing the status in the same datagram."""
        return self.send("WATCHDOG=1", *self._status_field(status))

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings, or None when no watchdog is expected of us.

        Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, and only when
        WATCHDOG_PID is unset or names this process (the variables may have been
        inherited from a parent they were meant for) and notifications are on.
        """
        if self._address is None or self._watchdog_usec is None or self._watchdog_usec <= 0:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def close(self) -> None:
        """Close the notification socket; a later send opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @staticmethod
    def _status_field(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)

    def _note_failure(self, exc: OSError) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if not self._failure_logged:
            self._failure_logged = True
            logger.warning(
                "cannot notify systemd (%s); further failures are not logged",
                exc.strerror or type(exc).__name__,
            )


async def run_watchdog(notifier: Notifier, status_fn: Callable[[], str]) -> None:
    """Ping the systemd watchdog from the event loop until cancelled.

    Each ping also refreshes STATUS with ``status_fn()``. The pings are
    scheduled on the event loop itself, so a loop blocked for longer than
    WATCHDOG_USEC stops them and systemd restarts the daemon: that is the
    point. Returns at once when no watchdog is configured. A ``status_fn`` that
    raises is logged once and the watchdog is fed without a status.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    status_failed = False
    while True:
        status: str | None = None
        try:
            status = status_fn()
        except Exception:
            if not status_failed:
                status_failed = True
                logger.exception("watchdog status function failed; sending pings without it")
        notifier.watchdog(status)
        await asyncio.sleep(interval)


def listen_fds_with_names() -> list[tuple[str, socket.socket]]:
    """Take the sockets systemd passed to this process, each with its LISTEN_FDNAMES name.

    Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES and always removes them
    from the environment so that no child process inherits them. The
    descriptors (3 onwards) are used only when LISTEN_PID is this process; each
    becomes a socket object of the family and type the kernel reports, and is
    made close-on-exec. A descriptor that is not a socket (ListenFIFO= and
    the like) is left alone. Call it once, at start and before any child
    process is spawned (children would inherit the descriptors otherwise); a
    second call finds nothing.
    """
    pid_text = os.environ.pop("LISTEN_PID", None)
    count_text = os.environ.pop("LISTEN_FDS", None)
    names_text = os.environ.pop("LISTEN_FDNAMES", None)
    if pid_text is None or count_text is None:
        return []
    pid = _int_or_none(pid_text)
    count = _int_or_none(count_text)
    if pid is None or count is None or count < 0:
        logger.warning("ignoring malformed socket activation variables")
        return []
    if pid != os.getpid() or count == 0:
        return []  # meant for another process, which has them open
    names = names_text.split(":") if names_text is not None else []
    if len(names) != count:
        names = ["unknown"] * count  # what systemd itself reports for unnamed descriptors
    sockets: list[tuple[str, socket.socket]] = []
    for offset, name in enumerate(names):
        fd = LISTEN_FDS_START + offset
        try:
            # Detects family, type and protocol from the descriptor itself.
            sock = socket.socket(fileno=fd)
        except OSError:
            logger.warning("inherited descriptor %d (%s) is not a socket; left alone", fd, name)
            continue
        sock.set_inheritable(False)
        sockets.append((name, sock))
    return sockets


def listen_fds() -> list[socket.socket]:
    """Take the sockets systemd passed to this process; see :func:`listen_fds_with_names`."""
    return [sock for _, sock in listen_fds_with_names()]


def find_activated(
    sockets: Iterable[socket.socket],
    family: socket.AddressFamily,
    type: socket.SocketKind,
    address: tuple[str, int] | str,
) -> socket.socket | None:
    """Pick the inherited socket that serves a configured listen address, if any.

    ``address`` is the configured (host, port), or a path for AF_UNIX. A socket
    matches when its type is ``type`` and ``getsockname()`` is the same address
    in the same ``family`` (hosts compared as IP addresses, so ``::1`` and
    ``0:0:0:0:0:0:0:1`` agree). The wildcard ``0.0.0.0`` in AF_INET also
    accepts a dual-stack ``[::]`` socket on that port, which is what systemd
    makes of a port-only ``ListenDatagram=1813``, since such a socket receives
    IPv4 too. The caller keeps track of which sockets it has claimed.
    """
    for sock in sockets:
        if sock.type == type and _serves(sock, family, address):
            return sock
    return None


def _serves(
    sock: socket.socket, family: socket.AddressFamily, address: tuple[str, int] | str
) -> bool:
    try:
        bound = sock.getsockname()
    except OSError:
        return False
    if isinstance(address, str):
        return family == sock.family == socket.AF_UNIX and bound == address
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or bound[1] != address[1]:
        return False
    try:
        wanted = ipaddress.ip_address(address[0])
        actual = ipaddress.ip_address(bound[0])
    except ValueError:
        return False
    if sock.family == family:
        return wanted == actual
    return (
        family == socket.AF_INET
        and wanted == ipaddress.IPv4Address("0.0.0.0")
        and actual == ipaddress.IPv6Address("::")
        and sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    )
