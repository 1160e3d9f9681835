"""Revenue assurance with a real Kamailio: its unaccounted answered calls, and only those.

SIPp places calls through a real Kamailio whose acc_radius reports them to
the daemon's RADIUS port and whose siptrace mirrors their SIP as HEPv3 to its
SIP port (as in test_kamailio_e2e). Kamailio is told to leave the calls to
one callee prefix unaccounted, as a switch that fails to bill them: their
SIP is mirrored, no RADIUS record is sent. With `[reconcile]`, the daemon
must list exactly the answered ones among them as unbilled (an unanswered
call is nothing to bill), and none of the accounted calls, whose RADIUS
durations (whole-second Event-Timestamps) are within the tolerance of the
SIP ones. The rows are paired by `called_hmac`: each call has its own callee.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import require_program
from tests.daemon import SECRET, CollectorConfig, connected, free_port, running_collector, wait_for
from tests.peers.kamailio import kamailio_proxy
from tests.peers.sipp import PlacedCalls, Scenario, place_calls
from tests.test_kamailio_e2e import _pseudonyms, require_kamailio

HEP_KEY = "reconcile-hep-key"
SIP_SOURCE = "kamailio-sip"
UNACCOUNTED_PREFIX = "4420794609"
#: (scenario, talk seconds, callee): callees under UNACCOUNTED_PREFIX are not accounted
CALLS: tuple[tuple[Scenario, float, str], ...] = (
    ("answered", 1.5, "+442079460111"),
    ("callee_hangup", 1.5, "+442079460222"),
    ("busy", 0.0, "+442079460333"),
    ("answered", 1.5, "+442079460911"),
    ("callee_hangup", 1.5, "+442079460922"),
    ("busy", 0.0, "+442079460933"),
)


def unaccounted(callee: str) -> bool:
    return callee.lstrip("+").startswith(UNACCOUNTED_PREFIX)


async def test_kamailio_calls_left_unaccounted_are_reported_unbilled(
    tmp_path: Path, dsn: str
) -> None:
    require_program("sipp")
    require_kamailio()
    sip_port = free_port()
    config = CollectorConfig(
        directory=tmp_path / "collector",
        dsn=dsn,
        profile="kamailio",
        client_name="kamailio-radius",
        sip_port=sip_port,
        extra=(
            f'[sip]\nlisten = ["127.0.0.1:{sip_port}"]\n\n'
            f'[[sip.sources]]\nname = "{SIP_SOURCE}"\naddress = "127.0.0.1"\n'
            f'hep_auth_key = "{HEP_KEY}"\n\n'
            "[reconcile]\nbilling_wait_s = 3\ninterval_s = 1\n"
        ),
    )
    answered_unaccounted = {
        _pseudonyms.pseudonym(callee.lstrip("+"))
        for scenario, _talk, callee in CALLS
        if unaccounted(callee) and scenario != "busy"
    }
    with running_collector(config) as collector:
        async with kamailio_proxy(
            radius_port=config.radius_port,
            radius_secret=SECRET,
            hep_port=sip_port,
            hep_auth_key=HEP_KEY,
            children=len(CALLS) + 1,
            unaccounted_prefix=UNACCOUNTED_PREFIX,
            workdir=tmp_path / "kamailio",
        ) as proxy:
            placed: list[PlacedCalls] = await asyncio.gather(
                *(
                    place_calls(
                        proxy.sip_port,
                        scenario,
                        duration_s=talk or 1.0,
                        callee=callee,
                        logdir=tmp_path / "sipp" / f"{index}-{scenario}",
                    )
                    for index, (scenario, talk, callee) in enumerate(CALLS)
                )
            )
            for batch in placed:
                assert batch.all_succeeded, batch.describe()

        async def counted() -> bool:
            async with connected(dsn) as conn:
                sip_rows = await conn.fetchval("SELECT count(*) FROM cdrs WHERE protocol = 'sip'")
                waiting = await conn.fetchval("SELECT count(*) FROM reconcile_pending")
            return bool(sip_rows == len(CALLS) and waiting == 0)

        await wait_for(counted, 20.0)
        await wait_for(
            lambda: (
                collector.metric("cdr_collector_unbilled_calls_total", source=SIP_SOURCE)
                == len(answered_unaccounted)
            ),
            5.0,
        )
        assert collector.metric("cdr_collector_duration_mismatch_total", source=SIP_SOURCE) == 0
        async with connected(dsn) as conn:
            rows = [dict(r) for r in await conn.fetch("SELECT * FROM cdrs")]
            findings = [dict(r) for r in await conn.fetch("SELECT * FROM reconcile_findings")]

    radius_callees = {r["called_hmac"] for r in rows if r["protocol"] == "radius"}
    accounted = {
        _pseudonyms.pseudonym(callee.lstrip("+"))
        for _scenario, _talk, callee in CALLS
        if not unaccounted(callee)
    }
    # Kamailio accounted exactly the calls outside the prefix (busy ones as Failed)
    assert radius_callees == accounted
    sip_keys = {bytes(r["record_key"]): r["called_hmac"] for r in rows if r["protocol"] == "sip"}
    found = {sip_keys[bytes(f["record_key"])] for f in findings}
    assert found == answered_unaccounted
    assert {f["finding"] for f in findings} == {"unbilled"}
    assert all(f["source"] == SIP_SOURCE and f["signalled_ms"] >= 1400 for f in findings)
