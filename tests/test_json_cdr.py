"""JSON CDRs over HTTP end to end: mod_json_cdr-shaped posts -> the daemon -> PostgreSQL.

The test plays FreeSWITCH's mod_json_cdr: it posts the documents under
tests/data/json/ (modelled on real output, numbers and addresses replaced by
ranges kept for fiction) in each of the module's encodings, and checks that a
200 comes only once the row is committed, that a repost is one row, that bad
documents get a 400 naming the field (and never echoing a value), and that
the endpoint's protections (allowed networks, basic auth, body limit) and
durability (503 when nothing can be stored) hold.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector.config import PrivacyConfig
from collector.formats.keys import write_private
from collector.pipeline.billing import settle
from collector.pipeline.redact import Redactor
from collector.receivers.json_body import decode_body
from collector.vendors.freeswitch.json_cdr import JsonCdrError, json_record
from tests.conftest import require_program
from tests.daemon import (
    Collector,
    CollectorConfig,
    connected,
    free_port,
    running_collector,
    wait_for,
)

SOURCE = "fs-test"
USER, PASSWORD = "freeswitch", "json-cdr-pass"
ANSWERED_UUID = "9b1f3a52-6c2d-4e8f-a0b7-3d5e7f9a1c24"
BUSY_UUID = "c7d2e913-0a4b-4f6e-8c1d-2b3a4f5e6d70"
NUMBERS = ("493012345678", "442079460123", "33612345678", "442079460777")
ADDRESSES = ("198.51.100.7", "192.0.2.40", "203.0.113.9")
PACKETS = "cdr_collector_packets_total"


def json_section(
    port: int,
    *,
    allowed: str = "127.0.0.0/8",
    auth: bool = False,
    max_body_bytes: int = 1048576,
    timeouts_ms: tuple[int, int] | None = None,
) -> str:
    text = (
        f'[json]\nlisten = "127.0.0.1:{port}"\nallowed = ["{allowed}"]\n'
        f'source = "{SOURCE}"\nmax_body_bytes = {max_body_bytes}\n'
    )
    if timeouts_ms is not None:
        text += f"header_timeout_ms = {timeouts_ms[0]}\nbody_timeout_ms = {timeouts_ms[1]}\n"
    if auth:
        text += 'basic_auth_file = "json.passwd"\n'
    return text


def json_config(directory: Path, dsn: str, **options: Any) -> CollectorConfig:
    """A daemon with [radius] (as the harness writes it) and [json] on a free port."""
    port = free_port(socket.SOCK_STREAM)
    directory.mkdir(parents=True, exist_ok=True)
    write_private(directory / "json.passwd", f"# user:password\n{USER}:{PASSWORD}\n")
    return CollectorConfig(
        directory=directory,
        dsn=dsn,
        json_port=port,
        extra=json_section(port, **options),
        # the documents in tests/data carry fixed dates: a retention this long keeps
        # them believable (and kept) whenever the tests run
        retention_days=36500,
    )


def url(config: CollectorConfig, uuid: str | None = None) -> str:
    # mod_json_cdr appends ?uuid=<uuid> to the configured URL
    suffix = f"?uuid={uuid}" if uuid else ""
    return f"http://127.0.0.1:{config.json_port}/cdr{suffix}"


#: what switch_url_encode (switch_utils.c) escapes besides bytes outside 0x20-0x7e
FS_URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_HEX = b"0123456789ABCDEF"


def fs_url_encode(data: bytes) -> bytes:
    """switch_url_encode: `%XX` upper-case, and a `%` already followed by two
    upper-case hex digits is left alone (it does not encode twice)."""
    out = bytearray()
    for at, byte in enumerate(data):
        if byte == 0x25 and len(data) - at > 2 and data[at + 1] in _HEX and data[at + 2] in _HEX:
            out.append(byte)
        elif byte < 0x20 or byte > 0x7E or byte in FS_URL_UNSAFE:
            out += b"%" + _HEX[byte >> 4 : (byte >> 4) + 1] + _HEX[byte & 15 : (byte & 15) + 1]
        else:
            out.append(byte)
    return bytes(out)


def form_urlencoded(document: str) -> bytes:
    """The body mod_json_cdr posts with `encode = true`: cdr= and the JSON through
    switch_url_encode (so a value already URL-encoded by `encode-values` keeps its %XX)."""
    return b"cdr=" + fs_url_encode(document.encode())


def form_base64(document: str) -> bytes:
    """The body mod_json_cdr posts with `encode = base64`."""
    return b"cdr=" + base64.b64encode(document.encode())


async def post(
    session: aiohttp.ClientSession,
    target: str,
    body: bytes,
    content_type: str = "application/json",
    auth: tuple[str, str] | None = None,
) -> tuple[int, str, dict[str, str]]:
    headers = {"Content-Type": content_type}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    async with session.post(target, data=body, headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


async def json_rows(dsn: str) -> list[dict[str, Any]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT * FROM cdrs WHERE protocol = 'json' ORDER BY call_time")
    return [dict(row) for row in rows]


def packets(collector: Collector, outcome: str, source: str = SOURCE) -> float:
    return collector.metric(PACKETS, listener="json", source=source, outcome=outcome)


def assert_nothing_identifying(text: str) -> None:
    for number in NUMBERS:
        assert number not in text
        assert number[-9:] not in text
    for address in ADDRESSES:
        assert address not in text
    assert "sip:" not in text
    assert "Alice" not in text


#: the headers mod_json_cdr sets with `encode = true` (curl adds Expect for a large body)
FORM_HEADERS = ("Content-Type: application/x-www-form-urlencoded", "Expect: 100-continue")
#: with `disable-100-continue` mod_json_cdr replaces its header list with this one
#: alone: the Content-Type it set is gone, and curl labels the body form-urlencoded
NO_CONTINUE_HEADERS = ("Expect:",)


def curl_post(
    curl: str,
    target: str,
    body_path: Path,
    headers: tuple[str, ...] = FORM_HEADERS,
    options: tuple[str, ...] = (),
) -> tuple[int, str]:
    """POST as mod_json_cdr does through libcurl (`encode = true`); (status, body)."""
    header_options = [option for header in headers for option in ("-H", header)]
    header_options += options
    result = subprocess.run(
        [
            curl,
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            *header_options,
            "-A",
            "freeswitch-json/1.0",
            "--data-binary",
            f"@{body_path}",
            target,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    text, _, status = result.stdout.rpartition("\n")
    return int(status), text


async def test_posts_are_stored_before_the_answer_and_once(
    tmp_path: Path, dsn: str, data_dir: Path
) -> None:
    """Each encoding mod_json_cdr uses; 200 only once the row is there; a repost is one row."""
    curl = require_program("curl")
    config = json_config(tmp_path / "collector", dsn)
    answered = (data_dir / "json" / "answered_a_leg_encoded.json").read_text()
    busy = (data_dir / "json" / "busy_b_leg.json").read_text()
    form = tmp_path / "answered.form"
    form.write_bytes(form_urlencoded(answered))
    with running_collector(config) as collector:
        # First through curl, the HTTP client mod_json_cdr is built on.
        status, text = curl_post(curl, url(config, ANSWERED_UUID), form)
        assert (status, json.loads(text)) == (200, {"status": "stored"})
        assert len(await json_rows(dsn)) == 1  # committed before the 200 went out
        async with aiohttp.ClientSession() as session:
            status, _, _ = await post(session, url(config, BUSY_UUID), busy.encode())
            assert status == 200
            assert len(await json_rows(dsn)) == 2

            # Reposts (the switch retrying after a lost answer), in the other encodings.
            status, _, _ = await post(session, url(config), answered.encode())
            assert status == 200
            status, _, _ = await post(
                session, url(config), form_base64(busy), "application/x-www-form-base64-encoded"
            )
            assert status == 200
        assert packets(collector, "accepted") == 4
        await wait_for(lambda: collector.metric("cdr_collector_records_duplicate_total") == 2)
        log_text = collector.log_text()

    rows = await json_rows(dsn)
    assert len(rows) == 2
    answered_row, busy_row = rows
    assert answered_row["source"] == busy_row["source"] == SOURCE
    assert answered_row["leg"] == "inbound"
    assert answered_row["answered"] is True
    assert answered_row["duration_ms"] == 62920  # billmsec
    assert answered_row["disconnect_cause"] == 16
    assert answered_row["sip_code"] == 200
    assert answered_row["pdd_ms"] == 120
    assert answered_row["account"] == "trunk-a"
    assert answered_row["setup_time"].isoformat() == "2026-11-30T12:00:00.385581+00:00"
    assert answered_row["connect_time"].isoformat() == "2026-11-30T12:00:02.285587+00:00"
    assert answered_row["disconnect_time"].isoformat() == "2026-11-30T12:01:05.205563+00:00"
    # the number first dialled (callflow profile 1), not the transfer target's route name
    assert answered_row["called_prefix"] == "+4420"
    assert answered_row["called_masked"] == "+442079460***"
    assert answered_row["called_country"] == "GB"
    assert answered_row["calling_country"] == "DE"  # URL-decoded %2B49...

    assert busy_row["leg"] == "outbound"
    assert busy_row["answered"] is False
    assert busy_row["duration_ms"] == 0
    assert busy_row["disconnect_cause"] == 17
    assert busy_row["sip_code"] == 486
    assert busy_row["connect_time"] is None
    assert busy_row["called_masked"] == "+442079460***"  # 00 44 ... normalized
    assert busy_row["calling_country"] == "FR"
    assert_nothing_identifying(repr(rows))
    assert_nothing_identifying(log_text)


async def test_bad_posts_get_a_reason_and_nothing_is_stored(tmp_path: Path, dsn: str) -> None:
    """400 names the field and never echoes a value; 413 past max_body_bytes; 405 for GET."""
    config = json_config(tmp_path / "collector", dsn, max_body_bytes=2048)
    number = "+442079460123"
    cases: list[tuple[bytes, str, str]] = [
        (b"{not json", "application/json", "the body is not valid JSON"),
        (b"[" * 2000, "text/plain", "the body is not valid JSON"),  # nesting past any limit
        (b"[]", "application/json", "the document is not a JSON object"),
        (b'{"variables": "x"}', "application/json", "variables is missing or not an object"),
        (
            json.dumps({"variables": {"destination_number": number}}).encode(),
            "application/json",
            "variables.uuid is missing",
        ),
        (
            json.dumps({"variables": {"uuid": ["a"], "caller_id_number": number}}).encode(),
            "application/json",
            "variables.uuid is missing",
        ),
        (
            json.dumps(
                {"variables": {"uuid": "u-1", "billsec": "12" + number, "sip_req_user": number}}
            ).encode(),
            "application/json",
            "variables.billsec is not a whole number",
        ),
        (
            json.dumps({"variables": {"uuid": "u-2", "start_epoch": {"x": number}}}).encode(),
            "application/json",
            "variables.start_epoch has the wrong type",
        ),
        (
            json.dumps({"variables": {"uuid": "u-3", "end_uepoch": "9" * 19}}).encode(),
            "application/json",
            "variables.end_uepoch is out of range",
        ),
        (b"other=1", "application/x-www-form-urlencoded", "no cdr form field"),
        (b"cdr=@@@not-base64", "application/x-www-form-base64-encoded", "cdr is not valid base64"),
    ]
    with running_collector(config) as collector:
        async with aiohttp.ClientSession() as session:
            for body, content_type, reason in cases:
                status, text, _ = await post(session, url(config), body, content_type)
                assert (status, text) == (400, f"bad CDR: {reason}\n"), body[:60]
                assert "4420" not in text
            status, text, _ = await post(
                session, url(config), b'{"variables": {"uuid": "' + b"x" * 4096 + b'"}}'
            )
            assert (status, text) == (413, "request body too large\n")
            async with session.get(url(config)) as response:
                assert response.status == 405
        assert packets(collector, "malformed") == len(cases) + 1
        assert packets(collector, "accepted") == 0
        log_text = collector.log_text()
    assert await json_rows(dsn) == []
    assert "4420" not in log_text
    assert "Traceback" not in log_text


async def test_basic_auth_and_allowed_networks(tmp_path: Path, dsn: str, data_dir: Path) -> None:
    """401 with a challenge without valid credentials; once 127.0.0.1 is no longer allowed,
    a new connection from it is refused and one opened before the reload gets 403."""
    directory = tmp_path / "collector"
    config = json_config(directory, dsn, auth=True)
    assert config.json_port is not None
    busy = (data_dir / "json" / "busy_b_leg.json").read_bytes()
    with running_collector(config) as collector:
        async with aiohttp.ClientSession() as session:
            status, _, headers = await post(session, url(config), busy)
            assert status == 401
            assert headers["WWW-Authenticate"] == 'Basic realm="cdr-collector"'
            status, _, _ = await post(session, url(config), busy, auth=(USER, "wrong"))
            assert status == 401
            status, _, _ = await post(session, url(config), busy, auth=(USER, PASSWORD))
            assert status == 200
            assert len(await json_rows(dsn)) == 1

            # Only 10.0.0.0/8 may post now (SIGHUP): the loopback is refused before auth.
            config.extra = json_section(config.json_port, allowed="10.0.0.0/8", auth=True)
            config.render()
            collector.signal(signal.SIGHUP)
            await wait_for(
                lambda: collector.metric("cdr_collector_config_reloads_total", result="ok") == 1
            )
            # the session's connection, opened before the reload
            status, text, _ = await post(session, url(config), busy, auth=(USER, PASSWORD))
            assert (status, text) == (403, "forbidden\n")
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(fresh, url(config), busy, auth=(USER, PASSWORD))
        assert packets(collector, "bad_authenticator") == 2
        assert packets(collector, "unknown_client", source="unknown") == 2
        assert packets(collector, "accepted") == 1
        assert PASSWORD not in collector.log_text()
    assert len(await json_rows(dsn)) == 1


async def test_unreachable_database_without_spool_answers_503(
    tmp_path: Path, data_dir: Path
) -> None:
    """Nowhere durable to put the record: 503 with Retry-After, so the switch posts again."""
    closed = free_port(socket.SOCK_STREAM)
    config = json_config(
        tmp_path / "collector", f"postgresql://root@127.0.0.1:{closed}/cdr", max_body_bytes=1048576
    )
    config.spool = False
    config.connect_timeout_ms = 300
    busy = (data_dir / "json" / "busy_b_leg.json").read_bytes()
    with running_collector(config) as collector:
        async with aiohttp.ClientSession() as session:
            status, text, headers = await post(session, url(config), busy)
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert "not stored" in text
        assert packets(collector, "not_durable") == 1
        assert packets(collector, "accepted") == 0


# --- what mod_json_cdr really puts on the wire ------------------------------


def b_leg_of(a_uuid: str, busy: str, *, with_variables: bool = True) -> dict[str, Any]:
    """The busy fixture as the B-leg of the call whose A-leg is `a_uuid`."""
    document: dict[str, Any] = json.loads(busy)
    variables = document["variables"]
    variables["originator"] = variables["originating_leg_uuid"] = a_uuid
    variables["call_uuid"] = a_uuid  # FreeSWITCH gives the B-leg the A-leg's call_uuid
    profile = document["callflow"][0]["caller_profile"]
    profile["originator"]["originator_caller_profiles"][0]["uuid"] = a_uuid
    profile["network_addr"] = ADDRESSES[2]
    if not with_variables:
        del document["variables"]
    return document


async def test_disable_100_continue_leaves_every_body_labelled_form_urlencoded(
    tmp_path: Path, dsn: str, data_dir: Path
) -> None:
    """`disable-100-continue` drops mod_json_cdr's Content-Type: base64 and plain JSON
    bodies then arrive as application/x-www-form-urlencoded, and are still read."""
    curl = require_program("curl")
    config = json_config(tmp_path / "collector", dsn)
    answered = (data_dir / "json" / "answered_a_leg_encoded.json").read_text()
    busy = (data_dir / "json" / "busy_b_leg.json").read_text()
    # a user agent whose base64 holds `+` and `/`, which form decoding would spoil
    busy = busy.replace('"digits_dialed": "none"', '"sip_user_agent": "UA>>>/1.0???"')
    base64_body = tmp_path / "busy.b64"
    base64_body.write_bytes(form_base64(busy))
    assert b"+" in base64_body.read_bytes()
    plain = tmp_path / "answered.json"
    plain.write_text(answered)
    with running_collector(config) as collector:
        status, text = curl_post(curl, url(config, BUSY_UUID), base64_body, NO_CONTINUE_HEADERS)
        assert (status, text) == (200, '{"status": "stored"}')
        status, text = curl_post(curl, url(config, ANSWERED_UUID), plain, NO_CONTINUE_HEADERS)
        assert (status, text) == (200, '{"status": "stored"}')
        assert packets(collector, "accepted") == 2
        log_text = collector.log_text()
    rows = await json_rows(dsn)
    assert [row["duration_ms"] for row in rows] == [62920, 0]
    assert [row["calling_country"] for row in rows] == ["DE", "FR"]
    assert_nothing_identifying(log_text)


class RawHttp:
    """One HTTP/1.1 connection driven by hand, to see every byte of the exchange."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, target: str, length: int, *headers: str) -> None:
        lines = [
            f"POST {target} HTTP/1.1",
            "Host: 127.0.0.1",
            "User-Agent: freeswitch-json/1.0",
            "Accept: */*",
            f"Content-Length: {length}",
            *headers,
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), "connection closed before a response"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed inside a response"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_peer(self) -> bool:
        return not self.buffer and not self._fill()


def basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_expect_100_continue_and_keep_alive(tmp_path: Path, dsn: str, data_dir: Path) -> None:
    """curl's `Expect: 100-continue` gets 100 Continue before the body, or the refusal
    itself (the body is then never sent); several posts share one connection."""
    config = json_config(tmp_path / "collector", dsn, auth=True, max_body_bytes=65536)
    assert config.json_port is not None
    answered = form_urlencoded((data_dir / "json" / "answered_a_leg_encoded.json").read_text())
    busy = (data_dir / "json" / "busy_b_leg.json").read_bytes()
    form = "Content-Type: application/x-www-form-urlencoded"
    good, bad = basic(USER, PASSWORD), basic(USER, "wrong")
    target = f"/cdr?uuid={ANSWERED_UUID}"
    body_path = tmp_path / "answered.form"
    body_path.write_bytes(answered)
    with running_collector(config) as collector:
        http = RawHttp(config.json_port)
        try:
            # the body goes only once the server said 100 Continue
            http.head(target, len(answered), good, form, "Expect: 100-continue")
            status, _, _ = http.response()
            assert status == 100
            http.send(answered)
            status, headers, body = http.response()
            assert (status, json.loads(body)) == (200, {"status": "stored"})
            assert headers.get("connection", "keep-alive").lower() != "close"
            # the same connection: another leg, a refused post, then a repost
            http.head(f"/cdr?uuid={BUSY_UUID}", len(busy), good, "Content-Type: application/json")
            http.send(busy)
            assert http.response()[0] == 200
            http.head(target, len(answered), bad, form)
            http.send(answered)
            assert http.response()[0] == 401
            http.head(target, len(answered), good, form)
            http.send(answered)
            assert http.response()[0] == 200
        finally:
            http.close()
        assert len(await json_rows(dsn)) == 2

        # refused on its headers: the final answer instead of 100 Continue, then close
        for credentials, length, expected in ((bad, len(answered), 401), (good, 70000, 413)):
            http = RawHttp(config.json_port)
            try:
                http.head(target, length, credentials, form, "Expect: 100-continue")
                status, headers, _ = http.response()
                assert status == expected
                assert headers["connection"].lower() == "close"
                assert http.closed_by_peer()
            finally:
                http.close()
        # curl with `auth-scheme = any` asks without credentials first, then with them
        status, text = curl_post(
            require_program("curl"),
            url(config, ANSWERED_UUID),
            body_path,
            options=("--anyauth", "-u", f"{USER}:{PASSWORD}"),
        )
        assert (status, text) == (200, '{"status": "stored"}')
        assert packets(collector, "accepted") == 4
        assert packets(collector, "bad_authenticator") == 3
        log_text = collector.log_text()
    assert_nothing_identifying(log_text)


async def test_a_leg_and_b_leg_are_two_records_joined_by_a_pseudonymous_correlation(
    tmp_path: Path, dsn: str, data_dir: Path
) -> None:
    """log-b-leg: each leg posts its own CDR (own uuid, same call_uuid); each is one row,
    both carry the keyed hash of the A-leg's uuid. The B-leg here has no `variables`:
    its caller profile and times stand in."""
    config = json_config(tmp_path / "collector", dsn)
    answered = (data_dir / "json" / "answered_a_leg_encoded.json").read_text()
    b_leg = json.dumps(
        b_leg_of(
            ANSWERED_UUID, (data_dir / "json" / "busy_b_leg.json").read_text(), with_variables=False
        )
    )
    with running_collector(config) as collector:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):  # the second round: reposts
                status, _, _ = await post(session, url(config, ANSWERED_UUID), answered.encode())
                assert status == 200
                status, _, _ = await post(session, url(config, BUSY_UUID), b_leg.encode())
                assert status == 200
        log_text = collector.log_text()
    rows = await json_rows(dsn)
    assert len(rows) == 2
    a_row, b_row = rows
    assert (a_row["leg"], b_row["leg"]) == ("inbound", "outbound")
    assert a_row["correlation"] is not None
    assert a_row["correlation"] == b_row["correlation"]
    assert b_row["setup_time"].isoformat() == "2026-11-30T12:05:10.112233+00:00"
    assert b_row["disconnect_time"].isoformat() == "2026-11-30T12:05:11.004455+00:00"
    assert b_row["connect_time"] is None
    assert (b_row["answered"], b_row["duration_ms"]) == (False, 0)
    assert b_row["called_masked"] == "+442079460***"
    assert b_row["calling_country"] == "FR"
    for uuid in (ANSWERED_UUID, BUSY_UUID):
        assert uuid not in repr(rows)
        assert uuid not in log_text
    assert_nothing_identifying(repr(rows))
    assert_nothing_identifying(log_text)


# --- reading documents ------------------------------------------------------

RECEIVED = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)


def encode_values(variables: dict[str, str]) -> dict[str, str]:
    """`encode-values = true` (the default): each variable value through switch_url_encode."""
    return {name: fs_url_encode(value.encode()).decode() for name, value in variables.items()}


def test_url_encoded_body_with_encoded_values_is_read_back() -> None:
    """Once `encode = true` is undone, values URL-encoded by `encode-values` hold bare
    quotes, backslashes and line breaks: the document is still read, values intact."""
    raw = {
        "uuid": ANSWERED_UUID,
        "sip_full_from": '"Alice" <sip:+493012345678@pbx.example.org>;tag=9f',
        "caller_id": '"Alice, Example" <+493012345678>',
        "quoted": '"only quotes"',
        "windows_path": "C:\\dir\\x.wav",
        "switch_r_sdp": "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\n",
        "percent": "100%",
        "display": "Zo\u00eb",
    }
    profile = {"caller_id_name": 'Bob "the" Builder', "destination_number": "+442079460123"}
    document = {"variables": encode_values(raw), "callflow": [{"caller_profile": profile}]}
    body = form_urlencoded(json.dumps(document, ensure_ascii=False))
    decoded = decode_body(body, "application/x-www-form-urlencoded")
    assert decoded["variables"] == raw
    assert decoded["callflow"][0]["caller_profile"] == profile


def test_body_shape_decides_the_encoding() -> None:
    """Plain JSON, base64 (with `+`, `/`, `=`) and form bodies, whatever the Content-Type."""
    document = {"variables": {"uuid": BUSY_UUID, "note": "\u00ff\u00fe>>>???"}}
    text = json.dumps(document)
    encoded = form_base64(text)
    assert b"+" in encoded and b"/" in encoded
    for content_type in (
        "application/x-www-form-urlencoded",
        "application/x-www-form-base64-encoded",
        "application/json",
        "application/octet-stream",
    ):
        assert decode_body(text.encode(), content_type) == document
        assert decode_body(encoded, content_type) == document
        assert decode_body(form_urlencoded(text), content_type) == document
    # a Latin-1 display name (raw JSON, `encode-values = false`) does not lose the call
    latin1 = b'{"variables": {"uuid": "u-1", "caller_id_name": "Zo\xeb"}}'
    assert decode_body(latin1, "application/json")["variables"]["uuid"] == "u-1"


def test_repeated_callflow_keys_are_all_read() -> None:
    """Older mod_json_cdr writes `callflow` once per profile: the numbers come from the
    first profile, the times from the last one."""
    text = (
        '{"variables": {"uuid": "u-1"},'
        ' "callflow": {"profile_index": "2", "caller_profile": {"destination_number": "route-x"},'
        ' "times": {"created_time": "1796040000385581", "answered_time": "1796040002285587",'
        ' "hangup_time": "1796040065205563"}},'
        ' "callflow": {"profile_index": "1", "caller_profile": {"destination_number":'
        ' "+442079460123", "caller_id_number": "+493012345678"},'
        ' "times": {"created_time": "1796040000385581", "answered_time": "0",'
        ' "hangup_time": "0", "transfer_time": "1796040000385581"}}}'
    )
    document = decode_body(text.encode(), "application/json")
    assert [flow["profile_index"] for flow in document["callflow"]] == ["2", "1"]
    record = settle(json_record(document, SOURCE, RECEIVED))
    assert (record.called, record.calling) == ("+442079460123", "+493012345678")
    assert record.setup_stamp == "1796040000385581"
    assert record.duration_ms == 62920
    assert record.answered is True
    assert record.pdd_ms == 1900
    assert record.times_derived is False


def test_document_without_variables_uses_the_caller_profile() -> None:
    """No `variables`: the uuid, numbers and times of the current caller profile."""
    document = {
        "channel_data": {"direction": "inbound"},
        "callflow": [
            {
                "profile_index": "1",
                "caller_profile": {
                    "caller_id_number": "004930123456",
                    "destination_number": "sip:+442079460123@carrier.example.net;user=phone",
                    "network_addr": ADDRESSES[0],
                    "uuid": ANSWERED_UUID,
                },
                "times": {
                    "created_time": "1796040000000000",
                    "progress_time": "1796040000250000",
                    "answered_time": "1796040001000000",
                    "hangup_time": "1796040031500000",
                },
            }
        ],
    }
    record = settle(json_record(document, SOURCE, RECEIVED))
    assert record.session_id == ANSWERED_UUID
    assert record.setup_stamp == "1796040000000000"
    assert record.leg == "inbound"
    assert (record.calling, record.called) == ("004930123456", "+442079460123")
    assert record.duration_ms == 30500
    assert record.pdd_ms == 250
    assert record.event_time.isoformat() == "2026-11-30T12:00:31.500000+00:00"
    assert record.correlation == ANSWERED_UUID
    del document["callflow"]
    with pytest.raises(JsonCdrError, match=r"^variables is missing or not an object$"):
        json_record(document, SOURCE, RECEIVED)


def test_numbers_as_sip_and_tel_uris() -> None:
    """A number given as a SIP or tel URI (percent-encoded or not) is still the number."""
    document = {
        "variables": {
            "uuid": "u-1",
            "effective_caller_id_number": "sip%3A%2B493012345678%40pbx.example.org",
            "sip_req_user": "alice",
            "sip_to_user": "tel:+442079460123",
        }
    }
    record = json_record(document, SOURCE, RECEIVED)
    assert (record.calling, record.called) == ("+493012345678", "+442079460123")


@pytest.mark.parametrize(
    "written",
    [
        "030/1234567",
        "030_1234567",
        "+49 (0)30 1234567",
        "\uff10\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
    ],
)
def test_numbers_written_with_any_separator_or_digits_are_numbers(written: str) -> None:
    """What the RADIUS and SIP paths read as a number, the JSON path reads as one too,
    rather than passing over it to another variable (a SIP user name) or none."""
    document = {
        "variables": {
            "uuid": "u-1",
            "caller_id_number": written,
            "destination_number": written,
            "sip_to_user": "alice",
        }
    }
    record = json_record(document, SOURCE, RECEIVED)
    assert record.called is not None and record.calling is not None
    redactor = Redactor(
        PrivacyConfig(keys=(("k1", b"K" * 32),), record_secret=b"R" * 32, default_region="DE")
    )
    stored = redactor.redact(record, RECEIVED)
    assert stored.called_hmac in redactor.number_pseudonyms("+49301234567")
    assert stored.calling_hmac == stored.called_hmac
    assert stored.called_masked == "+49301234***"


def test_a_destination_that_is_no_number_reaches_the_redactor_as_sent() -> None:
    """No variable holds a number: the destination as sent, which the redactor refuses
    (and counts) instead of a record that looks as if nothing was dialled."""
    document = {"variables": {"uuid": "u-1", "destination_number": "1bdaa608131517540001"}}
    record = json_record(document, SOURCE, RECEIVED)
    assert record.called == "1bdaa608131517540001"
    refused: list[tuple[str, str, str]] = []
    redactor = Redactor(
        PrivacyConfig(keys=(("k1", b"K" * 32),), record_secret=b"R" * 32),
        lambda *report: refused.append(report),
    )
    stored = redactor.redact(record, RECEIVED)
    assert (stored.called_masked, stored.called_hmac, stored.called_prefix) == (None, None, None)
    assert refused == [(SOURCE, "called", "not_a_number")]


def test_b_leg_correlates_to_its_a_leg(data_dir: Path) -> None:
    """An A-leg correlates under its own uuid, a B-leg under its originator's, found in
    `originating_leg_uuid`/`originator` or the caller profile's originator."""
    busy = (data_dir / "json" / "busy_b_leg.json").read_text()
    answered = decode_body(
        (data_dir / "json" / "answered_a_leg_encoded.json").read_bytes(), "application/json"
    )
    assert json_record(answered, SOURCE, RECEIVED).correlation == ANSWERED_UUID
    for with_variables in (True, False):
        b_leg = b_leg_of(ANSWERED_UUID, busy, with_variables=with_variables)
        record = json_record(b_leg, SOURCE, RECEIVED)
        assert (record.session_id, record.correlation) == (BUSY_UUID, ANSWERED_UUID)


@pytest.mark.parametrize(
    ("variables", "cause", "sip_code", "answered"),
    [
        # the name decides over hangup_cause_q850 (16 for every cause of FreeSWITCH's own)
        ({"hangup_cause": "LOSE_RACE", "hangup_cause_q850": "16"}, 16, 487, False),
        ({"hangup_cause": "GATEWAY_DOWN", "hangup_cause_q850": "16"}, None, None, False),
        ({"hangup_cause": "BUSY_EVERYWHERE", "hangup_cause_q850": "16"}, 17, None, False),
        ({"hangup_cause": "user_busy", "hangup_cause_q850": "21"}, 17, None, False),
        # a name the table lacks: the number FreeSWITCH held, read back from the Q.850 value
        ({"hangup_cause": "UNKNOWN", "hangup_cause_q850": "26"}, 26, None, None),
        ({"hangup_cause": "SOME_NEWER_CAUSE", "hangup_cause_q850": "16"}, None, None, None),
        ({"hangup_cause_q850": "17"}, 17, None, False),
        # the document's own SIP status decides over the cause's
        ({"hangup_cause": "ORIGINATOR_CANCEL", "sip_term_status": "487"}, 16, 487, False),
        ({"hangup_cause": "PICKED_OFF", "sip_term_status": "480"}, 16, 480, False),
        ({"hangup_cause": "USER_BUSY", "sip_term_status": "486"}, 17, 486, False),
        # an answer shown by the document decides over the cause
        (
            {"hangup_cause": "LOSE_RACE", "billsec": "3", "answer_epoch": "1796040001"},
            16,
            None,
            True,
        ),
        ({"hangup_cause": "LOSE_RACE", "billsec": "0", "answer_epoch": "0"}, 16, 487, False),
        # nothing shown either way: the cause says what it can
        ({"hangup_cause": "NORMAL_CLEARING"}, 16, None, None),
    ],
)
def test_hangup_cause_sip_status_and_answer_as_freeswitch_rules_say(
    variables: dict[str, str], cause: int | None, sip_code: int | None, answered: bool | None
) -> None:
    """What a JSON CDR carries of its own and what the FreeSWITCH rules supply (see
    collector.vendors.freeswitch): the same rules the RADIUS profile applies."""
    record = settle(json_record({"variables": {"uuid": "u-1", **variables}}, SOURCE, RECEIVED))
    assert (record.disconnect_cause, record.sip_code, record.answered) == (
        cause,
        sip_code,
        answered,
    )
    assert record.duration_ms == (3000 if answered else 0 if answered is False else None)


# --- hostile peers: refused at connection, slow ones timed out, bad HTTP counted ------


async def closed_by_peer(reader: asyncio.StreamReader) -> bytes:
    """Everything the daemon sends until it closes the connection (FIN or reset);
    fails when it keeps the connection open."""
    received = b""
    try:
        while data := await asyncio.wait_for(reader.read(65536), 20.0):
            received += data
    except ConnectionResetError:
        pass
    return received


async def test_a_peer_outside_allowed_is_refused_before_anything_is_read(
    tmp_path: Path, dsn: str, data_dir: Path
) -> None:
    """Connections from an address outside `allowed` are closed as they come, whatever they
    send (nothing, half a request line, a request aiohttp cannot parse): counted
    unknown_client once each, never parsed, never a log line each. An allowed address
    posts as usual meanwhile."""
    config = json_config(tmp_path / "collector", dsn, allowed="127.0.0.2/32")
    assert config.json_port is not None
    busy = (data_dir / "json" / "busy_b_leg.json").read_bytes()
    sends = [b"", b"POST /cdr HTTP/1.1\r\nHost: x", b"GARBAGE \x00\x01\r\n\r\n"]
    connections = []
    with running_collector(config) as collector:
        for index in range(60):
            reader, writer = await asyncio.open_connection("127.0.0.1", config.json_port)
            if sends[index % 3]:
                writer.write(sends[index % 3])
            connections.append((reader, writer))
        try:
            for reader, _writer in connections:
                assert await closed_by_peer(reader) == b""  # not even a 403: nothing read
        finally:
            for _reader, writer in connections:
                writer.close()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            status, _, _ = await post(session, url(config, BUSY_UUID), busy)
            assert status == 200
        assert packets(collector, "unknown_client", source="unknown") == 60
        assert packets(collector, "accepted") == 1
        assert packets(collector, "malformed") == 0
        log_text = collector.log_text()
    assert len(await json_rows(dsn)) == 1
    assert "Traceback" not in log_text
    assert "Error handling request" not in log_text
    assert log_text.count("not allowed") <= 2  # rate-limited: one line per 10 s


async def test_slow_headers_and_bodies_are_timed_out(
    tmp_path: Path, dsn: str, data_dir: Path
) -> None:
    """An allowed peer that sends nothing, or part of its headers, is closed after
    header_timeout_ms; one whose body stalls gets 408 after body_timeout_ms. The two
    unfinished requests count malformed; a good post still gets through."""
    config = json_config(tmp_path / "collector", dsn, timeouts_ms=(500, 500))
    assert config.json_port is not None
    busy = (data_dir / "json" / "busy_b_leg.json").read_bytes()
    head = (
        f"POST /cdr?uuid={BUSY_UUID} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(busy)}\r\n\r\n"
    ).encode()
    with running_collector(config) as collector:
        silent = await asyncio.open_connection("127.0.0.1", config.json_port)
        partial_head = await asyncio.open_connection("127.0.0.1", config.json_port)
        partial_head[1].write(head[:40])
        partial_body = await asyncio.open_connection("127.0.0.1", config.json_port)
        partial_body[1].write(head + busy[:100])
        try:
            assert await closed_by_peer(silent[0]) == b""
            assert await closed_by_peer(partial_head[0]) == b""
            answer = await closed_by_peer(partial_body[0])
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
        finally:
            for _reader, writer in (silent, partial_head, partial_body):
                writer.close()
        async with aiohttp.ClientSession() as session:
            status, _, _ = await post(session, url(config, BUSY_UUID), busy)
            assert status == 200
        assert packets(collector, "malformed") == 2
        assert packets(collector, "accepted") == 1
        log_text = collector.log_text()
    assert len(await json_rows(dsn)) == 1
    assert "Traceback" not in log_text


async def test_malformed_http_is_counted_and_logged_once_without_a_traceback(
    tmp_path: Path, dsn: str
) -> None:
    """Requests aiohttp cannot parse (request line, header, chunked body, oversized
    line) get 400 and count malformed; the log says so once per reason and interval,
    with no traceback, instead of an ERROR with a traceback for each."""
    config = json_config(tmp_path / "collector", dsn)
    assert config.json_port is not None
    bad = [
        b"GARBAGE\r\n\r\n",
        b"POST /cdr HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"POST /cdr HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"POST /cdr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /cdr HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ]
    rounds = 8
    with running_collector(config) as collector:
        for _ in range(rounds):
            for request in bad:
                reader, writer = await asyncio.open_connection("127.0.0.1", config.json_port)
                writer.write(request)
                try:
                    answer = await closed_by_peer(reader)
                finally:
                    writer.close()
                assert answer.split(b" ", 2)[1] == b"400", (request[:40], answer[:60])
        assert packets(collector, "malformed") == rounds * len(bad)
        assert collector.process is not None and collector.process.poll() is None
        log_text = collector.log_text()
    assert "Traceback" not in log_text
    assert "Error handling request" not in log_text
    # one line per kind of parser error and interval, not one per request
    assert 1 <= log_text.count('"malformed HTTP request refused"') <= len(bad)
