"""Command line: run, check-config, migrate, demo, erase, export, purge, audit, keygen.

The only module that exits the process. Configuration problems are printed
one per line as "FILE: KEY: REASON" and exit with status 1; a daemon that
cannot start (port taken, spool directory unusable) exits with status 1 and
one clear line; SIGTERM ends `run` with status 0 once in-flight records are
durable.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from collector.config import (
    Config,
    dsn_problem,
    key_file_paths,
    load_config,
    read_toml,
    resolve_config_path,
)
from collector.formats.keys import (
    format_keys,
    format_record_key,
    new_key_id,
    new_secret,
    parse_keys,
    write_private,
)
from collector.logs import configure_logging, get_logger, report
from collector.settings import ConfigError

log = get_logger("collector.cli")

T = TypeVar("T")


def _problems(config_path: str, exc: ConfigError) -> SystemExit:
    """Print every problem, then the summary line; the exit to raise."""
    for problem in exc.problems:
        report(str(problem))
    report(f"{config_path}: {len(exc.problems)} problem(s); nothing was started")
    return SystemExit(1)


def _load(path: str | None, *, assume_credentials: bool = False) -> Config:
    config_path = resolve_config_path(path)
    try:
        return load_config(config_path, assume_credentials=assume_credentials)
    except ConfigError as exc:
        raise _problems(config_path, exc) from None


def _event_loop_run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)
    return uvloop.run(main)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and the files it names; no network, no database.

    Run by the unit's ExecReload= too, where the credentials the service loaded
    cannot be read: a private file this user cannot read either is then taken
    to be one of them, and said to be unchecked.
    """
    config = _load(args.config, assume_credentials=True)
    for warning in config.warnings:
        report(f"{warning.file}: {warning.key}: warning: {warning.reason}", logging.WARNING)
    for note in config.unchecked:
        report(str(note), logging.INFO)
    parts = [section.summary() for section in config.receivers().values()]
    if any(note.key == "privacy.key_file" for note in config.unchecked):
        parts.append("pseudonym keys not checked")
    else:
        parts.append(f"{len(config.privacy.keys)} pseudonym key(s)")
    print(f"{config.path}: OK ({', '.join(parts)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM or SIGINT.

    With --radius-worker (given by the daemon itself, see collector.workers),
    this process is one of its RADIUS workers.
    """
    config = _load(args.config)
    if args.radius_worker:
        import structlog

        # every line of a worker says which it is
        structlog.contextvars.bind_contextvars(worker=args.radius_worker)
    configure_logging(config.logging.level, config.logging.format)
    if not args.radius_worker:
        for warning in config.warnings:
            log.warning("configuration warning", config=str(warning))
    faulthandler.enable()
    return _event_loop_run(_serve(config, args.radius_worker))


async def _serve(config: Config, worker: int = 0) -> int:
    from collector.service import Service

    service = Service(config, worker=worker)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, service.stop_event.set)
    loop.add_signal_handler(signal.SIGINT, service.stop_event.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload_event.set)
    from collector.sink.spool import SpoolLayoutError
    from collector.workers import WorkerStartError

    try:
        await service.run()
    except (SpoolLayoutError, WorkerStartError) as exc:
        log.error("cannot start", error=str(exc), error_class=type(exc).__name__)
        report(f"cdr-collector: cannot start: {exc}")
        return 1
    except OSError as exc:
        log.error("cannot start", error=f"{exc.strerror or exc}", error_class=type(exc).__name__)
        where = f": {exc.filename}" if exc.filename else ""
        report(f"cdr-collector: cannot start: {exc.strerror or exc}{where}")
        return 1
    return 0


#: what a failed connection or a failed statement raises (asyncpg's InterfaceError
#: includes a DSN it cannot use)
def _database_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _database_command(config: Config, action: Callable[[Any], Awaitable[int]]) -> int:
    """Connect as the admin commands do, run `action(connection)`, and turn every database
    failure into one line on stderr and exit status 1."""
    if config.database is None:
        report(f"{config.path}: database: no [database] section")
        return 1
    database = config.database

    async def main() -> int:
        import asyncpg

        from collector.sink.postgres import open_admin_connection

        try:
            conn = await open_admin_connection(database)
        except _database_errors() as exc:
            report(f"cdr-collector: cannot reach the database: {_describe(exc)}")
            return 1
        try:
            return await action(conn)
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
            report(
                f"cdr-collector: the database schema is missing or outdated ({_describe(exc)}): "
                f"run `cdr-collector migrate --config {config.path}` first"
            )
            return 1
        except _database_errors() as exc:
            report(f"cdr-collector: the database failed: {_describe(exc)}")
            return 1
        finally:
            await conn.close()

    return _event_loop_run(main())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no reason given"
    return f"{type(exc).__name__}: {text}"


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema."""
    config = _load(args.config)
    if config.database is None:
        report(f"{config.path}: database: no [database] section")
        return 1
    database = config.database

    async def create() -> int:
        from collector.sink.postgres import ensure_database

        try:
            if await ensure_database(database.dsn, database.connect_timeout_ms / 1000):
                print("created the database")
        except _database_errors() as exc:
            report(f"cdr-collector: cannot reach the database: {_describe(exc)}")
            return 1
        return 0

    if _event_loop_run(create()) != 0:
        return 1

    async def apply(conn: Any) -> int:
        from collector.sink.postgres import (
            SCHEMA_VERSION,
            SchemaVersionError,
            applied_versions,
            migrate,
        )

        before = max(await applied_versions(conn), default=0)
        try:
            applied = await migrate(conn)
        except SchemaVersionError as exc:
            report(f"cdr-collector: {exc}")
            return 1
        if not applied:
            print(f"schema is up to date (version {SCHEMA_VERSION}); nothing changed")
            return 0
        print(f"schema migrated from version {before} to {applied[-1].version}:")
        for migration in applied:
            print(f"  {migration.name}: {migration.description}")
        return 0

    return _database_command(config, apply)


def cmd_purge(args: argparse.Namespace) -> int:
    """Apply retention (and anonymization, when configured) now."""
    config = _load(args.config)
    days = config.privacy.retention_days
    audit_days = config.privacy.audit_retention_days
    anonymize_days = config.privacy.anonymize_after_days

    async def apply(conn: Any) -> int:
        from collector import audit
        from collector.retention import (
            anonymize,
            anonymize_rejected,
            cutoff_for,
            purge,
            purge_rejected,
        )

        spool = config.spool.directory if config.spool is not None else None
        result = await purge(conn, days, spool_directory=spool, audit_retention_days=audit_days)
        for directory in _worker_spools(config):
            result.rejected_rows_deleted += purge_rejected(directory, cutoff_for(days))
        # not in one transaction with the purge, which deletes in chunks to hold no long
        # locks: a purge whose record failed exits 1 and says so
        await audit.record(conn, audit.PURGE, result.call_rows, result.describe(days, audit_days))
        print(
            f"retention {days} days: dropped {result.partitions_dropped} partition(s), "
            f"deleted {result.rows_deleted} row(s), expired {result.keys_expired} key(s) "
            f"and {result.open_calls_expired} open call(s), "
            f"removed {result.rejected_rows_deleted} refused row(s) from the spool directory"
        )
        print(
            f"audit retention {audit_days} days: deleted {result.audit_rows_deleted} audit row(s); "
            "this purge is recorded in the audit trail"
        )
        if anonymize_days is not None:
            cleared = await anonymize(conn, anonymize_days, spool_directory=spool)
            for directory in _worker_spools(config):
                cleared.rejected_rows += anonymize_rejected(directory, cutoff_for(anonymize_days))
            await audit.record(
                conn, audit.ANONYMIZE, cleared.total, cleared.describe(anonymize_days)
            )
            print(cleared.describe(anonymize_days) + "; recorded in the audit trail")
        return 0

    return _database_command(config, apply)


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase every stored row carrying one phone number."""
    config = _load(args.config)
    if config.database is None:
        report(f"{config.path}: database: no [database] section")
        return 1
    from collector.pipeline.redact import Redactor

    # its pseudonyms under every configured key, and its tag that survives key rotation;
    # a national number is read in --region, else in privacy.default_region
    pseudonyms = Redactor(config.privacy).erasure_entries(args.number, args.region)
    if not pseudonyms:
        report("cdr-collector: that is not a phone number")
        return 1
    spool_waiting = bool(
        config.spool
        and any(
            any(directory.glob("*.seg"))
            for directory in (Path(config.spool.directory), *_worker_spools(config))
        )
    )

    async def apply(conn: Any) -> int:
        from collector import audit
        from collector.retention import erase, erase_rejected, unknown_key_ids

        spool = config.spool.directory if config.spool is not None else None
        unsearchable = await unknown_key_ids(conn, pseudonyms)
        # the erasure and its record commit together: no erasure without its audit row
        async with conn.transaction():
            deleted = await erase(conn, pseudonyms, spool_directory=spool)
            for directory in _worker_spools(config):
                deleted += erase_rejected(directory, pseudonyms)
            await audit.record(
                conn, audit.ERASE, deleted, _search_detail(len(pseudonyms) - 1, unsearchable)
            )
        print(f"erased {deleted} row(s); records of this number still on their way will be dropped")
        if unsearchable:
            report(
                f"note: rows pseudonymized under key(s) {', '.join(unsearchable)} cannot be"
                " searched: those keys are no longer in the key file",
                logging.WARNING,
            )
        if spool_waiting:
            report(
                "note: the spool holds records not yet in the database; "
                "run erase again once it has drained",
                logging.WARNING,
            )
        return 0

    return _database_command(config, apply)


def _worker_spools(config: Config) -> list[Path]:
    """The spool directories of the RADIUS workers (collector.workers) below the
    configured one: the refused rows and spooled records they hold are the
    collector's too."""
    if config.spool is None:
        return []
    from collector.workers import worker_spools

    return worker_spools(config.spool.directory)


def _search_detail(keys: int, unsearchable: list[str]) -> str:
    """How a number was searched, for the audit trail: counts and key ids, never the number."""
    detail = f"number searched under {keys} key(s)"
    if unsearchable:
        detail += f"; rows under key(s) {', '.join(unsearchable)} not searchable"
    return detail


#: exit status of a command given a value it cannot use (as argparse's usage errors)
USAGE_ERROR = 2


def cmd_export(args: argparse.Namespace) -> int:
    """Write every stored row of one phone number to standard output (access, disclosure)."""
    config = _load(args.config)
    if config.database is None:
        report(f"{config.path}: database: no [database] section")
        return 1
    from collector.pipeline.redact import Redactor

    # exactly the pseudonyms `erase` searches for: every configured key, one normalization
    pseudonyms = Redactor(config.privacy).number_pseudonyms(args.number, args.region)
    if not pseudonyms:
        report("cdr-collector: export: --number: that is not a phone number")
        return USAGE_ERROR

    async def apply(conn: Any) -> int:
        from collector import audit
        from collector.disclosure import render, rows_of
        from collector.retention import unknown_key_ids

        unsearchable = await unknown_key_ids(conn, pseudonyms)
        async with conn.transaction():
            rows = await rows_of(conn, pseudonyms)
            detail = _search_detail(len(pseudonyms), unsearchable) + f"; format {args.format}"
            await audit.record(conn, audit.EXPORT, len(rows), detail)
        print(render(rows, args.format))
        if unsearchable:
            report(
                f"note: rows pseudonymized under key(s) {', '.join(unsearchable)} cannot be"
                " searched: those keys are no longer in the key file",
                logging.WARNING,
            )
        return 0

    return _database_command(config, apply)


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the privacy audit trail."""
    config = _load(args.config)

    async def show(conn: Any) -> int:
        from collector.audit import format_trail, trail

        print(format_trail(await trail(conn, args.since)))
        return 0

    return _database_command(config, show)


def _since(text: str) -> Any:
    """--since: an ISO 8601 date or time; without a zone, UTC."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _audit_rotation(config_path: str, key_id: str) -> None:
    """Record a key rotation in the audit trail when the configuration names a reachable
    database; else say so (the daemon records the new key ids when it starts or reloads)."""
    later = "the daemon records the new key ids in the audit trail when it next starts or reloads"
    try:
        config = load_config(config_path)
    except ConfigError:
        report(f"note: rotation not recorded in the audit trail (configuration problem); {later}")
        return
    if config.database is None:
        report(f"note: no [database] section, rotation not recorded in the audit trail; {later}")
        return
    database = config.database
    key_ids = [k for k, _ in config.privacy.keys]

    async def write() -> str | None:
        from collector import audit
        from collector.sink.postgres import open_admin_connection

        try:
            conn = await open_admin_connection(database)
            try:
                await audit.record(
                    conn, audit.KEY_ROTATE, None, f"new key {key_id}; " + audit.keys_detail(key_ids)
                )
            finally:
                await conn.close()
        except _database_errors() as exc:
            return _describe(exc)
        return None

    failed = _event_loop_run(write())
    if failed is None:
        print("rotation recorded in the audit trail")
    else:
        report(f"note: rotation not recorded in the audit trail ({failed}); {later}")


#: how a running daemon comes to use a rotated key (keygen --rotate prints it)
ROTATED_HINT = (
    "a running daemon uses the new key after `systemctl restart cdr-collector` when its unit "
    "hands the key file over with LoadCredential= (systemd copies credentials when the "
    "service starts; systemd 252 also at `systemctl reload`), "
    "else after SIGHUP (`systemctl reload cdr-collector`, `kill -HUP`)"
)


def _read_key_file(config_path: str, key_file: Path, again: str) -> str | None:
    """The key file's text ("" when it does not exist), checked; None (said why) when
    it is unusable."""
    try:
        text = key_file.read_bytes().decode("utf-8-sig")
        parse_keys(text)
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        report(
            f"{config_path}: privacy.key_file: {key_file}: {why}; "
            f"nothing was changed (fix or move the file, then {again})"
        )
        return None
    return text


def cmd_keygen(args: argparse.Namespace) -> int:
    """Create the pseudonym key file and the record-key file, rotate the pseudonym key,
    or retire the keys no stored row uses."""
    config_path = resolve_config_path(args.config)
    try:
        key_file, record_file = key_file_paths(config_path, read_toml(config_path))
    except ConfigError as exc:
        raise _problems(config_path, exc) from None
    if args.retire_unused:
        return _retire_unused_keys(args, key_file)
    old = ""
    taken: list[str] = []
    if args.rotate:
        found = _read_key_file(config_path, key_file, "rotate again")
        if found is None:
            return 1
        old = found  # "" when there is nothing to rotate: the key file is created
        taken = [key_id for key_id, _ in parse_keys(old)] if old else []
    changed = []
    target = record_file
    try:
        if not record_file.exists():
            write_private(record_file, format_record_key(new_secret()))
            changed.append(f"created {record_file}")
        target = key_file
        if args.rotate or not key_file.exists():
            from datetime import UTC, datetime

            key_id = new_key_id(taken, datetime.now(UTC))
            if old and not old.endswith("\n"):
                old += "\n"
            write_private(key_file, format_keys([(key_id, new_secret())]) + old)
            changed.append(f"{'rotated' if old else 'created'} {key_file} (newest key {key_id})")
    except OSError as exc:
        for done in changed:
            print(done)
        detail = f" ({exc.filename})" if exc.filename and exc.filename != str(target) else ""
        report(f"cdr-collector: cannot write {target}: {exc.strerror or exc}{detail}")
        return 1
    print(
        "\n".join(changed)
        if changed
        else "keys exist; nothing changed (use --rotate for a new pseudonym key)"
    )
    if old:
        print(ROTATED_HINT)
        _audit_rotation(config_path, key_id)
    return 0


#: where a retired key may still be found (keygen --retire-unused prints it)
RETIRED_HINT = (
    "a retired key also lives on in copies of the key file: backups of it, and the "
    "credential a running unit was handed (gone at `systemctl restart cdr-collector`)"
)


def _retire_unused_keys(args: argparse.Namespace, key_file: Path) -> int:
    """Remove from the key file every key but the newest that no stored row uses, so
    that a backup holding rows under a retired key can no longer be linked to numbers.

    What stores key ids: the pseudonyms of `cdrs` and `open_calls`, and the rows
    waiting in the spool or kept there as refused. The key file is rewritten
    atomically (mode 0600) and only when it has not changed since it was read.
    """
    config = _load(args.config)
    old = _read_key_file(config.path, key_file, "retire again")
    if old is None:
        return 1
    if not old:
        report(f"{config.path}: privacy.key_file: {key_file} does not exist; nothing to retire")
        return 1
    keys = parse_keys(old)
    from collector.retention import plan_key_retirement, spooled_key_ids, stored_key_ids
    from collector.sink.spool import SpoolLayoutError

    # the spool before the database: a row replayed meanwhile is then seen in the latter
    uses: dict[str, set[str]] = {}
    if config.spool is not None:
        try:
            for directory in (Path(config.spool.directory), *_worker_spools(config)):
                for key_id, where in spooled_key_ids(directory).items():
                    uses.setdefault(key_id, set()).update(where)
        except (SpoolLayoutError, OSError) as exc:
            report(f"cdr-collector: {exc}; the keys of its rows cannot be known, nothing changed")
            return 1

    async def collect(conn: Any) -> int:
        for key_id, where in (await stored_key_ids(conn)).items():
            uses.setdefault(key_id, set()).update(where)
        return 0

    if _database_command(config, collect) != 0:
        return 1
    plan = plan_key_retirement([key_id for key_id, _ in keys], uses)
    if plan.retired:
        kept = {key_id for key_id, _ in plan.kept}
        try:
            if key_file.read_bytes().decode("utf-8-sig") != old:
                report(f"cdr-collector: {key_file} changed meanwhile; nothing was changed")
                return 1
            write_private(key_file, format_keys(k for k in keys if k[0] in kept))
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            report(f"cdr-collector: cannot rewrite {key_file}: {why}; nothing was changed")
            return 1
    for key_id in plan.retired:
        print(f"retired {key_id}: no stored row uses it")
    for key_id, why in plan.kept:
        print(f"kept {key_id}: {why}")
    missing = sorted(set(uses) - {key_id for key_id, _ in keys})
    if missing:
        print(f"note: rows use key id(s) {', '.join(missing)} that the key file no longer holds")
    if plan.retired:
        print(RETIRED_HINT)
        _audit_retirement(config, plan.retired, [key_id for key_id, _ in plan.kept])
    else:
        print(f"{key_file}: nothing retired")
    return 0


def _audit_retirement(config: Config, retired: Sequence[str], kept: Sequence[str]) -> None:
    """Record retired keys in the audit trail (the database was just reachable); a
    failure now is said, the key file stays as rewritten."""

    async def write(conn: Any) -> int:
        from collector import audit

        detail = f"retired key ids {', '.join(retired)}; kept " + audit.keys_detail(kept)
        await audit.record(conn, audit.KEY_RETIRE, None, detail)
        return 0

    if _database_command(config, write) == 0:
        print("retirement recorded in the audit trail")
    else:
        report("note: retirement not recorded in the audit trail (see above)")


def cmd_demo(args: argparse.Namespace) -> int:
    """Start a daemon on free local ports, send a burst of calls, show what was stored."""
    import asyncpg

    from collector.demo import default_dsn, run_demo

    dsn = args.dsn or default_dsn()
    why = dsn_problem(dsn)
    if why:
        origin = "--dsn" if args.dsn else "$CDR_COLLECTOR_DSN"
        report(f"cdr-collector: demo: {origin} {why}")
        return 2
    try:
        return _event_loop_run(run_demo(calls=args.calls, dsn=dsn, seed=args.seed))
    except asyncpg.InterfaceError as exc:
        report(f"cdr-collector: demo: the database refused the DSN: {exc}")
        return 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _region(text: str) -> str:
    import phonenumbers

    if text.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 3166 region code")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cdr-collector",
        description="Collect VoIP call records into redacted, billable CDRs in PostgreSQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        if name != "demo":
            command.add_argument(
                "--config",
                metavar="PATH",
                help="configuration file (default: $CDR_COLLECTOR_CONFIG, then "
                "/etc/cdr-collector/collector.toml)",
            )
        return command

    run = add("run", cmd_run, "run the daemon in the foreground")
    # the daemon starts its RADIUS worker processes ([radius] workers) with this
    run.add_argument("--radius-worker", type=_positive_int, default=0, help=argparse.SUPPRESS)
    add(
        "check-config", cmd_check_config, "validate the configuration; exit 1 listing every problem"
    )
    add("migrate", cmd_migrate, "create or upgrade the database schema")
    add("purge", cmd_purge, "apply retention (and anonymize_after_days) now")
    erase = add("erase", cmd_erase, "erase every stored trace of one phone number")
    erase.add_argument("--number", required=True, help="the phone number, in any usual format")
    erase.add_argument(
        "--region",
        type=_region,
        help="ISO 3166 region a national number (no + or international prefix) is dialled in "
        "(default: privacy.default_region)",
    )
    export = add(
        "export",
        cmd_export,
        "write every stored row of one phone number to standard output (access right, "
        "lawful disclosure); recorded in the audit trail",
    )
    export.add_argument("--number", required=True, help="the phone number, in any usual format")
    export.add_argument(
        "--region",
        type=_region,
        help="ISO 3166 region a national number (no + or international prefix) is dialled in "
        "(default: privacy.default_region)",
    )
    export.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default csv)"
    )
    audit = add("audit", cmd_audit, "print the privacy audit trail")
    audit.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only entries from then on (YYYY-MM-DD, or an ISO 8601 time; UTC unless it says)",
    )
    keygen = add("keygen", cmd_keygen, "create the key files the configuration names")
    action = keygen.add_mutually_exclusive_group()
    action.add_argument(
        "--rotate",
        action="store_true",
        help="add a new newest pseudonym key; a daemon started by systemd with "
        "LoadCredential= takes it at `systemctl restart cdr-collector`, one reading "
        "the key file itself at SIGHUP",
    )
    action.add_argument(
        "--retire-unused",
        action="store_true",
        help="remove the keys no stored row uses any more (in the database or the spool), "
        "keeping the newest, so that old backups can no longer be linked; needs the database",
    )
    demo = add("demo", cmd_demo, "a one-command tour: daemon, a burst of calls, the stored rows")
    demo.add_argument(
        "--calls", type=_positive_int, default=200, help="calls to send (default 200)"
    )
    demo.add_argument("--dsn", help="PostgreSQL DSN (default: local server, database cdr_demo)")
    demo.add_argument("--seed", type=int, help="make the calls reproducible")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cdr-collector` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
