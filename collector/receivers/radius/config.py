"""The [radius] section and its [[radius.clients]]: the RADIUS receiver's configuration.

Each option is declared once, as a field below (see collector.settings). The
shared secret is held as bytes and never shown in a repr.
"""

from __future__ import annotations

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
    positive,
)

PROFILES = ("auto", "cisco", "kamailio", "freeswitch", "generic")


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

    def source_names(self) -> tuple[str, ...]:
        """Every client's name."""
        return tuple(client.name for client in self.clients)

    def regions(self) -> dict[str, str]:
        """The region of each client that sets its own, by client name."""
        return {client.name: client.region for client in self.clients if client.region}

    def summary(self) -> str:
        """Its clients, counted."""
        return f"{len(self.clients)} RADIUS client(s)"

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """None: a RADIUS call stays open until its switch's Stop or Accounting-On."""
        return None
