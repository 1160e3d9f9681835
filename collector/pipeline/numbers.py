"""Phone numbers: E.164 normalization, billing prefix, country, masked form.

Numbers arrive as "+4930…", "004930…", "4930…", national "030…" (with a
configured default region), in any script's digits, with visual separators
("+49 (0)30 123-45/67", "030_1234567"), with digits dialled after the number
("+4930…#1234", "… ext 12"), or inside tel:/sip: URIs with display names and
parameters. `NumberPlan.normalize` is the one reading of a number that every
ingest path and `erase` share: one number written in any of these
ways is one pseudonym. Digits without '+' or an international prefix are
a national number of the plan's region when libphonenumber reads them so:
with the region's trunk prefix ("030…" in Germany), or valid there without
one ("35104724" in Denmark, "8173383772" in the United States); else they
are an international number written without its '+'. What is
not a phone number (an opaque id, a name, more digits than any number has)
is refused as `Unusable`, and nothing of it is stored. Normalization is
cheap string work; the expensive `phonenumbers` parse (about 75 µs) runs
only to fill bounded caches keyed by the leading digits (billing prefixes,
how a region's national numbers become E.164), never once per packet of a
usual number. This module returns values derived from a number; it never
logs, stores or raises with the number in the message.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import phonenumbers
from phonenumbers import CountryCodeSource
from phonenumbers.phonenumbermatcher import _is_national_prefix_present_if_required

#: national destination codes are at most this many digits long in practice
_NDC_MAX_DIGITS: Final = 6
_CACHE_MAX_ENTRIES: Final = 200_000
#: the most digits a number has (ITU-T E.164, country code included); a dial
#: string ("112", a national number) is never longer than the E.164 form
MAX_DIGITS: Final = 15
#: the longest international prefix (South Korea's "00700"): a number dialled
#: abroad may be this much longer than its E.164 form
_IDD_MAX_DIGITS: Final = 5
#: one character per possible number length, appended to cache keys
_LENGTH_MARKS = tuple(chr(ord("a") + n) for n in range(MAX_DIGITS + _IDD_MAX_DIGITS + 1))
#: leading digits of a number dialled in a region that decide how it is read:
#: an international prefix and the digit after it ("0011" and "4" in
#: Australia), a trunk prefix with a carrier code ("0" and "21" in Brazil), a
#: national destination code whose numbers do without a trunk prefix. A
#: string of at most this many digits (a short code, an extension) is its own
#: key: how it is read may depend on every one of them.
_READING_KEY_DIGITS: Final = 6

#: country calling codes (as digit strings) known to phonenumbers
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _leading_code(digits: str) -> str | None:
    for length in (1, 2, 3):
        if digits[:length] in _COUNTRY_CODES:
            return digits[:length]
    return None


#: the country code that begins each string of up to three digits (codes are prefix-free):
#: one look-up per number instead of three slices and three (about 7,000 instructions a record)
_CODE_OF_LEADING: Final[dict[str, str | None]] = {
    lead: _leading_code(lead)
    for size in (1, 2, 3)
    for lead in (f"{n:0{size}d}" for n in range(10**size))
}

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
NOT_A_NUMBER: Final = "not_a_number"
TOO_LONG: Final = "too_long"
UNUSABLE_REASONS = (NOT_A_NUMBER, TOO_LONG)


# Destination and Number are made for every record: written out rather than as
# dataclasses, whose generated __init__ stays interpreted Python under mypyc
# (3,300 instructions a Number, against a native constructor's few hundred).
# Neither is changed after it is made.


class Destination:
    """What billing needs of a number, none of which identifies the subscriber."""

    __slots__ = ("country", "destination", "prefix")

    def __init__(self, prefix: str | None, country: str | None, destination: str | None) -> None:
        self.prefix = prefix
        self.country = country
        self.destination = destination

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Destination):
            return NotImplemented
        return (self.prefix, self.country, self.destination) == (
            other.prefix,
            other.country,
            other.destination,
        )

    def __hash__(self) -> int:
        return hash((self.prefix, self.country, self.destination))

    def __repr__(self) -> str:
        return f"Destination({self.prefix!r}, {self.country!r}, {self.destination!r})"


class Number:
    """A normalized number: `digits` is E.164 without '+' when `e164` is true,
    else the cleaned dial string (short codes, service numbers)."""

    __slots__ = ("digits", "e164")

    def __init__(self, digits: str, e164: bool) -> None:
        self.digits = digits
        self.e164 = e164

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Number):
            return NotImplemented
        return self.digits == other.digits and self.e164 == other.e164

    def __hash__(self) -> int:
        return hash((self.digits, self.e164))

    def __repr__(self) -> str:
        # never the digits: a repr can end up in a log or a traceback
        return f"Number(e164={self.e164}, {len(self.digits)} digits)"


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


@dataclass(frozen=True, slots=True)
class _Reading:
    """How digits dialled in a region become E.164, as libphonenumber reads them:
    `country` + `inserted` + the digits from `cut` on.

    `country` is empty after an international prefix ("011" in the United
    States): the digits after it carry their own. With `checked`, the reading
    holds only for a number libphonenumber calls valid in the region: such
    digits ("35104724") could also be an international number written
    without its '+'.
    """

    cut: int
    country: str
    inserted: str
    checked: bool


#: digits that the region reads as no number of its own
_FOREIGN = _Reading(0, "", "", False)

#: the number types `phonenumbers.is_valid_number` accepts (any one makes a number
#: valid), the common ones first: a valid number stops at the first that fits
_NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)

#: (possible lengths, pattern) of one kind of national number
_Pattern = tuple[frozenset[int], re.Pattern[str]]


def _pattern(desc: phonenumbers.PhoneNumberDesc | None) -> _Pattern | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


def _matches(national: str, pattern: _Pattern) -> bool:
    lengths, regex = pattern
    return (not lengths or len(national) in lengths) and regex.fullmatch(national) is not None


class _RegionValidity:
    """Whether a national number fits one region's general pattern and one of its
    number types, as `phonenumbers` decides it.

    The types' patterns are joined into one per number length, so a number
    costs two pattern matches, not one per type (ten of them).
    """

    def __init__(self, meta: phonenumbers.PhoneMetadata, general: _Pattern) -> None:
        self.general = general
        kinds = [
            found for found in (_pattern(getattr(meta, name)) for name in _NUMBER_TYPES) if found
        ]

        def joined(size: int | None) -> re.Pattern[str] | None:
            chosen = {  # once each: fixed-line and mobile numbers often share a pattern
                regex.pattern: None
                for lengths, regex in kinds
                if not lengths or (size is not None and size in lengths)
            }
            return re.compile("|".join(f"(?:{one})" for one in chosen)) if chosen else None

        sizes = {size for lengths, _regex in kinds for size in lengths}
        self.by_length = {size: found for size in sizes if (found := joined(size)) is not None}
        #: the types that name no lengths of their own fit numbers of any length
        self.any_length = joined(None)

    def __call__(self, national: str) -> bool:
        if not _matches(national, self.general):
            return False
        kinds = self.by_length.get(len(national), self.any_length)
        return kinds is not None and kinds.fullmatch(national) is not None


class _Validity:
    """`phonenumbers.is_valid_number` for the national numbers of one country code,
    its patterns compiled once.

    Asked for every number without '+' that a region could read as its own,
    so it must be cheap: about 1 µs against 20 for building a PhoneNumber and
    asking phonenumbers. It decides as phonenumbers does: the country code's
    first region whose leading digits match, else whose patterns do, and the
    number valid when it fits that region's general pattern and one of its
    number types.
    """

    def __init__(self, country_code: int) -> None:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
        self.regions: list[tuple[re.Pattern[str] | None, _RegionValidity]] = []
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            general = _pattern(meta.general_desc) if meta is not None else None
            if meta is None or general is None:
                continue
            # phonenumbers looks at leading digits only to choose among several regions
            leading = (
                re.compile(meta.leading_digits)
                if meta.leading_digits and len(regions) > 1
                else None
            )
            self.regions.append((leading, _RegionValidity(meta, general)))
        #: every length a number of these regions has (None: some region names none)
        self.lengths: frozenset[int] | None = frozenset(
            size for _leading, valid in self.regions for size in valid.general[0]
        )
        if any(not valid.general[0] for _leading, valid in self.regions):
            self.lengths = None
        # the regions before the first with leading digits (the United States for +1)
        # are asked first, as phonenumbers does; of the others, when no leading
        # digits match, only those without leading digits count
        first = 0
        while first < len(self.regions) and self.regions[first][0] is None:
            first += 1
        self.first = tuple(valid for _leading, valid in self.regions[:first])
        self.rest = self.regions[first:]
        leads = [leading.pattern for leading, _valid in self.rest if leading is not None]
        self.rest_leading = re.compile("|".join(f"(?:{one})" for one in leads)) if leads else None
        self.rest_unled = tuple(valid for leading, valid in self.rest if leading is None)

    def __call__(self, national: str) -> bool:
        if self.lengths is not None and len(national) not in self.lengths:
            return False  # most foreign numbers: no need to ask the 25 regions of +1 one by one
        for valid in self.first:
            if valid(national):
                return True
        if self.rest_leading is not None and not self.rest_leading.match(national):
            return any(valid(national) for valid in self.rest_unled)
        for leading, valid in self.rest:
            if leading is not None:
                if leading.match(national):
                    return valid(national)
            elif valid(national):
                return True
        return False


_VALIDITY: dict[int, _Validity] = {}


def _validity(region: str | None) -> _Validity:
    """The validity test of `region`'s national numbers (shared by every plan of its country code)."""
    code = phonenumbers.country_code_for_region(region) if region else 0
    found = _VALIDITY.get(code)
    if found is None:
        found = _VALIDITY[code] = _Validity(code)
    return found


def _common_tail(first: str, second: str) -> int:
    """How many characters `first` and `second` share at their ends."""
    size = min(len(first), len(second))
    shared = 0
    while shared < size and first[-1 - shared] == second[-1 - shared]:
        shared += 1
    return shared


class NumberPlan:
    """Normalizes numbers and finds their billing prefix and country.

    Built once from the configuration (rate deck, default region; `for_region`
    makes the plan of a switch in another region); its caches grow up to a
    fixed number of prefix entries.
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
        #: how the region reads digits, by their leading digits and length (see `_national`)
        self._readings: dict[str, _Reading] = {}
        self._valid_national = _validity(default_region)

    def for_region(self, region: str | None) -> NumberPlan:
        """This plan for numbers dialled in `region` (None: no national numbers).

        The rate deck, masking and billing-prefix cache are shared: where a
        number was dialled does not change its prefix or country. Only the
        reading of national numbers is the region's own.
        """
        if region == self.default_region:
            return self
        plan = copy.copy(self)
        plan.default_region = region
        plan._readings = {}
        plan._valid_national = _validity(region)
        return plan

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
        if self.default_region is not None:
            national = self._national(digits)
            if national is not None:
                return national
        if digits.startswith("00"):  # the international prefix of most of the world
            return self._international(digits[2:])
        if len(digits) >= 8:  # an international number written without its '+'
            return self._international(digits)
        return Number(digits, False)

    def _international(self, digits: str) -> Number | Unusable:
        size = len(digits)
        if size > MAX_DIGITS:
            return _TOO_LONG
        if size >= 7 and self._country_code(digits):
            return Number(digits, True)
        return Number(digits, False) if digits else _NOT_A_NUMBER  # "00" and nothing after it

    def _national(self, digits: str) -> Number | Unusable | None:
        """`digits` (no '+') as dialled in the plan's region; None when the region
        reads them as no number of its own.

        Digits after the region's international prefix ("011…" in the United
        States, "0011…" in Australia), with a trunk prefix ("030…" in Germany,
        "8495…" in Russia), or valid as a national number of the region where its
        numbers are dialled without a trunk prefix ("35104724" in Denmark,
        "2125551234" in the United States) are the region's. Digits such as
        "4930…" in Germany, where a national number needs its trunk prefix,
        are not: libphonenumber's own rules decide each case. Its parse runs
        once per leading digits and length; the validity test, which may look
        at every digit, runs per number.
        """
        size = len(digits)
        if size > MAX_DIGITS + _IDD_MAX_DIGITS:
            return None
        key = digits[:_READING_KEY_DIGITS] + _LENGTH_MARKS[size]
        reading = self._readings.get(key)
        if reading is None:
            reading, shared = self._read(digits)
            if shared:
                if len(self._readings) >= _CACHE_MAX_ENTRIES:
                    self._readings.clear()
                self._readings[key] = reading
        if reading is _FOREIGN:
            return None
        rest = digits[reading.cut :]
        if not reading.country:
            return self._international(rest)
        national = reading.inserted + rest if reading.inserted else rest
        if reading.checked and not self._valid_national(national):
            return None
        return self._international(reading.country + national)

    def _read(self, digits: str) -> tuple[_Reading, bool]:
        """How libphonenumber reads `digits` dialled in the plan's region (about 75 µs),
        and whether that reading holds for every number of their length that starts
        with the same `_READING_KEY_DIGITS` digits (it rewrites none after them)."""
        region = self.default_region
        try:
            parsed = phonenumbers.parse(digits, region, keep_raw_input=True)
        except phonenumbers.NumberParseException:
            return _FOREIGN, True
        if parsed.country_code_source == CountryCodeSource.FROM_NUMBER_WITH_IDD:
            # read on as after "00": the digits after the prefix are the number
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region or "")
            prefix = re.match(meta.international_prefix or "", digits) if meta else None
            if prefix is None:
                return _FOREIGN, True
            return _Reading(prefix.end(), "", "", False), prefix.end() < _READING_KEY_DIGITS
        if digits.startswith("00"):
            return _FOREIGN, True  # no national number: "00" is the international prefix
        # digits that start with 0 are no international number (no country code
        # does), so the national reading stands as it did before validity was asked
        checked = digits[:1] != "0"
        # libphonenumber's own rule (its matcher's, for text written nationally): a
        # region whose format for the number shows a trunk prefix needs it dialled
        if checked and not _is_national_prefix_present_if_required(parsed):
            return _FOREIGN, True  # "4930…" in Germany, where "030…" is how it is dialled
        national = phonenumbers.national_significant_number(parsed)
        kept = _common_tail(digits, national)
        cut = len(digits) - kept
        reading = _Reading(cut, str(parsed.country_code), national[: len(national) - kept], checked)
        return reading, cut <= _READING_KEY_DIGITS

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
        return _CODE_OF_LEADING.get(digits[:3])

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
    # zeros before the national number's value; of a national part of zeros only,
    # the value 0 is itself the last one ("+800 00000000": seven and 0)
    zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
    return phonenumbers.PhoneNumber(
        country_code=int(code),
        national_number=int(national),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
