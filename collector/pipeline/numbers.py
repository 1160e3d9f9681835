"""Phone numbers: E.164 normalization, billing prefix, country, masked form.

Numbers arrive as "+4930…", "004930…", "4930…", national "030…" (with a
configured default region), or inside tel:/sip: URIs with display names and
parameters. `NumberPlan.normalize` turns each into E.164 digits with cheap
string operations; the expensive `phonenumbers` parse (about 75 µs) runs only
to fill a bounded cache of prefix metadata keyed by the leading digits, never
once per packet. This module returns values derived from a number; it never
logs, stores or raises with the number in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

#: national destination codes are at most this many digits long in practice
_NDC_MAX_DIGITS = 6
_CACHE_MAX_ENTRIES = 200_000
#: one character per possible number length, appended to cache keys
_LENGTH_MARKS = tuple(chr(ord("a") + n) for n in range(20))

#: country calling codes (as digit strings) known to phonenumbers
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

_NON_NUMBERS = frozenset({"", "anonymous", "unknown", "unavailable", "restricted", "private"})


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


def strip_uri(raw: str) -> str:
    """Reduce "Name <sip:+4930123@host;user=phone>" or "tel:+4930123;ext=1" to "+4930123"."""
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
    return text.strip()


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
        self.rate_deck = dict(rate_deck)
        self.rate_deck_max = max((len(p) for p in self.rate_deck), default=0)
        self.default_region = default_region
        self.mask_digits = mask_digits
        self._meta: dict[str, tuple[int, str | None]] = {}

    def normalize(self, raw: str | None) -> Number | None:
        """Return the normalized number, or None when there is no number at all."""
        if raw is None:
            return None
        if raw.isdigit():  # the common case: plain digits
            text = digits = raw
            plus = False
        elif raw[:1] == "+" and raw[1:].isdigit():
            text, digits, plus = raw, raw[1:], True
        else:
            text = strip_uri(raw)
            if text.lower() in _NON_NUMBERS:
                return None
            plus = text.startswith("+")
            digits = "".join(ch for ch in text if ch.isdigit())
        if not digits:
            cleaned = "".join(ch for ch in text if ch in "*#")
            return Number(cleaned, False) if cleaned else None
        if plus:
            return self._international(digits)
        if digits.startswith("00"):
            return self._international(digits[2:])
        if digits.startswith("0") and self.default_region:
            return self._national(digits)
        if len(digits) >= 8:
            return self._international(digits)
        return Number(digits, False)

    def _international(self, digits: str) -> Number:
        if 7 <= len(digits) <= 15 and self._country_code(digits):
            return Number(digits, True)
        return Number(digits, False)

    def _national(self, digits: str) -> Number:
        try:
            parsed = phonenumbers.parse(digits, self.default_region)
        except phonenumbers.NumberParseException:
            return Number(digits, False)
        e164 = f"{parsed.country_code}{parsed.national_number}"
        if parsed.italian_leading_zero:
            e164 = f"{parsed.country_code}{'0' * (parsed.number_of_leading_zeros or 1)}{parsed.national_number}"
        return self._international(e164)

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
            # built directly: the digits are already E.164, so parse()'s extraction
            # and validation (more than half the cost) would add nothing
            national = digits[len(code) :]
            zeros = len(national) - len(national.lstrip("0"))
            parsed = phonenumbers.PhoneNumber(
                country_code=int(code),
                national_number=int(national),
                italian_leading_zero=True if zeros else None,
                number_of_leading_zeros=zeros if zeros > 1 else None,
            )
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
        """The number with its last `mask_digits` digits replaced by '*', as itemized bills show it."""
        digits = number.digits
        hidden = min(self.mask_digits, len(digits))
        shown = digits[: len(digits) - hidden] + "*" * hidden
        return "+" + shown if number.e164 else shown
