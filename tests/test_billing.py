"""Billing facts are decided once: vendor and transport code only says what was sent.

A profile, a document reader or the dialog tracker states an answer, a
duration the switch sent and the connect and disconnect times; the billable
duration derived from them (connect to disconnect, 0 when unanswered) is
pipeline.billing's alone. So a record made from a packet or document that
sends no duration carries none until `settle` decides it: a vendor that
derived one again (with its own rounding, before the times are checked, or
0 for an unanswered leg) would fail here. And the times as sent bill a
call even when pipeline.plausible does not believe them, as the vendors did
before the rule moved.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

import pytest

from collector import traffic
from collector.config import PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.billing import settle
from collector.pipeline.intake import normalize
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec, profiles
from collector.receivers.radius import dictionary as d
from collector.vendors.freeswitch.json_cdr import JsonCdrError, json_record
from tests import fuzzing
from tests.daemon import PSEUDONYM_KEY

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
_FREESWITCH = d.FREESWITCH.to_bytes(4, "big")


def _sends_no_duration(attribute: fuzzing.Attribute) -> bool:
    number, value = attribute
    if number == d.ACCT_SESSION_TIME:
        return False
    return not (number == d.VENDOR_SPECIFIC and value[:5] == _FREESWITCH + bytes((d.FS_BILLUSEC,)))


def _radius_without_durations() -> list[codec.Packet]:
    """Accounting requests of every vendor flavour, as sent and mutated, that send no duration."""
    rng = random.Random(20261130)
    packets = []
    for seed in range(4):
        for _flavour, blob in fuzzing.radius_seeds(now=NOW, seed=seed):
            for mutated in (blob, *(fuzzing.mutate_attributes(rng, blob) for _ in range(25))):
                kept = [a for a in fuzzing.split_attributes(mutated) if _sends_no_duration(a)]
                raw = codec.encode_accounting_request(0, fuzzing.join_attributes(kept), b"x")
                packets.append(codec.decode(raw))
    return packets


def test_no_radius_profile_derives_a_duration_the_packet_does_not_send() -> None:
    stops = 0
    for packet in _radius_without_durations():
        for name, profile in profiles.PROFILES.items():
            try:
                record = profile(packet, profiles.Context("sbc-1", NOW))
            except profiles.NotACall:
                continue
            stops += record.kind is RecordKind.STOP
            assert record.duration_ms is None, name
    assert stops > 1000  # the check saw Stops of every flavour, not only refusals


def test_no_json_cdr_derives_a_duration_the_document_does_not_send() -> None:
    rng = random.Random(20261130)
    seen = 0
    for seed in fuzzing.json_seeds():
        for _ in range(200):
            document = fuzzing.mutate_document(rng, seed)
            variables = document.get("variables") if isinstance(document, dict) else None
            if isinstance(variables, dict):
                for name in ("billsec", "billmsec", "billusec"):
                    variables.pop(name, None)
            try:
                record = json_record(document, "fs-1", NOW)
            except JsonCdrError:
                continue
            seen += 1
            assert record.duration_ms is None
    assert seen > 300  # documents the reader takes, not only refusals


def _redactor() -> Redactor:
    return Redactor(
        PrivacyConfig(keys=(("t1", base64.b64decode(PSEUDONYM_KEY)),), record_secret=b"r" * 32)
    )


@pytest.mark.parametrize("ahead", [timedelta(days=3), timedelta(days=-800)])
def test_times_as_sent_bill_a_call_whose_clock_is_not_believed(ahead: timedelta) -> None:
    """A switch whose clock is days ahead (or years behind): its times are not kept, yet
    the span between them is what it measured, and billed, in every protocol."""
    connect = NOW + ahead
    stop = CallRecord(
        kind=RecordKind.STOP,
        source="fs-1",
        protocol=Protocol.JSON,
        session_id="clock-off",
        event_time=connect + timedelta(seconds=61.25),
        connect_time=connect,
        disconnect_time=connect + timedelta(seconds=61.25),
        answered=True,
    )
    row = normalize(stop, NOW, _redactor())
    assert row.times_implausible is True and row.connect_time is None
    assert (row.answered, row.duration_ms) == (True, 61_250)


def test_an_unanswered_leg_is_billed_nothing_whatever_time_it_sends() -> None:
    call = traffic.make_calls(1, seed=3, now=NOW)[0]
    packet = codec.decode(
        codec.encode_accounting_request(0, traffic.generic_attributes(call, d.STATUS_FAILED), b"x")
    )
    record = profiles.generic(packet, profiles.Context("sbc-1", NOW))
    assert record.answered is False
    assert settle(record).duration_ms == 0
