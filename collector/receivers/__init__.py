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

import importlib
import socket
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collector.pipeline.intake import Intake
    from collector.telemetry import Telemetry


class Receiver(Protocol):
    """The shape the service drives every receiver through.

    A receiver knows its configuration section, its intake (where each
    record goes, with its acknowledgement) and the metrics; never the
    redactor or the writer. It counts its packets in `packets_total` through
    a `telemetry.PacketCounts` of its listener.
    """

    #: the configuration section it is built and reloaded from
    section: str

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each listening socket (ports the kernel chose included)."""
        ...

    def bind(self, inherited: list[socket.socket]) -> None:
        """Create its sockets, or adopt the matching ones systemd passed (see addresses)."""

    async def start(self) -> None:
        """Start serving."""

    def pause(self) -> None:
        """Read nothing more from the sockets; answers for records in flight still go out."""

    async def stop(self) -> None:
        """Close everything; idempotent."""

    def reload(self, config: Any) -> None:
        """Take new peers, secrets and limits from a new config section."""


class ReceiverFactory(Protocol):
    """How a receiver is built: its section's config, its intake, the metrics."""

    def __call__(self, config: Any, intake: Intake, telemetry: Telemetry) -> Receiver: ...


def receiver_factory(schema: type) -> ReceiverFactory:
    """The receiver a section's schema names in its `RECEIVER` ("module:Class").

    Each schema (beside its receiver) says which receiver serves it, so the
    list of receivers is the configuration's (`config.RECEIVERS`) and adding
    one touches only its own modules and that list. Imported on demand:
    reading or checking a configuration loads no receiver code.
    """
    module, _, name = str(getattr(schema, "RECEIVER")).partition(":")  # noqa: B009
    factory: ReceiverFactory = getattr(importlib.import_module(module), name)
    return factory
