"""Which leg a FreeSWITCH record is, and which call it belongs to, for every transport.

Every leg of a FreeSWITCH call is a channel with its own uuid: mod_radius_cdr
sends it as Acct-Session-Id, mod_json_cdr as `variables.uuid`. That uuid is
the record's session id, so the A-leg and the B-leg of a bridged call are
two records whatever `leg` says; `leg` joins the record key only beside it.

The decision, made here once: `leg` is the channel's direction ("inbound",
"outbound") over JSON and empty over RADIUS, so one leg is stored with
`leg` = "inbound" by mod_json_cdr and "" by mod_radius_cdr. The two paths
differ because of what they carry and what is already stored, not by
oversight:

- over RADIUS the direction (Freeswitch-Direction) comes in the Stop only,
  and a Stop is joined to its Start by the record key: a leg taken from the
  Stop would split every call in two;
- the record key holds the leg, and keys are kept (`cdr_keys`) to make a
  resent record one row: giving either path the other's leg would change
  the key of every record it stored before, and a CDR resent across the
  upgrade (mod_json_cdr posts again whatever it has not had a 200 for; a
  switch retransmits a Stop) would be stored twice.

Each protocol's record of a call is its own row in any case (the key is
unique per protocol): the rows of one call are joined by `correlation`, the
A-leg's uuid on both paths, never by `leg`.
"""

from __future__ import annotations

from typing import Final

from collector.record import PROTOCOL_RADIUS, Protocol

#: the directions FreeSWITCH gives a channel (its `direction` variable)
DIRECTIONS: Final = frozenset({"inbound", "outbound"})


def leg(protocol: Protocol, direction: str | None) -> str:
    """The leg a FreeSWITCH record of `protocol` is keyed and stored with (see above)."""
    if protocol is PROTOCOL_RADIUS:
        return ""
    return direction if direction in DIRECTIONS else ""


def radius_a_leg(session_id: str, direction: str | None, other_leg_id: str | None) -> str | None:
    """The A-leg's uuid, from what mod_radius_cdr sends: a leg's own Acct-Session-Id when
    it is inbound (it is the A-leg), else Freeswitch-Other-Leg-Id (an outbound leg is
    bridged from birth and sends it in its Start too); None when neither tells."""
    if (direction or "").strip().lower() == "inbound":
        return session_id or None
    return (other_leg_id or "").strip() or None
