"""The dialog tracker: a stream of captured SIP messages in, one CallRecord per call out.

A capture agent mirrors every SIP message a proxy handles, usually twice (the
copy received and the copy forwarded), with retransmissions, re-INVITEs and
in-dialog chatter mixed in. `DialogTracker` follows each call, identified by
its Call-ID and the From-tag of its initial INVITE, from that INVITE through
ringing and answer to its end (a BYE from either side, a CANCEL answered by
487, or a failure response), and emits exactly one STOP record for it (plus,
for an answered call, a START when it is answered: see "Restarts"). It is
pure and synchronous: no I/O, no clock of its own (capture timestamps come in
with the messages and `expire` is told the time), memory bounded by
`max_dialogs`. It must never emit a second record for a dialog it has already
closed, never hold a dialog past `max_dialog_age_s`, and never store
anything but the raw user parts a CallRecord carries (the pipeline redacts
them).

Choices the records depend on:

- Restarts. The tracker's state lives in memory, but a carrier bills the
  long calls that span a restart or an upgrade of the collector. So an
  answered call emits a START (same key as its STOP) that the sink keeps
  durably as an open call, and a BYE of a dialog the tracker never saw begin
  emits an END for each orientation of its tags: the sink completes the one
  whose START it holds (connect time, numbers) and drops the other without
  a trace. Calls still ringing at a restart are not recorded.

- Record key. SIP carries no setup time of its own, so `setup_stamp` is None,
  `leg` is "" and `session_id` is Call-ID and From-tag joined by a unit
  separator (`dialog_session_id`). The From-tag goes into `session_id`, not
  `leg`, because the pipeline hashes the session id but stores `leg` as is,
  and a tag is an opaque per-call identifier like the Call-ID. Two collectors
  seeing the same dialog build the same string and so the same key.
- Mirrored copies and retransmissions. Rather than remembering every
  (Call-ID, CSeq, method or status) it has seen, the tracker makes each
  transaction step idempotent: setup, ringing, answer and cancel are set by
  the first copy and never moved, a final response or BYE closes the dialog,
  and a closed dialog leaves a short-lived tombstone so that a late copy or a
  retransmission of its INVITE cannot open it again. The first copy wins, so
  the Request-URI user is the one the caller dialled, before the proxy
  rewrote it; a P-Asserted-Identity or correlation header that only the
  forwarded copy carries still fills the gap.
- Retryable failures. A 401/407 challenge, a 422 or a 3xx redirect to the
  initial INVITE is usually followed by a new INVITE with the same Call-ID
  and From-tag and a higher CSeq. Closing the dialog there would give the
  real call the key of a failed attempt, so such a response only closes the
  dialog when no new INVITE follows within `retry_window_s` (the call then
  ends with that response, complete).
- Causes. A `Reason: Q.850;cause=N` on the BYE, the final response or the
  CANCEL wins; otherwise a BYE is 16 and a failure maps through
  `q850_from_sip_status` (RFC 3398; 487 after CANCEL is 16, see there).
- Incomplete calls. A dialog closed by `expire` or evicted at `max_dialogs`
  is emitted with `incomplete=True`; its disconnect time is the last message
  seen in it (a lower bound, so `times_derived=True`). A BYE without a seen
  2xx proves an answer whose time was lost: answered, no connect time, no
  duration, incomplete.
- Forking and failover at the capture point. A stateful proxy (RFC 3261
  16.7) passes 1xx and 2xx upstream at once but holds every branch's
  failure until all branches are done, then sends the caller only the best
  one; serial forking and failover (voicemail after no answer, the next
  gateway after a 503, a redirect the proxy follows itself) send a new
  branch with the same Call-ID, From-tag and CSeq. A capture agent mirrors
  the replies of every branch and the CANCELs the proxy sends to branches.
  They are told apart by their Via count: a copy of a request the proxy
  forwards, and the replies to it, carry one Via more than those on the
  caller's side. The dialog remembers the fewest Vias seen on a copy of its
  initial INVITE; a failure response or a CANCEL with more Vias than that
  belongs to a branch and never ends the call (a branch failure is kept,
  the best one per RFC 3261 16.7, in case the dialog expires without the
  caller's final response ever being seen). When only the forwarded copies
  are mirrored, every copy has the same count and all of them count.
- Two 2xx from parallel branches. The caller acknowledges both and hangs up
  the one it does not keep with a BYE. The To-tags of the first 2xx name
  the call's dialog: only a BYE of that dialog (from either side) ends it.
- Two To-tags in one 2xx (`To: ...;tag=a;tag=b`, as some phones answer).
  The proxy forwards the header unchanged, and then each party keeps the
  tag its parser keeps: the first, the last (Kamailio's parser, and so its
  accounting, keeps the last), or both, echoed as received. So the dialog
  is known under every To-tag of its first 2xx, and of any copy of that
  2xx sharing one of them, and a later BYE carrying any one of them, in
  To from the caller or in From from the callee, ends the call. A 2xx of
  another branch shares none of them and stays another dialog.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.outcome import CAUSE_NORMAL_CLEARING, q850_from_sip_status
from collector.receivers.sip.message import SipMessage

#: how long a failed INVITE may be retried, and a closed dialog stays tombstoned
#: (64 * T1, the SIP transaction timeout)
DEFAULT_RETRY_WINDOW_S = 32.0

#: final responses to an initial INVITE that a caller usually answers with a new INVITE
RETRYABLE_STATUSES = frozenset({401, 407, 422, 494} | set(range(300, 400)))

_CANCELLED = 487
_ONE_MS = timedelta(milliseconds=1)


def _branch_rank(status: int) -> int:
    """How good a branch's failure is as the call's outcome (lower is better), per RFC 3261 16.7.

    Any 6xx wins; then the lowest class, a 3xx last because a proxy that
    gets one usually follows it itself, and a 487 after other 4xx because
    it is mostly the answer to the proxy's own CANCEL of a losing branch.
    """
    if status >= 600:
        return 0
    if status < 400:
        return 4
    if status < 500:
        return 2 if status == _CANCELLED else 1
    return 3


_DialogKey = tuple[str, str, str]
_Key = TypeVar("_Key", bound=Hashable)

#: stale heap entries a timetable tolerates beyond its live ones before it rebuilds
_COMPACT_SLACK = 1024


class _Timetable(Generic[_Key]):
    """Keys with a due time, each handed back once its time has come, in any order they were set.

    Capture times come from the agents, so a key set later may well be due
    earlier (one agent's clock is ahead, one INVITE is dated next year): a
    scan in insertion order that stops at the first key not yet due would let
    one such key hold back every key behind it. So the due times sit in a
    heap, beside a dict of each key's current due time. Setting a key costs
    O(log n), discarding it O(1): its heap entry stays behind and is skipped
    when it surfaces (the dict no longer agrees with it). Once such stale
    entries outnumber the live ones, the heap is rebuilt from the dict, so
    memory stays proportional to the keys held and the cost per key O(log n)
    amortized. The dict keeps insertion order for `oldest`.
    """

    __slots__ = ("_due", "_heap", "_sequence")

    def __init__(self) -> None:
        self._due: dict[_Key, datetime] = {}
        # (due, tie-breaker, key): the tie-breaker keeps keys from ever being compared
        self._heap: list[tuple[datetime, int, _Key]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: _Key) -> bool:
        return key in self._due

    def set(self, key: _Key, due: datetime) -> None:
        """Make `key` due at `due` (moving it to the end of the insertion order)."""
        due_of = self._due
        due_of.pop(key, None)
        due_of[key] = due
        heap = self._heap
        heapq.heappush(heap, (due, next(self._sequence), key))
        if len(heap) > 2 * len(due_of) + _COMPACT_SLACK:
            self._compact()

    def discard(self, key: _Key) -> None:
        """Forget `key` (nothing when it is not held)."""
        self._due.pop(key, None)

    def oldest(self) -> _Key:
        """The key set longest ago (the timetable must not be empty)."""
        return next(iter(self._due))

    def pop_due(self, now: datetime) -> list[_Key]:
        """Remove and return every key due at or before `now`, soonest first."""
        heap, due_of = self._heap, self._due
        found: list[_Key] = []
        while heap and heap[0][0] <= now:
            due, _tie, key = heapq.heappop(heap)
            if due_of.get(key) == due:
                del due_of[key]
                found.append(key)
        return found

    def _compact(self) -> None:
        sequence = self._sequence
        self._heap = [(due, next(sequence), key) for key, due in self._due.items()]
        heapq.heapify(self._heap)


def dialog_session_id(call_id: str, from_tag: str | None) -> str:
    """The `session_id` of a SIP call's record: Call-ID and From-tag of its initial INVITE.

    Joined by a unit separator (0x1F), which a valid Call-ID or tag never
    contains. Deterministic, so every collector makes the same record key.
    """
    return f"{call_id}\x1f{from_tag or ''}"


class _Dialog:
    """What the tracker remembers of one call in progress."""

    __slots__ = (
        "answer",
        "answer_tags",
        "branch_cause",
        "branch_status",
        "branch_time",
        "call_id",
        "called",
        "calling",
        "cancel",
        "cancel_cause",
        "correlation",
        "cseq",
        "final_cause",
        "final_status",
        "final_time",
        "from_tag",
        "key",
        "last",
        "pai",
        "ring",
        "setup",
        "source",
        "to_user",
        "vias",
    )

    def __init__(self, key: _DialogKey, msg: SipMessage, ts: datetime, source: str) -> None:
        self.key = key
        self.source = source
        self.call_id = msg.call_id
        self.from_tag = key[2]
        self.cseq = msg.cseq
        self.setup = ts
        self.last = ts
        self.ring: datetime | None = None
        self.answer: datetime | None = None
        self.cancel: datetime | None = None
        self.cancel_cause: int | None = None
        self.final_status: int | None = None
        self.final_time: datetime | None = None
        self.final_cause: int | None = None
        self.calling = msg.from_user
        self.pai = msg.pai_user
        self.called = msg.ruri_user
        self.to_user = msg.to_user
        self.correlation = msg.correlation
        #: the To-tags of the first 2xx (and its copies): the dialog a BYE must belong to
        self.answer_tags: frozenset[str] = frozenset()
        #: the fewest Vias on a copy of the initial INVITE (the caller's side)
        self.vias = msg.via_count
        # The best failure a branch sent the proxy, and when the last one came.
        self.branch_status: int | None = None
        self.branch_time: datetime | None = None
        self.branch_cause: int | None = None

    def fill_from_copy(self, msg: SipMessage) -> None:
        """Take identity fields that an earlier copy of the INVITE lacked."""
        if self.pai is None:
            self.pai = msg.pai_user
        if self.correlation is None:
            self.correlation = msg.correlation
        if self.called is None:
            self.called = msg.ruri_user
        if self.calling is None:
            self.calling = msg.from_user


class DialogTracker:
    """Follows SIP dialogs and turns each finished call into one STOP CallRecord.

    Feed it every parsed SIP message with its capture time and configured
    source name; call `expire` periodically with the current time. Both
    return the records of calls that just ended. `open_dialogs`,
    `evicted_total` and `expired_total` feed the receiver's metrics.
    """

    def __init__(
        self,
        max_dialogs: int,
        max_dialog_age_s: float,
        correlation_header: str | None = None,
        *,
        retry_window_s: float = DEFAULT_RETRY_WINDOW_S,
    ) -> None:
        if max_dialogs < 1:
            raise ValueError("max_dialogs must be at least 1")
        if max_dialog_age_s <= 0 or retry_window_s < 0:
            raise ValueError("max_dialog_age_s must be positive and retry_window_s not negative")
        self.max_dialogs = max_dialogs
        self.max_dialog_age = timedelta(seconds=max_dialog_age_s)
        self.retry_window = timedelta(seconds=retry_window_s)
        #: the header parse_sip should extract for `CallRecord.correlation`
        #: (None: a record's correlation is its Call-ID)
        self.correlation_header = correlation_header
        #: dialogs closed early because the tracker was full
        self.evicted_total = 0
        #: dialogs closed by `expire` because they outlived max_dialog_age_s
        self.expired_total = 0
        # Insertion order is creation order: the first entry is the oldest dialog.
        self._dialogs: dict[_DialogKey, _Dialog] = {}
        # Each open dialog by its setup time, for max_dialog_age_s.
        self._ages: _Timetable[_DialogKey] = _Timetable()
        # Dialogs waiting for a retry after a retryable failure, or for the 487 after a CANCEL.
        self._deadlines: _Timetable[_DialogKey] = _Timetable()
        # Recently closed dialogs (key -> until when), so late copies cannot reopen them.
        self._closed: _Timetable[_DialogKey] = _Timetable()

    @property
    def open_dialogs(self) -> int:
        """How many calls are being followed now (for a gauge)."""
        return len(self._dialogs)

    @property
    def answered_dialogs(self) -> int:
        """How many of the open dialogs were answered (their START was emitted)."""
        return sum(1 for dialog in self._dialogs.values() if dialog.answer is not None)

    def feed(self, msg: SipMessage, ts: datetime, source: str) -> list[CallRecord]:
        """Account for one captured SIP message; return the records of calls it ended.

        `ts` is the capture time (timezone-aware), `source` the configured
        name of the agent that sent it. Copies, retransmissions and messages
        of unknown dialogs change nothing.
        """
        dialogs = self._dialogs
        tag = msg.from_tag or ""
        key = (source, msg.call_id, tag)
        dialog = dialogs.get(key)
        if dialog is None:
            to_tag = msg.to_tag
            other = to_tag or ""
            if other != tag:
                # A request from the callee (BYE, re-INVITE): the tags are swapped.
                dialog = dialogs.get((source, msg.call_id, other))
            if dialog is None:
                if msg.status == 0:
                    method = msg.method
                    if to_tag is None and method == "INVITE":
                        return self._open(key, msg, ts, source)
                    if method == "BYE" and to_tag is not None:
                        return self._end_unknown(msg, ts, source, tag, to_tag)
                return []
        if ts > dialog.last:
            dialog.last = ts

        status = msg.status
        if status == 0:
            method = msg.method
            if method == "BYE":
                answer_tags = dialog.answer_tags
                # Only the answered dialog's BYE ends the call, whichever side sends it.
                if answer_tags:
                    if tag == dialog.from_tag:
                        if msg.to_tag not in answer_tags and answer_tags.isdisjoint(msg.to_tags):
                            return []
                    elif tag not in answer_tags and answer_tags.isdisjoint(msg.from_tags):
                        return []
                return [self._close_by_bye(dialog, msg, ts)]
            if method == "INVITE":
                self._another_invite(dialog, msg)
            elif method == "CANCEL":
                self._cancel(dialog, msg, ts)
            return []

        # Responses: only those to the initial INVITE (the caller's CSeq) move the call.
        if msg.cseq != dialog.cseq or msg.cseq_method != "INVITE" or tag != dialog.from_tag:
            return []
        if status < 200:
            if 180 <= status < 190 and dialog.ring is None and dialog.answer is None:
                dialog.ring = ts
            return []
        if status < 300:
            if dialog.answer is None:
                dialog.answer = ts
                dialog.answer_tags = frozenset(msg.to_tags)
                return [self._start_record(dialog)]
            # A copy of the first 2xx (it shares a tag) may name the dialog by one more.
            answer_tags = dialog.answer_tags
            tags = msg.to_tags
            if not answer_tags.issuperset(tags) and not answer_tags.isdisjoint(tags):
                dialog.answer_tags = answer_tags.union(tags)
            return []
        if dialog.answer is not None or dialog.final_status is not None:
            # A 487 to a forked branch after another branch answered, or a copy.
            return []
        vias = dialog.vias
        if msg.count_vias(vias + 1) > vias:
            # What a branch answered the proxy, not what the caller got.
            self._branch_failed(dialog, status, ts, msg)
            return []
        if status in RETRYABLE_STATUSES:
            dialog.final_status = status
            dialog.final_time = ts
            dialog.final_cause = msg.reason_cause
            self._set_deadline(dialog.key, ts + self.retry_window)
            return []
        cause = msg.reason_cause
        end = ts
        if status == _CANCELLED and dialog.cancel is not None:
            end = dialog.cancel  # the caller gave up when it sent the CANCEL
            if cause is None:
                cause = dialog.cancel_cause
        return [self._close_failed(dialog, status, end, cause, ts)]

    def expire(self, now: datetime) -> list[CallRecord]:
        """Close what time has settled; return the records.

        `now` must be on the clock of the capture timestamps given to `feed`
        (UTC wall-clock time, when the capture agents keep NTP time).

        A retryable failure not retried within the window ends the call with
        that response; a CANCEL whose 487 never showed up ends it as
        cancelled (incomplete); a dialog older than `max_dialog_age_s` is
        emitted incomplete. Each dialog is judged by its own times, whatever
        the times of the others (see `_Timetable`), at a cost proportional to
        what expires.
        """
        records: list[CallRecord] = []
        dialogs = self._dialogs
        for key in self._deadlines.pop_due(now):
            dialog = dialogs.get(key)
            if dialog is None or dialog.answer is not None:
                continue
            if dialog.final_status is not None and dialog.final_time is not None:
                records.append(
                    self._close_failed(
                        dialog, dialog.final_status, dialog.final_time, dialog.final_cause, now
                    )
                )
            elif dialog.cancel is not None:
                records.append(self._close_incomplete(dialog, now))

        for key in self._ages.pop_due(now - self.max_dialog_age):
            dialog = dialogs.get(key)
            if dialog is None:
                continue
            self.expired_total += 1
            records.append(self._close_incomplete(dialog, now))

        self._closed.pop_due(now)
        return records

    # -- opening ---------------------------------------------------------

    def _open(
        self, key: _DialogKey, msg: SipMessage, ts: datetime, source: str
    ) -> list[CallRecord]:
        """Start following a call at its initial INVITE (unless it just closed)."""
        if key in self._closed:
            return []  # a late copy or retransmission of a call already emitted
        records: list[CallRecord] = []
        dialogs = self._dialogs
        if len(dialogs) >= self.max_dialogs:
            oldest = next(iter(dialogs.values()))
            self.evicted_total += 1
            records.append(self._close_incomplete(oldest, ts))
        dialogs[key] = _Dialog(key, msg, ts, source)
        self._ages.set(key, ts)
        return records

    def _another_invite(self, dialog: _Dialog, msg: SipMessage) -> None:
        """A copy of the initial INVITE, a retry after a retryable failure, or a re-INVITE."""
        if msg.to_tag is not None or (msg.from_tag or "") != dialog.from_tag:
            return  # a re-INVITE inside the dialog: timing never moves
        if msg.cseq == dialog.cseq:
            dialog.fill_from_copy(msg)
            vias = msg.count_vias(dialog.vias)
            if vias < dialog.vias:
                dialog.vias = vias  # the forwarded copy came first
        elif msg.cseq > dialog.cseq and dialog.answer is None:
            # The caller retried (credentials after 401/407, new target after 3xx):
            # the same call goes on under the new CSeq, from the same setup time.
            dialog.cseq = msg.cseq
            dialog.final_status = dialog.final_time = dialog.final_cause = None
            dialog.branch_status = dialog.branch_time = dialog.branch_cause = None
            self._deadlines.discard(dialog.key)
            dialog.fill_from_copy(msg)

    @staticmethod
    def _branch_failed(dialog: _Dialog, status: int, ts: datetime, msg: SipMessage) -> None:
        """Keep a branch's failure, in case the caller's final response is never seen."""
        best = dialog.branch_status
        if best is None or _branch_rank(status) < _branch_rank(best):
            dialog.branch_status = status
            dialog.branch_cause = msg.reason_cause
        if dialog.branch_time is None or ts > dialog.branch_time:
            dialog.branch_time = ts

    def _cancel(self, dialog: _Dialog, msg: SipMessage, ts: datetime) -> None:
        """The caller gives up before answer: wait for the 487 that will end the call.

        A CANCEL with more Vias than the caller's INVITE is the proxy
        cancelling a branch (ring timeout, another branch answered): the call
        goes on.
        """
        if (
            dialog.answer is None
            and dialog.cancel is None
            and msg.cseq == dialog.cseq
            and msg.count_vias(dialog.vias + 1) <= dialog.vias
        ):
            dialog.cancel = ts
            dialog.cancel_cause = msg.reason_cause
            self._set_deadline(dialog.key, ts + self.retry_window)

    def _set_deadline(self, key: _DialogKey, when: datetime) -> None:
        self._deadlines.set(key, when)

    def _correlation(self, dialog: _Dialog) -> str | None:
        """What ties this call's record to the other records of the call.

        With a configured correlation header (a B2BUA's legs have different
        Call-IDs), its value; without, the Call-ID, which a proxy's own
        accounting of the call carries too (Kamailio acc_radius sends it as
        Acct-Session-Id): stored only as a keyed hash, it is how the RADIUS
        and the SIP row of one call are joined. The Call-ID itself is every
        record's `call_id` whatever this says (collector.reconcile joins by it).
        """
        return dialog.correlation if self.correlation_header else dialog.call_id

    # -- durable starts ----------------------------------------------------

    def _start_record(self, dialog: _Dialog) -> CallRecord:
        """The START of an answered call: the sink keeps it as an open call, so a
        BYE seen after a restart of the collector still completes the call."""
        return CallRecord(
            kind=RecordKind.START,
            source=dialog.source,
            protocol=Protocol.SIP,
            session_id=dialog_session_id(dialog.call_id, dialog.from_tag),
            event_time=dialog.answer or dialog.setup,
            calling=dialog.pai if dialog.pai is not None else dialog.calling,
            called=dialog.called if dialog.called is not None else dialog.to_user,
            setup_time=dialog.setup,
            connect_time=dialog.answer,
            correlation=self._correlation(dialog),
            call_id=dialog.call_id,
        )

    def _end_unknown(
        self, msg: SipMessage, ts: datetime, source: str, from_tag: str, to_tag: str
    ) -> list[CallRecord]:
        """A BYE of a dialog this tracker never saw begin (it started before a restart).

        Which side sends it is unknown, so one END per orientation: the sink
        stores the one whose key has a durable START and drops the other
        without a trace (as it drops the ENDs of the BYE's other copies once
        the call is stored). Nothing is tombstoned: an INVITE that arrives
        after its own BYE (reordered capture) is still followed.
        """
        closed = self._closed
        call_id = msg.call_id
        keys = [(source, call_id, from_tag), (source, call_id, to_tag)]
        if any(key in closed for key in keys):
            return []  # a late copy of the BYE that closed the call here
        cause = msg.reason_cause
        records = []
        for key in keys:
            records.append(
                CallRecord(
                    kind=RecordKind.END,
                    source=source,
                    protocol=Protocol.SIP,
                    session_id=dialog_session_id(call_id, key[2]),
                    event_time=ts,
                    disconnect_time=ts,
                    sip_code=200,
                    disconnect_cause=CAUSE_NORMAL_CLEARING if cause is None else cause,
                    call_id=call_id,
                )
            )
        return records

    # -- closing ---------------------------------------------------------

    def _close_by_bye(self, dialog: _Dialog, msg: SipMessage, ts: datetime) -> CallRecord:
        """A BYE from either side ends an answered call."""
        cause = msg.reason_cause
        if cause is None:
            cause = CAUSE_NORMAL_CLEARING
        # Without a seen 2xx the answer was lost in capture: the BYE proves it happened.
        return self._close(
            dialog,
            end=ts,
            answered=True,
            sip_code=200,
            cause=cause,
            incomplete=dialog.answer is None,
            derived=False,
            clock=ts,
        )

    def _close_failed(
        self, dialog: _Dialog, status: int, end: datetime, cause: int | None, clock: datetime
    ) -> CallRecord:
        """A final failure response to the initial INVITE ends an unanswered call."""
        if cause is None:
            cause = q850_from_sip_status(status)
        return self._close(
            dialog,
            end=end,
            answered=False,
            sip_code=status,
            cause=cause,
            incomplete=False,
            derived=False,
            clock=clock,
        )

    def _close_incomplete(self, dialog: _Dialog, clock: datetime) -> CallRecord:
        """Close a dialog whose end was never seen (expired, evicted, lost 487)."""
        status, final_time = dialog.final_status, dialog.final_time
        if status is not None and final_time is not None and dialog.answer is None:
            # A challenge or redirect nobody followed up: the call did end, with it.
            return self._close_failed(dialog, status, final_time, dialog.final_cause, clock)
        if dialog.answer is not None:
            return self._close(
                dialog,
                end=dialog.last,
                answered=True,
                sip_code=200,
                cause=None,
                incomplete=True,
                derived=True,
                clock=clock,
            )
        if dialog.cancel is not None:
            cause = dialog.cancel_cause
            return self._close(
                dialog,
                end=dialog.cancel,
                answered=False,
                sip_code=_CANCELLED,
                cause=q850_from_sip_status(_CANCELLED) if cause is None else cause,
                incomplete=True,
                derived=False,
                clock=clock,
            )
        status = dialog.branch_status
        if status is not None and dialog.branch_time is not None:
            # Branches failed but the caller's final response was never seen.
            cause = dialog.branch_cause
            return self._close(
                dialog,
                end=dialog.branch_time,
                answered=False,
                sip_code=status,
                cause=q850_from_sip_status(status) if cause is None else cause,
                incomplete=True,
                derived=False,
                clock=clock,
            )
        return self._close(
            dialog,
            end=dialog.last,
            answered=False,
            sip_code=None,
            cause=None,
            incomplete=True,
            derived=True,
            clock=clock,
        )

    def _close(
        self,
        dialog: _Dialog,
        *,
        end: datetime,
        answered: bool,
        sip_code: int | None,
        cause: int | None,
        incomplete: bool,
        derived: bool,
        clock: datetime,
    ) -> CallRecord:
        """Forget the dialog (leaving a tombstone) and build its record."""
        key = dialog.key
        del self._dialogs[key]
        self._ages.discard(key)
        self._deadlines.discard(key)
        closed = self._closed
        if len(closed) >= self.max_dialogs:
            closed.discard(closed.oldest())
        closed.set(key, clock + self.retry_window)

        setup = dialog.setup
        answer = dialog.answer
        ring = dialog.ring
        if ring is not None:
            pdd_ms: int | None = max(0, (ring - setup) // _ONE_MS)
        elif answer is not None:
            pdd_ms = max(0, (answer - setup) // _ONE_MS)
        else:
            pdd_ms = None
        return CallRecord(
            kind=RecordKind.STOP,
            source=dialog.source,
            protocol=Protocol.SIP,
            session_id=dialog_session_id(dialog.call_id, dialog.from_tag),
            event_time=end,
            calling=dialog.pai if dialog.pai is not None else dialog.calling,
            called=dialog.called if dialog.called is not None else dialog.to_user,
            setup_time=setup,
            connect_time=answer,
            disconnect_time=end,
            # billed from the answer to the end, 0 when unanswered (pipeline.billing)
            answered=answered,
            disconnect_cause=cause,
            sip_code=sip_code,
            pdd_ms=pdd_ms,
            times_derived=derived,
            incomplete=incomplete,
            correlation=self._correlation(dialog),
            call_id=dialog.call_id,
        )
