"""How a finished call leg ended, in the vocabulary of ASR and NER dashboards.

`call_outcome` sorts any record, whatever protocol brought it (RADIUS, SIP,
JSON), into answered, busy, no_answer, failed or cancelled, from the fields
every protocol fills: `answered`, `sip_code` and the Q.850
`disconnect_cause`; `outcome_of` does the same from those bare fields (for
stored rows). `q850_from_sip_status` gives the Q.850 cause a SIP final
response stands for (RFC 3398 section 8.2.6.1), for records that carry a SIP
code but no Reason header. All are pure functions of their arguments: no
I/O, no state, and they never look at phone numbers.
"""

from __future__ import annotations

import enum
from typing import Final

from collector.record import CallRecord


class CallOutcome(enum.StrEnum):
    """The outcome label of `calls_total` (a str, so it can be a metric label as is)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: every outcome, in a fixed order (for binding metric children once)
CALL_OUTCOMES: tuple[CallOutcome, ...] = tuple(CallOutcome)

#: Q.850 cause of a call cleared normally by one of its parties
CAUSE_NORMAL_CLEARING: Final = 16
#: Q.850 cause used for SIP final responses RFC 3398 does not list
CAUSE_INTERWORKING: Final = 127

# RFC 3398 section 8.2.6.1: SIP final response -> ISUP (Q.850) cause value.
_RFC3398_CAUSES: dict[int, int] = {
    400: 41,
    401: 21,
    402: 21,
    403: 21,
    404: 1,
    405: 63,
    406: 79,
    407: 21,
    408: 102,
    410: 22,
    413: 127,
    414: 127,
    415: 79,
    416: 127,
    420: 127,
    421: 127,
    423: 127,
    480: 18,
    481: 41,
    482: 25,
    483: 25,
    484: 28,
    485: 1,
    486: 17,
    500: 41,
    501: 79,
    502: 38,
    503: 41,
    504: 102,
    505: 127,
    513: 127,
    600: 17,
    603: 21,
    604: 1,
}

_BUSY_CODES = frozenset({486, 600})
_NO_ANSWER_CODES = frozenset({480, 408})
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19})
_CANCELLED_CODE: Final = 487


def q850_from_sip_status(status: int) -> int:
    """The Q.850 cause a SIP final response stands for.

    2xx is normal clearing (16). Failure codes follow the table of RFC 3398
    section 8.2.6.1. Two choices of ours fill its gaps, so that every
    stored failure has a cause:

    - 487 Request Terminated (the INVITE was CANCELled) maps to 16, normal
      call clearing. RFC 3398 gives 487 no mapping because a gateway never
      relays it as a release; the call was cleared by its own caller before
      answer, which is what ISUP reports with cause 16 when a calling party
      abandons, and what CANCELs carry in `Reason: Q.850;cause=16`. The
      outcome (cancelled, not answered) is still told apart by `sip_code`.
    - Any other code RFC 3398 leaves out (3xx, 488, 606, newer codes) maps to
      127, interworking unspecified, as SIP-ISUP gateways commonly do.
    """
    if 200 <= status < 300:
        return CAUSE_NORMAL_CLEARING
    if status == _CANCELLED_CODE:
        return CAUSE_NORMAL_CLEARING
    return _RFC3398_CAUSES.get(status, CAUSE_INTERWORKING)


def call_outcome(record: CallRecord) -> CallOutcome:
    """Classify a finished call leg for the calls_total metric (see `outcome_of`)."""
    return outcome_of(record.answered, record.sip_code, record.disconnect_cause, record.duration_ms)


def outcome_of(
    answered: bool | None,
    sip_code: int | None,
    disconnect_cause: int | None,
    duration_ms: int | None = None,
) -> CallOutcome:
    """Classify a call from the fields every protocol fills (a record's, or a stored row's).

    In order:
    1. answered: `answered` is True; when a protocol left it unset, a 2xx
       `sip_code` or a positive duration.
    2. a Q.850 cause is the most specific statement of why an unanswered call
       ended (a Reason header, or the switch's own report): 17 is busy,
       18 and 19 are no_answer (a CANCEL carrying cause 19 is a ring timeout,
       not a caller giving up).
    3. `sip_code` 487 is cancelled; 486 and 600 are busy; 480 and 408 are
       no_answer.
    4. cause 16 (normal clearing) on an unanswered call without a SIP code
       is the caller hanging up before answer, as RADIUS gateways report it:
       cancelled.
    5. anything else is failed.
    """
    if answered is None:
        answered = (sip_code is not None and 200 <= sip_code < 300) or (duration_ms or 0) > 0
    if answered:
        return CallOutcome.ANSWERED
    if disconnect_cause in _BUSY_CAUSES:
        return CallOutcome.BUSY
    if disconnect_cause in _NO_ANSWER_CAUSES:
        return CallOutcome.NO_ANSWER
    if sip_code == _CANCELLED_CODE:
        return CallOutcome.CANCELLED
    if sip_code in _BUSY_CODES:
        return CallOutcome.BUSY
    if sip_code in _NO_ANSWER_CODES:
        return CallOutcome.NO_ANSWER
    if sip_code is None and disconnect_cause == CAUSE_NORMAL_CLEARING:
        return CallOutcome.CANCELLED
    return CallOutcome.FAILED
