"""The shipped monitoring: Prometheus rules (config/prometheus) and the Grafana dashboard
(config/grafana), checked by promtool, read for what they reference, and run on a real
Prometheus scraping a real daemon while RADIUS, SIP (HEP) and JSON traffic flows.

The real Prometheus is Debian's `prometheus` binary, started here on a free port with
its own storage directory, scraping every second and evaluating the shipped rules
every second. Every recording rule and every dashboard expression must return
samples there, every rule group must evaluate without errors, and the figures the
rules compute from the traffic (ASR, NER per source, the high-risk call) must be
the ones the traffic implies. The test prints a table of what each returned.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from collector.receivers.radius import dictionary as d
from collector.telemetry import Telemetry
from collector.traffic import AccountingClient, Call, generic_attributes
from tests.conftest import require_program
from tests.daemon import (
    ROOT,
    SECRET,
    Collector,
    CollectorConfig,
    free_port,
    running_collector,
    wait_for,
)
from tests.test_json_cdr import SOURCE as JSON_SOURCE
from tests.test_json_cdr import json_section
from tests.test_sip_receiver import PROXY as SIP_SOURCE
from tests.test_sip_receiver import Call as SipCall
from tests.test_sip_receiver import Sender, Step, answered, hep_flow, sip_section

RULES = ROOT / "config" / "prometheus" / "cdr-collector.rules.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "cdr-collector.rules.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "cdr-collector.json"
#: the scrape job the README's configuration names, the one label the rules assume
JOB = "cdr-collector"
RADIUS_SOURCE = "sbc-test"
#: a Latvian range, listed as high-risk for the test (calls to it are counted apart)
HIGH_RISK_PREFIX = "37167"
#: what the test sends per source: (answered, failed) call legs
SENT = {RADIUS_SOURCE: (5, 2), SIP_SOURCE: (3, 2), JSON_SOURCE: (2, 1)}
#: PromQL words that are not metric names
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)


# --- reading the rules and the dashboard ---------------------------------------


def rules() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return document


def recorded_names() -> list[str]:
    return [r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r]


def rule_expressions() -> dict[str, str]:
    """Every rule's name (record or alert) and its expression."""
    return {r.get("record") or r["alert"]: r["expr"] for g in rules()["groups"] for r in g["rules"]}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every target."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p["targets"]]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label
    names of by/on clauses, strings and numbers taken out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        token = match.group(0)
        if token.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def exposed_names() -> set[str]:
    """Every sample name the daemon's /metrics can carry, from its own Telemetry
    (primed for a source of each listener, as the daemon is at start-up)."""
    telemetry = Telemetry()
    telemetry.prime({"radius": ["r"], "sip": ["s"], "json": ["j"]})
    names: set[str] = set()
    for family in telemetry.registry.collect():
        names.update(sample.name for sample in family.samples)
        if not family.samples:  # UDP drops: listed only once a socket is watched
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def substituted(expression: str) -> str:
    """A dashboard expression as Grafana sends it with every source and a 1 m rate interval."""
    return expression.replace("$__rate_interval", "1m").replace("$source", ".*")


# --- promtool and the static checks -------------------------------------------


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = require_program("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout


def test_every_alert_is_unit_tested_firing_and_quiet_and_documented() -> None:
    """Each alert has a severity, the three annotations, a firing case and a quiet case
    in the promtool tests, and a row in the README's alert table."""
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    alerts = [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}, name
        assert name in firing, f"{name} is never shown firing"
        assert name in quiet, f"{name} is never shown quiet"
        assert f"| `{name}` |" in readme, f"{name} is not in the README's alert table"


def test_rules_and_dashboard_reference_only_what_exists() -> None:
    """Every metric a rule or a panel selects is one the daemon exposes or a rule records
    (`up` for the collector-down alert); every recording rule is used by an alert or
    a panel; raw counters are rated over $__rate_interval, recorded series never."""
    exposed = exposed_names()
    recorded = set(recorded_names())
    assert len(recorded) == len(recorded_names()), "a rule is recorded twice"
    assert all(re.fullmatch(r"cdr_collector:[a-z0-9_]+:[a-z0-9_]+", name) for name in recorded)
    used: set[str] = set()
    for name, expression in rule_expressions().items():
        names = metric_names(expression)
        assert names, name
        assert names <= exposed | recorded | {"up"}, (name, names - exposed - recorded)
        used |= names
    for title, expression in dashboard_expressions():
        names = metric_names(expression)
        assert names, title
        assert names <= exposed | recorded, (title, names - exposed - recorded)
        used |= names
        windows = re.findall(r"\[([^\]]+)\]", expression)
        if names & recorded:
            assert not windows, (title, "a recorded series needs no rate window")
        assert all(window == "$__rate_interval" for window in windows), title
    assert recorded <= used, f"recorded and never used: {sorted(recorded - used)}"
    # the only job label assumed anywhere
    for name, expression in rule_expressions().items():
        assert "job=" not in expression or expression == f'up{{job="{JOB}"}} == 0', name


def test_dashboard_imports_with_a_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    (ds_input,) = board["__inputs"]
    assert (ds_input["type"], ds_input["pluginId"]) == ("datasource", "prometheus")
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    panel_types = {p["type"] for p in dashboard_panels()}
    assert {("panel", kind) for kind in panel_types} <= required
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    assert variables["datasource"]["current"]["value"] == "${" + ds_input["name"] + "}"
    source = variables["source"]
    assert source["type"] == "query"
    assert source["definition"] == "label_values(cdr_collector_records_stored_total, source)"
    assert source["query"]["query"] == source["definition"]
    assert source["multi"] and source["includeAll"]
    uses_variable = {"type": "prometheus", "uid": "${datasource}"}
    assert source["datasource"] == uses_variable
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        assert panel["datasource"] == uses_variable, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == uses_variable, panel["title"]
    # every section the operator needs, each with panels
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Traffic",
        "Call quality",
        "Durability",
        "Refusals",
        "Revenue assurance",
        "Fraud",
        "Process",
    ]


# --- the real Prometheus --------------------------------------------------------


class Prometheus:
    """A Prometheus server process of the test's own, and its HTTP API."""

    def __init__(self, binary: str, directory: Path, target: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(socket.SOCK_STREAM)
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_path = directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log_path = directory / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **parameters: str) -> Any:
        query = urllib.parse.urlencode(parameters)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expression)
        assert data["resultType"] == "vector", (expression, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_text()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def failed(call: SipCall) -> list[Step]:
    """INVITE, 100, 503 without a Reason (a failure of the network), ACK."""
    return [
        (0.0, call.invite()),
        (0.01, call.response(100)),
        (0.3, call.response(503)),
        (0.31, call.request("ACK", 1)),
    ]


def json_cdr(answered_call: bool, called: str, now: datetime) -> bytes:
    """A minimal mod_json_cdr document of a leg that ended a moment ago."""
    start = int((now - timedelta(seconds=90)).timestamp() * 1_000_000)
    answer = start + 2_000_000
    end = start + 62_000_000
    variables = {
        "uuid": str(uuid.uuid4()),
        "direction": "inbound",
        "caller_id_number": "+33612345678",
        "destination_number": called,
        "start_uepoch": str(start),
        "answer_uepoch": str(answer if answered_call else 0),
        "end_uepoch": str(end),
        "billmsec": str(60_000 if answered_call else 0),
        "hangup_cause": "NORMAL_CLEARING" if answered_call else "NETWORK_OUT_OF_ORDER",
        "sip_term_status": "200" if answered_call else "503",
    }
    return json.dumps({"variables": variables}).encode()


def radius_calls(now: datetime) -> list[Call]:
    """SENT's RADIUS legs: answered ones (the last to the high-risk range) and failed ones."""
    count_answered, count_failed = SENT[RADIUS_SOURCE]
    calls = []
    for index in range(count_answered + count_failed):
        setup = now - timedelta(seconds=120 + index)
        is_answered = index < count_answered
        called = "+37167000123" if index == count_answered - 1 else f"+4420794601{index:02d}"
        calls.append(
            Call(
                session_id=f"mon-{uuid.uuid4().hex}",
                calling="+493012345678",
                called=called,
                setup=setup,
                connect=setup + timedelta(seconds=3) if is_answered else None,
                disconnect=setup + timedelta(seconds=63 if is_answered else 4),
                cause=16 if is_answered else 34,  # 34: no circuit available, a failure
            )
        )
    return calls


async def send_traffic(collector: Collector, config: CollectorConfig) -> None:
    """SENT over RADIUS, SIP (HEP over UDP) and JSON, and three RADIUS requests signed
    with a wrong secret (refused as bad_authenticator)."""
    now = datetime.now(UTC)
    async with AccountingClient(collector.radius_address, SECRET.encode()) as client:
        stats = await client.send_all([generic_attributes(c) for c in radius_calls(now)])
    assert stats.acknowledged == sum(SENT[RADIUS_SOURCE])
    async with AccountingClient(
        collector.radius_address, b"not-the-secret", timeout_s=0.2, tries=1
    ) as stranger:
        for leg in radius_calls(now)[:3]:
            assert not await stranger.send(generic_attributes(leg, d.STATUS_STOP))

    assert config.sip_port is not None
    sender = Sender(config.sip_port)
    start = now - timedelta(minutes=2)
    count_answered, count_failed = SENT[SIP_SOURCE]
    try:
        for index in range(count_answered + count_failed):
            dialog = SipCall(f"mon-{index}-{uuid.uuid4().hex[:8]}@pbx", f"+3314460{index:04d}")
            steps = answered(dialog, 20.0) if index < count_answered else failed(dialog)
            sender.send(hep_flow(steps, start + timedelta(seconds=index)))
    finally:
        sender.close()

    count_answered, count_failed = SENT[JSON_SOURCE]
    target = f"http://127.0.0.1:{config.json_port}/cdr"
    async with aiohttp.ClientSession() as session:
        for index in range(count_answered + count_failed):
            body = json_cdr(index < count_answered, f"+3491555{index:04d}", now)
            headers = {"Content-Type": "application/json"}
            async with session.post(target, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()


@contextlib.contextmanager
def running_prometheus(directory: Path, target: str) -> Iterator[Prometheus]:
    """Start Debian's Prometheus scraping `target` with the shipped rules; stop it after."""
    prometheus = Prometheus(require_program("prometheus"), directory, target)
    try:
        deadline = time.monotonic() + 60
        while not prometheus.ready():
            assert time.monotonic() < deadline, f"prometheus not ready:\n{prometheus.log_text()}"
            time.sleep(0.1)
        yield prometheus
    finally:
        prometheus.stop()


def first_value(result: list[dict[str, Any]], **labels: str) -> float:
    """The value of the one sample of `result` with `labels`."""
    (sample,) = [s for s in result if all(s["metric"].get(k) == v for k, v in labels.items())]
    return float(sample["value"][1])


def summary(result: list[dict[str, Any]]) -> str:
    """One line of what a query returned: samples, with their distinguishing labels."""
    parts = []
    for sample in sorted(result, key=lambda s: sorted(s["metric"].items())):
        labels = ",".join(
            f"{k}={v}"
            for k, v in sorted(sample["metric"].items())
            if k not in {"__name__", "job", "instance"}
        )
        value = float(sample["value"][1])
        parts.append(f"{labels or '-'}={value:.4g}")
    shown = " ".join(parts[:6]) + (f" (+{len(parts) - 6} more)" if len(parts) > 6 else "")
    return f"{len(result)}: {shown}"


async def test_rules_and_dashboard_on_a_real_prometheus_while_traffic_flows(
    tmp_path: Path, dsn: str
) -> None:
    sip_port = free_port()
    json_port = free_port(socket.SOCK_STREAM)
    prefixes = tmp_path / "high-risk-prefixes"
    prefixes.write_text(f"# test list\n{HIGH_RISK_PREFIX}\n", encoding="utf-8")
    config = CollectorConfig(
        directory=tmp_path / "collector",
        dsn=dsn,
        client_name=RADIUS_SOURCE,
        sip_port=sip_port,
        json_port=json_port,
        log_level="info",
        extra=sip_section(sip_port)
        + "\n"
        + json_section(json_port)
        + f'\n[fraud]\nhigh_risk_prefixes_file = "{prefixes}"\n',
    )
    sent = sum(sum(pair) for pair in SENT.values())
    with (
        running_collector(config) as collector,
        running_prometheus(tmp_path / "prometheus", f"127.0.0.1:{config.metrics_port}") as prom,
    ):
        # the counters' 0 must be scraped before the traffic, so that rates see it grow
        await wait_for(lambda: len(prom.query(f'up{{job="{JOB}"}} == 1')) == 1, timeout=30)
        # Two waves: a country's series is born with its first call leg (only "unknown"
        # exists from start-up), and a rate cannot see the increase that created a
        # series; the second wave is what the per-country rates show.
        for wave in (1, 2):
            await send_traffic(collector, config)
            await wait_for(
                lambda wave=wave: (
                    collector.metric("cdr_collector_records_stored_total") == wave * sent
                ),
                timeout=30,
            )
            await wait_for(
                lambda wave=wave: prom.query(
                    f"sum(cdr_collector_records_stored_total) == {wave * sent}"
                ),
                timeout=30,
            )
        recorded = recorded_names()
        panels = dashboard_expressions()
        expressions = [(name, name) for name in recorded] + [
            (f"{title} ({index})", substituted(expression))
            for index, (title, expression) in enumerate(panels, 1)
        ]

        def everything_answers() -> bool:
            return all(prom.query(expression) for _, expression in expressions)

        try:
            await wait_for(everything_answers, timeout=45, interval=0.5)
        finally:
            results = {expression: prom.query(expression) for _, expression in expressions}
            print("\n--- what the real Prometheus returned (samples: label=value) ---")
            for name, expression in expressions:
                print(f"{name[:52]:52} {summary(results[expression])}")
        empty = [name for name, expression in expressions if not results[expression]]
        assert not empty, f"no samples: {empty}"

        # the figures the traffic implies
        asr = prom.query("cdr_collector:asr:ratio5m")
        ner = prom.query("cdr_collector:ner:ratio5m")
        for source, (count_answered, count_failed) in SENT.items():
            share = count_answered / (count_answered + count_failed)
            assert abs(first_value(asr, source=source) - share) < 0.01, (source, asr)
            assert abs(first_value(ner, source=source) - share) < 0.01, (source, ner)
        high_risk = prom.query("cdr_collector:high_risk_calls:increase15m")
        assert first_value(high_risk, source=RADIUS_SOURCE) > 0
        assert first_value(high_risk, source=JSON_SOURCE) == 0
        countries = {
            s["metric"]["country"]
            for s in prom.query("cdr_collector:destination_calls:rate15m > 0")
        }
        assert {"GB", "LV", "FR", "ES"} <= countries, countries
        refused = prom.query("cdr_collector:packets_refused:rate5m")
        assert first_value(refused, source=RADIUS_SOURCE, outcome="bad_authenticator") > 0
        assert first_value(refused, source=RADIUS_SOURCE, outcome="malformed") == 0

        # every group evaluates without an error
        groups = prom.api("/api/v1/rules")["groups"]
        assert {g["name"] for g in groups} == {g["name"] for g in rules()["groups"]}
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (group["name"], rule["name"], rule.get("lastError"))
                assert not rule.get("lastError"), (rule["name"], rule["lastError"])
        # and the alert the traffic deserves fires on the real server: a high-risk call
        # (the others need minutes of `for:` or a day of history: the promtool tests show them)
        await wait_for(
            lambda: any(
                alert["labels"]["alertname"] == "CdrCollectorHighRiskCalls"
                and alert["labels"].get("source") == RADIUS_SOURCE
                and alert["state"] == "firing"
                for alert in prom.api("/api/v1/alerts")["alerts"]
            ),
            timeout=15,
        )
        alerts = prom.api("/api/v1/alerts")["alerts"]
        print("alerts:", sorted((a["labels"]["alertname"], a["state"]) for a in alerts))
        assert {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"} == {
            "CdrCollectorHighRiskCalls"
        }, alerts
