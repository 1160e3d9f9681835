"""One FreeSWITCH call, one answer: every hangup cause over RADIUS and over JSON alike.

FreeSWITCH reports a leg with mod_radius_cdr (Freeswitch-Hangupcause, a
number) and with mod_json_cdr (hangup_cause, a name, and hangup_cause_q850).
For every cause in `collector.vendors.freeswitch.causes.CAUSES`, the test sends the
same leg both ways to one real daemon: a Stop through FreeRADIUS's radclient
(real UDP, answers verified; a cause FreeSWITCH 1.10.8 renumbered goes once
more with its earlier number) and a document POSTed over real HTTP. Each
goes in three shapes: answered, not answered, and one that shows no answer
either way (no answer time, no billable time). Every call is stored in
PostgreSQL, and the rows of one leg must agree on disconnect_cause,
sip_code, answered, incomplete and duration, and be what the table says.

The documents carry hangup_cause_q850 as FreeSWITCH computes it
(switch_channel_cause_q850: the cause up to 127, else 16) and no
sip_term_status: FreeSWITCH sets that only when the far end ended the leg,
and then it wins on the JSON path (RADIUS has no attribute for it), which
test_json_cdr checks. All calls go through one daemon run, with the RADIUS
client and the JSON sender under one source name: every record of each
protocol must be its own row.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from collector.pipeline.outcome import CAUSE_NORMAL_CLEARING
from collector.vendors.freeswitch.causes import (
    CAUSES,
    REQUEST_TERMINATED,
    HangupCause,
    cause_of_number,
)
from tests.conftest import ADMIN_DSN, dsn_for, require_program
from tests.daemon import SECRET, CollectorConfig, free_port, running_collector
from tests.test_json_cdr import SOURCE, json_section
from tests.test_radius_radclient import radclient_send

SHAPES = ("answered", "unanswered", "silent")
CALLING, CALLED = "+493012345678", "+442079460123"
TALK = timedelta(seconds=30)
RING = timedelta(seconds=2)


def account(cause: HangupCause, shape: str, earlier: bool = False) -> str:
    """The account label a call carries on both paths: how its two rows are paired."""
    return f"{cause.name.lower()}-{shape}" + ("-earlier" if earlier else "")


def _radius_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def radius_stop(cause: HangupCause, shape: str, start: datetime, earlier: bool = False) -> str:
    """mod_radius_cdr's Stop for one leg, as radclient reads it (with the cause's number
    before FreeSWITCH 1.10.8 when `earlier`)."""
    number = cause.earlier_number if earlier else cause.number
    lines = [
        "Acct-Status-Type = Stop",
        f'Acct-Session-Id = "{uuid.uuid4()}"',
        f'User-Name = "{account(cause, shape, earlier)}"',
        f'Freeswitch-Src = "{CALLING}"',
        f'Freeswitch-Dst = "{CALLED}"',
        f"Freeswitch-Hangupcause = {number}",
        f'Freeswitch-Callstartdate = "{_radius_time(start)}"',
        # FreeSWITCH's own attribute 24 (Freeswitch-Direction), as radclient names it
        'Freeswitch-Signalbond = "inbound"',
    ]
    if shape == "answered":
        lines += [
            f'Freeswitch-Callanswerdate = "{_radius_time(start + RING)}"',
            f'Freeswitch-Callenddate = "{_radius_time(start + RING + TALK)}"',
            f"Freeswitch-Billusec = {int(TALK.total_seconds() * 1_000_000)}",
            f"Acct-Session-Time = {int(TALK.total_seconds())}",
        ]
    elif shape == "unanswered":
        lines += [
            f'Freeswitch-Callenddate = "{_radius_time(start + RING)}"',
            "Freeswitch-Billusec = 0",
            "Acct-Session-Time = 0",
        ]
    else:
        lines.append(f'Freeswitch-Callenddate = "{_radius_time(start + RING)}"')
    return "\n".join(lines) + "\n"


def _micros(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000))


def json_document(cause: HangupCause, shape: str, start: datetime) -> dict[str, Any]:
    """mod_json_cdr's document for the same leg."""
    reported_q850 = cause.number if cause.number <= 127 else CAUSE_NORMAL_CLEARING
    variables = {
        "uuid": str(uuid.uuid4()),
        "direction": "inbound",
        "accountcode": account(cause, shape),
        "caller_id_number": CALLING,
        "destination_number": CALLED,
        "hangup_cause": cause.name,
        "hangup_cause_q850": str(reported_q850),
        "start_uepoch": _micros(start),
    }
    if shape == "answered":
        variables |= {
            "answer_uepoch": _micros(start + RING),
            "end_uepoch": _micros(start + RING + TALK),
            "billmsec": str(int(TALK.total_seconds() * 1000)),
            "billsec": str(int(TALK.total_seconds())),
        }
    elif shape == "unanswered":
        variables |= {
            "answer_uepoch": "0",
            "answer_epoch": "0",
            "end_uepoch": _micros(start + RING),
            "billmsec": "0",
            "billsec": "0",
        }
    else:
        variables["end_uepoch"] = _micros(start + RING)
    return {"channel_data": {"direction": "inbound"}, "variables": variables}


def expected(cause: HangupCause, shape: str) -> tuple[int | None, int | None, bool, bool]:
    """disconnect_cause, sip_code, answered and incomplete the table gives for a leg of
    this shape, as stored: a Stop that shows no answer either way, whose cause does not
    tell and that has no Start to complete it, is stored not answered and incomplete."""
    answered = {"answered": True, "unanswered": False}.get(shape, cause.answered)
    return (
        cause.q850,
        cause.sip_code if answered is False else None,
        bool(answered),
        answered is None,
    )


async def _post_all(port: int, documents: list[dict[str, Any]]) -> list[int]:
    url = f"http://127.0.0.1:{port}/cdr"
    limit = asyncio.Semaphore(16)

    async def post(session: aiohttp.ClientSession, document: dict[str, Any]) -> int:
        async with limit, session.post(url, data=json.dumps(document).encode()) as response:
            await response.read()
            return response.status

    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:
        return await asyncio.gather(*(post(session, document) for document in documents))


async def _stored(dsn: str, expected_rows: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(300):
            count = await conn.fetchval("SELECT count(*) FROM cdrs")
            if count >= expected_rows:
                break
            await asyncio.sleep(0.1)
        rows = await conn.fetch(
            "SELECT protocol, account, disconnect_cause, sip_code, answered, incomplete,"
            " duration_ms FROM cdrs"
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


async def _database(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def stored_by_call(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, str], Any]]:
    """Every cause in every shape, sent both ways through one daemon: the stored rows by
    (protocol, account)."""
    radclient = require_program("radclient")
    name = f"cdr_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_database(f'CREATE DATABASE "{name}"'))
    try:
        json_port = free_port(socket.SOCK_STREAM)
        config = CollectorConfig(
            directory=tmp_path_factory.mktemp("freeswitch") / "collector",
            dsn=dsn_for(name),
            json_port=json_port,
            profile="freeswitch",
            # one FreeSWITCH, named alike for mod_radius_cdr and mod_json_cdr, as an
            # operator would: each protocol's record of a call is a row of its own
            client_name=SOURCE,
            log_level="info",
            extra=json_section(json_port),
        )
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        calls = [(cause, shape) for cause in CAUSES for shape in SHAPES]
        earlier = [(cause, shape) for cause, shape in calls if cause.earlier_number is not None]
        with running_collector(config) as collector:
            packets = "\n".join(
                [
                    radius_stop(cause, shape, start + timedelta(seconds=index))
                    for index, (cause, shape) in enumerate(calls)
                ]
                + [
                    radius_stop(cause, shape, start + timedelta(seconds=index), earlier=True)
                    for index, (cause, shape) in enumerate(earlier)
                ]
            )
            done = radclient_send(
                radclient, collector.radius_address, "acct", SECRET, packets, timeout=10.0
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            statuses = asyncio.run(
                _post_all(
                    json_port,
                    [
                        json_document(cause, shape, start + timedelta(seconds=index))
                        for index, (cause, shape) in enumerate(calls)
                    ],
                )
            )
            assert statuses == [200] * len(calls)
            rows = asyncio.run(_stored(dsn_for(name), 2 * len(calls) + len(earlier)))
        by_call = {(row["protocol"], row["account"]): row for row in rows}
        assert len(by_call) == len(rows) == 2 * len(calls) + len(earlier)
        yield by_call
    finally:
        asyncio.run(_database(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize("cause", CAUSES, ids=[cause.name for cause in CAUSES])
def test_a_cause_is_stored_alike_over_radius_and_json(
    stored_by_call: dict[tuple[str, str], Any], cause: HangupCause
) -> None:
    for shape in SHAPES:
        label = account(cause, shape)
        rows = [stored_by_call[("radius", label)], stored_by_call[("json", label)]]
        if cause.earlier_number is not None:
            rows.append(stored_by_call[("radius", account(cause, shape, earlier=True))])
        stored = [
            (row["disconnect_cause"], row["sip_code"], row["answered"], row["incomplete"])
            for row in rows
        ]
        assert stored == [expected(cause, shape)] * len(rows), shape
        assert len({row["duration_ms"] for row in rows}) == 1, shape


# -- the table itself ------------------------------------------------------------------


#: switch_types.h's switch_call_cause_t: name -> (number, number before 1.10.8 where it
#: differed); switch_channel.c's cause table names the same 82, in this order
SWITCH_CAUSES: dict[str, tuple[int, int | None]] = {
    "NONE": (0, None),
    "UNALLOCATED_NUMBER": (1, None),
    "NO_ROUTE_TRANSIT_NET": (2, None),
    "NO_ROUTE_DESTINATION": (3, None),
    "CHANNEL_UNACCEPTABLE": (6, None),
    "CALL_AWARDED_DELIVERED": (7, None),
    "NORMAL_CLEARING": (16, None),
    "USER_BUSY": (17, None),
    "NO_USER_RESPONSE": (18, None),
    "NO_ANSWER": (19, None),
    "SUBSCRIBER_ABSENT": (20, None),
    "CALL_REJECTED": (21, None),
    "NUMBER_CHANGED": (22, None),
    "REDIRECTION_TO_NEW_DESTINATION": (23, None),
    "EXCHANGE_ROUTING_ERROR": (25, None),
    "DESTINATION_OUT_OF_ORDER": (27, None),
    "INVALID_NUMBER_FORMAT": (28, None),
    "FACILITY_REJECTED": (29, None),
    "RESPONSE_TO_STATUS_ENQUIRY": (30, None),
    "NORMAL_UNSPECIFIED": (31, None),
    "NORMAL_CIRCUIT_CONGESTION": (34, None),
    "NETWORK_OUT_OF_ORDER": (38, None),
    "NORMAL_TEMPORARY_FAILURE": (41, None),
    "SWITCH_CONGESTION": (42, None),
    "ACCESS_INFO_DISCARDED": (43, None),
    "REQUESTED_CHAN_UNAVAIL": (44, None),
    "PRE_EMPTED": (45, None),
    "FACILITY_NOT_SUBSCRIBED": (50, None),
    "OUTGOING_CALL_BARRED": (52, None),
    "INCOMING_CALL_BARRED": (54, None),
    "BEARERCAPABILITY_NOTAUTH": (57, None),
    "BEARERCAPABILITY_NOTAVAIL": (58, None),
    "SERVICE_UNAVAILABLE": (63, None),
    "BEARERCAPABILITY_NOTIMPL": (65, None),
    "CHAN_NOT_IMPLEMENTED": (66, None),
    "FACILITY_NOT_IMPLEMENTED": (69, None),
    "SERVICE_NOT_IMPLEMENTED": (79, None),
    "INVALID_CALL_REFERENCE": (81, None),
    "INCOMPATIBLE_DESTINATION": (88, None),
    "INVALID_MSG_UNSPECIFIED": (95, None),
    "MANDATORY_IE_MISSING": (96, None),
    "MESSAGE_TYPE_NONEXIST": (97, None),
    "WRONG_MESSAGE": (98, None),
    "IE_NONEXIST": (99, None),
    "INVALID_IE_CONTENTS": (100, None),
    "WRONG_CALL_STATE": (101, None),
    "RECOVERY_ON_TIMER_EXPIRE": (102, None),
    "MANDATORY_IE_LENGTH_ERROR": (103, None),
    "PROTOCOL_ERROR": (111, None),
    "INTERWORKING": (127, None),
    "SUCCESS": (142, None),
    "ORIGINATOR_CANCEL": (487, None),
    "CRASH": (700, 500),
    "SYSTEM_SHUTDOWN": (701, 501),
    "LOSE_RACE": (702, 502),
    "MANAGER_REQUEST": (703, 503),
    "BLIND_TRANSFER": (800, 600),
    "ATTENDED_TRANSFER": (801, 601),
    "ALLOTTED_TIMEOUT": (802, 602),
    "USER_CHALLENGE": (803, 603),
    "MEDIA_TIMEOUT": (804, 604),
    "PICKED_OFF": (805, 605),
    "USER_NOT_REGISTERED": (806, 606),
    "PROGRESS_TIMEOUT": (807, 607),
    "INVALID_GATEWAY": (808, 608),
    "GATEWAY_DOWN": (809, 609),
    "INVALID_URL": (810, 610),
    "INVALID_PROFILE": (811, 611),
    "NO_PICKUP": (812, 612),
    "SRTP_READ_ERROR": (813, 613),
    "BOWOUT": (814, 614),
    "BUSY_EVERYWHERE": (815, 615),
    "DECLINE": (816, 616),
    "DOES_NOT_EXIST_ANYWHERE": (817, 617),
    "NOT_ACCEPTABLE": (818, 618),
    "UNWANTED": (819, 619),
    "NO_IDENTITY": (820, 620),
    "BAD_IDENTITY_INFO": (821, 621),
    "UNSUPPORTED_CERTIFICATE": (822, 622),
    "INVALID_IDENTITY": (823, 623),
    "STALE_DATE": (824, 624),
    "REJECT_ALL": (825, None),
}

#: the decisions collector.vendors.freeswitch.causes documents for FreeSWITCH's own causes:
#: name -> (disconnect_cause, sip_code of an unanswered leg, answered when nothing shows)
OWN_CAUSE_DECISIONS: dict[str, tuple[int | None, int | None, bool | None]] = {
    "SUCCESS": (16, None, None),
    "ORIGINATOR_CANCEL": (16, 487, False),
    "CRASH": (None, None, None),
    "SYSTEM_SHUTDOWN": (None, None, None),
    "LOSE_RACE": (16, 487, False),
    "MANAGER_REQUEST": (16, None, None),
    "BLIND_TRANSFER": (16, None, None),
    "ATTENDED_TRANSFER": (16, None, None),
    "ALLOTTED_TIMEOUT": (16, None, None),
    "USER_CHALLENGE": (None, None, False),
    "MEDIA_TIMEOUT": (None, None, None),
    "PICKED_OFF": (16, 487, False),
    "USER_NOT_REGISTERED": (None, None, False),
    "PROGRESS_TIMEOUT": (None, None, False),
    "INVALID_GATEWAY": (None, None, False),
    "GATEWAY_DOWN": (None, None, False),
    "INVALID_URL": (None, None, False),
    "INVALID_PROFILE": (None, None, False),
    "NO_PICKUP": (None, None, False),
    "SRTP_READ_ERROR": (None, None, None),
    "BOWOUT": (16, None, None),
    # refusals with a SIP status: RFC 3398's cause for it (q850_from_sip_status)
    "BUSY_EVERYWHERE": (17, None, False),  # 600
    "DECLINE": (21, None, False),  # 603
    "DOES_NOT_EXIST_ANYWHERE": (1, None, False),  # 604
    "NOT_ACCEPTABLE": (127, None, False),  # 606
    "UNWANTED": (127, None, False),  # 607
    "NO_IDENTITY": (127, None, False),  # 428
    "BAD_IDENTITY_INFO": (127, None, False),  # 429
    "UNSUPPORTED_CERTIFICATE": (127, None, False),  # 437
    "INVALID_IDENTITY": (127, None, False),  # 438
    "STALE_DATE": (21, None, False),  # 403
    "REJECT_ALL": (21, None, False),  # 603
}


def test_the_table_is_freeswitch_s_cause_table() -> None:
    """Every name and number as FreeSWITCH defines them, both numberings, each once."""
    assert [cause.name for cause in CAUSES] == list(SWITCH_CAUSES)
    assert {cause.name: (cause.number, cause.earlier_number) for cause in CAUSES} == SWITCH_CAUSES
    for cause in CAUSES:
        assert cause_of_number(cause.number) is cause
        if cause.earlier_number is not None:
            assert cause_of_number(cause.earlier_number) is cause


def test_q850_causes_are_themselves_and_own_causes_as_decided() -> None:
    for cause in CAUSES:
        if cause.number <= 127:
            assert cause.q850 == (cause.number or None), cause.name
            assert cause.sip_code is None, cause.name
        else:
            assert (cause.q850, cause.sip_code, cause.answered) == OWN_CAUSE_DECISIONS[
                cause.name
            ], cause.name


def test_lose_race_and_picked_off_are_cancelled_legs_with_normal_clearing() -> None:
    """The decision the module documents: what FreeSWITCH reports (16), and 487 on the
    leg it cancelled, like ORIGINATOR_CANCEL; never 26."""
    for name in ("ORIGINATOR_CANCEL", "LOSE_RACE", "PICKED_OFF"):
        (cause,) = [cause for cause in CAUSES if cause.name == name]
        assert (cause.q850, cause.sip_code, cause.answered) == (16, REQUEST_TERMINATED, False)
    assert {cause.name for cause in CAUSES if cause.sip_code is not None} == {
        "ORIGINATOR_CANCEL",
        "LOSE_RACE",
        "PICKED_OFF",
    }


def test_freeswitch_1_10_8_numbers_and_earlier_ones_name_the_same_cause() -> None:
    """mod_radius_cdr sends the running release's number: 1.10.8 moved CRASH from 500 to
    700, LOSE_RACE from 502 to 702, PICKED_OFF from 605 to 805 (switch_types.h)."""
    for earlier, current, name in (
        (500, 700, "CRASH"),
        (502, 702, "LOSE_RACE"),
        (605, 805, "PICKED_OFF"),
    ):
        before, after = cause_of_number(earlier), cause_of_number(current)
        assert before is not None and before is after and after.name == name


def test_an_unnamed_q850_cause_is_itself_and_an_unknown_own_cause_is_none() -> None:
    unnamed = cause_of_number(26)
    assert unnamed is not None and unnamed.q850 == 26
    assert (unnamed.sip_code, unnamed.answered) == (None, None)
    for number in (1, 127):
        found = cause_of_number(number)
        assert found is not None and found.q850 == number
    for number in (-1, 128, 900):
        assert cause_of_number(number) is None
