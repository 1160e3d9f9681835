"""Synthetic call traffic and a retransmitting RADIUS accounting client.

Used by `cdr-collector demo`, the benchmarks and the fault tests: it builds
realistic Stop (and Start) packets in the Cisco, FreeSWITCH and generic
RFC 2866 styles for made-up calls, and sends them the way a softswitch does:
each request is resent until its Accounting-Response arrives (verified
against the shared secret), optionally with a growing Acct-Delay-Time (which
changes the Identifier and authenticator, as real switches do). The numbers
it invents are random, but they are still numbers: nothing here logs them.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d

#: (country code, national destination codes, subscriber digits) for made-up numbers
_NUMBER_PLANS = (
    ("49", ("30", "40", "89", "151", "160", "171"), 8),
    ("44", ("20", "161", "7700", "7911"), 7),
    ("33", ("1", "6", "7"), 8),
    ("1", ("212", "415", "646"), 7),
    ("34", ("91", "93", "600"), 7),
    ("39", ("06", "02", "333"), 7),
    ("31", ("20", "6"), 7),
)


@dataclass
class Call:
    """A made-up call leg, with everything a switch would report of it."""

    session_id: str
    calling: str
    called: str
    setup: datetime
    connect: datetime | None
    disconnect: datetime
    cause: int
    leg: str = "originate"
    conf_id: str = ""

    @property
    def duration_ms(self) -> int:
        """Billable milliseconds: connect to disconnect, 0 if unanswered."""
        if self.connect is None:
            return 0
        return round((self.disconnect - self.connect).total_seconds() * 1000)


def random_number(rng: random.Random, blocks: list[str] | None = None) -> str:
    """An E.164 number (with '+') from a small set of real numbering plans.

    With `blocks`, the number starts with one of them (country code and the
    next six digits), as real traffic concentrates on a limited set of
    number blocks; the rest of its digits are random.
    """
    if blocks:
        block = rng.choice(blocks)
        length = 12 if block.startswith("+1") else 13
        return block + "".join(rng.choice("0123456789") for _ in range(length - len(block)))
    code, ndcs, digits = rng.choice(_NUMBER_PLANS)
    ndc = rng.choice(ndcs)
    subscriber = "".join(rng.choice("0123456789") for _ in range(digits - len(ndc) + 2))
    return f"+{code}{ndc}{subscriber}"


def number_blocks(count: int, rng: random.Random) -> list[str]:
    """`count` distinct number blocks: "+" country code and the next six digits."""
    blocks: set[str] = set()
    while len(blocks) < count:
        number = random_number(rng)
        code = next(c for c, _n, _d in _NUMBER_PLANS if number[1:].startswith(c))
        blocks.add(number[: 1 + len(code) + 6])
    return sorted(blocks)


def make_calls(
    count: int, seed: int | None = None, now: datetime | None = None, blocks: int | None = None
) -> list[Call]:
    """`count` calls ending around `now`: 60 % answered, the rest busy, no answer or failed.

    `blocks` limits the numbers to that many number blocks (see `random_number`),
    the same blocks on every call, as a carrier's traffic keeps its mix.
    """
    rng = random.Random(seed)
    pool = number_blocks(blocks, random.Random(blocks)) if blocks else None
    end = now or datetime.now(UTC)
    calls = []
    run = os.urandom(4).hex().upper() if seed is None else f"{seed:08X}"
    for index in range(count):
        setup = end - timedelta(seconds=rng.uniform(5, 900))
        roll = rng.random()
        if roll < 0.6:
            connect: datetime | None = setup + timedelta(milliseconds=rng.randint(1500, 9000))
            assert connect is not None
            disconnect = connect + timedelta(milliseconds=rng.randint(1000, 600000))
            cause = 16
        else:
            connect = None
            disconnect = setup + timedelta(milliseconds=rng.randint(800, 30000))
            cause = rng.choice((17, 17, 19, 18, 1, 34, 31))
        calls.append(
            Call(
                session_id=f"{run}{index:08X}",
                calling=random_number(rng, pool),
                called=random_number(rng, pool),
                setup=setup,
                connect=connect,
                disconnect=disconnect,
                cause=cause,
                conf_id=f"{rng.getrandbits(32):08X} {rng.getrandbits(32):08X} {rng.getrandbits(32):08X} {rng.getrandbits(32):08X}",
            )
        )
    return calls


def _cisco_time(when: datetime, flag: str = "") -> str:
    utc = when.astimezone(UTC)
    return f"{flag}{utc:%H:%M:%S}.{utc.microsecond // 1000:03d} UTC {utc:%a %b %d %Y}"


def _text(number: int, value: str) -> bytes:
    return codec.encode_attribute(number, value.encode())


def _cisco(number: int, name: str, value: str) -> bytes:
    return codec.encode_vsa(d.CISCO, number, f"{name}={value}".encode())


def cisco_attributes(call: Call, status: int = d.STATUS_STOP, clock_flag: str = "") -> bytes:
    """A Cisco IOS gateway's accounting attributes for one leg (Stop by default)."""
    parts = [
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(status)),
        _text(d.ACCT_SESSION_ID, call.session_id),
        _text(d.USER_NAME, call.calling.lstrip("+")),
        _text(d.CALLING_STATION_ID, call.calling.lstrip("+")),
        _text(d.CALLED_STATION_ID, call.called.lstrip("+")),
        codec.encode_attribute(d.NAS_IP_ADDRESS, bytes((192, 0, 2, 10))),
        _cisco(d.H323_CONF_ID, "h323-conf-id", call.conf_id),
        _cisco(d.H323_CALL_ORIGIN, "h323-call-origin", call.leg),
        _cisco(d.H323_CALL_TYPE, "h323-call-type", "VoIP"),
        _cisco(d.H323_SETUP_TIME, "h323-setup-time", _cisco_time(call.setup, clock_flag)),
        codec.encode_vsa(d.CISCO, d.CISCO_AVPAIR, b"session-protocol=sipv2"),
    ]
    if status == d.STATUS_STOP:
        connect = call.connect or call.disconnect
        parts += [
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(call.duration_ms // 1000)),
            _cisco(d.H323_CONNECT_TIME, "h323-connect-time", _cisco_time(connect, clock_flag)),
            _cisco(
                d.H323_DISCONNECT_TIME,
                "h323-disconnect-time",
                _cisco_time(call.disconnect, clock_flag),
            ),
            _cisco(d.H323_DISCONNECT_CAUSE, "h323-disconnect-cause", f"{call.cause:X}"),
            _cisco(d.H323_REMOTE_ADDRESS, "h323-remote-address", "198.51.100.7"),
        ]
    elif call.connect is not None:
        parts.append(
            _cisco(d.H323_CONNECT_TIME, "h323-connect-time", _cisco_time(call.connect, clock_flag))
        )
    return b"".join(parts)


def _fs_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"


def freeswitch_attributes(call: Call, status: int = d.STATUS_STOP) -> bytes:
    """FreeSWITCH mod_radius_cdr's attributes for one call (Stop by default)."""
    fs = d.FREESWITCH
    parts = [
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(status)),
        _text(d.ACCT_SESSION_ID, call.session_id.lower()),
        _text(d.USER_NAME, "trunk-a"),
        codec.encode_vsa(fs, d.FS_SRC, call.calling.encode()),
        codec.encode_vsa(fs, d.FS_DST, call.called.encode()),
        codec.encode_vsa(fs, d.FS_CALLSTARTDATE, _fs_time(call.setup).encode()),
    ]
    if call.connect is not None:
        parts.append(codec.encode_vsa(fs, d.FS_CALLANSWERDATE, _fs_time(call.connect).encode()))
    if status == d.STATUS_STOP:
        parts += [
            codec.encode_vsa(fs, d.FS_CALLENDDATE, _fs_time(call.disconnect).encode()),
            codec.encode_vsa(fs, d.FS_HANGUPCAUSE, codec.integer(call.cause)),
            codec.encode_vsa(
                fs, d.FS_BILLUSEC, codec.integer((call.duration_ms * 1000) & 0xFFFFFFFF)
            ),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(call.duration_ms // 1000)),
        ]
    return b"".join(parts)


def generic_attributes(call: Call, status: int = d.STATUS_STOP) -> bytes:
    """Plain RFC 2866 attributes for one call (Stop by default)."""
    parts = [
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(status)),
        _text(d.ACCT_SESSION_ID, call.session_id),
        _text(d.CALLING_STATION_ID, call.calling),
        _text(d.CALLED_STATION_ID, "00" + call.called.lstrip("+")),
    ]
    if status == d.STATUS_STOP:
        parts += [
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(call.duration_ms // 1000)),
            codec.encode_attribute(
                d.EVENT_TIMESTAMP, codec.integer(int(call.disconnect.timestamp()))
            ),
        ]
    else:
        when = call.connect or call.setup
        parts.append(
            codec.encode_attribute(d.EVENT_TIMESTAMP, codec.integer(int(when.timestamp())))
        )
    return b"".join(parts)


@dataclass
class SendStats:
    """What a client run achieved."""

    sent: int = 0
    acknowledged: int = 0
    retransmissions: int = 0
    #: answers whose Response Authenticator did not verify (discarded)
    bad_responses: int = 0
    #: requests given up: `tries` ran out, or too many bad answers
    gave_up: int = 0
    latencies: list[float] = field(default_factory=list)


class _Answers:
    """The responses that arrived for one request and were not read yet."""

    __slots__ = ("arrived", "responses")

    def __init__(self) -> None:
        self.responses: list[bytes] = []
        self.arrived = asyncio.Event()


class _ClientSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        #: Identifier -> the answers to the request in flight under it
        self.waiting: dict[int, _Answers] = {}
        self.free = list(range(256))
        random.shuffle(self.free)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) < 20:
            return
        answers = self.waiting.get(data[1])
        if answers is not None:
            # every one is kept: a bad answer must not hide a good one right behind it
            answers.responses.append(data)
            answers.arrived.set()


class AccountingClient:
    """Sends accounting requests like a softswitch: resend until answered.

    Several local sockets give more than 256 Identifiers in flight. With
    `bump_delay`, a resend carries Acct-Delay-Time + elapsed seconds and so a
    new Identifier and authenticator (a new packet for the server's duplicate
    cache; the record key must still make it one row).

    A response whose Response Authenticator does not verify is discarded, as
    RFC 2865 section 3 tells a client to do, and counted: the request is
    resent only when its timeout passes, never at once, and it is given up
    after `bad_responses_max` such responses whatever `tries` says. A server
    that answers with another secret (or answers what it should have dropped)
    does not start answering right, and a client that kept resending to it
    would spin without end.
    """

    def __init__(
        self,
        server: tuple[str, int],
        secret: bytes,
        sockets: int = 4,
        timeout_s: float = 1.0,
        tries: int = 0,
        bump_delay: bool = False,
        local_host: str | None = None,
        bad_responses_max: int = 3,
    ) -> None:
        self.server = server
        self.secret = secret
        self.socket_count = sockets
        self.timeout_s = timeout_s
        self.tries = tries  # 0: never give up on silence
        self.bad_responses_max = max(1, bad_responses_max)
        self.bump_delay = bump_delay
        self.local_host = local_host
        self.stats = SendStats()
        self._sockets: list[_ClientSocket] = []
        self._available = asyncio.Condition()

    async def __aenter__(self) -> AccountingClient:
        loop = asyncio.get_running_loop()
        for _ in range(self.socket_count):
            family = socket.AF_INET6 if ":" in self.server[0] else socket.AF_INET
            _transport, protocol = await loop.create_datagram_endpoint(
                _ClientSocket,
                family=family,
                local_addr=(
                    self.local_host or ("::1" if family == socket.AF_INET6 else "127.0.0.1"),
                    0,
                ),
            )
            self._sockets.append(protocol)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sock in self._sockets:
            if sock.transport is not None:
                sock.transport.close()

    async def _take_id(self) -> tuple[_ClientSocket, int]:
        async with self._available:
            while True:
                candidates = [s for s in self._sockets if s.free]
                if candidates:
                    sock = max(candidates, key=lambda s: len(s.free))
                    return sock, sock.free.pop()
                await self._available.wait()

    async def _release(self, sock: _ClientSocket, identifier: int) -> None:
        sock.waiting.pop(identifier, None)
        async with self._available:
            sock.free.insert(0, identifier)
            self._available.notify()

    async def send(self, attributes: bytes) -> bool:
        """Send one request until it is answered (or given up); True when acknowledged.

        Given up (False, counted in `gave_up`) after `tries` transmissions
        without a verified answer, or after `bad_responses_max` answers that
        failed verification.
        """
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        transmissions = 0
        bad = 0
        while True:
            delay = int(time.monotonic() - started) if self.bump_delay else 0
            body = attributes
            if delay:
                body += codec.encode_attribute(d.ACCT_DELAY_TIME, codec.integer(delay))
            sock, identifier = await self._take_id()
            packet = codec.encode_accounting_request(identifier, body, self.secret)
            answers = sock.waiting[identifier] = _Answers()
            try:
                while True:
                    assert sock.transport is not None
                    sock.transport.sendto(packet, self.server)
                    transmissions += 1
                    if transmissions == 1:
                        self.stats.sent += 1
                    else:
                        self.stats.retransmissions += 1
                    deadline = loop.time() + self.timeout_s
                    while True:
                        if not answers.responses:
                            answers.arrived.clear()
                            try:
                                async with asyncio.timeout_at(deadline):
                                    await answers.arrived.wait()
                            except TimeoutError:
                                break
                        response = answers.responses.pop(0)
                        if codec.response_ok(response, packet[4:20], self.secret):
                            self.stats.acknowledged += 1
                            self.stats.latencies.append(time.monotonic() - started)
                            return True
                        # discarded: wait on for a true answer until this transmission times out
                        self.stats.bad_responses += 1
                        bad += 1
                        if bad >= self.bad_responses_max:
                            self.stats.gave_up += 1
                            return False
                    if self.tries and transmissions >= self.tries:
                        self.stats.gave_up += 1
                        return False
                    if self.bump_delay:
                        break  # resend as a new packet: new Identifier, new Acct-Delay-Time
            finally:
                await self._release(sock, identifier)

    async def send_all(
        self,
        requests: Sequence[bytes],
        concurrency: int = 256,
        rate: float | None = None,
        on_ack: Callable[[int], None] | None = None,
    ) -> SendStats:
        """Send every request with at most `concurrency` in flight, at most `rate` per second."""
        queue = iter(enumerate(requests))
        started = time.monotonic()
        counter = 0

        async def worker() -> None:
            nonlocal counter
            for index, attributes in queue:
                if rate:
                    counter += 1
                    due = started + counter / rate
                    pause = due - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
                if await self.send(attributes) and on_ack is not None:
                    on_ack(index)

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        return self.stats
