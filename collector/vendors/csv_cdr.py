"""What the CSV CDR files of every switch family share: lines, local times, whole seconds.

Asterisk's cdr_csv and FreeSWITCH's mod_cdr_csv both write one call leg per
line, each field in double quotes (a quote inside doubled), times as
"YYYY-MM-DD HH:MM:SS" in the switch's local time and durations in whole
seconds. This module splits such a line into its fields and reads those
values; `asterisk` and `freeswitch.csv_cdr` say what each column means. It is
pure (no I/O) and its errors carry a reason from a fixed vocabulary, never a
value taken from the line: a line holds phone numbers.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

#: the longest line read (Asterisk's own buffer is 1 KiB; SBC exports run longer)
MAX_LINE_CHARS: Final = 16384
#: the longest duration believed as a number of seconds (ten years; pipeline.plausible judges)
MAX_SECONDS: Final = 10 * 366 * 86400
#: an identifier longer than this is not a switch's unique id
MAX_ID_CHARS: Final = 128

#: why a line was not read (the `reason` of LineError)
LINE_REASONS: Final = (
    "unbalanced_quotes",
    "too_long",
    "column_count",
    "bad_time",
    "bad_seconds",
    "no_time",
)


class LineError(ValueError):
    """A line that is no CDR of its format; `reason` is one of LINE_REASONS.

    `calling` and `called` are the numbers the line holds where its columns
    could still be told apart (None where not): the line is kept, redacted,
    with the rejected rows.
    """

    def __init__(self, reason: str, calling: str | None = None, called: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.calling = calling
        self.called = called


def split_line(line: str) -> list[str]:
    """The fields of one CSV line (without its line end): quoted or not, commas and doubled
    quotes inside quotes kept as text."""
    if len(line) > MAX_LINE_CHARS:
        raise LineError("too_long")
    if line.count('"') % 2:
        raise LineError("unbalanced_quotes")
    try:
        rows = list(csv.reader([line], strict=True, skipinitialspace=True))
    except csv.Error:
        raise LineError("unbalanced_quotes") from None
    return [field.strip() for field in rows[0]] if rows else []


def line_digest(fields: list[str]) -> str:
    """A stable identity of a line from its content, for a line that logs no unique id.

    The same line read again (after a restart, from a copy of the file) gives
    the same value; it stays inside the process (the record key is a keyed
    hash of it).
    """
    return "line:" + hashlib.sha256("\x1f".join(fields).encode("utf-8", "replace")).hexdigest()


def local_time(text: str, zone: ZoneInfo) -> datetime | None:
    """A "YYYY-MM-DD HH:MM:SS" time in `zone` as UTC; None for an empty field.

    A wall time that occurs twice (the hour the clocks go back) is read as the
    first of the two, one that does not occur (the hour they go forward) as
    the offset before the change: the file does not say which was meant.
    """
    if not text:
        return None
    try:
        wall = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise LineError("bad_time") from None
    return wall.replace(tzinfo=zone).astimezone(UTC)


def seconds(text: str) -> int | None:
    """A whole number of seconds; None for an empty field."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_SECONDS:
        raise LineError("bad_seconds")
    return int(text)


def identifier(text: str) -> str | None:
    """A switch's id for a leg as written, when it is one (printable, not too long)."""
    text = text.strip()
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable():
        return None
    return text


def leg_times(
    times: tuple[str, str, str],
    billsec: str,
    duration: str,
    zone: ZoneInfo,
    calling: str | None,
    called: str | None,
) -> tuple[datetime | None, datetime | None, datetime | None, int | None]:
    """(start, answer, end, billsec) of a CSV line: its start, answer and end times read
    in `zone`, its billed seconds; the total duration is only checked. LineError (with
    the line's numbers, for the rejected row) when one is unreadable or no time is set."""
    try:
        start, answer, end = (local_time(text, zone) for text in times)
        billed = seconds(billsec)
        seconds(duration)  # checked: a line with an unreadable one is damaged
    except LineError as exc:
        raise LineError(exc.reason, calling, called) from None
    if start is None and end is None:
        raise LineError("no_time", calling, called)
    return start, answer, end, billed
