"""Real SIP calls for tests: SIPp user agents driven through pysipp.

``place_calls()`` starts a SIPp user agent server (the callee) and a SIPp
user agent client (the caller) from one of the scenario directories under
``tests/peers/scenarios/``, sends the calls through a proxy (normally
``tests.peers.kamailio``), waits for both agents to finish and returns what
SIPp counted. Every agent binds 127.0.0.1 only; a missing ``sipp`` raises,
it never skips.

pysipp 0.1.0 creates ``pluggy.PluginManager("pysipp", implprefix="pysipp")``
when it is imported; pluggy 1.0 removed ``implprefix`` (discovering hook
implementations by name prefix). pysipp marks every implementation with its
``HookimplMarker`` anyway, so the prefix adds nothing: this module swaps in a
``PluginManager`` subclass that accepts and ignores the argument for the
moment of the import, then puts pluggy's own class back. Importing pysipp
any other way fails with ``TypeError: ... unexpected keyword argument
'implprefix'``; import it from here (``tests.peers.sipp.pysipp``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args

import pluggy

from tests.daemon import free_port

SCENARIO_DIR = Path(__file__).with_name("scenarios")
LOOPBACK = "127.0.0.1"

#: The call shapes under ``scenarios/``; each directory holds uac.xml and uas.xml.
Scenario = Literal["answered", "callee_hangup", "busy", "cancelled", "no_answer", "two_to_tags"]
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)

#: E.164-shaped numbers from ranges kept for fiction and tests (Ofcom's
#: 020 7946 0xxx drama range for the callee), so the daemon has something
#: realistic to normalise, prefix and redact.
DEFAULT_CALLER = "+493012345678"
DEFAULT_CALLEE = "+442079460123"

_INSTALL_HINT = "apt-get install sip-tester"
_SUCCESSFUL = re.compile(r"^\s*Successful call\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)
_FAILED = re.compile(r"^\s*Failed call\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)


class _PluginManagerAcceptingImplprefix(pluggy.PluginManager):
    """pluggy's PluginManager, taking (and dropping) pluggy 0.x's ``implprefix``."""

    def __init__(self, project_name: str, implprefix: str | None = None) -> None:
        super().__init__(project_name)


def _import_pysipp() -> ModuleType:
    """Import pysipp 0.1.0 against a pluggy that no longer knows ``implprefix``."""
    pluggy_manager = pluggy.PluginManager
    pluggy.PluginManager = _PluginManagerAcceptingImplprefix  # type: ignore[misc]
    try:
        with warnings.catch_warnings():
            # pysipp 0.1.0 still imports distutils and imp.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            import pysipp
            import pysipp.launch
    finally:
        pluggy.PluginManager = pluggy_manager  # type: ignore[misc]
    module: ModuleType = pysipp  # untyped package: Any to mypy
    return module


pysipp = _import_pysipp()


class SippError(RuntimeError):
    """SIPp could not be started or did not finish."""


class SippNotInstalled(SippError):
    """The ``sipp`` binary is not installed on this machine."""


@dataclass(frozen=True)
class AgentResult:
    """What one SIPp agent reported when it exited."""

    role: Literal["uac", "uas"]
    exit_code: int
    successful_calls: int
    failed_calls: int
    stderr: str
    screen: str


@dataclass(frozen=True)
class PlacedCalls:
    """The outcome of ``place_calls``: SIPp's counts and the calls' identities."""

    scenario: Scenario
    count: int
    caller: str
    callee: str
    call_ids: tuple[str, ...]
    uac: AgentResult
    uas: AgentResult
    logdir: Path

    @property
    def successful(self) -> int:
        """Calls the caller side completed exactly as its scenario says."""
        return self.uac.successful_calls

    @property
    def failed(self) -> int:
        """Calls that went off script on either side."""
        return max(self.uac.failed_calls, self.uas.failed_calls)

    @property
    def all_succeeded(self) -> bool:
        """True when both agents completed every call as scripted."""
        return (
            self.uac.successful_calls == self.count
            and self.uas.successful_calls == self.count
            and self.uac.failed_calls == 0
            and self.uas.failed_calls == 0
        )

    def describe(self) -> str:
        """A failure message: counts, exit codes and SIPp's own error output."""
        parts = [f"{self.scenario}: {self.count} calls, logs in {self.logdir}"]
        for agent in (self.uac, self.uas):
            parts.append(
                f"{agent.role}: exit {agent.exit_code}, {agent.successful_calls} ok, "
                f"{agent.failed_calls} failed\n{agent.stderr.strip()}"
            )
        return "\n".join(parts)


def find_sipp() -> str:
    """Return the path of the ``sipp`` binary, or raise saying how to install it."""
    found = shutil.which("sipp")
    if found is None:
        raise SippNotInstalled(
            f"sipp is not installed; the SIP peer tests need it: {_INSTALL_HINT}"
        )
    return found


async def place_calls(
    proxy_port: int,
    scenario: Scenario,
    count: int = 1,
    rate: float = 10.0,
    duration_s: float = 1.0,
    *,
    ring_s: float = 0.2,
    caller: str = DEFAULT_CALLER,
    callee: str = DEFAULT_CALLEE,
    uas_port: int | None = None,
    logdir: Path | None = None,
    timeout_s: float | None = None,
) -> PlacedCalls:
    """Place ``count`` calls of one ``scenario`` through the proxy on ``proxy_port``.

    Starts the callee (UAS) first, waits until its socket is bound, then the
    caller (UAC) at ``rate`` calls per second; all calls may overlap. The
    caller is ``caller`` (From user), the callee ``callee`` (Request-URI and
    To user). Timing by scenario:

    - ``answered``: 180, ``ring_s`` later 200; the caller hangs up (BYE)
      ``duration_s`` after its ACK.
    - ``callee_hangup``: as answered, but the callee sends the BYE
      ``duration_s`` after the ACK.
    - ``busy``: 486 Busy Here with ``Reason: Q.850;cause=17`` at once.
    - ``cancelled``: 180 and no answer; the caller CANCELs ``ring_s`` after
      the 180 and gets 487.
    - ``no_answer``: 180, ``ring_s`` later 480 Temporarily Unavailable with
      ``Reason: Q.850;cause=19``.
    - ``two_to_tags``: as answered, but the 200 carries two To-tags
      (``;tag=<pid>SIPpTag01<n>;tag=<pid>SIPpTag02<n>``, as some phones
      answer) and the caller keeps the last one alone for its ACK and BYE.

    By default the UAS gets a free port and the Request-URI names it (the
    proxy relays there), so several ``place_calls`` can share one proxy at
    once. With ``uas_port`` the UAS binds that port and the Request-URI names
    the proxy itself, exercising the proxy's default route to its
    ``uas_port``. Call-IDs are ``<scenario>-<token>-<n>@127.0.0.1``, n = 1 ..
    count (returned in ``call_ids``). SIPp's logs and message traces go to
    ``logdir`` (a fresh temporary directory unless given, kept for
    post-mortems). Raises ``SippNotInstalled`` without the binary and
    ``SippError`` when an agent cannot start or does not finish within
    ``timeout_s``; calls that go off script are reported, not raised.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    if count < 1:
        raise ValueError("count must be at least 1")
    binary = find_sipp()
    if logdir is None:
        logdir = Path(tempfile.mkdtemp(prefix=f"sipp-{scenario}-"))
    logdir.mkdir(parents=True, exist_ok=True)
    if timeout_s is None:
        # generous: on a starved CPU a proxy's synchronous RADIUS accounting can hold a
        # 2xx for seconds; a call only ever ends late, never early, because of it
        timeout_s = count / rate + ring_s + duration_s + 45.0
    plan = _CallPlan(
        binary=binary,
        proxy_port=proxy_port,
        scenario=scenario,
        count=count,
        rate=rate,
        ring_ms=max(0, round(ring_s * 1000)),
        talk_ms=max(0, round(duration_s * 1000)),
        caller=caller,
        callee=callee,
        fixed_uas_port=uas_port,
        logdir=logdir,
        timeout_s=timeout_s,
        call_id_stem=f"{scenario}-{secrets.token_hex(4)}",
    )
    # pysipp blocks (Popen, epoll, threads): keep it off the event loop that
    # the daemon under test may be running on.
    return await asyncio.to_thread(plan.run)


class _PortTaken(SippError):
    """The callee's port was taken between the check and SIPp's bind."""


class _NoStdinSubprocess:
    """The slice of ``subprocess`` that pysipp's runner uses, with stdin closed.

    SIPp reads keystrokes from a terminal on stdin; a test run must not hand
    it one.
    """

    PIPE = subprocess.PIPE

    @staticmethod
    def Popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, **kwargs)


@dataclass(frozen=True)
class _CallPlan:
    """Everything one ``place_calls`` needs, run in a worker thread."""

    binary: str
    proxy_port: int
    scenario: Scenario
    count: int
    rate: float
    ring_ms: int
    talk_ms: int
    caller: str
    callee: str
    fixed_uas_port: int | None
    logdir: Path
    timeout_s: float
    call_id_stem: str

    def run(self) -> PlacedCalls:
        # a port found free can be taken by another program before SIPp binds it (the
        # callee then exits with errno 98): the call is placed again on another port
        for _attempt in range(2):
            try:
                return self._run_once()
            except _PortTaken:
                if self.fixed_uas_port is not None:
                    raise
        return self._run_once()

    def _run_once(self) -> PlacedCalls:
        uas_port = self.fixed_uas_port if self.fixed_uas_port is not None else free_port()
        uas = self._agent("uas", local_port=uas_port)
        if self.fixed_uas_port is None:
            # The Request-URI names the callee; SIPp sends via the proxy (-rsa).
            uac = self._agent(
                "uac",
                local_port=free_port(),
                remote_host=LOOPBACK,
                remote_port=uas_port,
                proxy_host=LOOPBACK,
                proxy_port=self.proxy_port,
            )
        else:
            uac = self._agent(
                "uac",
                local_port=free_port(),
                remote_host=LOOPBACK,
                remote_port=self.proxy_port,
            )

        uas_runner = pysipp.launch.PopenRunner(subprocmod=_NoStdinSubprocess)
        uac_runner = pysipp.launch.PopenRunner(subprocmod=_NoStdinSubprocess)
        try:
            finish_uas = uas(
                block=False, runner=uas_runner, timeout=self.timeout_s, raise_exc=False
            )
            self._wait_until_bound(uas_port, uas_runner)
            try:
                uac(block=True, runner=uac_runner, timeout=self.timeout_s, raise_exc=False)
            except pysipp.launch.TimeoutError as error:
                raise SippError(f"{self.scenario} caller did not finish: {error}") from error
            try:
                finish_uas(timeout=self.timeout_s, raise_exc=False)
            except pysipp.launch.TimeoutError as error:
                raise SippError(f"{self.scenario} callee did not finish: {error}") from error
        finally:
            for runner in (uas_runner, uac_runner):
                runner.terminate()
                runner.poller.close()

        return PlacedCalls(
            scenario=self.scenario,
            count=self.count,
            caller=self.caller,
            callee=self.callee,
            call_ids=tuple(
                f"{self.call_id_stem}-{number}@{LOOPBACK}" for number in range(1, self.count + 1)
            ),
            uac=self._result("uac", uac_runner),
            uas=self._result("uas", uas_runner),
            logdir=self.logdir,
        )

    def _agent(self, role: Literal["uac", "uas"], **addresses: Any) -> Any:
        """A pysipp user agent for ``role`` with the plan's files, keys and limits."""
        files = {
            kind: str(self.logdir / f"{role}_{kind}.log")
            for kind in ("screen", "log", "message", "error")
        }
        common: dict[str, Any] = {
            "bin_path": self.binary,
            "scen_file": str(SCENARIO_DIR / self.scenario / f"{role}.xml"),
            "local_host": LOOPBACK,
            "media_addr": LOOPBACK,
            "call_count": self.count,
            "limit": self.count,
            "rate": self.rate,
            "recv_timeout": self.ring_ms + self.talk_ms + 30_000,
            "timeout": max(1, round(self.timeout_s)),
            "timeout_error": True,
            "key_vals": {
                "caller": self.caller,
                "ring_ms": str(self.ring_ms),
                "talk_ms": str(self.talk_ms),
            },
            "screen_file": files["screen"],
            "log_file": files["log"],
            "message_file": files["message"],
            "error_file": files["error"],
            "trace_message": True,
            "trace_error": True,
            **addresses,
        }
        if role == "uac":
            return pysipp.client(
                uri_username=self.callee, cid_str=f"{self.call_id_stem}-%u@%s", **common
            )
        return pysipp.server(**common)

    def _wait_until_bound(self, port: int, runner: Any) -> None:
        """Block until the UAS holds its UDP port, so the first INVITE finds it."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((LOOPBACK, port))
                except OSError:
                    return  # taken: SIPp is listening
            if not runner.is_alive():
                break
            time.sleep(0.02)
        runner.terminate()  # still alive but not listening: give up on it
        procs = runner.get(timeout=5)
        stderr = " ".join(_stderr(proc) for proc in procs.values())
        failure = _PortTaken if "errno = 98" in stderr else SippError
        raise failure(
            f"{self.scenario} callee did not bind {LOOPBACK}:{port} (logs in {self.logdir}): {stderr}"
        )

    def _result(self, role: Literal["uac", "uas"], runner: Any) -> AgentResult:
        procs = list(runner.get(timeout=0).values())
        if len(procs) != 1:
            raise SippError(f"expected one {role} process, pysipp ran {len(procs)}")
        proc = procs[0]
        screen_path = self.logdir / f"{role}_screen.log"
        screen = screen_path.read_text(errors="replace") if screen_path.exists() else ""
        return AgentResult(
            role=role,
            exit_code=proc.returncode if proc.returncode is not None else -1,
            successful_calls=_last_count(_SUCCESSFUL, screen),
            failed_calls=_last_count(_FAILED, screen),
            stderr=_stderr(proc),
            screen=screen,
        )


def _last_count(pattern: re.Pattern[str], screen: str) -> int:
    """The cumulative value of one counter in SIPp's last statistics screen."""
    values = pattern.findall(screen)
    return int(values[-1]) if values else 0


def _stderr(proc: Any) -> str:
    streams = getattr(proc, "streams", None)
    if streams is None or streams.stderr is None:
        return ""
    data = streams.stderr
    return data.decode(errors="replace") if isinstance(data, bytes) else str(data)
