"""The SIP capture listener: HEPv3, HEPv1/v2 or raw SIP over UDP, HEPv3 over TCP, into CDRs.

Capture agents (Kamailio/OpenSIPS `siptrace`, heplify, FreeSWITCH) mirror
every SIP message a proxy handles to `[sip].listen`, wrapped in HEPv3 (or
the older HEPv1/v2, which carry no auth key) or as bare SIP datagrams (no key
either): a source with a `hep_auth_key` takes only HEPv3 packets carrying it,
anything else from its address counts `bad_authenticator`. Over TCP the same HEPv3 packets
come back to back, each framed by its own 6-byte header. For every packet the receiver finds the
configured source by address, decodes and checks it (auth key, payload
type), parses the SIP headers and feeds one shared `DialogTracker`; each call
the tracker closes is handed to the intake. Nobody waits for an
acknowledgement: a mirror is never answered, so a record the intake cannot
take is counted `overloaded` and lost. Dialogs still open when the daemon
stops are discarded, not stored as incomplete: a restart must not turn calls
in progress into truncated rows (their BYE after the restart finds no dialog
and is ignored, so such a call has no SIP row at all; the count is logged).
The packet handlers never raise, never await and never log per packet; they
never log or count anything taken from a packet (no address, URI or
number), only configured source names and fixed reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import socket
import struct
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from collector.logs import RateLimitedLog, get_logger
from collector.model import CallRecord, RecordKind
from collector.pipeline.intake import Intake
from collector.receivers.addresses import ClientTable, grow_receive_buffer, tcp_socket, udp_socket
from collector.receivers.sip.config import SipConfig, SipSource
from collector.receivers.sip.dialogs import DialogTracker
from collector.receivers.sip.hep import (
    HEP_HEADER_BYTES,
    HEP_MAGIC,
    LEGACY_HEP_VERSIONS,
    PROTO_SIP,
    HepError,
    decode_hep,
    decode_hep12,
    hep_frame_length,
)
from collector.receivers.sip.message import SipError, parse_sip
from collector.settings import parse_host_port
from collector.telemetry import PacketCounts, Telemetry

log = get_logger(__name__)

#: tries at a UDP and TCP pair on one kernel-chosen port (listen port 0)
EPHEMERAL_PAIR_ATTEMPTS = 20

#: how often finished-by-time dialogs are closed and the gauges refreshed
HOUSEKEEPING_INTERVAL_S = 1.0
#: the label of packets from an address no source owns
UNKNOWN_SOURCE = "unknown"
#: bytes taken per read when a HEP TCP connection is finished at pause
_FINAL_READ_BYTES = 65536
#: SO_LINGER on, zero seconds: closing sends a reset, not an end of stream
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)

_now = datetime.now


class _Source:
    """A configured capture agent and the metric children of its packets, bound once.

    `ClientTable` finds it by its `address`.
    """

    __slots__ = (
        "accepted",
        "address",
        "auth_key",
        "bad_authenticator",
        "malformed",
        "name",
        "overloaded",
        "unsupported",
    )

    def __init__(self, source: SipSource, counts: PacketCounts) -> None:
        self.name = name = source.name
        self.address = source.address
        self.auth_key = source.hep_auth_key.encode() if source.hep_auth_key else None
        self.accepted = counts.series(name, "accepted")
        self.malformed = counts.series(name, "malformed")
        self.bad_authenticator = counts.series(name, "bad_authenticator")
        self.unsupported = counts.series(name, "unsupported")
        self.overloaded = counts.series(name, "overloaded")


class _Datagrams(asyncio.DatagramProtocol):
    """Hands every datagram of one UDP socket to the receiver."""

    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        self.handler = handler

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        # nothing is ever sent on these sockets; an ICMP error cannot concern us
        pass


class _HepStream(asyncio.Protocol):
    """One TCP connection carrying HEPv3 packets back to back.

    Each packet announces its own length in its 6-byte header
    (`hep_frame_length`): bytes are buffered until a whole packet is there,
    then it goes the way of a datagram. A header that is not HEPv3 leaves no
    way to find the next packet boundary, so the connection is counted
    malformed and closed (the agent reconnects and starts on a boundary).
    The buffer never holds more than one partial packet (at most 64 KiB)
    plus what one read delivered. `last_active` (the last read) and
    `frame_started` (when the partial packet in the buffer began, None when
    there is none) let the receiver close connections that went quiet or
    stalled inside a packet.
    """

    def __init__(self, receiver: SipReceiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.buffer = bytearray()
        self.last_active = time.monotonic()
        self.frame_started: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)
        peer = stream.get_extra_info("peername")
        self.address = peer[0] if peer else ""
        receiver = self.receiver
        source = receiver.find_source(self.address)
        if source is None:
            receiver.count_unknown()
            stream.abort()
            self.transport = None
            return
        if not receiver.admit_stream(self):
            stream.abort()
            self.transport = None
            return
        if receiver.paused:
            # accepted just before the listener closed: served like those already open
            self.finish()

    def data_received(self, data: bytes) -> None:
        self.consume(data)

    def consume(self, data: bytes) -> bool:
        """Cut whole packets from what arrived and hand each on; False when the
        connection was closed for what it carried."""
        receiver = self.receiver
        transport = self.transport
        if transport is None:
            return False
        now = self.last_active = time.monotonic()
        buffer = self.buffer
        started_empty = not buffer
        buffer += data
        size = len(buffer)
        offset = 0
        try:
            while size - offset >= HEP_HEADER_BYTES:
                length = hep_frame_length(bytes(buffer[offset : offset + HEP_HEADER_BYTES]))
                end = offset + length
                if end > size:
                    break
                frame = bytes(buffer[offset:end])
                offset = end
                if not receiver.stream_frame(frame, self.address):
                    transport.abort()  # the source is gone (reload): stop listening to it
                    buffer.clear()
                    self.transport = None
                    return False
        except HepError as exc:
            receiver.count_broken_stream(self.address, exc.reason)
            transport.abort()
            buffer.clear()
            self.transport = None
            return False
        if offset:
            del buffer[:offset]
        if not buffer:
            self.frame_started = None
        elif offset or started_empty:
            self.frame_started = now  # a new packet began in this read
        # else the same partial packet goes on: its start stays where it was
        return True

    def finish(self) -> None:
        """Take what the peer has sent so far, then close (the receiver is pausing).

        The bytes the kernel already holds for this connection are read at
        once, through a duplicate of its socket (a loop-agnostic read: no
        transport is asked to), and their packets handed on like any others.
        A peer whose end of stream was among them is closed cleanly; one that
        may still be sending is reset, so that its next write fails at once
        and it connects again: the new connection waits in the listen backlog
        for the next process. Nothing it sent is read and thrown away; what
        comes after the reset is never taken.
        """
        transport = self.transport
        if transport is None:
            return
        raw = transport.get_extra_info("socket")
        ended = False
        try:
            copy = socket.fromfd(raw.fileno(), raw.family, raw.type)
        except (OSError, AttributeError):
            transport.abort()  # no descriptor to read by: the peer learns by the reset
            self.transport = None
            return
        with copy:
            try:
                while True:
                    data = copy.recv(_FINAL_READ_BYTES, socket.MSG_DONTWAIT)
                    if not data:
                        ended = True
                        break
                    if not self.consume(data):
                        return
            except OSError:
                pass  # nothing more queued (EAGAIN), or the peer reset it already
            if not ended:
                with contextlib.suppress(OSError):
                    copy.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.buffer.clear()  # a packet cut short by the close: the peer never finished it
        if ended:
            transport.close()
        else:
            transport.abort()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver.forget_stream(self)
        self.buffer.clear()
        self.transport = None

    def abort(self) -> None:
        """Drop the connection now (at stop)."""
        if self.transport is not None:
            self.transport.abort()


class SipReceiver:
    """Takes mirrored SIP from capture agents and turns finished calls into records.

    One `DialogTracker` serves every source (the tracker keys dialogs by
    source name, so two agents never mix their calls). Time is the HEP
    capture timestamp when the agent sent one (a zero timestamp counts as
    none), else the arrival time.
    """

    #: the configuration section this receiver reloads from
    section = "sip"

    def __init__(
        self,
        config: SipConfig,
        intake: Intake,
        telemetry: Telemetry,
        listener: str = "sip",
    ) -> None:
        self.config = config
        self.intake = intake
        self.telemetry = telemetry
        self.listener = listener
        self.counts = PacketCounts(telemetry, listener)
        self.tracker = DialogTracker(
            config.max_dialogs, float(config.max_dialog_age_s), config.correlation_header
        )
        self.paused = False
        #: open TCP connections (closed at stop), and the same by peer address
        self.streams: set[_HepStream] = set()
        self._streams_by_address: dict[str, set[_HepStream]] = {}
        self._udp_sockets: list[socket.socket] = []
        self._tcp_sockets: list[socket.socket] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._housekeeper: asyncio.Task[None] | None = None
        self._limited = RateLimitedLog(log)
        self._unknown = self.counts.series(UNKNOWN_SOURCE, "unknown_client")
        self._internal = self.counts.series(UNKNOWN_SOURCE, "malformed")
        self._pdd = telemetry.post_dial_delay
        #: the post-dial delay series of each source, bound once
        self._pdd_series: dict[str, Any] = {}
        self._evicted_seen = 0
        self._stopped = False
        self._by_name: dict[str, _Source] = {}
        self._find: Callable[[str], _Source | None] = lambda _address: None
        self._set_sources(config.sources)

    # --- lifecycle ---------------------------------------------------------
    def bind(self, inherited: list[socket.socket] | None = None) -> None:
        """Create (or adopt from socket activation) a UDP and a TCP socket per listen address.

        The TCP socket takes the UDP socket's port, so that a listen port of 0
        (tests) gives one port for both.
        """
        activated = inherited or ()
        for listen in self.config.listen:
            host, port = parse_host_port(listen)
            # port 0: the kernel picks a free UDP port, which a TCP socket (an
            # outgoing connection's local port) may hold: then pick another
            attempts = 1 if port else EPHEMERAL_PAIR_ATTEMPTS
            for attempt in range(attempts):
                udp = udp_socket(listen, self.config.receive_buffer_bytes, activated)
                try:
                    tcp = tcp_socket(host, udp.getsockname()[1], activated)
                except OSError as exc:
                    udp.close()
                    if exc.errno != errno.EADDRINUSE or attempt + 1 >= attempts:
                        raise
                    continue
                break
            self._udp_sockets.append(udp)
            self.telemetry.udp_drops.watch(udp.fileno(), self.listener)
            self._tcp_sockets.append(tcp)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each UDP socket (its TCP twin has the same port)."""
        return [s.getsockname()[:2] for s in self._udp_sockets]

    async def start(self) -> None:
        """Start receiving on the bound sockets and the once-a-second housekeeping."""
        loop = asyncio.get_running_loop()
        if not self._udp_sockets:
            self.bind()
        for sock in self._udp_sockets:
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self._datagram), sock=sock
            )
            self._transports.append(transport)
        for sock in self._tcp_sockets:
            server = await loop.create_server(lambda: _HepStream(self), sock=sock)
            self._servers.append(server)
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="sip-housekeeping")

    def pause(self) -> None:
        """Read nothing more; the tracker stops closing dialogs.

        The UDP transports close, so datagrams that arrive stay in the kernel's
        receive queue; the TCP listeners close, so new connections wait in the
        listen backlog (systemd's copy of the sockets keeps both for the next
        process). Open TCP connections are finished: what they sent so far is
        taken, then they are closed (see `_HepStream.finish`).
        """
        self.paused = True
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        for stream in list(self.streams):
            stream.finish()

    async def stop(self) -> None:
        """Close every socket and connection. Idempotent; safe without start.

        Dialogs still open are discarded (see the module docstring): their
        number is logged once.
        """
        self.paused = True
        for server in self._servers:
            server.close()
        for stream in list(self.streams):
            stream.abort()
        self.streams.clear()
        self._streams_by_address.clear()
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        for sock in (*self._udp_sockets, *self._tcp_sockets):
            sock.close()
        self._udp_sockets.clear()
        self._tcp_sockets.clear()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
            self._housekeeper = None
        if not self._stopped:
            self._stopped = True
            still_open = self.tracker.open_dialogs
            if still_open:
                answered = self.tracker.answered_dialogs
                # answered calls have a durable START: their BYE after a restart completes them
                log.info(
                    "sip dialogs open at stop: answered calls end when their BYE comes,"
                    " calls not yet answered are not recorded",
                    listener=self.listener,
                    answered=answered,
                    not_answered=still_open - answered,
                )

    def reload(self, config: SipConfig) -> None:
        """Take new sources, auth keys and tracker limits; open dialogs are kept.

        Listen addresses need a restart. A lower `max_dialogs` takes effect as
        new dialogs arrive (one oldest dialog evicted per new one).
        """
        if config.listen != self.config.listen:
            log.warning("sip.listen changed: takes effect at the next restart")
        self._set_sources(config.sources)
        tracker = self.tracker
        tracker.max_dialogs = config.max_dialogs
        tracker.max_dialog_age = timedelta(seconds=config.max_dialog_age_s)
        tracker.correlation_header = config.correlation_header
        if config.receive_buffer_bytes > self.config.receive_buffer_bytes:
            for sock in self._udp_sockets:
                grow_receive_buffer(sock, config.receive_buffer_bytes)
        self.config = config

    def _set_sources(self, sources: Iterable[SipSource]) -> None:
        self.counts.forget()
        states = tuple(_Source(source, self.counts) for source in sources)
        table: ClientTable[_Source] = ClientTable(states)
        self._by_name = {state.name: state for state in states}
        self._find = table.find

    # --- per packet --------------------------------------------------------
    def find_source(self, address: str) -> _Source | None:
        """The configured source owning `address`, or None."""
        return self._find(address)

    def count_unknown(self) -> None:
        """A packet or connection from an address no source owns."""
        self._unknown.inc()
        self._limited.warning(
            "unknown_client", "packet from an unknown address dropped", listener=self.listener
        )

    def admit_stream(self, stream: _HepStream) -> bool:
        """Register a new TCP connection, or refuse it (counted overloaded) past the limits.

        Both limits count: the total bounds memory, the one per address keeps
        a single misbehaving peer (or a flood of idle connections from it)
        from locking every other capture agent out.
        """
        config = self.config
        address = stream.address
        mine = self._streams_by_address.get(address)
        if len(self.streams) >= config.tcp_max_connections:
            self._count_refused_stream(address, "total")
            return False
        if mine is not None and len(mine) >= config.tcp_max_connections_per_address:
            self._count_refused_stream(address, "per_address")
            return False
        if mine is None:
            mine = self._streams_by_address[address] = set()
        mine.add(stream)
        self.streams.add(stream)
        return True

    def forget_stream(self, stream: _HepStream) -> None:
        """A TCP connection is gone (or was never admitted)."""
        self.streams.discard(stream)
        mine = self._streams_by_address.get(stream.address)
        if mine is not None:
            mine.discard(stream)
            if not mine:
                del self._streams_by_address[stream.address]

    def _count_refused_stream(self, address: str, limit: str) -> None:
        source = self._find(address)
        if source is not None:
            source.overloaded.inc()
        self._limited.warning(
            "hep_streams",
            "too many HEP TCP connections: new one refused",
            listener=self.listener,
            reason=limit,
            count=len(self.streams),
        )

    def close_stalled_streams(self, now: float) -> None:
        """Close TCP connections idle past `tcp_idle_timeout_s`, or stuck inside a packet
        past `tcp_frame_timeout_ms` (that partial packet counts malformed)."""
        config = self.config
        idle_before = now - config.tcp_idle_timeout_s
        frame_before = now - config.tcp_frame_timeout_ms / 1000
        for stream in list(self.streams):
            started = stream.frame_started
            if started is not None and started <= frame_before:
                source = self._find(stream.address)
                if source is not None:
                    source.malformed.inc()
                self._limited.warning(
                    "hep_stream_stalled",
                    "HEP packet on TCP not completed in time: connection closed",
                    listener=self.listener,
                )
            elif stream.last_active <= idle_before:
                self._limited.info(
                    "hep_stream_idle", "idle HEP TCP connection closed", listener=self.listener
                )
            else:
                continue
            self.forget_stream(stream)
            stream.abort()

    def count_broken_stream(self, address: str, reason: str) -> None:
        """A TCP stream that stopped being HEPv3: counted once, then closed."""
        source = self._find(address)
        if source is not None:
            source.malformed.inc()
        else:
            self._internal.inc()
        self._limited.warning(
            "hep_stream",
            "HEP stream out of step: connection closed",
            listener=self.listener,
            reason=reason,
        )

    def stream_frame(self, frame: bytes, address: str) -> bool:
        """One HEPv3 packet cut from a TCP stream; False when its source is no longer known."""
        source = self._find(address)
        if source is None:
            self.count_unknown()
            return False
        try:
            self._packet(frame, source)
        except Exception as exc:  # noqa: BLE001 - a frame must never break the connection handler
            self._internal_error(exc)
        return True

    def _datagram(self, data: bytes, addr: Any) -> None:
        """UDP: find the source, then handle the packet; never raises."""
        try:
            source = self._find(addr[0])
            if source is None:
                self.count_unknown()
                return
            self._packet(data, source)
        except Exception as exc:  # noqa: BLE001 - the handler must survive anything a packet causes
            self._internal_error(exc)

    def _packet(self, data: bytes, source: _Source) -> None:
        """Decode one HEP packet (v3, or v1/v2) or raw SIP message and feed the tracker."""
        if data.startswith(HEP_MAGIC) or data[:1] in LEGACY_HEP_VERSIONS:
            try:
                packet = decode_hep(data) if data[0] == 0x48 else decode_hep12(data)
            except HepError as exc:
                source.malformed.inc()
                self._limited.warning(
                    "hep_malformed",
                    "malformed HEP packet dropped",
                    source=source.name,
                    reason=exc.reason,
                )
                return
            sent = packet.auth_key
            kind = packet.protocol_type
            payload = packet.payload
            when = packet.timestamp
            if when is None:
                when = _now(UTC)
        else:
            # bare SIP carries no key: from a keyed source it is as good as forged
            sent, kind, payload, when = None, None, data, _now(UTC)
        key = source.auth_key
        if key is not None and (sent is None or not hmac.compare_digest(sent, key)):
            source.bad_authenticator.inc()
            self._limited.warning(
                "hep_auth", "packet without the source's HEP auth key dropped", source=source.name
            )
            return
        # An agent that leaves the type out is taken at its word that it mirrors SIP.
        if kind is not None and kind != PROTO_SIP:
            source.unsupported.inc()
            return
        tracker = self.tracker
        try:
            message = parse_sip(payload, tracker.correlation_header)
        except SipError as exc:
            source.malformed.inc()
            self._limited.warning(
                "sip_malformed",
                "malformed SIP message dropped",
                source=source.name,
                reason=exc.reason,
            )
            return
        source.accepted.inc()
        records = tracker.feed(message, when, source.name)
        if records:
            self._emit(records)

    def _emit(self, records: list[CallRecord]) -> None:
        """Hand each finished call to the intake; count what it refuses."""
        received_at = _now(UTC)
        accept = self.intake.accept
        for record in records:
            try:
                if record.pdd_ms is not None and record.kind is RecordKind.STOP:
                    series = self._pdd_series.get(record.source)
                    if series is None:
                        series = self._pdd_series[record.source] = self._pdd.labels(record.source)
                    series.observe(record.pdd_ms / 1000)
                if not accept(record, received_at):
                    self._count_overloaded(record.source)
            except Exception as exc:  # noqa: BLE001 - one bad record must not lose the others
                self._internal_error(exc)

    def _count_overloaded(self, name: str) -> None:
        state = self._by_name.get(name)
        if state is not None:
            state.overloaded.inc()
        else:  # its source was removed by a reload while the call was open
            self.counts.count(name, "overloaded")
        self._limited.warning(
            "overloaded", "writer queue full: SIP call record dropped", source=name
        )

    def _internal_error(self, exc: Exception) -> None:
        self._internal.inc()
        self._limited.warning(
            "sip_internal", "SIP packet handling failed", error_class=type(exc).__name__
        )

    # --- housekeeping ------------------------------------------------------
    async def _housekeeping(self) -> None:
        """Once a second: close dialogs that time settled and TCP connections that
        stalled, refresh the gauges."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            if self.paused:
                continue
            try:
                records = self.tracker.expire(_now(UTC))
                if records:
                    self._emit(records)
                if self.streams:
                    self.close_stalled_streams(time.monotonic())
                self._refresh_metrics()
            except Exception as exc:  # noqa: BLE001 - housekeeping must go on
                self._internal_error(exc)

    def _refresh_metrics(self) -> None:
        tracker = self.tracker
        self.telemetry.open_dialogs.set(tracker.open_dialogs)
        evicted = tracker.evicted_total
        if evicted > self._evicted_seen:
            self.telemetry.dialogs_evicted.inc(evicted - self._evicted_seen)
            self._evicted_seen = evicted
