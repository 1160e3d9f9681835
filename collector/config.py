"""Configuration: TOML in, frozen dataclasses out, every problem reported.

`load_config(path)` reads the TOML file and the small files it names (client
secrets, pseudonym keys, the record-key secret, the rate deck) and returns a
`Config` or raises `ConfigError` carrying *every* problem found, each naming
the file, the key and what is wrong. This module holds the core sections
(service, database, spool, metrics, logging, privacy) and composes them with
the receivers' sections, whose schemas live beside each receiver; the
generic reading is collector.settings, the file formats collector.formats.
It never opens a socket or a database connection: connecting is the job of
`start()`, so `check-config` is safe to run as systemd's `ExecStartPre`.
Secrets and keys are held in fields that are never logged or shown.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from collector.credentials import StandIn
from collector.formats.keys import parse_keys, parse_record_key
from collector.formats.prefixes import parse_prefixes
from collector.formats.rate_deck import parse_rate_deck
from collector.receivers.files.config import FilesConfig
from collector.receivers.json_config import JsonConfig
from collector.receivers.radius.config import RadiusConfig
from collector.receivers.sip.config import SipConfig
from collector.settings import (
    ConfigError,
    Problem,
    Reader,
    check_region,
    non_negative,
    one_of,
    option,
    positive,
    read_table,
    section,
    sections,
)

DEFAULT_CONFIG_PATH = "/etc/cdr-collector/collector.toml"
CONFIG_ENV = "CDR_COLLECTOR_CONFIG"
DSN_ENV = "CDR_COLLECTOR_DSN"

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class ServiceConfig:
    """Process-wide settings."""

    drain_timeout_ms: int = option(15000, check=positive)
    queue_max_records: int = option(100000, check=positive)


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with a PostgreSQL DSN that asyncpg would refuse, or None.

    Checks the scheme, the port and sslmode; the message never echoes the DSN,
    which may hold a password.
    """
    if not dsn.startswith(("postgresql://", "postgres://")):
        return "must be a postgresql:// URL"
    try:
        parts = urlsplit(dsn)
        if "," not in parts.netloc:  # several hosts: asyncpg checks each one itself
            parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    for mode in parse_qs(parts.query).get("sslmode", []):
        if mode not in SSL_MODES:
            return f"sslmode must be one of {', '.join(SSL_MODES)}"
    return None


#: DSN parameters naming files the connection reads (TLS certificates and key)
DSN_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")


def dsn_file_problems(dsn: str) -> list[str]:
    """What is wrong with the files a DSN names (sslrootcert=...): each must be a file
    this user can read, or every connection attempt would fail the same way."""
    problems = []
    for name in DSN_FILES:
        for value in parse_qs(urlsplit(dsn).query).get(name, []):
            try:
                with open(value, "rb"):
                    pass
            except OSError as exc:
                problems.append(f"{name} {value!r} cannot be read: {exc.strerror or exc}")
    return problems


@dataclass(frozen=True)
class DatabaseConfig:
    """Where and how records are committed."""

    dsn: str = option("postgresql://root@127.0.0.1:5432/cdr")
    migrate: bool = option(True)
    batch_max_records: int = option(1000, check=positive)
    batch_max_delay_ms: int = option(5, check=non_negative)
    commit_timeout_ms: int = option(2000, check=positive)
    statement_timeout_ms: int = option(5000, check=positive)
    connect_timeout_ms: int = option(3000, check=positive)
    retry_interval_ms: int = option(1000, check=positive)

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> DatabaseConfig:
        """With the DSN of $CDR_COLLECTOR_DSN when it is set, checked either way."""
        del table
        from_env = os.environ.get(DSN_ENV)
        dsn = from_env or self.dsn
        origin = f" (from ${DSN_ENV})" if from_env else ""
        if why := dsn_problem(dsn):
            reader.problem(f"{where}.dsn", why + origin)
        elif reader.read_files:
            for why in dsn_file_problems(dsn):
                reader.problem(f"{where}.dsn", why + origin)
        return dataclasses.replace(self, dsn=dsn)


@dataclass(frozen=True)
class SpoolConfig:
    """The durable local buffer used while the database is away."""

    directory: str = option("/var/lib/cdr-collector/spool", text=True)
    max_bytes: int = option(1073741824, check=positive)
    #: unless set, no more than max_bytes
    segment_max_bytes: int = option(16777216, check=positive)

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> SpoolConfig:
        """With the directory resolved (and checked when files are read) and the segment
        size within max_bytes."""
        segment = self.segment_max_bytes
        given = table.get("segment_max_bytes")
        if type(given) is not int or given != segment:  # not set (or not usable): fit it
            segment = min(segment, self.max_bytes)
        elif segment > self.max_bytes:
            reader.problem(f"{where}.segment_max_bytes", f"must not exceed {where}.max_bytes")
        directory = reader.resolve(self.directory)
        if reader.read_files:
            reader.writable_directory(f"{where}.directory", directory)
        return dataclasses.replace(self, directory=str(directory), segment_max_bytes=segment)


@dataclass(frozen=True)
class MetricsConfig:
    """The HTTP endpoint for /metrics, /healthz and /readyz."""

    listen: str = option("127.0.0.1:9810", listen=frozenset({"TCP"}))


@dataclass(frozen=True)
class LoggingConfig:
    """Log level and rendering."""

    level: str = option("info", check=one_of(*LOG_LEVELS))
    format: str = option("json", check=one_of(*LOG_FORMATS))


def _mask_digits(value: int) -> str | None:
    if 1 <= value <= 8:
        return None
    return "must be between 1 and 8 (with 0 the masked number would be the whole number)"


@dataclass(frozen=True, repr=False)
class PrivacyConfig:
    """Pseudonym keys, retention and masking."""

    key_file: str = option("/etc/cdr-collector/keys", text=True)
    record_key_file: str = option("/etc/cdr-collector/record-key", text=True)
    retention_days: int = option(180, check=positive)
    mask_digits: int = option(3, check=_mask_digits)
    rate_deck: str | None = option(None)
    default_region: str | None = option(None, check=check_region, convert=str.upper)
    purge_interval_s: int = option(3600, check=positive)
    audit_retention_days: int = option(730, check=positive)
    anonymize_after_days: int | None = option(None, check=positive)
    #: (key id, secret) pairs, newest first; read from key_file
    keys: tuple[tuple[str, bytes], ...] = ()
    #: secret of the deterministic record key; never rotates
    record_secret: bytes = b""
    #: (digits prefix, destination name) pairs from the rate deck
    rate_deck_entries: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return (
            f"PrivacyConfig(key_ids={[k for k, _ in self.keys]}, "
            f"retention_days={self.retention_days}, mask_digits={self.mask_digits})"
        )

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> PrivacyConfig:
        """With the keys (when files are read) and the rate deck's entries."""
        del table
        after = self.anonymize_after_days
        if after is not None and after >= self.retention_days:
            reader.problem(
                f"{where}.anonymize_after_days",
                f"{after} is not below retention_days ({self.retention_days}): rows would be "
                "deleted before they are anonymized",
            )
        keys: list[tuple[str, bytes]] = []
        record_secret = b""
        entries: list[tuple[str, str]] = []
        if reader.read_files:
            keys = _read_file(reader, f"{where}.key_file", self.key_file, parse_keys, [])
            record_secret = _read_file(
                reader, f"{where}.record_key_file", self.record_key_file, parse_record_key, b""
            )
        if self.rate_deck is not None:
            entries = _read_file(
                reader, f"{where}.rate_deck", self.rate_deck, parse_rate_deck, [], private=False
            )
        return dataclasses.replace(
            self, keys=tuple(keys), record_secret=record_secret, rate_deck_entries=tuple(entries)
        )


@dataclass(frozen=True)
class ReconcileConfig:
    """Revenue assurance: answered SIP calls checked against their billing records.

    Present, the section turns it on: each call seen answered in SIP (with
    a Call-ID) waits `billing_wait_s` for a billing record of the same
    Call-ID (RADIUS, JSON, CDR file); one that has none then, or whose billed
    duration differs by more than `duration_tolerance_ms`, is counted and
    listed in `reconcile_findings` (see collector.reconcile).
    """

    billing_wait_s: int = option(300, check=positive)
    duration_tolerance_ms: int = option(2000, check=non_negative)
    #: how often the calls whose wait is over are checked
    interval_s: int = option(30, check=positive)
    #: SIP sources whose answered calls are checked (None: every SIP source)
    sip_sources: tuple[str, ...] | None = option(None)


@dataclass(frozen=True)
class FraudConfig:
    """Fraud signals beyond the per-country counters every collector keeps."""

    #: one prefix per line (international form): calls to them are counted apart
    high_risk_prefixes_file: str | None = option(None)
    #: the prefixes read from the file, digits without '+'
    high_risk_prefixes: tuple[str, ...] = ()

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> FraudConfig:
        """With the prefixes of high_risk_prefixes_file."""
        del table
        if self.high_risk_prefixes_file is None:
            return self
        empty: tuple[str, ...] = ()
        prefixes = _read_file(
            reader,
            f"{where}.high_risk_prefixes_file",
            self.high_risk_prefixes_file,
            parse_prefixes,
            empty,
            private=False,
        )
        return dataclasses.replace(self, high_risk_prefixes=prefixes)


def _read_file(
    reader: Reader,
    key: str,
    name: str,
    parse: Callable[[str], T],
    empty: T,
    *,
    private: bool = True,
) -> T:
    """What `parse` makes of a file the configuration names; `empty` when it cannot."""
    text = reader.read_text(key, name, private=private)
    if text is None:
        return empty
    try:
        return parse(text)
    except ValueError as exc:
        reader.problem(key, f"{name}: {exc}")
        return empty


@runtime_checkable
class ReceiverConfig(Protocol):
    """What every receiver's section offers the rest of the configuration."""

    def regions(self) -> dict[str, str]:
        """The region of each source (by name) that sets its own."""
        ...

    def summary(self) -> str:
        """What the section serves, in a few words ("2 RADIUS client(s)"), for
        check-config and the reload's log line."""
        ...

    def source_names(self) -> tuple[str, ...]:
        """The name of every source (client, sender) it serves."""
        ...

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """(protocol, age): the service stores the calls of that protocol still open
        after `age` as incomplete rows; None when its receiver leaves no call open
        that it does not end itself."""
        ...


@dataclass(frozen=True)
class Config:
    """The whole configuration; absent optional sections are None."""

    path: str
    service: ServiceConfig = section(ServiceConfig)
    database: DatabaseConfig | None = section()
    spool: SpoolConfig | None = section()
    metrics: MetricsConfig | None = section()
    logging: LoggingConfig = section(LoggingConfig)
    privacy: PrivacyConfig = section(PrivacyConfig)
    radius: RadiusConfig | None = section(receiver=True)
    sip: SipConfig | None = section(receiver=True)
    json: JsonConfig | None = section(receiver=True)
    files: FilesConfig | None = section(receiver=True)
    reconcile: ReconcileConfig | None = section()
    fraud: FraudConfig | None = section()
    #: things that work but deserve attention (a secret file others can read)
    warnings: tuple[Problem, ...] = ()
    #: private files taken to be the running service's credentials without being read
    #: (only with `assume_credentials`, as check-config runs under ExecReload=)
    unchecked: tuple[Problem, ...] = ()
    #: systemd credentials read in place of configured files
    stand_ins: tuple[StandIn, ...] = ()

    def receivers(self) -> dict[str, ReceiverConfig]:
        """The configured listener sections, by section name (see RECEIVERS)."""
        configured = {name: getattr(self, name) for name in RECEIVERS}
        return {name: value for name, value in configured.items() if value is not None}

    def source_regions(self) -> dict[tuple[str, str], str]:
        """The region of each (protocol, source name) that sets its own, for the redactor.

        Keyed by protocol too: one switch's RADIUS client and SIP source may
        share a name and still dial in different regions. A section's records
        carry its name as their protocol unless its schema says otherwise
        (`PROTOCOL`: [files] makes records of protocol 'file').
        """
        return {
            (getattr(receiver, "PROTOCOL", section), name): region
            for section, receiver in self.receivers().items()
            for name, region in receiver.regions().items()
        }


#: every listener section by name, with its schema: the one list of receivers
RECEIVERS: dict[str, type] = {
    name: schema for name, schema, _, receiver in sections(Config) if receiver
}


def parse_config(
    path: str,
    data: Mapping[str, Any],
    *,
    read_files: bool = True,
    assume_credentials: bool = False,
) -> Config:
    """Build a Config from parsed TOML; raise ConfigError listing every problem.

    With `read_files` (the default), the files the configuration names are read
    and the spool directory is checked; without, only the TOML itself is.
    With `assume_credentials`, a private file (keys, secrets) that this user
    cannot read, while $CREDENTIALS_DIRECTORY is set and cannot be searched
    either, is no problem: it is listed in `unchecked` and taken to be the
    credential the running service loaded. That is what a unit's ExecReload=
    command sees on systemd 252; `check-config` runs there, the daemon never.
    """
    r = Reader(path, read_files=read_files, assume_credentials=assume_credentials)
    found: dict[str, Any] = {}
    r.unknown(data, "", frozenset(name for name, *_ in sections(Config)))
    for name, schema, optional, _ in sections(Config):
        table = r.table(data, name)
        if table is None and optional:
            continue
        found[name] = read_table(r, schema, table or {}, name)
    if "database" not in found and "spool" not in found:
        r.problem(
            "database",
            "neither [database] nor [spool] is configured: records would have nowhere to go",
        )
    if not any(name in found for name in RECEIVERS):
        first = next(iter(RECEIVERS))
        enable = ", ".join(f"[{name}]" for name in RECEIVERS)
        r.problem(first, f"no listener is configured: enable at least one of {enable}")
    reconcile, sip = found.get("reconcile"), found.get("sip")
    if reconcile is not None and "database" not in found:
        r.problem(
            "reconcile",
            "needs [database]: calls are checked against the billing records stored there",
        )
    if reconcile is not None and reconcile.sip_sources is not None:
        names = {source.name for source in sip.sources} if sip is not None else set()
        for name in reconcile.sip_sources:
            if name not in names:
                r.problem("reconcile.sip_sources", f"{name!r} is not the name of a [[sip.sources]]")
    r.listen_clashes()
    r.raise_problems()
    return Config(
        path=path,
        **found,
        warnings=tuple(r.warnings),
        unchecked=tuple(r.unchecked),
        stand_ins=tuple(r.stand_ins),
    )


def resolve_config_path(path: str | None) -> str:
    """The --config argument, else $CDR_COLLECTOR_CONFIG, else the system default."""
    return path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def read_toml(path: str) -> dict[str, Any]:
    """The parsed TOML of a configuration file; ConfigError when it cannot be had."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(path, "-", "the configuration file does not exist")]) from None
    except IsADirectoryError:
        raise ConfigError(
            [Problem(path, "-", "is a directory, not a configuration file")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(path, "-", f"the configuration file cannot be read: {exc.strerror}")]
        ) from None
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError([Problem(path, "-", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(path, "-", f"not valid TOML: {exc}")]) from None


def key_file_paths(path: str, data: Mapping[str, Any]) -> tuple[Path, Path]:
    """The pseudonym key file and the record-key file a configuration names, resolved
    as load_config resolves them; ConfigError when [privacy] names them wrongly."""
    r = Reader(path)
    only = frozenset({"key_file", "record_key_file"})
    privacy = read_table(r, PrivacyConfig, r.table(data, "privacy") or {}, "privacy", only=only)
    r.raise_problems()
    assert privacy is not None  # both have defaults
    return r.resolve(privacy.key_file), r.resolve(privacy.record_key_file)


def load_config(path: str, *, assume_credentials: bool = False) -> Config:
    """Read and validate a configuration file and the files it names (see parse_config
    for `assume_credentials`)."""
    return parse_config(path, read_toml(path), assume_credentials=assume_credentials)
