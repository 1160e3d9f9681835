"""A switch that restarts may count its session ids from the start again.

With the generic profile a record's key rests on the Acct-Session-Id (the
packet carries no setup time of its own), so a new call reusing an old id
after the switch's Accounting-On was answered and dropped as a duplicate.
Each restart now starts a generation of session ids: the new call is stored,
while retransmissions of either call, late ones from before the restart, a
restarted collector and a second collector on the same database still end in
one row per call.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.config import PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.privacy import Pseudonymizer
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.retention import purge
from collector.traffic import AccountingClient
from tests.daemon import (
    PSEUDONYM_KEY,
    RECORD_KEY,
    SECRET,
    Collector,
    CollectorConfig,
    connected,
    run_command,
    running_collector,
)

SESSION = "00000042"  # what a switch's counter says again after its reboot
_pseudonyms = Pseudonymizer((("t1", base64.b64decode(PSEUDONYM_KEY)),))


def _integer(number: int, value: int) -> bytes:
    return codec.encode_attribute(number, codec.integer(value))


def _stop(called: str, event: datetime, seconds: int, session: str = SESSION) -> bytes:
    return b"".join(
        (
            _integer(d.ACCT_STATUS_TYPE, d.STATUS_STOP),
            codec.encode_attribute(d.ACCT_SESSION_ID, session.encode()),
            codec.encode_attribute(d.CALLING_STATION_ID, b"+493012345678"),
            codec.encode_attribute(d.CALLED_STATION_ID, called.encode()),
            _integer(d.ACCT_SESSION_TIME, seconds),
            _integer(d.EVENT_TIMESTAMP, int(event.timestamp())),
        )
    )


def _accounting_on(event: datetime) -> bytes:
    return _integer(d.ACCT_STATUS_TYPE, d.STATUS_ACCOUNTING_ON) + _integer(
        d.EVENT_TIMESTAMP, int(event.timestamp())
    )


async def _called(dsn: str) -> list[tuple[str, int]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT called_hmac, duration_ms FROM cdrs ORDER BY duration_ms")
    return [(row["called_hmac"], row["duration_ms"]) for row in rows]


async def _send(collector: Collector, *packets: bytes) -> None:
    async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
        for packet in packets:
            assert await client.send(packet)


async def test_a_session_id_reused_after_a_restart_is_a_new_call(tmp_path: Path, dsn: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def call(number: int, session: str, minutes_ago: int, seconds: int) -> bytes:
        return _stop(
            f"+4420794605{number:02d}", now - timedelta(minutes=minutes_ago), seconds, session
        )

    def row(number: int, seconds: int) -> tuple[str, int]:
        return (_pseudonyms.pseudonym(f"4420794605{number:02d}"), seconds * 1000)

    # before the switch's reboot: sessions 42, 43 and 44
    before = [call(1, "00000042", 30, 30), call(3, "00000043", 29, 31), call(5, "00000044", 28, 32)]
    restart = _accounting_on(now - timedelta(minutes=20))
    # after it, its counter says 42, 43 and 44 again, for other calls
    after = [call(2, "00000042", 10, 45), call(4, "00000043", 9, 46), call(6, "00000044", 8, 47)]
    expected = [row(1, 30), row(3, 31), row(5, 32)]
    config = CollectorConfig(directory=tmp_path / "a", dsn=dsn, profile="generic")
    collector = Collector(config)
    collector.start()
    try:
        await _send(collector, *before, restart, after[0])
        expected.append(row(2, 45))
        assert await _called(dsn) == expected
        # retransmissions (new Identifiers) of both calls of session 42, the earlier one late
        await _send(collector, after[0], before[0], after[0])
        assert await _called(dsn) == expected
        assert collector.metric("cdr_collector_records_duplicate_total") == 3
        # a restarted collector knows the switch's restart from the database
        collector.stop()
        collector.start()
        await _send(collector, after[1], after[0], before[1])
        expected.append(row(4, 46))
        assert await _called(dsn) == expected
    finally:
        collector.stop()
        collector.close()
    # so does another collector writing to the same database
    other = CollectorConfig(directory=tmp_path / "b", dsn=dsn, profile="generic")
    with running_collector(other) as second:
        await _send(second, after[2], after[1], before[2])
    expected.append(row(6, 47))
    assert await _called(dsn) == expected
    async with connected(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM source_resets") == 1


def _redactor() -> Redactor:
    return Redactor(
        PrivacyConfig(
            keys=(("t1", base64.b64decode(PSEUDONYM_KEY)),),
            record_secret=base64.b64decode(RECORD_KEY),
        )
    )


def _record(kind: RecordKind, when: datetime, stamp: str | None = None) -> CallRecord:
    return CallRecord(
        kind=kind,
        source="sbc-a",
        protocol=Protocol.RADIUS,
        session_id=SESSION if kind is not RecordKind.RESET else "",
        event_time=when,
        setup_stamp=stamp,
    )


def test_generations_follow_the_records_own_time() -> None:
    base = datetime(2026, 12, 6, 12, tzinfo=UTC)
    redactor = _redactor()
    first = redactor.redact(_record(RecordKind.STOP, base), base)
    # a switch that never restarted keeps the keys earlier releases made
    assert first.record_key == redactor.keyer.key("sbc-a", SESSION, "", "")
    redactor.redact(_record(RecordKind.RESET, base + timedelta(hours=1)), base)
    start = redactor.redact(_record(RecordKind.START, base + timedelta(hours=2)), base)
    stop = redactor.redact(_record(RecordKind.STOP, base + timedelta(hours=3)), base)
    late = redactor.redact(_record(RecordKind.STOP, base + timedelta(minutes=5)), base)
    assert start.record_key == stop.record_key != first.record_key  # one call, a new key
    assert late.record_key == first.record_key  # a Stop from before the restart, sent late
    # a packet that carries its own setup time is keyed by it, restarts or not
    stamped = redactor.redact(_record(RecordKind.STOP, base + timedelta(hours=3), "T1"), base)
    assert stamped.record_key == redactor.keyer.key("sbc-a", SESSION, "", "T1")
    # restarts learned from the database in any order give the same generations
    other = _redactor()
    assert other.learn_resets({"sbc-a": [base + timedelta(hours=1)]}) == 1
    assert other.learn_resets({"sbc-a": [base + timedelta(hours=1)]}) == 0
    again = other.redact(_record(RecordKind.STOP, base + timedelta(hours=3)), base)
    assert again.record_key == stop.record_key


async def test_restarts_are_kept_while_keys_of_their_calls_can_be(tmp_path: Path, dsn: str) -> None:
    """Retention forgets a restart only once the next one, too, is older than the keys
    it keeps; a source's latest restart is never forgotten."""
    config = CollectorConfig(directory=tmp_path / "a", dsn=dsn)
    assert run_command("migrate", "--config", str(config.render())).returncode == 0
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=300)  # retention is 180 days
    async with connected(dsn) as conn:
        for source, reset_at, seen_at in (
            ("sbc-a", long_ago, long_ago),  # followed by an old restart: forgotten
            ("sbc-a", long_ago + timedelta(days=1), long_ago),  # followed by a recent one
            ("sbc-a", now - timedelta(days=1), now),
            ("sbc-b", long_ago, long_ago),  # its latest, however old
        ):
            await conn.execute(
                "INSERT INTO source_resets (source, reset_at, seen_at) VALUES ($1, $2, $3)",
                source,
                reset_at,
                seen_at,
            )
        result = await purge(conn, 180)
        kept = await conn.fetch("SELECT source, reset_at FROM source_resets ORDER BY 1, 2")
    assert result.resets_expired == 1
    assert [(r["source"], r["reset_at"]) for r in kept] == [
        ("sbc-a", long_ago + timedelta(days=1)),
        ("sbc-a", now - timedelta(days=1)),
        ("sbc-b", long_ago),
    ]


def test_a_restart_announced_in_radius_leaves_sip_and_json_keys_alone() -> None:
    """A Kamailio named alike for its RADIUS accounting and its HEP copies restarts
    during a call: the call's SIP start and end keep one key, or its end would not
    find its start; RADIUS records of the same name do change generation."""
    base = datetime(2026, 12, 6, 12, tzinfo=UTC)
    redactor = _redactor()
    sip_start = redactor.redact(
        _record(RecordKind.START, base).replace(protocol=Protocol.SIP), base
    )
    redactor.redact(_record(RecordKind.RESET, base + timedelta(minutes=1)), base)
    for protocol in (Protocol.SIP, Protocol.JSON):
        after = _record(RecordKind.STOP, base + timedelta(minutes=2)).replace(protocol=protocol)
        assert redactor.redact(after, base).record_key == sip_start.record_key, protocol
    radius_after = redactor.redact(_record(RecordKind.STOP, base + timedelta(minutes=2)), base)
    assert radius_after.record_key != sip_start.record_key
