"""National numbers are read in the region of the switch that sent them.

Where national numbers carry no trunk prefix (North America, Denmark, Norway)
a switch sends "35104724" or "8173383772", which must not become Portugal
(+351) or Japan (+81); where they do ("030…" in Germany, "8495…" in Russia)
the prefix says it. Each RADIUS client, SIP source and JSON sender may set
its own `region`, chosen per protocol and name; every other source dials in
`privacy.default_region`. Expected numbers are facts of the numbering plans,
written down here; the property test holds the cached reading to
libphonenumber's own, uncached, for numbers of every region.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import CountryCodeSource, PhoneNumberType
from phonenumbers.phonenumbermatcher import _is_national_prefix_present_if_required

from collector.config import Config, PrivacyConfig, load_config
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.numbers import MAX_DIGITS, Number, NumberPlan, Unusable
from collector.pipeline.redact import Redactor
from collector.receivers.radius import codec
from collector.receivers.radius import dictionary as d
from collector.traffic import AccountingClient
from tests.daemon import (
    SECRET,
    Collector,
    CollectorConfig,
    free_port,
    run_command,
    running_collector,
    wait_for,
)
from tests.test_config import check_config, problem_lines, write_keys
from tests.test_json_cdr import json_section
from tests.test_number_forms import (
    NUMBER_COLUMNS,
    OPAQUE_ID,
    UNUSABLE,
    all_rows,
    json_document,
    post_json,
    radius_packet,
    send_radius,
    wait_rows,
)
from tests.test_sip_receiver import Call, Sender, busy, called_hmac, hep_flow, mirrored

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# --- the reading of national numbers, region by region -------------------------

#: (region, as a switch there sends it, E.164, billing prefix, country)
NATIONAL = [
    # no trunk prefix: national numbers are dialled as they are
    ("DK", "35104724", "4535104724", "+4535", "DK"),
    ("US", "8173383772", "18173383772", "+1817", "US"),
    ("US", "8884441111", "18884441111", "+1888", "US"),  # toll-free
    ("US", "2125551234", "12125551234", "+1212", "US"),
    ("US", "12125551234", "12125551234", "+1212", "US"),  # with the NANP trunk 1
    ("US", "4165550123", "14165550123", "+1416", "CA"),  # Toronto, dialled in the US
    ("CA", "6135550123", "16135550123", "+1613", "CA"),
    ("NO", "22123456", "4722123456", "+4722", "NO"),
    ("NO", "91234567", "4791234567", "+4791", "NO"),
    ("ES", "912345678", "34912345678", "+34912", "ES"),
    ("PT", "213456789", "351213456789", "+35121", "PT"),
    ("GR", "2101234567", "302101234567", "+3021", "GR"),
    ("IT", "3123456789", "393123456789", "+39312", "IT"),  # a mobile
    ("IT", "0612345678", "390612345678", "+3906", "IT"),  # Rome: the 0 is part of the number
    # with a trunk prefix
    ("DE", "030123456", "4930123456", "+4930", "DE"),
    ("GB", "02079460123", "442079460123", "+4420", "GB"),
    ("GB", "07700900123", "447700900123", "+447700", "GB"),
    ("FR", "0123456789", "33123456789", "+331", "FR"),
    ("CH", "0441234567", "41441234567", "+4144", "CH"),
    ("SE", "081234567", "4681234567", "+468", "SE"),
    ("JP", "0312345678", "81312345678", "+813", "JP"),
    ("AU", "0212345678", "61212345678", "+612", "AU"),
    ("RU", "84951234567", "74951234567", "+7495", "RU"),  # trunk prefix 8
    # after the region's own international prefix
    ("US", "011442079460123", "442079460123", "+4420", "GB"),
    ("RU", "810442079460123", "442079460123", "+4420", "GB"),
    ("JP", "010442079460123", "442079460123", "+4420", "GB"),
    ("AU", "0011442079460123", "442079460123", "+4420", "GB"),  # not "00" and "11…"
    ("KR", "00700442079460123", "442079460123", "+4420", "GB"),
    ("DE", "0049301234567", "49301234567", "+4930", "DE"),
]


@pytest.mark.parametrize(("region", "dialled", "e164", "prefix", "country"), NATIONAL)
def test_a_national_number_is_read_in_its_region(
    region: str, dialled: str, e164: str, prefix: str, country: str
) -> None:
    plan = NumberPlan(default_region=region)
    number = plan.normalize(dialled)
    assert number == Number(e164, True)
    assert isinstance(number, Number)
    assert plan.destination(number).prefix == prefix
    assert plan.country(number) == country
    # and once more, from the cache of how the region reads these leading digits
    assert plan.normalize(dialled) == Number(e164, True)


#: (region, digits, E.164): digits that are no national number of the region are
#: an international number written without its '+', as without a region
NOT_NATIONAL = [
    ("DE", "4930123456", "4930123456"),  # in Germany a national number needs its 0
    ("GB", "442079460123", "442079460123"),
    ("FR", "33123456789", "33123456789"),
    ("US", "442079460123", "442079460123"),  # twelve digits: no US number
    ("US", "4930123456", "4930123456"),  # ten digits, but no US area code 493
    ("DK", "4930123456", "4930123456"),  # Danish numbers have eight digits
    ("NO", "4930123456", "4930123456"),
    ("US", "0044207946012", "44207946012"),  # 00 where the prefix is 011: still international
]


@pytest.mark.parametrize(("region", "digits", "e164"), NOT_NATIONAL)
def test_digits_that_are_no_national_number_stay_international(
    region: str, digits: str, e164: str
) -> None:
    assert NumberPlan(default_region=region).normalize(digits) == Number(e164, True)
    assert NumberPlan().normalize(digits) == Number(e164, True)


def test_one_string_is_another_number_in_another_region() -> None:
    """Why the region belongs to the switch: the same digits, four readings."""
    readings = {
        region: NumberPlan(default_region=region).normalize("35104724")
        for region in ("DK", "NO", "US", "DE")
    }
    assert readings["DK"] == Number("4535104724", True)
    assert readings["NO"] == Number("4735104724", True)
    # not a US or German national number: read as before, +351 (Portugal) and digits
    assert readings["US"] == readings["DE"] == NumberPlan().normalize("35104724")


@pytest.mark.parametrize(("region", "code"), [("DK", "112"), ("US", "911"), ("NO", "113")])
def test_short_codes_stay_dial_strings(region: str, code: str) -> None:
    plan = NumberPlan(default_region=region)
    number = plan.normalize(code)
    assert number == Number(code, False)
    assert isinstance(number, Number)
    assert plan.destination(number).prefix is None


def test_a_plan_for_another_region_shares_the_billing_prefix_cache() -> None:
    german = NumberPlan(default_region="DE")
    danish = german.for_region("DK")
    assert german.for_region("DE") is german
    number = danish.normalize("35104724")
    assert isinstance(number, Number)
    danish.destination(number)
    assert danish._meta is german._meta and german._meta  # filled by either, used by both
    assert danish._readings is not german._readings
    assert german.normalize("35104724") != number


# --- the cached reading is libphonenumber's ------------------------------------------

_TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.UAN,
]
#: (region, national significant number) of every example number phonenumbers has
_EXAMPLES = sorted(
    (region, phonenumbers.national_significant_number(example))
    for region in phonenumbers.SUPPORTED_REGIONS
    for kind in _TYPES
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
)


def libphonenumber_reading(digits: str, region: str) -> Number | Unusable | None:
    """What `digits` dialled in `region` are by libphonenumber's rules, asked afresh for
    this one number; None when they are no number of the region's own."""
    try:
        parsed = phonenumbers.parse(digits, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code_source == CountryCodeSource.FROM_NUMBER_WITH_IDD:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        assert meta is not None and meta.international_prefix
        prefix = re.match(meta.international_prefix, digits)
        assert prefix is not None
        return NumberPlan().normalize("+" + digits[prefix.end() :])
    if digits.startswith("00"):
        return None
    national = digits.startswith("0") or (
        phonenumbers.is_valid_number(parsed) and _is_national_prefix_present_if_required(parsed)
    )
    if not national:
        return None
    e164 = f"{parsed.country_code}{phonenumbers.national_significant_number(parsed)}"
    if len(e164) > MAX_DIGITS:
        return Unusable("too_long")
    return Number(e164, True) if len(e164) >= 7 else Number(e164, False)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_cached_reading_is_libphonenumbers_for_every_number_with_those_leading_digits(
    data: st.DataObject,
) -> None:
    """A number read after another with the same leading digits and length (the
    cache key) is read as libphonenumber reads it alone: in its region's form with
    and without the trunk prefix, and with the country code in front."""
    region, national = data.draw(st.sampled_from(_EXAMPLES))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert meta is not None
    code = str(phonenumbers.country_code_for_region(region))
    forms = [national, code + national]
    if meta.national_prefix:
        forms.append(meta.national_prefix + national)
    written = data.draw(st.sampled_from(forms))
    fixed = data.draw(st.integers(min_value=0, max_value=len(written)))
    tails = st.text("0123456789", min_size=len(written) - fixed, max_size=len(written) - fixed)
    first, second = written[:fixed] + data.draw(tails), written[:fixed] + data.draw(tails)
    plan = NumberPlan(default_region=region)
    plan.normalize(first)
    expected = libphonenumber_reading(second, region)
    if expected is None:  # no national number: read as without a region
        expected = NumberPlan().normalize(second)
    assert plan.normalize(second) == expected
    assert NumberPlan(default_region=region).normalize(second) == expected


# --- the region of each source -----------------------------------------------------------


def record(protocol: Protocol, source: str, called: str) -> CallRecord:
    return CallRecord(
        kind=RecordKind.STOP,
        source=source,
        protocol=protocol,
        session_id=f"{protocol}-{source}-{called}",
        event_time=WHEN,
        duration_ms=1000,
        called=called,
        calling="+442079460123",
    )


def test_the_redactor_reads_each_source_in_its_region_by_protocol_and_name() -> None:
    """A Kamailio's RADIUS client and its SIP source share a name, not a region."""
    privacy = PrivacyConfig(keys=(("k1", b"K" * 32),), record_secret=b"R" * 32, default_region="DE")
    regions = {("radius", "kamailio"): "US", ("sip", "kamailio"): "DK", ("json", "fs"): "NO"}
    redactor = Redactor(privacy, regions=regions)
    cases = [
        (Protocol.RADIUS, "kamailio", "8173383772", "+1817", "US", "+18173383***"),
        (Protocol.SIP, "kamailio", "35104724", "+4535", "DK", "+4535104***"),
        (Protocol.JSON, "fs", "22123456", "+4722", "NO", "+4722123***"),
        (Protocol.JSON, "kamailio", "030123456", "+4930", "DE", "+4930123***"),  # the default
        (Protocol.RADIUS, "sbc", "030123456", "+4930", "DE", "+4930123***"),
        (Protocol.RADIUS, "kamailio", "+4535104724", "+4535", "DK", "+4535104***"),
    ]
    for protocol, source, called, prefix, country, masked in cases:
        stored = redactor.redact(record(protocol, source, called), WHEN)
        assert (stored.called_prefix, stored.called_country, stored.called_masked) == (
            prefix,
            country,
            masked,
        ), (protocol, source)
    # one plan per region, shared by the sources in it
    assert redactor.plan_for("US") is redactor.source_plans["kamailio"]["radius"]
    assert redactor.plan_for("DE") is redactor.plan


def test_erase_reads_a_national_number_in_the_region_it_is_given() -> None:
    privacy = PrivacyConfig(keys=(("k1", b"K" * 32),), record_secret=b"R" * 32, default_region="DE")
    redactor = Redactor(privacy)
    danish = redactor.number_pseudonyms("+45 35 10 47 24")
    assert redactor.number_pseudonyms("35104724", "DK") == danish
    assert redactor.number_pseudonyms("35104724") != danish  # in Germany it is another number
    assert redactor.number_pseudonyms("+4535104724", "US") == danish  # international: anywhere


# --- configuration -----------------------------------------------------------------------

REGIONS_CONFIG = """
[spool]
directory = "spool"

[privacy]
key_file = "keys"
record_key_file = "record-key"
default_region = "DE"

[radius]
listen = ["127.0.0.1:1813"]

[[radius.clients]]
name = "kamailio"
address = "192.0.2.10"
secret = "s"
region = "us"

[[radius.clients]]
name = "sbc-berlin"
address = "192.0.2.11"
secret = "s"

[sip]
listen = ["127.0.0.1:9060"]

[[sip.sources]]
name = "kamailio"
address = "192.0.2.10"
region = "DK"

[json]
listen = "127.0.0.1:9811"
allowed = ["192.0.2.30/32"]
source = "fs-oslo"
region = "NO"
"""


def regions_file(directory: Path, text: str) -> Path:
    write_keys(directory)
    path = directory / "collector.toml"
    path.write_text(text)
    return path


def test_region_of_each_client_source_and_sender_is_read(tmp_path: Path) -> None:
    loaded = load_config(str(regions_file(tmp_path, REGIONS_CONFIG)))
    assert loaded.source_regions() == {
        ("radius", "kamailio"): "US",
        ("sip", "kamailio"): "DK",
        ("json", "fs-oslo"): "NO",
    }
    assert Config(path="x").source_regions() == {}


def test_an_unknown_region_is_a_problem_naming_file_and_key(tmp_path: Path) -> None:
    text = (
        REGIONS_CONFIG.replace('region = "us"', 'region = "XX"')
        .replace('region = "DK"', 'region = "Denmark"')
        .replace('region = "NO"', 'region = "001"')
        .replace('default_region = "DE"', 'default_region = "EU"')
        .replace('name = "sbc-berlin"', 'name = "sbc-berlin"\nregion = ""')
    )
    path = regions_file(tmp_path, text)
    result = check_config(path)
    assert result.returncode == 1
    problems = problem_lines(result, path)
    assert sorted(problems) == sorted(
        f"{path}: {key}: {reason}"
        for key, reason in [
            ("privacy.default_region", "'EU' is not an ISO 3166 region code"),
            ("radius.clients[0].region", "'XX' is not an ISO 3166 region code"),
            ("radius.clients[1].region", "must be a non-empty string"),
            ("sip.sources[0].region", "'Denmark' is not an ISO 3166 region code"),
            ("json.region", "'001' is not an ISO 3166 region code"),
        ]
    )


def test_erase_refuses_an_unknown_region(tmp_path: Path) -> None:
    path = regions_file(tmp_path, REGIONS_CONFIG)
    result = run_command("erase", "--config", str(path), "--number", "35104724", "--region", "XX")
    assert result.returncode == 2
    assert "--region: 'XX' is not an ISO 3166 region code" in result.stderr
    assert "35104724" not in result.stderr


# --- through the daemon: RADIUS, SIP and JSON, each source in its region ------------------

#: the SIP source at 127.0.0.3 (raw SIP, in Great Britain)
GB_PROXY_ADDRESS = "127.0.0.3"
OSLO_ADDRESS = "127.0.0.2"
BERLIN_ADDRESS = "127.0.0.4"
PARIS = "fs-paris"


def regions_config(tmp_path: Path, dsn: str) -> CollectorConfig:
    """RADIUS clients in the US (radclient, 127.0.0.1), Norway and with the default
    region (Germany); SIP sources in Denmark (named like the US RADIUS client) and
    Great Britain; the JSON sender in France."""
    sip_port = free_port()
    json_port = free_port(socket.SOCK_STREAM)
    clients = "".join(
        f'\n[[radius.clients]]\nname = "{name}"\naddress = "{address}"\nsecret = "{SECRET}"\n'
        + (f'region = "{region}"\n' if region else "")
        for name, address, region in (
            ("kamailio", "127.0.0.1", "US"),  # radclient's
            ("sbc-oslo", OSLO_ADDRESS, "NO"),
            ("sbc-berlin", BERLIN_ADDRESS, None),
        )
    )
    sip = (
        f'[sip]\nlisten = ["127.0.0.1:{sip_port}"]\n\n'
        '[[sip.sources]]\nname = "kamailio"\naddress = "127.0.0.1"\nregion = "DK"\n\n'
        f'[[sip.sources]]\nname = "proxy-london"\naddress = "{GB_PROXY_ADDRESS}"\nregion = "GB"\n'
    )
    json = json_section(json_port).replace('source = "fs-test"', f'source = "{PARIS}"')
    return CollectorConfig(
        directory=tmp_path,
        dsn=dsn,
        sip_port=sip_port,
        json_port=json_port,
        client_address="127.0.0.9",  # the harness's own client: nobody sends from there
        extra=sip + "\n" + json + 'region = "FR"\n',
        extra_clients=clients,
        privacy_extra='default_region = "DE"\n',
    )


def generic_stop(session: str, called: str) -> bytes:
    """An RFC 2866 Stop as a plain switch sends it."""
    return b"".join(
        [
            codec.encode_attribute(d.ACCT_STATUS_TYPE, codec.integer(d.STATUS_STOP)),
            codec.encode_attribute(d.ACCT_SESSION_ID, session.encode()),
            codec.encode_attribute(d.CALLING_STATION_ID, b"+442079460123"),
            codec.encode_attribute(d.CALLED_STATION_ID, called.encode()),
            codec.encode_attribute(d.EVENT_TIMESTAMP, codec.integer(int(time.time()))),
            codec.encode_attribute(d.ACCT_SESSION_TIME, codec.integer(42)),
        ]
    )


async def send_from(collector: Collector, address: str, packets: list[bytes]) -> None:
    async with AccountingClient(collector.radius_address, SECRET.encode(), local_host=address) as c:
        for packet in packets:
            assert await c.send(packet)


def reload(collector: Collector, old: str, new: str) -> None:
    """Edit the daemon's configuration file and send SIGHUP."""
    text = collector.config_path.read_text()
    assert old in text
    collector.config_path.write_text(text.replace(old, new, 1))
    before = collector.log_text().count("configuration reloaded")
    collector.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while collector.log_text().count("configuration reloaded") == before:
        assert time.monotonic() < deadline, "no reload"
        time.sleep(0.05)


def by_number(rows: list[dict[str, Any]]) -> dict[str | None, list[tuple[str, str, Any, Any]]]:
    """(protocol, source, prefix, country) of the rows, by called pseudonym."""
    found: dict[str | None, list[tuple[str, str, Any, Any]]] = {}
    for row in rows:
        found.setdefault(row["called_hmac"], []).append(
            (row["protocol"], row["source"], row["called_prefix"], row["called_country"])
        )
    return {key: sorted(value) for key, value in found.items()}


async def test_each_source_reads_national_numbers_in_its_region_and_a_reload_changes_it(
    radclient: str, tmp_path: Path, dsn: str
) -> None:
    config = regions_config(tmp_path / "c", dsn)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    assert config.sip_port is not None
    with running_collector(config) as collector:
        # RADIUS from the Kamailio in the US (radclient), from Oslo and from Berlin
        send_radius(
            radclient,
            collector,
            [
                radius_packet("us-1", "8173383772", "+442079460123"),
                radius_packet("us-2", "8884441111", "+442079460123"),
                radius_packet("us-3", "35104724", "+442079460123"),  # no US number
                radius_packet("us-opaque", OPAQUE_ID, "+442079460123"),
            ],
        )
        await send_from(collector, OSLO_ADDRESS, [generic_stop("no-1", "22123456")])
        await send_from(
            collector,
            BERLIN_ADDRESS,
            [generic_stop("de-1", "030 1234567"), generic_stop("de-2", "4930123456")],
        )
        # SIP: the same Kamailio's copies (HEP, Denmark), the London proxy (raw SIP)
        sender = Sender(config.sip_port)
        london = Sender(config.sip_port, GB_PROXY_ADDRESS)
        try:
            sender.send(hep_flow(busy(Call("dk-1@pbx", "35104724")), start))
            sender.send(hep_flow(busy(Call("dk-opaque@pbx", OPAQUE_ID)), start))
            for _offset, message in busy(Call("gb-1@pbx", "02079460123")):
                london.send(mirrored(message))
        finally:
            sender.close()
            london.close()
        # JSON from FreeSWITCH in Paris
        await post_json(
            config,
            [json_document("5d4c0c86-3f1e-4b7a-9d2c-2a1f0e9b7001", "0123456789", "+4930123456")],
        )
        rows = await wait_rows(dsn, "cdrs", 4 + 1 + 2 + 2 + 1 + 1)

        found = by_number(rows)
        assert found[called_hmac("+18173383772")] == [("radius", "kamailio", "+1817", "US")]
        assert found[called_hmac("+18884441111")] == [("radius", "kamailio", "+1888", "US")]
        assert found[called_hmac("+4722123456")] == [("radius", "sbc-oslo", "+4722", "NO")]
        # the default region: Germany, where "4930…" is the international form
        assert found[called_hmac("+49301234567")] == [("radius", "sbc-berlin", "+4930", "DE")]
        assert found[called_hmac("+4930123456")] == [("radius", "sbc-berlin", "+4930", "DE")]
        # the name the RADIUS client and the SIP source share: each its own region
        assert found[called_hmac("+4535104724")] == [("sip", "kamailio", "+4535", "DK")]
        assert called_hmac("+35104724") in found  # the same digits from the US client
        assert found[called_hmac("+442079460123")] == [("sip", "proxy-london", "+4420", "GB")]
        assert found[called_hmac("+33123456789")] == [("json", PARIS, "+331", "FR")]
        masked = {row["called_masked"] for row in rows if row["called_hmac"] is not None}
        assert {"+18173383***", "+4535104***", "+4722123***", "+33123456***"} <= masked
        # what is no number stays none, in every region: counted, no number fields
        opaque = found[None]
        assert opaque == [("radius", "kamailio", None, None), ("sip", "kamailio", None, None)]
        for row in rows:
            if row["called_hmac"] is None:
                assert all(row[column] is None for column in NUMBER_COLUMNS)
        assert collector.metric(UNUSABLE, source="kamailio", reason="not_a_number") == 2

        # the Kamailio moves to Denmark: a reload takes its new region
        reload(collector, 'region = "US"', 'region = "DK"')
        send_radius(radclient, collector, [radius_packet("dk-2", "35104724", "+442079460123")])
        rows = await wait_rows(dsn, "cdrs", len(rows) + 1)
        assert by_number(rows)[called_hmac("+4535104724")] == [
            ("radius", "kamailio", "+4535", "DK"),
            ("sip", "kamailio", "+4535", "DK"),
        ]

        # erase: a national number in the region given, an international one anywhere
        result = run_command(
            "erase", "--config", str(collector.config_path), "--number", "35104724",
            "--region", "dk",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "erased 2 row(s)" in result.stdout
        result = run_command(
            "erase", "--config", str(collector.config_path), "--number", "8173383772"
        )
        assert "erased 0 row(s)" in result.stdout  # in Germany these digits are +81…
        result = run_command(
            "erase", "--config", str(collector.config_path), "--number", "+1 817 338 3772"
        )
        assert "erased 1 row(s)" in result.stdout
        result = run_command(
            "erase", "--config", str(collector.config_path), "--number", "888 444 1111",
            "--region", "US",
        )  # fmt: skip
        assert "erased 1 row(s)" in result.stdout
    left = {row["called_hmac"] for row in await all_rows(dsn, "cdrs")}
    assert not left & {
        called_hmac("+4535104724"),
        called_hmac("+18173383772"),
        called_hmac("+18884441111"),
    }


async def test_a_source_without_a_region_of_its_own_follows_a_changed_default(
    tmp_path: Path, dsn: str
) -> None:
    config = CollectorConfig(
        directory=tmp_path / "c", dsn=dsn, privacy_extra='default_region = "US"\n'
    )
    with running_collector(config) as collector:
        await send_from(collector, "127.0.0.1", [generic_stop("a", "8173383772")])
        await wait_for(lambda: collector.metric("cdr_collector_records_stored_total") >= 1)
        reload(collector, 'default_region = "US"', 'default_region = "NO"')
        await send_from(collector, "127.0.0.1", [generic_stop("b", "22123456")])
        rows = await wait_rows(dsn, "cdrs", 2)
    assert sorted((r["called_prefix"], r["called_country"]) for r in rows) == [
        ("+1817", "US"),
        ("+4722", "NO"),
    ]
