"""The redaction processor: CallRecord in, StoredCdr out.

This is the boundary of the privacy promise. Everything after it (database,
spool, logs, metrics) sees only the billing prefix, country, masked form and
keyed pseudonym of the called number, the country and pseudonym of the
calling number, and keyed hashes instead of session ids. It is a plain
synchronous function on one record, with no I/O, so that it can run inline on
the receive path.
"""

from __future__ import annotations

import re
from datetime import datetime

from collector.config import PrivacyConfig
from collector.model import CallRecord, RecordKind, StoredCdr
from collector.pipeline.numbers import NumberPlan
from collector.pipeline.privacy import Pseudonymizer, RecordKeyer

#: an account label that looks like a number, a URI or an address is not stored
_IDENTIFYING = re.compile(r"\d{5,}|@|:|\d+\.\d+\.\d+")
#: digits written with separators ("030-1234-5678", "+49 30 1234 5678")
_DIGIT_GROUPS = re.compile(r"\+?\d[\d\s\-./()]*\d")


def _identifying(account: str) -> bool:
    """True when the label looks like a number, URI or address (even with separators)."""
    if _IDENTIFYING.search(account):
        return True
    return any(sum(c.isdigit() for c in m.group()) >= 5 for m in _DIGIT_GROUPS.finditer(account))


def _within(value: int | None, low: int, high: int) -> int | None:
    """The value when it lies in [low, high], else None (the column could not hold it)."""
    return value if value is not None and low <= value <= high else None


def _clean_text(value: str, limit: int) -> str:
    """Text PostgreSQL accepts (no NUL), cut to a sane length."""
    return value.replace("\x00", "")[:limit]


class Redactor:
    """Turns CallRecords into StoredCdrs under one privacy configuration."""

    def __init__(self, privacy: PrivacyConfig) -> None:
        self.plan = NumberPlan(
            privacy.rate_deck_entries, privacy.default_region, privacy.mask_digits
        )
        self.pseudonyms = Pseudonymizer(privacy.keys)
        self.keyer = RecordKeyer(privacy.record_secret)

    def number_pseudonyms(self, raw: str) -> list[str]:
        """Every pseudonym a stored row may carry for `raw` (for erasure requests)."""
        number = self.plan.normalize(raw)
        if number is None:
            return []
        return self.pseudonyms.all_pseudonyms(number.digits)

    def account_label(self, account: str | None) -> str | None:
        """The account as stored: kept when it is a plain label (a trunk or customer
        name), dropped when it looks like a number, URI or address.

        Dropped rather than pseudonymized: a switch often puts the calling
        number in User-Name, and a pseudonym of it under another name would
        escape `erase`.
        """
        if not account or _identifying(account):
            return None
        return account.replace("\x00", "")[:64] or None

    def redact(self, record: CallRecord, received_at: datetime) -> StoredCdr:
        """Reduce one record to what billing needs."""
        plan = self.plan
        pseudonym = self.pseudonyms.pseudonym
        called = plan.normalize(record.called)
        if called is not None:
            where = plan.destination(called)
            called_prefix, called_country, called_destination = (
                where.prefix,
                where.country,
                where.destination,
            )
            called_masked: str | None = plan.mask(called)
            called_hmac: str | None = pseudonym(called.digits)
        else:
            called_prefix = called_country = called_destination = called_masked = called_hmac = None
        calling = plan.normalize(record.calling)
        if calling is not None:
            calling_country = plan.country(calling)
            calling_hmac: str | None = pseudonym(calling.digits)
        else:
            calling_country = calling_hmac = None

        duration_ms = record.duration_ms
        connect, disconnect = record.connect_time, record.disconnect_time
        if duration_ms is None and connect is not None and disconnect is not None:
            duration_ms = max(0, round((disconnect - connect).total_seconds() * 1000))
        answered = record.answered
        if answered is None and record.kind is RecordKind.STOP:
            if duration_ms is not None:
                answered = duration_ms > 0 or connect is not None
            elif connect is not None:
                answered = True
        if answered is False:
            duration_ms = 0

        if duration_ms is not None:
            duration_ms = min(max(duration_ms, 0), 10 * 86400 * 1000)
        keyer = self.keyer
        source, session, leg = record.source, record.session_id, record.leg
        return StoredCdr(
            kind=record.kind.value,
            record_key=keyer.key(source, session, leg, record.setup_stamp or ""),
            source=source,
            protocol=record.protocol.value,
            account=self.account_label(record.account),
            leg=_clean_text(leg, 128),
            setup_time=record.setup_time,
            connect_time=connect,
            disconnect_time=disconnect,
            duration_ms=duration_ms,
            answered=answered,
            disconnect_cause=_within(record.disconnect_cause, 0, 127),
            sip_code=_within(record.sip_code, 100, 699),
            pdd_ms=_within(record.pdd_ms, 0, 2**31 - 1),
            called_prefix=called_prefix,
            called_country=called_country,
            called_destination=called_destination,
            called_masked=called_masked,
            called_hmac=called_hmac,
            calling_country=calling_country,
            calling_hmac=calling_hmac,
            correlation_hmac=keyer.key("corr", record.correlation).hex()
            if record.correlation
            else None,
            times_derived=record.times_derived,
            clock_unsynced=record.clock_unsynced,
            incomplete=record.incomplete,
            event_time=record.event_time,
            received_at=received_at,
        )
