"""A UDP relay between a real switch and the daemon that keeps what it forwards.

Tests put it between Kamailio's acc_radius and the daemon's RADIUS port: every
request is forwarded unchanged (from one upstream socket per switch socket, so
two switch processes' Identifiers never mix) and every answer goes back to the
socket that asked. The requests are kept, so that a test can send them once
more, as a switch resending after a lost answer would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

Address = tuple[str, int]


class _Upstream(asyncio.DatagramProtocol):
    """One switch socket's path to the daemon: answers go back to that socket."""

    def __init__(self, relay: UdpRelay, switch: Address) -> None:
        self.relay = relay
        self.switch = switch

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay.answers += 1
        if self.relay.downstream is not None:
            self.relay.downstream.sendto(data, self.switch)


class UdpRelay(asyncio.DatagramProtocol):
    """Listens on 127.0.0.1:`port` (free when 0) and forwards to `target`."""

    def __init__(self, target: Address) -> None:
        self.target = target
        self.downstream: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, asyncio.DatagramTransport] = {}
        self._waiting: dict[Address, list[bytes]] = {}
        self._pending: list[asyncio.Task[None]] = []
        #: every datagram forwarded to `target`, in order
        self.requests: list[bytes] = []
        #: datagrams `target` sent back
        self.answers = 0

    @property
    def port(self) -> int:
        """Where switches send."""
        assert self.downstream is not None
        return int(self.downstream.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.requests.append(data)
        upstream = self._upstreams.get(addr)
        if upstream is not None:
            upstream.sendto(data, self.target)
            return
        # the first datagrams of a new switch socket wait for its upstream socket
        waiting = self._waiting.get(addr)
        if waiting is None:
            waiting = self._waiting[addr] = []
            self._pending.append(asyncio.ensure_future(self._connect(addr)))
        waiting.append(data)

    async def _connect(self, switch: Address) -> None:
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, switch), local_addr=("127.0.0.1", 0)
        )
        self._upstreams[switch] = upstream
        for data in self._waiting.pop(switch):
            upstream.sendto(data, self.target)

    def close(self) -> None:
        """Close every socket."""
        for task in self._pending:
            task.cancel()
        for upstream in self._upstreams.values():
            upstream.close()
        if self.downstream is not None:
            self.downstream.close()


@contextlib.asynccontextmanager
async def udp_relay(target: Address) -> AsyncIterator[UdpRelay]:
    """A running UdpRelay to `target` for the duration of the ``async with``."""
    loop = asyncio.get_running_loop()
    relay = UdpRelay(target)
    transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    relay.downstream = transport
    try:
        yield relay
    finally:
        relay.close()
