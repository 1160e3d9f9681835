"""JSON CDR ingest over HTTP: `POST /cdr` as FreeSWITCH `mod_json_cdr` sends it.

mod_json_cdr posts one document per call leg when the leg is reported (the
B-leg too, unless `log-b-leg = false`), through libcurl, to the configured
URL with `?uuid=<leg uuid>` appended. The document's `variables` block holds
the channel variables (uuid, start/answer/end as `*_epoch` seconds and
`*_uepoch` microseconds, billsec/billmsec/billusec, hangup_cause and
hangup_cause_q850, sip_term_status, ...) as strings, each URL-encoded with
the default `encode-values = true`; beside it `callflow` (one caller profile
and its `times` in microseconds per transfer: an array, newest first, or in
older versions one object under a repeated key) and `channel_data`.

The body is the document itself (`encode = false`, `application/json`), or
the form field `cdr=` holding it URL-encoded (`encode = true`,
`application/x-www-form-urlencoded`) or base64 (`encode = base64`,
`application/x-www-form-base64-encoded`). With `disable-100-continue` the
module's own headers are dropped and curl labels every body
form-urlencoded, so the body's shape, not its label, decides.

The endpoint answers 200 only once the record is durable (committed, or
fsync'd to the spool); 503 with Retry-After when it is not, so that the
switch keeps the CDR and posts it again (the record key makes the repeat one
row); anything but 2xx makes mod_json_cdr retry and then write the CDR to
its err-log-dir. It only serves the configured networks: a connection from
anywhere else is closed as it is accepted, before a byte is read (and a
request on a connection whose address a reload removed gets 403). It checks
HTTP basic credentials when configured (401), refuses bodies over
`max_body_bytes` (413) and documents it cannot read (400, with a one-line
reason naming the field). A request with `Expect: 100-continue` that would
be refused gets that answer before its body is sent. A connection has
`header_timeout_ms` to deliver a request's headers and then
`body_timeout_ms` for its body (408): aiohttp itself would wait for ever.
Paused (the service is stopping), it reads no new request: the listener
stops accepting (connections wait in the listen backlog, which socket
activation keeps for the next process), an idle keep-alive connection is
closed without reading what may wait on it (an HTTP client posts again on
a new connection), and a request already being read or answered is
finished, answered once its record is durable, with `Connection: close`.
HTTP that aiohttp cannot parse is counted and logged once per interval,
never with a traceback. It never echoes, logs or counts a value taken from
a document: no number, address or URI reaches a response, a log line or a
label.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote, unquote_to_bytes

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from collector.logs import RateLimitedLog, get_logger
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.intake import Intake
from collector.pipeline.numbers import Unusable, ascii_digits, read_dial, strip_uri
from collector.receivers.addresses import ClientTable, adopt
from collector.receivers.json_config import JsonConfig
from collector.settings import parse_host_port
from collector.telemetry import PacketCounts, Telemetry
from collector.vendors import freeswitch as freeswitch_vendor

log = get_logger(__name__)

#: seconds a sender is asked to wait before posting again
RETRY_AFTER_S = 5
#: the realm named in WWW-Authenticate
AUTH_REALM = "cdr-collector"
#: longest uuid accepted (FreeSWITCH's are 36 characters)
MAX_UUID_CHARS = 128
#: epoch seconds accepted for a time: after 1970, before 2106 (32-bit unsigned)
MAX_EPOCH_S = 2**32
#: a callflow's profile_index has a digit or two; a longer one counts as absent
#: (int() refuses more than 4300 digits, and sorting needs no more than this)
_MAX_PROFILE_INDEX_DIGITS = 9
_READ_CHUNK = 65536

# Where each party's number may be, best first; the first value that looks like
# a number wins (FreeSWITCH often holds a user name where a number is expected).
_CALLING_VARIABLES = ("caller_id_number", "effective_caller_id_number", "ani")
_CALLED_VARIABLES = ("destination_number",)
_CALLED_FALLBACK_VARIABLES = ("callee_id_number", "sip_req_user", "sip_to_user")
#: variables FreeSWITCH sets on a B-leg to the uuid of the leg that originated it
_ORIGINATOR_VARIABLES = ("originating_leg_uuid", "originator")


class JsonCdrError(ValueError):
    """A document that cannot become a record; `reason` names the field, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- reading a document ----------------------------------------------------

_FORM_URLENCODED = "application/x-www-form-urlencoded"
_FORM_BASE64 = "application/x-www-form-base64-encoded"
#: a quote that ends a JSON string is followed by one of these (or the end)
_STRING_END = re.compile(r"\s*(?:[,:}\]]|\Z)")
_QUOTE_OR_BACKSLASH = re.compile(r'["\\]')
_JSON_ESCAPES = frozenset('"\\/bfnrt')
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


def decode_body(body: bytes, content_type: str) -> Any:
    """The JSON value a POST body carries, in any of mod_json_cdr's encodings.

    The body's shape decides, not the Content-Type: with
    `disable-100-continue` mod_json_cdr replaces its header list, so curl
    labels every body `application/x-www-form-urlencoded`. A body that
    starts with `{` is the document itself (`encode = false`); otherwise the
    `cdr` form field holds it, URL-encoded (`encode = true`: starts with
    `%7B`) or base64 (`encode = base64`). Raises JsonCdrError.
    """
    text = body.strip()
    if text[:1] in (b"{", b"["):
        return _load_json(text)
    value = _cdr_field(text)
    if value is None:
        if content_type in (_FORM_URLENCODED, _FORM_BASE64):
            raise JsonCdrError("no cdr form field")
        return _load_json(text)
    if value[:1] == b"{" or value[:3].upper() == b"%7B":
        return _load_form_json(value)
    if b"%" in value:  # base64 that was form-encoded on its way
        value = unquote_to_bytes(value)
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise JsonCdrError("cdr is not valid base64") from None
    return _load_json(decoded)


def _cdr_field(text: bytes) -> bytes | None:
    """The raw (still encoded) value of the `cdr` form field, or None."""
    for part in text.split(b"&"):
        name, sep, value = part.partition(b"=")
        if sep and unquote_to_bytes(name.replace(b"+", b" ")).strip() == b"cdr":
            return value
    return None


def _load_form_json(value: bytes) -> Any:
    """The document of an `encode = true` body.

    switch_url_encode leaves a `%XX` that is already in its input alone, and
    with `encode-values` (the default) every variable value is itself
    URL-encoded: once the form is decoded, a value can hold a bare `"`, `\\`
    or line break (a display name, an SDP). Such a quote is one that does not
    end the string, and is escaped again before the JSON is read.
    """
    text = _utf8(unquote_to_bytes(value.replace(b"+", b" ")))
    try:
        return _parse(text)
    except (ValueError, RecursionError):
        pass
    try:
        return _parse(_escape_stray_quotes(text))
    except (ValueError, RecursionError):
        raise JsonCdrError("the body is not valid JSON") from None


def _escape_stray_quotes(text: str) -> str:
    """`text` with each quote and backslash inside a string that JSON cannot take escaped."""
    pieces: list[str] = []
    copied = resume = 0
    inside = False
    for match in _QUOTE_OR_BACKSLASH.finditer(text):
        at = match.start()
        if at < resume:  # the character after a valid escape
            continue
        resume = at + 1
        if not inside:
            inside = text[at] == '"'
            continue
        if text[at] == "\\":
            after = text[at + 1 : at + 2]
            if (after and after in _JSON_ESCAPES) or (
                after == "u" and _HEX4.fullmatch(text, at + 2, at + 6)
            ):
                resume = at + 2
                continue
            pieces += (text[copied:at], "\\\\")
        elif _STRING_END.match(text, at + 1):
            inside = False
            continue
        else:
            pieces += (text[copied:at], '\\"')
        copied = at + 1
    pieces.append(text[copied:])
    return "".join(pieces)


def _utf8(data: bytes) -> str:
    # a display name or user agent in Latin-1 must not cost the call its record
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a `callflow` key repeated (older mod_json_cdr) keeps every value."""
    result = dict(pairs)
    if len(result) < len(pairs) and "callflow" in result:
        flows = [value for key, value in pairs if key == "callflow"]
        if len(flows) > 1:
            result["callflow"] = flows
    return result


def _parse(text: str) -> Any:
    # strict=False: a control character inside a string (a decoded line break) is kept
    return json.loads(text, strict=False, object_pairs_hook=_object)


def _load_json(text: bytes) -> Any:
    try:
        return _parse(_utf8(text))
    except (ValueError, RecursionError):
        raise JsonCdrError("the body is not valid JSON") from None


def _text(variables: Mapping[str, Any], name: str) -> str | None:
    """A variable as text (URL-decoded), None when absent or empty."""
    value = variables.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        if "%" in value:
            value = unquote(value)
        value = value.strip()
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise JsonCdrError(f"variables.{name} has the wrong type")


def _whole(text: str | None, field: str) -> int | None:
    """A non-negative integer from its text; `field` names it in the error."""
    if text is None:
        return None
    if not text.isdecimal() or len(text) > 20:
        raise JsonCdrError(f"{field} is not a whole number")
    return int(text)


def _integer(variables: Mapping[str, Any], name: str) -> int | None:
    """A variable as a non-negative integer, None when absent or empty."""
    return _whole(_text(variables, name), f"variables.{name}")


def _micro_moment(micros: int, field: str) -> datetime:
    if micros >= MAX_EPOCH_S * 1_000_000:
        raise JsonCdrError(f"{field} is out of range")
    whole, rest = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(whole, UTC).replace(microsecond=rest)


def _moment(variables: Mapping[str, Any], base: str) -> tuple[datetime | None, str | None]:
    """A time from `<base>_uepoch` (microseconds) or `<base>_epoch` (seconds), and its text.

    Zero means "never happened" (an unanswered call has answer_epoch 0).
    """
    micros = _integer(variables, f"{base}_uepoch")
    if micros:
        return _micro_moment(micros, f"variables.{base}_uepoch"), str(micros)
    seconds = _integer(variables, f"{base}_epoch")
    if seconds:
        if seconds >= MAX_EPOCH_S:
            raise JsonCdrError(f"variables.{base}_epoch is out of range")
        return datetime.fromtimestamp(seconds, UTC), str(seconds)
    return None, None


def _flow_moment(times: Mapping[str, Any], name: str) -> tuple[datetime | None, str | None]:
    """A time from the callflow's `times` block (microseconds, "0" when it never happened)."""
    value = times.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, None
    micros = _whole(value.strip() or None, f"callflow.times.{name}")
    if not micros:
        return None, None
    return _micro_moment(micros, f"callflow.times.{name}"), str(micros)


def _as_number(value: str | None) -> str | None:
    """The number in a value ("+49 (0)30 …", "030/…", "sip:+4930…@host", "tel:…"), or None
    when it holds none (a user name, a route name, an opaque id).

    Read as the pipeline reads numbers (`numbers.read_dial`), so a value is
    passed on exactly when the redactor will take it for a number.
    """
    if not value:
        return None
    text = strip_uri(ascii_digits(value))
    dial = read_dial(text)
    if isinstance(dial, Unusable) or len(dial.digits) < 3:
        return None
    return text


def _first_number(variables: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        number = _as_number(_text(variables, name))
        if number:
            return number
    return None


@dataclass(frozen=True)
class _Flow:
    """One callflow entry: a caller profile and the times kept with it."""

    index: int | None
    profile: Mapping[str, Any]
    times: Mapping[str, Any]


def _callflows(document: Mapping[str, Any]) -> list[_Flow]:
    """The document's caller profiles, newest first.

    `callflow` is an array, newest first (current versions), or one object
    per profile under a repeated key (older versions; the JSON reader keeps them
    all). Ordered by profile_index where it is given.
    """
    callflow = document.get("callflow")
    entries = callflow if isinstance(callflow, list) else [callflow]
    flows: list[_Flow] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        profile = entry.get("caller_profile")
        if not isinstance(profile, dict):
            continue
        times = entry.get("times")
        index_text = entry.get("profile_index")
        index = (
            int(index_text)
            if isinstance(index_text, str)
            and index_text.isdecimal()
            and len(index_text) <= _MAX_PROFILE_INDEX_DIGITS
            else None
        )
        flows.append(_Flow(index, profile, times if isinstance(times, dict) else {}))
    if all(flow.index is not None for flow in flows):
        flows.sort(key=lambda flow: -(flow.index or 0))
    return flows


def _profile_text(profile: Mapping[str, Any], name: str) -> str | None:
    value = profile.get(name)
    if not isinstance(value, str):
        return None
    if "%" in value:
        value = unquote(value)
    return value.strip() or None


def _identifier(value: str | None) -> str | None:
    """A uuid as accepted for a session id or a correlation, else None."""
    if value is None or len(value) > MAX_UUID_CHARS or not value.isprintable():
        return None
    return value


def _a_leg_uuid(variables: Mapping[str, Any], flows: list[_Flow]) -> str | None:
    """The uuid of the leg that originated this one, or None for an A-leg.

    mod_json_cdr counts a leg as a B-leg when its caller profile has an
    originator; FreeSWITCH also sets `originator` and `originating_leg_uuid`
    on it.
    """
    for name in _ORIGINATOR_VARIABLES:
        value = variables.get(name)
        if isinstance(value, str) and value.strip():
            return _identifier(unquote(value).strip())
    for flow in flows:
        originator = flow.profile.get("originator")
        if not isinstance(originator, dict):
            continue
        profiles = originator.get("originator_caller_profiles")
        for profile in profiles if isinstance(profiles, list) else [profiles]:
            if isinstance(profile, dict):
                uuid = _identifier(_profile_text(profile, "uuid"))
                if uuid:
                    return uuid
    return None


#: variables that say whether a leg was answered, even when they say "0" (it was not)
_ANSWER_VARIABLES = (
    "answer_epoch",
    "answer_uepoch",
    "billsec",
    "billmsec",
    "billusec",
)


def _mentions_answer(variables: Mapping[str, Any], times: Mapping[str, Any]) -> bool:
    """Whether the document says anything of an answer: an answer time or billable
    time, zero included, among the variables or the callflow's times."""
    return any(variables.get(name) not in (None, "") for name in _ANSWER_VARIABLES) or (
        times.get("answered_time") not in (None, "")
    )


def json_record(document: Any, source: str, received_at: datetime) -> CallRecord:
    """The CallRecord of one mod_json_cdr document; raises JsonCdrError.

    session_id is the leg's uuid and setup_stamp its start time exactly as
    sent (start_uepoch, else start_epoch, else the callflow's created_time),
    so a repost is one row while a reused uuid is another. The billable
    duration is billmsec, else billusec, else billsec (whole seconds), else
    answer to end. The hangup cause, and the SIP code and answer it implies,
    are read as `collector.vendors.freeswitch` says (the same rules as for
    mod_radius_cdr): the name decides over hangup_cause_q850, and the
    document's own sip_term_status over the cause's SIP code. A document
    that shows no answer time and no billable time at all leaves `answered`
    to the cause. Without `variables`, the caller profile and its
    `times` stand in. Both legs of a bridged call carry the A-leg's uuid as
    their correlation (stored only as a keyed hash).
    """
    if not isinstance(document, dict):
        raise JsonCdrError("the document is not a JSON object")
    flows = _callflows(document)
    variables = document.get("variables")
    if variables is None and flows:
        variables = {}
    if not isinstance(variables, dict):
        raise JsonCdrError("variables is missing or not an object")
    current = flows[0] if flows else _Flow(None, {}, {})
    uuid = variables.get("uuid")
    if uuid is None:
        uuid = current.profile.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise JsonCdrError("variables.uuid is missing")
    uuid = _identifier(unquote(uuid).strip() if "%" in uuid else uuid.strip())
    if uuid is None:
        raise JsonCdrError("variables.uuid is not a valid identifier")

    times = current.times
    start, setup_stamp = _moment(variables, "start")
    if start is None:
        start, setup_stamp = _flow_moment(times, "created_time")
    answer, _ = _moment(variables, "answer")
    if answer is None:
        answer, _ = _flow_moment(times, "answered_time")
    end, _ = _moment(variables, "end")
    if end is None:
        end, _ = _flow_moment(times, "hangup_time")

    billmsec = _integer(variables, "billmsec")
    billusec = _integer(variables, "billusec")
    billsec = _integer(variables, "billsec")
    duration_ms: int | None
    if billmsec is not None:
        duration_ms = billmsec
    elif billusec is not None:
        duration_ms = billusec // 1000
    elif billsec is not None:
        duration_ms = billsec * 1000
    elif answer is not None and end is not None:
        duration_ms = max(0, round((end - answer).total_seconds() * 1000))
    else:
        duration_ms = None
    # whether the document shows an answer: None when it holds no answer time
    # (answer_epoch is "0" on an unanswered leg) and no billable time at all
    shown: bool | None = answer is not None or bool(duration_ms)
    if not shown and duration_ms is None and not _mentions_answer(variables, times):
        shown = None

    sip_code = _integer(variables, "sip_term_status")
    if sip_code is not None and not 100 <= sip_code <= 699:
        sip_code = None
    # the cause and what it implies are FreeSWITCH's, the same for every transport
    cause = freeswitch_vendor.cause_of_name(
        _text(variables, "hangup_cause"), _integer(variables, "hangup_cause_q850")
    )
    leg_end = freeswitch_vendor.leg_end(cause, shown, sip_code)
    answered = leg_end.answered
    if answered is False:
        duration_ms = 0

    # the number first dialled: the oldest profile, before any transfer
    original = flows[-1].profile if flows else {}
    # no number anywhere: the first value as sent, which the redactor refuses and counts
    calling = (
        _first_number(variables, _CALLING_VARIABLES)
        or _as_number(_profile_text(original, "caller_id_number"))
        or _as_number(_profile_text(original, "ani"))
        or _text(variables, _CALLING_VARIABLES[0])
        or _profile_text(original, "caller_id_number")
    )
    called = (
        _first_number(variables, _CALLED_VARIABLES)
        or _as_number(_profile_text(original, "destination_number"))
        or _first_number(variables, _CALLED_FALLBACK_VARIABLES)
        or _text(variables, _CALLED_VARIABLES[0])
        or _profile_text(original, "destination_number")
    )

    pdd_ms = _integer(variables, "progressmsec") or _integer(variables, "progress_mediamsec")
    if not pdd_ms and answered:
        pdd_ms = _integer(variables, "answermsec")
    if not pdd_ms and start is not None:
        for name in ("progress_time", "progress_media_time", "answered_time"):
            moment, _ = _flow_moment(times, name)
            if moment is not None:
                pdd_ms = max(0, round((moment - start).total_seconds() * 1000))
                break

    direction = _text(variables, "direction")
    channel_data = document.get("channel_data")
    if direction is None and isinstance(channel_data, dict):
        value = channel_data.get("direction")
        direction = value if isinstance(value, str) else None
    leg = direction if direction in ("inbound", "outbound") else ""

    return CallRecord(
        kind=RecordKind.STOP,
        source=source,
        protocol=Protocol.JSON,
        session_id=uuid,
        event_time=end or answer or start or received_at,
        leg=leg,
        setup_stamp=setup_stamp,
        account=_text(variables, "accountcode"),
        calling=calling,
        called=called,
        setup_time=start,
        connect_time=answer,
        disconnect_time=end,
        duration_ms=duration_ms,
        answered=answered,
        disconnect_cause=leg_end.disconnect_cause,
        sip_code=leg_end.sip_code,
        pdd_ms=pdd_ms or None,
        times_derived=end is None,
        correlation=_a_leg_uuid(variables, flows) or uuid,
    )


# --- the HTTP endpoint -----------------------------------------------------


@dataclass(frozen=True)
class _AllowedNetwork:
    """One entry of `json.allowed`, as the address table wants its peers."""

    address: str


def _allowed_networks(allowed: tuple[str, ...]) -> ClientTable[_AllowedNetwork]:
    return ClientTable(_AllowedNetwork(value) for value in allowed)


def _credentials_match(header: str | None, credentials: tuple[tuple[str, str], ...]) -> bool:
    """True when an `Authorization: Basic` header names one of the configured users."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    found = False
    for known_user, known_password in credentials:
        # compare every entry in constant time, so timing tells nothing
        same = hmac.compare_digest(user, known_user.encode()) & hmac.compare_digest(
            password, known_password.encode()
        )
        found = found or same
    return found


class _LastResponse(web.Response):
    """`answer`, after which the connection closes at once.

    For a request refused before its body was sent: the server has nothing
    left to read, so it neither waits for the body nor keeps the connection.
    """

    def __init__(self, answer: web.Response, close_connection: Callable[[], None]) -> None:
        super().__init__(status=answer.status, body=answer.body, headers=answer.headers)
        self._close_connection = close_connection
        self.force_close()

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._close_connection()  # the transport still sends what it has buffered


class _Guard(asyncio.Protocol):
    """One JSON connection, in front of the aiohttp protocol that serves it.

    At `connection_made` a peer outside `allowed` is aborted before a byte
    is read (so neither a slow nor a malformed request from it costs a parse
    or a log line); an allowed one gets aiohttp's protocol, to which every
    event is passed on. Until a request's headers are complete (from the
    connection's opening, or the end of its previous request) a timer runs:
    past `header_timeout_ms` the connection is closed, counted malformed
    when it had sent part of a request. Between requests, with nothing of
    the next one read, the connection is `idle`: that one a pause closes.
    """

    def __init__(self, receiver: JsonReceiver, serve: Callable[[], asyncio.Protocol]) -> None:
        self.receiver = receiver
        self.serve = serve
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.partial = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        receiver = self.receiver
        stream = cast(asyncio.Transport, transport)
        if receiver.paused:
            # accepted just before the listener closed: left unread, as the backlog is
            stream.close()
            return
        peer = stream.get_extra_info("peername")
        if not peer or receiver.networks.find(peer[0]) is None:
            receiver.count_forbidden()
            stream.abort()
            return
        self.transport = stream
        receiver.guards[stream] = self
        self.inner = inner = self.serve()
        inner.connection_made(stream)
        self.wait_for_headers()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            if self.timer is not None:
                self.partial = True
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_waiting()
        if self.transport is not None:
            self.receiver.guards.pop(self.transport, None)
        if self.inner is not None:
            self.inner.connection_lost(exc)
            self.inner = None

    @property
    def idle(self) -> bool:
        """Waiting for a request of which nothing has been read yet."""
        return self.timer is not None and not self.partial

    def close(self) -> None:
        """Close the connection now, reading nothing more from it."""
        self.stop_waiting()
        if self.transport is not None:
            self.transport.close()

    def wait_for_headers(self) -> None:
        """Start the header timer (at the opening, and after each request)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.stop_waiting()
        self.partial = False
        delay = self.receiver.config.header_timeout_ms / 1000
        self.timer = asyncio.get_running_loop().call_later(delay, self._headers_too_slow)

    def stop_waiting(self) -> None:
        """A request's headers are in (or the connection is gone)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _headers_too_slow(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.receiver.count_headers_too_slow(self.partial)
            self.transport.abort()


class _GuardedSite(web.BaseSite):
    """The JSON listener: aiohttp's server behind a `_Guard` per connection."""

    def __init__(
        self,
        runner: web.BaseRunner,
        receiver: JsonReceiver,
        sock: socket.socket | None,
        host: str,
        port: int,
    ) -> None:
        super().__init__(runner)
        self._receiver = receiver
        self._sock = sock
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are left as they are."""
        if self._server is not None:
            self._server.close()

    async def start(self) -> None:
        await super().start()
        serve = self._runner.server
        assert serve is not None
        receiver = self._receiver
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(
                lambda: _Guard(receiver, serve), sock=self._sock, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                lambda: _Guard(receiver, serve),
                self._host,
                self._port,
                reuse_address=True,
                backlog=self._backlog,
            )


class _ServerLog:
    """Stands in for the logger aiohttp's server reports to.

    aiohttp reports a request it cannot parse (request line, header, chunk
    framing) with `logger.exception`, an ERROR and a traceback for every bad
    request a client sends. Here such client errors count malformed and log
    one line per interval naming the error class. Anything else it reports
    is a failure in this process: counted and logged the same way,
    rate-limited, as the other receivers log theirs.
    """

    def __init__(self, receiver: JsonReceiver) -> None:
        self.receiver = receiver

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        self._report(exc_info)

    def error(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        self._report(exc_info)

    def warning(self, msg: str, *args: Any, **_kwargs: Any) -> None:
        receiver = self.receiver  # its text may quote a request: logged without it
        receiver._limited.warning("json_server", "HTTP server warning", listener=receiver.listener)

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **_kwargs: Any) -> None:
        # aiohttp reports a first request that is not HTTP at all at debug level
        if isinstance(exc_info, HttpProcessingError):
            self.receiver.count_bad_http(exc_info)

    def info(self, msg: str, *args: Any, **_kwargs: Any) -> None:
        pass

    def _report(self, exc_info: Any) -> None:
        if not isinstance(exc_info, BaseException):  # None or True: the exception being handled
            exc_info = sys.exc_info()[1]
        if isinstance(exc_info, HttpProcessingError):
            self.receiver.count_bad_http(exc_info)
        else:
            self.receiver.count_internal(exc_info)


class JsonReceiver:
    """Serves `POST /cdr`, answering each CDR once it is durable."""

    #: the configuration section this receiver reloads from
    section = "json"

    def __init__(
        self,
        config: JsonConfig,
        intake: Intake,
        telemetry: Telemetry,
        listener: str = "json",
    ) -> None:
        self.config = config
        self.intake = intake
        self.telemetry = telemetry
        self.listener = listener
        self.counts = PacketCounts(telemetry, listener)
        self.networks = _allowed_networks(config.allowed)
        self.paused = False
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._site: _GuardedSite | None = None
        self._addresses: list[tuple[str, int]] = []
        self._limited = RateLimitedLog(log)
        #: the guard of each open connection, by transport (for the header timer)
        self.guards: dict[asyncio.BaseTransport, _Guard] = {}

    # --- lifecycle ---------------------------------------------------------
    def bind(self, inherited: list[socket.socket] | None = None) -> None:
        """Adopt a listening socket passed by systemd for `listen`, if there is one.

        Otherwise aiohttp creates it at start: a host name there is bound on
        every address it resolves to, as aiohttp does.
        """
        host, port = parse_host_port(self.config.listen)
        self._socket = adopt(inherited or (), socket.SOCK_STREAM, host, port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of the HTTP listener (the port the kernel chose included)."""
        return list(self._addresses)

    @property
    def port(self) -> int | None:
        """The bound port, once started."""
        return self._addresses[0][1] if self._addresses else None

    async def start(self) -> None:
        """Listen on `listen` (or the adopted socket) and serve POST /cdr."""
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self._header_timer]
        )
        app.router.add_post("/cdr", self._post, expect_handler=self._expect)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_ServerLog(self))
        await runner.setup()
        host, port = parse_host_port(self.config.listen)
        site = _GuardedSite(runner, self, self._socket, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or []:
            self._addresses.append(sock.getsockname()[:2])

    def pause(self) -> None:
        """Read no new request: stop accepting, close idle connections; requests being
        read or answered are finished (see the module docstring)."""
        self.paused = True
        if self._site is not None:
            self._site.stop_accepting()
        for guard in list(self.guards.values()):
            if guard.idle:
                guard.close()

    async def stop(self) -> None:
        """Close the listener and its connections. Idempotent; safe without start."""
        self.paused = True
        self._site = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def reload(self, config: JsonConfig) -> None:
        """Take new allowed networks, credentials, source name and body limit."""
        if config.listen != self.config.listen:
            log.warning("json.listen changed: takes effect at the next restart")
        self.networks = _allowed_networks(config.allowed)
        self.config = config

    # --- per connection ----------------------------------------------------
    def count_forbidden(self) -> None:
        """A connection or request from an address outside `allowed`."""
        self._count("unknown", "unknown_client")
        self._limited.warning(
            "json_forbidden", "CDR post from an address not allowed", listener=self.listener
        )

    def count_headers_too_slow(self, partial: bool) -> None:
        """A connection closed for not sending a request's headers in time."""
        if partial:
            self._count(self.config.source, "malformed")
            self._limited.warning(
                "json_slow_headers",
                "HTTP request headers not complete in time: connection closed",
                listener=self.listener,
            )
        else:
            self._limited.info("json_idle", "idle HTTP connection closed", listener=self.listener)

    def count_bad_http(self, exc: HttpProcessingError) -> None:
        """A request aiohttp could not parse (answered 400 by aiohttp): a line per kind
        of parser error and interval."""
        self._count(self.config.source, "malformed")
        error_class = type(exc).__name__  # one of aiohttp's few parser errors
        self._limited.warning(
            "json_bad_http:" + error_class,
            "malformed HTTP request refused",
            listener=self.listener,
            error_class=error_class,
        )

    def count_internal(self, exc: object) -> None:
        """A failure aiohttp caught in this process's handling of a request."""
        self._count("unknown", "malformed")
        self._limited.warning(
            "json_internal",
            "JSON request handling failed",
            listener=self.listener,
            error_class=type(exc).__name__ if isinstance(exc, BaseException) else None,
        )

    @web.middleware
    async def _header_timer(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Stops the connection's header timer while a request is handled, restarts it
        after its answer is written.

        The answer is written here rather than after the middleware, so that
        the connection is never idle (see `_Guard.idle`) while it still owes
        one; paused, the answer closes the connection.
        """
        guard = self.guards.get(request.transport) if request.transport is not None else None
        if guard is not None:
            guard.stop_waiting()
        try:
            response: web.StreamResponse = await handler(request)
            if self.paused:
                response.force_close()
            # a client gone meanwhile is aiohttp's to notice, as for any answer
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            if guard is not None:
                guard.wait_for_headers()

    # --- per request -------------------------------------------------------
    def _count(self, source: str, outcome: str) -> None:
        self.counts.count(source, outcome)

    @staticmethod
    def _unavailable(text: str) -> web.Response:
        return web.Response(
            status=503, text=text + "\n", headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The answer to a request refused on its headers alone, or None to go on."""
        config = self.config
        source = config.source
        if not request.remote or self.networks.find(request.remote) is None:
            # the connection was let in before a reload took its address off the list
            self.count_forbidden()
            return web.Response(status=403, text="forbidden\n")
        if config.credentials and not _credentials_match(
            request.headers.get("Authorization"), config.credentials
        ):
            self._count(source, "bad_authenticator")
            self._limited.warning(
                "json_auth", "CDR post without valid credentials", listener=self.listener
            )
            return web.Response(
                status=401,
                text="authentication required\n",
                headers={"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
            )
        if self.paused:
            return self._unavailable("shutting down, post again later")
        declared = request.content_length
        if declared is not None and declared > config.max_body_bytes:
            return self._too_large(source)
        return None

    async def _expect(self, request: web.Request) -> web.Response | None:
        """`Expect: 100-continue` (curl sends it before a large body): go on, or refuse now.

        A request that would be refused gets its final answer instead of 100
        Continue, so that the body is never sent; the connection then closes,
        as the unsent body leaves it out of step.
        """
        refusal = self._refusal(request)
        if refusal is not None:
            return _LastResponse(refusal, request.protocol.force_close)
        if request.version != HttpVersion11:
            return None  # an HTTP/1.0 client does not wait for 100 Continue
        if request.headers.get("Expect", "").strip().lower() != "100-continue":
            return _LastResponse(
                web.Response(status=417, text="expectation not supported\n"),
                request.protocol.force_close,
            )
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    async def _post(self, request: web.Request) -> web.Response:
        config = self.config
        source = config.source
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        limit = config.max_body_bytes
        body = bytearray()
        try:
            async with asyncio.timeout(config.body_timeout_ms / 1000):
                async for chunk in request.content.iter_chunked(_READ_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        return self._too_large(source)
        except TimeoutError:
            self._count(source, "malformed")
            self._limited.warning(
                "json_slow_body", "CDR post body not complete in time", source=source
            )
            # the rest of the body may never come: answer and close, without lingering for it
            return _LastResponse(
                web.Response(status=408, text="request body not complete in time\n"),
                request.protocol.force_close,
            )
        except (web.RequestPayloadError, HttpProcessingError) as exc:
            self._count(source, "malformed")
            self._limited.warning(
                "json_bad_body",
                "CDR post body unreadable",
                source=source,
                error_class=type(exc).__name__,
            )
            return _LastResponse(
                web.Response(status=400, text="bad request body\n"), request.protocol.force_close
            )
        received_at = datetime.now(UTC)
        try:
            document = decode_body(bytes(body), request.content_type)
            record = json_record(document, source, received_at)
        except JsonCdrError as exc:
            self._count(source, "malformed")
            self._limited.warning(
                "json_malformed", "CDR post refused", source=source, reason=exc.reason
            )
            return web.Response(status=400, text=f"bad CDR: {exc.reason}\n")

        loop = asyncio.get_running_loop()
        durable: asyncio.Future[bool] = loop.create_future()

        def ack(stored: bool) -> None:
            if not durable.done():
                durable.set_result(stored)

        if not self.intake.accept(record, received_at, ack):
            self._count(source, "overloaded")
            self._limited.warning(
                "overloaded", "writer queue full: CDR post refused", source=source
            )
            return self._unavailable("busy, post again later")
        if not await durable:
            self._count(source, "not_durable")
            return self._unavailable("not stored, post again later")
        self._count(source, "accepted")
        return web.json_response({"status": "stored"})

    def _too_large(self, source: str) -> web.Response:
        self._count(source, "malformed")
        self._limited.warning(
            "json_too_large", "CDR post larger than max_body_bytes refused", source=source
        )
        return web.Response(status=413, text="request body too large\n")
