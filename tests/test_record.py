"""`CallRecord`, written out as a class (collector.record): what a dataclass gave for free.

Its field list, constructor, `values()`, `copy()`, `replace()` and equality
are each spelled out, so each is checked against the others: a field added
to one and forgotten in another fails here. And its repr, which can end up
in a log or a traceback, shows neither a number nor the session id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.model import CallRecord, Protocol, RecordKind

WHEN = datetime(2026, 12, 7, 12, tzinfo=UTC)


def full_record() -> CallRecord:
    """A record whose every field holds a value of its own (no two alike)."""
    return CallRecord(
        kind=RecordKind.STOP,
        source="sbc-1",
        protocol=Protocol.RADIUS,
        session_id="SESSION-0001",
        event_time=WHEN,
        leg="originate",
        setup_stamp="12:00:00.000 UTC Mon Dec 7 2026",
        account="trunk-a",
        calling="+4930123456789",
        called="+442071234567",
        setup_time=WHEN - timedelta(seconds=70),
        connect_time=WHEN - timedelta(seconds=60),
        disconnect_time=WHEN - timedelta(seconds=1),
        duration_ms=59_000,
        answered=True,
        disconnect_cause=16,
        sip_code=200,
        pdd_ms=4000,
        times_derived=True,
        clock_unsynced=True,
        times_implausible=True,
        incomplete=True,
        correlation="conf-1",
        call_id="call-id-1@host",
    )


def other(value: object) -> object:
    """A value of the same type as `value`, and different."""
    if isinstance(value, RecordKind):
        return RecordKind.START if value is not RecordKind.START else RecordKind.STOP
    if isinstance(value, Protocol):
        return Protocol.SIP if value is not Protocol.SIP else Protocol.RADIUS
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    raise AssertionError(f"no other value for {value!r}")


def test_fields_are_the_constructors_parameters_in_order() -> None:
    record = full_record()
    values: tuple[Any, ...] = record.values()
    fields: dict[str, Any] = dict(zip(CallRecord.FIELDS, values, strict=True))
    by_keyword = CallRecord(**fields)
    by_position = CallRecord(*values)
    assert by_keyword == by_position == record


def test_values_copy_and_equality_cover_every_field() -> None:
    record = full_record()
    assert record.values() == tuple(getattr(record, name) for name in CallRecord.FIELDS)
    copied = record.copy()
    assert copied == record and copied is not record
    assert copied.values() == record.values()
    for name in CallRecord.FIELDS:
        before = getattr(record, name)
        changed = record.replace(**{name: other(before)})
        assert changed != record, name  # every field takes part in equality
        assert getattr(changed, name) == other(before), name
        assert getattr(record, name) == before, name  # the original is untouched
        assert changed.replace(**{name: before}) == record, name


def test_replace_refuses_what_is_no_field() -> None:
    with pytest.raises(TypeError, match="no field 'calling_number'"):
        full_record().replace(calling_number="+4930123456789")


def test_a_record_is_no_dict_key() -> None:
    # changeable, as a dataclass without frozen=True: equal records could hash apart
    with pytest.raises(TypeError):
        hash(full_record())


def test_repr_shows_no_number_and_no_session() -> None:
    text = repr(full_record())
    for secret in ("4930123456789", "442071234567", "SESSION-0001", "call-id-1", "conf-1"):
        assert secret not in text
    assert "kind=stop" in text and "protocol=radius" in text
