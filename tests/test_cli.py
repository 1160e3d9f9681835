"""The console script as an operator runs it: exit codes and messages, never a traceback.

Every test runs the installed `cdr-collector` script as a subprocess, with
this checkout first on the import path, so that what is tested is the code
beside these tests.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from collector.formats.keys import write_private
from tests.daemon import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "cdr-collector"
SECRET = "Sh4red-Secret-Value-77"
KEY_MATERIAL = base64.b64encode(b"K" * 32).decode()
RECORD_MATERIAL = base64.b64encode(b"R" * 32).decode()
NUMBER = "+4930123456789"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDR_COLLECTOR_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`cdr-collector ARGS`, its output captured."""
    assert SCRIPT.exists(), SCRIPT
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
        check=False,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def write_config(directory: Path, body: str, *, dsn: str | None = None) -> Path:
    """A configuration with key files (mode 0600) and a spool in `directory`, plus `body`."""
    keys = directory / "keys"
    write_private(keys, f"k1:{KEY_MATERIAL}\n")
    record = directory / "record-key"
    write_private(record, RECORD_MATERIAL + "\n")
    database = f'[database]\ndsn = "{dsn}"\nconnect_timeout_ms = 2000\n' if dsn else ""
    path = directory / "collector.toml"
    path.write_text(
        database
        + '[spool]\ndirectory = "spool"\n'
        + '[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n'
        + body
    )
    return path


def radius(port: int) -> str:
    return (
        f'[radius]\nlisten = ["127.0.0.1:{port}"]\n'
        f'[[radius.clients]]\nname = "sbc-1"\naddress = "192.0.2.10"\nsecret = "{SECRET}"\n'
    )


def closed_port_dsn() -> str:
    """A DSN pointing at a local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://root@127.0.0.1:{port}/cdr"


# -- run -------------------------------------------------------------------------------------


def test_run_with_one_port_twice_stops_at_the_config_not_at_bind(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(
        tmp_path,
        radius(port)
        + f'[sip]\nlisten = ["127.0.0.1:{port}"]\n'
        + '[[sip.sources]]\nname = "k1"\naddress = "192.0.2.20"\n',
    )
    result = cli("run", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert f"{path}: sip.listen: '127.0.0.1:{port}' takes UDP port {port}" in result.stderr
    assert result.stderr.rstrip().endswith("1 problem(s); nothing was started")


def test_run_with_spool_directory_on_a_file_stops_at_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, radius(free_port()))
    (tmp_path / "spool").write_text("not a directory")
    result = cli("run", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert f"{path}: spool.directory: '{tmp_path / 'spool'}' is not a directory" in result.stderr


def test_run_with_a_port_taken_by_another_process_says_so(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, radius(port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        result = cli("run", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert "cdr-collector: cannot start: " in result.stderr
    assert "in use" in result.stderr


def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, radius(port))
    process = subprocess.Popen(
        [str(SCRIPT), "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "collector started" in line:
                break
        else:
            pytest.fail("".join(lines))
        path.write_text(path.read_text().replace(f'secret = "{SECRET}"', 'secret = "   "'))
        process.send_signal(signal.SIGHUP)
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "reload refused" in line:
                break
        else:
            pytest.fail("".join(lines))
        assert "radius.clients[0].secret" in lines[-1]
        assert process.poll() is None  # still serving with the old configuration
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "Traceback" not in "".join(lines) + output


# -- migrate, purge, erase: the database away or not migrated ----------------------------------


@pytest.mark.parametrize(
    "command", [("migrate",), ("purge",), ("erase", "--number", NUMBER)], ids=lambda c: c[0]
)
def test_database_commands_with_the_database_away_say_so(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = write_config(tmp_path, radius(free_port()), dsn=closed_port_dsn())
    result = cli(*command, "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert result.stderr.startswith("cdr-collector: cannot reach the database: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [("migrate",), ("purge",), ("erase", "--number", NUMBER)], ids=lambda c: c[0]
)
def test_database_commands_with_a_user_the_server_refuses(
    tmp_path: Path, dsn: str, command: tuple[str, ...]
) -> None:
    stranger = dsn.replace("root@", "no_such_role_here@")
    path = write_config(tmp_path, radius(free_port()), dsn=stranger)
    result = cli(*command, "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert "cannot reach the database" in result.stderr
    assert "no_such_role_here" in result.stderr


@pytest.mark.parametrize("command", [("purge",), ("erase", "--number", NUMBER)], ids=lambda c: c[0])
def test_purge_and_erase_before_migrate_point_to_migrate(
    tmp_path: Path, dsn: str, command: tuple[str, ...]
) -> None:
    path = write_config(tmp_path, radius(free_port()), dsn=dsn)
    result = cli(*command, "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert "schema is missing or outdated" in result.stderr
    assert f"cdr-collector migrate --config {path}" in result.stderr

    migrated = cli("migrate", "--config", str(path))
    assert migrated.returncode == 0, migrated.stderr
    again = cli(*command, "--config", str(path))
    assert again.returncode == 0, again.stderr


async def test_migrate_creates_a_missing_database_and_is_idempotent(
    tmp_path: Path, dsn: str
) -> None:
    fresh = dsn + "_fresh"
    path = write_config(tmp_path, radius(free_port()), dsn=fresh)
    try:
        first = cli("migrate", "--config", str(path))
        assert first.returncode == 0, first.stderr
        assert "created the database" in first.stdout
        second = cli("migrate", "--config", str(path))
        assert second.returncode == 0, second.stderr
        assert "schema is up to date" in second.stdout
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{fresh.rpartition("/")[2]}" WITH (FORCE)')
        finally:
            await conn.close()


def test_database_commands_without_a_database_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, radius(free_port()))
    for command in (("migrate",), ("purge",), ("erase", "--number", NUMBER)):
        result = cli(*command, "--config", str(path))
        assert result.returncode == 1
        assert result.stderr == f"{path}: database: no [database] section\n"


# -- keygen ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("privacy", "line"),
    [
        ("privacy = 5\n", "privacy: must be a table"),
        (
            '[privacy]\nkey_file = 5\nrecord_key_file = "record-key"\n',
            "privacy.key_file: must be a non-empty string",
        ),
        (
            '[privacy]\nkey_file = "keys"\nrecord_key_file = ""\n',
            "privacy.record_key_file: must be a non-empty string",
        ),
    ],
)
def test_keygen_with_badly_named_key_files(tmp_path: Path, privacy: str, line: str) -> None:
    # (each case names its other file inside tmp_path: nothing may land in /etc)
    path = tmp_path / "collector.toml"
    path.write_text(privacy)
    result = cli("keygen", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert result.stderr.splitlines()[0] == f"{path}: {line}"
    assert list(tmp_path.iterdir()) == [path]


def test_keygen_rotate_refuses_to_add_to_an_invalid_key_file(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n')
    keys = tmp_path / "keys"
    write_private(keys, f"k1:{KEY_MATERIAL}\nthis line is broken\n")
    result = cli("keygen", "--rotate", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert "line 2" in result.stderr
    assert "nothing was changed" in result.stderr
    assert keys.read_text() == f"k1:{KEY_MATERIAL}\nthis line is broken\n"
    assert not (tmp_path / "record-key").exists()


def test_keygen_where_a_file_is_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    path = tmp_path / "collector.toml"
    path.write_text(
        '[privacy]\nkey_file = "blocker/keys"\nrecord_key_file = "blocker/record-key"\n'
    )
    result = cli("keygen", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert result.stderr.startswith(f"cdr-collector: cannot write {tmp_path / 'blocker'}/")


def test_keygen_rotate_keeps_a_key_file_without_final_newline_valid(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[privacy]\nkey_file = "keys"\nrecord_key_file = "record-key"\n')
    keys = tmp_path / "keys"
    write_private(keys, f"k1:{KEY_MATERIAL}")
    result = cli("keygen", "--rotate", "--config", str(path))
    assert result.returncode == 0, result.stderr
    lines = keys.read_text().splitlines()
    assert len(lines) == 2
    assert lines[1] == f"k1:{KEY_MATERIAL}"
    assert keys.stat().st_mode & 0o777 == 0o600


def test_keygen_with_a_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = cli("keygen", "--config", str(path))
    assert result.returncode == 1
    no_traceback(result)
    assert f"{path}: -: the configuration file does not exist" in result.stderr


# -- demo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--dsn", "mysql://root@127.0.0.1/cdr"), {}, "--dsn must be a postgresql:// URL"),
        (
            ("--dsn", "postgresql://root@127.0.0.1/cdr?sslmode=maybe"),
            {},
            "--dsn sslmode must be one of",
        ),
        ((), {"CDR_COLLECTOR_DSN": "cdr"}, "$CDR_COLLECTOR_DSN must be a postgresql:// URL"),
    ],
)
def test_demo_with_an_unusable_dsn(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = cli("demo", *args, env=env)
    assert result.returncode == 2
    no_traceback(result)
    assert result.stderr.startswith(f"cdr-collector: demo: {message}")
    assert "cdr-collector demo\n" not in result.stdout  # nothing was started


def test_demo_says_why_the_database_it_was_given_is_not_used() -> None:
    closed = f"postgresql://demo:pw@127.0.0.1:{free_port()}/cdr"
    result = cli("demo", "--calls", "3", "--dsn", closed, timeout=120)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    line = next(x for x in result.stdout.splitlines() if "database:" in x)
    assert "not reachable (" in line and "records go to the spool only" in line
    assert "pw" not in line  # the credentials stay out of it


def test_demo_refuses_a_count_of_calls_below_one() -> None:
    result = cli("demo", "--calls", "0")
    assert result.returncode == 2
    assert "--calls: must be at least 1" in result.stderr


async def test_demo_on_a_fresh_database(dsn: str) -> None:
    fresh = dsn + "_demo"
    try:
        result = cli("demo", "--calls", "12", "--dsn", fresh, timeout=120)
        assert result.returncode == 0, result.stderr
        no_traceback(result)
        assert "database: " in result.stdout
        assert "not reachable" not in result.stdout
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{fresh.rpartition("/")[2]}" WITH (FORCE)')
        finally:
            await conn.close()
