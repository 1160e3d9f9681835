"""A list of number prefixes, one per line: the high-risk destinations of `[fraud]`.

Carriers keep such lists (international revenue share fraud ranges, premium
and satellite ranges) as plain text exported from a fraud-management tool or
a provider's bulletin. Each line holds one prefix in international form
(digits, an optional leading '+'); blank lines and lines starting with '#'
are skipped, and text after a '#' on a line is a comment.
"""

from __future__ import annotations

#: the longest prefix that can still be a prefix of an E.164 number (15 digits)
MAX_PREFIX_DIGITS = 15


def parse_prefixes(text: str) -> tuple[str, ...]:
    """The prefixes of a list, as digits without '+', in the order listed, each once.

    Raises ValueError naming the line of a value that is not 1 to 15 digits,
    or when the list holds no prefix at all.
    """
    found: dict[str, int] = {}
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        value = line.split("#", 1)[0].strip().replace(" ", "")
        if not value:
            continue
        digits = value.removeprefix("+")
        if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_PREFIX_DIGITS:
            raise ValueError(
                f"line {number}: expected a prefix of 1 to {MAX_PREFIX_DIGITS} digits "
                "(optionally starting with '+')"
            )
        found.setdefault(digits, number)
    if not found:
        raise ValueError("holds no prefix")
    return tuple(found)
