"""Keyed pseudonyms for phone numbers and keyed record identities.

A plain hash of a phone number is no pseudonym: the E.164 space is small
enough to hash in full. Numbers are therefore pseudonymized with HMAC-SHA256
under a secret key kept outside the database, and every pseudonym carries the
id of its key ("k2024:…") so keys can rotate: new records use the newest key,
`erase` looks a number up under every key still configured. The record key,
which makes storage idempotent, uses its own secret that never rotates (a
rotation would otherwise break deduplication). Nothing here logs or returns
the number itself.
"""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms under the newest configured key."""

    #: bytes of the MAC kept (128 bits: collisions stay negligible at carrier scale)
    DIGEST_BYTES = 16

    def __init__(self, keys: tuple[tuple[str, bytes], ...]) -> None:
        if not keys:
            raise ValueError("at least one pseudonym key is required")
        self.keys = keys
        self.key_id, secret = keys[0]
        self._prefix = self.key_id + ":"
        # HMAC's inner and outer hashes keyed once (RFC 2104); per value only
        # two copies and updates remain, a third cheaper than hmac.digest here
        block = (hashlib.sha256(secret).digest() if len(secret) > 64 else secret).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def pseudonym(self, value: str) -> str:
        """ "KEYID:hex" of `value` under the newest key (HMAC-SHA256, truncated)."""
        inner = self._inner.copy()
        inner.update(value.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return self._prefix + outer.digest()[: self.DIGEST_BYTES].hex()

    def all_pseudonyms(self, value: str) -> list[str]:
        """The pseudonym of `value` under every configured key (for erasure)."""
        return [
            f"{key_id}:{hmac.digest(secret, value.encode(), 'sha256')[: self.DIGEST_BYTES].hex()}"
            for key_id, secret in self.keys
        ]


class RecordKeyer:
    """Deterministic keyed identities: the same call leg always gets the same key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the record key secret must be at least 16 bytes")
        self._keyed = hashlib.blake2b(key=secret[:64], digest_size=16)

    def key(self, *parts: str) -> bytes:
        """A 16-byte keyed BLAKE2b of the parts (unit-separated, so parts cannot run together)."""
        hasher = self._keyed.copy()
        hasher.update("\x1f".join(parts).encode("utf-8", "surrogatepass"))
        return hasher.digest()
