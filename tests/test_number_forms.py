"""Numbers however they are written, through every ingest path, the spool and `erase`.

A switch, a capture agent or a FreeSWITCH dial plan writes one number in many
ways: "+49 (0)30 …", "030/…" in a German network, "030_…", full-width digits,
inside a tel: or sip: URI. Each of them is one pseudonym, one billing prefix
and one masked form, whichever path brought it (RADIUS from radclient, SIP
captured as HEPv3 and as raw datagrams, JSON posted over HTTP), and
`cdr-collector erase` finds the rows given any of them. Digits dialled after
the number (overdial, an extension) are no part of it; what is no phone
number at all (an opaque id a SIP trunk puts in the user part, more digits
than any number has) is stored as no number and counted. Whatever arrives,
no stored field, in `cdrs`, `open_calls` or the spool, holds a whole number.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.daemon import (
    ROOT,
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    free_port,
    running_collector,
    wait_for,
)
from tests.test_json_cdr import json_section
from tests.test_radius_radclient import radclient_send
from tests.test_sip_receiver import (
    Call,
    Sender,
    answered,
    busy,
    called_hmac,
    hep_flow,
    mirrored,
    sip_section,
)

UNUSABLE = "cdr_collector_numbers_unusable_total"

#: a Berlin number (14 digits, valid) dialled with digits after it
OVERDIALLED = "+49305551234567"
OVERDIAL_FORMS = (
    OVERDIALLED + "#1234",  # DTMF overdial after the number
    OVERDIALLED + " 1234",  # an extension after a space: 18 digits in all
    "+49 30 5551234567 1234",
    "00" + OVERDIALLED[1:] + ",,1234",  # a pause, then digits
    OVERDIALLED + " ext. 1234",
)
#: what a SIP trunk put in the Request-URI's user part: no phone number
OPAQUE_ID = "1bdaa608131517540001"
#: more digits than any number, without a separator to end one
TOO_LONG = "493055512345671234"
#: what must never be stored: the overdialled number with its overdial digits
#: (the tail a masked form used to show), the opaque id's digits, the long run
NEVER_STORED = (
    "493055512345671",
    "055512345671",
    "1608131517540",
    "608131517540001",
    "bdaa6081315",
    "5512345671234",
)

#: the same Berlin number as people and switches write it (default region DE)
BERLIN = "+49301234567"
BERLIN_FORMS = (
    "+49 (0)30 1234567",
    "+49(0)30/123 45 67",
    "+49 30 1234567",
    "0049301234567",
    "0049 (0)30 1234567",
    "030/1234567",
    "030-123 45 67",
    "030_1234567",
    "(030) 1234567",
    "\uff10\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width
    "+\u0664\u0669\u0663\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Arabic-Indic
    "tel:+49-30-1234567",
    "sip:+49301234567@gw.example.net;user=phone",
    "+49\u201330\u20131234567",  # en dashes
)
#: the forms a SIP user part carries (percent-encoded where a URI needs it)
BERLIN_SIP_USERS = (
    "+49 (0)30 1234567",
    "+49-30-1234567",
    "030/1234567",
    "030_1234567",
    "\uff10\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
)
#: a Hamburg number, as the caller, in forms of its own
HAMBURG = "+49407654321"
HAMBURG_FORMS = (
    "+49 (0)40 7654321",
    "040/7654321",
    "0049 40 765 43 21",
    "\uff0b\uff14\uff19\uff14\uff10\uff17\uff16\uff15\uff14\uff13\uff12\uff11",
    "tel:+49-40-7654321",
)
OTHER = "+442079460123"


def privacy_region_config(tmp_path: Path, dsn: str) -> CollectorConfig:
    """RADIUS, SIP and JSON listeners on free ports; national numbers are German."""
    sip_port = free_port()
    json_port = free_port(socket.SOCK_STREAM)
    return CollectorConfig(
        directory=tmp_path,
        dsn=dsn,
        sip_port=sip_port,
        json_port=json_port,
        extra=sip_section(sip_port) + "\n" + json_section(json_port),
        privacy_extra='default_region = "DE"\n',
    )


def radius_packet(session: str, called: str, calling: str, status: str = "Stop") -> str:
    """radclient input for one generic RFC 2866 record."""
    lines = [
        f"Acct-Status-Type = {status}",
        f'Acct-Session-Id = "{session}"',
        f'Calling-Station-Id = "{calling}"',
        f'Called-Station-Id = "{called}"',
        f"Event-Timestamp = {int(time.time())}",
    ]
    if status == "Stop":
        lines.append("Acct-Session-Time = 42")
    return "\n".join(lines) + "\n"


def send_radius(radclient: str, collector: Collector, packets: list[str]) -> None:
    """Each packet through radclient; every one must be answered (rc 0)."""
    for packet in packets:
        result = radclient_send(radclient, collector.radius_address, "acct", SECRET, packet)
        assert result.returncode == 0, result.stdout + result.stderr


def json_document(uuid: str, called: str, calling: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "variables": {
            "uuid": uuid,
            "caller_id_number": calling,
            "destination_number": called,
            "start_epoch": str(now - 60),
            "answer_epoch": str(now - 50),
            "end_epoch": str(now),
            "billsec": "50",
            "hangup_cause_q850": "16",
        }
    }


async def post_json(config: CollectorConfig, documents: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        for document in documents:
            target = f"http://127.0.0.1:{config.json_port}/cdr"
            async with session.post(target, json=document) as response:
                assert response.status == 200, await response.text()


def sip_user(text: str) -> str:
    """`text` as a SIP URI's user part: what RFC 3261 does not allow there, percent-encoded."""
    return quote(text, safe="+-()/_.")


async def all_rows(dsn: str, table: str) -> list[dict[str, Any]]:
    async with connected(dsn) as conn:
        return [dict(row) for row in await conn.fetch(f"SELECT * FROM {table}")]


async def wait_rows(dsn: str, table: str, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal rows
        rows = await all_rows(dsn, table)
        return len(rows) >= count

    await wait_for(enough, 30.0)
    return rows


def erase(collector: Collector, number: str) -> subprocess.CompletedProcess[str]:
    """`cdr-collector erase --number NUMBER` against the daemon's configuration."""
    return subprocess.run(
        [sys.executable, "-m", "collector", "erase", "--config", str(collector.config_path),
         "--number", number],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip


def assert_never_stored(text: str, where: str) -> None:
    found = [needle for needle in NEVER_STORED if needle in text]
    assert not found, f"{len(found)} fragment(s) of a whole number in {where}"


NUMBER_COLUMNS = ("called_prefix", "called_country", "called_destination", "called_masked")


# --- overdial, opaque ids and runs of digits: nothing whole is stored ---------


def overdial_traffic(
    radclient: str, collector: Collector, config: CollectorConfig, tag: str, start: datetime
) -> int:
    """Send the overdial forms, the opaque id and the long run by every path.

    Returns how many records that makes: RADIUS Stops and a Start, SIP calls
    (HEP and raw; a Start when answered, and a Stop) and one left open.
    """
    radius = [radius_packet(f"{tag}-r{i}", form, OTHER) for i, form in enumerate(OVERDIAL_FORMS)]
    radius.append(radius_packet(f"{tag}-r-opaque", OPAQUE_ID, OTHER))
    radius.append(radius_packet(f"{tag}-r-long", TOO_LONG, OTHER))
    radius.append(radius_packet(f"{tag}-r-start", OVERDIAL_FORMS[0], OTHER, status="Start"))
    send_radius(radclient, collector, radius)
    assert config.sip_port is not None
    sender = Sender(config.sip_port)
    try:
        for name, user in (("overdial", OVERDIAL_FORMS[0]), ("space", OVERDIAL_FORMS[1])):
            sender.send(hep_flow(answered(Call(f"{tag}-s-{name}@pbx", sip_user(user)), 3.0), start))
        sender.send(hep_flow(busy(Call(f"{tag}-s-opaque@pbx", OPAQUE_ID)), start))
        for _offset, message in busy(Call(f"{tag}-s-raw@pbx", sip_user(OVERDIAL_FORMS[0]))):
            sender.send(mirrored(message))  # raw SIP, no HEP
        for _offset, message in busy(Call(f"{tag}-s-raw-opaque@pbx", OPAQUE_ID)):
            sender.send(mirrored(message))
        # answered and still going when the daemon stops: kept in open_calls
        left_open = Call(f"{tag}-s-open@pbx", sip_user(OVERDIAL_FORMS[0]))
        sender.send(hep_flow(answered(left_open, 3.0)[:5], start))
    finally:
        sender.close()
    return len(radius) + 2 * 2 + 1 + 2 + 1


async def test_overdial_and_non_numbers_store_no_whole_number_on_any_path(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = privacy_region_config(tmp_path / "c", dsn)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    json_forms = [*OVERDIAL_FORMS[:3], OPAQUE_ID, TOO_LONG]
    with running_collector(config) as collector:
        overdial_traffic(radclient, collector, config, "a", start)
        stops = 5 + 2 + 2 + 1 + 2  # RADIUS, SIP answered, SIP busy by HEP, raw SIP
        await post_json(
            config,
            [
                json_document(f"5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7{i:03d}", form, OTHER)
                for i, form in enumerate(json_forms)
            ],
        )
        stops += len(json_forms)
        cdrs = await wait_rows(dsn, "cdrs", stops)
        metrics = "\n".join(f"{k} {v}" for k, v in collector.metrics().items())
        not_a_number = collector.metric(UNUSABLE, field="called", reason="not_a_number")
        too_long = collector.metric(UNUSABLE, field="called", reason="too_long")
    open_calls = await all_rows(dsn, "open_calls")
    assert len(cdrs) == stops
    assert len(open_calls) == 2  # the RADIUS Start and the SIP call left open
    real = called_hmac(OVERDIALLED)
    by_hmac: dict[str | None, list[dict[str, Any]]] = {}
    for row in [*cdrs, *open_calls]:
        by_hmac.setdefault(row["called_hmac"], []).append(row)
    # radius 5, sip 3 (two HEP, one raw), json 3; and both open calls
    assert len(by_hmac[real]) == 5 + 3 + 3 + 2
    for row in by_hmac[real]:
        assert row["called_masked"] == "+49305551234***"
        assert row["called_prefix"] == "+4930"
        assert row["called_country"] == "DE"
    # the opaque id (RADIUS, two SIP calls, JSON) and the long run (RADIUS, JSON)
    assert len(by_hmac[None]) == 4 + 2
    for row in by_hmac[None]:
        assert all(row[column] is None for column in NUMBER_COLUMNS), row["protocol"]
        assert row["calling_country"] is not None  # the rest of the record is kept
    assert set(by_hmac) == {real, None}
    assert not_a_number == 4
    assert too_long == 2
    assert_never_stored(repr(cdrs) + repr(open_calls), "the tables")
    assert_never_stored(metrics, "the metrics")
    assert_never_stored(collector.log_text(), "the log")
    assert "called number not stored: no phone number" in collector.log_text()

    # erase of the number the switch meant finds every row of it, open calls too
    result = erase(collector, OVERDIALLED)
    assert result.returncode == 0, result.stderr
    assert f"erased {5 + 3 + 3 + 2} row(s)" in result.stdout
    remaining = await all_rows(dsn, "cdrs") + await all_rows(dsn, "open_calls")
    assert [row["called_hmac"] for row in remaining] == [None] * (4 + 2)


async def test_the_spool_holds_no_whole_number(radclient: str, tmp_path: Path, dsn: str) -> None:
    """The database away: the same traffic is acknowledged from the spool, as redacted."""
    config = privacy_region_config(tmp_path / "s", dsn.replace(":5432/", ":9/"))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with running_collector(config) as collector:
        records = overdial_traffic(radclient, collector, config, "b", start)
        await post_json(
            config,
            [
                json_document("9b1f3a52-6c2d-4e8f-a0b7-3d5e7f9a1c24", OVERDIAL_FORMS[0], OTHER),
                json_document("c7d2e913-0a4b-4f6e-8c1d-2b3a4f5e6d70", OPAQUE_ID, OTHER),
            ],
        )
        records += 2
        await wait_for(lambda: collector.metric("cdr_collector_spool_records") >= records, 30.0)
    spool = b"".join(p.read_bytes() for p in (config.directory / "spool").glob("*.seg"))
    text = spool.decode("latin-1")
    assert text.count("+49305551234***") >= 5 + 3 + 1  # the overdialled calls are there
    assert_never_stored(text, "the spool")


# --- one number, every form, every path, erased by any form -------------------


async def test_one_number_in_every_form_is_one_pseudonym_and_erase_finds_it_by_any(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = privacy_region_config(tmp_path / "c", dsn)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with running_collector(config) as collector:
        # the Berlin number called, in every form, by RADIUS, JSON and SIP
        send_radius(
            radclient,
            collector,
            [radius_packet(f"berlin-r{i}", form, OTHER) for i, form in enumerate(BERLIN_FORMS)],
        )
        # the Hamburg number calling, by RADIUS and JSON
        send_radius(
            radclient,
            collector,
            [radius_packet(f"hamburg-r{i}", OTHER, form) for i, form in enumerate(HAMBURG_FORMS)],
        )
        await post_json(
            config,
            [
                json_document(f"5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b8{i:03d}", form, OTHER)
                for i, form in enumerate(BERLIN_FORMS)
            ]
            + [
                json_document(f"5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b9{i:03d}", OTHER, form)
                for i, form in enumerate(HAMBURG_FORMS)
            ],
        )
        assert config.sip_port is not None
        sender = Sender(config.sip_port)
        try:
            for i, user in enumerate(BERLIN_SIP_USERS):
                call = Call(f"berlin-s{i}@pbx", sip_user(user))
                if i % 2:
                    for _offset, message in busy(call):
                        sender.send(mirrored(message))
                else:
                    sender.send(hep_flow(answered(call, 2.0), start))
        finally:
            sender.close()
        berlin_rows = 2 * len(BERLIN_FORMS) + len(BERLIN_SIP_USERS)
        hamburg_rows = 2 * len(HAMBURG_FORMS)
        rows = await wait_rows(dsn, "cdrs", berlin_rows + hamburg_rows)
        assert collector.metric(UNUSABLE) == 0

        berlin = [r for r in rows if r["called_hmac"] == called_hmac(BERLIN)]
        assert len(berlin) == berlin_rows, sorted(str(r["called_masked"]) for r in rows)
        assert {(r["called_prefix"], r["called_masked"], r["called_country"]) for r in berlin} == {
            ("+4930", "+49301234***", "DE")
        }
        assert {r["protocol"] for r in berlin} == {"radius", "json", "sip"}
        hamburg = [r for r in rows if r["calling_hmac"] == called_hmac(HAMBURG)]
        assert len(hamburg) == hamburg_rows
        assert {r["calling_country"] for r in hamburg} == {"DE"}

        # erase, given a form none of the rows was sent in, finds them all
        result = erase(collector, "+49 (0) 30 123 45 67")
        assert result.returncode == 0, result.stderr
        assert f"erased {berlin_rows} row(s)" in result.stdout
        result = erase(
            collector, "\uff10\uff14\uff10 / \uff17\uff16\uff15 \uff14\uff13\uff12\uff11"
        )
        assert result.returncode == 0, result.stderr
        assert f"erased {hamburg_rows} row(s)" in result.stdout
    assert await all_rows(dsn, "cdrs") == []
