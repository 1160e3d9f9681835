"""Fuzzing each decoder of network input, alone and through the running daemon.

Every decoder the receivers call on bytes from the network promises to
return a result or raise its own "malformed" error, never anything else:

- RADIUS: `codec.decode` raises `MalformedPacket`; `profiles.interpret`
  (every profile, on any packet that decodes) raises `NotACall`.
- HEP: `decode_hep`, `decode_hep12` and `hep_frame_length` raise `HepError`.
- SIP: `parse_sip` raises `SipError`; the properties of the message it
  returns raise nothing.
- JSON CDR: `decode_body` and `json_record` raise `JsonCdrError`.

The receivers catch exactly those (anything else is counted as an internal
error, or becomes an HTTP 500 that no counter sees). The inputs are valid
packets of every flavour with structure-aware damage (see tests/fuzzing.py),
so that it reaches the vendor profiles and header readers behind the length
checks; every crash found, by these tests or by a longer coverage-guided run,
is kept as an `@example`. Each test runs a fixed number of examples (a few
seconds each).

Then fixed batches of such input go to a real daemon (real sockets, real
PostgreSQL): each datagram or request is counted once under packets_total,
nothing changed after signing is stored, a valid record sent afterwards is
stored (and answered), and no stored text holds a number from the input.
Defects found outside the decoders are kept as tests at the end.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector import traffic
from collector.model import CallRecord
from collector.pipeline.redact import Redactor
from collector.receivers.json_body import decode_body
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.profiles import PROFILES, Context, NotACall, interpret
from collector.receivers.sip.dialogs import DialogTracker
from collector.receivers.sip.hep import (
    HEP_ERROR_REASONS,
    HepError,
    decode_hep,
    decode_hep12,
    hep_frame_length,
)
from collector.receivers.sip.message import SIP_ERROR_REASONS, SipError, SipMessage, parse_sip
from collector.telemetry import PACKET_OUTCOMES
from collector.traffic import AccountingClient
from collector.vendors.freeswitch.json_cdr import JsonCdrError, json_record
from tests import fuzzing
from tests.daemon import SECRET, Collector, CollectorConfig, connected, running_collector, wait_for
from tests.test_json_cdr import json_config, post, url
from tests.test_numbers_privacy import privacy, stop_record
from tests.test_sip_receiver import (
    PROXY,
    Call,
    Sender,
    answered,
    busy,
    called_hmac,
    hep,
    hep_flow,
    mirrored,
    send_tcp,
    sip_config,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FUZZ_SECRET = b"fuzz-secret"
PROFILE_NAMES = ("auto", *PROFILES)
#: a reason is a short fixed token, never data from the input
RADIUS_REASON = re.compile(r"[a-z_]{1,32}")
#: what NotACall may say
NOT_A_CALL_REASONS = frozenset({"no_session_id", "no_status_type", "unsupported_status_type"})
#: a JsonCdrError names a field, never a value: words and dotted names, no number
JSON_REASON = re.compile(r"[A-Za-z0-9_. ]{1,80}")
MANY_DIGITS = re.compile(r"[0-9]{4,}")


def fuzz_settings(examples: int) -> settings:
    """A fixed number of examples and no deadline: the run time stays bounded and steady."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


RADIUS_SEEDS = fuzzing.radius_seeds()
SIP_MESSAGES = fuzzing.sip_messages()
JSON_DOCUMENTS = fuzzing.json_seeds()
_randoms = st.randoms(use_true_random=False, note_method_calls=False)


# --- RADIUS -----------------------------------------------------------------


@st.composite
def resigned_requests(draw: st.DrawFn) -> bytes:
    """A valid request of one vendor flavour with its attributes changed, signed again."""
    rng = draw(_randoms)
    _flavour, attributes = draw(st.sampled_from(RADIUS_SEEDS))
    return codec.encode_accounting_request(
        rng.randrange(256), fuzzing.mutate_attributes(rng, attributes), FUZZ_SECRET
    )


@st.composite
def damaged_requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(signed request, the same with bytes changed after signing)."""
    rng = draw(_randoms)
    signed = draw(resigned_requests() | st.sampled_from(RADIUS_SEEDS).map(_sign))
    return signed, fuzzing.damage_after_signing(rng, signed)


def _sign(seed: tuple[str, bytes]) -> bytes:
    return codec.encode_accounting_request(7, seed[1], FUZZ_SECRET)


def decode_radius(data: bytes) -> codec.Packet | None:
    """`codec.decode`, as the receiver calls it: a Packet, or None for MalformedPacket."""
    try:
        packet = codec.decode(data)
    except codec.MalformedPacket as exc:
        reason: str = exc.reason
    else:
        codec.proxy_states(packet)
        codec.message_authenticator_ok(packet, FUZZ_SECRET)
        return packet
    assert RADIUS_REASON.fullmatch(reason)
    return None


def interpret_everywhere(packet: codec.Packet) -> list[CallRecord]:
    """The packet under every profile: a CallRecord or NotACall, nothing else."""
    records = []
    reasons: set[str] = set()
    for profile in PROFILE_NAMES:
        try:
            records.append(interpret(packet, profile, Context("sbc-fuzz", NOW)))
        except NotACall as exc:
            reasons.add(exc.reason)
    assert reasons <= NOT_A_CALL_REASONS
    for record in records:
        assert record.source == "sbc-fuzz"
        for moment in (record.setup_time, record.connect_time, record.disconnect_time):
            assert moment is None or moment.tzinfo is not None
    return records


def cisco_start(setup_time: str, secret: bytes = FUZZ_SECRET) -> bytes:
    """A Cisco Start carrying one h323-setup-time, signed."""
    attributes = (
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_START))
        + codec.encode_attribute(d.ACCT_SESSION_ID, b"0000A1B2")
        + codec.encode_vsa(d.CISCO, d.H323_SETUP_TIME, f"h323-setup-time={setup_time}".encode())
    )
    return codec.encode_accounting_request(1, attributes, secret)


@fuzz_settings(1500)
@given(data=resigned_requests())
# a clock with a superscript digit (isdigit(), but not int()) raised ValueError
@example(data=cisco_start("1\u00b2:00:01.250 UTC Mon Nov 30 2026"))
@example(data=cisco_start("12:00:01.2\u00b2\u2075 UTC Mon Nov 30 2026"))
def test_radius_request_with_changed_attributes_is_a_record_or_not_a_call(data: bytes) -> None:
    packet = decode_radius(data)
    if packet is not None:
        assert codec.accounting_request_ok(packet, FUZZ_SECRET)
        interpret_everywhere(packet)


@fuzz_settings(800)
@given(pair=damaged_requests())
def test_radius_request_changed_after_signing_never_authenticates(
    pair: tuple[bytes, bytes],
) -> None:
    signed, damaged = pair
    assert damaged != signed
    packet = decode_radius(damaged)
    if packet is not None:
        assert not codec.accounting_request_ok(packet, FUZZ_SECRET)
        assert not codec.message_authenticator_ok(packet, FUZZ_SECRET)
        interpret_everywhere(packet)


# --- HEP and SIP ---------------------------------------------------------------


def read_capture(data: bytes) -> bytes | None:
    """What the SIP receiver does before the SIP parser: the payload, or None when refused."""
    try:
        if data[:4] == b"HEP3":
            assert hep_frame_length(data[:6]) >= 6
            packet = decode_hep(data)
        elif data[:1] in (b"\x01", b"\x02"):
            packet = decode_hep12(data)
        else:
            return data
    except HepError as exc:
        reason: str = exc.reason
    else:
        assert f"payload_bytes={len(packet.payload)}>" in repr(packet)  # and never the payload
        stamp = packet.timestamp
        assert stamp is None or stamp.tzinfo is not None
        return packet.payload
    assert reason in HEP_ERROR_REASONS
    return None


def read_sip(data: bytes) -> SipMessage | None:
    """`parse_sip` and every property of what it returns, as the tracker reads them."""
    try:
        message = parse_sip(data, "X-CID")
    except SipError as exc:
        reason: str = exc.reason
    else:
        check_message(message)
        return message
    assert reason in SIP_ERROR_REASONS
    return None


def check_message(message: SipMessage) -> None:
    """Every property of a parsed message: none of them raises, each in its range."""
    assert message.call_id
    assert message.status == 0 or 100 <= message.status <= 699
    assert 0 <= message.cseq < 10**10
    for user in (message.from_user, message.to_user, message.ruri_user, message.pai_user):
        assert user is None or isinstance(user, str)
    assert message.via_count >= message.count_vias(2) >= 0
    cause = message.reason_cause
    assert cause is None or 1 <= cause <= 127
    assert message.correlation is None or isinstance(message.correlation, str)
    assert message.is_request == (message.status == 0)
    repr(message)


@st.composite
def captures(draw: st.DrawFn) -> bytes:
    """A SIP message of a call flow, changed, wrapped bare or in HEPv1/v2/v3, envelope changed."""
    rng = draw(_randoms)
    message = draw(st.sampled_from(SIP_MESSAGES))
    return fuzzing.sip_datagram(rng, message, NOW, auth_key=draw(st.sampled_from([None, "k"])))


@fuzz_settings(1500)
@given(data=captures())
def test_sip_capture_decodes_or_is_refused_with_its_reason(data: bytes) -> None:
    payload = read_capture(data)
    if payload is not None:
        read_sip(payload)


@st.composite
def sip_texts(draw: st.DrawFn) -> bytes:
    rng = draw(_randoms)
    message = draw(st.sampled_from(SIP_MESSAGES))
    for _ in range(draw(st.integers(1, 3))):
        message = fuzzing.mutate_sip(rng, message)
    return message


@fuzz_settings(1000)
@given(data=sip_texts())
def test_sip_message_with_changed_headers_parses_or_is_a_sip_error(data: bytes) -> None:
    read_sip(data)


SIP_FLOWS = fuzzing.sip_flows()


@st.composite
def damaged_flows(draw: st.DrawFn) -> list[tuple[float, bytes]]:
    """A call flow with some of its messages changed, dropped or repeated."""
    rng = draw(_randoms)
    flow = list(draw(st.sampled_from(SIP_FLOWS)))
    steps = []
    for offset, message in flow:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.5:
            message = fuzzing.mutate_sip(rng, message)
        steps.append((offset, message))
        if rng.random() < 0.1:
            steps.append((offset + rng.choice((-30.0, 0.0, 0.001, 7200.0)), message))
    return steps


@fuzz_settings(600)
@given(steps=damaged_flows())
def test_damaged_call_flow_through_the_dialog_tracker_raises_nothing(
    steps: list[tuple[float, bytes]],
) -> None:
    """What parses goes on to the tracker (the receiver's path): it must take anything."""
    tracker = DialogTracker(10, 3600.0, "X-CID")
    records = []
    for offset, data in steps:
        message = read_sip(data)
        if message is not None:
            records += tracker.feed(message, NOW + timedelta(seconds=offset), "proxy-fuzz")
    records += tracker.expire(NOW + timedelta(days=1))
    assert tracker.open_dialogs == 0
    for record in records:
        assert record.source == "proxy-fuzz"
        assert record.duration_ms is None or record.duration_ms >= 0


# --- JSON CDR -------------------------------------------------------------------------


@st.composite
def json_posts(draw: st.DrawFn) -> tuple[bytes, str]:
    """A mod_json_cdr document with fields changed, in one of its encodings, maybe damaged."""
    rng = draw(_randoms)
    return fuzzing.json_post(rng, JSON_DOCUMENTS)


def read_json_cdr(body: bytes, content_type: str) -> CallRecord | None:
    """`decode_body` then `json_record`, as the endpoint calls them."""
    try:
        return json_record(decode_body(body, content_type), "fs-fuzz", NOW)
    except JsonCdrError as exc:
        reason: str = exc.reason
    assert JSON_REASON.fullmatch(reason) and not MANY_DIGITS.search(reason), reason
    return None


#: a callflow's profile_index past int()'s 4300-digit limit raised ValueError (an HTTP 500)
LONG_PROFILE_INDEX = (
    b'{"variables": {"uuid": "9b1f3a52"}, "callflow": [{"profile_index": "'
    + b"9" * 4301
    + b'", "caller_profile": {}}]}'
)


@fuzz_settings(1000)
@given(post=json_posts())
@example(post=(LONG_PROFILE_INDEX, "application/json"))
def test_json_cdr_with_changed_fields_is_a_record_or_a_json_cdr_error(
    post: tuple[bytes, str],
) -> None:
    body, content_type = post
    record = read_json_cdr(body, content_type)
    if record is not None:
        assert record.session_id
        assert record.duration_ms is None or record.duration_ms >= 0


# --- through the daemon ----------------------------------------------------------------
#
# Fixed batches (a seed each, so a failure replays): damaged input must be
# counted once each under packets_total, leave the daemon serving (a valid
# record sent afterwards is stored, and for RADIUS answered), store nothing
# it should not, and never put a number from the input into a stored row.

#: the seed of each daemon batch
BATCH_SEED = 20261130
PACKETS = "cdr_collector_packets_total"


def counted(collector: Collector, listener: str, source: str | None = None) -> float:
    """Packets (or requests) of one listener counted under any outcome."""
    labels = {"listener": listener} if source is None else {"listener": listener, "source": source}
    return collector.metric(PACKETS, **labels)


async def stored_rows(dsn: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of `cdrs` and `open_calls`, by table."""
    async with connected(dsn) as conn:
        return {
            table: [dict(row) for row in await conn.fetch(f"SELECT * FROM {table}")]
            for table in ("cdrs", "open_calls")
        }


async def assert_no_number_stored(dsn: str, inputs: set[str]) -> dict[str, list[dict[str, Any]]]:
    """No text column of any row holds a number from the input (see `stored_number_problems`)."""
    tables = await stored_rows(dsn)
    problems = [
        problem
        for table, rows in tables.items()
        for problem in fuzzing.stored_number_problems(table, rows, inputs)
    ]
    assert not problems, problems
    return tables


def assert_no_internal_error(collector: Collector) -> None:
    """No packet got past its decoder's error and broke something behind it."""
    text = collector.log_text()
    assert "packet handling failed" not in text, "a packet broke its handler (see the log)"
    assert "Traceback" not in text, "a request broke its handler (see the log)"
    assert collector.metric("cdr_collector_records_dropped") == 0
    assert collector.process is not None and collector.process.poll() is None


def radius_batches(now: datetime) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(damaged after signing, changed and signed again, valid Stops to send last)."""
    rng = random.Random(BATCH_SEED)
    secret = SECRET.encode()
    seeds = fuzzing.radius_seeds(now=now, seed=1)
    signed = [codec.encode_accounting_request(rng.randrange(256), a, secret) for _f, a in seeds]
    signed.append(codec.encode_status_server(9, rng.randbytes(16), secret))
    damaged = [fuzzing.damage_after_signing(rng, rng.choice(signed)) for _ in range(200)]
    resigned = [
        codec.encode_accounting_request(
            rng.randrange(256), fuzzing.mutate_attributes(rng, rng.choice(seeds)[1]), secret
        )
        for _ in range(300)
    ]
    # once an uncaught ValueError: counted as an internal error, never answered
    resigned.append(cisco_start("1\u00b2:00:01.250 UTC Mon Nov 30 2026", secret))
    valid = [
        build(call)
        for call in traffic.make_calls(2, seed=2, now=now)
        for build in (
            traffic.cisco_attributes,
            traffic.freeswitch_attributes,
            traffic.generic_attributes,
        )
    ]
    return damaged, resigned, valid


def called_hmacs(attributes: bytes) -> set[str]:
    """The pseudonyms a valid request's called number may be stored under."""
    packet = codec.decode(codec.encode_accounting_request(0, attributes, b"x"))
    texts = [packet.text(d.CALLED_STATION_ID), packet.vendor_text(d.FREESWITCH, d.FS_DST)]
    return {called_hmac(text.removeprefix("00")) for text in texts if text}


def _counted_at_least(collector: Collector, listener: str, total: float) -> Callable[[], bool]:
    return lambda: counted(collector, listener) >= total


async def send_counted(
    collector: Collector, sock: socket.socket, target: tuple[str, int], batch: list[bytes]
) -> None:
    """Send datagrams in runs, each run counted before the next (no receive buffer overflows)."""
    listener_total = counted(collector, "radius")
    for start in range(0, len(batch), 50):
        run = batch[start : start + 50]
        for datagram in run:
            sock.sendto(datagram, target)
        listener_total += len(run)
        await wait_for(_counted_at_least(collector, "radius", listener_total), 20.0)
    assert counted(collector, "radius") == listener_total


async def test_fuzzed_radius_is_counted_and_nothing_damaged_is_stored(
    tmp_path: Path, dsn: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    damaged, resigned, valid = radius_batches(now)
    config = CollectorConfig(directory=tmp_path / "collector", dsn=dsn)
    with running_collector(config) as collector:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        try:
            # 1. Bytes changed after signing: refused, unanswered, nothing stored.
            await send_counted(collector, sock, collector.radius_address, damaged)
            refused = {
                outcome: collector.metric(PACKETS, listener="radius", outcome=outcome)
                for outcome in PACKET_OUTCOMES
            }
            assert refused["accepted"] == 0 and refused["duplicate"] == 0, refused
            assert refused["bad_authenticator"] + refused["malformed"] + refused[
                "unsupported"
            ] == len(damaged), refused
            with pytest.raises(BlockingIOError):
                sock.recv(4096)
            assert await stored_rows(dsn) == {"cdrs": [], "open_calls": []}
            # 2. Attributes changed and signed again: each counted once, whatever it became.
            await send_counted(collector, sock, collector.radius_address, resigned)
        finally:
            sock.close()
        # 3. The listener still serves: valid Stops of each flavour are answered and stored.
        async with AccountingClient(collector.radius_address, SECRET.encode(), tries=5) as client:
            for attributes in valid:
                assert await client.send(attributes)
        assert_no_internal_error(collector)

    inputs = set().union(*(fuzzing.digit_runs(data) for data in (*damaged, *resigned, *valid)))
    tables = await assert_no_number_stored(dsn, inputs)
    stored = {row["called_hmac"] for row in tables["cdrs"]}
    for attributes in valid:
        assert called_hmacs(attributes) & stored


def sip_batches(start: datetime) -> tuple[list[bytes], list[bytes]]:
    """(UDP datagrams, TCP frames): captures of call flows, many of them damaged.

    The TCP frames keep their HEPv3 framing (magic and total length) so that
    the stream stays in step: what is inside them may be anything.
    """
    rng = random.Random(BATCH_SEED)
    datagrams, frames = [], []
    for round_number in range(8):
        for flow in fuzzing.sip_flows(tag=f"fuzz{round_number}"):
            for offset, message in flow:
                when = start + timedelta(seconds=offset)
                for copy in mirrored(message):
                    datagrams.append(fuzzing.sip_datagram(rng, copy, when))
                    if rng.random() < 0.3:
                        chunks = fuzzing.mutate_hep3(rng, hep(copy, when))[6:]
                        frames.append(b"HEP3" + (6 + len(chunks)).to_bytes(2, "big") + chunks)
    return datagrams, frames


async def test_fuzzed_sip_captures_are_counted_and_the_listener_keeps_serving(
    tmp_path: Path, dsn: str
) -> None:
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    datagrams, frames = sip_batches(start)
    after_udp = answered(Call("after-fuzz-udp@pbx", "+442079460919"), 4.0)
    after_tcp = busy(Call("after-fuzz-tcp@pbx", "+442079460929"))
    tcp_tail = [hep(copy, start) for _offset, message in after_tcp for copy in mirrored(message)]
    with running_collector(config) as collector:
        sender = Sender(config.sip_port)
        try:
            sender.send(datagrams)
            await send_tcp(config.sip_port, [*frames, *tcp_tail], pause_s=0.0)
            sender.send(hep_flow(after_udp, start))
        finally:
            sender.close()
        total = sender.sent + len(frames) + len(tcp_tail)
        await wait_for(lambda: counted(collector, "sip", PROXY) >= total, 20.0)
        assert counted(collector, "sip", PROXY) == total  # each once
        assert collector.metric(PACKETS, listener="sip", source="unknown") == 0
        assert_no_internal_error(collector)
        await wait_for(lambda: _has_rows(dsn, {"+442079460919", "+442079460929"}), 20.0)

    inputs = set().union(*(fuzzing.digit_runs(_capture_text(d)) for d in (*datagrams, *frames)))
    await assert_no_number_stored(dsn, inputs)


async def _has_rows(dsn: str, callees: set[str]) -> bool:
    rows = (await stored_rows(dsn))["cdrs"]
    return {called_hmac(number) for number in callees} <= {row["called_hmac"] for row in rows}


def _capture_text(data: bytes) -> bytes:
    """A capture and, when it decodes, its payload (a compressed one hides its digits)."""
    try:
        return data + decode_hep(data).payload
    except HepError:
        return data


async def test_fuzzed_json_cdrs_get_an_answer_and_the_endpoint_keeps_serving(
    tmp_path: Path, dsn: str
) -> None:
    rng = random.Random(BATCH_SEED)
    posts = [fuzzing.json_post(rng, JSON_DOCUMENTS) for _ in range(150)]
    posts.append((LONG_PROFILE_INDEX, "application/json"))  # once an HTTP 500, never counted
    valid = dict(JSON_DOCUMENTS[0])
    valid["variables"] = {**valid["variables"], "uuid": "0d6f6e2a-after-fuzz"}
    config = json_config(tmp_path / "collector", dsn)
    statuses = []
    async with aiohttp.ClientSession() as session:
        with running_collector(config) as collector:
            for body, content_type in posts:
                status, _text, _headers = await post(session, url(config), body, content_type)
                statuses.append(status)
            before = len((await stored_rows(dsn))["cdrs"])
            status, _text, _headers = await post(session, url(config), json.dumps(valid).encode())
            assert status == 200
            assert len((await stored_rows(dsn))["cdrs"]) == before + 1
            answers = {
                outcome: collector.metric(PACKETS, listener="json", outcome=outcome)
                for outcome in ("accepted", "malformed")
            }
            assert_no_internal_error(collector)

    assert set(statuses) <= {200, 400, 413}, sorted(set(statuses))
    assert answers == {
        "accepted": statuses.count(200) + 1,
        "malformed": statuses.count(400) + statuses.count(413),
    }
    inputs = set()
    for body, content_type in posts:
        inputs |= fuzzing.digit_runs(body)
        with contextlib.suppress(JsonCdrError):
            inputs |= fuzzing.digit_runs(unquote(json.dumps(decode_body(body, content_type))))
    await assert_no_number_stored(dsn, inputs)


# --- defects outside the decoders, found while fuzzing -------------------------------------


def test_called_number_over_15_digits_is_not_kept_in_called_masked() -> None:
    redactor = Redactor(privacy())
    number = "442079460123"
    for called in (f"+{number}0000", f"00{number}99999", f"{number}0000000000"):
        masked = redactor.redact(stop_record(called=called), NOW).called_masked
        # an E.164 number has at most 15 digits, of which mask_digits (3) are hidden
        assert masked is None or sum(c.isdigit() for c in masked) <= 12, "too many digits shown"
        assert masked is None or number not in masked
