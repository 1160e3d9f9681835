"""The units and the README's install under a real systemd.

A Debian 12 container (tests/systemd_container.py) boots systemd 252 as its PID 1.
The project is installed in it exactly as the README's "Running it for real"
says, from a copy of this checkout; the only edits are the configuration's
database and ports (the container shares the host's network, so its ports are
the host's) and the RADIUS client's address. Then the tests drive it as an
operator would, with systemctl and journalctl in the container and real RADIUS
clients (radclient, the project's own client) and PostgreSQL on the host.

All tests share one container and run in file order; each one starts from the
state it needs and names the point that fails.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from collector import traffic
from tests.conftest import ADMIN_DSN, dsn_for, require_program
from tests.daemon import free_port
from tests.systemd_container import (
    ROOT,
    Container,
    DatabaseProxy,
    copy_checkout,
    debian_tree,
    wheelhouse,
)

#: the first run builds the Debian tree (about a minute, more on a slow mirror)
#: inside the first test's setup
pytestmark = pytest.mark.timeout(600)

README = ROOT / "README.md"
SERVICE_UNIT = ROOT / "systemd" / "cdr-collector.service"
SOCKET_UNIT = ROOT / "systemd" / "cdr-collector.socket"
SERVICE = "cdr-collector.service"
SOCKET = "cdr-collector.socket"
CONFIG = "/etc/cdr-collector/collector.toml"
#: where the copy of the checkout is in the container: the README's /path/to/this/checkout
CHECKOUT = "/usr/src/cdr-collector"
WHEELS = "/var/cache/wheels"
#: the example configuration's RADIUS client, as shipped
CLIENT = "sbc-fra-1"
SECRET = "change-me"
#: where systemd keeps the state directory of a service with DynamicUser=yes
SPOOL = "/var/lib/private/cdr-collector/spool"


# --- the README's commands ------------------------------------------------------


def readme_block(after: str) -> list[str]:
    """The lines of the first ```sh block in the README after the text `after`
    (the indentation of a block inside a list item removed)."""
    text = README.read_text()
    start = text.index(after)
    lines = text[start:].splitlines()
    opening = next(i for i, line in enumerate(lines) if line.strip() == "```sh")
    indent = len(lines[opening]) - len(lines[opening].lstrip())
    block: list[str] = []
    for line in lines[opening + 1 :]:
        if line.strip() == "```":
            return block
        block.append(line[indent:])
    raise AssertionError(f"the README's block after {after!r} is not closed")


def install_commands() -> list[str]:
    return readme_block("## Running it for real")


def socket_commands() -> list[str]:
    return readme_block("stop the service first:")


def test_the_readme_install_matches_the_unit() -> None:
    """The unit runs the command where the README installs it; the block the
    container test runs is the one an operator reads."""
    commands = install_commands()
    venv = next(line.split()[-1] for line in commands if line.startswith("python3 -m venv "))
    binary = f"{venv}/bin/cdr-collector"
    unit = SERVICE_UNIT.read_text()
    for setting in ("ExecStartPre", "ExecStart", "ExecReload"):
        found = re.findall(rf"^{setting}=(\S+)", unit, re.MULTILINE)
        assert found, setting
        assert all(path in (binary, "/bin/kill") for path in found), (setting, found)
    assert f"{venv}/bin/pip install /path/to/this/checkout" in commands
    assert commands[-1] == "systemctl daemon-reload && systemctl enable --now cdr-collector"


def test_the_socket_recipe_in_the_unit_is_the_readmes() -> None:
    """The Enable: lines of the socket unit's comment are the README's block."""
    comment = [
        line.removeprefix("#").strip()
        for line in SOCKET_UNIT.read_text().splitlines()
        if line.startswith("#")
    ]
    start = next(i for i, line in enumerate(comment) if line.startswith("cp cdr-collector.socket"))
    unit_recipe = comment[start : start + len(socket_commands())]
    readme_recipe = [
        line.split("#")[0].strip().replace("systemd/cdr-collector.socket", "cdr-collector.socket")
        for line in socket_commands()
    ]
    assert unit_recipe == readme_recipe


# --- the machine ------------------------------------------------------------------


@dataclass
class Machine:
    """The booted container with the collector installed, and the host's side of it."""

    container: Container
    proxy: DatabaseProxy
    dsn: str
    radius_port: int
    sip_port: int
    json_port: int
    metrics_port: int
    install_output: str

    # --- in the container ---------------------------------------------------
    def sh(
        self, script: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return self.container.run(script, check=check, timeout=timeout)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh("systemctl --no-pager " + shlex.join(args), check=check)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        done = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties))
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def main_pid(self) -> int:
        return int(self.show(SERVICE, "MainPID")["MainPID"])

    def cursor(self) -> str:
        """The journal's position now: `journal(after=...)` reads what follows."""
        done = self.sh("journalctl --show-cursor -n 0 --quiet; true")
        return done.stdout.strip().removeprefix("-- cursor: ")

    def entries(self, after: str) -> list[dict[str, Any]]:
        """The journal's entries about the service after `after` (a cursor): its
        processes' lines and systemd's about it.

        Read whole and picked here: journalctl 252 given --after-cursor, -u and
        -p together left out a warning that the same command without -p showed.
        """
        self.sh("journalctl --sync", check=False)
        output = self.sh(
            f"journalctl --no-pager -o json --after-cursor={shlex.quote(after)}"
        ).stdout
        found = []
        for line in output.splitlines():
            entry = json.loads(line)
            if SERVICE in (entry.get("_SYSTEMD_UNIT"), entry.get("UNIT")):
                message = entry.get("MESSAGE", "")
                if isinstance(message, list):  # not valid UTF-8: a list of bytes
                    entry["MESSAGE"] = bytes(message).decode(errors="replace")
                found.append(entry)
        return found

    def journal(self, after: str, max_priority: int = 7) -> str:
        """The service's journal after `after`, as `journalctl -o cat` shows it."""
        return "\n".join(
            entry["MESSAGE"]
            for entry in self.entries(after)
            if int(entry.get("PRIORITY", 6)) <= max_priority
        )

    def diagnosis(self) -> str:
        status = self.sh(f"systemctl status --no-pager -l {SERVICE} {SOCKET}", check=False).stdout
        tail = self.sh(f"journalctl --no-pager -o cat -n 60 -u {SERVICE}", check=False).stdout
        return f"{status}\n--- journal\n{tail}"

    def ensure_running(self) -> None:
        if self.show(SERVICE, "ActiveState")["ActiveState"] != "active":
            self.systemctl("start", SERVICE)

    # --- from the host ------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def radius(
        self, session: str, secret: str = SECRET, timeout: float = 20.0
    ) -> subprocess.CompletedProcess[str]:
        """One Stop sent by radclient, once (no retransmission); rc 0: answered and verified."""
        attributes = (
            "Acct-Status-Type = Stop\n"
            f'Acct-Session-Id = "{session}"\n'
            'Calling-Station-Id = "+4930123456789"\n'
            'Called-Station-Id = "+442071234567"\n'
            "Acct-Session-Time = 65\n"
            f"Event-Timestamp = {int(time.time())}\n"
        )
        return subprocess.run(
            [
                require_program("radclient"),
                "-r",
                "1",
                "-t",
                str(timeout),
                f"127.0.0.1:{self.radius_port}",
                "acct",
                secret,
            ],
            input=attributes,
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )

    def query(self, sql: str, *args: Any) -> Any:
        async def fetch() -> Any:
            conn = await asyncpg.connect(self.dsn)
            try:
                return await conn.fetchval(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def rows(self) -> int:
        return int(self.query("SELECT count(*) FROM cdrs"))

    def doubles(self) -> int:
        return int(
            self.query(
                "SELECT count(*) FROM (SELECT record_key FROM cdrs GROUP BY record_key"
                " HAVING count(*) > 1) d"
            )
        )

    def key_ids(self) -> list[str]:
        """The ids in the key file, newest first."""
        text = self.sh("cat /etc/cdr-collector/keys").stdout
        return [
            line.split(":")[0] for line in text.splitlines() if line and not line.startswith("#")
        ]


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def config_edits(proxy_port: int, database: str, ports: dict[str, int]) -> str:
    """The operator's edit of the copied configuration: database, ports, client address."""
    replacements = {
        r"^dsn = .*": f'dsn = "postgresql://root@127.0.0.1:{proxy_port}/{database}"',
        r'"0\.0\.0\.0:1813"': f'"127.0.0.1:{ports["radius"]}"',
        r'"0\.0\.0\.0:9060"': f'"127.0.0.1:{ports["sip"]}"',
        r'"0\.0\.0\.0:9811"': f'"127.0.0.1:{ports["json"]}"',
        r'"127\.0\.0\.1:9810"': f'"127.0.0.1:{ports["metrics"]}"',
        r'^address = "192\.0\.2\.10"': 'address = "127.0.0.1"',
    }
    return _edit(CONFIG, replacements)


def _edit(path: str, replacements: dict[str, str]) -> str:
    """sed, then a check that every new text is in the file: a shipped file that
    changed under a pattern fails the install instead of keeping its port."""
    expressions = " ".join(f"-e {shlex.quote(f's|{a}|{b}|')}" for a, b in replacements.items())
    checks = "".join(f" && grep -qF {shlex.quote(new)} {path}" for new in replacements.values())
    return f"sed -i {expressions} {path}{checks}"


def socket_edits(ports: dict[str, int]) -> str:
    """The socket unit's addresses set to the configuration's listeners."""
    return _edit(
        f"/etc/systemd/system/{SOCKET}",
        {
            r"^ListenDatagram=0\.0\.0\.0:1813$": f"ListenDatagram=127.0.0.1:{ports['radius']}",
            r"^ListenDatagram=0\.0\.0\.0:9060$": f"ListenDatagram=127.0.0.1:{ports['sip']}",
        },
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    require_program("radclient")
    tree = debian_tree()
    wheels = wheelhouse(sys.executable)
    work = tmp_path_factory.mktemp("real-systemd")
    checkout = copy_checkout(work / "checkout")
    database = f"cdr_systemd_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    proxy = DatabaseProxy()
    proxy.forward()
    container = Container(
        tree=tree,
        log_path=work / "console.log",
        binds=[(checkout, CHECKOUT, False), (wheels, WHEELS, True)],
    )
    ports = {
        "radius": free_port(),
        "sip": free_port(),
        "json": free_port(),
        "metrics": free_port(),
    }
    try:
        container.boot()
        script = ["set -euxo pipefail"]
        for line in install_commands():
            script.append(line.replace("/path/to/this/checkout", CHECKOUT))
            if line.startswith("cp config/collector.toml "):
                script.append(config_edits(proxy.port, database, ports))
        done = container.run(
            "\n".join(script),
            cwd=CHECKOUT,
            timeout=600,
            # pip installs from the host's downloads only; the commands are the README's
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS},
        )
        yield Machine(
            container=container,
            proxy=proxy,
            dsn=dsn_for(database),
            radius_port=ports["radius"],
            sip_port=ports["sip"],
            json_port=ports["json"],
            metrics_port=ports["metrics"],
            install_output=done.stdout + done.stderr,
        )
    finally:
        try:
            container.shutdown()
        finally:
            proxy.close()
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


# --- the install and readiness ----------------------------------------------------


def test_the_readme_install_runs_and_starts_the_service(machine: Machine) -> None:
    output = machine.install_output
    assert "created /etc/cdr-collector/record-key" in output, output
    assert "created /etc/cdr-collector/keys" in output, output
    assert f"{CONFIG}: OK" in output, output
    assert "schema migrated from version 0" in output, output
    state = machine.show(SERVICE, "ActiveState", "SubState", "UnitFileState", "Type")
    assert state == {
        "ActiveState": "active",
        "SubState": "running",
        "UnitFileState": "enabled",
        "Type": "notify",
    }, machine.diagnosis()
    # the command is on PATH for operators, and is the unit's
    assert machine.sh("readlink -f $(command -v cdr-collector)").stdout.strip() == (
        "/opt/cdr-collector/bin/cdr-collector"
    )


def test_start_returns_once_ready_and_the_ports_answer(machine: Machine) -> None:
    """Type=notify: `systemctl start` returns at READY=1, when a request sent at
    once, a single time, is answered and its record stored."""
    before = machine.rows()
    machine.systemctl("stop", SERVICE)
    machine.systemctl("start", SERVICE)
    answered = machine.radius(f"ready-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr + machine.diagnosis()
    assert machine.rows() == before + 1
    with urllib.request.urlopen(
        f"http://127.0.0.1:{machine.metrics_port}/readyz", timeout=10
    ) as response:
        assert response.status == 200
    status = machine.show(SERVICE, "StatusText")["StatusText"]
    assert status, machine.diagnosis()


# --- the sandbox and the credentials ---------------------------------------------


def test_the_daemon_runs_as_a_dynamic_user_without_capabilities(machine: Machine) -> None:
    machine.ensure_running()
    pid = machine.main_pid()
    fields = dict(
        line.split(":", 1) for line in machine.sh(f"cat /proc/{pid}/status").stdout.splitlines()
    )
    uids = {int(uid) for uid in fields["Uid"].split()}
    assert len(uids) == 1, fields["Uid"]
    uid = uids.pop()
    # systemd's range for dynamic users
    assert 61184 <= uid <= 65519, uid
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[capabilities], 16) == 0, (capabilities, fields[capabilities])
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"


def test_systemd_analyze_security_rates_the_running_service(machine: Machine) -> None:
    machine.ensure_running()
    done = machine.sh(f"systemd-analyze security --no-pager {SERVICE}", check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    stated = re.search(r"`systemd-analyze security`\s+exposure (\d+\.\d+)", README.read_text())
    assert stated, "the README states the exposure"
    assert exposure <= float(stated.group(1)), done.stdout


def test_the_keys_reach_the_daemon_only_as_credentials(machine: Machine) -> None:
    """The daemon's dynamic user cannot read root's key file; LoadCredential hands
    it over, and the stored pseudonyms carry the key file's newest key."""
    machine.ensure_running()
    pid = machine.main_pid()
    mode = machine.sh("stat -c '%U %a' /etc/cdr-collector/keys /etc/cdr-collector/record-key")
    assert mode.stdout.split("\n")[:2] == ["root 600", "root 600"]
    uid = machine.sh(f"stat -c %u /proc/{pid}").stdout.strip()
    gid = machine.sh(f"stat -c %g /proc/{pid}").stdout.strip()
    # the daemon's own namespaces and user: the configured file is out of reach
    as_daemon = f"nsenter -t {pid} -m -U -S {uid} -G {gid}"
    denied = machine.sh(f"{as_daemon} cat /etc/cdr-collector/keys", check=False)
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr, denied.stderr
    environment = machine.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
    assert "CREDENTIALS_DIRECTORY=/run/credentials/cdr-collector.service" in environment
    newest = machine.key_ids()[0]
    before = machine.query("SELECT count(*) FROM cdrs WHERE calling_hmac LIKE $1", f"{newest}:%")
    answered = machine.radius(f"credentials-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    after = machine.query("SELECT count(*) FROM cdrs WHERE calling_hmac LIKE $1", f"{newest}:%")
    assert after == before + 1


def test_process_metrics_are_served(machine: Machine) -> None:
    """prometheus-client's process_* metrics read /proc/self and /proc/stat: the
    sandbox (ProtectProc=invisible) must leave them readable."""
    machine.ensure_running()
    metrics = machine.metrics()
    assert metrics.get("process_resident_memory_bytes", 0) > 0, sorted(metrics)[:20]
    assert metrics.get("process_open_fds", 0) > 0


def test_the_journal_has_the_daemons_warnings_at_warning_priority(machine: Machine) -> None:
    """A request signed with another secret is dropped with a warning, which
    `journalctl -p warning` shows."""
    # a new process: the warning is rate-limited per process
    machine.systemctl("restart", SERVICE)
    mark = machine.cursor()
    since = int(time.time()) - 1
    dropped = machine.radius(f"bad-secret-{uuid.uuid4().hex}", secret="not-the-secret", timeout=2)
    # no answer at all (an answer under another secret would show as Received)
    assert dropped.returncode != 0
    assert "Received" not in dropped.stdout + dropped.stderr

    def warned() -> bool:
        # the operator's command, literally
        shown = machine.sh(
            f"journalctl --no-pager -o cat -p warning -u cdr-collector --since=@{since}"
        ).stdout
        return "check the shared secret" in shown

    try:
        wait_until("the warning in journalctl -p warning", warned, timeout=15)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- all priorities:\n{machine.journal(mark)}") from None


# --- reload, key rotation -----------------------------------------------------------


def test_reload_with_a_good_configuration_succeeds_and_applies_it(machine: Machine) -> None:
    machine.ensure_running()
    pid = machine.main_pid()
    original = machine.sh(f"cat {CONFIG}").stdout
    ok = 'cdr_collector_config_reloads_total{result="ok"}'
    try:
        before = machine.metrics().get(ok, 0.0)
        machine.sh(f'sed -i \'s|^secret = "{SECRET}"|secret = "a-new-secret"|\' {CONFIG}')
        done = machine.systemctl("reload", SERVICE, check=False)
        assert done.returncode == 0, done.stdout + done.stderr + machine.diagnosis()
        wait_until("the daemon's reload", lambda: machine.metrics().get(ok, 0.0) > before)
        assert machine.main_pid() == pid
        answered = machine.radius(f"new-secret-{uuid.uuid4().hex}", secret="a-new-secret")
        assert answered.returncode == 0, answered.stdout + answered.stderr
    finally:
        machine.sh(f"cat > {CONFIG} <<'EOF'\n{original}EOF")
        machine.systemctl("restart", SERVICE)


def test_check_config_as_exec_reload_prints_no_traceback(machine: Machine) -> None:
    """ExecReload='s check-config runs as the dynamic user, which cannot read the
    credentials directory: it must say so, not crash."""
    machine.ensure_running()
    mark = machine.cursor()
    done = machine.systemctl("reload", SERVICE, check=False)
    journal = machine.journal(mark)
    assert "Traceback" not in journal, journal
    assert done.returncode == 0, done.stdout + done.stderr + journal
    assert f"{CONFIG}: OK" in journal, journal


def test_reload_with_a_bad_configuration_fails_and_keeps_the_old_one(machine: Machine) -> None:
    machine.ensure_running()
    pid = machine.main_pid()
    original = machine.sh(f"cat {CONFIG}").stdout
    reloads = machine.metrics()
    try:
        machine.sh(
            f'sed -i \'s|^secret = "{SECRET}"|secret = "a-new-secret"|\' {CONFIG}'
            f" && echo 'no_such_key = 1' >> {CONFIG}"
        )
        mark = machine.cursor()
        done = machine.systemctl("reload", SERVICE, check=False)
        assert done.returncode != 0, done.stdout + done.stderr
        journal = machine.journal(mark)
        assert "no_such_key" in journal, journal
        assert machine.main_pid() == pid
        assert machine.show(SERVICE, "ActiveState")["ActiveState"] == "active"
        # the daemon never got SIGHUP: no reload attempted, the old secret still answers
        after = machine.metrics()
        for result in ("ok", "failed"):
            name = f'cdr_collector_config_reloads_total{{result="{result}"}}'
            assert after.get(name, 0.0) == reloads.get(name, 0.0), name
        answered = machine.radius(f"old-secret-{uuid.uuid4().hex}")
        assert answered.returncode == 0, answered.stdout + answered.stderr
    finally:
        machine.sh(f"cat > {CONFIG} <<'EOF'\n{original}EOF")
        machine.systemctl("restart", SERVICE)


def stored_under(machine: Machine, key: str) -> int:
    """Rows whose calling number's pseudonym was made with key `key`."""
    return int(machine.query("SELECT count(*) FROM cdrs WHERE calling_hmac LIKE $1", f"{key}:%"))


def reloaded(machine: Machine, action: Callable[[], object]) -> None:
    """Run `action` and wait until the daemon has reloaded (its counter of good reloads)."""
    name = 'cdr_collector_config_reloads_total{result="ok"}'
    before = machine.metrics().get(name, 0.0)
    action()
    wait_until("the daemon's reload", lambda: machine.metrics().get(name, 0.0) > before)


def test_a_rotated_key_is_used_after_restart(machine: Machine) -> None:
    machine.ensure_running()
    old = machine.key_ids()[0]
    machine.sh(f"cdr-collector keygen --rotate --config {CONFIG}")
    new = machine.key_ids()[0]
    assert new != old
    machine.systemctl("restart", SERVICE)
    answered = machine.radius(f"after-restart-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert stored_under(machine, new) == 1


def test_a_bare_sighup_keeps_the_credential_and_warns_to_restart(machine: Machine) -> None:
    """SIGHUP alone (systemctl kill, kill -HUP) runs no ExecReload=: the credential
    keeps the key of the start, and the daemon says to restart."""
    machine.systemctl("restart", SERVICE)
    old = machine.key_ids()[0]
    machine.sh(f"cdr-collector keygen --rotate --config {CONFIG}")
    mark = machine.cursor()
    reloaded(machine, lambda: machine.systemctl("kill", "-s", "HUP", "--kill-whom=main", SERVICE))
    before = stored_under(machine, old)
    answered = machine.radius(f"after-sighup-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert stored_under(machine, old) == before + 1
    warnings = machine.journal(mark, max_priority=4)
    assert "privacy.key_file" in warnings, machine.journal(mark)
    assert "systemctl restart cdr-collector" in warnings, warnings


def test_systemctl_reload_copies_the_credentials_again_on_systemd_252(machine: Machine) -> None:
    """systemd 252 writes a unit's credentials afresh for every ExecReload= command
    it runs (253 dropped this), so there `systemctl reload` takes a rotated key,
    as the README says."""
    machine.systemctl("restart", SERVICE)
    machine.sh(f"cdr-collector keygen --rotate --config {CONFIG}")
    new = machine.key_ids()[0]
    reloaded(machine, lambda: machine.systemctl("reload", SERVICE))
    answered = machine.radius(f"after-reload-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert stored_under(machine, new) == 1


# --- the watchdog, the spool, stop ----------------------------------------------------


def test_the_watchdog_kills_a_hung_daemon_with_sigabrt_and_restarts_it(machine: Machine) -> None:
    dropin = "/etc/systemd/system/cdr-collector.service.d"
    machine.sh(
        f"mkdir -p {dropin} && printf '[Service]\\nWatchdogSec=3\\n' > {dropin}/watchdog.conf"
        " && systemctl daemon-reload"
    )
    try:
        machine.systemctl("restart", SERVICE)
        pid = machine.main_pid()
        restarts = int(machine.show(SERVICE, "NRestarts")["NRestarts"])
        mark = machine.cursor()
        machine.sh(f"kill -STOP {pid}")

        def restarted() -> bool:
            state = machine.show(SERVICE, "MainPID", "ActiveState", "SubState", "NRestarts")
            return (
                state["MainPID"] not in ("0", str(pid))
                and state["SubState"] == "running"
                and int(state["NRestarts"]) == restarts + 1
            )

        wait_until("the restart after the watchdog", restarted)
        journal = machine.journal(mark)
        assert "Watchdog timeout" in journal, journal
        assert f"Killing process {pid} (cdr-collector) with signal SIGABRT" in journal, journal
        assert "status=6/ABRT" in journal, journal
        answered = machine.radius(f"after-watchdog-{uuid.uuid4().hex}")
        assert answered.returncode == 0, answered.stdout + answered.stderr
    finally:
        machine.sh(f"rm -rf {dropin} && systemctl daemon-reload")
        machine.systemctl("restart", SERVICE)


def send_burst(
    machine: Machine, count: int, during: Callable[[], object] | None = None, rate: float = 200.0
) -> traffic.SendStats:
    """`count` new calls, each sent once (no retransmission), at most `rate` a second;
    `during` runs in a thread once a third of them are answered."""
    calls = traffic.make_calls(count)
    requests = [traffic.cisco_attributes(call) for call in calls]
    started = threading.Event()
    failure: list[BaseException] = []

    def action() -> None:
        assert during is not None
        try:
            during()
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    runner = threading.Thread(target=action, daemon=True)
    answered = 0

    def on_ack(_index: int) -> None:
        nonlocal answered
        answered += 1
        if during is not None and not started.is_set() and answered >= count // 3:
            started.set()
            runner.start()

    async def send() -> traffic.SendStats:
        async with traffic.AccountingClient(
            ("127.0.0.1", machine.radius_port), SECRET.encode(), tries=1, timeout_s=30
        ) as client:
            return await client.send_all(requests, concurrency=64, rate=rate, on_ack=on_ack)

    stats = asyncio.run(send())
    if started.is_set():
        runner.join(timeout=120)
    if failure:
        raise failure[0]
    if during is not None:
        assert started.is_set(), "the action never ran"
    return stats


def test_records_are_spooled_while_the_database_is_away_and_replayed(machine: Machine) -> None:
    machine.ensure_running()
    before = machine.rows()
    machine.proxy.refuse()
    try:
        stats = send_burst(machine, 50)
        assert stats.acknowledged == 50, stats
        assert machine.rows() == before
        segments = machine.sh(f"find {SPOOL} -name '*.seg' -size +0c").stdout.split()
        assert segments, machine.sh(f"ls -la {SPOOL}", check=False).stdout
        assert machine.metrics()["cdr_collector_spool_records"] >= 50
    finally:
        machine.proxy.forward()
    wait_until("the spool replayed", lambda: machine.rows() == before + 50)
    wait_until("the spool empty", lambda: machine.metrics()["cdr_collector_spool_records"] == 0)
    assert machine.doubles() == 0


def test_stop_exits_0_without_reporting_the_database_down(machine: Machine) -> None:
    machine.ensure_running()
    mark = machine.cursor()
    machine.systemctl("stop", SERVICE)
    state = machine.show(SERVICE, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert state == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED
        "ExecMainStatus": "0",
    }, machine.diagnosis()
    journal = machine.journal(mark)
    assert "database DOWN" not in journal, journal
    machine.systemctl("start", SERVICE)


# --- socket activation --------------------------------------------------------------


def test_the_socket_recipe_works_while_the_service_runs(machine: Machine) -> None:
    machine.ensure_running()
    script = ["set -euxo pipefail"]
    for line in socket_commands():
        script.append(line)
        if line.startswith("cp systemd/cdr-collector.socket "):
            script.append(socket_edits(_ports(machine)))
    done = machine.container.run("\n".join(script), cwd=CHECKOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr + machine.diagnosis()
    assert machine.show(SOCKET, "ActiveState", "UnitFileState") == {
        "ActiveState": "active",
        "UnitFileState": "enabled",
    }
    assert machine.show(SERVICE, "SubState")["SubState"] == "running"
    # both systemd and the daemon hold the RADIUS socket: the daemon took systemd's
    holders = machine.sh(f"ss -H -u -l -n -p 'sport = :{machine.radius_port}'").stdout
    assert '"systemd",pid=1' in holders, holders
    assert f'"cdr-collector",pid={machine.main_pid()}' in holders, holders
    answered = machine.radius(f"socket-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr


def _ports(machine: Machine) -> dict[str, int]:
    return {"radius": machine.radius_port, "sip": machine.sip_port}


def test_a_packet_starts_the_stopped_service(machine: Machine) -> None:
    assert machine.show(SOCKET, "ActiveState")["ActiveState"] == "active"
    machine.systemctl("stop", SERVICE)
    assert machine.show(SERVICE, "ActiveState")["ActiveState"] == "inactive"
    assert machine.show(SOCKET, "SubState")["SubState"] == "listening"
    before = machine.rows()
    answered = machine.radius(f"activation-{uuid.uuid4().hex}", timeout=60)
    assert answered.returncode == 0, answered.stdout + answered.stderr + machine.diagnosis()
    assert machine.rows() == before + 1
    assert machine.show(SERVICE, "SubState")["SubState"] == "running"
    assert machine.show(SOCKET, "SubState")["SubState"] == "running"


def test_restarts_in_a_row_are_never_refused_and_keep_the_socket(machine: Machine) -> None:
    """No start limit: eight restarts in a row all succeed, and the socket unit
    stays up (a start limit hit would fail it and close the ports)."""
    assert machine.show(SOCKET, "ActiveState")["ActiveState"] == "active"
    machine.ensure_running()
    pids = set()
    for attempt in range(8):
        done = machine.systemctl("restart", SERVICE, check=False)
        assert done.returncode == 0, (attempt, done.stdout + done.stderr + machine.diagnosis())
        pids.add(machine.main_pid())
    assert len(pids) == 8
    assert machine.show(SOCKET, "ActiveState", "Result") == {
        "ActiveState": "active",
        "Result": "success",
    }
    answered = machine.radius(f"after-restarts-{uuid.uuid4().hex}")
    assert answered.returncode == 0, answered.stdout + answered.stderr


def test_a_restart_through_the_socket_loses_no_request(machine: Machine) -> None:
    """600 requests, each sent once, while the service restarts: every one
    answered, every record stored once."""
    assert machine.show(SOCKET, "ActiveState")["ActiveState"] == "active"
    machine.ensure_running()
    pid = machine.main_pid()
    before = machine.rows()
    stats = send_burst(machine, 600, during=lambda: machine.systemctl("restart", SERVICE))
    assert machine.main_pid() != pid
    assert stats.acknowledged == 600, (stats.acknowledged, stats.gave_up, machine.diagnosis())
    wait_until("600 rows", lambda: machine.rows() >= before + 600)
    assert machine.rows() == before + 600
    assert machine.doubles() == 0


def test_a_restart_while_the_database_hangs_loses_no_request(machine: Machine) -> None:
    """The same while PostgreSQL takes connections and never answers: the records
    go to the spool, are answered, and reach the table once it is back."""
    assert machine.show(SOCKET, "ActiveState")["ActiveState"] == "active"
    machine.ensure_running()
    pid = machine.main_pid()
    before = machine.rows()

    def hang_and_restart() -> None:
        machine.proxy.hang()
        machine.systemctl("restart", SERVICE)

    try:
        stats = send_burst(machine, 600, during=hang_and_restart)
    finally:
        machine.proxy.forward()
    assert machine.main_pid() != pid
    assert stats.acknowledged == 600, (stats.acknowledged, stats.gave_up, machine.diagnosis())
    wait_until("600 rows", lambda: machine.rows() >= before + 600, timeout=120)
    wait_until("the spool empty", lambda: machine.metrics()["cdr_collector_spool_records"] == 0)
    assert machine.rows() == before + 600
    assert machine.doubles() == 0
