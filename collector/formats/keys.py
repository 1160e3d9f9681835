"""The pseudonym key file and the record-key file: reading, writing, new keys.

The pseudonym key file holds "ID:BASE64" per line, newest first (blank lines
and lines starting with '#' are ignored); the record-key file holds one
base64 secret. `keygen` and the demo write them with the functions here and
the configuration reads them with the parsers here. Nothing in this module
logs, and no error message ever carries key material: only line numbers.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

#: the least key material a pseudonym or record key may have
MIN_KEY_BYTES = 16
#: what a new key gets
NEW_KEY_BYTES = 32


def valid_key_id(key_id: str) -> bool:
    """Whether `key_id` may name a key: letters, digits, '-' and '_', at least one of the first two."""
    return key_id.replace("-", "").replace("_", "").isalnum()


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse a pseudonym key file: "ID:BASE64" per line, newest first.

    Blank lines and lines starting with '#' are ignored. Raises ValueError with
    the line number (never the key material) on a bad line.
    """
    keys: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, material = line.partition(":")
        if not sep or not valid_key_id(key_id):
            raise ValueError(f"line {number}: expected ID:BASE64 with an alphanumeric id")
        if key_id in seen:
            raise ValueError(f"line {number}: key id {key_id!r} appears twice")
        try:
            secret = base64.b64decode(material.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"line {number}: the key is not valid base64") from None
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"line {number}: the key is shorter than {MIN_KEY_BYTES} bytes")
        seen.add(key_id)
        keys.append((key_id, secret))
    if not keys:
        raise ValueError("holds no key")
    return keys


def format_keys(keys: Iterable[tuple[str, bytes]]) -> str:
    """Pseudonym key file lines for (id, secret) pairs, in the order given (newest first);
    ValueError for an id that parse_keys would refuse."""
    lines = []
    for key_id, secret in keys:
        if not valid_key_id(key_id):
            raise ValueError(f"{key_id!r} is not a key id (letters, digits, - and _)")
        lines.append(f"{key_id}:{base64.b64encode(secret).decode()}\n")
    return "".join(lines)


def parse_record_key(text: str) -> bytes:
    """The secret of a record-key file; ValueError (without the text) when it is unusable."""
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"shorter than {MIN_KEY_BYTES} bytes")
    return secret


def format_record_key(secret: bytes) -> str:
    """The text of a record-key file holding `secret`."""
    return base64.b64encode(secret).decode() + "\n"


def new_secret() -> bytes:
    """Fresh key material for a pseudonym or record key."""
    return secrets.token_bytes(NEW_KEY_BYTES)


def new_key_id(taken: Iterable[str], now: datetime) -> str:
    """An id for a key made at `now` ("k20240131120000"), distinct from `taken`
    (a second key within the same second gets "-2", "-3", ...)."""
    used = set(taken)
    base_id = key_id = "k" + now.strftime("%Y%m%d%H%M%S")
    suffix = 1
    while key_id in used:
        suffix += 1
        key_id = f"{base_id}-{suffix}"
    return key_id


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, readable by its owner only, and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
