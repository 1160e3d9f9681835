"""The [radius] section and its [[radius.clients]]: the RADIUS receiver's configuration.

Each option is declared once, as a field below (see collector.settings). The
shared secret is held as bytes and never shown in a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from collector.settings import (
    Reader,
    canonical_network,
    check_network,
    check_region,
    one_of,
    option,
    parse_host_port,
    positive,
)

PROFILES = ("auto", "cisco", "kamailio", "freeswitch", "generic")

#: the most processes `workers` may ask for ("auto" gives one per CPU, at most this)
MAX_WORKERS = 64


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a cpuset or `taskset` leaves it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def read_workers(reader: Reader, table: Mapping[str, Any], where: str) -> int | None:
    """`workers`: a whole number of processes from 1 to MAX_WORKERS, or "auto" (one per
    CPU this process may use); None (the default, 1) when absent or refused."""
    if "workers" not in table:
        return None
    value = table["workers"]
    key = f"{where}.workers"
    if value == "auto":
        return min(available_cpus(), MAX_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int):
        reader.problem(key, f'must be a whole number of processes or "auto", not {value!r}')
        return None
    if value < 1:
        reader.problem(key, "must be at least 1 (1 is one process serving everything)")
        return None
    if value > MAX_WORKERS:
        reader.problem(key, f"must be at most {MAX_WORKERS}")
        return None
    return value


def read_secret(reader: Reader, table: Mapping[str, Any], where: str) -> bytes | None:
    """A client's shared secret, from `secret` or from the one line of `secret_file`."""
    if "secret" in table and "secret_file" in table:
        reader.problem(where, "set either secret or secret_file, not both")
        return None
    if "secret" in table:
        value = table["secret"]
        if not isinstance(value, str) or not value.strip():
            reader.problem(f"{where}.secret", "must be a non-empty string (not only spaces)")
            return None
        return value.encode()
    if "secret_file" not in table:
        reader.problem(f"{where}.secret", "is required (secret or secret_file)")
        return None
    name = table["secret_file"]
    if not isinstance(name, str) or not name.strip():
        reader.problem(f"{where}.secret_file", "must be a non-empty string")
        return None
    text = reader.read_text(f"{where}.secret_file", name, private=True)
    if text is None:
        # a file let pass unread still makes a client (check-config counts it)
        return b"" if reader.was_unchecked(f"{where}.secret_file") else None
    secret = text.strip()
    if not secret:
        reader.problem(f"{where}.secret_file", f"{name}: the file is empty")
        return None
    if "\n" in secret or "\r" in secret:
        reader.problem(f"{where}.secret_file", f"{name}: holds more than one line")
        return None
    return secret.encode()


@dataclass(frozen=True, repr=False)
class RadiusClient:
    """One RADIUS client (a softswitch or SBC) allowed to send accounting."""

    name: str = option(text=True, required="is required", unique=str)
    address: str = option(
        text=True, required="is required", check=check_network, unique=canonical_network
    )
    secret: bytes = option(read=read_secret, keys=("secret", "secret_file"))
    profile: str = option("auto", check=one_of(*PROFILES))
    #: ISO 3166 region its national numbers belong to (None: privacy.default_region)
    region: str | None = option(None, check=check_region, convert=str.upper)

    def __repr__(self) -> str:
        return f"RadiusClient(name={self.name!r}, profile={self.profile!r})"


@dataclass(frozen=True)
class RadiusConfig:
    """The RADIUS accounting receiver."""

    #: the receiver this section configures (see collector.receivers.receiver_factory)
    RECEIVER: ClassVar[str] = "collector.receivers.radius.receiver:RadiusReceiver"

    listen: tuple[str, ...] = option(("0.0.0.0:1813",), listen=frozenset({"UDP"}))
    clients: tuple[RadiusClient, ...] = option((), noun="client")
    duplicate_window_s: int = option(30, check=positive)
    receive_buffer_bytes: int = option(8388608, check=positive)
    #: processes serving RADIUS on the same port (see collector.workers); 1: the daemon alone
    workers: int = option(1, read=read_workers, keys=("workers",))

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> RadiusConfig:
        """Every listen address has a port of its own when several processes share it."""
        del table
        if self.workers > 1:
            for listen in self.listen:
                try:
                    _host, port = parse_host_port(listen)
                except ValueError:
                    continue  # said already
                if port == 0:
                    reader.problem(
                        f"{where}.listen",
                        f"{listen!r}: with workers = {self.workers} every process binds the "
                        "same port, so it must be given (port 0 would let each pick its own)",
                    )
        return self

    def source_names(self) -> tuple[str, ...]:
        """Every client's name."""
        return tuple(client.name for client in self.clients)

    def regions(self) -> dict[str, str]:
        """The region of each client that sets its own, by client name."""
        return {client.name: client.region for client in self.clients if client.region}

    def summary(self) -> str:
        """Its clients, counted (and its processes, when several serve it)."""
        processes = f" in {self.workers} processes" if self.workers > 1 else ""
        return f"{len(self.clients)} RADIUS client(s){processes}"

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """None: a RADIUS call stays open until its switch's Stop or Accounting-On."""
        return None
