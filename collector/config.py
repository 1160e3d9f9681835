"""Configuration: TOML in, frozen dataclasses out, every problem reported.

`load_config(path)` reads the TOML file and the small files it names (client
secrets, pseudonym keys, the record-key secret, the rate deck) and returns a
`Config` or raises `ConfigError` carrying *every* problem found, each naming
the file, the key and what is wrong. Unknown keys are errors (a typo must not
silently switch a feature off). It never opens a socket or a database
connection: connecting is the job of `start()`, so `check-config` is safe to
run as systemd's `ExecStartPre`. Secrets and keys are held in fields that are
never logged or shown.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

DEFAULT_CONFIG_PATH = "/etc/cdr-collector/collector.toml"
CONFIG_ENV = "CDR_COLLECTOR_CONFIG"
DSN_ENV = "CDR_COLLECTOR_DSN"

PROFILES = ("auto", "cisco", "kamailio", "freeswitch", "generic")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where, which key, why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class ServiceConfig:
    """Process-wide settings."""

    drain_timeout_ms: int = 15000
    queue_max_records: int = 100000


@dataclass(frozen=True)
class DatabaseConfig:
    """Where and how records are committed."""

    dsn: str = "postgresql://root@127.0.0.1:5432/cdr"
    migrate: bool = True
    batch_max_records: int = 1000
    batch_max_delay_ms: int = 20
    commit_timeout_ms: int = 2000
    statement_timeout_ms: int = 5000
    connect_timeout_ms: int = 3000
    retry_interval_ms: int = 1000


@dataclass(frozen=True)
class SpoolConfig:
    """The durable local buffer used while the database is away."""

    directory: str = "/var/lib/cdr-collector/spool"
    max_bytes: int = 1073741824
    segment_max_bytes: int = 16777216


@dataclass(frozen=True)
class MetricsConfig:
    """The HTTP endpoint for /metrics, /healthz and /readyz."""

    listen: str = "127.0.0.1:9810"


@dataclass(frozen=True)
class LoggingConfig:
    """Log level and rendering."""

    level: str = "info"
    format: str = "json"


@dataclass(frozen=True, repr=False)
class PrivacyConfig:
    """Pseudonym keys, retention and masking."""

    key_file: str = "/etc/cdr-collector/keys"
    record_key_file: str = "/etc/cdr-collector/record-key"
    retention_days: int = 180
    mask_digits: int = 3
    rate_deck: str | None = None
    default_region: str | None = None
    purge_interval_s: int = 3600
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


@dataclass(frozen=True, repr=False)
class RadiusClient:
    """One RADIUS client (a softswitch or SBC) allowed to send accounting."""

    name: str
    address: str
    secret: bytes
    profile: str = "auto"

    def __repr__(self) -> str:
        return f"RadiusClient(name={self.name!r}, profile={self.profile!r})"


@dataclass(frozen=True)
class RadiusConfig:
    """The RADIUS accounting receiver."""

    listen: tuple[str, ...] = ("0.0.0.0:1813",)
    clients: tuple[RadiusClient, ...] = ()
    duplicate_window_s: int = 30
    receive_buffer_bytes: int = 8388608


@dataclass(frozen=True, repr=False)
class SipSource:
    """One SIP proxy or capture agent allowed to mirror signalling."""

    name: str
    address: str
    hep_auth_key: str | None = None

    def __repr__(self) -> str:
        return f"SipSource(name={self.name!r})"


@dataclass(frozen=True)
class SipConfig:
    """The HEPv3 / raw SIP receiver and its dialog tracker."""

    listen: tuple[str, ...] = ("0.0.0.0:9060",)
    sources: tuple[SipSource, ...] = ()
    max_dialogs: int = 200000
    max_dialog_age_s: int = 14400
    correlation_header: str | None = None
    receive_buffer_bytes: int = 8388608


@dataclass(frozen=True, repr=False)
class JsonConfig:
    """The JSON CDR ingest endpoint (FreeSWITCH mod_json_cdr)."""

    listen: str = "0.0.0.0:9811"
    allowed: tuple[str, ...] = ()
    basic_auth_file: str | None = None
    #: (user, password) pairs read from basic_auth_file
    credentials: tuple[tuple[str, str], ...] = ()
    source: str = "json"
    max_body_bytes: int = 1048576

    def __repr__(self) -> str:
        return f"JsonConfig(listen={self.listen!r}, allowed={self.allowed!r})"


@dataclass(frozen=True)
class Config:
    """The whole configuration; absent optional sections are None."""

    path: str
    service: ServiceConfig = field(default_factory=ServiceConfig)
    database: DatabaseConfig | None = None
    spool: SpoolConfig | None = None
    metrics: MetricsConfig | None = None
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    radius: RadiusConfig | None = None
    sip: SipConfig | None = None
    json: JsonConfig | None = None


T = TypeVar("T")


class _Reader:
    """Collects problems while pulling typed values out of TOML tables."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.base = Path(path).resolve().parent
        self.problems: list[Problem] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.path, key, reason))

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return None
        return value

    def unknown(self, data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                self.problem(where, "unknown key")

    def get(
        self,
        data: Mapping[str, Any],
        prefix: str,
        key: str,
        kind: type[T],
        default: T,
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        if key not in data:
            return default
        value = data[key]
        where = f"{prefix}.{key}"
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.problem(where, f"must be an integer, not {type(value).__name__}")
            return default
        if kind is not int and not isinstance(value, kind):
            self.problem(where, f"must be a {kind.__name__}, not {type(value).__name__}")
            return default
        if check is not None:
            why = check(value)
            if why:
                self.problem(where, why)
                return default
        return cast(T, value)

    def optional_str(self, data: Mapping[str, Any], prefix: str, key: str) -> str | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str) or not value:
            self.problem(f"{prefix}.{key}", "must be a non-empty string")
            return None
        return value

    def str_list(self, data: Mapping[str, Any], prefix: str, key: str) -> tuple[str, ...] | None:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{prefix}.{key}", "must be a list of strings")
            return None
        return tuple(value)

    def resolve(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.base / path

    def read_text(self, key: str, name: str) -> str | None:
        path = self.resolve(name)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(key, f"file {str(path)!r} does not exist")
        except PermissionError:
            self.problem(key, f"file {str(path)!r} is not readable (permission denied)")
        except IsADirectoryError:
            self.problem(key, f"{str(path)!r} is a directory, not a file")
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(key, f"file {str(path)!r} cannot be read: {type(exc).__name__}")
        return None


def positive(value: int) -> str | None:
    """Check helper: the value must be greater than zero."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: int) -> str | None:
    """Check helper: the value must be zero or more."""
    return None if value >= 0 else "must not be negative"


def one_of(*choices: str) -> Callable[[str], str | None]:
    """Check helper: the value must be one of `choices`."""

    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def parse_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" or "[V6]:PORT" into its parts; raise ValueError if malformed."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError("expected [IPV6]:PORT")
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT")
    if not host:
        raise ValueError("the host is empty")
    try:
        ipaddress.ip_address(host)  # listeners take addresses, not names
    except ValueError:
        raise ValueError("the host is not an IP address") from None
    if not port.isdigit():
        raise ValueError("the port is not a number")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("port out of range")
    return host, number


def check_listen(value: str) -> str | None:
    """Check helper: a listen address of the form IP:PORT."""
    try:
        parse_host_port(value)
    except ValueError as exc:
        return f"is not IP:PORT ({exc})"
    return None


def check_network(value: str) -> str | None:
    """Check helper: an IP address or CIDR network."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not an IP address or CIDR network"
    return None


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse a pseudonym key file: "ID:BASE64" per line, newest first.

    Blank lines and lines starting with '#' are ignored. Raises ValueError with
    the line number (never the key material) on a bad line.
    """
    keys: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, material = line.partition(":")
        if not sep or not key_id or not key_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"line {number}: expected ID:BASE64 with an alphanumeric id")
        if key_id in seen:
            raise ValueError(f"line {number}: key id {key_id!r} appears twice")
        try:
            secret = base64.b64decode(material.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"line {number}: the key is not valid base64") from None
        if len(secret) < 16:
            raise ValueError(f"line {number}: the key is shorter than 16 bytes")
        seen.add(key_id)
        keys.append((key_id, secret))
    if not keys:
        raise ValueError("holds no key")
    return keys


def parse_rate_deck(text: str) -> list[tuple[str, str]]:
    """Parse a rate deck: "prefix,destination" per line (digits, optional leading +)."""
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        prefix, sep, destination = line.partition(",")
        prefix = prefix.strip().lstrip("+")
        if not sep or not prefix.isdigit():
            if number == 1 and not prefix.isdigit():
                continue  # a header row such as "prefix,destination"
            raise ValueError(f"line {number}: expected digits,destination")
        entries.append((prefix, destination.strip()))
    return entries


def _privacy(r: _Reader, data: Mapping[str, Any], with_keys: bool) -> PrivacyConfig:
    p = "privacy"
    r.unknown(
        data,
        p,
        {
            "key_file",
            "record_key_file",
            "retention_days",
            "mask_digits",
            "rate_deck",
            "default_region",
            "purge_interval_s",
        },
    )
    d = PrivacyConfig()
    key_file = r.get(data, p, "key_file", str, d.key_file)
    record_key_file = r.get(data, p, "record_key_file", str, d.record_key_file)
    retention = r.get(data, p, "retention_days", int, d.retention_days, positive)
    mask = r.get(
        data,
        p,
        "mask_digits",
        int,
        d.mask_digits,
        lambda v: None if 0 <= v <= 8 else "must be between 0 and 8",
    )
    rate_deck = r.optional_str(data, p, "rate_deck")
    region = r.optional_str(data, p, "default_region")
    if region is not None:
        import phonenumbers

        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            r.problem("privacy.default_region", f"{region!r} is not an ISO 3166 region code")
            region = None
        else:
            region = region.upper()
    purge = r.get(data, p, "purge_interval_s", int, d.purge_interval_s, positive)
    keys: tuple[tuple[str, bytes], ...] = ()
    record_secret = b""
    entries: tuple[tuple[str, str], ...] = ()
    if with_keys:
        text = r.read_text("privacy.key_file", key_file)
        if text is not None:
            try:
                keys = tuple(parse_keys(text))
            except ValueError as exc:
                r.problem("privacy.key_file", f"{key_file}: {exc}")
        text = r.read_text("privacy.record_key_file", record_key_file)
        if text is not None:
            try:
                record_secret = base64.b64decode(text.strip(), validate=True)
            except (binascii.Error, ValueError):
                r.problem("privacy.record_key_file", f"{record_key_file}: not valid base64")
            else:
                if len(record_secret) < 16:
                    r.problem(
                        "privacy.record_key_file", f"{record_key_file}: shorter than 16 bytes"
                    )
    if rate_deck is not None:
        text = r.read_text("privacy.rate_deck", rate_deck)
        if text is not None:
            try:
                entries = tuple(parse_rate_deck(text))
            except ValueError as exc:
                r.problem("privacy.rate_deck", f"{rate_deck}: {exc}")
    return PrivacyConfig(
        key_file=key_file,
        record_key_file=record_key_file,
        retention_days=retention,
        mask_digits=mask,
        rate_deck=rate_deck,
        default_region=region,
        purge_interval_s=purge,
        keys=keys,
        record_secret=record_secret,
        rate_deck_entries=entries,
    )


def _radius(r: _Reader, data: Mapping[str, Any]) -> RadiusConfig:
    p = "radius"
    r.unknown(data, p, {"listen", "clients", "duplicate_window_s", "receive_buffer_bytes"})
    d = RadiusConfig()
    listen = r.str_list(data, p, "listen") or d.listen
    for value in listen:
        why = check_listen(value)
        if why:
            r.problem("radius.listen", why)
    clients: list[RadiusClient] = []
    raw_clients = data.get("clients", [])
    if not isinstance(raw_clients, list) or not all(isinstance(c, dict) for c in raw_clients):
        r.problem("radius.clients", "must be an array of tables ([[radius.clients]])")
        raw_clients = []
    if not raw_clients:
        r.problem("radius.clients", "no client is configured: every packet would be dropped")
    names: set[str] = set()
    addresses: set[str] = set()
    for index, raw in enumerate(raw_clients):
        cp = f"radius.clients[{index}]"
        r.unknown(raw, cp, {"name", "address", "secret", "secret_file", "profile"})
        name = r.optional_str(raw, cp, "name")
        if name is None:
            r.problem(f"{cp}.name", "is required")
        elif name in names:
            r.problem(f"{cp}.name", f"{name!r} is used by another client")
        else:
            names.add(name)
        address = r.optional_str(raw, cp, "address")
        if address is None:
            r.problem(f"{cp}.address", "is required")
        else:
            why = check_network(address)
            if why:
                r.problem(f"{cp}.address", why)
                address = None
            else:
                canonical = str(ipaddress.ip_network(address, strict=False))
                if canonical in addresses:
                    r.problem(f"{cp}.address", f"{address!r} is used by another client")
                addresses.add(canonical)
        secret: bytes | None = None
        if "secret" in raw and "secret_file" in raw:
            r.problem(cp, "set either secret or secret_file, not both")
        elif "secret" in raw:
            value = raw["secret"]
            if not isinstance(value, str) or not value:
                r.problem(f"{cp}.secret", "must be a non-empty string")
            else:
                secret = value.encode()
        elif "secret_file" in raw:
            value = raw["secret_file"]
            if not isinstance(value, str) or not value:
                r.problem(f"{cp}.secret_file", "must be a non-empty string")
            else:
                text = r.read_text(f"{cp}.secret_file", value)
                if text is not None:
                    if not text.strip():
                        r.problem(f"{cp}.secret_file", f"{value}: the file is empty")
                    else:
                        secret = text.strip().encode()
        else:
            r.problem(f"{cp}.secret", "is required (secret or secret_file)")
        profile = r.get(raw, cp, "profile", str, "auto", one_of(*PROFILES))
        if name and address and secret:
            clients.append(RadiusClient(name, address, secret, profile))
    window = r.get(data, p, "duplicate_window_s", int, d.duplicate_window_s, positive)
    rcvbuf = r.get(data, p, "receive_buffer_bytes", int, d.receive_buffer_bytes, positive)
    return RadiusConfig(tuple(listen), tuple(clients), window, rcvbuf)


def _sip(r: _Reader, data: Mapping[str, Any]) -> SipConfig:
    p = "sip"
    r.unknown(
        data,
        p,
        {
            "listen",
            "sources",
            "max_dialogs",
            "max_dialog_age_s",
            "correlation_header",
            "receive_buffer_bytes",
        },
    )
    d = SipConfig()
    listen = r.str_list(data, p, "listen") or d.listen
    for value in listen:
        why = check_listen(value)
        if why:
            r.problem("sip.listen", why)
    sources: list[SipSource] = []
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list) or not all(isinstance(s, dict) for s in raw_sources):
        r.problem("sip.sources", "must be an array of tables ([[sip.sources]])")
        raw_sources = []
    if not raw_sources:
        r.problem("sip.sources", "no source is configured: every packet would be dropped")
    names: set[str] = set()
    for index, raw in enumerate(raw_sources):
        sp = f"sip.sources[{index}]"
        r.unknown(raw, sp, {"name", "address", "hep_auth_key"})
        name = r.optional_str(raw, sp, "name")
        if name is None:
            r.problem(f"{sp}.name", "is required")
        elif name in names:
            r.problem(f"{sp}.name", f"{name!r} is used by another source")
        else:
            names.add(name)
        address = r.optional_str(raw, sp, "address")
        if address is None:
            r.problem(f"{sp}.address", "is required")
        elif check_network(address):
            r.problem(f"{sp}.address", check_network(address) or "")
            address = None
        auth = r.optional_str(raw, sp, "hep_auth_key")
        if name and address:
            sources.append(SipSource(name, address, auth))
    max_dialogs = r.get(data, p, "max_dialogs", int, d.max_dialogs, positive)
    max_age = r.get(data, p, "max_dialog_age_s", int, d.max_dialog_age_s, positive)
    header = r.optional_str(data, p, "correlation_header")
    rcvbuf = r.get(data, p, "receive_buffer_bytes", int, d.receive_buffer_bytes, positive)
    return SipConfig(tuple(listen), tuple(sources), max_dialogs, max_age, header, rcvbuf)


def _json(r: _Reader, data: Mapping[str, Any]) -> JsonConfig:
    p = "json"
    r.unknown(data, p, {"listen", "allowed", "basic_auth_file", "source", "max_body_bytes"})
    d = JsonConfig()
    listen = r.get(data, p, "listen", str, d.listen, check_listen)
    allowed = r.str_list(data, p, "allowed")
    if allowed is None:
        r.problem("json.allowed", "is required: list the networks allowed to post CDRs")
        allowed = ()
    for value in allowed:
        why = check_network(value)
        if why:
            r.problem("json.allowed", why)
    auth_file = r.optional_str(data, p, "basic_auth_file")
    credentials: list[tuple[str, str]] = []
    if auth_file is not None:
        text = r.read_text("json.basic_auth_file", auth_file)
        if text is not None:
            for number, raw in enumerate(text.splitlines(), start=1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                user, sep, password = line.partition(":")
                if not sep or not user or not password:
                    r.problem(
                        "json.basic_auth_file",
                        f"{auth_file}: line {number}: expected USER:PASSWORD",
                    )
                    continue
                credentials.append((user, password))
            if not credentials:
                r.problem("json.basic_auth_file", f"{auth_file}: holds no USER:PASSWORD line")
    source = r.get(data, p, "source", str, d.source, lambda v: None if v else "must not be empty")
    max_body = r.get(data, p, "max_body_bytes", int, d.max_body_bytes, positive)
    return JsonConfig(listen, allowed, auth_file, tuple(credentials), source, max_body)


def parse_config(path: str, data: Mapping[str, Any], *, read_files: bool = True) -> Config:
    """Build a Config from parsed TOML; raise ConfigError listing every problem."""
    r = _Reader(path)
    r.unknown(
        data,
        "",
        {"service", "database", "spool", "metrics", "logging", "privacy", "radius", "sip", "json"},
    )

    service = ServiceConfig()
    if (t := r.table(data, "service")) is not None:
        r.unknown(t, "service", {"drain_timeout_ms", "queue_max_records"})
        service = ServiceConfig(
            drain_timeout_ms=r.get(
                t, "service", "drain_timeout_ms", int, service.drain_timeout_ms, positive
            ),
            queue_max_records=r.get(
                t, "service", "queue_max_records", int, service.queue_max_records, positive
            ),
        )

    database: DatabaseConfig | None = None
    if (t := r.table(data, "database")) is not None:
        p = "database"
        d = DatabaseConfig()
        r.unknown(
            t,
            p,
            {
                "dsn",
                "migrate",
                "batch_max_records",
                "batch_max_delay_ms",
                "commit_timeout_ms",
                "statement_timeout_ms",
                "connect_timeout_ms",
                "retry_interval_ms",
            },
        )
        dsn = r.get(t, p, "dsn", str, d.dsn)
        dsn = os.environ.get(DSN_ENV) or dsn
        if not dsn.startswith(("postgresql://", "postgres://")):
            r.problem("database.dsn", "must be a postgresql:// URL")
        database = DatabaseConfig(
            dsn=dsn,
            migrate=r.get(t, p, "migrate", bool, d.migrate),
            batch_max_records=r.get(t, p, "batch_max_records", int, d.batch_max_records, positive),
            batch_max_delay_ms=r.get(
                t, p, "batch_max_delay_ms", int, d.batch_max_delay_ms, non_negative
            ),
            commit_timeout_ms=r.get(t, p, "commit_timeout_ms", int, d.commit_timeout_ms, positive),
            statement_timeout_ms=r.get(
                t, p, "statement_timeout_ms", int, d.statement_timeout_ms, positive
            ),
            connect_timeout_ms=r.get(
                t, p, "connect_timeout_ms", int, d.connect_timeout_ms, positive
            ),
            retry_interval_ms=r.get(t, p, "retry_interval_ms", int, d.retry_interval_ms, positive),
        )

    spool: SpoolConfig | None = None
    if (t := r.table(data, "spool")) is not None:
        d2 = SpoolConfig()
        r.unknown(t, "spool", {"directory", "max_bytes", "segment_max_bytes"})
        directory = r.get(t, "spool", "directory", str, d2.directory)
        max_bytes = r.get(t, "spool", "max_bytes", int, d2.max_bytes, positive)
        segment = r.get(
            t, "spool", "segment_max_bytes", int, min(d2.segment_max_bytes, max_bytes), positive
        )
        if segment > max_bytes:
            r.problem("spool.segment_max_bytes", "must not exceed spool.max_bytes")
        spool = SpoolConfig(str(r.resolve(directory)), max_bytes, segment)

    if database is None and spool is None:
        r.problem(
            "database",
            "neither [database] nor [spool] is configured: records would have nowhere to go",
        )

    metrics: MetricsConfig | None = None
    if (t := r.table(data, "metrics")) is not None:
        r.unknown(t, "metrics", {"listen"})
        metrics = MetricsConfig(
            r.get(t, "metrics", "listen", str, MetricsConfig.listen, check_listen)
        )

    logging_cfg = LoggingConfig()
    if (t := r.table(data, "logging")) is not None:
        r.unknown(t, "logging", {"level", "format"})
        logging_cfg = LoggingConfig(
            level=r.get(t, "logging", "level", str, "info", one_of(*LOG_LEVELS)),
            format=r.get(t, "logging", "format", str, "json", one_of(*LOG_FORMATS)),
        )

    privacy = _privacy(r, r.table(data, "privacy") or {}, read_files)

    radius = _radius(r, t) if (t := r.table(data, "radius")) is not None else None
    sip = _sip(r, t) if (t := r.table(data, "sip")) is not None else None
    json_cfg = _json(r, t) if (t := r.table(data, "json")) is not None else None
    if radius is None and sip is None and json_cfg is None:
        r.problem(
            "radius", "no listener is configured: enable at least one of [radius], [sip], [json]"
        )

    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        path=path,
        service=service,
        database=database,
        spool=spool,
        metrics=metrics,
        logging=logging_cfg,
        privacy=privacy,
        radius=radius,
        sip=sip,
        json=json_cfg,
    )


def resolve_config_path(path: str | None) -> str:
    """The --config argument, else $CDR_COLLECTOR_CONFIG, else the system default."""
    return path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def load_config(path: str) -> Config:
    """Read and validate a configuration file and the files it names."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(path, "-", "the configuration file does not exist")]) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(path, "-", f"the configuration file cannot be read: {exc.strerror}")]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([Problem(path, "-", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(path, "-", f"not valid TOML: {exc}")]) from None
    return parse_config(path, data)
