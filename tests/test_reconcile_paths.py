"""Revenue assurance in the running daemon: FreeSWITCH's billing paths and a restart.

There is no FreeSWITCH binary here, so the test plays it as the other
FreeSWITCH tests do: mod_radius_cdr Stops (vendor 27880 attributes, the leg's
uuid as Acct-Session-Id) over real UDP to the RADIUS port, mod_json_cdr
documents (`variables.sip_call_id`) over HTTP to the JSON port, and the SIP
of the same calls as a capture agent mirrors it in HEPv3 to the SIP port. The
sofia profile is taken to set `inbound-use-callid-as-uuid` and
`outbound-use-uuid-as-callid`, so each leg's uuid is its Call-ID. The daemon
must list exactly the calls billed for another duration or not at all, and
count them by SIP source.

A call whose wait is not over when the collector stops is checked by the
next process: the wait is in the database.
"""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from collector.receivers.radius import dictionary as d
from collector.traffic import AccountingClient, Call, freeswitch_attributes
from tests.daemon import (
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    free_port,
    running_collector,
    wait_for,
)
from tests.test_sip_receiver import Call as SipCall
from tests.test_sip_receiver import Sender, answered, called_hmac, hep_flow

PROXY = "proxy-fs"
JSON_SOURCE = "fs-json"
CALLER = "+493012345678"
TALK_S = 60.0
#: the SIP flow answers 1.5 s after the INVITE (tests.test_sip_receiver.answered)
ANSWER_AFTER = timedelta(seconds=1.5)
UNBILLED = "cdr_collector_unbilled_calls_total"
MISMATCH = "cdr_collector_duration_mismatch_total"


def daemon_config(directory: Path, dsn: str, billing_wait_s: int) -> CollectorConfig:
    """RADIUS (freeswitch profile), JSON, SIP and [reconcile] checking every second."""
    sip_port = free_port()
    json_port = free_port(socket.SOCK_STREAM)
    return CollectorConfig(
        directory=directory,
        dsn=dsn,
        profile="freeswitch",
        client_name="fs-radius",
        sip_port=sip_port,
        json_port=json_port,
        extra=(
            f'[sip]\nlisten = ["127.0.0.1:{sip_port}"]\n\n'
            f'[[sip.sources]]\nname = "{PROXY}"\naddress = "127.0.0.1"\n\n'
            f'[json]\nlisten = "127.0.0.1:{json_port}"\nallowed = ["127.0.0.0/8"]\n'
            f'source = "{JSON_SOURCE}"\n\n'
            f"[reconcile]\nbilling_wait_s = {billing_wait_s}\ninterval_s = 1\n"
            "duration_tolerance_ms = 2000\n"
        ),
    )


def json_document(leg: str, sip_call_id: str | None, start: datetime, billed_s: float) -> str:
    """mod_json_cdr's document of an answered inbound leg billed `billed_s`."""
    answer = start + ANSWER_AFTER
    end = answer + timedelta(seconds=billed_s)

    def micros(moment: datetime) -> str:
        return str(round(moment.timestamp() * 1_000_000))

    variables: dict[str, Any] = {
        "uuid": leg,
        "direction": "inbound",
        "caller_id_number": CALLER,
        "destination_number": "+442079460000",
        "hangup_cause": "NORMAL_CLEARING",
        "hangup_cause_q850": "16",
        "start_uepoch": micros(start),
        "answer_uepoch": micros(answer),
        "end_uepoch": micros(end),
        "billmsec": str(round(billed_s * 1000)),
    }
    if sip_call_id is not None:
        variables["sip_call_id"] = sip_call_id
    return json.dumps({"variables": variables})


async def table(dsn: str, name: str) -> list[dict[str, Any]]:
    async with connected(dsn) as conn:
        return [dict(row) for row in await conn.fetch(f"SELECT * FROM {name}")]


async def test_freeswitch_legs_billed_over_radius_and_json_against_their_sip(
    tmp_path: Path, dsn: str
) -> None:
    """Six answered calls of 60 s, each seen in SIP: billed right over RADIUS and over
    JSON (matched), billed 50 s over RADIUS and 45 s over JSON (mismatched), not
    billed at all, and billed over JSON without `sip_call_id` (no SIP leg to the
    collector: unbilled, the uuid does not stand in). The billing records arrive
    first; the SIP rows wait one second."""
    start = datetime.now(UTC) - timedelta(minutes=3)
    calls = {  # name: (callee, how it is billed, billed seconds)
        "radius-matched": ("+442079460101", "radius", TALK_S),
        "radius-mismatch": ("+442079460202", "radius", 50.0),
        "json-matched": ("+442079460303", "json", TALK_S + 0.8),
        "json-mismatch": ("+442079460404", "json", 45.0),
        "unbilled": ("+442079460505", None, 0.0),
        "json-without-call-id": ("+442079460606", "json-no-call-id", TALK_S),
    }
    legs = {name: str(uuid.uuid4()) for name in calls}
    config = daemon_config(tmp_path / "collector", dsn, billing_wait_s=1)
    with running_collector(config) as collector:
        async with (
            AccountingClient(collector.radius_address, SECRET.encode(), tries=5) as radius,
            aiohttp.ClientSession() as http,
        ):
            for name, (callee, path, billed_s) in calls.items():
                leg = legs[name]
                if path == "radius":
                    connect = start + ANSWER_AFTER
                    call = Call(
                        session_id=leg,
                        calling=CALLER,
                        called=callee,
                        setup=start,
                        connect=connect,
                        disconnect=connect + timedelta(seconds=billed_s),
                        cause=16,
                    )
                    assert await radius.send(freeswitch_attributes(call, d.STATUS_STOP))
                elif path is not None:
                    call_id = leg if path == "json" else None
                    body = json_document(leg, call_id, start, billed_s)
                    url = f"http://127.0.0.1:{config.json_port}/cdr?uuid={leg}"
                    headers = {"Content-Type": "application/json"}
                    async with http.post(url, data=body, headers=headers) as response:
                        assert response.status == 200, await response.text()
        billing_rows = await table(dsn, "cdrs")
        assert len(billing_rows) == 5
        assert {row["call_id_hash"] is None for row in billing_rows} == {False, True}

        sender = Sender(config.sip_port or 0)
        try:
            for name, (callee, _path, _billed) in calls.items():
                sip_call = SipCall(call_id=legs[name], callee=callee, caller=CALLER)
                sender.send(hep_flow(answered(sip_call, TALK_S), start))
        finally:
            sender.close()

        async def all_checked() -> bool:
            sip_rows = [r for r in await table(dsn, "cdrs") if r["protocol"] == "sip"]
            return len(sip_rows) == len(calls) and not await table(dsn, "reconcile_pending")

        await wait_for(all_checked, 20.0)
        await wait_for(lambda: collector.metric(UNBILLED, source=PROXY) == 2, 5.0)
        await wait_for(lambda: collector.metric(MISMATCH, source=PROXY) == 2, 5.0)
        log_text = collector.log_text()

    sip_rows = {r["called_hmac"]: r for r in await table(dsn, "cdrs") if r["protocol"] == "sip"}
    findings = {bytes(r["record_key"]): r for r in await table(dsn, "reconcile_findings")}
    expected = {
        "radius-mismatch": ("duration_mismatch", 50_000, "fs-radius", "radius"),
        "json-mismatch": ("duration_mismatch", 45_000, JSON_SOURCE, "json"),
        "unbilled": ("unbilled", None, None, None),
        "json-without-call-id": ("unbilled", None, None, None),
    }
    assert len(findings) == len(expected)
    for name, (finding, billed_ms, billing_source, protocol) in expected.items():
        row = sip_rows[called_hmac(calls[name][0])]
        assert row["duration_ms"] == TALK_S * 1000, name
        found = findings[bytes(row["record_key"])]
        assert (found["finding"], found["billed_ms"]) == (finding, billed_ms), name
        assert (found["billing_source"], found["billing_protocol"]) == (billing_source, protocol)
        assert found["signalled_ms"] == row["duration_ms"]
        assert found["source"] == PROXY
        assert found["call_id_hash"] == row["call_id_hash"]
    # one summary line, without a Call-ID
    assert "calls not billed as signalled" in log_text
    for leg in legs.values():
        assert leg not in log_text


async def test_a_call_waiting_when_the_collector_stops_is_checked_by_the_next(
    tmp_path: Path, dsn: str
) -> None:
    """An answered SIP call with no billing record: the collector stops before its
    wait is over; the next process of the same configuration finds it and counts it."""
    start = datetime.now(UTC) - timedelta(minutes=2)
    config = daemon_config(tmp_path / "collector", dsn, billing_wait_s=4)
    sip_call = SipCall(call_id=str(uuid.uuid4()), callee="+442079460707", caller=CALLER)
    collector = Collector(config)
    collector.start()
    try:
        sender = Sender(config.sip_port or 0)
        try:
            sender.send(hep_flow(answered(sip_call, TALK_S), start))
        finally:
            sender.close()

        async def waiting() -> bool:
            return len(await table(dsn, "reconcile_pending")) == 1

        await wait_for(waiting, 10.0)
        assert collector.stop() == 0
    finally:
        collector.close()
    assert await table(dsn, "reconcile_findings") == []

    with running_collector(config) as restarted:
        await wait_for(lambda: restarted.metric(UNBILLED, source=PROXY) == 1, 15.0)
        assert await table(dsn, "reconcile_pending") == []
        findings = await table(dsn, "reconcile_findings")
    assert [row["finding"] for row in findings] == ["unbilled"]
