"""What every network receiver shares: sockets and the address-to-peer table.

Receivers create their own sockets (large receive buffers, reuse of the
address across restarts) or adopt systemd's, always through `udp_socket`,
`tcp_socket` or `adopt` here, and know their peers (RADIUS
clients, SIP capture sources, JSON senders) by source address only: a plain
dict look-up per packet, never a parse of the address. Nothing here logs an
address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from typing import Final, Generic, Protocol, TypeVar

from collector.settings import parse_host_port
from collector.systemd import find_activated

_CIDR_CACHE_MAX: Final = 10000
#: pending TCP connections the kernel queues for a listener
TCP_BACKLOG: Final = 128


class Addressed(Protocol):
    """A configured peer: anything with an IP or CIDR `address`."""

    @property
    def address(self) -> str: ...


OwnerT = TypeVar("OwnerT", bound=Addressed)


class ClientTable(Generic[OwnerT]):
    """Look-up of the configured peer owning a source address: a dict for exact
    addresses (the per-packet case), then the CIDR networks, most specific
    first, with the answer cached per address string."""

    def __init__(self, clients: Iterable[OwnerT]) -> None:
        self.exact: dict[str, OwnerT] = {}
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, OwnerT]] = []
        for client in clients:
            network = ipaddress.ip_network(client.address, strict=False)
            if network.num_addresses == 1:
                self.exact[str(network.network_address)] = client
            else:
                self.networks.append((network, client))
        # most specific network first
        self.networks.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._cache: dict[str, OwnerT | None] = {}

    def find(self, address: str) -> OwnerT | None:
        """The peer owning `address`, or None."""
        client = self.exact.get(address)
        if client is not None:
            return client
        try:
            return self._cache[address]
        except KeyError:
            pass
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
            found = self.exact.get(str(ip))
        else:
            found = None
        if found is None:
            for network, candidate in self.networks:
                if ip.version == network.version and ip in network:
                    found = candidate
                    break
        if len(self._cache) >= _CIDR_CACHE_MAX:
            self._cache.clear()
        self._cache[address] = found
        return found


def make_udp_socket(listen: str, receive_buffer: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking UDP socket with a large receive buffer.

    With `reuse_port`, SO_REUSEPORT: several processes bind the same address
    (collector.workers) and the kernel gives each client address and port to
    one of their sockets, so a retransmission reaches the process that has
    the request in flight.
    """
    host, port = parse_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        grow_receive_buffer(sock, receive_buffer)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def grow_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for `size` bytes of receive buffer; past net.core.rmem_max this needs CAP_NET_ADMIN."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
        except OSError:
            pass
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def adopt(
    inherited: Iterable[socket.socket], kind: socket.SocketKind, host: str, port: int
) -> socket.socket | None:
    """The socket systemd passed for (host, port) of this type, made non-blocking; or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = find_activated(inherited, family, kind, (host, port))
    if sock is not None:
        sock.setblocking(False)
    return sock


def udp_socket(
    listen: str,
    receive_buffer: int,
    inherited: Iterable[socket.socket] = (),
    *,
    reuse_port: bool = False,
) -> socket.socket:
    """The UDP socket of `listen`: systemd's when it passed one, else a new one (with
    SO_REUSEPORT when `reuse_port`)."""
    host, port = parse_host_port(listen)
    sock = adopt(inherited, socket.SOCK_DGRAM, host, port)
    if sock is None:
        return make_udp_socket(listen, receive_buffer, reuse_port=reuse_port)
    # systemd may have forced a larger buffer than we may set: only grow it
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < receive_buffer:
        grow_receive_buffer(sock, receive_buffer)
    return sock


def tcp_socket(host: str, port: int, inherited: Iterable[socket.socket] = ()) -> socket.socket:
    """The listening TCP socket of (host, port): systemd's when it passed one, else a new one."""
    return adopt(inherited, socket.SOCK_STREAM, host, port) or make_tcp_socket(host, port)


def make_tcp_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
