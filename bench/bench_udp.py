"""Benchmark: server CPU per UDP datagram, asyncio DatagramProtocol vs asyncio-dgram.

Why the receivers use a DatagramProtocol on sockets they create themselves
rather than `asyncio_dgram.from_socket`: the stream wrapper wakes a coroutine
for every datagram. This echoes N datagrams through each server (uvloop) with
a client in another process and prints echoes/s and the server's CPU per echo.

    python bench/bench_udp.py [N]

asyncio-dgram is not a dependency of the daemon: `pip install asyncio-dgram`
to run this comparison.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Any

import uvloop

CLIENT = r"""
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("127.0.0.1", port))
c.settimeout(2)
sent = got = 0
for _ in range(64):
    c.send(b"x" * 300)
    sent += 1
while got < count:
    c.recv(2048)
    got += 1
    if sent < count:
        c.send(b"x" * 300)
        sent += 1
"""


class Echo(asyncio.DatagramProtocol):
    """Echo server as a protocol: a callback per datagram."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def run(kind: str, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    if kind == "protocol":
        await asyncio.get_running_loop().create_datagram_endpoint(Echo, sock=sock)
    else:
        import asyncio_dgram

        # asyncio-dgram's stubs differ between releases: treat the stream as untyped
        stream: Any = await asyncio_dgram.from_socket(sock)

        async def serve() -> None:
            while True:
                data, addr = await stream.recv()
                await stream.send(data, addr)

        task = asyncio.create_task(serve())
        del task
    cpu, wall = time.process_time(), time.perf_counter()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(port), str(count)
    )
    await client.wait()
    elapsed = time.perf_counter() - wall
    used = time.process_time() - cpu
    print(
        f"{kind:13} {count / elapsed:9,.0f} echoes/s   server CPU {used / count * 1e6:5.1f} us/echo"
    )


if __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for name in ("protocol", "asyncio-dgram", "protocol", "asyncio-dgram"):
        uvloop.run(run(name, total))
