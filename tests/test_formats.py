"""File formats: what each writer writes, its reader reads back, and the readers refuse
what the writers never write.

keygen and the demo write with these writers, the configuration reads with
these readers: a change to one side that the other does not follow fails here.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.formats.basic_auth import format_basic_auth, parse_basic_auth
from collector.formats.keys import (
    MIN_KEY_BYTES,
    format_keys,
    format_record_key,
    new_key_id,
    new_secret,
    parse_keys,
    parse_record_key,
    write_private,
)
from collector.formats.rate_deck import format_rate_deck, parse_rate_deck

KEY_IDS = st.from_regex(r"[a-z0-9_-]{0,8}[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)
SECRETS = st.binary(min_size=MIN_KEY_BYTES, max_size=64)


@given(st.dictionaries(KEY_IDS, SECRETS, min_size=1, max_size=5))
def test_pseudonym_keys_read_back_as_written(keys: dict[str, bytes]) -> None:
    pairs = list(keys.items())
    assert parse_keys(format_keys(pairs)) == pairs


@given(SECRETS)
def test_a_record_key_reads_back_as_written(secret: bytes) -> None:
    assert parse_record_key(format_record_key(secret)) == secret


def test_the_key_writer_refuses_an_id_its_reader_would_refuse() -> None:
    for bad in ("-", "_", "", "a:b", "k 1"):
        with pytest.raises(ValueError, match="is not a key id"):
            format_keys([(bad, b"k" * 32)])


def test_short_or_broken_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="line 1: the key is shorter than 16 bytes"):
        parse_keys(format_keys([("k1", b"x" * 15)]))
    with pytest.raises(ValueError, match="shorter than 16 bytes"):
        parse_record_key(format_record_key(b"x" * 15))
    with pytest.raises(ValueError, match=r"^not valid base64$"):
        parse_record_key("secret-looking-text!")


def test_new_keys_are_long_enough_and_their_ids_distinct_within_one_second() -> None:
    assert len(new_secret()) >= MIN_KEY_BYTES and new_secret() != new_secret()
    now = datetime(2024, 1, 31, 12, 0, 0, tzinfo=UTC)
    first = new_key_id([], now)
    second = new_key_id([first], now)
    third = new_key_id([first, second], now)
    assert (first, second, third) == ("k20240131120000", "k20240131120000-2", "k20240131120000-3")
    text = format_keys([(third, new_secret()), (second, new_secret()), (first, new_secret())])
    assert [key_id for key_id, _ in parse_keys(text)] == [third, second, first]


def test_written_key_files_are_private_and_replace_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys"
    write_private(path, "one\n")
    write_private(path, "two\n")
    assert path.read_text() == "two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["keys"]  # no temporary file left behind


DESTINATIONS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda name: name.strip() == name)


@given(st.dictionaries(st.from_regex(r"[0-9]{1,8}", fullmatch=True), DESTINATIONS, min_size=1))
def test_a_rate_deck_reads_back_as_written(deck: dict[str, str]) -> None:
    entries = list(deck.items())
    assert parse_rate_deck(format_rate_deck(entries)) == entries


USERS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(st.lists(st.tuples(USERS, USERS), min_size=1, max_size=5))
def test_basic_auth_credentials_read_back_as_written(pairs: list[tuple[str, str]]) -> None:
    usable = [(user, password) for user, password in pairs if ":" not in user and user[0] != "#"]
    if not usable:
        with pytest.raises(ValueError, match="a user needs a name without ':'"):
            format_basic_auth(pairs)
        return
    assert parse_basic_auth(format_basic_auth(usable)) == (usable, [])


def test_basic_auth_problems_name_lines_never_passwords() -> None:
    credentials, problems = parse_basic_auth("# users\nfs:pw\nbroken-secret-line\n:x\n")
    assert credentials == [("fs", "pw")]
    assert problems == ["line 3: expected USER:PASSWORD", "line 4: expected USER:PASSWORD"]
    assert parse_basic_auth("# none\n") == ([], ["holds no USER:PASSWORD line"])
