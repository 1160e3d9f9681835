"""Structured, privacy-safe logging for the daemon and every library it uses.

structlog renders JSON (or console text) and the same redaction runs for
stdlib loggers (asyncpg, asyncio, aiohttp) through `ProcessorFormatter`. Only
an allow-list of fields survives (a count's field only with an int in it; the
tests fail for a field the code logs that the list lacks, so none vanishes
unnoticed); every string that does survive is scrubbed
of digit runs (phone numbers), SIP/tel URIs and user@host, IP addresses,
session ids (UUIDs, hex ids), query strings and bytes literals (raw wire
data quoted by a library's exception), tracebacks included; an exception
nothing caught is logged the same way. This module must never let a raw packet, a number or a secret reach
a handler: there is no switch to turn the scrubbing off.

Under systemd, stderr is a stream into the journal, which files every line
it reads at the unit's default priority (info) unless the line starts with a
syslog level prefix such as `<4>`. When stderr is that stream (JOURNAL_STREAM
names its device and inode), every line of every record carries the prefix of
its level, continuation lines of a traceback included; anywhere else the
output is exactly what it would be without systemd.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any

import structlog

#: fields structlog and the stdlib add to every line
_PIPELINE_FIELDS = frozenset({"event", "level", "logger", "timestamp", "exception"})

#: fields that hold a count of things (never a number a person has): a value under
#: one of these names that is not an int is replaced by NOT_A_COUNT, so a string
#: (a dialled number, an address) can never pass under a count's name
COUNT_FIELDS = frozenset(
    {
        "answered",
        "bytes",
        "calls",
        "clients",
        "count",
        "deleted",
        "dialogs",
        "keys",
        "kept",
        "line",
        "malformed",
        "mismatched",
        "not_answered",
        "open",
        "partitions",
        "pending",
        "records",
        "restarts",
        "rows",
        "segments",
        "sources",
        "suppressed",
        "tags",
        "unbilled",
        # the index of a RADIUS worker process (collector.workers): a small integer
        "worker",
    }
)

#: fields that hold a name from a fixed vocabulary or the configuration (a
#: listener, a client's name, a reason, an error class, a file path), a flag or a
#: measure; every string among them is scrubbed like free text. None names
#: what could carry a phone number, an address or a URI (tests/test_logs.py
#: checks the names, and that every field the code logs is allowed)
LABEL_FIELDS = frozenset(
    {
        "config",
        "error",
        "error_class",
        "key",
        "key_id",
        "listener",
        "milliseconds",
        "outcome",
        "path",
        "port",
        "protocol",
        "reason",
        "receivers",
        "retryable",
        "seconds",
        "signal",
        "source",
        "stage",
        "state",
        "status",
        "table",
        "version",
    }
)

#: fields a log line may carry; anything else is dropped before rendering
ALLOWED_FIELDS = _PIPELINE_FIELDS | COUNT_FIELDS | LABEL_FIELDS

#: what a count field shows when it was given something other than a count
NOT_A_COUNT = "[not a count]"

#: a bytes literal as a repr or an exception message shows it: raw wire data (a
#: request line, a header, a datagram) is never logged, whatever it holds; an
#: unterminated one (a repr cut short) is removed to the end of its line
_BYTES = re.compile(r"(?<![\w'\"])b(['\"])(?:\\.|(?!\1)[^\\\n])*(?:\1|$)", re.MULTILINE)
_URI = re.compile(r"\b(?:sips?|tel):[^\s>;,\"']*", re.IGNORECASE)
#: a URI's user@host without its scheme (a Call-ID, an address of record)
_USER_AT_HOST = re.compile(r"[^\s<>\"'@;,()\[\]{}=:]*@[^\s<>\"'@;,()\[\]{}]*")
#: a URL's query string (mod_json_cdr appends "?uuid=<leg uuid>")
_QUERY = re.compile(r"\?[^\s\"'<>?=&]*=[^\s\"'<>]*")
#: session identifiers: UUIDs, and hex tokens mixing digits and letters (Call-IDs,
#: Cisco conference ids, FreeSWITCH uuids without dashes)
_UUID = re.compile(
    r"(?<![0-9a-f])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f])",
    re.IGNORECASE,
)
_HEX_ID = re.compile(
    r"(?<![\w.])(?=[0-9a-f]*[a-f])(?=(?:[a-f]*\d){2})[0-9a-f]{8,}(?![\w])", re.IGNORECASE
)
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.IGNORECASE)
_DIGITS = re.compile(r"\+?\d(?:[\d\s\-().]{3,}\d)")


def _digit_run(match: re.Match[str]) -> str:
    text = match.group(0)
    count = sum(ch.isdigit() for ch in text)
    return "[digits]" if count >= 5 else text


#: ISO 8601 dates and times (timestamps, partition dates) are not phone numbers
_ISO_TIME = re.compile(
    r"(?<![\d.])\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d])"
)


def scrub(text: str) -> str:
    """Remove SIP/tel URIs, user@host, query strings, session ids, bytes literals,
    IP addresses and runs of five or more digits from free text."""
    kept: list[str] = []
    last = 0
    for match in _ISO_TIME.finditer(text):
        kept.append(_scrub_plain(text[last : match.start()]))
        kept.append(match.group(0))
        last = match.end()
    kept.append(_scrub_plain(text[last:]))
    return "".join(kept)


def _scrub_plain(text: str) -> str:
    text = _BYTES.sub("b'[bytes]'", text)
    text = _URI.sub("[uri]", text)
    text = _USER_AT_HOST.sub("[uri]", text)
    text = _QUERY.sub("?[query]", text)
    text = _UUID.sub("[id]", text)
    text = _HEX_ID.sub("[id]", text)
    text = _IPV4.sub("[ip]", text)
    text = _IPV6.sub(
        lambda m: "[ip]" if m.group(0).count(":") >= 2 and len(m.group(0)) > 2 else m.group(0), text
    )
    return _DIGITS.sub(_digit_run, text)


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: keep allowed fields, counts only as ints, scrub every string."""
    for key in list(event):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (ProcessorFormatter's _record, _from_structlog)
        if key not in ALLOWED_FIELDS:
            del event[key]
            continue
        value = event[key]
        if key in COUNT_FIELDS:
            if not isinstance(value, int) or isinstance(value, bool):
                event[key] = NOT_A_COUNT
            continue
        if isinstance(value, str):
            if key != "timestamp":
                event[key] = scrub(value)
        elif isinstance(value, bool | int | float) or value is None:
            continue
        else:
            event[key] = scrub(str(value))
    return event


def _drop_exc_locals(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Render exc_info as a plain traceback string (no locals), ready for scrubbing."""
    return structlog.processors.format_exc_info(_logger, _method, event)


def journal_priority(levelno: int) -> int:
    """The syslog priority journald files a line of this logging level under.

    debug 7, info 6, warning 4, error 3, critical 2; a level between two
    standard ones takes the priority of the standard one below it.
    """
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def is_journal_stream(stream: Any) -> bool:
    """Whether `stream` is the journal's stream socket that systemd connected us to.

    systemd sets JOURNAL_STREAM=DEVICE:INODE for the stdout/stderr it connects
    to journald; a stream redirected elsewhere (a shell's `2>file` inside a
    unit, a pipe to another program) has another device and inode, and an
    inherited variable then says nothing about it (sd_journal_stream_fd(3)).
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        expected = (int(device), int(inode))
        status = os.fstat(stream.fileno())
    except (AttributeError, ValueError, OSError):  # no descriptor (a StringIO), a closed one
        return False
    return (status.st_dev, status.st_ino) == expected


def _with_priority(text: str, levelno: int) -> str:
    """`text` with journald's `<N>` level prefix on each of its lines.

    journald splits a stream at every newline (and NUL) and reads the prefix
    of each piece on its own: a traceback's continuation lines need theirs, or
    they are filed as info. A NUL is written as the two characters \\0, so it
    cannot start an unprefixed piece.
    """
    prefix = f"<{journal_priority(levelno)}>"
    return prefix + text.replace("\0", "\\0").replace("\n", "\n" + prefix)


class JournalFormatter(logging.Formatter):
    """Wraps the daemon's formatter: the same text, each line with its level prefix."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text of `record`, every line prefixed with its priority."""
        return _with_priority(self._inner.format(record), record.levelno)


def report(text: str, level: int = logging.ERROR) -> None:
    """A line for a person on stderr (a command's problem, its warning, why it cannot start).

    Printed as it is; when stderr is the journal, with the level prefix, so
    that `ExecStartPre=cdr-collector check-config` problems are filed as
    errors and not as info.
    """
    stream = sys.stderr
    print(_with_priority(text, level) if is_journal_stream(stream) else text, file=stream)


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and stdlib logging through one redacting pipeline to `stream`
    (stderr by default), with journald level prefixes when it is the journal."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _drop_exc_locals,
        redact_event,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    target = stream or sys.stderr
    handler = logging.StreamHandler(target)
    handler.setFormatter(JournalFormatter(formatter) if is_journal_stream(target) else formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    # an exception nothing caught would otherwise be printed by the interpreter,
    # message and all, past the scrubbing
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """sys.excepthook: an uncaught exception as one scrubbed log line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("collector").critical("uncaught exception", exc_info=(kind, value, traceback))


def get_logger(name: str) -> Any:
    """A structlog logger bound to a module name."""
    return structlog.stdlib.get_logger(name)


class RateLimitedLog:
    """Logs one line per key per interval and counts what it held back.

    Bad input from the network arrives in floods; one line every few seconds
    per reason tells the operator everything a line per packet would.
    """

    def __init__(
        self, logger: Any, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval_s
        #: seconds, monotonic; a test passes its own to let an interval pass without waiting
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, event: str, **fields: Any) -> None:
        """Log `event` unless the same key was logged within the interval."""
        self._log(self._logger.warning, key, event, fields)

    def info(self, key: str, event: str, **fields: Any) -> None:
        """`warning` at info level: for what is normal one at a time but may come in floods."""
        self._log(self._logger.info, key, event, fields)

    def _log(self, emit: Any, key: str, event: str, fields: dict[str, Any]) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        emit(event, key=key, suppressed=suppressed, **fields)
