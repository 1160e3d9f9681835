"""Run the daemon under strace and check, call by call, that it answers only what is durable.

A crash of the daemon alone loses nothing it wrote: unsynced data sits in
the page cache and reaches the disk anyway. What `fsync` protects against is
the machine going down, which a test cannot cause. So instead of crashing,
these helpers watch the system calls: a RADIUS response (a `sendmsg` or
`sendto` on the listening socket) must never leave while a spool segment
holds a `write` that no `fsync`/`fdatasync` of that file has followed, nor
while a directory holds an entry (a segment file it created, a directory it
made) that no `fsync` of that directory has followed.

strace's order is the order of the calls: a thread stopped at the end of a
call is not resumed before strace has printed it, so a response sent after
an fsync returned (the writer thread's `fsync` returns, then it wakes the
event loop, which sends) is always printed after it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: the calls the check needs; `-yy` names the file or socket behind every descriptor
TRACED = "openat,mkdir,mkdirat,write,fsync,fdatasync,sendto,sendmsg,sendmmsg"


def strace_wrapper(strace: str, output: Path) -> tuple[str, ...]:
    """The command line that runs a program under strace, following its threads,
    writing the calls in TRACED to `output` (seccomp-bpf: untraced calls run at full speed)."""
    return (strace, "-f", "--seccomp-bpf", "-qq", "-yy", "-e", f"trace={TRACED}", "-o", str(output))


_LINE = re.compile(
    r"^(?P<pid>\d+)\s+(?:<\.\.\. (?P<resumed>\w+) resumed>(?P<rest>.*)|(?P<name>\w+)\((?P<args>.*))$"
)
_UNFINISHED = " <unfinished ...>"
_FD_PATH = re.compile(r"^\d+<(?P<path>[^>]*)>")
_OPENAT = re.compile(r'^[^,]+, "(?P<path>[^"]+)", (?P<flags>[A-Z_|]+)')
_MKDIR = re.compile(r'^(?:[^,]+, )?"(?P<path>[^"]+)"')
_RESULT = re.compile(r"\)\s+= (?P<value>-?\d+)")


@dataclass(frozen=True)
class Call:
    """One traced call: `enter` when it began, not `enter` when it returned (with its result)."""

    name: str
    text: str
    enter: bool

    @property
    def result(self) -> int | None:
        match = _RESULT.search(self.text)
        return int(match.group("value")) if match else None

    @property
    def fd_path(self) -> str | None:
        match = _FD_PATH.match(self.text)
        return match.group("path") if match else None


def calls(trace: str) -> Iterator[Call]:
    """Each call of an `strace -f` log twice, in order: when it began and when it returned.

    A call another thread interrupted is printed in two parts ("<unfinished
    ...>", then "<... name resumed>"); the two are joined.
    """
    pending: dict[str, str] = {}
    for line in trace.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue  # signals, exits
        pid = match.group("pid")
        if match.group("resumed"):
            name = match.group("resumed")
            yield Call(name, pending.pop(pid, "") + match.group("rest"), enter=False)
            continue
        name, args = match.group("name"), match.group("args")
        if args.endswith(_UNFINISHED):
            pending[pid] = args[: -len(_UNFINISHED)]
            yield Call(name, pending[pid], enter=True)
            continue
        yield Call(name, args, enter=True)
        yield Call(name, args, enter=False)


@dataclass
class DurabilityCheck:
    """What the trace showed: responses, frames, segments, and every response sent too early."""

    responses: int = 0
    frames: int = 0
    segments_created: int = 0
    directories_made: int = 0
    #: one line per response sent while something it may stand for was not durable
    violations: list[str] = field(default_factory=list)


def check_acknowledgements(trace: str, radius_port: int, segment_suffix: str) -> DurabilityCheck:
    """Replay a trace of the daemon; see the module docstring for the rule."""
    check = DurabilityCheck()
    unsynced_files: set[str] = set()
    unsynced_directories: set[str] = set()
    socket_name = f"<UDP:[127.0.0.1:{radius_port}]>"
    for call in calls(trace):
        if call.enter and call.name in ("sendto", "sendmsg", "sendmmsg"):
            if socket_name in call.text.split(",", 1)[0]:
                check.responses += 1
                if unsynced_files or unsynced_directories:
                    check.violations.append(
                        f"response {check.responses} sent before fsync of "
                        f"{sorted(unsynced_files | unsynced_directories)}"
                    )
        elif call.enter and call.name == "write":
            path = call.fd_path
            if path is not None and path.endswith(segment_suffix):
                unsynced_files.add(path)
                check.frames += 1
        elif not call.enter and call.name in ("fsync", "fdatasync") and call.result == 0:
            path = call.fd_path
            unsynced_files.discard(path or "")
            unsynced_directories.discard(path or "")
        elif not call.enter and call.name == "openat":
            match = _OPENAT.match(call.text)
            result = call.result
            if (
                match
                and "O_CREAT" in match.group("flags")
                and match.group("path").endswith(segment_suffix)
                and result is not None
                and result >= 0
            ):
                unsynced_directories.add(os.path.dirname(match.group("path")))
                check.segments_created += 1
        elif not call.enter and call.name in ("mkdir", "mkdirat") and call.result == 0:
            match = _MKDIR.match(call.text)
            if match:
                unsynced_directories.add(os.path.dirname(match.group("path").rstrip("/")))
                check.directories_made += 1
    return check
