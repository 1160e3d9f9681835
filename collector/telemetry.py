"""Every metric the daemon exposes, defined once, and the HTTP endpoint serving them.

The daemon's own names carry the `cdr_collector_` prefix; beside them stand
the standard `process_*` (memory, CPU, descriptors, start time) and `python_*`
(version, garbage collector) metrics every Prometheus client library exports
under those names, which dashboards and alerts already know. Labels hold only configured
names (listener, source) and small fixed vocabularies (outcome, reason): never
a number, an IP address or anything taken from a packet. Hot paths bind label
children once and keep them (`labels()` per packet costs more than the work).
The endpoint serves /metrics, /healthz (the process is alive) and /readyz
(listeners bound and somewhere durable to put records) on `metrics.listen`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Protocol

import phonenumbers
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from collector.compiled import running_compiled
from collector.series import FastCounterChild as FastCounterChild
from collector.series import FastHistogramChild as FastHistogramChild
from collector.series import PacketCounts as PacketCounts

PREFIX = "cdr_collector_"

#: why a packet was not turned into a record (values of packets_total{outcome})
PACKET_OUTCOMES = (
    "accepted",
    "duplicate",
    "bad_authenticator",
    "unknown_client",
    "malformed",
    "unsupported",
    "overloaded",
    "not_durable",
)

#: outcomes of calls_total
CALL_OUTCOMES = ("answered", "busy", "no_answer", "failed", "cancelled")

#: the country label of a call leg without a usable called number
UNKNOWN_COUNTRY = "unknown"

#: why records were not made durable (values of records_dropped_total{reason})
DROP_REASONS = ("spool_full", "spool_error", "database_unavailable", "rejected")

#: the source label of packets from no configured peer (unknown_client) or whose
#: source could not be told (internal errors)
UNKNOWN_SOURCE = "unknown"


def _release() -> str:
    """The installed release of the package ("unknown" when run from a bare checkout)."""
    try:
        return metadata.version("cdr-collector")
    except metadata.PackageNotFoundError:
        return "unknown"


class FastCounter(Collector):
    """A labelled counter for per-packet paths.

    prometheus-client guards every increment with a lock; the daemon counts
    only from its event loop thread, so a plain attribute is enough and costs
    a fraction. Same interface as a prometheus Counter for what the daemon
    uses (`labels(...).inc()`); exposed at scrape time.
    """

    def __init__(self, name: str, documentation: str, labelnames: list[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._children: dict[tuple[str, ...], FastCounterChild] = {}

    def labels(self, *values: str) -> FastCounterChild:
        """The series for these label values (bind it once, keep it)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = FastCounterChild()
        return child

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class FastHistogram(Collector):
    """A labelled histogram for per-packet paths (bucket counts, no lock).

    Like FastCounter: bind a series once with `labels(...)` and keep it.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: tuple[float, ...],
        labelnames: list[str] | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.upper = list(buckets)
        self.labelnames = labelnames or []
        self._children: dict[tuple[str, ...], FastHistogramChild] = {}

    def labels(self, *values: str) -> FastHistogramChild:
        """The series for these label values (bind it once, keep it)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = FastHistogramChild(self.upper)
        return child

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            cumulative = 0
            buckets = []
            for upper, count in zip(self.upper, child.counts, strict=False):
                cumulative += count
                buckets.append((repr(float(upper)), cumulative))
            buckets.append(("+Inf", cumulative + child.counts[-1]))
            family.add_metric(list(values), buckets, child.sum)
        yield family


class _UdpDrops(Collector):
    """Kernel receive-queue drops of our UDP sockets, read from /proc at scrape time."""

    def __init__(self) -> None:
        self.sockets: dict[int, str] = {}

    def watch(self, fileno: int, listener: str) -> None:
        with contextlib.suppress(OSError):
            self.sockets[os.fstat(fileno).st_ino] = listener

    def unwatch(self, fileno: int) -> None:
        """Leave a socket's drops to another process that reads it too (one socket
        shared by the RADIUS workers): summed over processes, it would count twice."""
        with contextlib.suppress(OSError):
            self.sockets.pop(os.fstat(fileno).st_ino, None)

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            PREFIX + "udp_receive_drops",
            "Datagrams the kernel dropped because a listener's receive buffer was full.",
            labels=["listener"],
        )
        totals: dict[str, int] = {}
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(table, encoding="ascii") as handle:
                    lines = handle.readlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) < 13:
                    continue
                listener = self.sockets.get(int(fields[9]))
                if listener is not None:
                    totals[listener] = totals.get(listener, 0) + int(fields[-1])
        for listener, drops in totals.items():
            family.add_metric([listener], drops)
        yield family


class Telemetry:
    """The daemon's metrics, in their own registry (so tests can run several daemons)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.packets = FastCounter(
            PREFIX + "packets",
            "Packets received, by listener, configured source and outcome.",
            ["listener", "source", "outcome"],
        )
        r.register(self.packets)
        self.records_stored = Counter(
            PREFIX + "records_stored",
            "Records newly committed to PostgreSQL (duplicates not counted).",
            ["source"],
            registry=r,
        )
        self.records_implausible = Counter(
            PREFIX + "records_implausible",
            "Records stored with a time or duration the switch sent replaced or left out"
            " because it was not believable (times_implausible).",
            ["source"],
            registry=r,
        )
        self.records_duplicate = Counter(
            PREFIX + "records_duplicate",
            "Records that reached the database already stored (retransmissions, replays).",
            registry=r,
        )
        self.records_spooled = Counter(
            PREFIX + "records_spooled",
            "Records written to the local spool because the database was unavailable.",
            registry=r,
        )
        self.records_dropped = Counter(
            PREFIX + "records_dropped",
            "Records not made durable and therefore not acknowledged, by reason.",
            ["reason"],
            registry=r,
        )
        self.spool_records = Gauge(
            PREFIX + "spool_records", "Records waiting in the spool.", registry=r
        )
        self.spool_bytes = Gauge(PREFIX + "spool_bytes", "Bytes used by the spool.", registry=r)
        self.spool_max_bytes = Gauge(
            PREFIX + "spool_max_bytes",
            "The spool's limit (spool.max_bytes); 0 without a spool.",
            registry=r,
        )
        self.spool_corrupt = Counter(
            PREFIX + "spool_corrupt",
            "Damaged spool frames found on replay (torn or corrupt tails), skipped.",
            registry=r,
        )
        self.database_up = Gauge(
            PREFIX + "database_up", "1 when the last database operation succeeded.", registry=r
        )
        self.queue_records = Gauge(
            PREFIX + "queue_records", "Records waiting for the writer.", registry=r
        )
        self.ack_latency = FastHistogram(
            PREFIX + "ack_latency_seconds",
            "Time from a RADIUS request's arrival to its response, by RADIUS client (source).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            labelnames=["source"],
        )
        r.register(self.ack_latency)
        self.batch_commit = Histogram(
            PREFIX + "batch_commit_seconds",
            "Time to commit one batch to PostgreSQL.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.batch_records = Histogram(
            PREFIX + "batch_records",
            "Records per committed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.calls = Counter(
            PREFIX + "calls",
            "Finished call legs by outcome (for ASR and NER).",
            ["source", "outcome"],
            registry=r,
        )
        self.billable_seconds = Counter(
            PREFIX + "billable_seconds",
            "Billable seconds of finished call legs (for ACD).",
            ["source"],
            registry=r,
        )
        self.active_calls = Gauge(
            PREFIX + "active_calls",
            "Call legs started and not yet stopped, as seen since this process started.",
            ["source"],
            registry=r,
        )
        self.open_dialogs = Gauge(
            PREFIX + "sip_open_dialogs", "SIP dialogs being tracked.", registry=r
        )
        self.dialogs_evicted = Counter(
            PREFIX + "sip_dialogs_evicted",
            "SIP dialogs closed early because the tracker was full.",
            registry=r,
        )
        self.post_dial_delay = Histogram(
            PREFIX + "post_dial_delay_seconds",
            "Post-dial delay of SIP calls (INVITE to first ringing or answer), by SIP source.",
            ["source"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0),
            registry=r,
        )
        self.config_reloads = Counter(
            PREFIX + "config_reloads",
            "Configuration reloads (SIGHUP) by result.",
            ["result"],
            registry=r,
        )
        self.purged_rows = Counter(
            PREFIX + "retention_deleted_rows",
            "Rows deleted by retention or erasure.",
            ["reason"],
            registry=r,
        )
        self.numbers_unusable = Counter(
            PREFIX + "numbers_unusable",
            "Called or calling values that were no phone number (an opaque id, a name, more"
            " digits than a number has): the record is stored without them. By source, field"
            " (called, calling) and reason (not_a_number, too_long).",
            ["source", "field", "reason"],
            registry=r,
        )
        self.unbilled_calls = Counter(
            PREFIX + "unbilled_calls",
            "Calls seen answered in SIP with no billing record (RADIUS, JSON, CDR file) of"
            " their Call-ID within reconcile.billing_wait_s, by SIP source.",
            ["source"],
            registry=r,
        )
        self.duration_mismatch = Counter(
            PREFIX + "duration_mismatch",
            "Calls seen answered in SIP whose billed duration differs from the signalled one"
            " by more than reconcile.duration_tolerance_ms, by SIP source.",
            ["source"],
            registry=r,
        )
        self.destination_calls = Counter(
            PREFIX + "destination_calls",
            "Finished call legs by the called number's country (ISO 3166 code; 'unknown'"
            " without a usable called number).",
            ["country"],
            registry=r,
        )
        self.destination_billable_seconds = Counter(
            PREFIX + "destination_billable_seconds",
            "Billable seconds of finished call legs by the called number's country.",
            ["country"],
            registry=r,
        )
        self.high_risk_calls = Counter(
            PREFIX + "high_risk_calls",
            "Finished call legs to a high-risk prefix (fraud.high_risk_prefixes_file), by source.",
            ["source"],
            registry=r,
        )
        self.high_risk_billable_seconds = Counter(
            PREFIX + "high_risk_billable_seconds",
            "Billable seconds of finished call legs to a high-risk prefix, by source.",
            ["source"],
            registry=r,
        )
        self.udp_drops = _UdpDrops()
        r.register(self.udp_drops)
        self.build_info = Gauge(
            PREFIX + "build_info",
            "Always 1: the release, and whether the per-record path runs compiled (mypyc,"
            ' compiled="true") or as pure Python.',
            ["version", "compiled"],
            registry=r,
        )
        self.build_info.labels(_release(), "true" if running_compiled() else "false").set(1)
        # read at scrape time (/proc/self, gc.get_stats()): nothing on the packet path
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.database_up.set(0)

    def prime(self, listeners: Mapping[str, Iterable[str]]) -> None:
        """Make every per-source series a dashboard or an alert reads exist, at 0, for
        each configured source of each listener (`listeners`: section name → source
        names), so that a quiet source shows 0 rather than no data; and the per-country
        ones for 'unknown'. Series of sources a reload removed keep their counts."""
        for listener, sources in listeners.items():
            for source in (*sources, UNKNOWN_SOURCE):
                for outcome in PACKET_OUTCOMES:
                    self.packets.labels(listener, source, outcome)
            for source in sources:
                self._prime_source(listener, source)
        # every country a called number can belong to, at 0: the first calls to a
        # country nobody calls are the very ones a burst alert must see, and a
        # series that appears with them already counted shows no increase
        for country in (*sorted(phonenumbers.SUPPORTED_REGIONS), UNKNOWN_COUNTRY):
            self.destination_calls.labels(country)
            self.destination_billable_seconds.labels(country)
        for reason in DROP_REASONS:
            self.records_dropped.labels(reason)

    def _prime_source(self, listener: str, source: str) -> None:
        if listener == "radius":
            self.ack_latency.labels(source)
        elif listener == "sip":
            self.post_dial_delay.labels(source)
        self.records_stored.labels(source)
        self.records_implausible.labels(source)
        for outcome in CALL_OUTCOMES:
            self.calls.labels(source, outcome)
        self.billable_seconds.labels(source)
        self.active_calls.labels(source)
        self.unbilled_calls.labels(source)
        self.duration_mismatch.labels(source)
        self.high_risk_calls.labels(source)
        self.high_risk_billable_seconds.labels(source)

    def watch_workers(self, count: int) -> None:
        """The metrics of the RADIUS worker processes (collector.workers), for a main
        process that runs `count` processes in all; each worker's series at 0."""
        self.worker_restarts = Counter(
            PREFIX + "worker_restarts",
            "RADIUS worker processes started again after they ended unexpectedly, by worker.",
            ["worker"],
            registry=self.registry,
        )
        self.worker_up = Gauge(
            PREFIX + "worker_up",
            "1 while a RADIUS worker process runs and is ready, by worker (0 is the main"
            " process, which is always counted up while it answers).",
            ["worker"],
            registry=self.registry,
        )
        self.worker_up.labels("0").set(1)
        for index in range(1, count):
            self.worker_restarts.labels(str(index))
            self.worker_up.labels(str(index)).set(0)

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


#: how the samples of one gauge, one from each process of a collector, make one
#: (collector.workers); a gauge not named here is summed (records and bytes waiting,
#: memory, descriptors), as counters and histograms are
_GAUGE_MERGE: dict[str, Callable[[Sequence[float]], float]] = {
    # 1 only while every process's last database operation succeeded: an outage
    # of one process's connection is an outage (its records go to its spool)
    PREFIX + "database_up": min,
    # counted from the database by the main process alone
    PREFIX + "active_calls": max,
    "process_start_time_seconds": min,
    "process_max_fds": min,
    "python_info": max,
}

#: counters only the main process's count of which means something: a reload of the
#: collector is one reload, however many processes took it
_MAIN_ONLY = frozenset({PREFIX + "config_reloads"})

#: the family types whose samples only grow (a process's own counts)
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})

#: the label that tells the worker processes apart, in the one series added by merging
WORKER_LABEL = "worker"

#: (sample name, its labels): one series of a family
_Identity = tuple[str, frozenset[tuple[str, str]]]


class _Family:
    """One metric family being merged: its help and type, and each series's labels (as
    the first process wrote them) and its value in each process."""

    __slots__ = ("documentation", "kind", "series")

    def __init__(self, documentation: str, kind: str) -> None:
        self.documentation = documentation
        self.kind = kind
        self.series: dict[_Identity, tuple[dict[str, str], list[float]]] = {}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        identity = (name, frozenset(labels.items()))
        found = self.series.get(identity)
        if found is None:
            found = self.series[identity] = (labels, [])
        found[1].append(value)


def _read(
    text: bytes,
    into: dict[str, _Family],
    *,
    skip: frozenset[str] = frozenset(),
    cumulative_only: bool = False,
) -> float:
    """Add the samples of an exposition to `into` (but those of the families in `skip`,
    and with `cumulative_only` those of gauges); the RADIUS packets it counts."""
    packets = 0.0
    for family in text_string_to_metric_families(text.decode("utf-8")):
        if family.name in skip:
            continue
        if cumulative_only and (family.type not in _CUMULATIVE or family.name.endswith("_created")):
            continue
        entry = into.get(family.name)
        if entry is None:
            entry = into[family.name] = _Family(family.documentation, family.type)
        for sample in family.samples:
            if cumulative_only and sample.name.endswith("_created"):
                continue
            entry.add(sample.name, sample.labels, sample.value)
            if family.name == PREFIX + "packets" and sample.labels.get("listener") == "radius":
                packets += sample.value
    return packets


def _add(into: dict[str, _Family], families: dict[str, _Family]) -> None:
    """Add every value of `families` to `into`."""
    for name, family in families.items():
        entry = into.get(name)
        if entry is None:
            entry = into[name] = _Family(family.documentation, family.kind)
        for (sample, _), (labels, values) in family.series.items():
            for value in values:
                entry.add(sample, labels, value)


class Carried:
    """What the ended runs of one worker process counted (collector.workers).

    A worker started again counts from 0; without what its predecessors
    counted, the collector's sums would go back, and Prometheus would take
    that for a reset and see all the main process's counts anew (an
    `increase()` alert firing without cause). The last exposition of each run
    is kept here, its counters and histograms summed, gauges left out (they
    are the live process's).
    """

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}
        self.packets = 0.0

    def add(self, exposition: bytes) -> None:
        """Keep the counts of a run that ended (its last exposition)."""
        self.packets += _read(exposition, self.families, skip=_MAIN_ONLY, cumulative_only=True)
        for family in self.families.values():
            for identity, (labels, values) in family.series.items():
                if len(values) > 1:
                    family.series[identity] = (labels, [sum(values)])


class _Merged(Collector):
    """Metric families already merged, for generate_latest."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_expositions(
    expositions: Sequence[bytes], carried: Sequence[Carried | None] = ()
) -> bytes:
    """One exposition of a collector made of several processes: the main process's
    first, then each RADIUS worker's in the order of their index (b"" for one not
    answering), with `carried` what the ended runs of each counted.

    Each series (name and labels) appears once, as if one process had counted
    everything: counters and histograms are summed, gauges too unless
    `_GAUGE_MERGE` says otherwise (the database is up only when it is for every
    process; `*_created` is the earliest), so every rule and alert reads the same
    as for one process. Added: `cdr_collector_worker_packets_total{worker}`, the
    RADIUS packets each process read (worker "0" is the main process).
    """
    families: dict[str, _Family] = {}
    packets: list[float] = []
    for index, text in enumerate(expositions):
        read = _read(text, families, skip=_MAIN_ONLY if index else frozenset())
        before = carried[index] if index < len(carried) else None
        if before is not None:
            read += before.packets
            _add(families, before.families)
        packets.append(read)
    metrics = []
    for name, family in families.items():
        combine: Callable[[Sequence[float]], float] = sum
        if name.endswith("_created"):
            combine = min
        elif family.kind == "gauge":
            combine = _GAUGE_MERGE.get(name, sum)
        metric = Metric(name, family.documentation, family.kind)
        for (sample_name, _), (labels, values) in family.series.items():
            metric.samples.append(Sample(sample_name, labels, combine(values)))
        metrics.append(metric)
    per_worker = Metric(
        PREFIX + "worker_packets",
        "RADIUS packets read by each process of the collector (worker 0 is the main process).",
        "counter",
    )
    for index, count in enumerate(packets):
        per_worker.samples.append(
            Sample(PREFIX + "worker_packets_total", {WORKER_LABEL: str(index)}, count)
        )
    metrics.append(per_worker)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(metrics))
    return generate_latest(registry)


#: the states of Health whose change is reported at once (systemd's STATUS=)
_REPORTED_STATES = frozenset({"database_up", "spool_full", "spool_pending", "stopping"})


@dataclass
class Health:
    """What /readyz reports; the service fills it in.

    Whoever changes one of the reported states (the database up or down, the
    spool holding records or full, stopping) only assigns it; `on_change`,
    when set, is then called, so the status systemd shows follows the state
    at once instead of at the next watchdog ping.
    """

    listeners_bound: bool = False
    database_configured: bool = True
    database_up: bool = False
    spool_configured: bool = False
    spool_full: bool = False
    #: records wait in the spool (new batches must queue behind them)
    spool_pending: bool = False
    stopping: bool = False
    #: processes serving RADIUS (collector.workers), this one included, and how many
    #: of the others are running and ready
    workers: int = 1
    workers_ready: int = 0
    details: dict[str, str] = field(default_factory=dict)
    #: called after a reported state took a new value
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        changed = name in _REPORTED_STATES and self.__dict__.get(name, value) != value
        object.__setattr__(self, name, value)
        callback = self.__dict__.get("on_change")
        if changed and callback is not None:
            callback()

    def ready(self) -> bool:
        """Ready when listeners are bound and records have a durable place to go.

        A full spool only matters while records would have to go there: with
        the database up and nothing waiting in the spool, batches are
        committed directly.
        """
        if not self.listeners_bound or self.stopping:
            return False
        if self.workers_ready < self.workers - 1:
            return False
        if self.database_up:
            return not (self.spool_full and self.spool_pending)
        return self.spool_configured and not self.spool_full

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly summary for /readyz."""
        summary: dict[str, object] = {
            "ready": self.ready(),
            "listeners_bound": self.listeners_bound,
            "database": "up"
            if self.database_up
            else ("down" if self.database_configured else "off"),
            "spool": ("full" if self.spool_full else "ok") if self.spool_configured else "off",
            "stopping": self.stopping,
        }
        if self.workers > 1:
            summary["radius_workers"] = {"ready": self.workers_ready, "of": self.workers - 1}
        return summary


class Peers(Protocol):
    """The other processes of a collector (collector.workers), as /metrics and /readyz see
    them."""

    async def scrape(self, metrics: bool) -> list[bytes]:
        """Bring `Health.workers_ready` up to date; with `metrics`, each process's
        exposition too, in the order of their index (b"" for one not answering)."""
        ...

    def carried(self) -> list[Carried]:
        """What the ended runs of each process counted, in the same order."""
        ...


def metrics_app(
    telemetry: Telemetry,
    health: Health,
    refresh: Callable[[], None],
    peers: Peers | None = None,
) -> web.Application:
    """The aiohttp application serving /metrics, /healthz and /readyz; with `peers`, for
    this process and the others of the collector together."""

    async def metrics(_request: web.Request) -> web.Response:
        refresh()
        body = telemetry.exposition()
        if peers is not None:
            others = await peers.scrape(True)
            body = merge_expositions([body, *others], [None, *peers.carried()])
        return web.Response(
            body=body,
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        refresh()
        if peers is not None:
            await peers.scrape(False)
        body = json.dumps(health.as_dict()) + "\n"
        return web.Response(
            text=body, status=200 if health.ready() else 503, content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
