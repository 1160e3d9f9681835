"""Export of one person's rows: the access right and lawful disclosure.

`export` finds every stored call in which a number is the caller or the
callee, under every configured key (the pseudonyms `erase` searches for),
and writes what billing kept of each: times, duration, cause, billing
prefix and destination, countries, source and protocol. The other party
appears only as it is stored (the masked called number, the caller's
country); no pseudonym is ever written, neither the other party's (it could
be matched against other exports) nor the searched number's own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

#: the exported fields, in order (CSV columns, JSON keys)
FIELDS = (
    "record",
    "role",
    "setup_time",
    "connect_time",
    "disconnect_time",
    "duration_ms",
    "answered",
    "disconnect_cause",
    "sip_code",
    "called_prefix",
    "called_destination",
    "called_country",
    "called_masked",
    "calling_country",
    "source",
    "protocol",
)

# Stored calls, then calls still open (started, not yet ended), which `erase`
# removes too. Pseudonyms are compared in the database and never selected.
_QUERY = """
SELECT 'call' AS record,
       CASE WHEN calling_hmac = ANY($1::text[]) AND called_hmac = ANY($1::text[]) THEN 'both'
            WHEN calling_hmac = ANY($1::text[]) THEN 'caller' ELSE 'callee' END AS role,
       setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause,
       sip_code, called_prefix, called_destination, called_country, called_masked,
       calling_country, source, protocol, call_time AS sort_time
  FROM cdrs
 WHERE called_hmac = ANY($1::text[]) OR calling_hmac = ANY($1::text[])
UNION ALL
SELECT 'open call',
       CASE WHEN calling_hmac = ANY($1::text[]) AND called_hmac = ANY($1::text[]) THEN 'both'
            WHEN calling_hmac = ANY($1::text[]) THEN 'caller' ELSE 'callee' END,
       setup_time, connect_time, NULL, NULL, NULL, NULL,
       NULL, called_prefix, called_destination, called_country, called_masked,
       calling_country, source, protocol, coalesce(setup_time, connect_time, opened_at)
  FROM open_calls
 WHERE called_hmac = ANY($1::text[]) OR calling_hmac = ANY($1::text[])
 ORDER BY sort_time, source, protocol
"""


async def rows_of(conn: asyncpg.Connection, pseudonyms: list[str]) -> list[dict[str, Any]]:
    """Every stored or open call carrying one of `pseudonyms`, as exported (FIELDS only)."""
    if not pseudonyms:
        return []
    found = await conn.fetch(_QUERY, pseudonyms)
    return [{name: row[name] for name in FIELDS} for row in found]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def render(rows: Sequence[dict[str, Any]], form: str) -> str:
    """The rows as CSV (a header, then one line each) or as a JSON array of objects."""
    if form == "json":
        return json.dumps([{k: _json_value(v) for k, v in row.items()} for row in rows], indent=2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_text(row[name]) for name in FIELDS])
    return out.getvalue().rstrip("\n")
