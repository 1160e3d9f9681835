"""The test client itself: how AccountingClient treats answers it cannot verify.

Every fault test stands on this client. A client that resent at once on a
Response Authenticator that does not verify, and never counted it, turned a
daemon answering with the wrong secret into a test spinning without end (the
pytest timeout could not stop it). Here a real UDP server answers with a
secret of its own choosing, and the client must discard what does not verify
(RFC 2865 section 3), wait for its timeout before resending, and give up
after a bounded number of bad answers: counts of datagrams, not durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from collector.receivers.radius import codec
from collector.traffic import AccountingClient, SendStats, generic_attributes, make_calls

SECRET = b"client-secret"
WRONG = b"some-other-secret"
REQUEST = generic_attributes(make_calls(1, seed=3)[0])


class ScriptedServer(asyncio.DatagramProtocol):
    """Answers the n-th request it receives with one response per secret `script(n)` names."""

    def __init__(self, script: Callable[[int], list[bytes]]) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        packet = codec.decode(data)
        for secret in self.script(len(self.received)):
            response = codec.encode_response(
                codec.ACCOUNTING_RESPONSE, packet.identifier, packet.authenticator, secret
            )
            self.transport.sendto(response, addr)
        self.received.append(data)


async def send_one(
    script: Callable[[int], list[bytes]], **options: Any
) -> tuple[bool, ScriptedServer, SendStats]:
    """Send one request to a ScriptedServer; what send returned, the server, the client's stats."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: ScriptedServer(script), local_addr=("127.0.0.1", 0)
    )
    try:
        address = transport.get_extra_info("sockname")[:2]
        async with AccountingClient(address, SECRET, sockets=1, **options) as client:
            # a bound on the whole send: a client that spins must fail here, not hang
            acknowledged = await asyncio.wait_for(client.send(REQUEST), 30)
    finally:
        transport.close()
    return acknowledged, server, client.stats


async def test_a_bad_answer_is_discarded_and_a_good_one_right_behind_it_taken() -> None:
    acknowledged, server, stats = await send_one(lambda n: [WRONG, SECRET], timeout_s=30)
    assert acknowledged
    # no resend at once on the bad answer: the server saw the request once
    assert len(server.received) == 1
    assert (stats.sent, stats.retransmissions) == (1, 0)
    assert (stats.acknowledged, stats.bad_responses) == (1, 1)


async def test_only_bad_answers_end_the_send_after_a_bounded_number_of_transmissions() -> None:
    # tries=0 never gives up on silence; bad answers still end the send
    acknowledged, server, stats = await send_one(
        lambda n: [WRONG], timeout_s=0.2, bad_responses_max=3
    )
    assert not acknowledged
    # each transmission waited out its timeout before the next: one answer each, three in all
    assert len(server.received) == 3
    assert (stats.sent, stats.retransmissions) == (1, 2)
    assert (stats.bad_responses, stats.gave_up, stats.acknowledged) == (3, 1, 0)


async def test_a_burst_of_bad_answers_ends_the_send_without_a_resend() -> None:
    acknowledged, server, stats = await send_one(
        lambda n: [WRONG] * 5, timeout_s=30, bad_responses_max=3
    )
    assert not acknowledged
    assert len(server.received) == 1
    assert (stats.bad_responses, stats.gave_up) == (3, 1)


async def test_tries_bound_the_transmissions_answered_badly() -> None:
    # two transmissions allowed, each answered badly: two datagrams, then False
    acknowledged, server, stats = await send_one(
        lambda n: [WRONG], timeout_s=0.2, tries=2, bad_responses_max=10
    )
    assert not acknowledged
    assert len(server.received) == 2
    assert (stats.bad_responses, stats.gave_up) == (2, 1)
