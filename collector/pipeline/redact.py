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

#: an account label that looks like a number, a URI or an address is pseudonymized
_IDENTIFYING = re.compile(r"\d{5,}|@|:|\d+\.\d+\.\d+")


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
        """The account as stored: kept when it is a plain label, pseudonymized when it
        looks like a number, URI or address."""
        if not account:
            return None
        if _IDENTIFYING.search(account):
            return self.pseudonyms.pseudonym("account\x1f" + account)
        return account[:64]

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

        keyer = self.keyer
        source, session, leg = record.source, record.session_id, record.leg
        return StoredCdr(
            kind=record.kind.value,
            record_key=keyer.key(source, session, leg, record.setup_stamp or ""),
            source=source,
            protocol=record.protocol.value,
            account=self.account_label(record.account),
            leg=leg,
            setup_time=record.setup_time,
            connect_time=connect,
            disconnect_time=disconnect,
            duration_ms=duration_ms,
            answered=answered,
            disconnect_cause=record.disconnect_cause,
            sip_code=record.sip_code,
            pdd_ms=record.pdd_ms,
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
