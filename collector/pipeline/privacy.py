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
        self.key_id, self._secret = keys[0]
        self._prefix = self.key_id + ":"

    def pseudonym(self, value: str) -> str:
        """ "KEYID:hex" of `value` under the newest key."""
        digest = hmac.digest(self._secret, value.encode(), "sha256")
        return self._prefix + digest[: self.DIGEST_BYTES].hex()

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
        self._secret = secret[:64]

    def key(self, *parts: str) -> bytes:
        """A 16-byte keyed BLAKE2b of the parts (unit-separated, so parts cannot run together)."""
        return hashlib.blake2b(
            "\x1f".join(parts).encode("utf-8", "surrogatepass"), key=self._secret, digest_size=16
        ).digest()
