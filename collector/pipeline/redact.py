"""The redaction processor: CallRecord in, StoredCdr out.

This is the boundary of the privacy promise. Everything after it (database,
spool, logs, metrics) sees only the billing prefix, country, masked form and
keyed pseudonym of the called number, the country and pseudonym of the
calling number, and keyed hashes instead of session ids. It is a plain
synchronous function on one record, with no I/O, so that it can run inline on
the receive path.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from collector.config import PrivacyConfig
from collector.model import StoredCdr
from collector.pipeline.numbers import Number, NumberPlan
from collector.pipeline.plausible import MAX_DURATION_MS, max_age
from collector.pipeline.privacy import Pseudonymizer, RecordKeyer
from collector.record import KIND_RESET, KIND_VALUES, PROTOCOL_RADIUS, PROTOCOL_VALUES, CallRecord

#: an account label that looks like a number, a URI or an address is not stored
#: ("%40" and "%3A" are an "@" and a ":" that a switch URL-encoded)
_IDENTIFYING = re.compile(r"\d{5,}|@|:|\d+\.\d+\.\d+|%[0-9a-f]{2}", re.IGNORECASE)
#: digits written with separators of any kind ("030-1234-5678", "030_1234_5678",
#: "+49 30 1234 5678"): a stretch of the label without a letter in it
_DIGIT_GROUPS = re.compile(r"[^\W\d_]+")
#: this many digits anywhere in one label (letters in between or not) make it an identifier
_MAX_DIGITS: Final = 8

#: what `leg` may hold: Cisco's h323-call-origin and the JSON CDR's direction.
#: Anything else a switch sends there is stored as "other", never as sent.
LEGS = frozenset({"", "originate", "answer", "callback", "inbound", "outbound"})
OTHER_LEG: Final = "other"


def _identifying(account: str) -> bool:
    """True when the label looks like a number, URI or address (even with separators).

    Checked on the NFKC form, so that a full-width at sign, colon or digit
    counts as what it stands for.
    """
    folded = unicodedata.normalize("NFKC", account)
    if _IDENTIFYING.search(folded):
        return True
    digits = sum(c.isdigit() for c in folded)
    if digits > _MAX_DIGITS:
        return True
    return digits >= 5 and any(
        sum(c.isdigit() for c in stretch) >= 5 for stretch in _DIGIT_GROUPS.split(folded)
    )


#: plain account labels remembered at most (see Redactor.account_label)
_PLAIN_ACCOUNTS_MAX: Final = 4096


def leg_label(leg: str) -> str:
    """The leg as stored: one of LEGS, else OTHER_LEG (a vendor field may hold anything)."""
    folded = leg.replace("\x00", "").strip().lower()
    return folded if folded in LEGS else OTHER_LEG


def _within(value: int | None, low: int, high: int) -> int | None:
    """The value when it lies in [low, high], else None (the column could not hold it)."""
    return value if value is not None and low <= value <= high else None


#: how erasure tags start in `erasures` (pseudonyms start with a key id and ':')
ERASURE_TAG_PREFIX: Final = "erasure:"

#: (source, field "called" or "calling", reason from numbers.UNUSABLE_REASONS)
UnusableReport = Callable[[str, str, str], None]


class Redactor:
    """Turns CallRecords into StoredCdrs under one privacy configuration.

    National numbers are read in the region of the switch that sent them:
    `regions` maps (protocol, source name) to the region of each RADIUS
    client, SIP source or JSON sender that sets one (`Config.source_regions`);
    every other source dials in `privacy.default_region`.
    """

    def __init__(
        self,
        privacy: PrivacyConfig,
        unusable: UnusableReport | None = None,
        regions: Mapping[tuple[str, str], str] | None = None,
        high_risk_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.plan = NumberPlan(
            privacy.rate_deck_entries, privacy.default_region, privacy.mask_digits
        )
        #: one plan per region (they share the billing-prefix cache)
        self.plans: dict[str | None, NumberPlan] = {privacy.default_region: self.plan}
        #: source name → protocol → plan, for the sources with a region of their own
        self.source_plans: dict[str, dict[str, NumberPlan]] = {}
        for (protocol, source), region in (regions or {}).items():
            self.source_plans.setdefault(source, {})[protocol] = self.plan_for(region)
        #: called numbers (E.164 digits) starting with one of these are high-risk
        #: destinations ([fraud]); empty: none is
        self.high_risk_prefixes = high_risk_prefixes
        #: told (source, field, reason) of each number refused as no phone number
        self.unusable = unusable
        self.pseudonyms = Pseudonymizer(privacy.keys)
        self.keyer = RecordKeyer(privacy.record_secret)
        #: account labels found plain, as stored (a switch sends a few trunk names over
        #: and over: 10,000 instructions each to check again). Never a label that
        #: looked like a number or an address: those are checked every time.
        self._plain_accounts: dict[str, str | None] = {}
        #: times older than this at arrival are not believed
        self.max_age = max_age(privacy.retention_days)
        #: erasure tags of erased numbers (`erasure_tag`), loaded from the
        #: database: pseudonyms rotate with the keys, these do not
        self.erased: frozenset[str] = frozenset()
        #: each source's restarts (Accounting-On/Off) as dated in their records, oldest
        #: first: seen here, or recorded by any collector in the database (see `generation`)
        self.resets: dict[str, list[datetime]] = {}
        #: told of each restart first seen in a record here (by the service, when
        #: other processes of the collector must know of it at once: collector.workers)
        self.relay: Callable[[str, datetime], None] | None = None

    def note_reset(self, source: str, when: datetime) -> bool:
        """Remember a restart of `source`: its session ids count anew after `when`.
        True when it was not known here yet."""
        known = self.resets.setdefault(source, [])
        at = bisect.bisect_left(known, when)
        if at == len(known) or known[at] != when:
            known.insert(at, when)
            return True
        return False

    def learn_resets(self, recorded: dict[str, list[datetime]]) -> int:
        """Add restarts learnt elsewhere (the database, another process of this
        collector), not relayed again; how many were new here."""
        new = 0
        for source, times in recorded.items():
            for when in times:
                new += self.note_reset(source, when)
        return new

    def generation(self, source: str, when: datetime) -> str:
        """Which generation of `source`'s session ids a record of `when` belongs to.

        A switch that reboots may count its Acct-Session-Ids from the start
        again; a record whose packet carries no setup time of its own would
        then get the key of an earlier call and be dropped as its duplicate.
        Its generation, the last restart before it ("" before any), joins
        its key. Judged by the record's own time, so a Stop of a call from
        before the restart, sent late, still belongs to the earlier one.
        Restarts are announced in RADIUS accounting and only RADIUS session
        ids are counters: a SIP dialog or a JSON CDR's uuid of a source with
        the same name keeps its key across them (a SIP call up during a
        proxy restart must end under the key it began with).
        """
        known = self.resets.get(source)
        if not known:
            return ""
        at = bisect.bisect_right(known, when)
        return known[at - 1].isoformat() if at else ""

    def erasure_tag(self, digits: str) -> str:
        """A number's tag in `erasures` that survives key rotation (record secret, own domain).

        `erase` records it beside the number's pseudonyms. A record of an
        erased number pseudonymized under a key made after the erasure would
        carry a pseudonym `erasures` does not know; while the tag is in
        `erased`, `redact` puts the tag in its place, and the sink drops the
        row as it drops any row carrying an erased pseudonym.
        """
        return ERASURE_TAG_PREFIX + self.keyer.key("erasure", digits).hex()

    def plan_for(self, region: str | None) -> NumberPlan:
        """The number plan of `region` (made once, then shared by every source in it)."""
        plan = self.plans.get(region)
        if plan is None:
            plan = self.plans[region] = self.plan.for_region(region)
        return plan

    def erasure_entries(self, raw: str, region: str | None = None) -> list[str]:
        """What `erase` records for `raw`: its pseudonyms under every key, and its tag.

        A national number is read in `region` (default: `privacy.default_region`);
        a number in international form is the same in every region.
        """
        plan = self.plan if region is None else self.plan_for(region)
        number = plan.normalize(raw)
        if not isinstance(number, Number):
            return []
        return [*self.pseudonyms.all_pseudonyms(number.digits), self.erasure_tag(number.digits)]

    def number_pseudonyms(self, raw: str, region: str | None = None) -> list[str]:
        """Every pseudonym a stored row may carry for `raw` (its erasure entries but the tag)."""
        return self.erasure_entries(raw, region)[:-1]

    def account_label(self, account: str | None) -> str | None:
        """The account as stored: kept when it is a plain label (a trunk or customer
        name), dropped when it looks like a number, URI or address.

        Dropped rather than pseudonymized: a switch often puts the calling
        number in User-Name, and a pseudonym of it under another name would
        escape `erase`.
        """
        if not account:
            return None
        cache = self._plain_accounts
        if account in cache:
            return cache[account]
        if _identifying(account):
            return None
        kept = "".join(c for c in account if c.isprintable())[:64].strip() or None
        if len(cache) >= _PLAIN_ACCOUNTS_MAX:
            cache.clear()
        cache[account] = kept
        return kept

    def redact(self, record: CallRecord, received_at: datetime) -> StoredCdr:
        """Reduce one record, already normalized (see pipeline.intake.normalize), to
        what billing needs."""
        plan = self.plan
        if self.source_plans:
            by_protocol = self.source_plans.get(record.source)
            if by_protocol is not None:
                plan = by_protocol.get(record.protocol, plan)
        pseudonym = self.pseudonyms.pseudonym
        called = plan.normalize(record.called)
        if isinstance(called, Number):
            where = plan.destination(called)
            called_prefix, called_country, called_destination = (
                where.prefix,
                where.country,
                where.destination,
            )
            called_masked: str | None = plan.mask(called)
            called_hmac: str | None = pseudonym(called.digits)
            high_risk: bool | None = called.e164 and called.digits.startswith(
                self.high_risk_prefixes
            )
        else:
            called_prefix = called_country = called_destination = called_masked = called_hmac = None
            high_risk = None
            if called is not None and self.unusable is not None:
                self.unusable(record.source, "called", called.reason)
        calling = plan.normalize(record.calling)
        if isinstance(calling, Number):
            calling_country = plan.country(calling)
            calling_hmac: str | None = pseudonym(calling.digits)
        else:
            calling_country = calling_hmac = None
            if calling is not None and self.unusable is not None:
                self.unusable(record.source, "calling", calling.reason)
        erased = self.erased
        if erased:
            if isinstance(called, Number) and (tag := self.erasure_tag(called.digits)) in erased:
                called_hmac = tag
            if isinstance(calling, Number) and (tag := self.erasure_tag(calling.digits)) in erased:
                calling_hmac = tag

        keyer = self.keyer
        source, session, leg = record.source, record.session_id, record.leg
        if (
            record.kind is KIND_RESET
            and self.note_reset(source, record.event_time)
            and self.relay is not None
        ):
            self.relay(source, record.event_time)
        if (
            record.setup_stamp is None
            and record.protocol is PROTOCOL_RADIUS
            and (generation := self.generation(source, record.event_time))
        ):
            record_key = keyer.key(source, session, leg, "", generation)
        else:
            # (without a generation the key is what every earlier release made)
            record_key = keyer.key(source, session, leg, record.setup_stamp or "")
        # positional: the generated __new__ matches 29 keywords in 1.3 µs, positions in
        # 0.45 µs; mypy still checks each position's type (field names alongside)
        return StoredCdr(
            KIND_VALUES[record.kind],  # kind
            record_key,  # record_key
            source,  # source
            PROTOCOL_VALUES[record.protocol],  # protocol
            self.account_label(record.account),  # account
            leg_label(leg),  # leg
            record.setup_time,  # setup_time
            record.connect_time,  # connect_time
            record.disconnect_time,  # disconnect_time
            _within(record.duration_ms, 0, MAX_DURATION_MS),  # duration_ms
            record.answered,  # answered
            _within(record.disconnect_cause, 0, 127),  # disconnect_cause
            _within(record.sip_code, 100, 699),  # sip_code
            _within(record.pdd_ms, 0, 2**31 - 1),  # pdd_ms
            called_prefix,  # called_prefix
            called_country,  # called_country
            called_destination,  # called_destination
            called_masked,  # called_masked
            called_hmac,  # called_hmac
            calling_country,  # calling_country
            calling_hmac,  # calling_hmac
            # correlation_hmac
            keyer.key("corr", record.correlation).hex() if record.correlation else None,
            keyer.key("call-id", record.call_id).hex() if record.call_id else None,  # call_id_hmac
            high_risk,  # high_risk
            record.times_derived,  # times_derived
            record.clock_unsynced,  # clock_unsynced
            record.times_implausible,  # times_implausible
            record.incomplete,  # incomplete
            record.event_time,  # event_time
            received_at,  # received_at
        )
