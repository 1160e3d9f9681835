"""Configuration: the example file, every problem in one run, and no secret in any message.

`check-config` and `keygen` run as real subprocesses (`python -m collector`),
the way systemd's ExecStartPre and an operator run them. Finer points of the
parser are checked in process with `load_config`.

The tests run as root, for whom `chmod 000` does not make a file unreadable;
an unreadable key file is therefore stood in for by a directory and by a
missing file, the two ways the same code path fails for root.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from collector import config
from collector.config import load_config
from collector.formats.keys import parse_keys, write_private
from collector.receivers.files.config import FileSource
from collector.receivers.radius.config import RadiusClient
from collector.receivers.sip.config import SipSource
from collector.settings import ConfigError, Problem, defaults, options, schema_keys, sections

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "collector.toml"
SECRET = "Sh4red-Secret-Value-77"
KEY_MATERIAL = base64.b64encode(b"K" * 32).decode()
RECORD_MATERIAL = base64.b64encode(b"R" * 32).decode()


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m collector ARGS` with a clean environment (no CDR_COLLECTOR_* leaking in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CDR_COLLECTOR_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("check-config", "--config", str(path), env=env)


def problem_lines(result: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    """The "FILE: KEY: REASON" lines, after checking the summary line counts them."""
    lines = result.stderr.strip().splitlines()
    assert lines, result
    summary = lines[-1]
    match = re.fullmatch(
        re.escape(str(path)) + r": (\d+) problem\(s\); nothing was started", summary
    )
    assert match, summary
    problems = lines[:-1]
    assert int(match.group(1)) == len(problems)
    for line in problems:
        assert re.fullmatch(re.escape(str(path)) + r": \S+: .+", line), line
    return problems


def has_problem(problems: list[str], path: Path, key: str, reason: str) -> bool:
    prefix = f"{path}: {key}: "
    return any(line.startswith(prefix) and reason in line[len(prefix) :] for line in problems)


def problems_of(path: Path) -> list[Problem]:
    """Every problem load_config finds (in process: the CLI tests cover the output)."""
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert all(p.file == str(path) for p in caught.value.problems)
    return caught.value.problems


def found(problems: list[Problem], key: str, reason: str) -> bool:
    return any(p.key == key and reason in p.reason for p in problems)


def write_keys(directory: Path) -> None:
    write_private(directory / "keys", f"# newest first\nk1:{KEY_MATERIAL}\n")
    write_private(directory / "record-key", RECORD_MATERIAL + "\n")


MINIMAL = f"""
[spool]
directory = "spool"

[privacy]
key_file = "keys"
record_key_file = "record-key"

[radius]
listen = ["127.0.0.1:1813"]

[[radius.clients]]
name = "sbc-1"
address = "192.0.2.10"
secret = "{SECRET}"
"""


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    """A small valid configuration with its key files, relative to its own directory."""
    write_keys(tmp_path)
    path = tmp_path / "collector.toml"
    path.write_text(MINIMAL)
    return path


def example_copy(directory: Path) -> Path:
    """The shipped example with its key files and spool pointed into `directory`."""
    text = EXAMPLE.read_text()
    text, keys = re.subn(r"^key_file = .*$", f'key_file = "{directory / "keys"}"', text, flags=re.M)
    text, records = re.subn(
        r"^record_key_file = .*$",
        f'record_key_file = "{directory / "record-key"}"',
        text,
        flags=re.M,
    )
    text, spools = re.subn(
        r'^directory = "/var/lib/cdr-collector/spool"$',
        f'directory = "{directory / "spool"}"',
        text,
        flags=re.M,
    )
    # a file source's directory must exist (the unit's StateDirectory= makes it)
    (directory / "incoming").mkdir(exist_ok=True)
    text, incoming = re.subn(
        r'^directory = "/var/lib/cdr-collector/incoming"$',
        f'directory = "{directory / "incoming"}"',
        text,
        flags=re.M,
    )
    assert (keys, records, spools, incoming) == (1, 1, 1, 1)
    path = directory / "collector.toml"
    path.write_text(text)
    return path


# -- the example configuration and keygen ------------------------------------------------


def test_example_config_passes_once_keygen_wrote_its_keys(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    before = check_config(path)
    assert before.returncode == 1
    problems = problem_lines(before, path)
    assert has_problem(problems, path, "privacy.key_file", "does not exist")
    assert has_problem(problems, path, "privacy.record_key_file", "does not exist")
    assert len(problems) == 2  # the example itself is otherwise valid

    keygen = run_cli("keygen", "--config", str(path))
    assert keygen.returncode == 0, keygen.stderr
    for name in ("keys", "record-key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert KEY_MATERIAL not in keygen.stdout

    after = check_config(path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.startswith(f"{path}: OK")
    assert "1 pseudonym key(s)" in after.stdout
    assert after.stderr == ""


def test_keygen_leaves_existing_keys_alone(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    assert run_cli("keygen", "--config", str(path)).returncode == 0
    keys = (tmp_path / "keys").read_bytes()
    record = (tmp_path / "record-key").read_bytes()
    again = run_cli("keygen", "--config", str(path))
    assert again.returncode == 0
    assert (tmp_path / "keys").read_bytes() == keys
    assert (tmp_path / "record-key").read_bytes() == record


def test_keygen_rotate_puts_a_new_key_first_and_keeps_the_old(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    assert run_cli("keygen", "--config", str(path)).returncode == 0
    # give the first key an id of its own, so that this test does not depend on
    # the clock (see the next test for what happens when ids collide)
    keys_file = tmp_path / "keys"
    write_private(keys_file, re.sub(r"^k\w+:", "k2000:", keys_file.read_text()))
    old = parse_keys(keys_file.read_text())
    record = (tmp_path / "record-key").read_bytes()
    rotated = run_cli("keygen", "--rotate", "--config", str(path))
    assert rotated.returncode == 0, rotated.stderr
    loaded = load_config(str(path))
    assert len(loaded.privacy.keys) == 2
    assert loaded.privacy.keys[1] == old[0]
    assert loaded.privacy.keys[0][0] != "k2000"
    assert loaded.privacy.keys[0][1] != old[0][1]
    assert len(loaded.privacy.keys[0][1]) >= 16
    # the record key never rotates
    assert (tmp_path / "record-key").read_bytes() == record


# keygen three times in one process: the runs take milliseconds, so at least
# two of them fall within the same wall-clock second
_KEYGEN_THRICE = """
import sys
from collector.cli import build_parser, cmd_keygen
for rotate in ([], ["--rotate"], ["--rotate"]):
    cmd_keygen(build_parser().parse_args(["keygen", "--config", sys.argv[1], *rotate]))
"""


def test_keygen_rotations_in_quick_succession_give_distinct_key_ids(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _KEYGEN_THRICE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ids = [line.partition(":")[0] for line in (tmp_path / "keys").read_text().splitlines()]
    assert len(ids) == 3
    assert len(set(ids)) == 3, ids  # a duplicate id makes the key file invalid
    assert len(load_config(str(path)).privacy.keys) == 3


# -- every problem, in one run --------------------------------------------------------------


def test_every_problem_is_listed_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "keys-dir").mkdir()
    write_private(tmp_path / "record-key", "this is not base64!\n")
    path = tmp_path / "broken.toml"
    path.write_text(
        f"""
databse = "typo at the top level"

[database]
dsn = "postgresql://root@127.0.0.1:5432/cdr"
batch_max_records = "many"
migrate = "yes"

[metrics]
listen = "0.0.0.0"

[privacy]
key_file = "keys-dir"
record_key_file = "record-key"
mask_digits = 12

[radius]
listen = ["localhost:1813"]

[[radius.clients]]
name = "typo"
address = "192.0.2.10"
secrt = "{SECRET}"

[[radius.clients]]
name = "bad-cidr"
address = "192.0.2.300/33"
secret = "{SECRET}"

[[radius.clients]]
name = "no-secret"
address = "192.0.2.12"

[[radius.clients]]
name = "missing-secret-file"
address = "192.0.2.13"
secret_file = "nowhere/secret"

[sip]
listen = ["0.0.0.0:9060"]

[[sip.sources]]
name = "k1"
address = "192.0.2.20"
hep_auth_kye = "{SECRET}"

[json]
allowed = ["10.0.0.0/40"]
"""
    )
    result = check_config(path)
    assert result.returncode == 1
    assert result.stdout == ""
    problems = problem_lines(result, path)
    expected = [
        ("databse", "unknown key"),
        ("database.batch_max_records", "integer"),
        ("database.migrate", "bool"),
        ("metrics.listen", "not IP:PORT"),
        ("privacy.key_file", "directory"),
        ("privacy.record_key_file", "base64"),
        ("privacy.mask_digits", "between"),
        ("radius.listen", "not IP:PORT"),
        ("radius.clients[0].secrt", "unknown key"),
        ("radius.clients[1].address", "not an IP address or CIDR"),
        ("radius.clients[2].secret", "required"),
        ("radius.clients[3].secret_file", "does not exist"),
        ("sip.sources[0].hep_auth_kye", "unknown key"),
        ("json.allowed", "not an IP address or CIDR"),
    ]
    missing = [(k, r) for k, r in expected if not has_problem(problems, path, k, r)]
    assert missing == [], result.stderr
    assert SECRET not in result.stderr


def test_missing_key_file_is_reported_with_its_path(minimal: Path) -> None:
    (minimal.parent / "keys").unlink()
    problems = problems_of(minimal)
    assert found(problems, "privacy.key_file", str(minimal.parent / "keys"))
    assert found(problems, "privacy.key_file", "does not exist")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("k1:not base64 at all!\n", "base64"),
        (f"{KEY_MATERIAL}\n", "ID:BASE64"),
        (f"k1:{base64.b64encode(b'short').decode()}\n", "16 bytes"),
        (f"k1:{KEY_MATERIAL}\nk1:{KEY_MATERIAL}\n", "twice"),
        ("# only a comment\n\n", "no key"),
    ],
)
def test_bad_key_file_is_reported_without_its_material(
    minimal: Path, content: str, reason: str
) -> None:
    write_private(minimal.parent / "keys", content)
    problems = problems_of(minimal)
    assert found(problems, "privacy.key_file", reason), problems
    text = "\n".join(str(p) for p in problems)
    assert KEY_MATERIAL not in text
    assert "not base64 at all" not in text


def test_short_record_key_is_reported(minimal: Path) -> None:
    write_private(minimal.parent / "record-key", base64.b64encode(b"tiny").decode())
    assert found(problems_of(minimal), "privacy.record_key_file", "16 bytes")


@pytest.mark.parametrize("mask_digits", [0, -1, 9])
def test_a_mask_that_would_show_the_whole_number_is_refused(
    minimal: Path, mask_digits: int
) -> None:
    minimal.write_text(
        MINIMAL.replace(
            'record_key_file = "record-key"',
            f'record_key_file = "record-key"\nmask_digits = {mask_digits}',
        )
    )
    result = check_config(minimal)
    assert result.returncode == 1
    assert has_problem(problem_lines(result, minimal), minimal, "privacy.mask_digits", "between 1")


def test_no_listener_is_an_error(tmp_path: Path) -> None:
    write_keys(tmp_path)
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\ndsn = "postgresql://root@127.0.0.1/cdr"\n'
        '[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n'
    )
    result = check_config(path)
    assert result.returncode == 1
    problems = problem_lines(result, path)
    assert len(problems) == 1
    assert "no listener" in problems[0]


def test_neither_database_nor_spool_is_an_error(minimal: Path) -> None:
    minimal.write_text(MINIMAL.replace('[spool]\ndirectory = "spool"\n', ""))
    problems = problems_of(minimal)
    assert len(problems) == 1
    assert "neither [database] nor [spool]" in problems[0].reason


def test_database_alone_or_spool_alone_is_enough(minimal: Path) -> None:
    spool_only = load_config(str(minimal))
    assert spool_only.spool is not None and spool_only.database is None
    minimal.write_text(
        MINIMAL.replace(
            '[spool]\ndirectory = "spool"\n',
            '[database]\ndsn = "postgresql://root@127.0.0.1:5432/cdr"\n',
        )
    )
    database_only = load_config(str(minimal))
    assert database_only.spool is None and database_only.database is not None


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0", "localhost:1813", "0.0.0.0:99999", "0.0.0.0:port", ":1813", "[::1]1813"],
)
def test_listen_must_be_ip_and_port(minimal: Path, listen: str) -> None:
    minimal.write_text(MINIMAL.replace('listen = ["127.0.0.1:1813"]', f'listen = ["{listen}"]'))
    assert found(problems_of(minimal), "radius.listen", "IP:PORT")


@pytest.mark.parametrize("listen", ["127.0.0.1:1813", "[::1]:1813", "0.0.0.0:0", "[::]:1813"])
def test_valid_listen_addresses(minimal: Path, listen: str) -> None:
    minimal.write_text(MINIMAL.replace('listen = ["127.0.0.1:1813"]', f'listen = ["{listen}"]'))
    assert load_config(str(minimal)).radius is not None


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = check_config(path)
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert str(path) in result.stderr


# -- secrets never echoed --------------------------------------------------------------------


def test_no_message_echoes_a_secret(tmp_path: Path) -> None:
    write_keys(tmp_path)
    write_private(tmp_path / "json.passwd", f"admin{SECRET}\n")  # no colon: a bad line
    write_private(tmp_path / "client.secret", SECRET)
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[spool]
directory = "spool"

[privacy]
key_file = "keys"
record_key_file = "record-key"

[radius]
listen = ["127.0.0.1:1813"]

[[radius.clients]]
name = "both"
address = "192.0.2.10"
secret = "{SECRET}"
secret_file = "client.secret"

[[radius.clients]]
name = "typo"
address = "192.0.2.11"
sceret = "{SECRET}"

[[radius.clients]]
name = "wrong-type"
address = "192.0.2.12"
secret = ["{SECRET}"]

[json]
listen = "127.0.0.1:9811"
allowed = ["127.0.0.1/32"]
basic_auth_file = "json.passwd"
"""
    )
    result = check_config(path)
    assert result.returncode == 1
    problems = problem_lines(result, path)
    assert len(problems) >= 4
    assert SECRET not in result.stderr
    assert SECRET not in result.stdout


def test_secret_pasted_into_the_wrong_field_is_not_echoed(minimal: Path) -> None:
    # two lines swapped by a copy and paste: the secret sits where an address belongs
    minimal.write_text(
        MINIMAL.replace('address = "192.0.2.10"', f'address = "{SECRET}"').replace(
            f'secret = "{SECRET}"', 'secret = "192.0.2.10"'
        )
        + f'\n[service]\ndrain_timeout_ms = "{SECRET}"\n'
    )
    result = check_config(minimal)
    assert result.returncode == 1
    problems = problem_lines(result, minimal)
    assert has_problem(problems, minimal, "radius.clients[0].address", "IP address")
    assert has_problem(problems, minimal, "service.drain_timeout_ms", "integer")
    assert SECRET not in result.stderr


def test_toml_syntax_error_does_not_echo_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[radius]\nsecret = "{SECRET}\n')
    result = check_config(path)
    assert result.returncode == 1
    assert "not valid TOML" in result.stderr
    assert SECRET not in result.stderr


def test_repr_of_loaded_config_holds_no_secret(minimal: Path) -> None:
    loaded = load_config(str(minimal))
    assert loaded.radius is not None
    assert loaded.radius.clients[0].secret == SECRET.encode()
    assert SECRET not in repr(loaded)
    assert KEY_MATERIAL not in repr(loaded)
    assert repr(b"K" * 32) not in repr(loaded)


# -- environment ----------------------------------------------------------------------------


def test_config_path_from_environment_when_option_is_omitted(minimal: Path) -> None:
    result = run_cli("check-config", env={"CDR_COLLECTOR_CONFIG": str(minimal)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{minimal}: OK")


def test_option_wins_over_environment(minimal: Path, tmp_path: Path) -> None:
    result = run_cli(
        "check-config",
        "--config",
        str(minimal),
        env={"CDR_COLLECTOR_CONFIG": str(tmp_path / "absent.toml")},
    )
    assert result.returncode == 0, result.stderr


def test_dsn_from_environment_overrides_the_file(
    minimal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minimal.write_text(
        MINIMAL + '\n[database]\ndsn = "postgresql://root@127.0.0.1:5432/from_file"\n'
    )
    monkeypatch.setenv("CDR_COLLECTOR_DSN", "postgresql://collector@db.example:5433/from_env")
    loaded = load_config(str(minimal))
    assert loaded.database is not None
    assert loaded.database.dsn == "postgresql://collector@db.example:5433/from_env"
    monkeypatch.delenv("CDR_COLLECTOR_DSN")
    loaded = load_config(str(minimal))
    assert loaded.database is not None
    assert loaded.database.dsn == "postgresql://root@127.0.0.1:5432/from_file"


def test_bad_dsn_from_environment_is_reported_without_its_password(minimal: Path) -> None:
    minimal.write_text(MINIMAL + '\n[database]\ndsn = "postgresql://root@127.0.0.1/cdr"\n')
    result = check_config(minimal, env={"CDR_COLLECTOR_DSN": f"mysql://u:{SECRET}@h/db"})
    assert result.returncode == 1
    problems = problem_lines(result, minimal)
    assert has_problem(problems, minimal, "database.dsn", "postgresql://")
    assert SECRET not in result.stderr


# -- the parsed result ------------------------------------------------------------------------


def test_loaded_config_holds_parsed_values(minimal: Path) -> None:
    (minimal.parent / "prefixes.csv").write_text(
        "prefix,destination\n+4930,Germany Berlin\n44,United Kingdom\n"
    )
    minimal.write_text(
        MINIMAL.replace(
            'record_key_file = "record-key"',
            'record_key_file = "record-key"\nrate_deck = "prefixes.csv"\n'
            'default_region = "de"\nmask_digits = 4',
        )
    )
    loaded = load_config(str(minimal))
    assert loaded.privacy.keys == (("k1", b"K" * 32),)
    assert loaded.privacy.record_secret == b"R" * 32
    assert loaded.privacy.rate_deck_entries == (
        ("4930", "Germany Berlin"),
        ("44", "United Kingdom"),
    )
    assert loaded.privacy.default_region == "DE"
    assert loaded.privacy.mask_digits == 4
    assert loaded.spool is not None
    assert loaded.spool.directory == str(minimal.parent / "spool")  # relative to the file
    assert loaded.radius is not None
    assert loaded.radius.clients[0].name == "sbc-1"
    assert loaded.radius.clients[0].profile == "auto"
    assert loaded.database is None and loaded.sip is None and loaded.json is None


def test_secret_file_is_read_and_stripped(minimal: Path) -> None:
    write_private(minimal.parent / "sbc.secret", f"  {SECRET}\n")
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    loaded = load_config(str(minimal))
    assert loaded.radius is not None
    assert loaded.radius.clients[0].secret == SECRET.encode()


def test_config_error_lists_problems_as_data(minimal: Path) -> None:
    minimal.write_text(MINIMAL + '\n[logging]\nlevel = "loud"\nformat = "xml"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(str(minimal))
    keys = {p.key for p in caught.value.problems}
    assert keys == {"logging.level", "logging.format"}
    assert all(isinstance(p, Problem) and p.file == str(minimal) for p in caught.value.problems)


def test_duplicate_client_names_and_addresses_are_errors(minimal: Path) -> None:
    minimal.write_text(
        MINIMAL
        + f'\n[[radius.clients]]\nname = "sbc-1"\naddress = "192.0.2.10/32"\nsecret = "{SECRET}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(minimal))
    keys = {p.key for p in caught.value.problems}
    assert keys == {"radius.clients[1].name", "radius.clients[1].address"}


# -- listen addresses -----------------------------------------------------------------------

SIP = '\n[sip]\nlisten = ["{sip}"]\n\n[[sip.sources]]\nname = "k1"\naddress = "192.0.2.20"\n'


@pytest.mark.parametrize(
    ("radius", "extra", "key", "transport"),
    [
        ('"127.0.0.1:1813", "127.0.0.1:1813"', "", "radius.listen", "UDP"),
        ('"0.0.0.0:1813", "127.0.0.1:1813"', "", "radius.listen", "UDP"),
        ('"[::]:1813", "127.0.0.1:1813"', "", "radius.listen", "UDP"),
        ('"127.0.0.1:1813"', SIP.format(sip="127.0.0.1:1813"), "sip.listen", "UDP"),
        (
            '"127.0.0.1:1813"',
            '\n[metrics]\nlisten = "127.0.0.1:9810"\n'
            '[json]\nlisten = "0.0.0.0:9810"\nallowed = ["10.0.0.0/8"]\n',
            "json.listen",
            "TCP",
        ),
        (
            '"127.0.0.1:1813"',
            '\n[metrics]\nlisten = "127.0.0.1:9060"\n' + SIP.format(sip="127.0.0.1:9060"),
            "sip.listen",
            "TCP",
        ),
    ],
)
def test_one_port_taken_twice_is_a_config_error(
    minimal: Path, radius: str, extra: str, key: str, transport: str
) -> None:
    # two UDP sockets with SO_REUSEADDR both bind and split the packets between
    # them; two TCP listeners fail at start with a bind error: both are caught here
    minimal.write_text(
        MINIMAL.replace('listen = ["127.0.0.1:1813"]', f"listen = [{radius}]") + extra
    )
    problems = problems_of(minimal)
    assert found(problems, key, f"{transport} port"), problems
    assert found(problems, key, "already taken by"), problems


@pytest.mark.parametrize(
    ("radius", "extra"),
    [
        # RADIUS is UDP only and metrics TCP only: no clash
        ('"127.0.0.1:1813"', '\n[metrics]\nlisten = "127.0.0.1:1813"\n'),
        # different addresses of one family
        ('"127.0.0.1:1813", "127.0.0.2:1813"', ""),
        # port 0 is a fresh port each time
        ('"127.0.0.1:0", "127.0.0.1:0"', SIP.format(sip="127.0.0.1:0")),
    ],
)
def test_listeners_that_do_not_clash_are_accepted(minimal: Path, radius: str, extra: str) -> None:
    minimal.write_text(
        MINIMAL.replace('listen = ["127.0.0.1:1813"]', f"listen = [{radius}]") + extra
    )
    load_config(str(minimal))


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("::1:1813", "brackets"),
        ("[127.0.0.1]:1813", "IPv6"),
        ("127.0.0.1:\uff11\uff18\uff11\uff13", "not a number"),  # full-width digits
        ("127.0.0.1:1813.0", "not a number"),
    ],
)
def test_ambiguous_listen_addresses_are_refused(minimal: Path, listen: str, reason: str) -> None:
    minimal.write_text(MINIMAL.replace('listen = ["127.0.0.1:1813"]', f'listen = ["{listen}"]'))
    assert found(problems_of(minimal), "radius.listen", reason)


@pytest.mark.parametrize("section", ["radius", "sip"])
def test_an_empty_listen_list_is_refused_not_replaced_by_the_default(
    minimal: Path, section: str
) -> None:
    text = MINIMAL + SIP.format(sip="127.0.0.1:9060")
    text = text.replace(
        f'[{section}]\nlisten = ["127.0.0.1:{1813 if section == "radius" else 9060}"]',
        f"[{section}]\nlisten = []",
    )
    minimal.write_text(text)
    assert found(problems_of(minimal), f"{section}.listen", "must not be empty")


# -- clients and networks -----------------------------------------------------------------------


def test_ipv6_clients_and_overlapping_networks_are_accepted(minimal: Path) -> None:
    minimal.write_text(
        MINIMAL.replace('listen = ["127.0.0.1:1813"]', 'listen = ["[::1]:1813"]')
        + f'\n[[radius.clients]]\nname = "pool"\naddress = "192.0.2.0/24"\nsecret = "{SECRET}"\n'
        + f'\n[[radius.clients]]\nname = "v6"\naddress = "2001:db8::/48"\nsecret = "{SECRET}"\n'
        + f'\n[[radius.clients]]\nname = "v6-host"\naddress = "2001:db8::7"\nsecret = "{SECRET}"\n'
    )
    loaded = load_config(str(minimal))
    assert loaded.radius is not None
    assert [c.name for c in loaded.radius.clients] == ["sbc-1", "pool", "v6", "v6-host"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL.replace('"192.0.2.10"', '"192.0.2.10/24"'), "radius.clients[0].address"),
        (
            MINIMAL + SIP.format(sip="127.0.0.1:9060").replace("192.0.2.20", "2001:db8::1/64"),
            "sip.sources[0].address",
        ),
        (
            MINIMAL + '\n[json]\nlisten = "127.0.0.1:9811"\nallowed = ["10.1.2.3/8"]\n',
            "json.allowed",
        ),
    ],
)
def test_a_network_with_host_bits_is_refused(minimal: Path, text: str, key: str) -> None:
    # "192.0.2.10/24" may mean the one address or the whole /24: a typo would
    # silently let 255 other hosts send with this secret
    minimal.write_text(text)
    assert found(problems_of(minimal), key, "host bits")


def test_sip_sources_with_one_address_are_refused(minimal: Path) -> None:
    minimal.write_text(
        MINIMAL
        + SIP.format(sip="127.0.0.1:9060")
        + '\n[[sip.sources]]\nname = "k2"\naddress = "192.0.2.20/32"\n'
    )
    assert found(problems_of(minimal), "sip.sources[1].address", "used by another source")


def test_a_blank_name_is_refused(minimal: Path) -> None:
    minimal.write_text(MINIMAL.replace('name = "sbc-1"', 'name = "   "'))
    problems = problems_of(minimal)
    assert found(problems, "radius.clients[0].name", "non-empty")
    assert len(problems) == 1


def test_json_needs_at_least_one_allowed_network(minimal: Path) -> None:
    minimal.write_text(MINIMAL + '\n[json]\nlisten = "127.0.0.1:9811"\nallowed = []\n')
    assert found(problems_of(minimal), "json.allowed", "must not be empty")


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["   ", "\\t"])
def test_a_blank_secret_is_refused(minimal: Path, secret: str) -> None:
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', f'secret = "{secret}"'))
    assert found(problems_of(minimal), "radius.clients[0].secret", "non-empty")


def test_a_secret_file_of_several_lines_is_refused(minimal: Path) -> None:
    write_private(minimal.parent / "sbc.secret", f"{SECRET}\nsecond line\n")
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    problems = problems_of(minimal)
    assert found(problems, "radius.clients[0].secret_file", "more than one line")
    assert SECRET not in "\n".join(str(p) for p in problems)


def test_a_secret_file_with_crlf_or_byte_order_mark_is_read(minimal: Path) -> None:
    write_private(minimal.parent / "sbc.secret", "\ufeff" + SECRET + "\r\n")
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    loaded = load_config(str(minimal))
    assert loaded.radius is not None
    assert loaded.radius.clients[0].secret == SECRET.encode()


def test_a_binary_secret_file_is_reported_as_not_utf8(minimal: Path) -> None:
    (minimal.parent / "sbc.secret").write_bytes(b"\xff\xfe\x00secret")
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    assert found(problems_of(minimal), "radius.clients[0].secret_file", "not UTF-8 text")


@pytest.mark.parametrize(
    ("mode", "granted"),
    [
        (0o644, "readable"),
        (0o640, "readable"),
        (0o604, "readable"),
        (0o620, "writable"),
        (0o660, "readable and writable"),
        (0o610, "executable"),
        (0o777, "readable, writable and executable"),
    ],
)
def test_a_secret_file_others_may_use_is_refused(minimal: Path, mode: int, granted: str) -> None:
    """Any group or other bit on a private file: a problem naming the file and its mode."""
    write_private(minimal.parent / "sbc.secret", SECRET)
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    (minimal.parent / "sbc.secret").chmod(mode)
    (problem,) = problems_of(minimal)
    assert problem.key == "radius.clients[0].secret_file"
    assert problem.reason == (
        f"{minimal.parent / 'sbc.secret'} is mode {mode:04o}: {granted} by others; chmod 600 it"
    )
    (minimal.parent / "sbc.secret").chmod(0o600)
    assert load_config(str(minimal)).radius is not None
    (minimal.parent / "sbc.secret").chmod(0o400)
    assert load_config(str(minimal)).radius is not None


@pytest.mark.parametrize(
    ("key", "name"),
    [("privacy.key_file", "keys"), ("privacy.record_key_file", "record-key")],
)
def test_check_config_refuses_a_key_file_others_can_read(
    minimal: Path, key: str, name: str
) -> None:
    """A readable pseudonym key reverses every pseudonym: check-config exits 1 naming it."""
    (minimal.parent / name).chmod(0o644)
    result = check_config(minimal)
    assert result.returncode == 1
    assert problem_lines(result, minimal) == [
        f"{minimal}: {key}: {minimal.parent / name} is mode 0644: readable by others; chmod 600 it"
    ]
    assert "Traceback" not in result.stderr


def test_run_refuses_a_key_file_others_can_read(minimal: Path) -> None:
    """The daemon does not start either: same line, exit 1, nothing bound."""
    (minimal.parent / "keys").chmod(0o604)
    result = run_cli("run", "--config", str(minimal))
    assert result.returncode == 1
    assert problem_lines(result, minimal) == [
        f"{minimal}: privacy.key_file: {minimal.parent / 'keys'} is mode 0604: readable by "
        "others; chmod 600 it"
    ]


def test_a_json_password_file_others_can_read_is_refused(minimal: Path) -> None:
    passwd = minimal.parent / "json.passwd"
    write_private(passwd, "fs:pw\n")
    passwd.chmod(0o640)
    minimal.write_text(
        MINIMAL + '\n[json]\nlisten = "127.0.0.1:0"\nallowed = ["127.0.0.1/32"]\n'
        'basic_auth_file = "json.passwd"\n'
    )
    assert found(problems_of(minimal), "json.basic_auth_file", "is mode 0640: readable by others")


# -- key files -----------------------------------------------------------------------------------


def test_key_files_with_byte_order_mark_crlf_and_comments_are_read(minimal: Path) -> None:
    (minimal.parent / "keys").write_bytes(
        b"\xef\xbb\xbf# newest first\r\n\r\n"
        + f"k2:{KEY_MATERIAL}\r\n# the old one\r\nk1:{RECORD_MATERIAL}\r\n".encode()
    )
    (minimal.parent / "record-key").write_bytes(
        b"\xef\xbb\xbf" + RECORD_MATERIAL.encode() + b"\r\n"
    )
    loaded = load_config(str(minimal))
    assert loaded.privacy.keys == (("k2", b"K" * 32), ("k1", b"R" * 32))
    assert loaded.privacy.record_secret == b"R" * 32


# -- the rate deck -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("4930,Berlin\n4930,Hamburg\n", "prefix 4930 is already listed on line 1"),
        ("4930,Berlin\n+4930,Berlin\n", "already listed"),
        ("prefix,destination\n4930,\n", "line 2: the destination of prefix 4930 is empty"),
        ("4930;Berlin\n", "line 1: expected digits,destination"),
        ("prefix,destination\n4930,Berlin\n49 30,Berlin\n", "line 3: expected"),
        ("prefix,destination\n", "holds no prefix"),
        ("", "holds no prefix"),
    ],
)
def test_bad_rate_decks_are_reported_with_their_line(
    minimal: Path, content: str, reason: str
) -> None:
    (minimal.parent / "prefixes.csv").write_text(content)
    minimal.write_text(
        MINIMAL.replace(
            'record_key_file = "record-key"',
            'record_key_file = "record-key"\nrate_deck = "prefixes.csv"',
        )
    )
    assert found(problems_of(minimal), "privacy.rate_deck", reason)


@pytest.mark.parametrize(
    ("content", "entries"),
    [
        # a byte order mark and no header: the first row is a prefix, not a header
        (b"\xef\xbb\xbf4930,Berlin\r\n44,UK\r\n", (("4930", "Berlin"), ("44", "UK"))),
        # CSV quoting, extra columns (a rate), comments and blank lines
        (
            b'# deck of 2024\n\nprefix,destination,rate\n"4930","Berlin, Mitte",0.01\n44,UK,0.02\n',
            (("4930", "Berlin, Mitte"), ("44", "UK")),
        ),
    ],
)
def test_rate_decks_as_spreadsheets_write_them(
    minimal: Path, content: bytes, entries: tuple[tuple[str, str], ...]
) -> None:
    (minimal.parent / "prefixes.csv").write_bytes(content)
    minimal.write_text(
        MINIMAL.replace(
            'record_key_file = "record-key"',
            'record_key_file = "record-key"\nrate_deck = "prefixes.csv"',
        )
    )
    assert load_config(str(minimal)).privacy.rate_deck_entries == entries


# -- the spool directory ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directory", "reason"),
    [
        ("a-file", "is not a directory"),
        ("a-file/spool", "cannot be created: "),
        ("", "non-empty"),
    ],
)
def test_an_unusable_spool_directory_is_a_config_error(
    minimal: Path, directory: str, reason: str
) -> None:
    (minimal.parent / "a-file").write_text("")
    minimal.write_text(MINIMAL.replace('directory = "spool"', f'directory = "{directory}"'))
    assert found(problems_of(minimal), "spool.directory", reason)


def test_a_spool_directory_this_user_cannot_write_is_a_config_error(
    minimal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root may write anywhere, so the refusal of a read-only mount is simulated
    real_access = os.access
    spool_parent = minimal.parent

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if Path(path) == spool_parent and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    assert found(problems_of(minimal), "spool.directory", "not writable")


# -- the database URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("postgresql://root@127.0.0.1:5432/cdr?sslmode=bogus", "sslmode must be one of"),
        ("postgresql://root@127.0.0.1:port/cdr", "port"),
        ("postgresql://root@127.0.0.1:99999/cdr", "port"),
    ],
)
def test_a_dsn_asyncpg_would_refuse_is_a_config_error(minimal: Path, dsn: str, reason: str) -> None:
    # otherwise the daemon starts, calls the database "down" forever and spools
    minimal.write_text(MINIMAL + f'\n[database]\ndsn = "{dsn}"\n')
    assert found(problems_of(minimal), "database.dsn", reason)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u@h1:5432,h2:5433/cdr?sslmode=require",
        "postgres://u@[::1]:5432/cdr",
        "postgresql:///cdr?host=/run/postgresql",
    ],
)
def test_usual_dsns_are_accepted(minimal: Path, dsn: str) -> None:
    minimal.write_text(MINIMAL + f'\n[database]\ndsn = "{dsn}"\n')
    assert load_config(str(minimal)).database is not None


# -- the file itself -------------------------------------------------------------------------


def test_a_directory_given_as_config_file(tmp_path: Path) -> None:
    result = check_config(tmp_path)
    assert result.returncode == 1
    assert problem_lines(result, tmp_path) == [
        f"{tmp_path}: -: is a directory, not a configuration file"
    ]


def test_toml_syntax_error_names_line_and_column(minimal: Path) -> None:
    minimal.write_text(MINIMAL.replace('name = "sbc-1"', "name = sbc-1"))
    problems = problems_of(minimal)
    assert len(problems) == 1
    assert "line 13, column 8" in problems[0].reason


def test_a_config_file_with_byte_order_mark_is_read(minimal: Path) -> None:
    minimal.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(str(minimal)).radius is not None


def test_relative_paths_are_relative_to_the_config_file_not_the_cwd(
    minimal: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("check-config", "--config", str(minimal), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    # a relative --config too: the files are found beside it
    result = run_cli("check-config", "--config", "collector.toml", cwd=minimal.parent)
    assert result.returncode == 0, result.stderr


# -- the example documents every key ---------------------------------------------------------


def _example_keys() -> set[tuple[str, str]]:
    """(table, key) of every assignment in the example, commented out or not."""
    keys: set[tuple[str, str]] = set()
    table = ""
    for line in EXAMPLE.read_text().splitlines():
        if header := re.fullmatch(r"\[\[?([\w.]+)\]\]?", line.strip()):
            table = header.group(1)
            if "." in table:
                parent, _, child = table.rpartition(".")
                keys.add((parent, child))
            else:
                keys.add(("", table))
        elif assignment := re.fullmatch(r"#? ?(\w+) = .*", line):
            keys.add((table, assignment.group(1)))
    return keys


def test_the_example_documents_every_key_and_only_those() -> None:
    """The keys the schemas accept are derived from their fields: an option declared in a
    schema and missing from the example, or documented and not declared, fails here."""
    accepted = set(schema_keys(config.Config))
    assert ("radius.clients", "secret_file") in accepted  # a key read by a field's own reader
    assert ("", "json") in accepted and ("json", "allowed") in accepted
    assert _example_keys() == accepted


def _schema_defaults(schema: type, table: str) -> dict[tuple[str, str], Any]:
    """(table, key) -> default of every plain option that has one (not required ones, not
    arrays of tables, not options read by their own function)."""
    found: dict[tuple[str, str], Any] = {}
    fallback = defaults(schema)
    for name, rules, _ in options(schema):
        if (
            rules.read is None
            and rules.noun is None
            and rules.required is None
            and name in fallback
        ):
            found[table, rules.key] = fallback[name]
    return found


def test_the_example_shows_the_default_of_every_option_that_has_one() -> None:
    """The example says "every option, with its default": each option whose default is a
    value is set there to exactly that value (an optional one, default None, is shown
    commented out). A default changed in the schema only, or only in the example, fails."""
    example = tomllib.loads(EXAMPLE.read_text())
    expected: dict[tuple[str, str], Any] = {}
    for name, schema, _, _ in sections(config.Config):
        expected |= _schema_defaults(schema, name)
    expected |= _schema_defaults(RadiusClient, "radius.clients")
    expected |= _schema_defaults(SipSource, "sip.sources")
    expected |= _schema_defaults(FileSource, "files.sources")
    assert len(expected) > 40
    for (table, key), default in expected.items():
        where: Any = example
        for part in table.split("."):
            where = where[part][0] if isinstance(where[part], list) else where[part]
        if default is None:
            assert key not in where, (table, key)
        else:
            value = where[key]
            assert (tuple(value) if isinstance(value, list) else value) == default, (table, key)


def test_the_optional_keys_of_the_example_are_accepted(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    write_keys(tmp_path)
    (tmp_path / "prefixes.csv").write_text("4930,Berlin\n")
    write_private(tmp_path / "json.passwd", "fs:pw\n")
    (tmp_path / "high-risk").write_text("# IRSF ranges\n+88213\n37167 # a comment\n")
    text = path.read_text()
    text = text.replace("/etc/cdr-collector/prefixes.csv", str(tmp_path / "prefixes.csv"))
    text = text.replace("/etc/cdr-collector/high-risk-prefixes", str(tmp_path / "high-risk"))
    text = text.replace("/etc/cdr-collector/json.passwd", str(tmp_path / "json.passwd"))
    # uncomment every optional key but secret_file (secret and secret_file exclude each other)
    text = re.sub(r"^# (?!secret_file)(\w+ = )", r"\1", text, flags=re.M)
    path.write_text(text)
    loaded = load_config(str(path))
    assert loaded.privacy.default_region == "DE"
    assert loaded.sip is not None and loaded.sip.correlation_header == "X-CID"
    assert loaded.fraud is not None and loaded.fraud.high_risk_prefixes == ("88213", "37167")
    assert loaded.reconcile is not None and loaded.reconcile.sip_sources == ("kamailio-1",)


def test_systemd_credentials_stand_in_for_files_the_service_user_cannot_read(
    minimal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's DynamicUser reads LoadCredential= copies named like the configured files."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("keys", "record-key"):
        (credentials / name).write_bytes((minimal.parent / name).read_bytes())
        (minimal.parent / name).unlink()  # as good as unreadable for the service user
    (credentials / "sbc.secret").write_text(SECRET + "\n")
    minimal.write_text(MINIMAL.replace(f'secret = "{SECRET}"', 'secret_file = "sbc.secret"'))
    with pytest.raises(ConfigError):
        load_config(str(minimal))  # without credentials the files are missing
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    loaded = load_config(str(minimal))
    assert loaded.privacy.keys and loaded.privacy.record_secret
    assert loaded.radius is not None and loaded.radius.clients[0].secret == SECRET.encode()
    assert loaded.warnings == ()


def test_a_credential_does_not_excuse_a_configured_file_others_can_read(
    minimal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The credential is systemd's private copy (not judged); the file it was made from
    still holds the key, and others reading it there is refused all the same."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("keys", "record-key"):
        (credentials / name).write_bytes((minimal.parent / name).read_bytes())
        (credentials / name).chmod(0o444)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load_config(str(minimal)).stand_ins
    (minimal.parent / "keys").chmod(0o640)
    (problem,) = problems_of(minimal)
    assert problem.key == "privacy.key_file"
    assert problem.reason.startswith(f"{minimal.parent / 'keys'} is mode 0640: readable")


def test_reconcile_names_only_configured_sip_sources(minimal: Path) -> None:
    minimal.write_text(
        MINIMAL
        + '\n[sip]\nlisten = ["127.0.0.1:0"]\n\n[[sip.sources]]\nname = "proxy-1"\n'
        + 'address = "192.0.2.5"\n\n[reconcile]\nsip_sources = ["proxy-1", "proxy-2"]\n'
        + "billing_wait_s = 0\n\n[database]\n"
    )
    found = {(p.key, p.reason) for p in problems_of(minimal)}
    assert ("reconcile.sip_sources", "'proxy-2' is not the name of a [[sip.sources]]") in found
    assert any(key == "reconcile.billing_wait_s" for key, _ in found)
    assert not any("proxy-1" in message for _, message in found)
    assert not any(key == "reconcile" for key, _ in found)  # with [database]


def test_reconcile_without_a_database_is_refused(minimal: Path) -> None:
    minimal.write_text(MINIMAL + "\n[reconcile]\n")  # a spool, no database
    found = {(p.key, p.reason) for p in problems_of(minimal)}
    assert (
        "reconcile",
        "needs [database]: calls are checked against the billing records stored there",
    ) in found
