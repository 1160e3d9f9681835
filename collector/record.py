"""The records receivers make: `CallRecord`, and what kinds and protocols there are.

`CallRecord` is what a receiver understood from the wire: normalized field
names, UTC datetimes, but still holding the raw phone numbers and the session
id. It never leaves the process. It is made and read for every record, so
this module is one of the compiled ones (collector.compiled.HOT_MODULES);
collector.model, which also declares `StoredCdr`, exports all of it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar, Final


class RecordKind(enum.StrEnum):
    """What a record asks the sink to do with it."""

    #: a finished call leg (RADIUS Stop or Failed, a SIP dialog that ended, a JSON CDR)
    STOP = "stop"
    #: a call leg began (RADIUS Start): kept as an open call, completes a later Stop
    START = "start"
    #: a call leg is still up (RADIUS Interim-Update): refreshes the open call
    INTERIM = "interim"
    #: the sending switch restarted (Accounting-On/Off): its calls open before
    #: `event_time` are closed as incomplete
    RESET = "reset"
    #: the end of a call leg known only from its durable start (a SIP BYE seen
    #: after the collector restarted): stored only when an open call has its key,
    #: completed from it, and otherwise dropped without a trace
    END = "end"


class Protocol(enum.StrEnum):
    """How a record reached the daemon; stored in `cdrs.protocol`."""

    RADIUS = "radius"
    SIP = "sip"
    JSON = "json"
    FILE = "file"


# The members again as module constants, and their values by member: in Python
# 3.11 looking a member up on its class goes through EnumType.__getattr__
# (about 150 ns) and `.value` through a Python property (about 250 ns). The
# per-record modules (collector.compiled.HOT_MODULES) use these instead.
KIND_STOP: Final = RecordKind.STOP
KIND_START: Final = RecordKind.START
KIND_INTERIM: Final = RecordKind.INTERIM
KIND_RESET: Final = RecordKind.RESET
KIND_END: Final = RecordKind.END
PROTOCOL_RADIUS: Final = Protocol.RADIUS
#: each member's value (what StoredCdr holds), found without the property
KIND_VALUES: Final[dict[RecordKind, str]] = {kind: kind.value for kind in RecordKind}
PROTOCOL_VALUES: Final[dict[Protocol, str]] = {protocol: protocol.value for protocol in Protocol}


class CallRecord:
    """One call leg as a receiver decoded it, before redaction.

    Times are timezone-aware UTC datetimes or None. `setup_stamp` is the setup
    time exactly as the packet carried it (None when the packet has none): it
    joins the record key so that a session id reused after a switch reboot makes
    a new record, while a derived time never does (it shifts between
    retransmissions).
    """

    # A class written out, not a dataclass: compiled, its attributes are slots read
    # and written directly, and its constructor is native (a dataclass's generated
    # __init__ stays interpreted Python under mypyc).
    __slots__ = (
        "account",
        "answered",
        "call_id",
        "called",
        "calling",
        "clock_unsynced",
        "connect_time",
        "correlation",
        "disconnect_cause",
        "disconnect_time",
        "duration_ms",
        "event_time",
        "incomplete",
        "kind",
        "leg",
        "pdd_ms",
        "protocol",
        "session_id",
        "setup_stamp",
        "setup_time",
        "sip_code",
        "source",
        "times_derived",
        "times_implausible",
    )

    #: every field, in the order of the constructor's parameters
    FIELDS: ClassVar[tuple[str, ...]] = (
        "kind",
        "source",
        "protocol",
        "session_id",
        "event_time",
        "leg",
        "setup_stamp",
        "account",
        "calling",
        "called",
        "setup_time",
        "connect_time",
        "disconnect_time",
        "duration_ms",
        "answered",
        "disconnect_cause",
        "sip_code",
        "pdd_ms",
        "times_derived",
        "clock_unsynced",
        "times_implausible",
        "incomplete",
        "correlation",
        "call_id",
    )

    def __init__(
        self,
        kind: RecordKind,
        source: str,
        protocol: Protocol,
        session_id: str,
        event_time: datetime,
        leg: str = "",
        setup_stamp: str | None = None,
        account: str | None = None,
        calling: str | None = None,
        called: str | None = None,
        setup_time: datetime | None = None,
        connect_time: datetime | None = None,
        disconnect_time: datetime | None = None,
        duration_ms: int | None = None,
        answered: bool | None = None,
        disconnect_cause: int | None = None,
        sip_code: int | None = None,
        pdd_ms: int | None = None,
        times_derived: bool = False,
        clock_unsynced: bool = False,
        times_implausible: bool = False,
        incomplete: bool = False,
        correlation: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self.kind = kind
        self.source = source
        self.protocol = protocol
        self.session_id = session_id
        self.event_time = event_time
        self.leg = leg
        self.setup_stamp = setup_stamp
        self.account = account
        self.calling = calling
        self.called = called
        self.setup_time = setup_time
        self.connect_time = connect_time
        self.disconnect_time = disconnect_time
        self.duration_ms = duration_ms
        self.answered = answered
        self.disconnect_cause = disconnect_cause
        self.sip_code = sip_code
        self.pdd_ms = pdd_ms
        self.times_derived = times_derived
        self.clock_unsynced = clock_unsynced
        #: a time or duration the switch sent was not believable (see pipeline.plausible)
        self.times_implausible = times_implausible
        self.incomplete = incomplete
        self.correlation = correlation
        #: the SIP Call-ID of this leg where the record knows it (a SIP dialog's, Kamailio's
        #: accounting, FreeSWITCH's sip_call_id): joins a billing record to the signalling
        #: of its call (see collector.reconcile); the pipeline stores only its keyed hash
        self.call_id = call_id

    def copy(self) -> CallRecord:
        """A record with the same fields (to change some without touching this one)."""
        return CallRecord(*self.values())

    def values(self) -> tuple[Any, ...]:
        """Every field's value, in FIELDS order (the constructor's, so
        `CallRecord(*record.values())` is a copy)."""
        return (
            self.kind,
            self.source,
            self.protocol,
            self.session_id,
            self.event_time,
            self.leg,
            self.setup_stamp,
            self.account,
            self.calling,
            self.called,
            self.setup_time,
            self.connect_time,
            self.disconnect_time,
            self.duration_ms,
            self.answered,
            self.disconnect_cause,
            self.sip_code,
            self.pdd_ms,
            self.times_derived,
            self.clock_unsynced,
            self.times_implausible,
            self.incomplete,
            self.correlation,
            self.call_id,
        )

    def __eq__(self, other: object) -> bool:
        # field by field, as a dataclass compares (and, changeable, it has no hash)
        if not isinstance(other, CallRecord):
            return NotImplemented
        return self.values() == other.values()

    __hash__ = None  # type: ignore[assignment]

    def replace(self, **changes: Any) -> CallRecord:
        """A copy with the fields named changed, as `dataclasses.replace` makes one."""
        copied = self.copy()
        for name, value in changes.items():
            if name not in CallRecord.FIELDS:
                raise TypeError(f"CallRecord has no field {name!r}")
            setattr(copied, name, value)
        return copied

    def __repr__(self) -> str:
        # never the numbers or the session id: a repr can end up in a log or a traceback
        return (
            f"CallRecord(kind={KIND_VALUES[self.kind]}, source={self.source!r}, "
            f"protocol={PROTOCOL_VALUES[self.protocol]}, duration_ms={self.duration_ms}, "
            f"answered={self.answered}, sip_code={self.sip_code}, "
            f"disconnect_cause={self.disconnect_cause})"
        )
