"""Times and durations no switch can have meant are not stored as sent.

A 32-bit field at its maximum, an Event-Timestamp of 0, a connect time in
1900 or a stamp in 2106 used to give rows dated 1890 (deleted by the next
retention run, while their key refused the corrected resend) or 79 years of
billable time. Through the wire and the real database: such a record is kept,
dated by its arrival where it needs a time, flagged `times_implausible`,
counted, and never billed for more than a call can last, however the duration
is computed (in the pipeline, from a Start in SQL, or at an Accounting-On).
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.config import PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.intake import normalize
from collector.pipeline.plausible import max_age, mend
from collector.pipeline.privacy import Pseudonymizer
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.traffic import AccountingClient, Call, cisco_attributes
from tests.daemon import (
    PSEUDONYM_KEY,
    RECORD_KEY,
    SECRET,
    CollectorConfig,
    connected,
    run_command,
    running_collector,
    wait_for,
)
from tests.test_durability import kamailio_packet

MAX_32 = 2**32 - 1
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _integer(number: int, value: int) -> bytes:
    return codec.encode_attribute(number, codec.integer(value))


def _text(number: int, value: str) -> bytes:
    return codec.encode_attribute(number, value.encode())


def _generic_stop(session: str, *extra: bytes) -> bytes:
    return b"".join(
        (
            _integer(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            _text(d.ACCT_SESSION_ID, session),
            _text(d.CALLING_STATION_ID, "+493012345678"),
            _text(d.CALLED_STATION_ID, "+442079460123"),
            *extra,
        )
    )


def _record(**fields: Any) -> CallRecord:
    base: dict[str, Any] = {
        "kind": RecordKind.STOP,
        "source": "fs-1",
        "protocol": Protocol.JSON,
        "session_id": "s",
        "event_time": NOW,
    }
    base.update(fields)
    return CallRecord(**base)


def test_believable_records_pass_untouched() -> None:
    record = _record(
        setup_time=NOW - timedelta(seconds=70),
        connect_time=NOW - timedelta(seconds=60),
        disconnect_time=NOW,
        duration_ms=60_000,
    )
    assert mend(record, NOW, max_age(180)) is record
    # a call of last month, replayed late: its own times
    late = _record(event_time=NOW - timedelta(days=200), disconnect_time=NOW - timedelta(days=200))
    assert mend(late, NOW, max_age(180)) is late
    # a clock a few hours ahead: its own times
    ahead = _record(event_time=NOW + timedelta(hours=5))
    assert mend(ahead, NOW, max_age(180)) is ahead


def test_a_duration_is_derived_to_the_millisecond_and_values_a_column_cannot_hold_are_left_out() -> (
    None
):
    """A Stop with both ends and no duration is billed end minus connect, to the
    millisecond; a cause, SIP code or post-dial delay outside what its column holds
    is stored as none, the largest that fits as itself."""
    redactor = Redactor(
        PrivacyConfig(
            keys=(("t1", base64.b64decode(PSEUDONYM_KEY)),),
            record_secret=base64.b64decode(RECORD_KEY),
        )
    )
    connect = NOW - timedelta(seconds=61, milliseconds=250)
    record = normalize(_record(connect_time=connect, disconnect_time=NOW), NOW, redactor)
    row = redactor.redact(record, NOW)
    assert (row.duration_ms, row.answered) == (61_250, True)
    edges = {"disconnect_cause": (127, 128), "sip_code": (699, 700), "pdd_ms": (2**31 - 1, 2**31)}
    for field, (largest, beyond) in edges.items():
        kept = redactor.redact(_record(**{field: largest}), NOW)
        dropped = redactor.redact(_record(**{field: beyond}), NOW)
        assert (getattr(kept, field), getattr(dropped, field)) == (largest, None), field
    low = redactor.redact(_record(disconnect_cause=-1, sip_code=99, pdd_ms=-1), NOW)
    assert (low.disconnect_cause, low.sip_code, low.pdd_ms) == (None, None, None)
    # the smallest that fits is kept as itself (a cause 0, a 100 Trying, no delay at all)
    least = redactor.redact(_record(disconnect_cause=0, sip_code=100, pdd_ms=0), NOW)
    assert (least.disconnect_cause, least.sip_code, least.pdd_ms) == (0, 100, 0)


def test_each_unbelievable_value_is_mended_and_flagged() -> None:
    arrival = NOW
    record = _record(
        event_time=datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC),
        setup_time=datetime(1900, 1, 1, tzinfo=UTC),
        connect_time=NOW - timedelta(days=3 * 366),
        disconnect_time=datetime(1970, 1, 1, tzinfo=UTC),
        duration_ms=MAX_32 * 1000,
    )
    mended = mend(record, arrival, max_age(180))
    assert mended.times_implausible and mended.times_derived
    assert mended.event_time == arrival
    assert mended.disconnect_time == arrival  # a Stop needs its end: the arrival stands in
    assert (mended.setup_time, mended.connect_time, mended.duration_ms) == (None, None, None)
    # a Start has no end to stand in for
    start = _record(kind=RecordKind.START, disconnect_time=datetime(2106, 1, 1, tzinfo=UTC))
    assert mend(start, arrival, max_age(180)).disconnect_time is None
    # a long retention widens the look back
    old = _record(event_time=NOW - timedelta(days=3000))
    assert mend(old, NOW, max_age(3650)) is old
    assert mend(old, NOW, max_age(180)).times_implausible


async def _rows(dsn: str) -> dict[str, dict[str, Any]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT * FROM cdrs")
    # Cisco's account comes from its own attributes: its row is the one with a leg
    return {r["account"] or ("cisco-1900" if r["leg"] else ""): dict(r) for r in rows}


def _account(name: str) -> bytes:
    return _text(d.USER_NAME, name)


async def test_absurd_times_through_radius_are_kept_at_arrival_flagged_and_never_overbilled(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    now = int(time.time())
    cisco_call = Call(
        session_id="CISCO1900",
        calling="+493012345678",
        called="+442079460123",
        setup=datetime(1900, 1, 1, 0, 0, tzinfo=UTC),
        connect=datetime(1900, 1, 1, 0, 0, 5, tzinfo=UTC),
        disconnect=datetime.fromtimestamp(now, UTC),
        cause=16,
    )
    packets = [
        # Acct-Session-Time at its maximum: no duration believed, none billed
        _generic_stop("MAXSESSION", _integer(d.ACCT_SESSION_TIME, MAX_32),
                      _integer(d.EVENT_TIMESTAMP, now), _account("max-session")),
        # Acct-Delay-Time at its maximum and no Event-Timestamp: dated by arrival
        _generic_stop("MAXDELAY", _integer(d.ACCT_SESSION_TIME, 60),
                      _integer(d.ACCT_DELAY_TIME, MAX_32), _account("max-delay")),
        # Event-Timestamp 0 (a switch whose clock was never set)
        _generic_stop("EPOCH0", _integer(d.ACCT_SESSION_TIME, 61),
                      _integer(d.EVENT_TIMESTAMP, 0), _account("epoch-zero")),
        # a Cisco gateway whose setup and connect times read 1900
        cisco_attributes(cisco_call),
        # a believable call, for contrast
        _generic_stop("FINE", _integer(d.ACCT_SESSION_TIME, 30),
                      _integer(d.EVENT_TIMESTAMP, now), _account("fine")),
    ]  # fmt: skip
    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            for packet in packets:
                assert await client.send(packet)
            # a corrected resend of the first: the same call, already stored (flagged)
            assert await client.send(
                _generic_stop("MAXSESSION", _integer(d.ACCT_SESSION_TIME, 90),
                              _integer(d.EVENT_TIMESTAMP, now), _account("max-session"))
            )  # fmt: skip
        implausible = collector.metric("cdr_collector_records_implausible_total", source="sbc-test")
    rows = await _rows(dsn)
    assert set(rows) == {"max-session", "max-delay", "epoch-zero", "cisco-1900", "fine"}
    arrival_floor = datetime.fromtimestamp(now - 60, UTC)
    for name, row in rows.items():
        assert row["call_time"] >= arrival_floor, name  # never 1890, 1900 or 1970
        assert row["times_implausible"] is (name != "fine"), name
    assert implausible == 4
    max_session = rows["max-session"]
    assert (max_session["duration_ms"], max_session["connect_time"]) == (0, None)
    assert max_session["incomplete"] is True
    # the durations the packets carried are believable and kept
    assert rows["max-delay"]["duration_ms"] == 60_000
    assert rows["max-delay"]["times_derived"] is True
    assert rows["epoch-zero"]["duration_ms"] == 61_000
    cisco = rows["cisco-1900"]
    assert cisco["setup_time"] is None and cisco["connect_time"] is None
    assert rows["fine"]["duration_ms"] == 30_000

    # retention leaves them: they are dated now, not in 1890
    purged = run_command("purge", "--config", str(config.directory / "collector.toml"))
    assert purged.returncode == 0, purged.stderr
    assert len(await _rows(dsn)) == 5


#: one fiction number per call, so each row is found by its pseudonym
CALLED = {
    "bye": "+442079460301",
    "eleven": "+442079460302",
    "reset": "+442079460303",
    "stale": "+442079460304",
}
_pseudonyms = Pseudonymizer((("t1", base64.b64decode(PSEUDONYM_KEY)),))


async def test_durations_computed_from_a_start_or_a_reset_are_capped(
    tmp_path: Path, dsn: str
) -> None:
    """Kamailio Stops carry no duration: it is computed in SQL from the Start. A BYE
    stamped 2106, a Start eleven days old or an Accounting-On stamped 2106 must not
    bill decades or more than a call can last."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, profile="kamailio")
    now = int(time.time())
    eleven_days = 11 * 86400

    def start(name: str, when: int) -> bytes:
        return kamailio_packet(d.STATUS_START, f"{name}@h", when, called=CALLED[name])

    def bye(name: str, when: int) -> bytes:
        return kamailio_packet(d.STATUS_STOP, f"{name}@h", when, called=CALLED[name], method=8)

    with running_collector(config) as collector:
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            # a BYE stamped 2106: its end is the arrival, the call about 95 s
            assert await client.send(start("bye", now - 95))
            assert await client.send(bye("bye", MAX_32))
            # believable ends eleven days apart: no such call is billed
            assert await client.send(start("eleven", now - eleven_days))
            assert await client.send(bye("eleven", now))
            # calls still up when the switch says it restarted, in 2106: one of 30 s,
            # one whose Start is eleven days old
            assert await client.send(start("reset", now - 30))
            assert await client.send(start("stale", now - eleven_days))
            reset = _integer(d.ACCT_STATUS_TYPE, d.STATUS_ACCOUNTING_ON) + _integer(
                d.EVENT_TIMESTAMP, MAX_32
            )
            assert await client.send(reset)

        async def four() -> bool:
            async with connected(dsn) as conn:
                return bool(await conn.fetchval("SELECT count(*) FROM cdrs") == 4)

        await wait_for(four)
        billed = collector.metric("cdr_collector_billable_seconds_total")
    async with connected(dsn) as conn:
        found = {
            r["called_hmac"]: dict(r)
            for r in await conn.fetch(
                "SELECT called_hmac, duration_ms, incomplete, times_implausible, disconnect_time"
                " FROM cdrs"
            )
        }
    rows = {name: found[_pseudonyms.pseudonym(number[1:])] for name, number in CALLED.items()}
    assert 94_000 <= rows["bye"]["duration_ms"] <= 100_000
    assert rows["bye"]["times_implausible"] is True
    assert rows["bye"]["disconnect_time"].year < 2100
    for name in ("eleven", "stale"):
        assert rows[name]["duration_ms"] == 0, name
        assert rows[name]["incomplete"] is True, name
        assert rows[name]["times_implausible"] is True, name
    assert 29_000 <= rows["reset"]["duration_ms"] <= 60_000
    assert rows["reset"]["times_implausible"] is False  # believable, only incomplete
    assert rows["reset"]["incomplete"] is True
    assert rows["reset"]["disconnect_time"].year < 2100
    assert billed <= 100 + 60
