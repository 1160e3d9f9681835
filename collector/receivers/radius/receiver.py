"""The RADIUS accounting listener (UDP, RFC 2866 and RFC 5997 Status-Server).

For every datagram: find the client by source address, drop and count what
is unknown, malformed or badly authenticated (a Request Authenticator or a
Message-Authenticator that does not verify: the latter is required on
Status-Server and checked on accounting whenever present), answer retransmissions from a
duplicate cache, and hand each new record to the intake. The
Accounting-Response is sent only when the intake reports the record durable
(committed, or fsync'd to the spool): RFC 2866 forbids answering a request
that could not be recorded. The datagram handler never raises and never
awaits; every drop is a counter and at most a rate-limited log line without
addresses or numbers.

Paused (the service is stopping), the receiver reads nothing more: each
socket's transport is closed, so what arrives stays in the kernel's receive
queue for the next process (socket activation keeps the socket open across a
restart), and the answers of records still being made durable go out through
a duplicate of the socket. Closing the transport is the one way to stop
reading that every event loop offers (uvloop's UDP transport has no
`pause_reading`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, cast

from collector.logs import RateLimitedLog, get_logger
from collector.pipeline.intake import Intake
from collector.receivers.addresses import ClientTable, udp_socket
from collector.receivers.radius import codec
from collector.receivers.radius.config import RadiusConfig
from collector.receivers.radius.dictionary import MESSAGE_AUTHENTICATOR
from collector.receivers.radius.profiles import Context, NotACall, interpret
from collector.record import KIND_START
from collector.telemetry import FastHistogramChild, PacketCounts, Telemetry

log = get_logger(__name__)

#: what the duplicate cache holds for a request still being made durable
_PENDING: Final = b""


class _Endpoint(asyncio.DatagramProtocol):
    """One listening socket: requests in through the loop's transport, answers out.

    `send` goes through the transport while it reads; once `stop_reading`
    has closed it, through a duplicate of the socket (non-blocking `sendto`:
    an answer the kernel cannot take at once is dropped, and the switch's
    retransmission is answered by the next process, the record key keeping
    it one row).
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: Callable[[bytes, Any, _Endpoint], None],
        dropped: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.dropped = dropped
        self.transport: asyncio.DatagramTransport | None = None
        #: the socket answers leave by once the transport is closed
        self.late: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handler(data, addr, self)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for responses to clients that went away: nothing to do
        pass

    def send(self, data: bytes, addr: Any) -> None:
        """Send one answer, whether or not this socket is still read."""
        transport = self.transport
        if transport is not None:
            if not transport.is_closing():
                transport.sendto(data, addr)
            return
        late = self.late
        if late is not None:
            try:
                late.sendto(data, addr)
            except OSError:  # full send buffer (EAGAIN) or a route gone: the switch resends
                self.dropped()

    def stop_reading(self) -> None:
        """Read nothing more from the socket; later answers leave by a duplicate of it."""
        transport, self.transport = self.transport, None
        if transport is None:
            return
        try:
            self.late = self.sock.dup()
            self.late.setblocking(False)
        except OSError:
            pass  # out of descriptors: answers from now on are left to retransmissions
        # the transport closes the socket it was given (uvloop detaches it): the duplicate stays
        transport.close()

    def close(self) -> None:
        """Close the transport and the duplicate; nothing is sent after this."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        late, self.late = self.late, None
        if late is not None:
            late.close()


class RadiusReceiver:
    """Listens for accounting requests and answers them once their record is durable."""

    #: the configuration section this receiver reloads from
    section = "radius"

    def __init__(
        self,
        config: RadiusConfig,
        intake: Intake,
        telemetry: Telemetry,
        listener: str = "radius",
    ) -> None:
        self.config = config
        self.intake = intake
        self.telemetry = telemetry
        self.listener = listener
        self.counts = PacketCounts(telemetry, listener)
        #: ack_latency's series of each source, bound once (its series are never removed)
        self._latency: dict[str, FastHistogramChild] = {}
        self.clients = ClientTable(config.clients)
        self.window = float(config.duplicate_window_s)
        self._endpoints: list[_Endpoint] = []
        self._sockets: list[socket.socket] = []
        # request -> its response, or _PENDING while the record is not yet durable
        # (plain bytes values: a large cache adds nothing for the garbage collector)
        self._dups: dict[tuple[Any, int, bytes], bytes] = {}
        self._expiry: deque[tuple[float, tuple[Any, int, bytes]]] = deque()
        self._limited = RateLimitedLog(log)
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------
    def bind(self, inherited: list[socket.socket] | None = None) -> None:
        """Create (or adopt from socket activation) one socket per listen address."""
        for listen in self.config.listen:
            sock = udp_socket(listen, self.config.receive_buffer_bytes, inherited or ())
            self._sockets.append(sock)
            self.telemetry.udp_drops.watch(sock.fileno(), self.listener)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each socket (ports chosen by the kernel included)."""
        return [s.getsockname()[:2] for s in self._sockets]

    async def start(self) -> None:
        """Start receiving on the bound sockets."""
        loop = asyncio.get_running_loop()
        if not self._sockets:
            self.bind()
        for sock in self._sockets:
            _transport, endpoint = await loop.create_datagram_endpoint(
                partial(_Endpoint, sock, self._handle, self._answer_dropped), sock=sock
            )
            self._endpoints.append(endpoint)
        self._sweeper = asyncio.create_task(self._sweep(), name="radius-dup-sweeper")

    def pause(self) -> None:
        """Read no more requests (they stay queued in the kernel); responses for records
        in flight still go out."""
        for endpoint in self._endpoints:
            endpoint.stop_reading()

    async def stop(self) -> None:
        """Close the sockets. Idempotent; safe without start."""
        for endpoint in self._endpoints:
            endpoint.close()
        self._endpoints.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    def reload(self, config: RadiusConfig) -> None:
        """Take new clients, secrets and profiles; listen addresses need a restart."""
        if config.listen != self.config.listen:
            log.warning("radius.listen changed: takes effect at the next restart")
        self.clients = ClientTable(config.clients)
        self.window = float(config.duplicate_window_s)
        self.config = config
        self.counts.forget()

    # --- per packet --------------------------------------------------------
    def _answer_dropped(self) -> None:
        # the record is durable: the switch's retransmission gets its answer from the
        # next process, so this is no lost packet (nor a packets_total outcome)
        self._limited.warning(
            "response_dropped",
            "response not sent while stopping: socket send buffer full",
            listener=self.listener,
        )

    def _handle(self, data: bytes, addr: Any, endpoint: _Endpoint) -> None:
        try:
            self._receive(data, addr, endpoint)
        except Exception as exc:  # noqa: BLE001 - the handler must survive anything a packet causes
            self.counts.count("unknown", "malformed")
            self._limited.warning(
                "radius_internal", "packet handling failed", error_class=type(exc).__name__
            )

    def _receive(self, data: bytes, addr: Any, endpoint: _Endpoint) -> None:
        arrival = time.monotonic()
        client = self.clients.find(addr[0])
        if client is None:
            self.counts.count("unknown", "unknown_client")
            self._limited.warning(
                "unknown_client", "packet from an unknown address dropped", listener=self.listener
            )
            return
        source = client.name
        if len(data) < codec.HEADER_LENGTH:
            self.counts.count(source, "malformed")
            self._limited.warning(
                "malformed", "malformed packet dropped", source=source, reason="truncated"
            )
            return
        code = data[0]
        if code != codec.ACCOUNTING_REQUEST and code != codec.STATUS_SERVER:
            self.counts.count(source, "unsupported")
            self._limited.warning(
                "unsupported", "packet code not served on this port", source=source
            )
            return
        key = (addr, data[1], data[4:20])
        cached = self._dups.get(key)
        if cached is not None:
            self.counts.count(source, "duplicate")
            if cached:
                endpoint.send(cached, addr)
            return
        try:
            packet = codec.decode(data)
        except codec.MalformedPacket as exc:
            self.counts.count(source, "malformed")
            self._limited.warning(
                "malformed", "malformed packet dropped", source=source, reason=exc.reason
            )
            return
        secret = client.secret
        if code == codec.STATUS_SERVER:
            if not codec.message_authenticator_ok(packet, secret):
                self.counts.count(source, "bad_authenticator")
                self._limited.warning(
                    "bad_auth", "bad Message-Authenticator: check the shared secret", source=source
                )
                return
            response = codec.encode_response(
                codec.ACCOUNTING_RESPONSE,
                packet.identifier,
                packet.authenticator,
                secret,
                codec.proxy_states(packet),
                with_message_authenticator=True,
            )
            self._answer(key, response, addr, endpoint)
            self.counts.count(source, "accepted")
            return
        if not codec.accounting_request_ok(packet, secret):
            self.counts.count(source, "bad_authenticator")
            self._limited.warning(
                "bad_auth", "bad Request Authenticator: check the shared secret", source=source
            )
            return
        if MESSAGE_AUTHENTICATOR in packet.attrs and not codec.message_authenticator_ok(
            packet, secret, accounting=True
        ):
            # optional on accounting, but one that is present must verify (RFC 5080 2.2.2)
            self.counts.count(source, "bad_authenticator")
            self._limited.warning(
                "bad_auth", "bad Message-Authenticator: check the shared secret", source=source
            )
            return
        now = datetime.now(UTC)
        try:
            record = interpret(packet, client.profile, Context(source, now))
        except NotACall as refusal:  # not `exc` again: mypyc gives a name one type
            if refusal.reason == "unsupported_status_type":
                # valid accounting we do not keep: answer so the switch stops resending
                self.counts.count(source, "unsupported")
                self._answer(key, self._response(packet, secret), addr, endpoint)
            else:
                self.counts.count(source, "malformed")
                self._limited.warning(
                    "not_a_call",
                    "accounting request without a call",
                    source=source,
                    reason=refusal.reason,
                )
            return
        kind = record.kind
        self._dups[key] = _PENDING
        ack = self._acknowledger(key, packet, secret, addr, endpoint, source, arrival)
        if not self.intake.accept(record, now, ack):
            del self._dups[key]
            self.counts.count(source, "overloaded")
            self._limited.warning(
                "overloaded", "writer queue full: request left unanswered", source=source
            )
            return
        if kind is KIND_START:
            self.telemetry.active_calls.labels(source)  # make the series exist

    @staticmethod
    def _response(packet: codec.Packet, secret: bytes) -> bytes:
        return codec.encode_response(
            codec.ACCOUNTING_RESPONSE,
            packet.identifier,
            packet.authenticator,
            secret,
            codec.proxy_states(packet),
        )

    def _answer(
        self,
        key: tuple[Any, int, bytes],
        response: bytes,
        addr: Any,
        endpoint: _Endpoint,
    ) -> None:
        self._dups[key] = response
        self._expiry.append((time.monotonic() + self.window, key))
        endpoint.send(response, addr)

    def _acknowledger(
        self,
        key: tuple[Any, int, bytes],
        packet: codec.Packet,
        secret: bytes,
        addr: Any,
        endpoint: _Endpoint,
        source: str,
        arrival: float,
    ) -> Callable[[bool], None]:
        identifier, authenticator = packet.identifier, packet.authenticator
        echoed = codec.proxy_states(packet)

        def ack(durable: bool) -> None:
            if not durable:
                self._dups.pop(key, None)
                self.counts.count(source, "not_durable")
                return
            response = codec.encode_response(
                codec.ACCOUNTING_RESPONSE, identifier, authenticator, secret, echoed
            )
            self._dups[key] = response
            now = time.monotonic()
            self._expiry.append((now + self.window, key))
            endpoint.send(response, addr)
            latency = self._latency.get(source)
            if latency is None:
                latency = self._latency[source] = self.telemetry.ack_latency.labels(source)
            latency.observe(now - arrival)
            self.counts.count(source, "accepted")

        return ack

    async def _sweep(self) -> None:
        """Forget answered requests once the duplicate window has passed."""
        expiry, dups = self._expiry, self._dups
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            while expiry and expiry[0][0] <= now:
                _deadline, key = expiry.popleft()
                if dups.get(key):
                    del dups[key]
