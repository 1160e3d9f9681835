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

import base64
import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

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
) -> str:
    text = (
        f'[json]\nlisten = "127.0.0.1:{port}"\nallowed = ["{allowed}"]\n'
        f'source = "{SOURCE}"\nmax_body_bytes = {max_body_bytes}\n'
    )
    if auth:
        text += 'basic_auth_file = "json.passwd"\n'
    return text


def json_config(directory: Path, dsn: str, **options: Any) -> CollectorConfig:
    """A daemon with [radius] (as the harness writes it) and [json] on a free port."""
    port = free_port(socket.SOCK_STREAM)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "json.passwd").write_text(f"# user:password\n{USER}:{PASSWORD}\n")
    return CollectorConfig(
        directory=directory, dsn=dsn, json_port=port, extra=json_section(port, **options)
    )


def url(config: CollectorConfig, uuid: str | None = None) -> str:
    # mod_json_cdr appends ?uuid=<uuid> to the configured URL
    suffix = f"?uuid={uuid}" if uuid else ""
    return f"http://127.0.0.1:{config.json_port}/cdr{suffix}"


def form_urlencoded(document: str) -> bytes:
    """The body mod_json_cdr posts with `encode = true`: cdr= and the URL-encoded JSON."""
    return b"cdr=" + quote(document, safe="").encode()


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


def curl_post(curl: str, target: str, body_path: Path) -> tuple[int, str]:
    """POST as mod_json_cdr does through libcurl (`encode = true`); (status, body)."""
    result = subprocess.run(
        [
            curl,
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "-H",
            "Expect: 100-continue",
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
    """401 with a challenge without valid credentials; 403 once 127.0.0.1 is no longer allowed."""
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
            status, text, _ = await post(session, url(config), busy, auth=(USER, PASSWORD))
            assert (status, text) == (403, "forbidden\n")
        assert packets(collector, "bad_authenticator") == 2
        assert packets(collector, "unknown_client", source="unknown") == 1
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
