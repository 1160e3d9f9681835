"""The intake stage, the receivers' registry, and the one rule for billing facts.

Receivers are built from the configuration's list of sections and hand their
records to an intake; the service's intake normalizes, redacts and submits.
Whether a call was answered and how long it is billed is decided by
pipeline.billing, in Python before redaction and, for a Stop completed from
its Start, in the sink's SQL built from the same module: the two must agree.
"""

from __future__ import annotations

import ast
import base64
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.config import RECEIVERS, PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind, StoredCdr
from collector.pipeline.billing import answered_sql, duration_sql, settle
from collector.pipeline.intake import Ack, Pipeline
from collector.pipeline.plausible import MAX_DURATION_MS
from collector.pipeline.redact import Redactor
from collector.receivers import receiver_factory
from collector.receivers.files.config import FilesConfig, FileSource
from collector.receivers.json_config import JsonConfig
from collector.receivers.radius.config import RadiusClient, RadiusConfig
from collector.receivers.sip.config import SipConfig, SipSource
from collector.settings import schema_keys
from collector.telemetry import Telemetry
from tests.daemon import PSEUDONYM_KEY, connected
from tests.intake import FakeIntake

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECEIVERS_DIR = Path(__file__).resolve().parent.parent / "collector" / "receivers"


def _redactor() -> Redactor:
    return Redactor(
        PrivacyConfig(keys=(("t1", base64.b64decode(PSEUDONYM_KEY)),), record_secret=b"r" * 32)
    )


def _stop(**fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "kind": RecordKind.STOP,
        "source": "sbc-1",
        "protocol": Protocol.RADIUS,
        "session_id": "intake-1",
        "event_time": NOW,
        "disconnect_time": NOW,
        "called": "+4930123456",
    }
    values.update(fields)
    return CallRecord(**values)


def test_the_pipeline_normalizes_redacts_and_submits_with_the_acknowledgement() -> None:
    submitted: list[tuple[StoredCdr, Ack | None]] = []
    accepting = True

    def submit(row: StoredCdr, ack: Ack | None) -> bool:
        if accepting:
            submitted.append((row, ack))
        return accepting

    acks: list[bool] = []
    intake = Pipeline(_redactor(), submit)
    connect = NOW - timedelta(seconds=42, milliseconds=500)
    assert intake.accept(_stop(connect_time=connect), NOW, acks.append)
    row, ack = submitted[0]
    # billing facts decided, then redacted: no number, a duration from the times
    assert (row.answered, row.duration_ms) == (True, 42_500)
    assert row.called_hmac is not None and row.called_hmac.startswith("t1:")
    assert "4930123456" not in repr(row)
    assert row.received_at == NOW
    assert ack is not None
    ack(True)
    assert acks == [True]
    # a time the switch cannot have meant is mended before the rule runs
    assert intake.accept(
        _stop(session_id="intake-2", disconnect_time=datetime(2106, 1, 1, tzinfo=UTC)), NOW
    )
    assert submitted[1][0].disconnect_time == NOW and submitted[1][0].times_implausible
    accepting = False
    assert not intake.accept(_stop(session_id="intake-3"), NOW, acks.append)
    assert len(submitted) == 2 and acks == [True]


def test_a_reload_swaps_the_keys_in_the_intake_only() -> None:
    rows: list[StoredCdr] = []

    def submit(row: StoredCdr, _ack: Ack | None) -> bool:
        rows.append(row)
        return True

    intake = Pipeline(_redactor(), submit)
    intake.accept(_stop(), NOW)
    intake.redactor = Redactor(PrivacyConfig(keys=(("t2", b"k" * 32),), record_secret=b"r" * 32))
    intake.accept(_stop(session_id="intake-2"), NOW)
    assert [row.called_hmac.split(":")[0] for row in rows if row.called_hmac] == ["t1", "t2"]


def _sections() -> dict[str, Any]:
    return {
        "radius": RadiusConfig(
            listen=("127.0.0.1:0",), clients=(RadiusClient("sbc-1", "127.0.0.1", b"secret"),)
        ),
        "sip": SipConfig(listen=("127.0.0.1:0",), sources=(SipSource("proxy-1", "127.0.0.1"),)),
        "json": JsonConfig(listen="127.0.0.1:0", allowed=("127.0.0.1/32",)),
        "files": FilesConfig(sources=(FileSource("pbx-1", tempfile.gettempdir(), "asterisk-csv"),)),
    }


async def test_every_receiver_is_built_from_the_registry_with_one_lifecycle() -> None:
    sections = _sections()
    assert set(sections) == set(RECEIVERS)
    for name, schema in RECEIVERS.items():
        receiver = receiver_factory(schema)(sections[name], FakeIntake(), Telemetry())
        assert receiver.section == name
        receiver.bind([])
        await receiver.start()
        # a receiver with a listen address binds it; one that reads directories binds none
        listens = any(key == "listen" for _table, key in schema_keys(schema))
        assert bool(receiver.addresses) == listens
        assert all(port > 0 for _host, port in receiver.addresses)
        receiver.reload(sections[name])
        receiver.pause()
        await receiver.stop()
        await receiver.stop()  # idempotent
        # and stop without start
        await receiver_factory(schema)(sections[name], FakeIntake(), Telemetry()).stop()


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_receivers_know_neither_the_redactor_nor_the_writer() -> None:
    modules = sorted(RECEIVERS_DIR.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        for name in _imports(path):
            assert not name.startswith("collector.sink"), (path, name)
            assert not name.startswith("collector.pipeline.redact"), (path, name)
            assert not name.startswith("collector.pipeline.intake.Pipeline"), (path, name)


#: (answered sent, connect time, disconnect time, duration sent) of Stops
_CASES: list[tuple[bool | None, datetime | None, datetime | None, int | None]] = [
    (None, None, NOW, None),
    (None, NOW - timedelta(seconds=10), NOW, None),
    (None, NOW, NOW, None),
    (None, None, NOW, 0),
    (None, None, NOW, 5000),
    (None, NOW - timedelta(seconds=10), NOW, 0),
    (True, None, NOW, None),
    (True, NOW - timedelta(seconds=3), NOW, None),
    (True, None, NOW, 7000),
    (False, NOW - timedelta(seconds=10), NOW, 9000),
    (False, None, NOW, None),
    (None, NOW - timedelta(milliseconds=MAX_DURATION_MS + 1), NOW, None),
    (True, NOW - timedelta(milliseconds=MAX_DURATION_MS + 1), NOW, None),
]


async def test_python_and_sql_decide_billing_facts_alike(dsn: str) -> None:
    """The sink's expressions give what `settle` gives, for every shape of Stop
    (the SQL bills 0 where Python leaves an unbelievable span unbilled)."""
    span = (
        "CASE WHEN $2::timestamptz IS NOT NULL AND $3::timestamptz IS NOT NULL"
        " THEN greatest(0, round(extract(epoch FROM $3 - $2) * 1000))::bigint END"
    )
    answered = answered_sql("$1::boolean", "$2::timestamptz", "$4::bigint")
    query = (
        f"SELECT a, {duration_sql('a', '$4::bigint', span)} AS d FROM (SELECT {answered} AS a) x"
    )
    async with connected(dsn) as conn:
        for sent, connect, disconnect, duration in _CASES:
            record = settle(
                _stop(
                    answered=sent,
                    connect_time=connect,
                    disconnect_time=disconnect,
                    duration_ms=duration,
                )
            )
            row = await conn.fetchrow(query, sent, connect, disconnect, duration)
            case = (sent, connect, disconnect, duration)
            if record.answered is None:
                # left open in Python (completed from the Start in the database): unanswered there
                assert row["a"] is False and row["d"] == 0, case
                continue
            assert row["a"] == record.answered, case
            assert row["d"] == (record.duration_ms or 0), case
