"""Numbers, pseudonyms and redaction: the privacy boundary, checked field by field.

Expected prefixes and countries are facts of the numbering plans (Berlin is
+49 30, London +44 20, Manhattan +1 212 ...), written down here, not computed
with the code under test. The property tests use random numbers from every
country code phonenumbers knows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat as PNF

from collector.config import PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind, StoredCdr
from collector.pipeline.numbers import Number, NumberPlan, Unusable, strip_uri
from collector.pipeline.privacy import Pseudonymizer, RecordKeyer
from collector.pipeline.redact import _PLAIN_ACCOUNTS_MAX, Redactor
from collector.receivers.radius import codec, profiles
from collector.receivers.radius import dictionary as d

PROPERTIES = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_NEW = ("k2024b", b"N" * 32)
KEY_OLD = ("k2024a", b"O" * 32)
RECORD_SECRET = b"record-secret-of-32-bytes-000000"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

BERLIN = "493012345678"  # +49 30 12345678


def privacy(
    keys: tuple[tuple[str, bytes], ...] = (KEY_NEW, KEY_OLD),
    mask_digits: int = 3,
    default_region: str | None = "DE",
    rate_deck: tuple[tuple[str, str], ...] = (),
) -> PrivacyConfig:
    return PrivacyConfig(
        keys=keys,
        record_secret=RECORD_SECRET,
        mask_digits=mask_digits,
        default_region=default_region,
        rate_deck_entries=rate_deck,
    )


def e164(plan: NumberPlan, raw: str) -> Number:
    number = plan.normalize(raw)
    assert isinstance(number, Number)
    return number


# -- normalization ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+493012345678",
        "00493012345678",
        "493012345678",
        "+49 30 1234 5678",
        "+49 (30) 1234-5678",
        "tel:+493012345678;phone-context=x",
        "tel:+49-30-1234-5678",
        "sip:+493012345678@host;user=phone",
        "sips:+493012345678@host.example:5061;user=phone",
        '"Name" <sip:00493012345678@h>',
        "Name <sip:+493012345678@192.0.2.1;user=phone>;tag=abc",
        "<tel:+493012345678>",
        "030 12345678",
        "030-1234-5678",
        "03012345678",
    ],
)
def test_every_usual_form_normalizes_to_the_same_e164(raw: str) -> None:
    plan = NumberPlan(default_region="DE")
    assert plan.normalize(raw) == Number(BERLIN, True)


def test_national_number_needs_a_default_region() -> None:
    number = NumberPlan().normalize("030 12345678")
    assert isinstance(number, Number)
    assert number.e164 is False  # without a region nobody can say which country "030" is


def test_national_number_of_another_region() -> None:
    plan = NumberPlan(default_region="GB")
    assert plan.normalize("020 7123 4567") == Number("442071234567", True)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "unknown",
        "restricted",
        "sip:anonymous@anonymous.invalid",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
    ],
)
def test_no_number_at_all(raw: str | None) -> None:
    assert NumberPlan(default_region="DE").normalize(raw) is None


@pytest.mark.parametrize("raw", ["112", "110", "19222", "1234", "sip:112@sos.example"])
def test_short_codes_are_not_e164_and_have_no_destination(raw: str) -> None:
    plan = NumberPlan(default_region="DE")
    number = e164(plan, raw)
    assert number.e164 is False
    assert plan.destination(number).prefix is None
    assert plan.destination(number).country is None
    assert plan.country(number) is None


def test_strip_uri() -> None:
    assert strip_uri('"A B" <sip:+4930123@h;user=phone>') == "+4930123"
    assert strip_uri("tel:+4930123;ext=1") == "+4930123"
    assert strip_uri("sip:4930123@h?subject=x") == "4930123"
    assert strip_uri("  +4930123  ") == "+4930123"


# -- billing prefix and country ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "prefix", "country"),
    [
        ("+493012345678", "+4930", "DE"),  # Berlin
        ("+4915123456789", "+491512", "DE"),  # mobile, NDC 1512
        ("+4917012345678", "+49170", "DE"),  # mobile, NDC 170
        ("+442071234567", "+4420", "GB"),  # London
        ("+447400123456", "+447400", "GB"),  # UK mobile
        ("+12125550123", "+1212", "US"),  # Manhattan
        ("+14165550123", "+1416", "CA"),  # Toronto shares +1
        ("+79161234567", "+7916", "RU"),
        ("+77011234567", "+7701", "KZ"),  # Kazakhstan shares +7
        ("+390612345678", "+3906", "IT"),  # Rome keeps its leading 0
        ("+33612345678", "+336", "FR"),
    ],
)
def test_prefix_is_country_code_plus_destination_code(raw: str, prefix: str, country: str) -> None:
    plan = NumberPlan()
    number = e164(plan, raw)
    assert plan.destination(number).prefix == prefix
    assert plan.destination(number).country == country
    assert plan.country(number) == country


def test_rate_deck_longest_match_wins() -> None:
    deck = (("49", "Germany"), ("4930", "Germany Berlin"), ("49151", "Germany Mobile"))
    plan = NumberPlan(rate_deck=deck)
    berlin = plan.destination(e164(plan, "+493012345678"))
    assert (berlin.prefix, berlin.destination, berlin.country) == ("+4930", "Germany Berlin", "DE")
    mobile = plan.destination(e164(plan, "+4915123456789"))
    assert (mobile.prefix, mobile.destination) == ("+49151", "Germany Mobile")
    munich = plan.destination(e164(plan, "+498912345678"))
    assert (munich.prefix, munich.destination) == ("+49", "Germany")
    # not in the deck: country code + destination code, no destination name
    london = plan.destination(e164(plan, "+442071234567"))
    assert (london.prefix, london.destination) == ("+4420", None)


@pytest.mark.parametrize(
    ("seen_first", "number", "prefix"),
    [
        # UK area codes are not prefix-free: 013873 (Langholm) lies inside 01387
        ("+441387212345", "+441387312345", "+4413873"),
        ("+441387312345", "+441387212345", "+441387"),
        ("+441697212345", "+441697712345", "+4416977"),
    ],
)
def test_prefix_does_not_depend_on_numbers_seen_before(
    seen_first: str, number: str, prefix: str
) -> None:
    fresh = NumberPlan()
    assert fresh.destination(e164(fresh, number)).prefix == prefix
    warmed = NumberPlan()
    warmed.destination(e164(warmed, seen_first))
    assert warmed.destination(e164(warmed, number)).prefix == prefix


# -- masking ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_digits", range(1, 9))
def test_masking_hides_exactly_the_last_digits(mask_digits: int) -> None:
    plan = NumberPlan(mask_digits=mask_digits)
    masked = plan.mask(e164(plan, "+493012345678"))
    shown = "+493012345678"[: len("+493012345678") - mask_digits]
    assert masked == shown + "*" * mask_digits


def test_masking_a_short_code_hides_all_of_it_at_most() -> None:
    plan = NumberPlan(mask_digits=3)
    assert plan.mask(e164(plan, "12")) == "**"


@pytest.mark.parametrize("mask_digits", [0, -3])
def test_a_mask_hiding_nothing_is_refused(mask_digits: int) -> None:
    with pytest.raises(ValueError, match="at least one digit"):
        NumberPlan(mask_digits=mask_digits)


@pytest.mark.parametrize(
    ("raw", "mask_digits", "masked"),
    [
        ("4711", 1, "47**"),  # an extension: half of it hidden, not only its last digit
        ("112", 1, "1**"),
        ("19222", 3, "19***"),
        ("7", 1, "*"),
        ("0301234567", 3, "03012*****"),  # national, no region known: no E.164 number
        ("+493012345678", 1, "+49301234567*"),  # E.164: what is configured
    ],
)
def test_a_dial_string_that_is_no_e164_number_has_at_least_half_hidden(
    raw: str, mask_digits: int, masked: str
) -> None:
    plan = NumberPlan(mask_digits=mask_digits)
    assert plan.mask(e164(plan, raw)) == masked


# -- properties over random numbers --------------------------------------------------------

COUNTRY_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@st.composite
def e164_digits(draw: st.DrawFn) -> str:
    """E.164 digits (no '+') starting with a real country code, 8 to 15 digits long."""
    code = draw(st.sampled_from(COUNTRY_CODES))
    length = draw(st.integers(max(8, len(code) + 4), 15))
    rest = draw(st.text("0123456789", min_size=length - len(code), max_size=length - len(code)))
    return code + rest


@PROPERTIES
@given(digits=e164_digits())
def test_normalize_is_idempotent_and_form_independent(digits: str) -> None:
    plan = NumberPlan()
    number = plan.normalize("+" + digits)
    assert number == Number(digits, True)
    assert isinstance(number, Number)
    assert plan.normalize("+" + number.digits) == number
    assert plan.normalize("00" + digits) == number
    assert plan.normalize(f"tel:+{digits};phone-context=example.com") == number
    assert plan.normalize(f'"X" <sip:+{digits}@example.com;user=phone>') == number


@PROPERTIES
@given(digits=e164_digits(), mask_digits=st.integers(1, 8))
def test_masked_keeps_length_and_head(digits: str, mask_digits: int) -> None:
    plan = NumberPlan(mask_digits=mask_digits)
    masked = plan.mask(Number(digits, True))
    assert len(masked) == len(digits) + 1
    assert masked.startswith("+")
    head = len(digits) - mask_digits
    assert masked[1 : 1 + head] == digits[:head]
    assert masked[1 + head :] == "*" * mask_digits


@PROPERTIES
@given(digits=e164_digits())
def test_prefix_is_a_head_of_the_number_and_country_a_region(digits: str) -> None:
    plan = NumberPlan()
    where = plan.destination(Number(digits, True))
    assert where.prefix is not None
    assert ("+" + digits).startswith(where.prefix)
    assert len(where.prefix) < len(digits) + 1  # never the whole number
    assert where.country is None or re.fullmatch("[A-Z]{2}", where.country)


@PROPERTIES
@given(numbers=st.lists(e164_digits(), min_size=2, max_size=6))
def test_prefix_of_a_number_is_the_same_in_a_warm_and_a_fresh_plan(numbers: list[str]) -> None:
    warm = NumberPlan()
    for digits in numbers:
        warm.destination(Number(digits, True))
    for digits in numbers:
        assert warm.destination(Number(digits, True)) == NumberPlan().destination(
            Number(digits, True)
        )


@PROPERTIES
@given(digits=e164_digits(), other=e164_digits())
def test_pseudonyms_are_stable_keyed_and_tagged(digits: str, other: str) -> None:
    rotated = Pseudonymizer((KEY_NEW, KEY_OLD))
    again = Pseudonymizer((KEY_NEW, KEY_OLD))
    previous = Pseudonymizer((KEY_OLD,))
    pseudonym = rotated.pseudonym(digits)
    assert pseudonym == again.pseudonym(digits)
    assert pseudonym.startswith(KEY_NEW[0] + ":")
    assert previous.pseudonym(digits).startswith(KEY_OLD[0] + ":")
    assert pseudonym.split(":", 1)[1] != previous.pseudonym(digits).split(":", 1)[1]
    assert digits not in pseudonym
    everything = rotated.all_pseudonyms(digits)
    assert pseudonym in everything
    assert previous.pseudonym(digits) in everything
    assert len(everything) == 2
    if other != digits:
        assert rotated.pseudonym(other) != pseudonym


def test_pseudonym_is_not_a_plain_hash_of_the_number() -> None:
    value = Pseudonymizer((KEY_NEW,)).pseudonym(BERLIN).split(":", 1)[1]
    for text in (BERLIN, "+" + BERLIN, "00" + BERLIN):
        for algorithm in ("sha256", "sha1", "md5", "blake2b"):
            plain = hashlib.new(algorithm, text.encode()).hexdigest()
            assert value not in plain
    # it is the keyed MAC the design names (HMAC-SHA256 under the newest key)
    assert value == hmac.new(KEY_NEW[1], BERLIN.encode(), hashlib.sha256).hexdigest()[: len(value)]
    assert len(value) >= 32  # at least 128 bits kept


def test_pseudonymizer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        Pseudonymizer(())


def test_record_key_secret_must_be_long_and_parts_cannot_run_together() -> None:
    with pytest.raises(ValueError, match="16"):
        RecordKeyer(b"short")
    keyer = RecordKeyer(RECORD_SECRET)
    assert keyer.key("ab", "c") != keyer.key("a", "bc")
    assert keyer.key("a", "b") == RecordKeyer(RECORD_SECRET).key("a", "b")
    assert keyer.key("a", "b") != RecordKeyer(RECORD_SECRET[::-1]).key("a", "b")


def test_erasure_finds_rows_written_under_an_older_key() -> None:
    before_rotation = Redactor(privacy(keys=(KEY_OLD,)))
    stored = before_rotation.redact(stop_record(called="+493012345678"), WHEN)
    after_rotation = Redactor(privacy(keys=(KEY_NEW, KEY_OLD)))
    for form in ("+493012345678", "030 12345678", "sip:00493012345678@x"):
        assert stored.called_hmac in after_rotation.number_pseudonyms(form)
    assert after_rotation.number_pseudonyms("anonymous") == []


# -- account labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "label", ["trunk-a", "customer 42", "SBC_FRA_1", "acme-gmbh", "trunk-2024-fra-01", "k8s-edge-3"]
)
def test_plain_account_labels_are_kept(label: str) -> None:
    assert Redactor(privacy()).account_label(label) == label


@pytest.mark.parametrize(
    ("label", "secret_part"),
    [
        ("4930123456789", "4930123456789"),
        ("+4930123456789", "4930123456789"),
        ("alice@example.com", "alice"),
        ("sip:alice@example.com", "alice"),
        ("192.0.2.10", "192.0.2.10"),
        ("2001:db8::10", "2001:db8::10"),
        ("+49 30 1234 5678", "49301234"),
        ("030-1234-5678", "03012345678"),
        ("(212) 555-0123", "2125550123"),
        ("030_1234_5678", "03012345678"),
        ("030,1234,5678", "03012345678"),
        ("alice%40example.com", "alice"),
        ("sip%3A4930123456789", "4930123456789"),
        ("alice\uff20example.com", "alice"),  # a full-width at sign
        ("sip\uff1aalice", "alice"),  # a full-width colon
        ("030123\uff14\uff15\uff16\uff17", "0301234567"),  # full-width digits
        ("4a9b3c0d1e2f3g4h5i6", "4930123456"),  # a number with letters between its digits
        ("5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7c11", "5d4c0c86"),  # a session uuid
    ],
)
def test_identifying_account_labels_are_not_stored(label: str, secret_part: str) -> None:
    stored = Redactor(privacy()).account_label(label)
    assert stored != label
    if stored is not None:
        assert secret_part not in stored
        assert secret_part not in re.sub(r"\D", "", stored)


def test_account_labels_seen_again_are_judged_the_same_and_no_number_is_remembered() -> None:
    """One Redactor sees the same labels over and over (a switch's trunk names):
    it remembers the plain ones, never one that looked like a number or an
    address, and answers every time as a fresh Redactor would, also once its
    memory was full and emptied."""
    plain = ["trunk-a", "customer 42", "acme\x00\x1b[31m\n"]
    identifying = ["4930123456789", "alice@example.com", "192.0.2.10", "030_1234_5678"]
    redactor = Redactor(privacy())
    expected = {label: Redactor(privacy()).account_label(label) for label in plain + identifying}
    for _ in range(3):
        for label in plain + identifying:
            assert redactor.account_label(label) == expected[label], label
    remembered = set(redactor._plain_accounts)
    assert remembered == set(plain)
    assert not remembered & set(identifying)
    for index in range(_PLAIN_ACCOUNTS_MAX + 10):  # more names than it keeps
        assert redactor.account_label(f"trunk-{index}") == f"trunk-{index}"
    assert len(redactor._plain_accounts) <= _PLAIN_ACCOUNTS_MAX
    for label in plain + identifying:
        assert redactor.account_label(label) == expected[label], label


def test_account_label_keeps_no_control_characters() -> None:
    assert Redactor(privacy()).account_label("acme\x00\x1b[31m\n") == "acme[31m"


@pytest.mark.parametrize(
    ("leg", "stored"),
    [
        ("originate", "originate"),
        ("Answer ", "answer"),
        ("callback", "callback"),
        ("inbound", "inbound"),
        ("outbound", "outbound"),
        ("", ""),
        ("sip:+4930123456789@192.0.2.9", "other"),
        ("4930123456789", "other"),
        ("192.0.2.9", "other"),
        ("orig\x00inate", "originate"),
        ("\x00" * 3, ""),
    ],
)
def test_leg_is_stored_only_as_a_known_word(leg: str, stored: str) -> None:
    assert Redactor(privacy()).redact(stop_record(leg=leg), WHEN).leg == stored


def test_missing_account_stays_missing() -> None:
    assert Redactor(privacy()).account_label(None) is None
    assert Redactor(privacy()).account_label("") is None


# -- redaction: nothing identifying leaves ------------------------------------------------


def stop_record(
    called: str | None = "+442071234567",
    calling: str | None = "+493012345678",
    account: str | None = "trunk-a",
    leg: str = "originate",
    **fields: object,
) -> CallRecord:
    record = CallRecord(
        kind=RecordKind.STOP,
        source="sbc-fra-1",
        protocol=Protocol.RADIUS,
        session_id="3C5AEAB9-1DD211B2-8FD3C3E4@192.0.2.10",
        event_time=WHEN,
        leg=leg,
        setup_stamp="11:58:00.000 UTC Wed May 01 2024",
        account=account,
        calling=calling,
        called=called,
        setup_time=WHEN - timedelta(minutes=2),
        connect_time=WHEN - timedelta(minutes=1),
        disconnect_time=WHEN,
        duration_ms=60_000,
        answered=True,
        disconnect_cause=16,
        correlation="3C5AEAB91DD211B28FD3C3E44B8F5A10",
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def field_texts(stored: StoredCdr) -> dict[str, str]:
    return {name: str(value) for name, value in zip(stored._fields, stored, strict=True)}


@pytest.mark.parametrize(
    ("called", "calling", "account"),
    [
        ("+442071234567", "+493012345678", "trunk-a"),
        ("00442071234567", "030 12345678", "493012345678"),
        ("sip:+442071234567@gw.example;user=phone", "tel:+493012345678", "+493012345678"),
        ('"Bob" <sip:00442071234567@192.0.2.7>', '"Alice" <sip:493012345678@h>', "alice@h"),
        ("442071234567", "493012345678", "sip:493012345678@192.0.2.1"),
    ],
)
def test_stored_cdr_never_holds_the_raw_numbers(called: str, calling: str, account: str) -> None:
    stored = Redactor(privacy()).redact(stop_record(called, calling, account), WHEN)
    # the billing view is there ...
    assert stored.called_prefix == "+4420"
    assert stored.called_country == "GB"
    assert stored.called_masked == "+442071234***"
    assert stored.calling_country == "DE"
    assert stored.called_hmac is not None and stored.called_hmac.startswith("k2024b:")
    assert stored.calling_hmac is not None and stored.calling_hmac.startswith("k2024b:")
    # ... and no field, as text, holds either number (international or national)
    forbidden = ["442071234567", "2071234567", "493012345678", "3012345678", "192.0.2."]
    for name, text in field_texts(stored).items():
        for needle in forbidden:
            assert needle not in text, (name, needle)
        assert "sip:" not in text and "@" not in text, name


def test_stored_cdr_keys_session_and_correlation() -> None:
    stored = Redactor(privacy()).redact(stop_record(), WHEN)
    assert "3C5AEAB9" not in stored.record_key.hex().upper()
    assert len(stored.record_key) == 16
    assert stored.correlation_hmac is not None
    assert "3C5AEAB9" not in stored.correlation_hmac.upper()


@pytest.mark.parametrize("called", [None, "anonymous", ""])
def test_record_without_called_number_has_no_called_fields(called: str | None) -> None:
    stored = Redactor(privacy()).redact(stop_record(called=called), WHEN)
    assert stored.called_prefix is None
    assert stored.called_masked is None
    assert stored.called_hmac is None


@pytest.mark.parametrize(
    "form",
    [
        "+\uff14\uff14\uff12\uff10\uff17\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
        "+\u0664\u0664\u0662\u0660\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667",
        "sip:00\u06f4\u06f4\u06f2\u06f0\u06f7\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7@x",
    ],
)
def test_a_number_in_other_digits_is_the_same_number(form: str) -> None:
    redact = Redactor(privacy())
    stored = redact.redact(stop_record(called=form, calling=form), WHEN)
    ascii_form = redact.redact(stop_record(called="+442071234567"), WHEN)
    assert stored.called_masked == "+442071234***"
    assert stored.called_hmac == ascii_form.called_hmac
    assert stored.calling_country == "GB"
    assert stored.called_hmac in redact.number_pseudonyms("+442071234567")
    assert stored.called_hmac in redact.number_pseudonyms(form)


#: one Berlin number (+49 30 1234567) as people and switches write it, region DE
BERLIN_FORMS = (
    "+49301234567",
    "+49 (0)30 1234567",
    "+49 (0) 30 123 45 67",
    "+49(0)30/1234567",
    "+49 30 1234567",
    "0049301234567",
    "0049 (0)30 1234567",
    "030/1234567",
    "030-123 45 67",
    "030_1234567",
    "030 1234567",
    "(030) 1234567",
    "49301234567",
    "\uff10\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width
    "\uff0b\uff14\uff19\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
    "\u0660\u0663\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Arabic-Indic
    "+49\u201330\u20131234567",  # en dashes
    "+49\u00a030\u00a01234567",  # no-break spaces
    "tel:+49-30-1234567",
    "tel:+49-30-1234567;ext=99",
    "sip:+49301234567@host;user=phone",
    "sip:%2B49301234567@host;user=phone",
    "+49301234567\x00",  # NUL-terminated, as some RADIUS clients send text
    "030 1234567\x00\x00",
    '"Berlin Office" <sip:030/1234567@pbx.example;user=phone>',
    "<tel:+49 30 1234567>",
)


@pytest.mark.parametrize("form", BERLIN_FORMS)
def test_a_number_written_any_way_is_one_pseudonym_prefix_and_masked_form(form: str) -> None:
    redact = Redactor(privacy(default_region="DE"))
    stored = redact.redact(stop_record(called=form, calling=form), WHEN)
    assert stored.called_prefix == "+4930"
    assert stored.called_country == "DE"
    assert stored.called_masked == "+49301234***"
    assert stored.called_hmac == Pseudonymizer((KEY_NEW,)).pseudonym("49301234567")
    assert stored.calling_hmac == stored.called_hmac
    # erase, given this form, finds the rows written under any other form and key
    assert redact.erasure_entries(form) == redact.erasure_entries("+49301234567")


#: a Berlin number of 14 digits, with digits dialled after it
OVERDIALLED = "49305551234567"


@pytest.mark.parametrize(
    "form",
    [
        "+49305551234567#1234",
        "+49305551234567#",
        "0049305551234567#1234",
        "030 5551234567#1234",
        "+49305551234567*1234",
        "+49305551234567,,1234",
        "+49305551234567;1234",
        "+49305551234567p1234",
        "+49305551234567w1234",
        "+49305551234567x1234",
        "+49305551234567 ext. 1234",
        "+49 30 5551234567 Ext 1234",
        "+49305551234567 1234",  # after a space: 18 digits, a valid number before it
        "+49 30 5551234567 12 34",
        "0049305551234567 1234",
        "0305551234567 1234",
        "sip:+49305551234567%231234@trunk.example;user=phone",
        "tel:+49305551234567;ext=1234",
        "0190+49305551234567",  # a routing prefix, then the number
    ],
)
def test_digits_dialled_after_the_number_are_no_part_of_it(form: str) -> None:
    redact = Redactor(privacy(default_region="DE"))
    stored = redact.redact(stop_record(called=form), WHEN)
    assert stored.called_masked == "+49305551234***"
    assert stored.called_prefix == "+4930"
    assert stored.called_hmac == Pseudonymizer((KEY_NEW,)).pseudonym(OVERDIALLED)
    assert stored.called_hmac in redact.number_pseudonyms("+" + OVERDIALLED)
    assert redact.erasure_entries(form) == redact.erasure_entries("+" + OVERDIALLED)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1bdaa608131517540001", "not_a_number"),  # an opaque id from a SIP trunk
        ("sip:1bdaa608131517540001@trunk.example", "not_a_number"),
        ("alice", "not_a_number"),
        ("4930abc12345678", "not_a_number"),
        ("1-800-FLOWERS", "not_a_number"),
        ("+49 30 1234567 / Büro", "not_a_number"),
        ("49301234567!", "not_a_number"),
        ("+", "not_a_number"),
        ("493055512345671234", "too_long"),  # overdial glued on, no separator
        ("+493055512345671234", "too_long"),
        ("00493055512345671234", "too_long"),
        ("99990049305551234567", "too_long"),  # a routing prefix glued on
        ("4930 55512345671234", "too_long"),  # no valid number ends at the space
        ("*21*004930555123456789#", "too_long"),
    ],
)
def test_what_is_no_phone_number_is_stored_as_no_number_and_reported(
    value: str, reason: str
) -> None:
    refused: list[tuple[str, str, str]] = []
    redact = Redactor(privacy(default_region="DE"), lambda *report: refused.append(report))
    stored = redact.redact(stop_record(called=value, calling=value), WHEN)
    for name in ("called_prefix", "called_country", "called_destination", "called_masked"):
        assert getattr(stored, name) is None, name
    assert stored.called_hmac is None
    assert stored.calling_country is None and stored.calling_hmac is None
    assert stored.duration_ms == 60_000  # the call itself is kept
    assert refused == [("sbc-fra-1", "called", reason), ("sbc-fra-1", "calling", reason)]
    assert redact.erasure_entries(value) == []


@pytest.mark.parametrize("value", [None, "", "anonymous", "sip:anonymous@anonymous.invalid"])
def test_no_number_at_all_is_not_reported(value: str | None) -> None:
    refused: list[tuple[str, str, str]] = []
    redact = Redactor(privacy(), lambda *report: refused.append(report))
    redact.redact(stop_record(called=value, calling=value), WHEN)
    assert refused == []


OVERDIAL_SEPARATORS = ("#", "*", ",", ";", "p", "w", "x", " ext ", ",,", "#,")


@PROPERTIES
@given(
    digits=e164_digits(),
    separator=st.sampled_from(OVERDIAL_SEPARATORS),
    tail=st.text("0123456789#*", max_size=12),
)
def test_overdial_after_any_number_leaves_that_number(
    digits: str, separator: str, tail: str
) -> None:
    plan = NumberPlan()
    assert plan.normalize(f"+{digits}{separator}{tail}") == plan.normalize("+" + digits)


@PROPERTIES
@given(digits=e164_digits(), tail=st.text("0123456789", min_size=1, max_size=8))
def test_digits_after_a_space_are_the_number_s_or_an_extension_never_a_third_number(
    digits: str, tail: str
) -> None:
    plan = NumberPlan()
    number = plan.normalize(f"+{digits} {tail}")
    if len(digits) + len(tail) <= 15:
        assert number == Number(digits + tail, True)  # spaces only group digits
    else:
        assert number in (Number(digits, True), Unusable("too_long"))
        if number == Unusable("too_long"):  # no valid number ends at the space
            parsed = phonenumbers.parse("+" + digits)
            as_written = phonenumbers.format_number(parsed, PNF.E164) == "+" + digits
            assert not (as_written and phonenumbers.is_valid_number(parsed))


#: what a value where a number belongs may be made of, the odd characters included
DIAL_ALPHABET = "0123456789+ -./()_#*,;pwxabcz\uff10\uff15\u0663@:%"


@PROPERTIES
@given(value=st.text(DIAL_ALPHABET, max_size=40))
def test_whatever_arrives_no_whole_number_is_stored(value: str) -> None:
    """A masked form always hides digits of the number it stands for, that number has
    at most 15 digits, and `erase` of the same value finds its pseudonym."""
    redact = Redactor(privacy(default_region="DE", mask_digits=1))
    stored = redact.redact(stop_record(called=value), WHEN)
    number = redact.plan.normalize(value)
    if not isinstance(number, Number):
        assert stored.called_masked is None and stored.called_hmac is None
        return
    assert len(number.digits) <= 15
    masked = stored.called_masked
    assert masked is not None and masked.endswith("*")
    shown = masked.lstrip("+").rstrip("*")
    assert number.digits.startswith(shown) and len(shown) < len(number.digits)
    assert stored.called_hmac in redact.number_pseudonyms(value)


def test_called_pseudonym_is_the_same_whatever_the_form() -> None:
    redact = Redactor(privacy())
    forms = ["+442071234567", "00442071234567", "sip:+442071234567@x;user=phone"]
    hmacs = {redact.redact(stop_record(called=f), WHEN).called_hmac for f in forms}
    assert len(hmacs) == 1


# -- redaction: what PostgreSQL would refuse ----------------------------------------------

SMALLINT = (-(2**15), 2**15 - 1)
INTEGER = (-(2**31), 2**31 - 1)


def assert_postgres_would_accept(stored: StoredCdr) -> None:
    for name, value in zip(stored._fields, stored, strict=True):
        if isinstance(value, str):
            assert "\x00" not in value, name
    for name in ("disconnect_cause", "sip_code"):
        value = getattr(stored, name)
        assert value is None or SMALLINT[0] <= value <= SMALLINT[1], name
    assert stored.pdd_ms is None or INTEGER[0] <= stored.pdd_ms <= INTEGER[1]
    assert stored.duration_ms is None or 0 <= stored.duration_ms < 2**63  # CHECK >= 0


def kamailio_failed(code: int, from_tag: bytes, to_tag: bytes) -> bytes:
    return b"".join(
        (
            codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_FAILED)),
            codec.encode_attribute(d.SERVICE_TYPE, codec.integer(d.SERVICE_TYPE_SIP_SESSION)),
            codec.encode_attribute(d.SIP_METHOD, codec.integer(d.SIP_METHOD_INVITE)),
            codec.encode_attribute(d.SIP_RESPONSE_CODE, codec.integer(code)),
            codec.encode_attribute(d.SIP_FROM_TAG, from_tag),
            codec.encode_attribute(d.SIP_TO_TAG, to_tag),
            codec.encode_attribute(d.ACCT_SESSION_ID, b"call-1@example.invalid"),
            codec.encode_attribute(d.USER_NAME, b"trunk\x00b"),
            codec.encode_attribute(d.CALLED_STATION_ID, b"sip:+442071234567@gw"),
            codec.encode_attribute(d.EVENT_TIMESTAMP, codec.integer(int(WHEN.timestamp()))),
        )
    )


@pytest.mark.parametrize("code", [70000, 0xFFFFFFFF, 32768, 99, 486])
def test_kamailio_sip_code_out_of_range_is_not_stored_as_is(code: int) -> None:
    packet = codec.decode(
        codec.encode_accounting_request(1, kamailio_failed(code, b"f1", b""), b"s")
    )
    record = profiles.kamailio(packet, profiles.Context("kamailio-1", WHEN))
    stored = Redactor(privacy()).redact(record, WHEN)
    assert_postgres_would_accept(stored)
    if code == 486:
        assert stored.sip_code == 486  # a real SIP status is kept


def test_dialog_tags_with_nul_only_reach_the_keyed_session_id() -> None:
    packet = codec.decode(
        codec.encode_accounting_request(1, kamailio_failed(486, b"f\x001", b"t\x002"), b"s")
    )
    record = profiles.kamailio(packet, profiles.Context("kamailio-1", WHEN))
    assert "\x00" in record.session_id  # what the switch sent, hashed into the record key
    stored = Redactor(privacy()).redact(record, WHEN)
    assert stored.leg == ""
    assert_postgres_would_accept(stored)


@pytest.mark.parametrize(
    "fields",
    [
        {"sip_code": 70000},
        {"sip_code": -1},
        {"disconnect_cause": 70000},
        {"disconnect_cause": 4096},
        {"pdd_ms": 2**40},
        {"pdd_ms": -(2**40)},
        {"duration_ms": -5},
        {"duration_ms": 2**70},
        {"leg": "orig\x00inate"},
        {"leg": "\x00" * 3},
        {"account": "acme\x00"},
    ],
)
def test_out_of_range_fields_never_reach_postgres(fields: dict[str, object]) -> None:
    record = stop_record()
    for name, value in fields.items():
        setattr(record, name, value)
    stored = Redactor(privacy()).redact(record, WHEN)
    assert_postgres_would_accept(stored)
