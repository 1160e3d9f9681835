"""Privacy-safe logging: scrubbing, the field allow-list, stdlib loggers, rate limiting.

Logs are captured from the real pipeline (`configure_logging` with a StringIO
stream), for structlog loggers and for stdlib loggers as libraries such as
asyncpg use them: whatever the call site passes, no phone number, address or
SIP URI may come out, and every line must stay valid JSON.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

import collector
from collector.logs import (
    ALLOWED_FIELDS,
    COUNT_FIELDS,
    LABEL_FIELDS,
    NOT_A_COUNT,
    RateLimitedLog,
    configure_logging,
    get_logger,
    scrub,
)
from tests.daemon import running_collector
from tests.test_json_cdr import json_config

NUMBER = "+4930123456789"
NUMBER_DIGITS = "4930123456789"
ADDRESS = "192.0.2.77"
ADDRESS6 = "2001:db8::77"
URI = "sip:alice@example.com"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were (configure_logging replaces them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hook = sys.excepthook
    try:
        yield
    finally:
        sys.excepthook = hook
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


@pytest.fixture
def json_stream(restore_logging: None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    return stream


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every captured line, each parsed as one JSON object."""
    text = stream.getvalue()
    assert text.endswith("\n")
    parsed = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict)
        parsed.append(value)
    return parsed


def assert_nothing_identifying(text: str) -> None:
    for needle in (NUMBER_DIGITS, "30123456789", "030 1234", ADDRESS, ADDRESS6, "alice@", "sip:"):
        assert needle not in text, needle


# -- scrub ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("call to +4930123456789 failed", "4930123456789"),
        ("call to 004930123456789 failed", "4930123456789"),
        ("call to +49 30 1234 5678 failed", "1234 5678"),
        ("call to 030-1234-5678 failed", "1234-5678"),
        ("call to (030) 12345678 failed", "12345678"),
        ("call to 12345 failed", "12345"),
        ("from sip:alice@example.com;tag=1 ok", "alice"),
        ("from <sips:+4930123456789@gw.example:5061> ok", "4930123456789"),
        ("from tel:+4930123456789;phone-context=x ok", "4930123456789"),
        ("peer 192.0.2.77 refused", "192.0.2.77"),
        ("peer 192.0.2.77:1813 refused", "192.0.2.77"),
        ("peer 2001:db8::77 refused", "2001:db8::77"),
        ("peer [2001:db8::77]:5060 refused", "2001:db8::77"),
        ("peer ::ffff:192.0.2.77 refused", "192.0.2.77"),
        # session identifiers and raw wire data
        ("KeyError: 'a84b4c76e66710@pc33.atlanta.com' done", "a84b4c76e66710"),
        ("KeyError: 'a84b4c76e66710@pc33.atlanta.com' done", "atlanta"),
        ("contact alice@example.com ok", "alice"),
        ("POST /cdr?uuid=5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7c11 HTTP/1.1", "5d4c0c86"),
        ("POST /cdr?cdr=bob&x=1 HTTP/1.1", "bob"),
        ("leg 5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7c11 ended", "2a1f0e9b7c11"),
        ("conference 3C5AEAB9 1DD211B2 8FD3C3E4 4B8F5A10 ended", "3C5AEAB9"),
        ("session 9b1f3a526c2d4e8fa0b73d5e7f9a1c24 ended", "9b1f3a52"),
        ("header b'X-Caller: Alice Smith\\x01' refused", "Alice"),
        ('datagram b"INVITE Bob" dropped', "Bob"),
        ("cut short b'Call-ID: abcdef\nnext line", "abcdef"),
    ],
)
def test_scrub_removes_numbers_uris_and_addresses(text: str, gone: str) -> None:
    scrubbed = scrub(text)
    assert gone not in scrubbed
    # the words around it survive
    assert scrubbed.split()[0] == text.split()[0]
    assert scrubbed.split()[-1] == text.split()[-1]


@pytest.mark.parametrize(
    "text",
    [
        "3 records",
        "flushed 1000 rows in 12 ms",
        "port 5060 busy",
        "retry in 2.5 s",
        "version 1.2.3",
        "listener radius",
        "12:30 maintenance",
        "deadbeef cafe",
        'File "/work/main/.venv/lib/python3.11/site-packages/aiohttp/web_protocol.py", line 446',
        "object at 0x7f3a2b1c4d50",
        "web'quoted' text",
        "",
    ],
)
def test_scrub_keeps_short_numbers_and_plain_text(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "since 2024-05-01T12:00:00Z",
        "since 2024-05-01T12:00:00.123456+00:00",
        "partition cdrs_2024_05_01 of 2024-05-01",
        "oldest 2024-05-01 12:00:00",
    ],
)
def test_scrub_keeps_iso_timestamps(text: str) -> None:
    assert scrub(text) == text


# -- the configured pipeline ------------------------------------------------------------------


def test_stdlib_logger_is_scrubbed(json_stream: io.StringIO) -> None:
    logging.getLogger("asyncpg").warning(f"conn to {ADDRESS} for {NUMBER}")
    logging.getLogger("aiohttp.access").warning("%s called %s via %s", ADDRESS6, NUMBER, URI)
    (first, second) = lines_of(json_stream)
    assert first["logger"] == "asyncpg"
    assert first["level"] == "warning"
    assert first["event"].startswith("conn to ")
    assert second["logger"] == "aiohttp.access"
    assert_nothing_identifying(json_stream.getvalue())


def test_stdlib_extra_fields_are_filtered(json_stream: io.StringIO) -> None:
    logging.getLogger("asyncio").warning(
        "slow", extra={"calling": NUMBER, "count": 4, "source": "sbc-1"}
    )
    (line,) = lines_of(json_stream)
    assert "calling" not in line
    assert line["count"] == 4
    assert line["source"] == "sbc-1"
    assert_nothing_identifying(json_stream.getvalue())


def test_structlog_fields_are_allow_listed_and_scrubbed(json_stream: io.StringIO) -> None:
    log = get_logger("collector.test")
    log.info(
        "stored",
        source="sbc-fra-1",
        count=3,
        reason=f"retransmit from {ADDRESS}",
        called=NUMBER,
        secret="hunter2-hunter2",
        packet=b"\x01\x02",
        peer=(ADDRESS, 1813),
    )
    (line,) = lines_of(json_stream)
    assert line["event"] == "stored"
    assert line["source"] == "sbc-fra-1"
    assert line["count"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "collector.test"
    assert "timestamp" in line
    assert ADDRESS not in line["reason"] and line["reason"].startswith("retransmit from")
    for dropped in ("called", "secret", "packet", "peer"):
        assert dropped not in line
    assert set(line) <= ALLOWED_FIELDS
    assert "hunter2" not in json_stream.getvalue()
    assert_nothing_identifying(json_stream.getvalue())


def test_non_string_allowed_values_are_scrubbed_as_text(json_stream: io.StringIO) -> None:
    get_logger("collector.test").warning(
        "odd", error=ValueError(f"no route to {NUMBER}"), state=[ADDRESS, ADDRESS6]
    )
    (line,) = lines_of(json_stream)
    assert "no route to" in line["error"]
    assert_nothing_identifying(json_stream.getvalue())


#: free text a call site may one day pass as `error` (a library's message, str(exc)):
#: what it must never carry to the output, and the words that must survive around it
ERROR_TEXTS = (
    (f"no route to {NUMBER} via {URI}", (NUMBER_DIGITS, "alice@", "sip:"), "no route to"),
    (
        f'connection to server at "{ADDRESS}", port 5432 failed',
        (ADDRESS,),
        "port 5432 failed",
    ),
    (
        f"INVITE <sip:{NUMBER}@{ADDRESS}:5060;user=phone> refused",
        (NUMBER_DIGITS, ADDRESS, "sip:"),
        "refused",
    ),
    (f"peer [{ADDRESS6}]:5060 reset", (ADDRESS6, "2001:db8"), "reset"),
    ("tel:+49-30-1234-5678 busy", ("tel:", "1234-5678"), "busy"),
    ("dialled 030 1234 5678 from ::ffff:192.0.2.77", ("1234 5678", ADDRESS), "dialled"),
)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_free_text_error_field_never_carries_a_number_an_address_or_a_uri(
    restore_logging: None, fmt: str
) -> None:
    """`error` is allowed on every line and holds free text: it is scrubbed like any
    other string, whether a structlog call, a rate-limited warning (as the writer logs
    database errors) or a stdlib logger's `extra` carries it."""
    stream = io.StringIO()
    configure_logging("info", fmt, stream)
    log = get_logger("collector.sink.writer")
    limited = RateLimitedLog(log)
    for index, (text, _gone, _kept) in enumerate(ERROR_TEXTS):
        log.error("spool replay stopped", error=text)
        limited.warning(f"db_{index}", "database unavailable", error=text)
        logging.getLogger("asyncpg").warning("connection lost", extra={"error": text})
    output = stream.getvalue()
    assert len(output.splitlines()) == 3 * len(ERROR_TEXTS)
    for text, gone, kept in ERROR_TEXTS:
        for needle in gone:
            assert needle not in output, (text, needle)
        assert output.count(kept) == 3, kept  # still says what went wrong
    assert_nothing_identifying(output)
    if fmt == "json":
        assert all("error" in line for line in lines_of(stream))


def _fail_with_number() -> None:
    hidden_word = "Sup3rSecretLocal"
    raise ValueError(f"cannot route {NUMBER} via {URI} at {ADDRESS} ({hidden_word[:2]})")


def test_structlog_exception_is_scrubbed_and_has_no_locals(json_stream: io.StringIO) -> None:
    try:
        _fail_with_number()
    except ValueError:
        get_logger("collector.test").exception("route failed", source="sbc-1")
    (line,) = lines_of(json_stream)
    assert line["level"] == "error"
    assert "ValueError: cannot route" in line["exception"]
    assert "_fail_with_number" in line["exception"]  # a plain traceback ...
    assert "Sup3rSecretLocal" not in json_stream.getvalue()  # ... without locals
    assert_nothing_identifying(json_stream.getvalue())


def test_stdlib_exception_is_scrubbed(json_stream: io.StringIO) -> None:
    try:
        _fail_with_number()
    except ValueError:
        logging.getLogger("asyncpg.pool").exception("connection to %s lost", ADDRESS)
    (line,) = lines_of(json_stream)
    assert "ValueError: cannot route" in line["exception"]
    assert "Sup3rSecretLocal" not in json_stream.getvalue()
    assert_nothing_identifying(json_stream.getvalue())


def test_level_filters(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    get_logger("collector.test").info("quiet")
    logging.getLogger("asyncpg").info("quiet too")
    get_logger("collector.test").warning("loud")
    assert [line["event"] for line in lines_of(stream)] == ["loud"]


def test_console_format_is_scrubbed_too(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)
    get_logger("collector.test").info("stored", source=f"peer {ADDRESS}", called=NUMBER)
    logging.getLogger("asyncpg").warning("conn to %s for %s", ADDRESS, NUMBER)
    try:
        _fail_with_number()
    except ValueError:
        get_logger("collector.test").exception("route failed")
    text = stream.getvalue()
    assert "stored" in text and "route failed" in text
    assert_nothing_identifying(text)


def test_warnings_are_captured_and_scrubbed(json_stream: io.StringIO) -> None:
    # configure_logging routes warnings to logging; pytest's own warning capture
    # replaced that hook for the test body, so route them again
    logging.captureWarnings(True)
    warnings.warn(f"deprecated call for {NUMBER}", UserWarning, stacklevel=1)
    text = json_stream.getvalue()
    assert "deprecated call" in text
    assert_nothing_identifying(text)


def test_an_uncaught_exception_is_logged_scrubbed(restore_logging: None) -> None:
    program = (
        "from collector.logs import configure_logging\n"
        "configure_logging('info', 'json')\n"
        f"raise KeyError('a84b4c76e66710@pc33.atlanta.com calling {NUMBER}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    (line,) = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["event"] == "uncaught exception"
    assert line["level"] == "critical"
    assert "KeyError" in line["exception"]
    for needle in ("a84b4c76e66710", "atlanta", NUMBER_DIGITS):
        assert needle not in result.stderr, needle


# -- every field the code logs is allowed, and only counts under a count's name ------------


def test_count_fields_keep_counts_and_refuse_anything_else(json_stream: io.StringIO) -> None:
    """The counts the daemon logs (answered and not_answered dialogs at stop, stale calls,
    erasure tags, open connections) come out as sent; a string under a count's name (a
    number passed by mistake) never does."""
    log = get_logger("collector.test")
    log.info("counts", answered=3, not_answered=2, calls=17, tags=4, open=1, restarts=0)
    log.info("mistake", calls=NUMBER, tags=NUMBER_DIGITS, open=[ADDRESS], answered=True)
    counted, mistaken = lines_of(json_stream)
    assert {key: counted[key] for key in ("answered", "not_answered", "calls", "tags", "open")} == {
        "answered": 3,
        "not_answered": 2,
        "calls": 17,
        "tags": 4,
        "open": 1,
    }
    assert counted["restarts"] == 0
    for key in ("calls", "tags", "open", "answered"):
        assert mistaken[key] == NOT_A_COUNT
    assert_nothing_identifying(json_stream.getvalue())


#: what a call on a logger is named when it writes a line
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg", "log"}
)
#: functions that return a logger (structlog's, ours, the stdlib's), and methods of a
#: logger that return one bound to more context
LOGGER_FACTORIES = frozenset({"get_logger", "getLogger"})
LOGGER_BINDERS = frozenset({"bind", "new", "try_unbind", "unbind"})
#: keywords a logger takes for itself: no field of the line (exc_info becomes `exception`)
LOGGER_KEYWORDS = frozenset({"exc_info", "stack_info", "stacklevel"})


@dataclass(frozen=True)
class LoggedField:
    """A field a log call in the source passes, where it does (`**` when it cannot be told)."""

    path: str
    line: int
    field: str


class _LoggerNames:
    """The names and attributes a module binds to loggers and to RateLimitedLogs."""

    def __init__(self) -> None:
        self.loggers: set[str] = {"logging"}  # the module's own functions log on the root logger
        self.logger_attributes: set[str] = set()
        self.limited: set[str] = set()
        self.limited_attributes: set[str] = set()

    def is_logger(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.loggers
        if isinstance(node, ast.Attribute):
            return node.attr in self.logger_attributes
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in LOGGER_FACTORIES:
                return True
            return (
                isinstance(func, ast.Attribute)
                and func.attr in LOGGER_BINDERS
                and self.is_logger(func.value)
            )
        return False

    def is_limited(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.limited
        if isinstance(node, ast.Attribute):
            return node.attr in self.limited_attributes
        if isinstance(node, ast.Call):
            func = node.func
            return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) == (
                RateLimitedLog.__name__
            )
        return False

    def learn(self, tree: ast.AST) -> None:
        """Collect every name or attribute assigned a logger (to a fixed point, for chains
        of `bind`)."""
        while True:
            before = self._sizes()
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets, value = [node.target], node.value
                else:
                    continue
                if self.is_logger(value):
                    names, attributes = self.loggers, self.logger_attributes
                elif self.is_limited(value):
                    names, attributes = self.limited, self.limited_attributes
                else:
                    continue
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                    elif isinstance(target, ast.Attribute):
                        attributes.add(target.attr)
            if self._sizes() == before:
                return

    def _sizes(self) -> tuple[int, ...]:
        return tuple(
            len(names)
            for names in (
                self.loggers,
                self.logger_attributes,
                self.limited,
                self.limited_attributes,
            )
        )


def logged_fields(source: str, path: str) -> tuple[list[LoggedField], list[LoggedField]]:
    """Every field passed to a log call in `source`, and the calls that could not be read.

    A log call is one of LOG_METHODS on a structlog or stdlib logger (one from
    `get_logger`/`getLogger`, bound with `bind`, or a name or attribute assigned
    one) or on a RateLimitedLog (whose keywords after the key and the event are
    the fields); the keywords given to `bind` or `bind_contextvars` are fields
    of every line after. A stdlib logger's `extra=` dict gives its keys. A `**splat`
    or an `extra=` that is not a dict of constant keys is reported as the field
    `**`: it cannot be checked, so it is not allowed. A log method called on
    something with "log" in its name that is neither is unreadable.
    """
    tree = ast.parse(source, path)
    names = _LoggerNames()
    names.learn(tree)
    fields: list[LoggedField] = []
    unreadable: list[LoggedField] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "bind_contextvars":
            pass  # structlog.contextvars: its keywords join every later line
        elif isinstance(func, ast.Attribute) and func.attr == "bind_contextvars":
            pass
        elif isinstance(func, ast.Attribute) and func.attr in LOGGER_BINDERS:
            if not names.is_logger(func.value):
                continue  # a socket's bind, a partial's ...
        elif isinstance(func, ast.Attribute) and func.attr in LOG_METHODS:
            receiver = func.value
            if not (names.is_logger(receiver) or names.is_limited(receiver)):
                if "log" in ast.unparse(receiver).lower():
                    unreadable.append(LoggedField(path, node.lineno, ast.unparse(func)))
                continue
        else:
            continue
        for keyword in node.keywords:
            if keyword.arg is None:
                fields.append(LoggedField(path, node.lineno, "**"))
            elif keyword.arg == "extra":
                extra = keyword.value
                keys = [
                    key.value
                    for key in (extra.keys if isinstance(extra, ast.Dict) else [])
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)
                ]
                if isinstance(extra, ast.Dict) and len(keys) == len(extra.keys):
                    fields += [LoggedField(path, node.lineno, key) for key in keys]
                else:
                    fields.append(LoggedField(path, node.lineno, "**"))
            elif keyword.arg not in LOGGER_KEYWORDS:
                fields.append(LoggedField(path, node.lineno, keyword.arg))
    return fields, unreadable


SAMPLE_MODULE = """
import logging
import structlog
from collector.logs import RateLimitedLog, get_logger

log = get_logger(__name__)
stdlib = logging.getLogger("x")

class Receiver:
    def __init__(self):
        self._limited = RateLimitedLog(log)
        self.bound = log.bind(listener="radius")

    def handle(self, fields):
        log.info("fine", source="s", count=1)
        log.warning("one", called="+4930")
        self.bound.error("two", peer="192.0.2.1")
        self._limited.warning("key", "three", uri="sip:a@b")
        self.bound.bind(stage="x").info("four", caller_number=1)
        structlog.get_logger().debug("five", remote=1)
        stdlib.warning("six %s", 1, extra={"address": "x"}, exc_info=True)
        stdlib.warning("seven", extra=fields)
        log.info("eight", **fields)
        self.logger_of_mine.info("nine", contact=1)
        warnings.warn("not a logger", stacklevel=2)
        self.sock.bind(("127.0.0.1", 0))
        structlog.contextvars.bind_contextvars(calling="+4930")
"""


def test_the_log_call_reader_finds_fields_on_every_kind_of_logger() -> None:
    """The reader behind the allow-list check sees through module loggers, bound loggers,
    RateLimitedLog, stdlib `extra=` and splats, and says which calls it cannot read."""
    fields, unreadable = logged_fields(SAMPLE_MODULE, "sample.py")
    found = {field.field for field in fields}
    assert found == {
        "listener",
        "source",
        "count",
        "called",
        "peer",
        "uri",
        "stage",
        "caller_number",
        "remote",
        "address",
        "calling",
        "**",
    }
    not_allowed = {field.field for field in fields if field.field not in ALLOWED_FIELDS}
    assert not_allowed == found - {"listener", "source", "count", "stage"}
    assert [field.field for field in unreadable] == ["self.logger_of_mine.info"]


def test_every_field_the_code_logs_is_allowed() -> None:
    """A field a log call passes that the allow-list lacks would vanish from its line
    without a word: it must be added to the list (if it is safe) or renamed."""
    package = Path(collector.__file__).parent
    fields: list[LoggedField] = []
    unreadable: list[LoggedField] = []
    for path in sorted(package.rglob("*.py")):
        found, unclear = logged_fields(path.read_text(encoding="utf-8"), str(path))
        fields += found
        unreadable += unclear
    assert unreadable == []
    # the reader does find the code's log calls (among them the counts logged at stop)
    assert {"listener", "source", "reason", "answered", "not_answered", "calls", "tags"} <= {
        field.field for field in fields
    }
    missing = [field for field in fields if field.field not in ALLOWED_FIELDS]
    assert missing == []


#: words in a field name that say it holds a phone number, an address, a URI or a
#: person's identity: no such field is allowed, whatever the scrubbing would do to it
IDENTIFYING_WORDS = (
    "number",
    "called",
    "calling",
    "caller",
    "callee",
    "ani",
    "dnis",
    "cli",
    "msisdn",
    "uri",
    "url",
    "address",
    "addr",
    "ip",
    "host",
    "peer",
    "remote",
    "contact",
    "user",
    "from",
    "to",
    "body",
    "packet",
    "payload",
    "header",
    "secret",
    "password",
)


def test_the_allow_list_has_no_field_that_could_identify_a_person() -> None:
    for field in ALLOWED_FIELDS:
        words = field.split("_")
        assert not any(word in IDENTIFYING_WORDS for word in words), field
    assert not COUNT_FIELDS & LABEL_FIELDS


# -- rate limiting ------------------------------------------------------------------------------


def test_rate_limited_log_logs_once_per_interval_and_counts_the_rest(
    json_stream: io.StringIO,
) -> None:
    """One line per key and interval, and the next line says how many were held back.
    The limiter's clock is the test's, so a slow machine cannot stretch an interval."""
    clock = [1000.0]
    limited = RateLimitedLog(
        get_logger("collector.receiver"), interval_s=8.0, clock=lambda: clock[0]
    )
    for _ in range(5):
        limited.warning("malformed", "dropped a malformed packet", source="sbc-1")
    limited.warning("unknown_client", "packet from an unknown client")
    lines = lines_of(json_stream)
    assert [line["event"] for line in lines] == [
        "dropped a malformed packet",
        "packet from an unknown client",
    ]
    assert lines[0]["suppressed"] == 0
    assert lines[0]["key"] == "malformed"
    assert lines[0]["source"] == "sbc-1"

    clock[0] += 7.75  # still within the interval: held back
    limited.warning("malformed", "dropped a malformed packet", source="sbc-1")
    assert len(lines_of(json_stream)) == 2
    clock[0] += 0.25  # the interval has passed: logged, with what was held back
    limited.warning("malformed", "dropped a malformed packet", source="sbc-1")
    limited.warning("malformed", "dropped a malformed packet", source="sbc-1")
    limited.info("unknown_client", "packet from an unknown client")
    lines = lines_of(json_stream)
    assert [(line["key"], line["level"], line["suppressed"]) for line in lines[2:]] == [
        ("malformed", "warning", 5),  # four in the first interval, one at its end
        ("unknown_client", "info", 0),
    ]


# -- the real daemon: what a library logs of bad input ----------------------------------------

LEG_UUID = "5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7c11"

#: HTTP requests the JSON CDR port's parser refuses; aiohttp logs each with the
#: parser's message, which quotes the offending bytes of the request
MALFORMED_REQUESTS = (
    # a bad method: the whole request line, query string and all
    f"P\x00ST /cdr?uuid={LEG_UUID}&caller={NUMBER} HTTP/1.1\r\n\r\n".encode(),
    # a bad header value: the whole header
    f"POST /cdr?uuid={LEG_UUID} HTTP/1.1\r\nHost: x\r\nX-Caller: {URI}\x01\r\n\r\n".encode(),
    f"POST /cdr HTTP/1.1\r\nHost: x\r\nX-Leg: {LEG_UUID}\x01\r\n\r\n".encode(),
    b"POST /cdr HTTP/1.1\r\nHost: x\r\nContent-Length: alice\r\n\r\n",
)


async def test_the_daemon_logs_no_request_line_or_header_of_a_bad_request(
    tmp_path: Path, dsn: str
) -> None:
    config = json_config(tmp_path / "c", dsn)
    config.log_level = "debug"
    with running_collector(config) as collector:
        assert config.json_port is not None
        for request in MALFORMED_REQUESTS:
            reader, writer = await asyncio.open_connection("127.0.0.1", config.json_port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
            writer.close()
        deadline = time.monotonic() + 10
        while collector.metric(
            "cdr_collector_packets_total", listener="json", outcome="malformed"
        ) < len(MALFORMED_REQUESTS):
            assert time.monotonic() < deadline, collector.log_text()
            await asyncio.sleep(0.05)
    text = collector.log_text()
    assert_nothing_identifying(text)
    # counted and logged once per kind of error, never with aiohttp's traceback
    assert "Traceback" not in text and "Error handling request" not in text
    for needle in (LEG_UUID[:8], LEG_UUID[-12:], "uuid=", "alice", "X-Caller"):
        assert needle not in text, needle
    # still useful to the operator: which parser error it was
    assert "BadHttpMethod" in text and "BadHttpMessage" in text
