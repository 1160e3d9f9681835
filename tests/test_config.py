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
from pathlib import Path

import pytest

from collector import config
from collector.config import ConfigError, Problem, load_config

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
    (directory / "keys").write_text(f"# newest first\nk1:{KEY_MATERIAL}\n")
    (directory / "record-key").write_text(RECORD_MATERIAL + "\n")


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
    """The shipped example with its key files pointed into `directory`."""
    text = EXAMPLE.read_text()
    text, keys = re.subn(r"^key_file = .*$", f'key_file = "{directory / "keys"}"', text, flags=re.M)
    text, records = re.subn(
        r"^record_key_file = .*$",
        f'record_key_file = "{directory / "record-key"}"',
        text,
        flags=re.M,
    )
    assert (keys, records) == (1, 1)
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
    keys_file.write_text(re.sub(r"^k\w+:", "k2000:", keys_file.read_text()))
    old = config.parse_keys(keys_file.read_text())
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
import argparse, sys
from collector.cli import cmd_keygen
for rotate in (False, True, True):
    cmd_keygen(argparse.Namespace(config=sys.argv[1], rotate=rotate))
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
    (tmp_path / "record-key").write_text("this is not base64!\n")
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
    (minimal.parent / "keys").write_text(content)
    problems = problems_of(minimal)
    assert found(problems, "privacy.key_file", reason), problems
    text = "\n".join(str(p) for p in problems)
    assert KEY_MATERIAL not in text
    assert "not base64 at all" not in text


def test_short_record_key_is_reported(minimal: Path) -> None:
    (minimal.parent / "record-key").write_text(base64.b64encode(b"tiny").decode())
    assert found(problems_of(minimal), "privacy.record_key_file", "16 bytes")


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
    (tmp_path / "json.passwd").write_text(f"admin{SECRET}\n")  # no colon: a bad line
    (tmp_path / "client.secret").write_text(SECRET)
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
    (minimal.parent / "sbc.secret").write_text(f"  {SECRET}\n")
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
