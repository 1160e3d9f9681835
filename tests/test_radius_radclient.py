"""The RADIUS path end to end: FreeRADIUS's radclient -> the daemon -> PostgreSQL.

radclient is a real, independent RADIUS client: it verifies the Response
Authenticator of every answer it gets, so rc 0 means a correct answer.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from collector.receivers.radius import codec
from tests.daemon import SECRET, CollectorConfig, connected, running_collector, wait_for

DICTIONARY_PATH = Path(__file__).parent / "data" / "radius" / "dictionary"
MESSAGE_AUTHENTICATOR = 80

CISCO_STOP = """Acct-Status-Type = Stop
Acct-Session-Id = "0000A1B2"
User-Name = "4930123456789"
Calling-Station-Id = "4930123456789"
Called-Station-Id = "442071234567"
Acct-Session-Time = 65
h323-setup-time = "h323-setup-time=12:00:01.250 UTC Mon Nov 30 2026"
h323-connect-time = "h323-connect-time=12:00:05.500 UTC Mon Nov 30 2026"
h323-disconnect-time = "h323-disconnect-time=12:01:10.750 UTC Mon Nov 30 2026"
h323-disconnect-cause = "h323-disconnect-cause=11"
h323-call-origin = "h323-call-origin=originate"
h323-conf-id = "h323-conf-id=1A2B3C4D 5E6F7A8B 9C0D1E2F 3A4B5C6D"
h323-remote-address = "h323-remote-address=198.51.100.7"
Cisco-AVPair = "session-protocol=sipv2"
Event-Timestamp = 1796040071
"""

FREESWITCH_STOP = """Acct-Status-Type = Stop
Acct-Session-Id = "2f6b8c2e-4d1a-4c3e-9a57-0d7e5c1b9f10"
User-Name = "trunk-b"
Freeswitch-Src = "+33612345678"
Freeswitch-Dst = "0015125550123"
Freeswitch-Callstartdate = "2026-11-30T12:10:00.000000+0100"
Freeswitch-Callanswerdate = "2026-11-30T12:10:04.250000+0100"
Freeswitch-Callenddate = "2026-11-30T12:12:34.750000+0100"
Freeswitch-Hangupcause = Normal-Clearing
Freeswitch-Billusec = 150500000
Acct-Session-Time = 150
"""

#: `aaa accounting exec` from the same router: an administrator's shell session
CISCO_EXEC_STOP = """Acct-Status-Type = Stop
Acct-Session-Id = "00000012"
User-Name = "admin"
Calling-Station-Id = "192.0.2.77"
Cisco-AVPair = "task_id=18"
Cisco-AVPair = "service=shell"
Cisco-AVPair = "priv-lvl=15"
Acct-Session-Time = 300
"""

NUMBERS = ("4930123456789", "442071234567", "33612345678", "15125550123")


def radclient_send(
    radclient: str,
    address: tuple[str, int],
    command: str,
    secret: str,
    attributes: str,
    retries: int = 3,
    timeout: float = 3.0,
) -> subprocess.CompletedProcess[str]:
    """Run radclient once; rc 0 means an answer arrived and verified."""
    return subprocess.run(
        [
            radclient,
            "-x",
            "-r",
            str(retries),
            "-t",
            str(timeout),
            f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}",
            command,
            secret,
        ],
        input=attributes,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_unanswered(result: subprocess.CompletedProcess[str]) -> None:
    """radclient got no answer at all.

    Its non-zero exit alone does not say so: an answer signed with another
    secret (a daemon that skipped the authenticator check answers with its own)
    fails radclient's verification and exits non-zero too, after "Reply
    verification failed: Received ...".
    """
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "No reply from server" in output, output
    assert "Received" not in output and "verification failed" not in output, output


#: the Cisco Stop of another call: sent under a wrong secret, it would be a row of its own
OTHER_CISCO_STOP = CISCO_STOP.replace("0000A1B2", "0000A1C9").replace(
    "1A2B3C4D 5E6F7A8B", "1A2B3C4D 5E6F7A8C"
)


async def fetch_rows(dsn: str) -> list[dict[str, object]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT * FROM cdrs ORDER BY call_time")
    return [dict(row) for row in rows]


def assert_no_numbers(values: object) -> None:
    text = repr(values)
    for number in NUMBERS:
        assert number not in text
        assert number[-9:] not in text


#: the packets above carry fixed dates: a retention this long keeps them believable
#: (and kept) whenever the tests run
FIXED_DATES_RETENTION = 36500


async def test_cisco_stop_is_answered_and_stored_redacted(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    collector_config.retention_days = FIXED_DATES_RETENTION
    with running_collector(collector_config) as collector:
        result = radclient_send(radclient, collector.radius_address, "acct", SECRET, CISCO_STOP)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Received Accounting-Response" in result.stdout
        rows = await fetch_rows(dsn)
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "sbc-test"
    assert row["protocol"] == "radius"
    assert row["leg"] == "originate"
    assert row["answered"] is True
    assert row["duration_ms"] == 65250  # connect -> disconnect, to the millisecond
    assert row["disconnect_cause"] == 17  # hex 11
    assert row["called_prefix"] == "+4420"
    assert row["called_country"] == "GB"
    assert row["called_masked"] == "+442071234***"
    assert str(row["called_hmac"]).startswith("t1:")
    assert row["calling_country"] == "DE"
    assert row["clock_unsynced"] is False
    assert row["setup_time"].isoformat() == "2026-11-30T12:00:01.250000+00:00"  # type: ignore[attr-defined]
    assert row["account"] is None  # User-Name was the calling number: not stored
    assert_no_numbers(rows)
    assert "198.51.100.7" not in repr(rows)


async def test_freeswitch_stop_is_answered_and_stored(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    collector_config.retention_days = FIXED_DATES_RETENTION
    with running_collector(collector_config) as collector:
        result = radclient_send(
            radclient, collector.radius_address, "acct", SECRET, FREESWITCH_STOP
        )
        assert result.returncode == 0, result.stdout + result.stderr
        rows = await fetch_rows(dsn)
    assert len(rows) == 1
    row = rows[0]
    assert row["duration_ms"] == 150500  # Billusec agrees with Acct-Session-Time: ms precision
    assert row["disconnect_cause"] == 16
    assert row["account"] == "trunk-b"
    assert row["called_prefix"] == "+1512"
    assert row["called_country"] == "US"
    assert row["calling_country"] == "FR"
    assert row["setup_time"].isoformat() == "2026-11-30T11:10:00+00:00"  # type: ignore[attr-defined]
    assert_no_numbers(rows)


async def test_wrong_secret_gets_no_answer_and_nothing_is_stored(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    with running_collector(collector_config) as collector:
        result = radclient_send(
            radclient,
            collector.radius_address,
            "acct",
            "not-the-secret",
            OTHER_CISCO_STOP,
            retries=1,
            timeout=1,
        )
        assert_unanswered(result)
        assert collector.metric("cdr_collector_packets_total", outcome="bad_authenticator") == 1
        # the daemon keeps serving the right secret
        good = radclient_send(radclient, collector.radius_address, "acct", SECRET, CISCO_STOP)
        assert good.returncode == 0
    # only the right secret's call: the other one, a row of its own, was not stored
    assert len(await fetch_rows(dsn)) == 1


async def test_retransmissions_store_one_row(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    delayed = CISCO_STOP + "Acct-Delay-Time = 7\n"
    with running_collector(collector_config) as collector:
        for attributes in (CISCO_STOP, CISCO_STOP, delayed, delayed + "Acct-Delay-Time = 9\n"):
            result = radclient_send(radclient, collector.radius_address, "acct", SECRET, attributes)
            assert result.returncode == 0, result.stderr
        # the same packet (same Identifier and authenticator) three times within the window
        attrs = CISCO_STOP.replace("0000A1B2", "0000A1B3")
        result = subprocess.run(
            [
                radclient,
                "-c",
                "3",
                "-x",
                f"127.0.0.1:{collector.config.radius_port}",
                "acct",
                SECRET,
            ],
            input=attrs,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 2)
        assert collector.metric("cdr_collector_records_duplicate_total") >= 3
    rows = await fetch_rows(dsn)
    assert len(rows) == 2
    assert len({r["record_key"] for r in rows}) == 2


async def test_unknown_address_gets_no_answer(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    collector_config.client_address = "192.0.2.99"
    with running_collector(collector_config) as collector:
        result = radclient_send(
            radclient, collector.radius_address, "acct", SECRET, CISCO_STOP, retries=1, timeout=1
        )
        assert_unanswered(result)
        assert collector.metric("cdr_collector_packets_total", outcome="unknown_client") == 1
    assert await fetch_rows(dsn) == []


async def test_status_server_is_answered_on_the_accounting_port(
    radclient: str, collector_config: CollectorConfig
) -> None:
    with running_collector(collector_config) as collector:
        result = radclient_send(
            radclient, collector.radius_address, "status", SECRET, "Message-Authenticator = 0x00\n"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Received Accounting-Response" in result.stdout
        bad = radclient_send(
            radclient,
            collector.radius_address,
            "status",
            "wrong",
            "Message-Authenticator = 0x00\n",
            retries=1,
            timeout=1,
        )
        assert_unanswered(bad)
        assert collector.metric("cdr_collector_packets_total", outcome="bad_authenticator") == 1


async def test_malformed_datagrams_are_counted_and_the_daemon_keeps_serving(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    garbage = [
        b"",
        b"\x04",
        b"\x04\x01\x00\x14" + b"\x00" * 10,  # shorter than its header
        b"\x04\x01\x00\x30" + b"\x00" * 16,  # length past the end
        b"\x04\x01\x00\x18" + b"\x00" * 16 + b"\x28\x01\x00\x00",  # attribute length 1
        b"\x04\x01\x10\x01" + b"\x00" * 4200,  # declared length over 4096
        b"\x01\x02\x00\x14" + b"\x00" * 16,  # Access-Request on the accounting port
        b"\xff" * 100,
    ]
    with running_collector(collector_config) as collector:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in garbage:
                sock.sendto(datagram, collector.radius_address)
        await asyncio.sleep(0.3)
        malformed = collector.metric("cdr_collector_packets_total", outcome="malformed")
        unsupported = collector.metric("cdr_collector_packets_total", outcome="unsupported")
        assert malformed >= 5
        assert unsupported >= 1
        result = radclient_send(radclient, collector.radius_address, "acct", SECRET, CISCO_STOP)
        assert result.returncode == 0
        assert collector.process is not None and collector.process.poll() is None
    assert len(await fetch_rows(dsn)) == 1


async def test_cisco_login_accounting_is_answered_and_not_stored(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    with running_collector(collector_config) as collector:
        result = radclient_send(
            radclient, collector.radius_address, "acct", SECRET, CISCO_EXEC_STOP
        )
        # answered, so the router stops resending it
        assert result.returncode == 0, result.stdout + result.stderr
        assert collector.metric("cdr_collector_packets_total", outcome="unsupported") >= 1
        assert collector.metric("cdr_collector_packets_total", outcome="malformed") == 0
        call = radclient_send(radclient, collector.radius_address, "acct", SECRET, CISCO_STOP)
        assert call.returncode == 0, call.stdout + call.stderr
    # the call's row alone: the login session left nothing behind
    rows = await fetch_rows(dsn)
    assert len(rows) == 1
    assert rows[0]["answered"] is True


async def test_proxy_state_is_echoed_in_order_in_the_answer(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    """RFC 2865 5.33: a RADIUS proxy in front matches its answers by Proxy-State."""
    request = (
        FREESWITCH_STOP
        + "Proxy-State = 0x70726f78792d31\n"  # "proxy-1"
        + "Proxy-State = 0x0a0b0c\n"
    )
    with running_collector(collector_config) as collector:
        result = radclient_send(radclient, collector.radius_address, "acct", SECRET, request)
        assert result.returncode == 0, result.stdout + result.stderr
        # sent again (a new request to the daemon, a duplicate to the database): echoed too
        again = radclient_send(radclient, collector.radius_address, "acct", SECRET, request)
        assert again.returncode == 0, again.stdout + again.stderr
        rows = await fetch_rows(dsn)
    assert len(rows) == 1
    for output in (result.stdout, again.stdout):
        answer = output.split("Received Accounting-Response", 1)[1]
        states = [
            line.split("=", 1)[1].strip() for line in answer.splitlines() if "Proxy-State" in line
        ]
        assert states == ["0x70726f78792d31", "0x0a0b0c"], answer


async def test_a_switch_on_ipv6_is_answered_and_stored(
    tmp_path: Path, dsn: str, radclient: str
) -> None:
    config = CollectorConfig(
        directory=tmp_path / "collector", dsn=dsn, radius_host="::1", client_address="::1/128"
    )
    with running_collector(config) as collector:
        result = radclient_send(radclient, collector.radius_address, "acct", SECRET, CISCO_STOP)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Received Accounting-Response" in result.stdout
        wrong = radclient_send(
            radclient,
            collector.radius_address,
            "acct",
            "not-the-secret",
            OTHER_CISCO_STOP,
            retries=1,
            timeout=1,
        )
        assert_unanswered(wrong)
        rows = await fetch_rows(dsn)
    # the wrong secret's call, a row of its own, was not stored
    assert len(rows) == 1 and rows[0]["called_prefix"] == "+4420"


# --- Message-Authenticator: crafted packets (radclient only sends valid ones) ---------


def pyrad_request(code: int, identifier: int, secret: bytes, session: str = "") -> bytes:
    """A request built by pyrad with a Message-Authenticator: a Stop (with `session`)
    or a Status-Server."""
    request = pyrad_packet.AcctPacket(
        code=code, id=identifier, secret=secret, dict=Dictionary(str(DICTIONARY_PATH))
    )
    if code == pyrad_packet.AccountingRequest:
        request["Acct-Status-Type"] = "Stop"
        request["Acct-Session-Id"] = session
        request["Calling-Station-Id"] = "4930123456789"
        request["Called-Station-Id"] = "442071234567"
        request["Acct-Session-Time"] = 42
    request.add_message_authenticator()
    return bytes(request.RequestPacket())


def forge_message_authenticator(raw: bytes, value: bytes) -> bytes:
    """`raw` with its Message-Authenticator attribute's value replaced by `value` (any
    length). An Accounting-Request gets its Request Authenticator recomputed with the
    right secret, so that the Message-Authenticator is the only thing wrong."""
    pos = codec.HEADER_LENGTH
    while raw[pos] != MESSAGE_AUTHENTICATOR:
        pos += raw[pos + 1]
    attributes = (
        raw[codec.HEADER_LENGTH : pos]
        + bytes((MESSAGE_AUTHENTICATOR, len(value) + 2))
        + value
        + raw[pos + raw[pos + 1] :]
    )
    if raw[0] == codec.ACCOUNTING_REQUEST:
        return codec.encode_accounting_request(raw[1], attributes, SECRET.encode())
    length = codec.HEADER_LENGTH + len(attributes)
    return raw[:2] + length.to_bytes(2, "big") + raw[4:20] + attributes


def answers_after(
    address: tuple[str, int], refused: list[bytes], valid: bytes
) -> tuple[bytes, list[bytes]]:
    """Send each refused packet, then the valid one, from one socket; return the first
    answer and whatever else arrived before it was read.

    The daemon takes one socket's datagrams in order and answers a request
    only after those before it were handled (an answer to an earlier one would
    be sent first): so once the valid request's answer is here, an answer to
    any refused one would be here too.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        for datagram in [*refused, valid]:
            sock.sendto(datagram, address)
        first = sock.recv(4096)
        sock.setblocking(False)
        rest = []
        while True:
            try:
                rest.append(sock.recv(4096))
            except BlockingIOError:
                return first, rest


async def test_accounting_with_a_wrong_message_authenticator_gets_no_answer_and_is_not_stored(
    radclient: str, collector_config: CollectorConfig, dsn: str
) -> None:
    """RFC 5080 2.2.2: a Message-Authenticator on an Accounting-Request is optional, but
    one that is present must verify (computed with the Request Authenticator zeroed);
    a request that fails is dropped silently, whatever its Request Authenticator."""
    secret = SECRET.encode()
    valid = pyrad_request(pyrad_packet.AccountingRequest, 30, secret, "ma-valid")
    refused = [
        forge_message_authenticator(
            pyrad_request(pyrad_packet.AccountingRequest, 31, secret, "ma-zeros"), bytes(16)
        ),
        # the right secret, but computed over the Request Authenticator as sent
        forge_message_authenticator(
            pyrad_request(pyrad_packet.AccountingRequest, 32, secret, "ma-other"),
            bytes(range(16)),
        ),
        forge_message_authenticator(
            pyrad_request(pyrad_packet.AccountingRequest, 33, secret, "ma-short"), bytes(8)
        ),
        pyrad_request(pyrad_packet.AccountingRequest, 34, b"not-the-secret", "ma-secret"),
    ]
    for packet in refused[:3]:  # only the Message-Authenticator is wrong
        assert codec.accounting_request_ok(codec.decode(packet), secret)
    with running_collector(collector_config) as collector:
        # radclient computes a Message-Authenticator for accounting when asked to
        signed = radclient_send(
            radclient,
            collector.radius_address,
            "acct",
            SECRET,
            CISCO_STOP + "Message-Authenticator = 0x00\n",
        )
        assert signed.returncode == 0, signed.stdout + signed.stderr
        first, rest = answers_after(collector.radius_address, refused, valid)
        assert first[0] == codec.ACCOUNTING_RESPONSE and first[1] == 30
        assert codec.response_ok(first, valid[4:20], secret)
        assert rest == []
        assert collector.metric("cdr_collector_packets_total", outcome="bad_authenticator") == 4
        assert collector.metric("cdr_collector_packets_total", outcome="accepted") == 2
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") == 2)
    assert len(await fetch_rows(dsn)) == 2


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda raw: forge_message_authenticator(raw, bytes(16)), id="zeros"),
        pytest.param(lambda raw: forge_message_authenticator(raw, bytes(range(16))), id="wrong"),
        pytest.param(lambda raw: forge_message_authenticator(raw, bytes(8)), id="short"),
        pytest.param(lambda raw: raw[:2] + (20).to_bytes(2, "big") + raw[4:20], id="absent"),
    ],
)
async def test_status_server_without_a_valid_message_authenticator_gets_no_answer(
    collector_config: CollectorConfig, forge: Any
) -> None:
    """RFC 5997 3: a Status-Server must carry a valid Message-Authenticator; one that
    does not is dropped silently (its Request Authenticator is random, so nothing else
    proves it came from a client that knows the secret)."""
    secret = SECRET.encode()
    valid = pyrad_request(pyrad_packet.StatusServer, 40, secret)
    refused = [
        forge(pyrad_request(pyrad_packet.StatusServer, 41, secret)),
        pyrad_request(pyrad_packet.StatusServer, 42, b"not-the-secret"),
    ]
    with running_collector(collector_config) as collector:
        first, rest = answers_after(collector.radius_address, refused, valid)
        assert first[0] == codec.ACCOUNTING_RESPONSE and first[1] == 40
        assert codec.response_ok(first, valid[4:20], secret)
        assert rest == []
        assert collector.metric("cdr_collector_packets_total", outcome="bad_authenticator") == 2
