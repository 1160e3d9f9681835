"""The RADIUS per-record path over a fixed corpus, printed one JSON line per result.

tests/test_compiled.py runs this twice, compiled and as pure Python
(CDR_COLLECTOR_PURE_PYTHON=1), in processes of their own, and compares what
they print: the same packets must give the same refusals, records and
answers. The first line says how the process ran.

The corpus: valid accounting of every vendor flavour (Cisco Start and Stop,
also with an unsynchronized clock; FreeSWITCH; plain RFC 2866; Kamailio) for
fixed calls, national and international numbers, a rate deck and high-risk
prefixes; then hostile input built from it with fixed seeds (attributes
changed and signed again, bytes changed after signing, packets cut short,
another secret, other codes, Status-Server, random bytes). Each packet goes

- through the functions the receiver calls, at a fixed time, under every
  profile: decode (or its refusal reason), the authenticators, `interpret`
  (or NotACall's reason), `normalize` and `redact` (the stored row), and
  the Accounting-Response;
- through a RadiusReceiver, from the address of each of its clients (one
  per profile) and from an unknown one: what it counted and what it sent,
  every record acknowledged as durable (or, one in five, as not durable).

    python -m tests.compiled_corpus     (from the checkout)
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from collector import compiled, traffic
from collector.logs import configure_logging
from collector.model import CallRecord, StoredCdr
from collector.pipeline.intake import Ack, normalize
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.receivers.radius.config import PROFILES, RadiusClient, RadiusConfig
from collector.receivers.radius.profiles import Context, NotACall, interpret
from collector.receivers.radius.receiver import RadiusReceiver, _Endpoint
from collector.telemetry import Telemetry
from tests import fuzzing
from tests.test_durability import kamailio_packet
from tests.test_numbers_privacy import privacy

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
SECRET = b"corpus-secret"
SOURCE = "corpus"
#: a region for one client: its national numbers are read there
REGIONS = {("radius", "corpus-cisco"): "GB"}
RATE_DECK = (("4930", "Germany Berlin"), ("44207", "UK London"), ("1212", "US New York"))
HIGH_RISK = ("37167", "4420794")


def valid_attributes() -> list[bytes]:
    """Accounting attributes of every flavour, for fixed calls."""
    blobs = [attributes for _flavour, attributes in fuzzing.radius_seeds(now=NOW, seed=3)]
    for call in traffic.make_calls(60, seed=11, now=NOW, blocks=12):
        blobs += [
            traffic.cisco_attributes(call),
            traffic.cisco_attributes(call, d.STATUS_START),
            traffic.freeswitch_attributes(call),
            traffic.generic_attributes(call),
        ]
    when = int(NOW.timestamp())
    for index, (calling, called) in enumerate(
        (("030 1234567", "0044 20 7946 0123"), ("+1 212 555 0100", "37167123456"), ("", "x"))
    ):
        for status in (d.STATUS_START, d.STATUS_STOP, d.STATUS_FAILED):
            blobs.append(
                kamailio_packet(status, f"corpus-{index}@pbx", when - 30, calling, called, 486)
            )
    return blobs


def corpus() -> list[bytes]:
    """Every packet, signed with SECRET unless damaged on purpose."""
    rng = random.Random(20261130)
    valid = valid_attributes()
    signed = [codec.encode_accounting_request(i % 256, a, SECRET) for i, a in enumerate(valid)]
    packets = list(signed)
    packets += [
        codec.encode_accounting_request(
            rng.randrange(256), fuzzing.mutate_attributes(rng, a), SECRET
        )
        for a in (rng.choice(valid) for _ in range(1500))
    ]
    packets += [fuzzing.damage_after_signing(rng, rng.choice(signed)) for _ in range(400)]
    packets += [fuzzing.truncate(rng, rng.choice(signed)) for _ in range(100)]
    packets += [codec.encode_accounting_request(5, a, b"another-secret") for a in valid[:20]]
    packets += [bytes((code,)) + p[1:] for code, p in zip((1, 2, 5, 11, 255), signed, strict=False)]
    packets += [codec.encode_status_server(9, rng.randbytes(16), SECRET)]
    packets += [codec.encode_status_server(9, rng.randbytes(16), b"another-secret")]
    packets += [rng.randbytes(rng.randint(0, 120)) for _ in range(100)]
    return packets


def plain(value: object) -> object:
    """A value as JSON can hold it, the same whichever build made it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def record_fields(record: CallRecord) -> dict[str, object]:
    return {name: plain(getattr(record, name)) for name in CallRecord.FIELDS}


def row_fields(row: StoredCdr) -> dict[str, object]:
    return {name: plain(value) for name, value in zip(row._fields, row, strict=True)}


def through_functions(data: bytes, redactor: Redactor) -> Iterator[dict[str, object]]:
    """What each step of the receiver's path makes of one packet, at NOW."""
    try:
        packet = codec.decode(data)
    except codec.MalformedPacket as exc:
        yield {"malformed": exc.reason}
        return
    yield {
        "request_authenticator": codec.accounting_request_ok(packet, SECRET),
        "message_authenticator": codec.message_authenticator_ok(packet, SECRET),
        "accounting_message_authenticator": codec.message_authenticator_ok(
            packet, SECRET, accounting=True
        ),
        "proxy_states": plain(codec.proxy_states(packet)),
        "response": codec.encode_response(
            codec.ACCOUNTING_RESPONSE,
            packet.identifier,
            packet.authenticator,
            SECRET,
            codec.proxy_states(packet),
            with_message_authenticator=packet.code == codec.STATUS_SERVER,
        ).hex(),
    }
    for profile in PROFILES:
        try:
            record = interpret(packet, profile, Context(f"corpus-{profile}", NOW))
        except NotACall as exc:
            yield {"profile": profile, "not_a_call": exc.reason}
            continue
        except Exception as exc:  # the same failure is what must match
            yield {"profile": profile, "error": type(exc).__name__}
            continue
        normalized = normalize(record, NOW, redactor)
        yield {
            "profile": profile,
            "record": record_fields(record),
            "normalized": record_fields(normalized),
            "row": row_fields(redactor.redact(normalized, NOW)),
        }


class _Transport(asyncio.DatagramTransport):
    """Keeps what the receiver sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self.sent.append((bytes(data), addr))

    def is_closing(self) -> bool:
        return False


class _Intake:
    """Takes every record and keeps its acknowledgement, to be called after the packet."""

    def __init__(self) -> None:
        self.acks: list[Ack] = []
        self.records: list[CallRecord] = []

    def accept(self, record: CallRecord, received_at: datetime, ack: Ack | None = None) -> bool:
        del received_at
        self.records.append(record)
        if ack is not None:
            self.acks.append(ack)
        return True

    def set_aside(self, record: CallRecord, received_at: datetime) -> None:
        del record, received_at


def counts(telemetry: Telemetry) -> dict[str, float]:
    return {
        f"{sample.labels['source']}/{sample.labels['outcome']}": sample.value
        for family in telemetry.packets.collect()
        for sample in family.samples
    }


def through_receiver(packets: list[bytes]) -> Iterator[dict[str, object]]:
    """What a RadiusReceiver counts and answers for each packet from each address."""
    clients = tuple(
        RadiusClient(f"corpus-{profile}", f"127.0.0.{index + 1}", SECRET, profile=profile)
        for index, profile in enumerate(PROFILES)
    )
    telemetry = Telemetry()
    intake = _Intake()
    receiver = RadiusReceiver(RadiusConfig(listen=(), clients=clients), intake, telemetry)
    transport = _Transport()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        endpoint = _Endpoint(unused, receiver._handle, lambda: None)
        endpoint.connection_made(transport)
        addresses = [(client.address, 1813) for client in clients] + [("192.0.2.99", 1813)]
        acknowledged = 0
        for index, data in enumerate(packets):
            for address in addresses:
                before = counts(telemetry)
                endpoint.datagram_received(data, address)
                for ack in intake.acks:
                    ack(acknowledged % 5 != 4)
                    acknowledged += 1
                intake.acks.clear()
                after = counts(telemetry)
                yield {
                    "packet": index,
                    "from": address[0],
                    "counted": {
                        k: v - before.get(k, 0.0)
                        for k, v in after.items()
                        if v != before.get(k, 0.0)
                    },
                    "sent": [(sent.hex(), list(to)) for sent, to in transport.sent],
                    "kinds": [record.kind.value for record in intake.records],
                }
                transport.sent.clear()
                intake.records.clear()


def main() -> None:
    configure_logging("warning", "console", sys.stderr)  # stdout is for the results
    print(
        json.dumps(
            {"compiled": compiled.running_compiled(), "reason": compiled.pure_python_reason()}
        )
    )
    unusable: list[tuple[str, str, str]] = []
    redactor = Redactor(
        privacy(rate_deck=RATE_DECK),
        unusable=lambda source, field, reason: unusable.append((source, field, reason)),
        regions=REGIONS,
        high_risk_prefixes=HIGH_RISK,
    )
    packets = corpus()
    out = sys.stdout
    for index, data in enumerate(packets):
        for step in through_functions(data, redactor):
            out.write(json.dumps({"packet": index, **step}, sort_keys=True) + "\n")
            if unusable:
                out.write(json.dumps({"packet": index, "unusable": unusable}) + "\n")
                unusable.clear()
    for result in through_receiver(packets):
        out.write(json.dumps(result, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
