"""The issue's acceptance test: one Kamailio, two views of the same calls, one daemon.

SIPp places calls through a real Kamailio proxy. Kamailio's acc_radius
reports them to the daemon's RADIUS port (Start on the 2xx, Stop on the BYE,
Failed for a failed INVITE) and its siptrace mirrors every SIP message as
HEPv3 (with an auth key) to the daemon's SIP port. Both paths must tell the
same story: the same calls, the same outcome per call, durations within a
second of each other (acc_radius stamps whole seconds, HEP microseconds) and
the same Q.850 cause.

Matching: the two protocols key a call differently (RADIUS by Call-ID and
both dialog tags, SIP by Call-ID and From-tag, each hashed with its source),
so the test gives every call its own callee number and pairs the rows by
`called_hmac`, the keyed pseudonym both paths store for it. That pairs
exactly one RADIUS row with one SIP row per call, without the test ever
reading a raw identifier back.

Run twice: with the RADIUS client and the SIP source named differently, and
with both named `kamailio`, as an operator naturally names one Kamailio. Under
one name a failed call's RADIUS record and its SIP record carry the same
record key (both are Call-ID and From-tag); each protocol's record must still
be its own row. Every row of one call, whatever the names, has the same
`correlation` (the keyed hash of the Call-ID). Kamailio's RADIUS requests
pass a relay that keeps them; sent once more afterwards, each is answered and
adds no row.

A call whose 200 carries two To-tags (`;tag=a;tag=b`, as some phones
answer) must be stored complete by both paths: Kamailio relays the header
unchanged and its accounting keeps the last tag, as the caller does for its
BYE; the SIP path must know the dialog under that tag too, or the call
stays open until max_dialog_age_s.

One difference is known and asserted as such: a callee's 480 carries
`Reason: Q.850;cause=19` (no answer from user). The SIP row keeps 19 from
the Reason header; acc_radius sends only the SIP code, so the RADIUS row has
18, RFC 3398's value for 480. Both are outcome no_answer.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from collector.pipeline.outcome import outcome_of, q850_from_sip_status
from collector.pipeline.privacy import Pseudonymizer
from collector.traffic import AccountingClient
from tests.conftest import require_program
from tests.daemon import (
    PSEUDONYM_KEY,
    SECRET,
    CollectorConfig,
    connected,
    free_port,
    running_collector,
    wait_for,
)
from tests.peers.kamailio import KamailioNotInstalled, find_kamailio, kamailio_proxy
from tests.peers.relay import udp_relay
from tests.peers.sipp import PlacedCalls, Scenario, place_calls

HEP_KEY = "e2e-hep-key"

#: (name, scenario, talk seconds, callee): one callee number per call, for matching
CALLS: tuple[tuple[str, Scenario, float, str], ...] = (
    ("answered-1", "answered", 1.5, "+442079460111"),
    ("answered-2", "answered", 2.0, "+442079460222"),
    ("answered-3", "answered", 3.0, "+442079460333"),
    ("callee-hangup", "callee_hangup", 2.0, "+442079460444"),
    ("busy", "busy", 0.0, "+442079460555"),
    ("cancelled", "cancelled", 0.0, "+442079460666"),
    ("no-answer", "no_answer", 0.0, "+442079460777"),
    # The 200 carries two To-tags; Kamailio relays both, the caller BYEs with the last.
    ("two-to-tags", "two_to_tags", 2.0, "+442079460888"),
)
#: the scenarios whose call is answered
ANSWERED: tuple[Scenario, ...] = ("answered", "callee_hangup", "two_to_tags")
EXPECTED_OUTCOMES = Counter(
    {"answered": 5, "busy": 1, "cancelled": 1, "no_answer": 1}
)  # fmt: skip
_pseudonyms = Pseudonymizer((("t1", base64.b64decode(PSEUDONYM_KEY)),))


def require_kamailio() -> None:
    """Fail (never skip) without Kamailio; it lives in /usr/sbin, off many users' PATH."""
    try:
        find_kamailio()
    except KamailioNotInstalled as error:
        pytest.fail(str(error))


async def rows_by_protocol(dsn: str) -> dict[str, list[dict[str, Any]]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT * FROM cdrs ORDER BY call_time")
    found: dict[str, list[dict[str, Any]]] = {"radius": [], "sip": []}
    for row in rows:
        found[row["protocol"]].append(dict(row))
    return found


def outcome(row: dict[str, Any]) -> str:
    return str(outcome_of(row["answered"], row["sip_code"], row["disconnect_cause"]))


@pytest.mark.parametrize(
    ("radius_source", "sip_source"),
    [
        pytest.param("sbc-test", "kamailio-test", id="two-names"),
        pytest.param("kamailio", "kamailio", id="one-name"),
    ],
)
async def test_radius_and_sip_rows_of_kamailio_calls_agree(
    tmp_path: Path, dsn: str, radius_source: str, sip_source: str
) -> None:
    require_program("sipp")
    require_kamailio()
    sip_port = free_port()
    config = CollectorConfig(
        directory=tmp_path / "collector",
        dsn=dsn,
        profile="kamailio",
        client_name=radius_source,
        sip_port=sip_port,
        extra=(
            f'[sip]\nlisten = ["127.0.0.1:{sip_port}"]\n\n'
            f'[[sip.sources]]\nname = "{sip_source}"\naddress = "127.0.0.1"\n'
            f'hep_auth_key = "{HEP_KEY}"\n'
        ),
    )
    # The daemon first: acc_radius blocks a Kamailio worker until it is answered.
    with running_collector(config) as collector:
        async with (
            udp_relay(collector.radius_address) as relay,
            kamailio_proxy(
                radius_port=relay.port,
                radius_secret=SECRET,
                hep_port=sip_port,
                hep_auth_key=HEP_KEY,
                # acc_radius holds a worker until the daemon answers: one per concurrent call
                children=len(CALLS) + 1,
                workdir=tmp_path / "kamailio",
            ) as proxy,
        ):
            placed: list[PlacedCalls] = await asyncio.gather(
                *(
                    place_calls(
                        proxy.sip_port,
                        scenario,
                        duration_s=talk or 1.0,
                        ring_s=0.5 if scenario in ("cancelled", "no_answer") else 0.2,
                        callee=callee,
                        logdir=tmp_path / "sipp" / name,
                    )
                    for name, scenario, talk, callee in CALLS
                )
            )
            for batch in placed:
                assert batch.all_succeeded, batch.describe()

            async def both_complete() -> bool:
                rows = await rows_by_protocol(dsn)
                return len(rows["radius"]) == len(rows["sip"]) == len(CALLS)

            await wait_for(both_complete, 15.0)
            kamailio_log = proxy.log_text()
        await asyncio.sleep(0.3)  # room for a stray duplicate row to show up
        rows = await rows_by_protocol(dsn)
        # Kamailio's requests once more, each as a switch resends after a lost
        # answer (a new Identifier, the same attributes): answered, and no new row
        sent = relay.requests
        # a Start and a Stop per answered call, a Failed per other
        assert len(sent) >= len(CALLS) + EXPECTED_OUTCOMES["answered"]
        async with AccountingClient(collector.radius_address, SECRET.encode(), tries=3) as client:
            answered = await asyncio.gather(*(client.send(request[20:]) for request in sent))
        assert all(answered), f"{answered.count(False)} of {len(sent)} resent requests unanswered"
        await asyncio.sleep(0.3)
        assert await rows_by_protocol(dsn) == rows
        hep_counts = {
            outcome: collector.metric(
                "cdr_collector_packets_total", listener="sip", source=sip_source, outcome=outcome
            )
            for outcome in ("accepted", "malformed", "unsupported", "bad_authenticator")
        }
        radius_accepted = collector.metric(
            "cdr_collector_packets_total",
            listener="radius",
            source=radius_source,
            outcome="accepted",
        )
    assert "ERROR" not in kamailio_log, kamailio_log

    radius_rows, sip_rows = rows["radius"], rows["sip"]
    radius_outcomes = Counter(outcome(row) for row in radius_rows)
    sip_outcomes = Counter(outcome(row) for row in sip_rows)
    print(f"\nper-outcome counts: radius {dict(radius_outcomes)}, sip {dict(sip_outcomes)}")
    print(f"HEP packets by outcome: {hep_counts}; RADIUS requests accepted: {radius_accepted}")
    assert radius_outcomes == sip_outcomes == EXPECTED_OUTCOMES
    assert hep_counts["accepted"] > 0
    assert hep_counts["malformed"] == hep_counts["unsupported"] == 0
    assert hep_counts["bad_authenticator"] == 0

    radius_by_callee = {row["called_hmac"]: row for row in radius_rows}
    sip_by_callee = {row["called_hmac"]: row for row in sip_rows}
    assert len(radius_by_callee) == len(sip_by_callee) == len(CALLS)
    print(f"{'call':<14} {'outcome':<10} {'radius ms':>9} {'sip ms':>7} {'diff ms':>7}  causes")
    for name, scenario, talk, callee in CALLS:
        key = _pseudonyms.pseudonym(callee.lstrip("+"))
        radius, sip = radius_by_callee[key], sip_by_callee[key]
        difference = sip["duration_ms"] - radius["duration_ms"]
        print(
            f"{name:<14} {outcome(sip):<10} {radius['duration_ms']:>9} {sip['duration_ms']:>7}"
            f" {difference:>7}  radius {radius['disconnect_cause']}, sip {sip['disconnect_cause']}"
        )
        assert radius["source"] == radius_source and sip["source"] == sip_source
        # one call, one correlation: the keyed hash of its Call-ID in both rows
        assert radius["correlation"] is not None
        assert radius["correlation"] == sip["correlation"], name
        if scenario not in ANSWERED and radius_source == sip_source:
            # the case that lost SIP rows: one key, two protocols, two rows
            assert radius["record_key"] == sip["record_key"], name
        assert outcome(radius) == outcome(sip), name
        assert radius["answered"] is sip["answered"], name
        assert radius["sip_code"] == sip["sip_code"], name
        assert abs(difference) < 1000, name  # whole-second Event-Timestamps vs HEP times
        assert radius["called_prefix"] == sip["called_prefix"] == "+4420"
        assert radius["called_masked"] == sip["called_masked"]
        assert radius["calling_hmac"] == sip["calling_hmac"]
        assert radius["incomplete"] is sip["incomplete"] is False
        if sip["answered"]:
            # SIPp pauses `talk` seconds after the ACK (longer on a starved CPU), never less
            assert talk * 1000 - 50 <= sip["duration_ms"] < talk * 1000 + 5000, name
            assert sip["pdd_ms"] is not None
        if scenario == "no_answer":
            # The known difference: Reason header (SIP) against RFC 3398's value for 480 (RADIUS).
            assert (sip["disconnect_cause"], radius["disconnect_cause"]) == (19, 18)
            assert radius["disconnect_cause"] == q850_from_sip_status(radius["sip_code"])
        else:
            assert radius["disconnect_cause"] == sip["disconnect_cause"], name
