"""A real Kamailio SIP proxy for tests, on free loopback ports.

``kamailio_proxy()`` renders ``tests/peers/kamailio/*.tmpl`` into a working
directory, checks the result with ``kamailio -c``, starts ``kamailio -DD -E``
in the foreground with its log captured to a file, waits until the proxy
answers an OPTIONS, and stops it again (SIGTERM, then SIGKILL). The proxy
accounts every call over RADIUS (acc_radius) to the server the test names and
mirrors every SIP message it receives or sends as HEPv3 (siptrace) to the
port the test names, so a test can point both at the daemon under test, or at
plain sockets of its own.

It is an async context manager because what it feeds often runs on the
test's own event loop (the plain sockets of tests/test_peers_kamailio.py, an
in-process receiver): a start or stop that blocked the loop would stall
them, and Kamailio blocks a worker on every unanswered Accounting-Request.
It must never listen or send beyond 127.0.0.1, and never skip a test: a
missing ``kamailio`` raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.daemon import free_port

TEMPLATE_DIR = Path(__file__).with_name("kamailio")
LOOPBACK = "127.0.0.1"

#: What acc_radius adds to each Accounting-Request besides its fixed set:
#: the caller's and the callee's numbers, which the routing script takes from
#: the From and To user parts (swapped back for a BYE the callee sends, so a
#: Stop names the same parties as its Start). ``$fU``/``$tU`` here instead
#: would report a callee's BYE with the two numbers swapped, as many real
#: Kamailio setups do.
DEFAULT_RADIUS_EXTRA = "Calling-Station-Id=$avp(calling);Called-Station-Id=$avp(called)"
DEFAULT_HEP_CAPTURE_ID = 2001

#: Call-ID prefix of the OPTIONS the helper sends to see that the proxy is up;
#: siptrace mirrors those as well, so HEP consumers may want to skip them.
PROBE_CALL_ID_PREFIX = "kamailio-probe-"

_INSTALL_HINT = "apt-get install kamailio kamailio-radius-modules kamailio-extra-modules"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40


class KamailioError(RuntimeError):
    """Kamailio could not be configured, started or stopped."""


class KamailioNotInstalled(KamailioError):
    """The ``kamailio`` binary is not installed on this machine."""


@dataclass(frozen=True)
class KamailioProxy:
    """A running test proxy: where it listens and where it reports to."""

    sip_port: int
    radius_port: int
    hep_port: int
    hep_capture_id: int
    uas_port: int | None
    workdir: Path
    log_path: Path
    pid: int

    @property
    def sip_address(self) -> tuple[str, int]:
        """The proxy's SIP (UDP) address, for user agents to send to."""
        return (LOOPBACK, self.sip_port)

    def log_text(self) -> str:
        """Kamailio's log so far (stdout and stderr), for failure messages."""
        return self.log_path.read_text(errors="replace")


def find_kamailio() -> str:
    """Return the path of the ``kamailio`` binary, or raise saying how to install it.

    Debian installs it in /usr/sbin, which is not on every user's PATH.
    """
    search_path = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"]
    )
    found = shutil.which("kamailio", path=search_path)
    if found is None:
        raise KamailioNotInstalled(
            f"kamailio is not installed (looked on PATH and in /usr/sbin); "
            f"the SIP peer tests need it: {_INSTALL_HINT}"
        )
    return found


def render_template(text: str, values: dict[str, object]) -> str:
    """Fill each ``{{name}}`` in ``text`` from ``values``; an unknown name raises.

    A tiny renderer of its own because Kamailio's configuration language
    uses ``$`` and braces itself.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no value")
        return str(values[name])

    return _PLACEHOLDER.sub(substitute, text)


@contextlib.asynccontextmanager
async def kamailio_proxy(
    radius_port: int,
    radius_secret: str,
    hep_port: int,
    uas_port: int | None = None,
    *,
    sip_port: int | None = None,
    hep_capture_id: int = DEFAULT_HEP_CAPTURE_ID,
    hep_auth_key: str | None = None,
    radius_extra: str = DEFAULT_RADIUS_EXTRA,
    radius_timeout_s: int = 2,
    radius_retries: int = 3,
    children: int = 4,
    debug_level: int = 2,
    unaccounted_prefix: str | None = None,
    start_timeout_s: float = 15.0,
    stop_timeout_s: float = 5.0,
    workdir: Path | None = None,
) -> AsyncIterator[KamailioProxy]:
    """Run a Kamailio proxy on loopback for the duration of the ``async with``.

    RADIUS accounting goes to ``127.0.0.1:radius_port`` with ``radius_secret``
    (a Start for each answered call, a Stop for its BYE, a Failed for an
    INVITE that ended >= 300); every SIP message the proxy receives or sends
    goes as HEPv3 with ``hep_capture_id`` (and ``hep_auth_key`` in the
    authentication chunk, when given) to ``127.0.0.1:hep_port``. An INVITE
    whose Request-URI names the proxy itself goes to the user agent on
    ``127.0.0.1:uas_port`` (answered 404 when it is None); any other INVITE
    goes to the loopback host and port in its Request-URI, which is how
    ``tests.peers.sipp.place_calls`` lets several scenarios share one proxy.

    With ``unaccounted_prefix`` (digits), calls whose callee number starts
    with it (after an optional ``+``) are not accounted at all, neither their
    INVITE nor their BYE, while their SIP is mirrored like any other: a
    switch that fails to bill some calls.

    ``sip_port`` is picked free unless given. ``workdir`` receives the
    rendered files and ``kamailio.log`` (a temporary directory, removed at
    the end, unless given). Raises ``KamailioNotInstalled`` without the
    binary and ``KamailioError`` when the proxy does not come up.
    """
    _check_secret(radius_secret)
    if '"' in radius_extra or (hep_auth_key is not None and '"' in hep_auth_key):
        raise ValueError("radius_extra and hep_auth_key must not contain a double quote")
    if unaccounted_prefix is not None and not unaccounted_prefix.isdigit():
        raise ValueError("unaccounted_prefix must be digits")
    binary = find_kamailio()

    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="kamailio-")))
        workdir.mkdir(parents=True, exist_ok=True)
        runtime_dir = workdir / "run"
        runtime_dir.mkdir(exist_ok=True)

        attempts = 1 if sip_port is not None else _START_ATTEMPTS
        last_error: KamailioError | None = None
        for _ in range(attempts):
            port = sip_port if sip_port is not None else free_port()
            config_path = _write_config(
                workdir,
                sip_port=port,
                radius_port=radius_port,
                radius_secret=radius_secret,
                hep_port=hep_port,
                hep_capture_id=hep_capture_id,
                hep_auth_key=hep_auth_key,
                uas_port=uas_port,
                radius_extra=radius_extra,
                radius_timeout_s=radius_timeout_s,
                radius_retries=radius_retries,
                children=children,
                debug_level=debug_level,
                unaccounted_prefix=unaccounted_prefix,
            )
            await _check_config(binary, config_path, runtime_dir)
            log_path = workdir / "kamailio.log"
            process = await _spawn(binary, config_path, runtime_dir, workdir, log_path)
            try:
                await _wait_until_answering(process, port, log_path, start_timeout_s)
            except BaseException as error:
                await _stop(process, stop_timeout_s)
                if isinstance(error, KamailioError) and _port_was_taken(log_path):
                    last_error = error
                    continue  # somebody took the port in the meantime: pick another
                raise

            try:
                yield KamailioProxy(
                    sip_port=port,
                    radius_port=radius_port,
                    hep_port=hep_port,
                    hep_capture_id=hep_capture_id,
                    uas_port=uas_port,
                    workdir=workdir,
                    log_path=log_path,
                    pid=process.pid,
                )
            finally:
                await _stop(process, stop_timeout_s)
            return

        assert last_error is not None
        raise last_error


def _check_secret(secret: str) -> None:
    # radcli reads the servers file as whitespace-separated "host secret"
    # and keeps at most 48 bytes of a secret.
    if not secret or len(secret.encode()) > 48 or any(c.isspace() for c in secret):
        raise ValueError("radius_secret must be 1-48 bytes without whitespace")


def _write_config(
    workdir: Path,
    *,
    sip_port: int,
    radius_port: int,
    radius_secret: str,
    hep_port: int,
    hep_capture_id: int,
    hep_auth_key: str | None,
    uas_port: int | None,
    radius_extra: str,
    radius_timeout_s: int,
    radius_retries: int,
    children: int,
    debug_level: int,
    unaccounted_prefix: str | None = None,
) -> Path:
    """Render the proxy's and radcli's files into ``workdir``; return the cfg path."""
    servers_path = workdir / "servers"
    radiusclient_path = workdir / "radiusclient.conf"
    config_path = workdir / "kamailio.cfg"
    dictionary_path = TEMPLATE_DIR / "dictionary"

    if uas_port is None:
        default_target = '\t\tsl_send_reply("404", "No Default Callee");\n\t\texit;'
    else:
        default_target = f'\t\t$du = "sip:{LOOPBACK}:{uas_port}";'

    # after the numbers acc reports are set: the callee is $avp(called) whichever
    # side sends the BYE
    unaccounted = (
        ""
        if unaccounted_prefix is None
        else (
            f'\tif ($avp(called) =~ "^[+]?{unaccounted_prefix}") {{\n'
            "\t\tresetflag(FLT_ACC);\n\t\tresetflag(FLT_ACCFAILED);\n\t}\n"
        )
    )
    values: dict[str, object] = {
        "radius_host": LOOPBACK,
        "radius_port": radius_port,
        "radius_secret": radius_secret,
        "radius_timeout_s": max(1, radius_timeout_s),
        "radius_retries": max(1, radius_retries),
        "servers_file": servers_path,
        "dictionary_file": dictionary_path,
        "radiusclient_conf": radiusclient_path,
        "radius_extra": radius_extra,
        "sip_port": sip_port,
        "hep_port": hep_port,
        "hep_capture_id": hep_capture_id,
        "hep_auth_key_param": (
            "" if hep_auth_key is None else f'modparam("siptrace", "auth_key", "{hep_auth_key}")'
        ),
        "default_target": default_target,
        "children": children,
        "debug_level": debug_level,
        "unaccounted_callees": unaccounted,
    }
    for template, target in (
        ("servers.tmpl", servers_path),
        ("radiusclient.conf.tmpl", radiusclient_path),
        ("kamailio.cfg.tmpl", config_path),
    ):
        text = (TEMPLATE_DIR / template).read_text()
        target.write_text(render_template(text, values))
    servers_path.chmod(0o600)  # it holds the shared secret
    return config_path


async def _check_config(binary: str, config_path: Path, runtime_dir: Path) -> None:
    """Run ``kamailio -c`` on the rendered config; raise with its output if it fails."""
    check = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        "-f",
        str(config_path),
        "-Y",
        str(runtime_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await check.communicate()
    if check.returncode != 0:
        text = output.decode(errors="replace")
        hint = ""
        if "loadmodule" in text or "could not find module" in text or "load_module" in text:
            hint = f"\n(a module is missing: {_INSTALL_HINT})"
        raise KamailioError(f"kamailio -c rejected {config_path}:\n{text}{hint}")


async def _spawn(
    binary: str, config_path: Path, runtime_dir: Path, workdir: Path, log_path: Path
) -> asyncio.subprocess.Process:
    """Start Kamailio in the foreground, logging to ``log_path``, in its own session.

    Its own session (process group) lets the stop fall back to killing the
    main process and all its workers together.
    """
    with log_path.open("wb") as log_file:
        return await asyncio.create_subprocess_exec(
            binary,
            "-DD",
            "-E",
            "-f",
            str(config_path),
            "-Y",
            str(runtime_dir),
            "-w",
            str(workdir),
            "-m",
            "32",
            "-M",
            "8",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )


class _ProbeReplies(asyncio.DatagramProtocol):
    """Collects the final replies to the OPTIONS probes."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id.encode()
        self.answered = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data.startswith(b"SIP/2.0 200") and self.call_id in data and not self.answered.done():
            self.answered.set_result(None)


def _options_probe(sip_port: int, local_port: int, call_id: str, cseq: int) -> bytes:
    """An OPTIONS for the proxy itself, which the routing script answers 200."""
    token = secrets.token_hex(6)
    lines = [
        f"OPTIONS sip:{LOOPBACK}:{sip_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK{token}",
        "Max-Forwards: 70",
        f"From: <sip:probe@{LOOPBACK}:{local_port}>;tag={token}",
        f"To: <sip:{LOOPBACK}:{sip_port}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


async def _wait_until_answering(
    process: asyncio.subprocess.Process, sip_port: int, log_path: Path, timeout_s: float
) -> None:
    """Send OPTIONS until the proxy answers; raise if it exits or stays silent."""
    loop = asyncio.get_running_loop()
    call_id = f"{PROBE_CALL_ID_PREFIX}{secrets.token_hex(8)}@{LOOPBACK}"
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ProbeReplies(call_id), local_addr=(LOOPBACK, 0)
    )
    try:
        local_port = transport.get_extra_info("sockname")[1]
        deadline = loop.time() + timeout_s
        cseq = 0
        while loop.time() < deadline:
            if process.returncode is not None:
                raise KamailioError(
                    f"kamailio exited with {process.returncode} while starting:\n"
                    f"{_log_tail(log_path)}"
                )
            cseq += 1
            transport.sendto(
                _options_probe(sip_port, local_port, call_id, cseq), (LOOPBACK, sip_port)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.answered), 0.2)
                return
        raise KamailioError(
            f"kamailio did not answer an OPTIONS on {LOOPBACK}:{sip_port} within "
            f"{timeout_s} s:\n{_log_tail(log_path)}"
        )
    finally:
        transport.close()


async def _stop(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM the main process (it stops its workers), SIGKILL the group if it lingers."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
            return
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _port_was_taken(log_path: Path) -> bool:
    return "address already in use" in log_path.read_text(errors="replace").lower()


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])
