"""Receivers: turn what arrives on the network into CallRecords.

Every receiver has the same shape (`Receiver`): built from its config
section, it binds its sockets (or adopts systemd's), starts, pauses (stops
taking packets while what is in flight drains), stops (idempotent, safe
without start) and reloads its peers and secrets from a new section.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collector.pipeline.redact import Redactor


class Receiver(Protocol):
    """The shape the service drives every receiver through."""

    #: the configuration section it is built and reloaded from
    section: str
    #: replaced on reload when the pseudonym keys change
    redactor: Redactor

    def bind(self, inherited: list[socket.socket]) -> None:
        """Create its sockets, or adopt the matching ones systemd passed."""

    async def start(self) -> None:
        """Start serving."""

    def pause(self) -> None:
        """Stop taking new packets; answers for records in flight still go out."""

    async def stop(self) -> None:
        """Close everything; idempotent."""

    def reload(self, config: Any) -> None:
        """Take new peers, secrets and limits from a new config section."""
