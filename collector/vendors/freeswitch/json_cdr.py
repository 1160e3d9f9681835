"""FreeSWITCH mod_json_cdr's document, as a CallRecord.

mod_json_cdr posts one document per call leg (the B-leg too, unless
`log-b-leg = false`). Its `variables` block holds the channel variables
(uuid, start/answer/end as `*_epoch` seconds and `*_uepoch` microseconds,
billsec/billmsec/billusec, hangup_cause and hangup_cause_q850,
sip_term_status, ...) as strings, each URL-encoded with the default
`encode-values = true`; beside it `callflow` (one caller profile and its
`times` in microseconds per transfer: an array, newest first, or in older
versions one object under a repeated key) and `channel_data`.

This module reads a document already decoded from its HTTP body (see
`collector.receivers.json_body`) and knows only FreeSWITCH: which variable
holds what, and, through `causes` and `legs`, what the values mean, the
same as for mod_radius_cdr. It is pure (no I/O) and never puts a value
taken from a document into an error: `JsonCdrError.reason` names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.numbers import Unusable, ascii_digits, read_dial, strip_uri
from collector.vendors.freeswitch import causes, legs

#: longest uuid accepted (FreeSWITCH's are 36 characters)
MAX_UUID_CHARS = 128
#: epoch seconds accepted for a time: after 1970, before 2106 (32-bit unsigned)
MAX_EPOCH_S = 2**32
#: a callflow's profile_index has a digit or two; a longer one counts as absent
#: (int() refuses more than 4300 digits, and sorting needs no more than this)
_MAX_PROFILE_INDEX_DIGITS = 9

# Where each party's number may be, best first; the first value that looks like
# a number wins (FreeSWITCH often holds a user name where a number is expected).
_CALLING_VARIABLES = ("caller_id_number", "effective_caller_id_number", "ani")
_CALLED_VARIABLES = ("destination_number",)
_CALLED_FALLBACK_VARIABLES = ("callee_id_number", "sip_req_user", "sip_to_user")
#: variables FreeSWITCH sets on a B-leg to the uuid of the leg that originated it
_ORIGINATOR_VARIABLES = ("originating_leg_uuid", "originator")


class JsonCdrError(ValueError):
    """A CDR that cannot become a record (a body that cannot be read, a document that
    cannot be mapped); `reason` names the field, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    left to pipeline.billing (answer to end). The hangup cause, and the SIP code and answer it implies,
    are read as `causes` says (the same rules as for mod_radius_cdr): the name decides over hangup_cause_q850, and the
    document's own sip_term_status over the cause's SIP code. A document
    that shows no answer time and no billable time at all leaves `answered`
    to the cause. Without `variables`, the caller profile and its
    `times` stand in. Both legs of a bridged call carry the A-leg's uuid as
    their correlation (stored only as a keyed hash). A SIP leg's Call-ID
    (`sip_call_id`) is its `call_id`; a leg without one (no SIP leg: loopback,
    a conference) has none, rather than its uuid standing in.
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
    # the billable time the document sends, if any: else answer to end (pipeline.billing)
    duration_ms: int | None
    if billmsec is not None:
        duration_ms = billmsec
    elif billusec is not None:
        duration_ms = billusec // 1000
    elif billsec is not None:
        duration_ms = billsec * 1000
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
    cause = causes.cause_of_name(
        _text(variables, "hangup_cause"), _integer(variables, "hangup_cause_q850")
    )
    # a cause before answer says unanswered, whatever time the document bills
    leg_end = causes.leg_end(cause, shown, sip_code)
    answered = leg_end.answered

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

    return CallRecord(
        kind=RecordKind.STOP,
        source=source,
        protocol=Protocol.JSON,
        session_id=uuid,
        event_time=end or answer or start or received_at,
        leg=legs.leg(Protocol.JSON, direction),
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
        call_id=_text(variables, "sip_call_id"),
    )
