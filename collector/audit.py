"""The privacy audit trail: who erased, exported, purged or changed keys, when, and how much.

The carrier's policy promises audits of what is done with personal data.
Each such operation writes one row of `privacy_audit` (schema version 7):
the operation, the operating-system user who ran it (and the user behind
sudo), how many rows it touched, and a detail built here from fixed
wording. A row must never hold a phone number or a pseudonym of one (a
pseudonym could be matched against other rows): callers pass counts and key
ids only, never what was searched for.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

#: what `erase` wrote (a data-subject request)
ERASE = "erase"
#: what `export` printed (access right, lawful disclosure)
EXPORT = "export"
#: retention applied by `cdr-collector purge`
PURGE = "purge"
#: retention applied by the daemon on its timer (recorded only when it deleted something)
RETENTION = "retention"
#: identifying columns of old rows cleared, by `purge` or (when it cleared any) the daemon
ANONYMIZE = "anonymize"
#: `keygen --rotate` wrote a new newest pseudonym key
KEY_ROTATE = "key-rotate"
#: `keygen --retire-unused` removed keys no stored row used any more
KEY_RETIRE = "key-retire"
#: a daemon loaded pseudonym key ids that differ from the last ones recorded
KEYS_LOADED = "keys-loaded"

#: longest user name kept (SUDO_USER comes from the environment: bounded, printable)
_MAX_NAME = 64


def _clean(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and not c.isspace())[:_MAX_NAME]


def actor() -> str:
    """Who runs this process: its effective user, and the user behind sudo when set.

    "root (sudo from alice)". SUDO_USER is what sudo put in the environment,
    so it says who asked for the privileges, not a proof of it; the effective
    user is the kernel's.
    """
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    behind = _clean(os.environ.get("SUDO_USER", ""))
    return f"{user} (sudo from {behind})" if behind else user


async def record(
    conn: asyncpg.Connection,
    operation: str,
    rows: int | None,
    detail: str = "",
    who: str | None = None,
) -> None:
    """Write one row of the trail (in the caller's transaction, when there is one)."""
    await conn.execute(
        "INSERT INTO privacy_audit (operation, actor, rows, detail) VALUES ($1, $2, $3, $4)",
        operation,
        who if who is not None else actor(),
        rows,
        detail,
    )


def keys_detail(key_ids: Sequence[str]) -> str:
    """How a set of pseudonym key ids is written in the trail (newest first)."""
    return f"key ids {', '.join(key_ids)} (newest first)"


async def record_keys_loaded(conn: asyncpg.Connection, key_ids: Sequence[str]) -> bool:
    """Record the key ids a daemon loaded, unless they are those last recorded; True when
    written.

    A rotation (or a key removed) is thereby in the trail even when `keygen`
    could not reach the database, from the first daemon that starts or
    reloads with the new key file; several daemons sharing the key file
    write it once.
    """
    detail = keys_detail(key_ids)
    last = await conn.fetchval(
        "SELECT detail FROM privacy_audit WHERE operation = $1 ORDER BY at DESC, id DESC LIMIT 1",
        KEYS_LOADED,
    )
    if last == detail:
        return False
    await record(conn, KEYS_LOADED, None, detail)
    return True


@dataclass(frozen=True)
class AuditRow:
    """One row of the trail as `audit` prints it."""

    at: datetime
    operation: str
    actor: str
    rows: int | None
    detail: str


async def trail(conn: asyncpg.Connection, since: datetime | None = None) -> list[AuditRow]:
    """The trail, oldest first; only from `since` on when given."""
    found = await conn.fetch(
        "SELECT at, operation, actor, rows, detail FROM privacy_audit "
        "WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY at, id",
        since,
    )
    return [AuditRow(r["at"], r["operation"], r["actor"], r["rows"], r["detail"]) for r in found]


HEADER = ("at (UTC)", "operation", "actor", "rows", "detail")


def format_trail(rows: Sequence[AuditRow]) -> str:
    """A readable table: one line per row, columns aligned, the detail last."""
    lines = [
        (
            row.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            row.operation,
            row.actor,
            "-" if row.rows is None else str(row.rows),
            row.detail,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [HEADER, *lines]) for i in range(4)]

    def render(cells: Sequence[str]) -> str:
        return "  ".join(
            [
                cells[0].ljust(widths[0]),
                cells[1].ljust(widths[1]),
                cells[2].ljust(widths[2]),
                cells[3].rjust(widths[3]),
                cells[4],
            ]
        ).rstrip()

    out = [render(HEADER), *(render(line) for line in lines)]
    if not lines:
        out.append("(no entries)")
    return "\n".join(out)
