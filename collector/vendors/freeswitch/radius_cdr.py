"""FreeSWITCH mod_radius_cdr's own formats: its times, and the setup time in a record key.

mod_radius_cdr sends its times as text with a UTC offset that its own
buffer cuts short for zones off the whole hour, and prints a call's start
with the offset of the moment it prints it, which differs between a Start
and a Stop across its daylight saving time bug. The RADIUS freeswitch
profile reads the attributes and calls in here for what they say. Pure: no
I/O, no transport.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_FS_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)([+-])(\d{2})(?:(\d{4}|\d{2})|-(\d{4}|\d))?"
)

#: what mod_radius_cdr's 32-byte buffer leaves of a remainder of 1800 or 2700
#: seconds after a positive hour ("+05" "1800" -> "+0518"), as minutes
_FS_TRUNCATED_MINUTES = {"18": 30, "27": 45}
#: the same after a negative hour ("-03" "-1800" -> "-03-1")
_FS_TRUNCATED_NEGATIVE_MINUTES = {"1": 30, "2": 45}


def parse_time(value: str) -> datetime | None:
    """Parse mod_radius_cdr's "2026-11-30T12:00:01.123456+0100" to UTC.

    It prints the offset with C's "%+03d%02d" of (gmtoff / 3600, gmtoff % 3600):
    hours, then the remainder in seconds with its own sign, into a 32-byte
    buffer that keeps 31 characters. So +05:30 arrives as "+0518" (the "1800"
    cut to two digits), +05:45 as "+0527", -03:30 as "-03-1" and -04:45 as
    "-04-2". The uncut forms ("+051800", "-03-1800") and the plain "+0530"
    are accepted too.
    """
    match = _FS_TIME.fullmatch(value.strip())
    if match is None:
        return None
    stamp, sign_text, hours_text, rest_text, negative_text = match.groups()
    sign = -1 if sign_text == "-" else 1
    if negative_text is not None:
        if len(negative_text) == 4:
            rest_minutes, rest_sign = int(negative_text) // 60, -1
        else:
            cut = _FS_TRUNCATED_NEGATIVE_MINUTES.get(negative_text)
            if cut is None:
                return None
            rest_minutes, rest_sign = cut, -1
    elif rest_text is not None and len(rest_text) == 4:
        rest_minutes, rest_sign = int(rest_text) // 60, sign
    elif rest_text is not None:
        rest_minutes, rest_sign = _FS_TRUNCATED_MINUTES.get(rest_text, int(rest_text)), sign
    else:
        rest_minutes, rest_sign = 0, sign
    offset = sign * int(hours_text) * 60 + rest_sign * rest_minutes
    if not -24 * 60 < offset < 24 * 60 or rest_minutes >= 60:
        return None
    try:
        naive = datetime.fromisoformat(stamp)
        return naive.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def setup_stamp(start_text: str | None, setup_time: datetime | None) -> str | None:
    """Freeswitch-Callstartdate as it joins the record key: the UTC instant it names.

    The Start and the Stop of one call may print the same instant with different
    local offsets (the Stop takes the offset of January 1970 in a zone with
    daylight saving time), so the text as sent would split one call in two.
    """
    if setup_time is not None:
        return setup_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return start_text or None
