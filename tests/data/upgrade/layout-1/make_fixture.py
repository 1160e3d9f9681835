"""Write this directory's fixtures with the cdr-collector release that wrote spool layout 1.

Run from a checkout of that release (see README.md for the commit), in its
virtual environment, with PostgreSQL on 127.0.0.1:5432:

    python tests/data/upgrade/layout-1/make_fixture.py OUTPUT_DIRECTORY

1. A real daemon whose database is unreachable takes RADIUS (Cisco,
   FreeSWITCH, RFC 2866 Start/Stop/Accounting-On), HEPv3 SIP and JSON CDRs,
   acknowledges them from its spool and stops: `spool/` is that spool.
   `spooled_rows.json` is every row of it as that release decodes it.
2. The same release replays a copy of that spool into an empty database:
   `stored_cdrs.json` and `stored_open_calls.json` are what it stored, and
   `database.sql` is a dump of that database (an installation to upgrade).
3. The same release replays it once more into a database that refuses
   rows with SIP code 486 (a CHECK constraint added for the purpose): the
   refused rows it keeps are `rejected-YYYYMMDD.json`.
Nothing here is edited by hand.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from collector.receivers.radius import codec  # noqa: E402
from collector.receivers.radius import dictionary as d  # noqa: E402
from collector.sink.spool import Spool  # noqa: E402
from collector.traffic import (  # noqa: E402
    AccountingClient,
    cisco_attributes,
    freeswitch_attributes,
    generic_attributes,
    make_calls,
)
from tests.daemon import CollectorConfig, free_port, running_collector  # noqa: E402
from tests.test_json_cdr import json_section  # noqa: E402
from tests.test_sip_receiver import (  # noqa: E402
    Call,
    Sender,
    answered,
    busy,
    cancelled,
    hep_flow,
    sip_section,
)

ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
UNREACHABLE = "postgresql://root@127.0.0.1:9/cdr_fixture"
#: what the release's retention must never touch while the fixture is made
RETENTION = 'retention_days = 36500\n'


def _config(directory: Path, dsn: str) -> CollectorConfig:
    sip_port = free_port()
    json_port = free_port(socket.SOCK_STREAM)
    return CollectorConfig(
        directory=directory,
        dsn=dsn,
        sip_port=sip_port,
        json_port=json_port,
        log_level="info",
        spool_segment_bytes=8 * 1024,
        extra=sip_section(sip_port) + "\n" + json_section(json_port),
    )


def _with_retention(config: CollectorConfig) -> None:
    path = config.render()
    text = path.read_text().replace("[privacy]\n", "[privacy]\n" + RETENTION)
    path.write_text(text)


async def _traffic(config: CollectorConfig, data: Path) -> dict[str, int]:
    now = datetime.now(UTC).replace(microsecond=0)
    calls = make_calls(60, seed=20261206, now=now)
    sent: dict[str, int] = {}
    async with AccountingClient(
        ("127.0.0.1", config.radius_port), config.secret.encode(), timeout_s=2.0
    ) as client:
        # the switch restarted an hour ago (closes nothing: every call is younger)
        reset = codec.encode_attribute(
            d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_ACCOUNTING_ON)
        ) + codec.encode_attribute(
            d.EVENT_TIMESTAMP, codec.integer(int((now - timedelta(hours=1)).timestamp()))
        )
        assert await client.send(reset), "Accounting-On not acknowledged"
        for index, call in enumerate(calls):
            flavour = index % 4
            if flavour == 0:
                ok = await client.send(cisco_attributes(call, clock_flag="*" if index % 8 == 0 else ""))
            elif flavour == 1:
                ok = await client.send(freeswitch_attributes(call))
            elif flavour == 2:
                ok = await client.send(generic_attributes(call, d.STATUS_START))
                ok = ok and await client.send(generic_attributes(call))
            else:
                # a Start whose Stop never comes: an open call
                ok = await client.send(generic_attributes(call, d.STATUS_START))
            assert ok, "a request was not acknowledged"
        sent["radius_requests"] = client.stats.acknowledged
    sender = Sender(config.sip_port or 0)
    start = now - timedelta(minutes=5)
    flows = [
        answered(Call(call_id=f"fixture-answered-{uuid.uuid4().hex}@pbx", callee="+442079460101"), 3.0),
        busy(Call(call_id=f"fixture-busy-{uuid.uuid4().hex}@pbx", callee="+442079460202")),
        cancelled(Call(call_id=f"fixture-cancel-{uuid.uuid4().hex}@pbx", callee="+442079460404")),
    ]
    for offset, flow in enumerate(flows):
        sender.send(hep_flow(flow, start + timedelta(seconds=30 * offset)))
    sender.close()
    sent["sip_calls"] = len(flows)
    target = f"http://127.0.0.1:{config.json_port}/cdr"
    async with aiohttp.ClientSession() as session:
        for name in ("answered_a_leg_encoded.json", "busy_b_leg.json"):
            body = (data / "json" / name).read_bytes()
            async with session.post(
                target, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status == 200, response.status
    sent["json_cdrs"] = 2
    return sent


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


async def _fresh_database() -> str:
    name = f"cdr_fixture_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _replay(spool: Path, work: Path, database: str, refuse_busy: bool) -> None:
    dsn = f"postgresql://root@127.0.0.1:5432/{database}"
    config = _config(work, dsn)
    _with_retention(config)
    shutil.copytree(spool, work / "spool")
    if refuse_busy:
        # the release creates its schema at start; the constraint is added once it exists
        conn = await asyncpg.connect(dsn)
        try:
            from collector.sink.postgres import migrate

            await migrate(conn)
            await conn.execute(
                "ALTER TABLE cdrs ADD CONSTRAINT fixture_refuses_busy "
                "CHECK (sip_code IS DISTINCT FROM 486)"
            )
        finally:
            await conn.close()
    with running_collector(config) as collector:
        for _ in range(600):
            if collector.metric("cdr_collector_spool_records") == 0 and not any(
                (work / "spool").glob("*.seg")
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("spool not drained")


async def main(output: Path) -> None:
    data = ROOT / "tests" / "data"
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = _config(work / "a", UNREACHABLE)
        _with_retention(config)
        with running_collector(config) as collector:
            sent = await _traffic(config, data)
            for _ in range(100):
                if collector.metric("cdr_collector_records_spooled_total") > 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
        spool_dir = work / "a" / "spool"
        shutil.rmtree(output / "spool", ignore_errors=True)
        (output / "spool").mkdir()
        for segment in sorted(spool_dir.glob("*.seg")):
            shutil.copy(segment, output / "spool" / segment.name)
        spool = Spool(str(output / "spool"), 1 << 30, 1 << 20)
        spool.open()
        rows = []
        for segment in spool.segments:
            result = spool.read(segment)
            assert not result.corrupt_frames
            for batch in result.batches:
                rows.extend({k: _jsonable(v) for k, v in row._asdict().items()} for row in batch)
        (output / "spooled_rows.json").write_text(json.dumps(rows, indent=1) + "\n")

        database = await _fresh_database()
        try:
            await _replay(output / "spool", work / "b", database, refuse_busy=False)
            dsn = f"postgresql://root@127.0.0.1:5432/{database}"
            conn = await asyncpg.connect(dsn)
            try:
                for table, order in (("cdrs", "record_key"), ("open_calls", "record_key")):
                    found = await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")
                    dumped = [
                        {k: _jsonable(v) for k, v in dict(r).items() if k != "stored_at"}
                        for r in found
                    ]
                    (output / f"stored_{table}.json").write_text(json.dumps(dumped, indent=1) + "\n")
            finally:
                await conn.close()
            dump = subprocess.run(
                ["pg_dump", "--no-owner", "--no-privileges", "-h", "127.0.0.1", "-U", "root", database],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            (output / "database.sql").write_text(dump)
        finally:
            await _drop(database)

        database = await _fresh_database()
        try:
            await _replay(output / "spool", work / "c", database, refuse_busy=True)
            for old in output.glob("rejected-*.json"):
                old.unlink()
            for rejected in (work / "c" / "spool").glob("rejected-*.json"):
                shutil.copy(rejected, output / rejected.name)
        finally:
            await _drop(database)

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (output / "manifest.json").write_text(
        json.dumps(
            {"written_by_commit": commit, "written_at": datetime.now(UTC).isoformat(), **sent},
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
