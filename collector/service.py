"""Builds the daemon from a Config and runs it: sink, then pipeline, then receivers.

Start order is downstream first (the writer can take records before any
listener is open); stop order is the reverse: listeners stop reading (what
arrives stays queued in the kernel, for the next process when systemd holds
the sockets), the writer drains what is in flight to PostgreSQL or the spool
and fires its acknowledgements (responses still go out, through duplicates
of the sockets), then the sockets close. Signals only set events; `run()`
reacts to them. Start-up fails fast with a clear error; after start-up
nothing a packet does can stop the service.

With `[radius] workers = N`, the service of the main process also starts
and stops N-1 RADIUS worker processes, each running a Service of its own
that serves RADIUS alone (see collector.workers); the main process's
/metrics, /readyz and systemd status speak for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from collector import audit
from collector.config import RECEIVERS, Config, load_config
from collector.credentials import stale_stand_ins
from collector.logs import RateLimitedLog, get_logger
from collector.pipeline.intake import Pipeline
from collector.pipeline.numbers import preload_metadata
from collector.pipeline.redact import ERASURE_TAG_PREFIX, Redactor
from collector.receivers import Receiver, receiver_factory
from collector.receivers.addresses import udp_socket
from collector.reconcile import Reconciler
from collector.retention import (
    anonymize,
    anonymize_rejected,
    cutoff_for,
    purge,
    purge_rejected,
)
from collector.settings import ConfigError, parse_host_port
from collector.sink.postgres import (
    PostgresSink,
    close_stale_calls,
    load_resets,
    move_default_rows,
    open_admin_connection,
)
from collector.sink.spool import Spool
from collector.sink.writer import Writer
from collector.systemd import Notifier, listen_fds, run_watchdog
from collector.telemetry import Health, Telemetry, metrics_app
from collector.workers import (
    STOP_MARGIN_S,
    WorkerLink,
    WorkerPool,
    adopt_spools,
    lock_spool,
    shaped_config,
    worker_sockets,
    worker_spools,
)

log = get_logger(__name__)

ACTIVE_CALLS_INTERVAL_S = 15.0


def settle_memory() -> None:
    """Keep the garbage collector off the packet path.

    Start-up leaves tens of thousands of long-lived objects (modules,
    numbering-plan metadata) that every full collection would traverse again:
    38 ms a time here. They are frozen out of collection, and young
    collections run less often; the per-packet path creates no reference
    cycles, so this only changes when garbage is found, not whether.
    """
    preload_metadata()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    fix_mmap_threshold()


#: glibc's mallopt() parameter for the size from which blocks are mapped on their own
_M_MMAP_THRESHOLD = -3
#: blocks from this size on are mapped on their own, and unmapped when freed
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Keep large short-lived blocks out of the heap, where they fragment it.

    glibc raises its mmap threshold each time a mapped block is freed, up to
    32 MiB; from then on the large blocks that come and go (a worker's metrics
    every 5 s, COPY buffers) are carved from the heap between long-lived small
    objects, and the heap only grows: with two processes, resident memory crept
    up by about 8 MiB a minute in a 10-minute soak. A fixed threshold (glibc's
    starting one) stops that adjustment. True when set (glibc only).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


#: how often the erasure tags are read again (an erasure takes effect on
#: pseudonyms at once; the tags only matter after a key rotation)
ERASURES_REFRESH_S = 30.0


class Service:
    """One running collector: its components and their lifecycle."""

    def __init__(
        self, config: Config, notifier: Notifier | None = None, *, worker: int = 0
    ) -> None:
        #: 0: the main process (alone, or with RADIUS workers); 1 and up: a RADIUS worker
        self.worker = worker
        #: processes serving RADIUS, this one included (a changed `workers` takes effect
        #: at the next start)
        self.processes = config.radius.workers if config.radius is not None else 1
        config = shaped_config(config, worker, self.processes)
        self.config = config
        # a worker is no unit of its own: systemd hears from the main process alone
        self.notifier = notifier or (Notifier(None) if worker else Notifier.from_environ())
        self.telemetry = Telemetry()
        self.health = Health(
            database_configured=config.database is not None,
            spool_configured=config.spool is not None,
        )
        self.health.on_change = self._state_changed
        #: the status systemd was last sent, and whether a new one is on its way
        self._last_status: str | None = None
        self._status_due = False
        self._limited = RateLimitedLog(log)
        self._erasures_wakeup = asyncio.Event()
        self.sink = (
            PostgresSink(config.database, config.privacy.retention_days)
            if config.database
            else None
        )
        if self.sink is not None:
            self.sink.check_calls(config.reconcile)
        self.spool = (
            Spool(config.spool.directory, config.spool.max_bytes, config.spool.segment_max_bytes)
            if config.spool
            else None
        )
        self.writer = Writer(
            config.service, config.database, self.sink, self.spool, self.telemetry, self.health
        )
        #: what every receiver hands its records to: normalize, redact, submit to the writer
        self.intake = Pipeline(
            self._redactor(config),
            self.writer.submit,
            self.writer.set_aside,
        )
        self._prime(config)
        self.receivers: list[Receiver] = []
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics_address: tuple[str, int] | None = None
        self.stop_event = asyncio.Event()
        self.reload_event = asyncio.Event()
        self._started = False
        self._stopped = False
        #: the writer has drained and closed the database connection and the spool
        self._drained = False
        #: systemd credentials in use, by configuration key, each with the identity its
        #: configured file had when their content was loaded
        self._stand_ins = {stand_in.key: stand_in for stand_in in config.stand_ins}
        #: the loaded key ids are yet to be compared with the audit trail's (at start and
        #: after each reload, once the database answers)
        self._keys_to_audit = not worker
        #: the main process's RADIUS workers, or a worker's connection to the main process
        self.pool: WorkerPool | None = None
        self.link: WorkerLink | None = None
        #: a worker's lock on its spool directory (held while the process lives)
        self._spool_lock: int | None = None

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Start everything; raise on any start-up failure (bad port, unusable spool)."""
        cfg = self.config
        if self.worker:
            self.link = WorkerLink.from_environ(
                self._worker_state, self.reload, self._learn_reset, self.stop_event.set
            )
            await self.link.open()
            if cfg.spool is not None:
                # an earlier worker of this index may still be draining into it
                wait = cfg.service.drain_timeout_ms / 1000 + STOP_MARGIN_S
                self._spool_lock = await asyncio.to_thread(
                    lock_spool, Path(cfg.spool.directory), wait
                )
        elif cfg.spool is not None:
            # the spools of workers no longer configured are replayed from here
            await asyncio.to_thread(adopt_spools, cfg.spool.directory, self.processes)
        await self.writer.start()
        if self.sink is not None and self.sink.up:
            # before the first packet: a record's key may depend on its switch's restarts
            # (with the database away, they are read once it answers)
            await self._load_shared_state()
        inherited = worker_sockets() if self.worker else listen_fds()
        radius_sockets = self._radius_sockets(inherited)
        for name, section in cfg.receivers().items():
            receiver = receiver_factory(RECEIVERS[name])(section, self.intake, self.telemetry)
            self.receivers.append(receiver)
            receiver.bind(radius_sockets if name == "radius" and radius_sockets else inherited)
        if self.worker:
            # a socket shared with the main process: its drops are counted there
            for sock in inherited:
                self.telemetry.udp_drops.unwatch(sock.fileno())
        for receiver in self.receivers:
            await receiver.start()
        if not self.worker and self.processes > 1:
            # under socket activation the workers read systemd's sockets too; without,
            # each binds its own (SO_REUSEPORT) beside this process's
            shared = [sock for sock in radius_sockets if any(sock is s for s in inherited)]
            self.pool = WorkerPool(
                cfg.path, self.processes, shared, self.telemetry, self.health, self._learn_reset
            )
            await self.pool.start()
        if cfg.metrics is not None:
            await self._start_metrics(cfg.metrics.listen)
        self.health.listeners_bound = True
        if self.sink is not None:
            if not self.worker:
                self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))
                self._tasks.append(
                    asyncio.create_task(self._active_calls_loop(), name="active-calls")
                )
                reconciler = Reconciler(lambda: self.config, self.telemetry, self.health)
                self._tasks.append(asyncio.create_task(reconciler.run(), name="reconcile"))
            self._tasks.append(asyncio.create_task(self._erasures_loop(), name="erasures"))
        self._tasks.append(
            asyncio.create_task(run_watchdog(self.notifier, self._status), name="watchdog")
        )
        settle_memory()
        self._started = True
        log.info(
            "collector started",
            listener=", ".join(f"{type(r).__name__}" for r in self.receivers),
            state=self.status_line(),
        )
        self.notifier.ready(self._status())
        if self.link is not None:
            self._tasks.append(asyncio.create_task(self.link.serve(), name="worker-link"))
            await self.link.ready()

    def _radius_sockets(self, inherited: list[socket.socket]) -> list[socket.socket]:
        """With several RADIUS processes, this one's RADIUS sockets: systemd's (shared
        by every process), else new ones with SO_REUSEPORT (each process its own, the
        kernel sharing the clients out); alone, none (the receiver makes its own)."""
        radius = self.config.radius
        if radius is None or (not self.worker and self.processes <= 1):
            return []
        sockets: list[socket.socket] = []
        try:
            for listen in radius.listen:
                sockets.append(
                    udp_socket(listen, radius.receive_buffer_bytes, inherited, reuse_port=True)
                )
        except BaseException:
            for sock in sockets:
                if not any(sock is s for s in inherited):
                    sock.close()
            raise
        return sockets

    def _redactor(self, config: Config) -> Redactor:
        """A redactor for `config`: its keys, regions and high-risk prefixes (one that
        tells the other processes of switch restarts when there are several)."""
        redactor = Redactor(
            config.privacy,
            self._number_unusable,
            config.source_regions(),
            config.fraud.high_risk_prefixes if config.fraud is not None else (),
        )
        if self.worker or self.processes > 1:
            redactor.relay = self._relay_reset
        return redactor

    def _relay_reset(self, source: str, when: datetime) -> None:
        """Tell the other processes of a switch restart seen here."""
        if self.pool is not None:
            self.pool.relay_reset(source, when)
        elif self.link is not None:
            self.link.relay_reset(source, when)

    def _learn_reset(self, source: str, when: datetime) -> None:
        """Take a switch restart another process saw."""
        self.redactor.learn_resets({source: [when]})

    def _worker_state(self, metrics: bool) -> dict[str, Any]:
        """What a worker tells the main process of itself (and its exposition)."""
        self.refresh()
        state: dict[str, Any] = {
            "ready": self.health.ready(),
            "spool_records": self.spool.records if self.spool is not None else 0,
            "queue": self.writer.queued,
        }
        if metrics:
            state["metrics"] = self.telemetry.exposition().decode()
        return state

    def _prime(self, config: Config) -> None:
        """Every per-source series at 0 for each configured source (see Telemetry.prime)."""
        self.telemetry.prime(
            {name: section.source_names() for name, section in config.receivers().items()}
        )
        if config.spool is not None:
            self.telemetry.spool_max_bytes.set(config.spool.max_bytes)

    @property
    def redactor(self) -> Redactor:
        """The intake's redactor (replaced on reload)."""
        return self.intake.redactor

    def receiver(self, section: str) -> Receiver | None:
        """The running receiver of a configuration section ("radius", "sip", ...), if any."""
        for receiver in self.receivers:
            if receiver.section == section:
                return receiver
        return None

    async def _start_metrics(self, listen: str) -> None:
        host, port = parse_host_port(listen)
        app = metrics_app(self.telemetry, self.health, self.refresh, self.pool)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.metrics_address = sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Drain and stop; idempotent, and safe after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        self.health.stopping = True
        self.notifier.stopping(self._status())
        for receiver in self.receivers:
            receiver.pause()
        drain = self.config.service.drain_timeout_ms / 1000
        if self.pool is not None:
            # the workers drain as this process does, at the same time; it ends after them
            await asyncio.gather(self.writer.stop(drain), self.pool.stop(drain + STOP_MARGIN_S))
        else:
            await self.writer.stop(drain)
        self._drained = True
        for receiver in reversed(self.receivers):
            await receiver.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.link is not None:
            self.link.close()
        log.info("collector stopped", state=self.status_line())

    async def run(self) -> None:
        """Start, serve until stop_event, reloading on reload_event, then stop."""
        try:
            await self.start()
            while not self.stop_event.is_set():
                waiters = [
                    asyncio.create_task(self.stop_event.wait()),
                    asyncio.create_task(self.reload_event.wait()),
                ]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if self.reload_event.is_set() and not self.stop_event.is_set():
                    self.reload_event.clear()
                    await self._reload_everywhere()
        finally:
            await self.stop()

    def _number_unusable(self, source: str, field: str, reason: str) -> None:
        """Count a called or calling value the redactor refused as no phone number."""
        self.telemetry.numbers_unusable.labels(source, field, reason).inc()
        self._limited.warning(
            f"{field}:{reason}:{source}",
            f"{field} number not stored: no phone number",
            source=source,
            reason=reason,
        )

    # --- reload (SIGHUP) ---------------------------------------------------
    def reload(self) -> bool:
        """Re-read the configuration; take new clients, secrets and keys, or keep the old ones."""
        self.notifier.reloading()
        reloaded = self._reload_config()
        self.notifier.ready(self._status())
        return reloaded

    async def _reload_everywhere(self) -> None:
        """SIGHUP: reload here and, once that succeeded, in every RADIUS worker; systemd
        hears READY again when all have (a worker's failure is logged)."""
        if self.pool is None:
            self.reload()
            return
        self.notifier.reloading()
        if self._reload_config():
            await self.pool.reload()
        self.notifier.ready(self._status())

    def _reload_config(self) -> bool:
        try:
            new = shaped_config(load_config(self.config.path), self.worker, self.processes)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused: configuration problem", config=str(problem))
            self.telemetry.config_reloads.labels("failed").inc()
            return False
        configured = new.radius.workers if new.radius is not None else 1
        if not self.worker and configured != self.processes:
            log.warning(
                "radius.workers changed: takes effect at the next restart",
                count=self.processes,
            )
        if new.privacy.record_secret != self.config.privacy.record_secret:
            log.warning("privacy.record_key_file changed: deduplication across the change is lost")
        self._stand_ins, stale = stale_stand_ins(self._stand_ins, new.stand_ins)
        for stand_in in stale:
            # systemd copied the credential at start: this reload read the old copy again
            log.warning(
                "file changed since the service started, but its systemd credential is "
                "copied only at start and still holds the old content, which stays in use: "
                "restart the service (systemctl restart cdr-collector) to load it",
                key=stand_in.key,
                path=stand_in.configured,
            )
        # regions of clients, sources and senders change with their sections
        redactor = self._redactor(new)
        self._prime(new)
        redactor.erased = self.redactor.erased
        redactor.resets = self.redactor.resets
        self.intake.redactor = redactor
        if self.sink is not None:
            self.sink.check_calls(new.reconcile)
        self._keys_to_audit = True
        self._erasures_wakeup.set()
        sections = new.receivers()
        for receiver in self.receivers:
            section = sections.get(receiver.section)
            if section is None:
                log.warning(
                    "a listener section was removed: takes effect at the next restart",
                    listener=receiver.section,
                )
            else:
                receiver.reload(section)
        self.config = new
        self.telemetry.config_reloads.labels("ok").inc()
        log.info(
            "configuration reloaded",
            receivers=", ".join(section.summary() for section in new.receivers().values()),
            keys=len(new.privacy.keys),
        )
        return True

    # --- background --------------------------------------------------------
    def refresh(self) -> None:
        """Bring gauges up to date before a scrape."""
        self.telemetry.queue_records.set(self.writer.queued)
        if self.spool is not None:
            self.telemetry.spool_records.set(self.spool.records)
            self.telemetry.spool_bytes.set(self.spool.size)
            self.health.spool_full = self.spool.full()
            self.health.spool_pending = self.spool.pending

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the start and stop log lines: stopping or
        stopped, the database as the writer last found it, the spool, the queue.

        The database's state is the writer's (health), not whether a connection is
        open at this moment: closing the connection at a stop is no outage.
        """
        parts = []
        others = list(self.pool.known()) if self.pool is not None else []
        if self.health.stopping:
            parts.append("stopped" if self._drained else "stopping: draining in-flight records")
        if self.sink is not None:
            parts.append("database up" if self.health.database_up else "database DOWN")
        if self.spool is not None:
            full = ", FULL" if self.health.spool_full else ""
            records = self.spool.records + sum(state.spool_records for state in others)
            parts.append(f"spool {records} records{full}")
        if not self._drained:
            parts.append(f"queue {self.writer.queued + sum(state.queue for state in others)}")
        if self.pool is not None and not self._drained:
            parts.append(f"RADIUS workers {self.health.workers_ready} of {len(others)} ready")
        return ", ".join(parts)

    def _status(self) -> str:
        """status_line(), remembered as the one systemd is being sent."""
        self._last_status = self.status_line()
        return self._last_status

    def _state_changed(self) -> None:
        """Health changed (database, spool, stopping): send systemd the new status soon.

        Soon, not at once: the changes of one step of the writer (the spool
        neither full nor empty any more) make one status, sent once the step
        is done, and only when it differs from the last one sent.
        """
        if self._status_due or not self._started:
            return  # before READY=1 there is nothing to update; READY carries the status
        self._status_due = True
        try:
            asyncio.get_running_loop().call_soon(self._send_status)
        except RuntimeError:  # no loop running (a caller outside the daemon): send now
            self._send_status()

    def _send_status(self) -> None:
        self._status_due = False
        line = self.status_line()
        if line != self._last_status:
            self._last_status = line
            self.notifier.status(line)

    async def _retention_loop(self) -> None:
        assert self.config.database is not None
        while True:
            try:
                conn = await open_admin_connection(self.config.database)
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning(
                    "retention skipped: database unavailable", error_class=type(exc).__name__
                )
            else:
                try:
                    # days the writer makes partitions for: rows that went to the
                    # default partition before their day's came get one of their own
                    today = datetime.now(UTC).date()
                    await move_default_rows(conn, (today + timedelta(days=n) for n in range(-1, 3)))
                    for section in self.config.receivers().values():
                        stale = section.stale_calls()
                        if stale is None:
                            continue
                        protocol, age = stale
                        closed = await close_stale_calls(conn, protocol, datetime.now(UTC) - age)
                        if closed:
                            log.info(
                                "stale calls stored as incomplete", protocol=protocol, calls=closed
                            )
                except Exception as exc:  # noqa: BLE001 - retried at the next interval
                    log.warning("database maintenance failed", error_class=type(exc).__name__)
                try:
                    spool = self.config.spool
                    privacy = self.config.privacy
                    result = await purge(
                        conn,
                        privacy.retention_days,
                        spool_directory=spool.directory if spool is not None else None,
                        audit_retention_days=privacy.audit_retention_days,
                    )
                    if spool is not None:
                        # the refused rows the RADIUS workers keep beside their spools
                        cutoff = cutoff_for(privacy.retention_days)
                        for directory in worker_spools(spool.directory):
                            result.rejected_rows_deleted += purge_rejected(directory, cutoff)
                    if result.deleted_anything():
                        # only then: a run every purge_interval_s that found nothing
                        # would bury the trail's other rows
                        await audit.record(
                            conn,
                            audit.RETENTION,
                            result.call_rows,
                            result.describe(privacy.retention_days, privacy.audit_retention_days),
                        )
                    deleted = result.rows_deleted
                    self.telemetry.purged_rows.labels("retention").inc(deleted)
                    if result.partitions_dropped or deleted:
                        log.info(
                            "retention applied",
                            partitions=result.partitions_dropped,
                            rows=deleted,
                            keys=result.keys_expired,
                        )
                except Exception as exc:  # noqa: BLE001 - retried at the next interval
                    log.warning("retention failed", error_class=type(exc).__name__)
                try:
                    await self._anonymize(conn)
                except Exception as exc:  # noqa: BLE001 - retried at the next interval
                    log.warning("anonymization failed", error_class=type(exc).__name__)
                finally:
                    await conn.close()
            await asyncio.sleep(self.config.privacy.purge_interval_s)

    async def _anonymize(self, conn: Any) -> None:
        """Clear the identifying columns of rows older than `anonymize_after_days`."""
        days = self.config.privacy.anonymize_after_days
        if days is None:
            return
        spool = self.config.spool
        result = await anonymize(
            conn, days, spool_directory=spool.directory if spool is not None else None
        )
        if spool is not None:
            for directory in worker_spools(spool.directory):
                result.rejected_rows += anonymize_rejected(directory, cutoff_for(days))
        if result.total:
            # as for retention: only a run that changed something is recorded
            await audit.record(conn, audit.ANONYMIZE, result.total, result.describe(days))
            log.info("anonymization applied", rows=result.total)

    async def _load_shared_state(self) -> bool:
        """Read what every collector of this database shares: erasure tags (see
        Redactor.erasure_tag) and switch restarts (see Redactor.generation).

        False when the database could not be read (kept as it was; retried later).
        """
        assert self.config.database is not None
        try:
            conn = await open_admin_connection(self.config.database)
            try:
                rows = await conn.fetch(
                    "SELECT hmac FROM erasures WHERE starts_with(hmac, $1)",
                    ERASURE_TAG_PREFIX,
                )
                resets = await load_resets(conn)
                if self._keys_to_audit:
                    key_ids = [key_id for key_id, _ in self.config.privacy.keys]
                    if await audit.record_keys_loaded(conn, key_ids):
                        log.info("pseudonym key ids recorded in the audit trail", keys=len(key_ids))
                    self._keys_to_audit = False
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            log.debug("shared state not refreshed", error_class=type(exc).__name__)
            return False
        tags = frozenset(row["hmac"] for row in rows)
        if tags != self.redactor.erased:
            self.redactor.erased = tags
            log.info("erasure tags loaded", tags=len(tags))
        learned = self.redactor.learn_resets(resets)
        if learned:
            log.info("switch restarts loaded", restarts=learned)
        return True

    async def _erasures_loop(self) -> None:
        """Keep the erasure tags and switch restarts in step with the database."""
        assert self.config.database is not None
        while True:
            await self._load_shared_state()
            # a reload (new keys after a rotation) reads them again at once
            self._erasures_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._erasures_wakeup.wait(), ERASURES_REFRESH_S)

    async def _active_calls_loop(self) -> None:
        assert self.config.database is not None
        seen: set[str] = set()
        while True:
            await asyncio.sleep(ACTIVE_CALLS_INTERVAL_S)
            try:
                conn = await open_admin_connection(self.config.database)
                try:
                    rows = await conn.fetch(
                        "SELECT source, count(*) AS n FROM open_calls GROUP BY source"
                    )
                finally:
                    await conn.close()
            except Exception as exc:  # noqa: BLE001 - a gauge can wait for the next round
                log.debug("active calls not refreshed", error_class=type(exc).__name__)
                continue
            current = {row["source"]: row["n"] for row in rows}
            for source in seen | set(current):
                self.telemetry.active_calls.labels(source).set(current.get(source, 0))
            seen |= set(current)
