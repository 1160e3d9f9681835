"""The rate deck: CSV "prefix,destination" per line, read into (prefix, name) pairs.

Further columns are ignored, so a deck exported from a billing system works
as it is. The demo writes its deck with `format_rate_deck`; the configuration
reads every deck with `parse_rate_deck`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable


def parse_rate_deck(text: str) -> list[tuple[str, str]]:
    """Parse a rate deck: "prefix,destination" per line (digits, optional leading +).

    CSV quoting is understood ("4930","Berlin, Mitte"); blank lines and lines
    starting with '#' are skipped; a first row without any digit in its first
    field is a header. Raises ValueError naming the line of a bad row, a
    prefix listed twice, or a deck with no prefix at all.
    """
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    lines = text.lstrip("\ufeff").splitlines()
    first = True
    for number, fields in enumerate(csv.reader(lines), start=1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        prefix = fields[0].strip().removeprefix("+")
        if first and not any(c.isdigit() for c in prefix):
            first = False
            continue  # a header row such as "prefix,destination"
        first = False
        if len(fields) < 2 or not (prefix.isascii() and prefix.isdigit()):
            raise ValueError(f"line {number}: expected digits,destination")
        destination = fields[1].strip()
        if not destination:
            raise ValueError(f"line {number}: the destination of prefix {prefix} is empty")
        if prefix in seen:
            raise ValueError(
                f"line {number}: prefix {prefix} is already listed on line {seen[prefix]}"
            )
        seen[prefix] = number
        entries.append((prefix, destination))
    if not entries:
        raise ValueError("holds no prefix")
    return entries


def format_rate_deck(entries: Iterable[tuple[str, str]]) -> str:
    """A rate deck with a header row, quoting destinations that need it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("prefix", "destination"))
    writer.writerows(entries)
    return out.getvalue()
