"""Receivers: turn what arrives on the network into CallRecords.

Every receiver has the same shape (`Receiver`): built from its config
section, it binds its sockets (or adopts systemd's), starts, pauses, stops
(idempotent, safe without start) and reloads its peers and secrets from a
new section.

Pausing is the first step of a stop: from then on the receiver reads nothing
from its sockets, while what it already took drains to the database or the
spool. Datagrams stay in the kernel's receive queue and connections not yet
accepted in the listen backlog; with socket activation systemd keeps those
sockets open across a restart, so the next process reads them, and nothing
is read only to be dropped. Answers for records in flight still go out
(RADIUS responses, JSON responses). The event loop's transports are closed
to stop reading, the one way every loop offers (uvloop's UDP transport has
no `pause_reading`); what must still be sent or read goes through a
duplicate of the socket.
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
        """Read nothing more from the sockets; answers for records in flight still go out."""

    async def stop(self) -> None:
        """Close everything; idempotent."""

    def reload(self, config: Any) -> None:
        """Take new peers, secrets and limits from a new config section."""
