"""Phone numbers: E.164 normalization, billing prefix, country, masked form.

Numbers arrive as "+4930…", "004930…", "4930…", national "030…" (with a
configured default region), in any script's digits, with visual separators
("+49 (0)30 123-45/67", "030_1234567"), with digits dialled after the number
("+4930…#1234", "… ext 12"), or inside tel:/sip: URIs with display names and
parameters. `NumberPlan.normalize` is the one reading of a number that every
ingest path and `erase` share: one number written in any of these
ways is one pseudonym. What is not a phone number (an opaque id, a name, more
digits than any number has) is refused as `Unusable`, and nothing of it is
stored. Normalization is cheap string work; the expensive `phonenumbers`
parse (about 75 µs) runs only to fill a bounded cache of prefix metadata
keyed by the leading digits, never once per packet of a usual number. This
module returns values derived from a number; it never logs, stores or raises
with the number in the message.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

import phonenumbers

#: national destination codes are at most this many digits long in practice
_NDC_MAX_DIGITS = 6
_CACHE_MAX_ENTRIES = 200_000
#: the most digits a number has (ITU-T E.164, country code included); a dial
#: string ("112", a national number) is never longer than the E.164 form
MAX_DIGITS = 15
#: one character per possible number length, appended to cache keys
_LENGTH_MARKS = tuple(chr(ord("a") + n) for n in range(20))

#: country calling codes (as digit strings) known to phonenumbers
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

_NON_NUMBERS = frozenset({"", "anonymous", "unknown", "unavailable", "restricted", "private"})

#: what people put between a number's digit groups ("+49 (30) 123-45/67",
#: "030_1234567", a typographic dash), read after NFKC folding
_VISUAL_SEPARATORS = frozenset(" \t-./()_\u2010\u2011\u2012\u2013\u2014\u2212")
_WITHOUT_VISUAL_SEPARATORS = str.maketrans(dict.fromkeys(_VISUAL_SEPARATORS))
#: what ends the number: digits after it are dialled once the call stands
#: (DTMF overdial "#", "*"), after a pause or wait (",", ";", "p", "w"), or
#: name an extension ("x", "ext")
_OVERDIAL_MARKS = frozenset("#*,;")
_OVERDIAL_WORDS = frozenset({"p", "w", "x", "ext", "extn", "extension"})
#: how a feature or service code starts ("*21#", "#31#")
_FEATURE_MARKS = frozenset("*#")

#: reasons a value that arrived as a number is refused (`Unusable.reason`)
NOT_A_NUMBER = "not_a_number"
TOO_LONG = "too_long"
UNUSABLE_REASONS = (NOT_A_NUMBER, TOO_LONG)


@dataclass(frozen=True, slots=True)
class Destination:
    """What billing needs of a number, none of which identifies the subscriber."""

    prefix: str | None
    country: str | None
    destination: str | None


@dataclass(frozen=True, slots=True)
class Number:
    """A normalized number: `digits` is E.164 without '+' when `e164` is true,
    else the cleaned dial string (short codes, service numbers)."""

    digits: str
    e164: bool


@dataclass(frozen=True, slots=True)
class Unusable:
    """A value where a number belongs that is no phone number, and why.

    `reason` is one of UNUSABLE_REASONS: `not_a_number` (letters or signs no
    number is written with: an opaque id, a user name), `too_long` (more
    digits than any number, and no number ends at a separator within them).
    Nothing of such a value may be stored: neither a masked form, whose
    visible part could be a whole number, nor a pseudonym that `erase` of the
    real number would never find.
    """

    reason: str


_NOT_A_NUMBER = Unusable(NOT_A_NUMBER)
_TOO_LONG = Unusable(TOO_LONG)


@dataclass(frozen=True, slots=True)
class DialString:
    """A value read as something dialled, before any numbering plan is applied.

    `digits` are those before the first overdial mark; `group_ends` the
    lengths of `digits` at which a visual separator closed a group (where a
    number followed by an extension written after a space may end).
    """

    plus: bool
    digits: str
    group_ends: tuple[int, ...]
    feature: bool = False


def ascii_digits(raw: str) -> str:
    """`raw` with compatibility forms folded (NFKC) and every digit written in ASCII.

    A switch may send a number in full-width or another script's digits; left
    as they are, they would make another pseudonym than the same number in
    ASCII (out of reach of `erase`) and reach the masked form as sent.
    """
    if raw.isascii():
        return raw
    folded = unicodedata.normalize("NFKC", raw)
    return "".join(
        (str(unicodedata.decimal(ch)) if ch.isdecimal() else "")
        if ch.isdigit() and not ch.isascii()
        else ch
        for ch in folded
    )


def strip_uri(raw: str) -> str:
    """Reduce "Name <sip:+4930123@host;user=phone>" or "tel:+4930123;ext=1" to "+4930123"."""
    nul = raw.find("\x00")
    if nul >= 0:  # a C string's terminator, which some switches send in RADIUS text
        raw = raw[:nul]
    text = raw.strip()
    if "<" in text:
        start = text.find("<")
        end = text.find(">", start)
        text = text[start + 1 : end if end > start else None]
    lowered = text[:5].lower()
    if lowered.startswith(("sip:", "tel:")):
        text = text[4:]
    elif lowered.startswith("sips:"):
        text = text[5:]
    for stop in ("@", ";", "?"):
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    if "%" in text:  # "sip:%2B4930…@host": a URI's user part may be percent-encoded
        text = unquote(text)
    return text.strip()


def read_dial(text: str) -> DialString | Unusable:
    """Read `text` (no URI around it, digits in ASCII) as something dialled.

    Accepted: an optional leading '+', digits, visual separators, the
    national trunk digit in parentheses after an international prefix
    ("+49 (0)30 …", dropped: abroad it is not dialled), and after the number
    an overdial or extension part, which is not kept. A '+' after some
    digits starts the number anew: what came before it was a routing prefix.
    Anything else (a letter outside an extension word, a sign no number is
    written with) makes it `not_a_number`. This does not depend on a
    numbering plan, so receivers use it to tell a number from a name.
    """
    first = text[:1]
    if first in _FEATURE_MARKS and first:
        return _feature_code(text)
    plus = first == "+"
    plain = _usual_digits(text, plus)
    if plain is not None:
        return DialString(plus, plain, ())
    size = len(text)
    index = 1 if plus else 0
    digits: list[str] = []
    ends: list[int] = []
    overdial = False
    while index < size:
        char = text[index]
        if "0" <= char <= "9":
            if not overdial:
                digits.append(char)
            index += 1
        elif char in _VISUAL_SEPARATORS:
            if (
                char == "("
                and not overdial
                and text.startswith("(0)", index)
                and (plus or digits[:2] == ["0", "0"])
            ):
                index += 3  # "+49 (0)30": the trunk prefix a caller inside Germany dials
            else:
                index += 1
            if not overdial and digits and (not ends or ends[-1] != len(digits)):
                ends.append(len(digits))
        elif char in _OVERDIAL_MARKS:
            overdial = True
            index += 1
        elif char == "+" and not plus and not overdial:
            # "0190+4930…": a routing prefix glued in front of an international number
            plus = True
            digits.clear()
            ends.clear()
            index += 1
        elif char.isalpha():
            end = index + 1
            while end < size and text[end].isalpha():
                end += 1
            if text[index:end].lower() not in _OVERDIAL_WORDS:
                return _NOT_A_NUMBER
            overdial = True
            index = end
        else:
            return _NOT_A_NUMBER
    if not digits:
        return _NOT_A_NUMBER
    if ends and ends[-1] == len(digits):
        ends.pop()
    return DialString(plus, "".join(digits), tuple(ends))


def _usual_digits(text: str, plus: bool) -> str | None:
    """The digits of a number written the usual way ("+49 30 1234567", "030/123-45-67":
    digits and visual separators after an optional '+'), found without a character
    loop; None for any other form, which `read_dial` reads character by character."""
    plain = (text[1:] if plus else text).translate(_WITHOUT_VISUAL_SEPARATORS)
    if plain.isdigit() and plain.isascii() and len(plain) <= MAX_DIGITS and "(0)" not in text:
        return plain
    return None


def _feature_code(text: str) -> DialString | Unusable:
    """A feature or service code ("*21#", "#31#…"): its digits, or its marks when it has none."""
    digits = []
    for char in text:
        if "0" <= char <= "9":
            digits.append(char)
        elif char not in _FEATURE_MARKS and char not in _VISUAL_SEPARATORS:
            return _NOT_A_NUMBER
    if not digits:
        return DialString(False, "".join(c for c in text if c in _FEATURE_MARKS), (), True)
    return DialString(False, "".join(digits), (), True)


def preload_metadata() -> None:
    """Load every region's numbering-plan metadata now (about 0.1 s, a few MB).

    phonenumbers loads it lazily, on the first number of each region: done at
    start-up instead, it cannot stall a packet, and it can be frozen out of
    the garbage collector's way with the rest of the start-up objects.
    """
    for region in phonenumbers.SUPPORTED_REGIONS:
        phonenumbers.PhoneMetadata.metadata_for_region(region)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)


class NumberPlan:
    """Normalizes numbers and finds their billing prefix and country.

    Built once from the configuration (rate deck, default region); its cache
    grows up to a fixed number of prefix entries.
    """

    def __init__(
        self,
        rate_deck: tuple[tuple[str, str], ...] = (),
        default_region: str | None = None,
        mask_digits: int = 3,
    ) -> None:
        if mask_digits < 1:
            raise ValueError("mask_digits must hide at least one digit")
        self.rate_deck = dict(rate_deck)
        self.rate_deck_max = max((len(p) for p in self.rate_deck), default=0)
        self.default_region = default_region
        self.mask_digits = mask_digits
        self._meta: dict[str, tuple[int, str | None]] = {}

    def normalize(self, raw: str | None) -> Number | Unusable | None:
        """The number in `raw`; None when there is none at all (absent, "anonymous");
        `Unusable` when `raw` is something else than a phone number.

        Digits dialled after the number (overdial, an extension) are not part
        of it. When the digits are more than any number has and no overdial
        mark ends the number, the longest run of leading digit groups that
        phonenumbers calls a valid number is taken (an extension after a
        space), else nothing.
        """
        if raw is None:
            return None
        if raw.isascii():
            if raw.isdigit():  # the common cases: plain digits, or "+" and digits
                return self._number(False, raw)
            if raw[:1] == "+" and raw[1:].isdigit():
                return self._international(raw[1:])
        else:
            raw = ascii_digits(raw)
        text = strip_uri(raw)
        if text.lower() in _NON_NUMBERS:
            return None
        plus = text[:1] == "+"
        plain = _usual_digits(text, plus)
        if plain is not None:  # a URI or spaces around a number: read_dial's quick case, inline
            return self._number(plus, plain)
        dial = read_dial(text)
        if isinstance(dial, Unusable):
            return dial
        if dial.feature:
            return Number(dial.digits, False) if len(dial.digits) <= MAX_DIGITS else _TOO_LONG
        number = self._number(dial.plus, dial.digits)
        if number is not _TOO_LONG:
            return number
        for end in reversed(dial.group_ends):
            head = self._number(dial.plus, dial.digits[:end])
            if isinstance(head, Number) and head.e164 and self._valid(head.digits):
                return head
        return _TOO_LONG

    def _number(self, plus: bool, digits: str) -> Number | Unusable:
        """`digits` as one number: E.164 when they make one, else a dial string;
        `too_long` when they are more than a number has."""
        if plus:
            return self._international(digits)
        if digits.startswith("00"):
            return self._international(digits[2:])
        if digits.startswith("0") and self.default_region:
            return self._national(digits)
        if len(digits) >= 8:
            return self._international(digits)
        return Number(digits, False)

    def _international(self, digits: str) -> Number | Unusable:
        size = len(digits)
        if size > MAX_DIGITS:
            return _TOO_LONG
        if size >= 7 and self._country_code(digits):
            return Number(digits, True)
        return Number(digits, False) if digits else _NOT_A_NUMBER  # "00" and nothing after it

    def _national(self, digits: str) -> Number | Unusable:
        if len(digits) > MAX_DIGITS:
            return _TOO_LONG
        try:
            parsed = phonenumbers.parse(digits, self.default_region)
        except phonenumbers.NumberParseException:
            return Number(digits, False)
        e164 = f"{parsed.country_code}{parsed.national_number}"
        if parsed.italian_leading_zero:
            e164 = f"{parsed.country_code}{'0' * (parsed.number_of_leading_zeros or 1)}{parsed.national_number}"
        return self._international(e164)

    def _valid(self, digits: str) -> bool:
        """Whether phonenumbers calls these E.164 digits a valid number (about 20 µs, uncached:
        only numbers written with more digits than a number has come here)."""
        code = self._country_code(digits)
        if code is None:
            return False
        try:
            return bool(phonenumbers.is_valid_number(_phone_number(code, digits)))
        except ValueError:
            return False

    @staticmethod
    def _country_code(digits: str) -> str | None:
        for length in (1, 2, 3):
            if digits[:length] in _COUNTRY_CODES:
                return digits[:length]
        return None

    def _metadata(self, digits: str) -> tuple[int, str | None]:
        """(billing prefix length, ISO region) for an E.164 number.

        Cached under the country code, the next six digits and the length,
        which together decide the destination code everywhere (codes are at
        most five digits, not always prefix-free: UK 01387 and 013873). Only a miss pays for
        phonenumbers (about 30 µs); the cache holds prefixes, never numbers.
        Real traffic concentrates on a few thousand such prefixes.
        """
        code = self._country_code(digits) or ""
        cache = self._meta
        # keyed by the country code, the next _NDC_MAX_DIGITS digits and the
        # length: destination codes are not prefix-free everywhere (UK 01387 and
        # 013873), and some plans choose them by the number's length (San Marino)
        key = digits[: len(code) + _NDC_MAX_DIGITS] + _LENGTH_MARKS[len(digits)]
        found = cache.get(key)
        if found is not None:
            return found
        try:
            parsed = _phone_number(code, digits)
            ndc = phonenumbers.length_of_national_destination_code(parsed)
            region = phonenumbers.region_code_for_number(parsed)
        except (ValueError, phonenumbers.NumberParseException):
            ndc, region = 0, None
        if region in (None, "ZZ", "001"):
            # an unassigned number in a shared plan: the plan's main region
            main = phonenumbers.region_code_for_country_code(int(code)) if code else None
            region = main if main not in (None, "ZZ", "001") else None
        result = (len(code) + ndc, region)
        if len(cache) >= _CACHE_MAX_ENTRIES:
            cache.clear()
        cache[key] = result
        return result

    def destination(self, number: Number) -> Destination:
        """Billing prefix (rate deck longest match, else country code + NDC) and country."""
        if not number.e164:
            return Destination(None, None, None)
        digits = number.digits
        prefix_length, region = self._metadata(digits)
        if self.rate_deck:
            for length in range(min(self.rate_deck_max, len(digits)), 0, -1):
                name = self.rate_deck.get(digits[:length])
                if name is not None:
                    return Destination("+" + digits[:length], region, name)
        return Destination("+" + digits[:prefix_length], region, None)

    def country(self, number: Number) -> str | None:
        """ISO 3166 region of an E.164 number, or None."""
        if not number.e164:
            return None
        return self._metadata(number.digits)[1]

    def mask(self, number: Number) -> str:
        """The number with its last `mask_digits` digits replaced by '*', as itemized bills show it.

        A dial string that is not E.164 (a short code, an extension, a number
        of unknown country) has no billing prefix to show and few digits: at
        least half of them are hidden, so that "4711" is not "471*". Never
        the whole number, never nothing hidden.
        """
        digits = number.digits
        hidden = self.mask_digits
        if not number.e164:
            hidden = max(hidden, (len(digits) + 1) // 2)
        hidden = min(hidden, len(digits))
        shown = digits[: len(digits) - hidden] + "*" * hidden
        return "+" + shown if number.e164 else shown


def _phone_number(code: str, digits: str) -> phonenumbers.PhoneNumber:
    """E.164 digits as a PhoneNumber, built directly: parse()'s extraction and
    validation (more than half its cost) would add nothing to digits already E.164."""
    national = digits[len(code) :]
    zeros = len(national) - len(national.lstrip("0"))
    return phonenumbers.PhoneNumber(
        country_code=int(code),
        national_number=int(national),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
