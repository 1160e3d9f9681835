"""FreeSWITCH's hangup causes, and how a leg that ended with one is stored.

FreeSWITCH ends every channel with a `switch_call_cause_t`: the Q.850 causes
under their own numbers (1 to 127), and causes of its own above 127. It
reports the cause by number over RADIUS (mod_radius_cdr's
Freeswitch-Hangupcause) and by name over HTTP (mod_json_cdr's
`hangup_cause`, beside `hangup_cause_q850`). Both transports look the cause
up here and call `leg_end`, so one call is stored with one disconnect_cause,
sip_code and answered whichever way it came. This module must never depend
on the transport: a rule that only one receiver applies is the bug it exists
to prevent.

Facts from FreeSWITCH's sources the table follows:

- The names and numbers are switch_channel.c's cause table and
  switch_types.h. FreeSWITCH 1.10.8 renumbered its own causes (CRASH 500 ->
  700, LOSE_RACE 502 -> 702, BLIND_TRANSFER 600 -> 800, PICKED_OFF 605 ->
  805, ...; SUCCESS 142 and ORIGINATOR_CANCEL 487 kept theirs) so that they
  no longer collide with SIP status codes. mod_radius_cdr sends the number of
  the release it runs in, so both numbers are read; they do not overlap.
- `hangup_cause_q850` is switch_channel_cause_q850: the cause itself up to
  127, and 16 (normal clearing) for every cause of FreeSWITCH's own.
- mod_sofia ends a leg that was not answered with a CANCEL when the leg is
  one FreeSWITCH placed (its INVITE then gets 487 Request Terminated, and
  `sip_invite_failure_status` is set to 487), and answers a caller's INVITE
  with hangup_cause_to_sip's status otherwise. For LOSE_RACE and PICKED_OFF
  its CANCEL carries `Reason: SIP;cause=200;text="Call completed
  elsewhere"`, not a Q.850 cause.
- sip_term_status is set only when the far end ended the leg (a BYE, a
  failure response, the caller's CANCEL), never when FreeSWITCH itself did.

The decisions, and why:

- disconnect_cause is what FreeSWITCH reports as hangup_cause_q850 wherever
  that value says something: the Q.850 causes, and 16 for the leg that ended
  as someone intended (SUCCESS, the caller's cancel, a lost race, a call
  picked up at another phone, a transfer, a hangup by the controlling
  application, the allotted time reached, a bow-out). LOSE_RACE and
  PICKED_OFF are 16, not Q.850's 26 (non-selected user clearing), though 26
  describes them well: FreeSWITCH reports 16 for them in every JSON CDR and
  signals no Q.850 cause at all on the wire, and this project's SIP path
  stores the same leg (a CANCEL without a Q.850 Reason, answered 487) as 16;
  26 would be a cause no transport of the switch ever carried.
- FreeSWITCH's own failures (CRASH, SYSTEM_SHUTDOWN, MEDIA_TIMEOUT,
  GATEWAY_DOWN, ...) store no cause: their 16 only says FreeSWITCH has no
  Q.850 number for them, and stored as normal clearing an unanswered one
  would count as a call its caller gave up (`outcome_of`), not as a failure.
- The causes FreeSWITCH has so that it can answer a SIP status no Q.850
  cause stands for (BUSY_EVERYWHERE 600, DECLINE 603, DOES_NOT_EXIST_ANYWHERE
  604, NOT_ACCEPTABLE 606, UNWANTED 607, the STIR/SHAKEN ones, ...) store the
  cause `q850_from_sip_status` gives that status, as this project stores
  the status on every other path (600 is busy, 17).
- sip_code 487 for ORIGINATOR_CANCEL, LOSE_RACE and PICKED_OFF on a leg not
  answered: each is a cancelled INVITE in either direction (the caller's
  CANCEL on its own leg, FreeSWITCH's CANCEL on the legs it placed; the race
  and the pick-up only end legs it placed). Every other cause leaves the
  SIP code to the record: what it was depends on the leg's direction and the
  far end (NO_ANSWER is 480 to a caller but 487 on a leg FreeSWITCH gave up
  ringing), and RADIUS has no attribute for it.
- A JSON CDR's own sip_term_status wins over the table's SIP code: it is the
  status this leg's INVITE or BYE did carry, which RADIUS cannot send. Its
  hangup_cause (the name) wins over its hangup_cause_q850: that number is
  derived from the same cause by a rule that turns every cause of
  FreeSWITCH's own into 16, and RADIUS carries only the cause, so only the
  name gives both transports one answer. hangup_cause_q850 decides only
  when the name is missing or one this table does not know (see
  `cause_of_name`).
- answered is what the record shows (an answer time, a billable duration):
  a leg that lost a race after it had answered was answered and billed. The
  table's `answered` (False for causes that end a leg before answer) fills
  in only when the record shows nothing either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from collector.pipeline.outcome import CAUSE_NORMAL_CLEARING, q850_from_sip_status

#: the SIP status of an INVITE ended by CANCEL
REQUEST_TERMINATED: Final = 487


@dataclass(frozen=True, slots=True)
class HangupCause:
    """One FreeSWITCH hangup cause and what a leg that ended with it is stored as."""

    #: the name FreeSWITCH prints (switch_channel_cause2str, mod_json_cdr's hangup_cause)
    name: str
    #: its switch_call_cause_t number (mod_radius_cdr's Freeswitch-Hangupcause)
    number: int
    #: the stored disconnect_cause (Q.850), None where the cause has none
    q850: int | None
    #: the SIP status of the leg's INVITE when the leg was not answered, where the cause fixes it
    sip_code: int | None = None
    #: False: the cause ends a leg only before answer; None: it can end either
    answered: bool | None = None
    #: its number before FreeSWITCH 1.10.8, where that differs
    earlier_number: int | None = None


@dataclass(frozen=True, slots=True)
class LegEnd:
    """How a leg ended, as every transport stores it."""

    disconnect_cause: int | None
    sip_code: int | None
    answered: bool | None


def _q850(number: int, name: str, *, before_answer: bool = False) -> HangupCause:
    return HangupCause(name, number, number, answered=False if before_answer else None)


def _own(
    name: str,
    number: int,
    earlier: int | None,
    q850: int | None,
    *,
    sip_code: int | None = None,
    before_answer: bool = False,
) -> HangupCause:
    return HangupCause(
        name,
        number,
        q850,
        sip_code=sip_code,
        answered=False if before_answer else None,
        earlier_number=earlier,
    )


def _refusal(name: str, number: int, earlier: int | None, status: int) -> HangupCause:
    """A cause FreeSWITCH has to answer a caller with SIP `status` (hangup_cause_to_sip)."""
    return _own(name, number, earlier, q850_from_sip_status(status), before_answer=True)


_NORMAL = CAUSE_NORMAL_CLEARING

#: every cause of switch_channel.c's table, in its order
CAUSES: Final[tuple[HangupCause, ...]] = (
    HangupCause("NONE", 0, None),
    _q850(1, "UNALLOCATED_NUMBER", before_answer=True),
    _q850(2, "NO_ROUTE_TRANSIT_NET", before_answer=True),
    _q850(3, "NO_ROUTE_DESTINATION", before_answer=True),
    _q850(6, "CHANNEL_UNACCEPTABLE", before_answer=True),
    _q850(7, "CALL_AWARDED_DELIVERED"),
    _q850(16, "NORMAL_CLEARING"),
    _q850(17, "USER_BUSY", before_answer=True),
    _q850(18, "NO_USER_RESPONSE", before_answer=True),
    _q850(19, "NO_ANSWER", before_answer=True),
    _q850(20, "SUBSCRIBER_ABSENT", before_answer=True),
    _q850(21, "CALL_REJECTED", before_answer=True),
    _q850(22, "NUMBER_CHANGED", before_answer=True),
    _q850(23, "REDIRECTION_TO_NEW_DESTINATION", before_answer=True),
    _q850(25, "EXCHANGE_ROUTING_ERROR", before_answer=True),
    _q850(27, "DESTINATION_OUT_OF_ORDER", before_answer=True),
    _q850(28, "INVALID_NUMBER_FORMAT", before_answer=True),
    _q850(29, "FACILITY_REJECTED"),
    _q850(30, "RESPONSE_TO_STATUS_ENQUIRY"),
    _q850(31, "NORMAL_UNSPECIFIED"),
    _q850(34, "NORMAL_CIRCUIT_CONGESTION", before_answer=True),
    _q850(38, "NETWORK_OUT_OF_ORDER"),
    _q850(41, "NORMAL_TEMPORARY_FAILURE"),
    _q850(42, "SWITCH_CONGESTION", before_answer=True),
    _q850(43, "ACCESS_INFO_DISCARDED"),
    _q850(44, "REQUESTED_CHAN_UNAVAIL", before_answer=True),
    _q850(45, "PRE_EMPTED"),
    _q850(50, "FACILITY_NOT_SUBSCRIBED", before_answer=True),
    _q850(52, "OUTGOING_CALL_BARRED", before_answer=True),
    _q850(54, "INCOMING_CALL_BARRED", before_answer=True),
    _q850(57, "BEARERCAPABILITY_NOTAUTH", before_answer=True),
    _q850(58, "BEARERCAPABILITY_NOTAVAIL", before_answer=True),
    _q850(63, "SERVICE_UNAVAILABLE", before_answer=True),
    _q850(65, "BEARERCAPABILITY_NOTIMPL", before_answer=True),
    _q850(66, "CHAN_NOT_IMPLEMENTED", before_answer=True),
    _q850(69, "FACILITY_NOT_IMPLEMENTED", before_answer=True),
    _q850(79, "SERVICE_NOT_IMPLEMENTED", before_answer=True),
    _q850(81, "INVALID_CALL_REFERENCE"),
    _q850(88, "INCOMPATIBLE_DESTINATION", before_answer=True),
    _q850(95, "INVALID_MSG_UNSPECIFIED"),
    _q850(96, "MANDATORY_IE_MISSING"),
    _q850(97, "MESSAGE_TYPE_NONEXIST"),
    _q850(98, "WRONG_MESSAGE"),
    _q850(99, "IE_NONEXIST"),
    _q850(100, "INVALID_IE_CONTENTS"),
    _q850(101, "WRONG_CALL_STATE"),
    _q850(102, "RECOVERY_ON_TIMER_EXPIRE"),
    _q850(103, "MANDATORY_IE_LENGTH_ERROR"),
    _q850(111, "PROTOCOL_ERROR"),
    _q850(127, "INTERWORKING"),
    # FreeSWITCH's own: see the module's docstring for the choice of each column
    _own("SUCCESS", 142, None, _NORMAL),
    _own("ORIGINATOR_CANCEL", 487, None, _NORMAL, sip_code=REQUEST_TERMINATED, before_answer=True),
    _own("CRASH", 700, 500, None),
    _own("SYSTEM_SHUTDOWN", 701, 501, None),
    _own("LOSE_RACE", 702, 502, _NORMAL, sip_code=REQUEST_TERMINATED, before_answer=True),
    _own("MANAGER_REQUEST", 703, 503, _NORMAL),
    _own("BLIND_TRANSFER", 800, 600, _NORMAL),
    _own("ATTENDED_TRANSFER", 801, 601, _NORMAL),
    _own("ALLOTTED_TIMEOUT", 802, 602, _NORMAL),
    # the INVITE was answered with a challenge (401/407); the caller sends a new one
    _own("USER_CHALLENGE", 803, 603, None, before_answer=True),
    _own("MEDIA_TIMEOUT", 804, 604, None),
    _own("PICKED_OFF", 805, 605, _NORMAL, sip_code=REQUEST_TERMINATED, before_answer=True),
    _own("USER_NOT_REGISTERED", 806, 606, None, before_answer=True),
    _own("PROGRESS_TIMEOUT", 807, 607, None, before_answer=True),
    _own("INVALID_GATEWAY", 808, 608, None, before_answer=True),
    _own("GATEWAY_DOWN", 809, 609, None, before_answer=True),
    _own("INVALID_URL", 810, 610, None, before_answer=True),
    _own("INVALID_PROFILE", 811, 611, None, before_answer=True),
    _own("NO_PICKUP", 812, 612, None, before_answer=True),
    _own("SRTP_READ_ERROR", 813, 613, None),
    # the leg stepped out of a call that goes on without it, as in a transfer
    _own("BOWOUT", 814, 614, _NORMAL),
    _refusal("BUSY_EVERYWHERE", 815, 615, 600),
    _refusal("DECLINE", 816, 616, 603),
    _refusal("DOES_NOT_EXIST_ANYWHERE", 817, 617, 604),
    _refusal("NOT_ACCEPTABLE", 818, 618, 606),
    _refusal("UNWANTED", 819, 619, 607),
    _refusal("NO_IDENTITY", 820, 620, 428),
    _refusal("BAD_IDENTITY_INFO", 821, 621, 429),
    _refusal("UNSUPPORTED_CERTIFICATE", 822, 622, 437),
    _refusal("INVALID_IDENTITY", 823, 623, 438),
    _refusal("STALE_DATE", 824, 624, 403),
    _refusal("REJECT_ALL", 825, None, 603),  # added after the renumbering
)

_BY_NAME: Final[dict[str, HangupCause]] = {cause.name: cause for cause in CAUSES}
_BY_NUMBER: Final[dict[int, HangupCause]] = {cause.number: cause for cause in CAUSES} | {
    cause.earlier_number: cause for cause in CAUSES if cause.earlier_number is not None
}


def cause_of_number(number: int) -> HangupCause | None:
    """The cause mod_radius_cdr sends as `number` (either numbering), or None.

    A number up to 127 the table lacks is a Q.850 cause FreeSWITCH has no name
    for (a far end's `Reason: Q.850;cause=26` ends a leg with 26): it is its
    own Q.850 cause, as switch_channel_cause_q850 has it. A larger unknown
    number is a cause of FreeSWITCH's own newer than this table: no cause.
    """
    known = _BY_NUMBER.get(number)
    if known is not None:
        return known
    if 0 < number <= 127:
        return HangupCause("UNKNOWN", number, number)
    return None


def cause_of_name(name: str | None, reported_q850: int | None) -> HangupCause | None:
    """The cause a JSON CDR names, `reported_q850` being its hangup_cause_q850.

    The name decides when the table knows it. Without a name, the reported
    value is taken as the cause's number. A name the table lacks is one
    FreeSWITCH prints for a number it has no name for ("UNKNOWN", a Q.850
    cause up to 127, reported as itself) or a cause of its own newer than
    this table (reported as 16, which then says nothing): so the reported
    value decides, unless it is 16. Either way the answer is the one
    `cause_of_number` gives for the number FreeSWITCH held.
    """
    if name:
        known = _BY_NAME.get(name.strip().upper())
        if known is not None:
            return known
        if reported_q850 == CAUSE_NORMAL_CLEARING:
            return None
    if reported_q850 is None:
        return None
    return cause_of_number(reported_q850)


def leg_end(
    cause: HangupCause | None, answered: bool | None, sip_code: int | None = None
) -> LegEnd:
    """How a leg that ended with `cause` is stored, from what its record shows.

    `answered` is what the record itself shows (an answer time, a billable
    duration; None when it shows neither); `sip_code` a SIP status it carries
    for the leg (a JSON CDR's sip_term_status; RADIUS has none). The record's
    own answer and SIP status win; the cause fills what it leaves open.
    """
    if cause is None:
        return LegEnd(None, sip_code, answered)
    if answered is None:
        answered = cause.answered
    if sip_code is None and answered is False:
        sip_code = cause.sip_code
    return LegEnd(cause.q850, sip_code, answered)
