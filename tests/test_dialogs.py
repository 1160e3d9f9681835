"""DialogTracker and call_outcome: captured SIP call flows in, one correct CallRecord out.

Every message goes through parse_sip first, so these tests exercise the path
the receiver takes. Times are capture times chosen by the test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.billing import settle
from collector.pipeline.outcome import (
    CALL_OUTCOMES,
    CallOutcome,
    call_outcome,
    outcome_of,
    q850_from_sip_status,
)
from collector.receivers.sip.dialogs import DialogTracker, _Timetable, dialog_session_id
from collector.receivers.sip.message import parse_sip

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SOURCE = "kamailio-1"
Step = tuple[float, bytes]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Call:
    """Builds the SIP messages of one call between a caller and a callee."""

    call_id: str = "a84b4c76e66710@pbx.example.org"
    caller_tag: str = "1928301774"
    callee_tag: str = "a6c85cf"
    caller: str = "+4930111222"
    dialled: str = "+4940555012"
    callee: str = "bob"
    pai: str | None = "+4930111999"

    def _message(
        self,
        start: str,
        *,
        from_callee: bool,
        to_tag: bool,
        cseq: int,
        method: str,
        extra: Sequence[str],
    ) -> bytes:
        caller = f"<sip:{self.caller}@pbx.example.org>"
        callee = f"<sip:{self.callee}@example.net>"
        if from_callee:
            from_h = f"From: {callee};tag={self.callee_tag}"
            to_h = f"To: {caller}" + (f";tag={self.caller_tag}" if to_tag else "")
        else:
            from_h = f'From: "Alice" {caller};tag={self.caller_tag}'
            to_h = f"To: {callee}" + (f";tag={self.callee_tag}" if to_tag else "")
        lines = [
            start,
            "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK" + format(cseq, "x") + method,
            from_h,
            to_h,
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            *extra,
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def invite(self, cseq: int = 1, *, extra: Sequence[str] = (), with_pai: bool = True) -> bytes:
        headers = list(extra)
        if with_pai and self.pai is not None:
            headers.append(f"P-Asserted-Identity: <sip:{self.pai}@pbx.example.org>")
        return self._message(
            f"INVITE sip:{self.dialled}@proxy.example.net;user=phone SIP/2.0",
            from_callee=False,
            to_tag=False,
            cseq=cseq,
            method="INVITE",
            extra=headers,
        )

    def request(
        self, method: str, cseq: int, *, from_callee: bool = False, extra: Sequence[str] = ()
    ) -> bytes:
        """An in-dialog request (ACK, BYE, re-INVITE), or a CANCEL (no To-tag)."""
        target = self.caller if from_callee else self.callee
        return self._message(
            f"{method} sip:{target}@198.51.100.7:5060 SIP/2.0",
            from_callee=from_callee,
            to_tag=method != "CANCEL",
            cseq=cseq,
            method=method,
            extra=extra,
        )

    def response(
        self,
        status: int,
        *,
        cseq: int = 1,
        method: str = "INVITE",
        from_callee: bool = False,
        to_tag: bool = True,
        extra: Sequence[str] = (),
    ) -> bytes:
        """A response to a request of the caller (or of the callee, with from_callee)."""
        return self._message(
            f"SIP/2.0 {status} Whatever",
            from_callee=from_callee,
            to_tag=to_tag,
            cseq=cseq,
            method=method,
            extra=extra,
        )


def forwarded(data: bytes) -> bytes:
    """The copy a proxy forwards: one more Via, another R-URI host and a translated number,
    and a P-Asserted-Identity the proxy asserts."""
    text = data.decode()
    start, rest = text.split("\r\n", 1)
    if not start.startswith("SIP/"):
        start = start.replace("+4940555012@proxy.example.net", "004940555012@gw.example.net")
    headers = "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKfwd\r\n"
    if start.startswith("INVITE") and "P-Asserted-Identity" not in rest:
        headers += "P-Asserted-Identity: <sip:+4930111999@pbx.example.org>\r\n"
    return (start + "\r\n" + headers + rest).encode()


def play(
    tracker: DialogTracker,
    steps: Iterable[Step],
    *,
    source: str = SOURCE,
    mirror: bool = False,
    starts: bool = False,
) -> list[CallRecord]:
    """Feed steps (capture second, message); with `mirror`, each also as the forwarded copy.

    Returns the STOP records, which end calls; with `starts`, also the START
    each answered call emits when it is answered and the ENDs of BYEs of
    dialogs the tracker never saw begin (both only reach the sink's
    open-call bookkeeping). Each record has its billing facts decided, as the
    intake decides them (pipeline.billing).
    """
    records: list[CallRecord] = []
    header = tracker.correlation_header
    for seconds, data in steps:
        records += tracker.feed(parse_sip(data, header), at(seconds), source)
        if mirror:
            copy = forwarded(data)
            records += tracker.feed(parse_sip(copy, header), at(seconds + 0.002), source)
    records = [settle(record) for record in records]
    if starts:
        return records
    return [record for record in records if record.kind is RecordKind.STOP]


def tracker(
    *,
    max_dialogs: int = 100,
    max_dialog_age_s: float = 4 * 3600.0,
    correlation_header: str | None = None,
) -> DialogTracker:
    return DialogTracker(max_dialogs, max_dialog_age_s, correlation_header)


def answered_call(call: Call, *, callee_hangs_up: bool = False, reason: str = "") -> list[Step]:
    extra = [f"Reason: {reason}"] if reason else []
    bye_cseq = 1 if callee_hangs_up else 2
    return [
        (0.0, call.invite()),
        (0.05, call.response(100, to_tag=False)),
        (2.0, call.response(180)),
        (5.0, call.response(200)),
        (5.05, call.request("ACK", 1)),
        (65.0, call.request("BYE", bye_cseq, from_callee=callee_hangs_up, extra=extra)),
        (65.05, call.response(200, cseq=bye_cseq, method="BYE", from_callee=callee_hangs_up)),
    ]


def failed_call(call: Call, status: int, *, ring: bool = True, reason: str = "") -> list[Step]:
    steps = [(0.0, call.invite()), (0.05, call.response(100, to_tag=False))]
    if ring:
        steps.append((1.5, call.response(180)))
    extra = [f"Reason: {reason}"] if reason else []
    steps.append((20.0, call.response(status, extra=extra)))
    steps.append((20.01, call.request("ACK", 1)))
    return steps


def only(records: list[CallRecord]) -> CallRecord:
    assert len(records) == 1, records
    return records[0]


# -- answered calls ----------------------------------------------------------


def test_answered_call_caller_hangs_up() -> None:
    t = tracker()
    call = Call()
    steps = answered_call(call)
    assert play(t, steps[:-2]) == []
    assert t.open_dialogs == 1
    record = only(play(t, steps[-2:]))
    assert t.open_dialogs == 0
    assert record.kind is RecordKind.STOP
    assert record.protocol is Protocol.SIP
    assert record.source == SOURCE
    assert record.session_id == dialog_session_id(call.call_id, call.caller_tag)
    assert record.leg == ""
    assert record.setup_stamp is None
    assert record.setup_time == at(0)
    assert record.connect_time == at(5)
    assert record.disconnect_time == at(65)
    assert record.event_time == at(65)
    assert record.duration_ms == 60_000
    assert record.pdd_ms == 2_000
    assert record.answered is True
    assert record.sip_code == 200
    assert record.disconnect_cause == 16
    assert record.calling == "+4930111999"  # P-Asserted-Identity beats From
    assert record.called == "+4940555012"  # Request-URI beats To ("bob")
    assert record.correlation == "a84b4c76e66710@pbx.example.org"  # the Call-ID, no header set
    assert record.incomplete is False
    assert record.times_derived is False
    assert call_outcome(record) is CallOutcome.ANSWERED


def test_callee_hangs_up_with_swapped_tags() -> None:
    record = only(
        play(tracker(), answered_call(Call(), callee_hangs_up=True, reason="Q.850;cause=31"))
    )
    assert record.disconnect_time == at(65)
    assert record.duration_ms == 60_000
    assert record.disconnect_cause == 31  # the Reason header wins over the default 16


def test_caller_without_from_tag() -> None:
    # An RFC 2543 caller sends no From-tag; the callee's BYE then has no To-tag.
    call = Call()
    steps = [
        (seconds, data.replace(b";tag=" + call.caller_tag.encode(), b""))
        for seconds, data in answered_call(call, callee_hangs_up=True)
    ]
    record = only(play(tracker(), steps))
    assert record.session_id == dialog_session_id(call.call_id, None)
    assert record.duration_ms == 60_000


def test_from_user_and_to_user_are_the_fallbacks() -> None:
    call = Call(pai=None)
    steps = answered_call(call)
    # A Request-URI without a user part: the To user is the called number.
    steps[0] = (0.0, steps[0][1].replace(b"INVITE sip:+4940555012@", b"INVITE sip:"))
    record = only(play(tracker(), steps))
    assert record.calling == "+4930111222"
    assert record.called == "bob"


def test_pdd_is_answer_minus_setup_without_ringing() -> None:
    call = Call()
    steps = [s for s in answered_call(call) if b" 180 " not in s[1]]
    assert only(play(tracker(), steps)).pdd_ms == 5_000


def test_correlation_header_when_configured() -> None:
    call = Call()
    steps = answered_call(call)
    steps[0] = (0.0, call.invite(extra=["X-CID: corr-42"]))
    assert only(play(tracker(correlation_header="X-CID"), steps)).correlation == "corr-42"
    # without the header configured, the Call-ID (as the proxy's RADIUS accounting has it)
    assert only(play(tracker(), steps)).correlation == call.call_id


def test_every_record_of_a_dialog_carries_its_call_id_whatever_the_correlation() -> None:
    """START, STOP and the ENDs of a BYE of an unknown dialog: the Call-ID, which
    revenue assurance joins by, also when a correlation header is configured."""
    call = Call()
    steps = answered_call(call)
    steps[0] = (0.0, call.invite(extra=["X-CID: corr-42"]))
    for t in (tracker(), tracker(correlation_header="X-CID")):
        records = play(t, steps, starts=True)
        assert [r.kind for r in records] == [RecordKind.START, RecordKind.STOP]
        assert {r.call_id for r in records} == {call.call_id}
    ends = play(tracker(correlation_header="X-CID"), steps[1:], starts=True)
    assert [r.kind for r in ends] == [RecordKind.END, RecordKind.END]
    assert {r.call_id for r in ends} == {call.call_id}


# -- failures ----------------------------------------------------------------


def test_busy_with_q850_reason() -> None:
    record = only(play(tracker(), failed_call(Call(), 486, reason="Q.850;cause=17")))
    assert record.sip_code == 486
    assert record.disconnect_cause == 17
    assert record.answered is False
    assert record.duration_ms == 0
    assert record.connect_time is None
    assert record.disconnect_time == at(20)
    assert record.pdd_ms == 1_500
    assert call_outcome(record) is CallOutcome.BUSY


def test_reason_beats_the_rfc3398_mapping() -> None:
    record = only(play(tracker(), failed_call(Call(), 503, reason="Q.850;cause=34")))
    assert (record.sip_code, record.disconnect_cause) == (503, 34)
    assert call_outcome(record) is CallOutcome.FAILED


def test_not_found() -> None:
    record = only(play(tracker(), failed_call(Call(), 404, ring=False)))
    assert (record.sip_code, record.disconnect_cause) == (404, 1)
    assert record.pdd_ms is None
    assert call_outcome(record) is CallOutcome.FAILED


def test_no_answer() -> None:
    record = only(play(tracker(), failed_call(Call(), 480)))
    assert (record.sip_code, record.disconnect_cause) == (480, 18)
    assert call_outcome(record) is CallOutcome.NO_ANSWER


def cancelled_call(call: Call, reason: str = "") -> list[Step]:
    extra = [f"Reason: {reason}"] if reason else []
    return [
        (0.0, call.invite()),
        (1.0, call.response(180)),
        (9.0, call.request("CANCEL", 1, extra=extra)),
        (9.01, call.response(200, method="CANCEL")),
        (9.02, call.response(487)),
        (9.03, call.request("ACK", 1)),
    ]


def test_cancel_then_487() -> None:
    t = tracker()
    steps = cancelled_call(Call())
    assert play(t, steps[:4]) == []  # the CANCEL alone does not end the call
    record = only(play(t, steps[4:]))
    assert record.sip_code == 487
    assert record.disconnect_cause == 16
    assert record.disconnect_time == at(9)  # when the caller gave up
    assert record.answered is False
    assert record.incomplete is False
    assert call_outcome(record) is CallOutcome.CANCELLED


def test_cancel_reason_is_kept() -> None:
    record = only(play(tracker(), cancelled_call(Call(), reason="Q.850;cause=19")))
    assert record.disconnect_cause == 19
    assert call_outcome(record) is CallOutcome.NO_ANSWER  # a ring timeout, not a caller giving up


def test_cancel_whose_487_was_lost_expires_as_cancelled() -> None:
    t = tracker()
    assert play(t, cancelled_call(Call())[:4]) == []
    assert t.expire(at(9 + 31)) == []
    record = only(t.expire(at(9 + 33)))
    assert (record.sip_code, record.incomplete) == (487, True)
    assert call_outcome(record) is CallOutcome.CANCELLED
    assert t.open_dialogs == 0


def test_200_racing_the_cancel_wins() -> None:
    call = Call()
    steps = [
        (0.0, call.invite()),
        (9.0, call.request("CANCEL", 1)),
        (9.01, call.response(200)),  # the callee answered at the same moment
        (9.02, call.response(200, method="CANCEL")),
        (30.0, call.request("BYE", 2)),
    ]
    t = tracker()
    record = only(play(t, steps))
    assert record.answered is True
    assert record.duration_ms == 20_990
    assert t.expire(at(100)) == []


# -- copies, retransmissions, re-INVITEs --------------------------------------


def test_every_message_mirrored_twice() -> None:
    call = Call(pai=None)  # only the forwarded copy carries the asserted identity
    t = tracker()
    record = only(play(t, answered_call(call), mirror=True))
    assert record.setup_time == at(0)  # first copy wins
    assert record.connect_time == at(5)
    assert record.disconnect_time == at(65)
    assert record.duration_ms == 60_000
    assert record.called == "+4940555012"  # as dialled, not the proxy's translation
    assert record.calling == "+4930111999"  # the identity the proxy asserted
    assert t.open_dialogs == 0
    assert t.expire(at(10_000_000)) == []


def test_mirrored_failures_and_cancels() -> None:
    for steps in (
        failed_call(Call(), 486, reason="Q.850;cause=17"),
        cancelled_call(Call()),
        failed_call(Call(), 404),
    ):
        t = tracker()
        mirrored = play(t, steps, mirror=True)
        plain = play(tracker(), steps)
        assert only(mirrored).sip_code == only(plain).sip_code
        assert mirrored[0].disconnect_time == plain[0].disconnect_time
        assert t.expire(at(10_000_000)) == []


def test_retransmissions_make_no_second_record() -> None:
    call = Call()
    t = tracker()
    steps = answered_call(call)
    records = play(t, steps[:4])
    # The 200 OK is retransmitted until the ACK arrives: the answer time must not move.
    records += play(t, [(5.5, call.response(200)), (6.5, call.response(200))])
    records += play(t, steps[4:])
    # The BYE and its 200 are retransmitted after the call ended.
    records += play(t, [(65.5, steps[-2][1]), (66.5, steps[-2][1]), (66.6, steps[-1][1])])
    record = only(records)
    assert record.connect_time == at(5)
    assert record.duration_ms == 60_000
    assert t.expire(at(10_000_000)) == []


def test_retransmitted_invite_after_final_does_not_reopen() -> None:
    call = Call()
    t = tracker()
    only(play(t, failed_call(call, 486)))
    # The 486 was lost towards the caller, which retransmits its INVITE; mirrored copies too.
    assert play(t, [(20.5, call.invite()), (21.5, call.invite())], mirror=True) == []
    assert t.open_dialogs == 0
    assert t.expire(at(10_000_000)) == []


def test_reinvite_never_moves_the_answer() -> None:
    call = Call()
    steps = answered_call(call)
    reinvites = [
        # Caller's session refresh.
        (30.0, call.request("INVITE", 2)),
        (30.1, call.response(200, cseq=2)),
        # Callee's re-INVITE, whose CSeq happens to equal the initial INVITE's.
        (40.0, call.request("INVITE", 1, from_callee=True)),
        (40.1, call.response(200, cseq=1, from_callee=True)),
        # A re-INVITE refused: must not end the call either.
        (50.0, call.request("INVITE", 3)),
        (50.1, call.response(491, cseq=3)),
    ]
    final = steps[:5] + reinvites + [(65.0, call.request("BYE", 4)), *steps[6:]]
    record = only(play(tracker(), final))
    assert record.connect_time == at(5)
    assert record.duration_ms == 60_000
    assert record.pdd_ms == 2_000


def test_failure_on_another_forked_branch_after_answer_is_ignored() -> None:
    call = Call()
    other_branch = Call(callee_tag="branch-2")
    steps = answered_call(call)
    steps.insert(4, (5.01, other_branch.response(487)))
    record = only(play(tracker(), steps))
    assert record.answered is True
    assert record.duration_ms == 60_000


def test_bye_without_a_seen_answer() -> None:
    call = Call()
    steps = [s for s in answered_call(call) if b" 200 " not in s[1].split(b"\r\n")[0]]
    record = only(play(tracker(), steps))
    assert record.answered is True
    assert record.incomplete is True
    assert record.connect_time is None
    assert record.duration_ms is None


def test_messages_of_unknown_dialogs_open_nothing_and_their_bye_asks_for_an_end() -> None:
    call = Call()
    t = tracker()
    steps = answered_call(call)[1:]  # joined mid-call: the INVITE was never seen
    assert play(t, steps) == []
    assert t.open_dialogs == 0
    # all the BYE can do: ask the sink to close a durable START, either orientation
    t = tracker()
    records = play(t, steps, starts=True)
    assert [r.kind for r in records] == [RecordKind.END, RecordKind.END]
    assert {r.session_id for r in records} == {
        dialog_session_id(call.call_id, call.caller_tag),
        dialog_session_id(call.call_id, call.callee_tag),
    }
    for record in records:
        assert (record.sip_code, record.disconnect_cause) == (200, 16)
        assert record.disconnect_time == at(65.0)
        assert record.calling is None and record.called is None
        assert record.connect_time is None and record.duration_ms is None
    assert t.open_dialogs == 0


def test_an_answered_call_emits_a_start_with_the_stops_key() -> None:
    call = Call()
    t = tracker()
    records = play(t, answered_call(call), starts=True, mirror=True)
    assert [r.kind for r in records] == [RecordKind.START, RecordKind.STOP]
    start, stop = records
    assert start.session_id == stop.session_id
    assert (start.setup_time, start.connect_time) == (at(0.0), at(5.0))
    assert start.event_time == at(5.0)
    assert (start.calling, start.called) == (stop.calling, stop.called) == (call.pai, call.dialled)
    assert start.setup_stamp == stop.setup_stamp  # same record key in the pipeline


def test_unanswered_calls_emit_no_start() -> None:
    t = tracker()
    records = play(t, failed_call(Call(), 486), starts=True, mirror=True)
    assert [r.kind for r in records] == [RecordKind.STOP]


def test_the_closing_bye_and_its_copies_ask_for_no_end() -> None:
    t = tracker()
    steps = answered_call(Call(), callee_hangs_up=True)
    records = play(t, steps + steps[-2:], starts=True, mirror=True)
    assert [r.kind for r in records] == [RecordKind.START, RecordKind.STOP]


# -- forking and failover at a stateful proxy --------------------------------
#
# The proxy's capture agent mirrors both sides: `call.x()` is what the caller
# and the proxy exchange (one Via), `forwarded(...)` what the proxy and a
# branch exchange (one Via more). A branch's replies are mirrored as the proxy
# receives them; only the best failure, or any 2xx, goes on upstream.


def branch(tag: str) -> Call:
    """The same call, answered by another branch (another To-tag)."""
    return Call(callee_tag=tag)


def test_failover_to_a_second_gateway_after_a_branch_503() -> None:
    call = Call()
    gw1, gw2 = branch("gw1"), branch("gw2")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (0.5, forwarded(gw1.response(503))),  # held by the proxy: failure_route tries gw2
        (0.5, forwarded(gw1.request("ACK", 1))),
        (0.51, forwarded(call.invite())),
        (2.0, forwarded(gw2.response(180))),
        (2.01, gw2.response(180)),
        (5.0, forwarded(gw2.response(200))),
        (5.01, gw2.response(200)),
        (5.05, gw2.request("ACK", 1)),
        (65.0, gw2.request("BYE", 2)),
    ]
    t = tracker()
    assert play(t, steps[:-1]) == []
    record = only(play(t, steps[-1:]))
    assert (record.answered, record.sip_code, record.disconnect_cause) == (True, 200, 16)
    assert record.duration_ms == 60_000
    assert record.pdd_ms == 2_000
    assert t.expire(at(10_000_000)) == []


def test_voicemail_answers_after_the_phone_gave_480() -> None:
    call = Call()
    phone, voicemail = branch("phone"), branch("vm")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (1.0, forwarded(phone.response(180))),
        (1.01, phone.response(180)),
        (30.0, forwarded(phone.response(480, extra=["Reason: Q.850;cause=19"]))),
        (30.01, forwarded(call.invite())),  # to voicemail, same CSeq
        (31.0, forwarded(voicemail.response(200))),
        (31.01, voicemail.response(200)),
        (60.0, voicemail.request("BYE", 2)),
    ]
    record = only(play(tracker(), steps))
    assert (record.answered, record.sip_code) == (True, 200)
    assert record.connect_time == at(31)
    assert record.duration_ms == 29_000


def test_parallel_fork_one_branch_busy_the_other_answers() -> None:
    call = Call()
    busy, answering = branch("a"), branch("b")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (0.02, forwarded(call.invite())),  # the second branch
        (2.0, forwarded(busy.response(486))),
        (5.0, forwarded(answering.response(200))),
        (5.01, answering.response(200)),
        (65.0, answering.request("BYE", 2)),
    ]
    record = only(play(tracker(), steps))
    assert (record.answered, record.sip_code, record.duration_ms) == (True, 200, 60_000)
    assert call_outcome(record) is CallOutcome.ANSWERED


def test_ring_timeout_the_proxy_cancels_the_phone_then_voicemail_answers() -> None:
    call = Call()
    phone, voicemail = branch("phone"), branch("vm")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (1.0, forwarded(phone.response(180))),
        (1.01, phone.response(180)),
        (20.0, forwarded(call.request("CANCEL", 1))),  # the proxy's CANCEL, not the caller's
        (20.01, forwarded(phone.response(200, method="CANCEL"))),
        (20.02, forwarded(phone.response(487))),
        (20.03, forwarded(call.invite())),
        (21.0, forwarded(voicemail.response(200))),
        (21.01, voicemail.response(200)),
        (50.0, voicemail.request("BYE", 2)),
    ]
    t = tracker()
    record = only(play(t, steps))
    assert (record.answered, record.sip_code, record.duration_ms) == (True, 200, 29_000)
    assert t.expire(at(10_000_000)) == []


def test_caller_cancel_still_ends_the_call_when_the_proxy_cancels_branches_too() -> None:
    call = Call()
    phone = branch("phone")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (1.0, forwarded(phone.response(180))),
        (9.0, call.request("CANCEL", 1)),
        (9.01, forwarded(call.request("CANCEL", 1))),
        (9.02, forwarded(phone.response(487))),
        (9.03, phone.response(487)),
    ]
    record = only(play(tracker(), steps))
    assert (record.sip_code, record.incomplete) == (487, False)
    assert record.disconnect_time == at(9)
    assert call_outcome(record) is CallOutcome.CANCELLED


def test_redirect_followed_by_the_proxy_ends_with_the_new_targets_answer() -> None:
    call = Call()
    first, second = branch("r"), branch("n")
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (0.5, forwarded(first.response(302))),  # the proxy recurses on the Contact itself
        (0.51, forwarded(call.invite())),
        (3.0, forwarded(second.response(486))),
        (3.01, second.response(486)),
    ]
    record = only(play(tracker(), steps))
    assert (record.sip_code, record.disconnect_cause) == (486, 17)
    assert record.disconnect_time == at(3.01)
    assert call_outcome(record) is CallOutcome.BUSY


def test_only_forwarded_copies_mirrored_still_end_the_call() -> None:
    call = Call()
    steps = [
        (0.0, forwarded(call.invite())),
        (1.0, forwarded(call.response(180))),
        (3.0, forwarded(call.response(486))),
    ]
    record = only(play(tracker(), steps))
    assert (record.sip_code, record.incomplete) == (486, False)
    assert record.disconnect_time == at(3)


def test_forwarded_invite_seen_first_still_tells_branches_apart() -> None:
    call = Call()
    steps = [
        (0.0, forwarded(call.invite())),
        (0.001, call.invite()),
        (2.0, forwarded(branch("a").response(486))),
        (5.0, forwarded(branch("b").response(200))),
        (65.0, branch("b").request("BYE", 2)),
    ]
    record = only(play(tracker(), steps))
    assert (record.answered, record.duration_ms) == (True, 60_000)


def test_branch_failures_without_the_callers_final_expire_with_the_best() -> None:
    call = Call()
    t = tracker(max_dialog_age_s=3600.0)
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (2.0, forwarded(branch("a").response(503))),
        (3.0, forwarded(branch("b").response(486, extra=["Reason: Q.850;cause=17"]))),
        (4.0, forwarded(branch("c").response(487))),
        # The caller's final response was lost in capture.
    ]
    assert play(t, steps) == []
    assert t.expire(at(3599)) == []
    record = only(t.expire(at(3600)))
    assert (record.answered, record.sip_code, record.disconnect_cause) == (False, 486, 17)
    assert record.incomplete is True
    assert record.disconnect_time == at(4)  # when the last branch gave up
    assert call_outcome(record) is CallOutcome.BUSY


def test_a_6xx_branch_failure_beats_the_others() -> None:
    call = Call()
    t = tracker(max_dialog_age_s=60.0)
    steps = [
        (0.0, call.invite()),
        (0.01, forwarded(call.invite())),
        (2.0, forwarded(branch("a").response(486))),
        (3.0, forwarded(branch("b").response(603))),
        (4.0, forwarded(branch("c").response(404))),
    ]
    assert play(t, steps) == []
    assert only(t.expire(at(61))).sip_code == 603


def test_two_answers_from_parallel_forks_only_the_kept_dialogs_bye_ends_the_call() -> None:
    call = Call()
    kept, dropped = branch("a"), branch("b")
    steps = [
        (0.0, call.invite()),
        (5.0, kept.response(200)),
        (5.2, dropped.response(200)),
        (5.3, kept.request("ACK", 1)),
        (5.4, dropped.request("ACK", 1)),
        (6.0, dropped.request("BYE", 2)),  # the caller drops the second answer at once
        (6.01, dropped.response(200, cseq=2, method="BYE")),
        (30.0, dropped.request("BYE", 1, from_callee=True)),  # a stray BYE of that dialog
    ]
    t = tracker()
    assert play(t, steps) == []
    assert t.open_dialogs == 1
    record = only(play(t, [(120.0, kept.request("BYE", 1, from_callee=True))]))
    assert record.connect_time == at(5)
    assert record.duration_ms == 115_000
    assert record.disconnect_time == at(120)
    assert t.expire(at(10_000_000)) == []


# -- a 2xx with two To-tags ----------------------------------------------------
#
# Some phones answer `To: ...;tag=a;tag=b`. A proxy forwards that header as it
# is (Kamailio does: tests/test_peers_kamailio.py), and each party then keeps
# the tag its parser keeps: the first, the last (Kamailio's own parser, and so
# its accounting, keeps the last), or both, echoed as received. Whichever it
# is, the call's BYE must end the call.

TWO_TAGS = "a6c85cf;tag=b7d96dg"


def two_tag_call(bye_tag: str, *, callee_hangs_up: bool = False) -> list[Step]:
    """An answered call whose 2xx carries two To-tags; its BYE names the dialog by `bye_tag`."""
    answered = Call(callee_tag=TWO_TAGS)
    later = Call(callee_tag=bye_tag)
    bye_cseq = 1 if callee_hangs_up else 2
    return [
        (0.0, answered.invite()),
        (2.0, Call().response(180)),
        (5.0, answered.response(200)),
        (5.05, later.request("ACK", 1)),
        (65.0, later.request("BYE", bye_cseq, from_callee=callee_hangs_up)),
        (65.05, later.response(200, cseq=bye_cseq, method="BYE", from_callee=callee_hangs_up)),
    ]


@pytest.mark.parametrize("bye_tag", ["b7d96dg", "a6c85cf", TWO_TAGS, "b7d96dg;tag=a6c85cf"])
@pytest.mark.parametrize("callee_hangs_up", [False, True])
@pytest.mark.parametrize("mirror", [False, True])
def test_a_2xx_with_two_to_tags_ends_with_a_bye_naming_either(
    bye_tag: str, callee_hangs_up: bool, mirror: bool
) -> None:
    t = tracker(max_dialog_age_s=3600.0)
    record = only(play(t, two_tag_call(bye_tag, callee_hangs_up=callee_hangs_up), mirror=mirror))
    # Complete, at the BYE, with its cause: not left open until max_dialog_age_s.
    assert t.open_dialogs == 0
    assert record.incomplete is False
    assert record.times_derived is False
    assert record.answered is True
    assert record.connect_time == at(5)
    assert record.disconnect_time == at(65)
    assert record.duration_ms == 60_000
    assert (record.sip_code, record.disconnect_cause) == (200, 16)
    assert t.expire(at(10_000_000)) == []
    assert t.expired_total == 0


def test_copies_of_the_2xx_add_their_tags_to_the_dialog() -> None:
    # The copy seen first names the dialog by one tag only (a proxy that rewrote
    # To); the other copy, sharing it, adds the second: the BYE may carry either.
    first, both = Call(callee_tag="b7d96dg"), Call(callee_tag=TWO_TAGS)
    steps = [
        (0.0, Call().invite()),
        (5.0, forwarded(first.response(200))),
        (5.001, both.response(200)),
        (65.0, Call(callee_tag="a6c85cf").request("BYE", 1, from_callee=True)),
    ]
    record = only(play(tracker(), steps))
    assert (record.duration_ms, record.incomplete) == (60_000, False)


def test_a_bye_naming_neither_tag_of_the_2xx_is_another_dialogs() -> None:
    t = tracker(max_dialog_age_s=3600.0)
    steps = two_tag_call("c0ffee")  # a second fork's dialog, answered later
    assert play(t, steps) == []
    assert t.open_dialogs == 1
    record = only(play(t, [(70.0, Call(callee_tag="a6c85cf").request("BYE", 3))]))
    assert record.disconnect_time == at(70)


# -- retries after a challenge or redirect -----------------------------------


def test_challenge_then_authenticated_invite_is_one_call() -> None:
    call = Call()
    steps = [
        (0.0, call.invite(with_pai=False)),
        (0.05, call.response(407)),
        (0.06, call.request("ACK", 1)),
        (0.5, call.invite(cseq=2)),
        (2.0, call.response(180, cseq=2)),
        (4.0, call.response(200, cseq=2)),
        (4.1, call.request("ACK", 2)),
        (34.0, call.request("BYE", 3)),
    ]
    t = tracker()
    record = only(play(t, steps, mirror=True))
    assert record.sip_code == 200
    assert record.setup_time == at(0)
    assert record.pdd_ms == 2_000
    assert record.duration_ms == 30_000
    assert record.calling == "+4930111999"
    assert t.expire(at(10_000_000)) == []


def test_challenge_never_answered_ends_with_it() -> None:
    call = Call()
    t = tracker()
    steps = [(0.0, call.invite()), (0.05, call.response(407)), (0.06, call.request("ACK", 1))]
    assert play(t, steps, mirror=True) == []
    assert t.expire(at(20)) == []
    record = only(t.expire(at(40)))
    assert (record.sip_code, record.disconnect_cause) == (407, 21)
    assert record.disconnect_time == at(0.05)
    assert record.incomplete is False
    assert call_outcome(record) is CallOutcome.FAILED


# -- expiry and eviction -----------------------------------------------------


def test_lost_bye_is_closed_by_expire_as_incomplete() -> None:
    call = Call()
    t = tracker(max_dialog_age_s=3600.0)
    steps = answered_call(call)[:5]
    steps += [(900.0, call.request("INVITE", 2)), (900.1, call.response(200, cseq=2))]
    assert play(t, steps) == []
    assert t.expire(at(3599)) == []
    record = settle(only(t.expire(at(3600))))
    assert record.incomplete is True
    assert record.times_derived is True
    assert record.answered is True
    assert record.connect_time == at(5)
    # The session refresh is the last sign of life: a lower bound of the duration.
    assert record.disconnect_time == at(900.1)
    assert record.duration_ms == 895_100
    assert t.expired_total == 1
    assert t.open_dialogs == 0
    # The BYE finally shows up: nothing more is emitted.
    assert play(t, [(3700.0, call.request("BYE", 3))]) == []


def test_unanswered_dialog_expires_incomplete() -> None:
    t = tracker(max_dialog_age_s=60.0)
    assert play(t, [(0.0, Call().invite()), (1.0, Call().response(180))]) == []
    record = settle(only(t.expire(at(61))))
    assert (record.answered, record.sip_code, record.incomplete) == (False, None, True)
    assert record.duration_ms == 0
    assert call_outcome(record) is CallOutcome.FAILED


def test_expire_only_takes_what_is_due() -> None:
    t = tracker(max_dialog_age_s=60.0)
    for index in range(5):
        play(t, [(index * 10.0, Call(call_id=f"c{index}").invite())])
    closed = t.expire(at(85))
    assert [r.session_id.split("\x1f")[0] for r in closed] == ["c0", "c1", "c2"]
    assert t.open_dialogs == 2


def test_eviction_at_max_dialogs() -> None:
    t = tracker(max_dialogs=2)
    calls = [Call(call_id=f"call-{index}") for index in range(3)]
    assert play(t, [(0.0, calls[0].invite()), (1.0, calls[1].invite())]) == []
    evicted = only(play(t, [(2.0, calls[2].invite())]))
    assert evicted.session_id == dialog_session_id("call-0", calls[0].caller_tag)
    assert evicted.incomplete is True
    assert t.evicted_total == 1
    assert t.open_dialogs == 2
    # The evicted call goes on, but it is gone: no second record for it.
    assert play(t, [(3.0, calls[0].response(200)), (9.0, calls[0].request("BYE", 2))]) == []
    # The others are still followed.
    assert only(play(t, [(4.0, calls[1].response(486))])).sip_code == 486


def test_a_future_dated_dialog_does_not_hold_back_the_expiry_of_others() -> None:
    """Each dialog expires by its own setup time: one INVITE dated ten days ahead (an
    agent's clock, or a forged HEP time), seen first, must not keep later dialogs open."""
    t = tracker(max_dialog_age_s=60.0)
    play(t, [(10 * 86400.0, Call(call_id="ahead").invite())], source="agent-ahead")
    for index in range(3):
        play(t, [(index * 10.0, Call(call_id=f"c{index}").invite())])
    closed = t.expire(at(75))
    assert [r.session_id.split("\x1f")[0] for r in closed] == ["c0", "c1"]
    assert all(r.incomplete for r in closed)
    assert t.open_dialogs == 2
    assert [r.source for r in t.expire(at(100))] == [SOURCE]
    assert t.expire(at(10 * 86400.0 + 59)) == []
    assert [r.source for r in t.expire(at(10 * 86400.0 + 60))] == ["agent-ahead"]
    assert t.expired_total == 4
    assert t.open_dialogs == 0


def test_a_future_dated_cancel_does_not_hold_back_the_deadlines_of_others() -> None:
    t = tracker()
    ahead = Call(call_id="ahead")
    assert play(t, [(86400.0, ahead.invite()), (86409.0, ahead.request("CANCEL", 1))]) == []
    assert play(t, cancelled_call(Call())[:4]) == []  # its 487 is lost
    record = only(t.expire(at(9 + 33)))
    assert record.session_id == dialog_session_id(Call().call_id, Call().caller_tag)
    assert (record.sip_code, record.incomplete) == (487, True)
    assert t.open_dialogs == 1


def test_a_future_dated_bye_does_not_keep_other_closed_dialogs_tombstoned() -> None:
    t = tracker()
    ahead, call = Call(call_id="ahead"), Call()
    play(t, [(86400.0 + offset, message) for offset, message in answered_call(ahead)])
    assert len(play(t, answered_call(call))) == 1
    t.expire(at(65.05 + 33))
    # Its tombstone is gone: the same Call-ID and From-tag start a new dialog.
    play(t, [(200.0, call.invite())])
    assert t.open_dialogs == 1


@settings(max_examples=100, deadline=None)
@given(
    setups=st.lists(
        st.one_of(st.floats(0, 600), st.floats(-10 * 86400, 10 * 86400)),
        min_size=1,
        max_size=40,
    ),
    checks=st.lists(st.floats(0, 700), min_size=1, max_size=5),
)
@example(setups=[6.715781032128215e-179], checks=[60.0])  # due to the microsecond
def test_expiry_closes_exactly_the_dialogs_due_whatever_their_order(
    setups: list[float], checks: list[float]
) -> None:
    t = tracker(max_dialog_age_s=60.0)
    for index, setup in enumerate(setups):
        play(t, [(setup, Call(call_id=f"c{index}").invite())])
    expired: set[int] = set()
    for now in sorted(checks):
        closed = {int(r.session_id.split("\x1f")[0][1:]) for r in t.expire(at(now))}
        # judged as the tracker does, on datetimes (to the microsecond): a setup 1e-179 s
        # after the start is the start
        limit = at(now) - timedelta(seconds=60)
        due = {i for i, setup in enumerate(setups) if at(setup) <= limit} - expired
        assert closed == due
        expired |= closed
    assert t.open_dialogs == len(setups) - len(expired)


def test_timetable_memory_follows_the_keys_it_holds() -> None:
    table: _Timetable[int] = _Timetable()
    for key in range(20_000):
        table.set(key, at(key))
        if key >= 10:
            table.discard(key - 10)  # most keys go before they are due
    assert len(table) == 10
    assert len(table._heap) <= 2 * len(table) + 1024
    assert table.pop_due(at(30_000)) == list(range(19_990, 20_000))
    assert len(table) == 0


def test_sources_are_kept_apart() -> None:
    t = tracker()
    steps = answered_call(Call())
    records = play(t, steps, source="proxy-a") + play(t, steps, source="proxy-b")
    assert sorted(r.source for r in records) == ["proxy-a", "proxy-b"]


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_dialogs"):
        DialogTracker(0, 60.0)
    with pytest.raises(ValueError, match="max_dialog_age_s"):
        DialogTracker(10, 0.0)


# -- properties --------------------------------------------------------------

_SCENARIOS = {
    "answered": answered_call(Call()),
    "callee_bye": answered_call(Call(), callee_hangs_up=True),
    "busy": failed_call(Call(), 486, reason="Q.850;cause=17"),
    "cancelled": cancelled_call(Call()),
    "failover": [
        (0.0, Call().invite()),
        (0.01, forwarded(Call().invite())),
        (0.5, forwarded(branch("gw1").response(503))),
        (0.51, forwarded(Call().invite())),
        (5.0, forwarded(Call().response(200))),
        (5.01, Call().response(200)),
        (65.0, Call().request("BYE", 2)),
    ],
}


@settings(max_examples=200)
@given(
    name=st.sampled_from(sorted(_SCENARIOS)),
    copies=st.lists(st.integers(1, 3), min_size=7, max_size=7),
)
def test_duplicates_in_order_change_nothing(name: str, copies: list[int]) -> None:
    steps = _SCENARIOS[name]
    expected = only(play(tracker(), steps))
    duplicated = [step for step, n in zip(steps, copies, strict=False) for _ in range(n)]
    t = tracker()
    records = play(t, duplicated) + t.expire(at(10_000_000))
    assert only(records) == expected


@settings(max_examples=300)
@given(
    name=st.sampled_from(sorted(_SCENARIOS)),
    order=st.permutations(range(14)),
    mirror=st.booleans(),
)
def test_any_arrival_order_gives_exactly_one_record(
    name: str, order: Sequence[int], mirror: bool
) -> None:
    steps = _SCENARIOS[name] * 2  # every message twice (retransmitted)
    arrivals = [steps[index] for index in order if index < len(steps)]
    t = tracker()
    records = play(t, arrivals, mirror=mirror) + t.expire(at(10_000_000))
    record = only(records)
    assert record.session_id == dialog_session_id(Call().call_id, Call().caller_tag)
    assert t.open_dialogs == 0


# -- outcome classification and RFC 3398 ---------------------------------------


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (200, 16),
        (404, 1),
        (486, 17),
        (600, 17),
        (480, 18),
        (408, 102),
        (503, 41),
        (603, 21),
        (604, 1),
        (484, 28),
        (410, 22),
        (487, 16),
        (488, 127),
        (302, 127),
    ],
)
def test_q850_from_sip_status(status: int, cause: int) -> None:
    assert q850_from_sip_status(status) == cause


BASE_RECORD = CallRecord(
    kind=RecordKind.STOP,
    source="sbc-fra-1",
    protocol=Protocol.RADIUS,
    session_id="s1",
    event_time=T0,
)


@pytest.mark.parametrize(
    ("answered", "sip_code", "cause", "duration_ms", "outcome"),
    [
        (True, None, None, 0, CallOutcome.ANSWERED),
        (None, None, None, 12_000, CallOutcome.ANSWERED),
        (None, 200, None, None, CallOutcome.ANSWERED),
        (False, 486, 17, 0, CallOutcome.BUSY),
        (False, None, 17, None, CallOutcome.BUSY),
        (False, 600, None, 0, CallOutcome.BUSY),
        (False, 480, None, 0, CallOutcome.NO_ANSWER),
        (False, 408, 102, 0, CallOutcome.NO_ANSWER),
        (False, None, 19, None, CallOutcome.NO_ANSWER),
        (False, None, 18, None, CallOutcome.NO_ANSWER),
        (False, 487, 16, 0, CallOutcome.CANCELLED),
        (False, None, 16, 0, CallOutcome.CANCELLED),
        (False, 404, 1, 0, CallOutcome.FAILED),
        (False, 503, 41, 0, CallOutcome.FAILED),
        (False, None, 34, None, CallOutcome.FAILED),
        (None, None, None, None, CallOutcome.FAILED),
        (False, None, None, 5_000, CallOutcome.FAILED),
    ],
)
def test_call_outcome(
    answered: bool | None,
    sip_code: int | None,
    cause: int | None,
    duration_ms: int | None,
    outcome: CallOutcome,
) -> None:
    record = BASE_RECORD.replace(
        answered=answered,
        sip_code=sip_code,
        disconnect_cause=cause,
        duration_ms=duration_ms,
    )
    assert call_outcome(record) is outcome
    # The sink classifies stored rows by their fields alone: same answer.
    assert outcome_of(answered, sip_code, cause, duration_ms) is outcome


def test_outcome_labels_match_the_metric_vocabulary() -> None:
    assert [str(o) for o in CALL_OUTCOMES] == [
        "answered",
        "busy",
        "no_answer",
        "failed",
        "cancelled",
    ]
