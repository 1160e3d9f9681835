"""Kamailio acc: which accounted transactions are events of a call, and how they join.

Kamailio accounts SIP transactions, not calls: acc_radius sends a Start for
the 2xx to an initial INVITE, a Stop for a BYE and Failed for a failed
INVITE, and, depending on its flags, records of transactions that are no
event of a call at all. This module says which are, and what identifies
the call they belong to. The RADIUS kamailio profile reads the attributes
(Sip-Method's bitmask decoded to a method name) and calls in here. Kamailio's
`siptrace` copies need no rule of its own: the SIP receiver reads them as
any SIP (see `collector.receivers.sip.dialogs`), correlated by the same
Call-ID. Pure: no I/O, no transport.
"""

from __future__ import annotations

from typing import Final

from collector.record import KIND_STOP, RecordKind

#: what separates the Call-ID from the dialog's tags in a session id
_TAGS_SEPARATOR: Final = "\x1f"


def is_call_event(failed: bool, kind: RecordKind, method: str | None, code: int | None) -> bool:
    """Whether an accounted transaction is an event of a call.

    acc_radius picks Acct-Status-Type from the request alone: Start for the 2xx
    to an initial INVITE, Stop for any BYE or CANCEL (whatever the reply),
    Alive for any other in-dialog request, Failed for the rest, which with
    early_media, report_cancels or the acc flag on other requests includes an
    INVITE's 183, a CANCEL's 200 and a MESSAGE's 202. Only a BYE ends a call
    (a CANCELled INVITE has its own Failed record with 487), only a failed
    INVITE is a failed call (not one reported with a 1xx or 2xx), and only a
    re-INVITE updates one. Without a method (`None`), every event counts.
    `failed` is Acct-Status-Type Failed; `method` the request's method name.
    """
    if method is None:
        return True
    if failed:
        return method == "INVITE" and not (code is not None and 100 <= code < 300)
    if kind is KIND_STOP:
        return method == "BYE"
    return method == "INVITE"


def session_id(call_id: str, from_tag: str, to_tag: str, failed: bool) -> str:
    """The session id of an accounted call: its Call-ID and its dialog's tags.

    The two tags are sorted, so that a BYE from the callee (tags swapped)
    still finds its Start; a failed call has no dialog, and keeps its
    From-tag alone. The tags are only ever stored as part of the keyed
    record key, never in `leg`.
    """
    if from_tag and to_tag and not failed:
        return call_id + _TAGS_SEPARATOR + "|".join(sorted((from_tag, to_tag)))
    return call_id + _TAGS_SEPARATOR + from_tag


def correlation(call_id: str) -> str | None:
    """What joins a call's accounting to its SIP records: the Call-ID, as the SIP
    receiver's dialogs carry it."""
    return call_id or None
