"""The generic configuration reader: one declared field is one TOML option, in every respect.

A schema made here, never seen by the daemon, shows that the reader derives
everything from the field (its key, its type's checks, its default, its
check, unknown-key detection, arrays of tables, listen-address clashes) and
that nothing else needs to name the option. The daemon's own schemas are
held to the example configuration in test_config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector import config
from collector.formats.keys import write_private
from collector.receivers.files.config import FilesConfig
from collector.receivers.json_config import JsonConfig
from collector.receivers.radius.config import RadiusConfig
from collector.receivers.sip.config import SipConfig
from collector.settings import (
    Problem,
    Reader,
    check_network,
    option,
    positive,
    read_table,
    schema_keys,
    table_keys,
)


@dataclass(frozen=True)
class Peer:
    name: str = option(text=True, required="is required", unique=str)
    weight: int = option(1, check=positive)


@dataclass(frozen=True)
class Example:
    count: int = option(5, check=positive)
    enabled: bool = option(True)
    label: str = option("x")
    note: str | None = option(None, convert=str.upper)
    networks: tuple[str, ...] = option(("10.0.0.0/8",), check=check_network)
    listen: str = option("127.0.0.1:7000", listen=frozenset({"TCP"}))
    peers: tuple[Peer, ...] = option((), noun="peer")
    renamed: int = option(0, key="renamed_ms")
    #: not an option: filled by the schema itself
    derived: str = field(default="")


def read(data: dict[str, Any], reader: Reader | None = None) -> tuple[Example | None, list[str]]:
    reader = reader or Reader("/etc/x.toml", read_files=False)
    result = read_table(reader, Example, data, "example")
    return result, [f"{p.key}: {p.reason}" for p in reader.problems]


def test_the_keys_of_a_schema_are_its_option_fields_only() -> None:
    assert table_keys(Example) == {
        "count", "enabled", "label", "note", "networks", "listen", "peers", "renamed_ms"
    }  # fmt: skip
    assert ("example.peers", "weight") in set(schema_keys(Example, "example"))


def test_absent_options_take_their_declared_defaults() -> None:
    result, problems = read({"peers": [{"name": "a"}]})
    assert problems == []
    assert result == Example(peers=(Peer("a"),))


def test_each_option_is_read_and_checked_by_its_declaration() -> None:
    result, problems = read(
        {
            "count": 0,
            "enabled": "yes",
            "label": 3,
            "note": "  ",
            "networks": ["10.0.0.1/8", "192.0.2.1"],
            "listen": "localhost:80",
            "peers": [{"name": "a", "weight": True}, {"name": "a"}, {"extra": 1}],
            "renamed": 1,
        }
    )
    assert problems == [
        "example.renamed: unknown key",
        "example.count: must be greater than 0",
        "example.enabled: must be a bool, not str",
        "example.label: must be a str, not int",
        "example.note: must be a non-empty string",
        "example.networks: '10.0.0.1/8' has host bits set: write '10.0.0.0/8' for the "
        "network or '10.0.0.1' for one address",
        "example.listen: 'localhost:80' is not IP:PORT (the host is not an IP address)",
        "example.peers[0].weight: must be an integer, not bool",
        "example.peers[1].name: 'a' is used by another peer",
        "example.peers[2].extra: unknown key",
        "example.peers[2].name: is required",
    ]
    assert result is not None and result.peers == ()  # items with a problem are left out


def test_values_are_converted_and_lists_accept_one_string() -> None:
    result, problems = read({"note": "abc", "networks": "192.0.2.0/24", "renamed_ms": 7, "peers": [{"name": "p"}]})  # fmt: skip
    assert problems == []
    assert result is not None
    assert (result.note, result.networks, result.renamed) == ("ABC", ("192.0.2.0/24",), 7)


def test_an_empty_array_of_tables_says_what_is_missing() -> None:
    _, problems = read({"peers": []})
    assert problems == ["example.peers: no peer is configured: every packet would be dropped"]
    _, problems = read({"peers": {"name": "a"}})
    assert problems == ["example.peers: must be an array of tables ([[example.peers]])"]


def test_listen_addresses_of_different_tables_clash_on_a_shared_transport() -> None:
    reader = Reader("/etc/x.toml", read_files=False)
    read_table(reader, Example, {"peers": [{"name": "a"}]}, "one")
    read_table(reader, Example, {"peers": [{"name": "a"}], "listen": "0.0.0.0:7000"}, "two")
    reader.listen("udp.listen", "127.0.0.1:7000", frozenset({"UDP"}))
    reader.listen_clashes()
    assert reader.problems == [
        Problem(
            "/etc/x.toml",
            "two.listen",
            "'0.0.0.0:7000' takes TCP port 7000, already taken by '127.0.0.1:7000' in one.listen",
        )
    ]


def test_the_receiver_registry_holds_every_listener_section() -> None:
    assert {
        "radius": RadiusConfig,
        "sip": SipConfig,
        "json": JsonConfig,
        "files": FilesConfig,
    } == config.RECEIVERS
    keys = set(schema_keys(config.Config))
    assert {("", name) for name in config.RECEIVERS} <= keys


def test_every_receiver_section_offers_what_the_service_asks_of_it() -> None:
    # the service, check-config and retention call these on every configured section
    for name, schema in config.RECEIVERS.items():
        assert issubclass(schema, config.ReceiverConfig), name
        assert isinstance(getattr(schema, "RECEIVER", None), str), name


def test_configured_receivers_come_by_section_name(tmp_path: Path) -> None:
    write_private(tmp_path / "keys", "k1:" + "S" * 24 + "\n")
    write_private(tmp_path / "record-key", "R" * 24 + "\n")
    data = {
        "spool": {"directory": str(tmp_path / "spool")},
        "privacy": {"key_file": "keys", "record_key_file": "record-key"},
        "sip": {"sources": [{"name": "p", "address": "192.0.2.1", "region": "dk"}]},
        "json": {"allowed": ["192.0.2.0/24"], "source": "fs", "region": "no"},
    }
    loaded = config.parse_config(str(tmp_path / "c.toml"), data)
    assert list(loaded.receivers()) == ["sip", "json"]
    assert loaded.source_regions() == {("sip", "p"): "DK", ("json", "fs"): "NO"}


@pytest.mark.parametrize("only_problem", ["count", "listen"])
def test_a_value_with_a_problem_falls_back_to_its_default(only_problem: str) -> None:
    data: dict[str, Any] = {"peers": [{"name": "a"}], only_problem: -1}
    result, problems = read(data)
    assert len(problems) == 1
    assert result is not None and getattr(result, only_problem) == getattr(Example(), only_problem)
