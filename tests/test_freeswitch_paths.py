"""One FreeSWITCH leg over mod_radius_cdr and over mod_json_cdr: the same billing facts.

The RADIUS freeswitch profile and the JSON mapping read different framing
(vendor 27880 attributes with local-time text; channel variables with epoch
microseconds) and share `collector.vendors.freeswitch`. For every hangup
cause, answered or not, on the A-leg and on the B-leg of a bridged call,
the two records of one leg must agree on what billing uses: cause, SIP
code, answered, the three times, the billable duration, the parties, the
account, the correlation (the A-leg's uuid) and the Call-ID (the leg's uuid,
which the sofia profile makes its Call-ID: see `collector.reconcile`); and,
once redacted, on what is stored of them. The RADIUS times are sent in a half-hour zone, as
mod_radius_cdr cuts its offset ("+0518" for +05:30), so the time formats of
both paths are exercised too.

`leg` is the one field that differs, by decision
(`collector.vendors.freeswitch.legs`): it joins the record key, and the key
of a record already stored must not change. The last tests pin it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from collector.model import CallRecord, Protocol
from collector.pipeline.outcome import CAUSE_NORMAL_CLEARING
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.profiles import Context, interpret
from collector.vendors.freeswitch import legs
from collector.vendors.freeswitch.causes import CAUSES, HangupCause
from collector.vendors.freeswitch.json_cdr import json_record
from tests.test_numbers_privacy import privacy

SOURCE = "fs-1"
CALLING, CALLED = "+493012345678", "+442079460123"
START = datetime(2026, 3, 2, 9, 15, 7, 250000, tzinfo=UTC)
RING = timedelta(seconds=4, milliseconds=500)
TALK = timedelta(seconds=61, milliseconds=234)
RECEIVED = START + timedelta(minutes=5)
#: mod_radius_cdr prints +05:30 as "+0518" (its buffer keeps "18" of "1800" seconds)
ZONE = timezone(timedelta(hours=5, minutes=30))


def _radius_time(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0518"


def _micros(moment: datetime) -> str:
    return str(round(moment.timestamp() * 1_000_000))


def radius_stop(
    cause: HangupCause, answered: bool, leg_uuid: str, a_leg: str | None, number: int
) -> bytes:
    """mod_radius_cdr's Stop for the leg (`a_leg` set on a B-leg)."""
    fs = d.FREESWITCH
    end = START + RING + (TALK if answered else timedelta(0))
    parts = [
        codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_STOP)),
        codec.encode_attribute(d.ACCT_SESSION_ID, leg_uuid.encode()),
        codec.encode_attribute(d.USER_NAME, b"trunk-a"),
        codec.encode_vsa(fs, d.FS_SRC, CALLING.encode()),
        codec.encode_vsa(fs, d.FS_DST, CALLED.encode()),
        codec.encode_vsa(fs, d.FS_CALLSTARTDATE, _radius_time(START).encode()),
        codec.encode_vsa(fs, d.FS_CALLENDDATE, _radius_time(end).encode()),
        codec.encode_vsa(fs, d.FS_HANGUPCAUSE, codec.integer(number)),
        codec.encode_vsa(fs, d.FS_DIRECTION, b"outbound" if a_leg else b"inbound"),
    ]
    if a_leg:
        parts.append(codec.encode_vsa(fs, d.FS_OTHER_LEG_ID, a_leg.encode()))
    if answered:
        talk_us = round(TALK.total_seconds() * 1_000_000)
        parts += [
            codec.encode_vsa(fs, d.FS_CALLANSWERDATE, _radius_time(START + RING).encode()),
            codec.encode_vsa(fs, d.FS_BILLUSEC, codec.integer(talk_us)),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(talk_us // 1_000_000)),
        ]
    else:
        parts += [
            codec.encode_vsa(fs, d.FS_BILLUSEC, codec.integer(0)),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(0)),
        ]
    return b"".join(parts)


def json_document(
    cause: HangupCause, answered: bool, leg_uuid: str, a_leg: str | None
) -> dict[str, Any]:
    """mod_json_cdr's document for the same leg, from a sofia profile that makes the
    uuid the SIP Call-ID (inbound-use-callid-as-uuid, outbound-use-uuid-as-callid)."""
    end = START + RING + (TALK if answered else timedelta(0))
    variables = {
        "uuid": leg_uuid,
        "sip_call_id": leg_uuid,
        "direction": "outbound" if a_leg else "inbound",
        "accountcode": "trunk-a",
        "caller_id_number": CALLING,
        "destination_number": CALLED,
        "hangup_cause": cause.name,
        "hangup_cause_q850": str(cause.number if cause.number <= 127 else CAUSE_NORMAL_CLEARING),
        "start_uepoch": _micros(START),
        "end_uepoch": _micros(end),
    }
    if a_leg:
        variables["originating_leg_uuid"] = a_leg
    if answered:
        variables |= {
            "answer_uepoch": _micros(START + RING),
            "billmsec": str(round(TALK.total_seconds() * 1000)),
            "billsec": str(int(TALK.total_seconds())),
        }
    else:
        variables |= {"answer_uepoch": "0", "billmsec": "0", "billsec": "0"}
    return {"variables": variables}


def both_paths(
    cause: HangupCause, answered: bool, b_leg: bool, number: int | None = None
) -> tuple[CallRecord, CallRecord]:
    """The RADIUS and the JSON record of one leg."""
    a_leg = str(uuid.uuid4())
    leg_uuid = str(uuid.uuid4()) if b_leg else a_leg
    other = a_leg if b_leg else None
    attributes = radius_stop(cause, answered, leg_uuid, other, number or cause.number)
    packet = codec.decode(codec.encode_accounting_request(7, attributes, b"fs-secret"))
    radius = interpret(packet, "freeswitch", Context(SOURCE, RECEIVED))
    json = json_record(json_document(cause, answered, leg_uuid, other), SOURCE, RECEIVED)
    return radius, json


def billing_facts(record: CallRecord) -> tuple[Any, ...]:
    return (
        record.session_id,
        record.disconnect_cause,
        record.sip_code,
        record.answered,
        record.setup_time,
        record.connect_time,
        record.disconnect_time,
        record.duration_ms,
        record.account,
        record.calling,
        record.called,
        record.correlation,
        record.call_id,
        record.times_derived,
    )


CASES = [
    pytest.param(cause, answered, b_leg, number, id=f"{cause.name}-{number}-{shape}-{leg}")
    for cause in CAUSES
    for number in (cause.number, cause.earlier_number)
    if number is not None
    for answered, shape in ((True, "answered"), (False, "unanswered"))
    for b_leg, leg in ((False, "a"), (True, "b"))
]


@pytest.mark.parametrize(("cause", "answered", "b_leg", "number"), CASES)
def test_one_leg_gives_the_same_billing_facts_over_radius_and_json(
    cause: HangupCause, answered: bool, b_leg: bool, number: int
) -> None:
    radius, json = both_paths(cause, answered, b_leg, number)
    assert radius.protocol is Protocol.RADIUS and json.protocol is Protocol.JSON
    assert billing_facts(radius) == billing_facts(json)
    # and what the facts are, not only that they agree
    assert radius.setup_time == START
    assert radius.disconnect_cause == cause.q850
    if answered:
        assert radius.answered is True
        assert radius.connect_time == START + RING
        assert radius.duration_ms == round(TALK.total_seconds() * 1000)
    else:
        assert radius.answered is False
        assert radius.connect_time is None
        assert radius.duration_ms == 0
        assert radius.sip_code == cause.sip_code


@pytest.mark.parametrize("answered", [True, False], ids=["answered", "unanswered"])
def test_the_stored_rows_of_one_leg_agree_but_for_leg_and_key(answered: bool) -> None:
    """Through the redactor: what is stored of the two records is the same, except the
    protocol, the leg (see the next test) and so the record key, and the event time:
    the transport's (a RADIUS packet without Event-Timestamp has its arrival, a JSON
    CDR its end), which no bill reads."""
    cause = next(cause for cause in CAUSES if cause.name == "NORMAL_CLEARING")
    radius, json = both_paths(cause, answered, b_leg=False)
    redactor = Redactor(privacy())
    stored_radius = redactor.redact(radius, RECEIVED)
    stored_json = redactor.redact(json, RECEIVED)
    differing = {
        name
        for name, radius_value, json_value in zip(
            stored_radius._fields, stored_radius, stored_json, strict=True
        )
        if radius_value != json_value
    }
    assert differing == {"protocol", "leg", "record_key", "event_time"}


def test_the_leg_is_the_direction_over_json_and_empty_over_radius() -> None:
    """Pinned: the leg joins the record key, so changing it for either path would store
    again, as a second row, every record a switch resends across an upgrade."""
    for b_leg, direction in ((False, "inbound"), (True, "outbound")):
        radius, json = both_paths(CAUSES[6], True, b_leg)
        assert radius.leg == ""
        assert json.leg == direction
    assert legs.leg(Protocol.RADIUS, "inbound") == ""
    assert legs.leg(Protocol.JSON, "inbound") == "inbound"
    assert legs.leg(Protocol.JSON, "sideways") == ""
    assert legs.leg(Protocol.JSON, None) == ""
