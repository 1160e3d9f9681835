"""systemd credentials: check-config where they cannot be read, and keys rotated under them.

The unit's dynamic user reads root's 0600 key and secret files through
`LoadCredential=` copies in $CREDENTIALS_DIRECTORY. On systemd 252 an
`ExecReload=` command sees that variable set while the directory refuses it
(/run/credentials is mode 000), and check-config must still work there. The
tests run as root, whom permission bits do not stop, so every command that
must meet EACCES runs as nobody (`setpriv`), in a directory tree nobody can
traverse, against files and directories of mode 0600 and 000 owned by root.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.credentials import StandIn, stale_stand_ins
from collector.traffic import AccountingClient, cisco_attributes, make_calls
from tests.conftest import require_program
from tests.daemon import SECRET, Collector, CollectorConfig, connected, wait_for

ROOT = Path(__file__).resolve().parent.parent
KEYS = "t1:" + base64.b64encode(b"K" * 32).decode() + "\n"
RECORD_KEY = base64.b64encode(b"R" * 32).decode() + "\n"
CLIENT_SECRET = "Sh4red-Secret-Value-77\n"


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory under /tmp that nobody may traverse (pytest's tmp_path is root's, 0700)."""
    base = Path(tempfile.mkdtemp(prefix="cdr-credentials-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)  # root removes what mode 000 keeps from others


def as_nobody(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m collector ARGS` as the unprivileged user nobody, so EACCES really happens."""
    setpriv = require_program("setpriv")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CDR_COLLECTOR_")
        and k not in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET")
    }
    base.update(env or {})
    base["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [
            setpriv,
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "collector",
            *args,
        ],
        capture_output=True,
        text=True,
        env=base,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def private(path: Path, text: str) -> Path:
    """A file as root keeps a secret: root's, mode 0600."""
    path.write_text(text)
    path.chmod(0o600)
    return path


@dataclass
class Installed:
    """The files of an installed service, as the unit sees them."""

    config: Path
    etc: Path
    credentials: Path

    @property
    def reload_env(self) -> dict[str, str]:
        """ExecReload='s environment: the credentials directory set, and closed to it."""
        return {"CREDENTIALS_DIRECTORY": str(self.credentials)}


def install(world: Path, extra: str = "") -> Installed:
    """/etc/cdr-collector as root leaves it (0600 key files, a 0600 client secret), the
    service's state directory, and its credentials directory holding the copies, mode 000."""
    etc = world / "etc"
    etc.mkdir(mode=0o755)
    etc.chmod(0o755)
    for name, text in (("keys", KEYS), ("record-key", RECORD_KEY), ("sbc.secret", CLIENT_SECRET)):
        private(etc / name, text)
    state = world / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    credentials = world / "credentials"
    credentials.mkdir()
    for name in ("keys", "record-key", "sbc.secret"):
        shutil.copy(etc / name, credentials / name)
    credentials.chmod(0o000)
    config = etc / "collector.toml"
    config.write_text(
        f'[spool]\ndirectory = "{state / "spool"}"\n\n'
        f'[privacy]\nkey_file = "{etc / "keys"}"\nrecord_key_file = "{etc / "record-key"}"\n\n'
        '[radius]\nlisten = ["127.0.0.1:0"]\n\n'
        '[[radius.clients]]\nname = "sbc-1"\naddress = "192.0.2.10"\n'
        f'secret_file = "{etc / "sbc.secret"}"\n' + extra
    )
    config.chmod(0o644)
    return Installed(config, etc, credentials)


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def problem_lines(result: subprocess.CompletedProcess[str], config: Path) -> list[str]:
    """The FILE: KEY: REASON lines before the summary line (every line is one of them)."""
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{config}: {len(lines) - 1} problem(s); nothing was started", lines
    for line in lines[:-1]:
        assert re.fullmatch(re.escape(str(config)) + r": [\w.\[\]-]+: .+", line), line
    return lines[:-1]


# --- check-config where the credentials cannot be read (ExecReload= on systemd 252) -------


def test_check_config_takes_unreadable_private_files_for_the_credentials(world: Path) -> None:
    installed = install(world)
    # nobody really cannot read them: without the credentials variable they are problems
    plain = as_nobody("check-config", "--config", str(installed.config))
    assert plain.returncode == 1
    unreadable = problem_lines(plain, installed.config)
    assert len(unreadable) == 3 and all("permission denied" in line for line in unreadable)

    result = as_nobody("check-config", "--config", str(installed.config), env=installed.reload_env)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{installed.config}: OK (1 RADIUS client(s), pseudonym keys not checked)\n"
    )
    notes = result.stderr.splitlines()
    keys = ["privacy.key_file", "privacy.record_key_file", "radius.clients[0].secret_file"]
    files = ["keys", "record-key", "sbc.secret"]
    assert len(notes) == 3
    for note, key, name in zip(notes, keys, files, strict=True):
        assert note.startswith(f"{installed.config}: {key}: '{installed.etc / name}' not checked: ")
        assert f"credentials directory '{installed.credentials}' cannot be searched" in note
        assert note.endswith("taken to be the credential the running service loaded at start")
    # the credential copies themselves never show (neither their content nor a digest)
    assert "Sh4red" not in result.stdout + result.stderr


def test_check_config_still_reports_every_other_problem_there(world: Path) -> None:
    installed = install(world, extra='profile = "nortel"\n\n[radius.bogus]\n')
    result = as_nobody("check-config", "--config", str(installed.config), env=installed.reload_env)
    assert_no_traceback(result)
    assert result.returncode == 1
    problems = problem_lines(result, installed.config)
    assert len(problems) == 2, problems
    assert any(": radius.clients[0].profile: " in line for line in problems)
    assert any(": radius.bogus: " in line for line in problems)


def test_a_private_file_this_user_can_read_is_still_checked_there(world: Path) -> None:
    installed = install(world)
    broken = installed.etc / "keys"
    broken.write_text("t1:not base64!\n")
    broken.chmod(0o644)
    result = as_nobody("check-config", "--config", str(installed.config), env=installed.reload_env)
    assert_no_traceback(result)
    assert result.returncode == 1
    assert problem_lines(result, installed.config) == [
        f"{installed.config}: privacy.key_file: {broken} is mode 0644: readable by others; "
        "chmod 600 it",
        f"{installed.config}: privacy.key_file: {broken}: line 1: the key is not valid base64",
    ]


def test_a_missing_private_file_is_a_problem_there_too(world: Path) -> None:
    """Only a file that exists can be root's 0600 file the credential was made from."""
    installed = install(world)
    (installed.etc / "record-key").unlink()
    result = as_nobody("check-config", "--config", str(installed.config), env=installed.reload_env)
    assert_no_traceback(result)
    assert result.returncode == 1
    (problem,) = problem_lines(result, installed.config)
    assert f"'{installed.etc / 'record-key'}' does not exist" in problem
    assert f"credentials directory '{installed.credentials}' cannot be searched" in problem


def test_run_does_not_start_on_files_it_cannot_read(world: Path) -> None:
    """The daemon itself never assumes: unreadable keys are problems, named, no traceback."""
    installed = install(world)
    result = as_nobody("run", "--config", str(installed.config), env=installed.reload_env)
    assert_no_traceback(result)
    assert result.returncode == 1
    problems = problem_lines(result, installed.config)
    assert len(problems) == 3
    for line in problems:
        assert "is not readable (permission denied), and the credentials directory" in line


def test_check_config_reads_the_credentials_where_it_can(world: Path) -> None:
    """ExecStartPre=: the credentials directory is open to the unit; the copies are read."""
    installed = install(world)
    # as systemd leaves it for the service: the directory and the copies (0400) its user's
    installed.credentials.chmod(0o500)
    for path in (installed.credentials, *installed.credentials.iterdir()):
        os.chown(path, 65534, 65534)
    result = as_nobody("check-config", "--config", str(installed.config), env=installed.reload_env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith("OK (1 RADIUS client(s), 1 pseudonym key(s))\n")


# --- no traceback for any file or directory nobody may read ---------------------------------


def _config_itself(installed: Installed) -> tuple[str, str]:
    installed.config.chmod(0o000)
    return "-", "the configuration file cannot be read: Permission denied"


def _config_directory(installed: Installed) -> tuple[str, str]:
    installed.etc.chmod(0o000)
    return "-", "the configuration file cannot be read: Permission denied"


def _key_file_directory(installed: Installed) -> tuple[str, str]:
    """The key files in a directory nobody may enter, and no credentials at all."""
    keys = installed.etc / "private"
    keys.mkdir()
    shutil.move(installed.etc / "keys", keys / "keys")
    text = installed.config.read_text().replace(str(installed.etc / "keys"), str(keys / "keys"))
    installed.config.write_text(text)
    keys.chmod(0o000)
    return "privacy.key_file", f"file '{keys / 'keys'}' is not readable (permission denied)"


def _rate_deck(installed: Installed) -> tuple[str, str]:
    deck = installed.etc / "prefixes.csv"
    deck.write_text("4930,Berlin\n")
    deck.chmod(0o000)
    text = installed.config.read_text().replace("[privacy]\n", f'[privacy]\nrate_deck = "{deck}"\n')
    installed.config.write_text(text)
    return "privacy.rate_deck", f"file '{deck}' is not readable (permission denied)"


def _spool_parent(installed: Installed) -> tuple[str, str]:
    closed = installed.etc.parent / "closed"
    closed.mkdir(mode=0o000)
    closed.chmod(0o000)
    text = re.sub(
        r'directory = ".*"', f'directory = "{closed / "spool"}"', installed.config.read_text()
    )
    installed.config.write_text(text)
    return "spool.directory", f"'{closed / 'spool'}' cannot be checked: Permission denied"


def _credential_file(installed: Installed) -> tuple[str, str]:
    """The credentials directory is open, but one copy in it is not."""
    installed.credentials.chmod(0o755)
    (installed.credentials / "keys").chmod(0o000)
    return (
        "privacy.key_file",
        f"file '{installed.credentials / 'keys'}' is not readable (permission denied)",
    )


def _basic_auth_file(installed: Installed) -> tuple[str, str]:
    passwd = private(installed.etc / "json.passwd", "fs:pw\n")
    installed.config.write_text(
        installed.config.read_text()
        + f'\n[json]\nlisten = "127.0.0.1:0"\nallowed = ["127.0.0.1/32"]\n'
        f'basic_auth_file = "{passwd}"\n'
    )
    installed.credentials.chmod(0o755)  # open, without a copy of this one
    return "json.basic_auth_file", f"file '{passwd}' is not readable (permission denied)"


UNREADABLE = {
    "config file": _config_itself,
    "config directory": _config_directory,
    "key file directory": _key_file_directory,
    "rate deck": _rate_deck,
    "spool parent": _spool_parent,
    "credential file": _credential_file,
    "basic auth file": _basic_auth_file,
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_unreadable_file_or_directory_is_named_without_a_traceback(
    world: Path, case: str, command: str
) -> None:
    installed = install(world)
    key, reason = UNREADABLE[case](installed)
    env = {} if case == "key file directory" else installed.reload_env
    result = as_nobody(command, "--config", str(installed.config), env=env)
    assert_no_traceback(result)
    assert result.returncode == 1
    problems = problem_lines(result, installed.config)
    assert any(line.startswith(f"{installed.config}: {key}: ") for line in problems), problems
    assert any(reason in line for line in problems), problems


@pytest.mark.parametrize("rotate", [False, True])
def test_keygen_in_a_directory_it_cannot_enter_says_so(world: Path, rotate: bool) -> None:
    installed = install(world)
    _key_file_directory(installed)
    keys = installed.etc / "private" / "keys"
    result = as_nobody(
        "keygen", *(["--rotate"] if rotate else []), "--config", str(installed.config)
    )
    assert_no_traceback(result)
    assert result.returncode == 1
    assert str(keys) in result.stderr and "Permission denied" in result.stderr


# --- a reload after the configured file changed under its credential ------------------------


def stand_in(digest: bytes, state: tuple[int, int, int] | None) -> StandIn:
    return StandIn("privacy.key_file", "/etc/cdr-collector/keys", "/run/c/keys", state, digest)


def test_stale_stand_ins() -> None:
    loaded = {"privacy.key_file": stand_in(b"old", (1, 10, 100))}
    # nothing changed: nothing stale, the loaded record kept
    in_use, stale = stale_stand_ins(loaded, [stand_in(b"old", (1, 10, 100))])
    assert stale == [] and in_use == loaded
    # the configured file was replaced, the copy was not: stale, and stays so at the next reload
    rotated = stand_in(b"old", (2, 11, 148))
    in_use, stale = stale_stand_ins(loaded, [rotated])
    assert stale == [rotated] and in_use == loaded
    in_use, stale = stale_stand_ins(in_use, [rotated])
    assert stale == [rotated]
    # a new copy (the service restarted, or the credential was written anew): taken as it is
    in_use, stale = stale_stand_ins(in_use, [stand_in(b"new", (2, 11, 148))])
    assert stale == [] and in_use["privacy.key_file"].digest == b"new"
    # a credential no longer used is forgotten
    assert stale_stand_ins(in_use, []) == ({}, [])


ROTATION_WARNING = "file changed since the service started"


async def test_a_reload_after_rotation_warns_and_keeps_the_credential_key(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keygen --rotate + SIGHUP under LoadCredential=: the daemon still reads systemd's copy
    made at start, so the old key stays in use; the reload says to restart."""
    config = CollectorConfig(directory=tmp_path / "c", dsn=dsn, log_level="info")
    collector = Collector(config)  # writes the configured keys and record-key
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("keys", "record-key"):
        shutil.copy(config.directory / name, credentials / name)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    calls = make_calls(2, seed=23)
    try:
        collector.start()
        # nothing changed: a reload is quiet
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: collector.log_text().count("configuration reloaded") == 1)
        assert ROTATION_WARNING not in collector.log_text()

        rotated = subprocess.run(
            [sys.executable, "-m", "collector", "keygen", "--rotate", "--config",
             str(collector.config_path)],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        assert "systemctl restart cdr-collector" in rotated.stdout
        collector.signal(signal.SIGHUP)
        await wait_for(lambda: collector.log_text().count("configuration reloaded") == 2)
        warnings = [line for line in collector.log_text().splitlines() if ROTATION_WARNING in line]
        assert len(warnings) == 1, collector.log_text()
        assert '"level": "warning"' in warnings[0]
        assert '"key": "privacy.key_file"' in warnings[0]
        assert "systemctl restart cdr-collector" in warnings[0]
        async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
            assert await client.send(cisco_attributes(calls[0]))
        assert collector.stop() == 0
    finally:
        collector.close()
    async with connected(dsn) as conn:
        hmacs = await conn.fetch("SELECT called_hmac FROM cdrs")
    # still the key systemd copied at start, not the rotated file's newest
    assert [row["called_hmac"].split(":")[0] for row in hmacs] == ["t1"]
    assert (config.directory / "keys").read_text().startswith("k")
