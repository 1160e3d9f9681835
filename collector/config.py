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
import csv
import ipaddress
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from collector.credentials import StandIn, credentials_directory, find_credential

DEFAULT_CONFIG_PATH = "/etc/cdr-collector/collector.toml"
CONFIG_ENV = "CDR_COLLECTOR_CONFIG"
DSN_ENV = "CDR_COLLECTOR_DSN"

PROFILES = ("auto", "cisco", "kamailio", "freeswitch", "generic")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

#: every key each table accepts; anything else is an "unknown key" problem
SECTION_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {"service", "database", "spool", "metrics", "logging", "privacy", "radius", "sip", "json"}
    ),
    "service": frozenset({"drain_timeout_ms", "queue_max_records"}),
    "database": frozenset(
        {
            "dsn",
            "migrate",
            "batch_max_records",
            "batch_max_delay_ms",
            "commit_timeout_ms",
            "statement_timeout_ms",
            "connect_timeout_ms",
            "retry_interval_ms",
        }
    ),
    "spool": frozenset({"directory", "max_bytes", "segment_max_bytes"}),
    "metrics": frozenset({"listen"}),
    "logging": frozenset({"level", "format"}),
    "privacy": frozenset(
        {
            "key_file",
            "record_key_file",
            "retention_days",
            "mask_digits",
            "rate_deck",
            "default_region",
            "purge_interval_s",
        }
    ),
    "radius": frozenset({"listen", "clients", "duplicate_window_s", "receive_buffer_bytes"}),
    "radius.clients": frozenset({"name", "address", "secret", "secret_file", "profile", "region"}),
    "sip": frozenset(
        {
            "listen",
            "sources",
            "max_dialogs",
            "max_dialog_age_s",
            "correlation_header",
            "receive_buffer_bytes",
            "tcp_max_connections",
            "tcp_max_connections_per_address",
            "tcp_idle_timeout_s",
            "tcp_frame_timeout_ms",
        }
    ),
    "sip.sources": frozenset({"name", "address", "hep_auth_key", "region"}),
    "json": frozenset(
        {
            "listen",
            "allowed",
            "basic_auth_file",
            "source",
            "region",
            "max_body_bytes",
            "header_timeout_ms",
            "body_timeout_ms",
        }
    ),
}

#: the transports each listener section binds (a port clashes only within one transport)
LISTENER_TRANSPORTS: dict[str, frozenset[str]] = {
    "radius.listen": frozenset({"UDP"}),
    "sip.listen": frozenset({"UDP", "TCP"}),
    "json.listen": frozenset({"TCP"}),
    "metrics.listen": frozenset({"TCP"}),
}


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
    #: ISO 3166 region its national numbers belong to (None: privacy.default_region)
    region: str | None = None

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
    #: ISO 3166 region its national numbers belong to (None: privacy.default_region)
    region: str | None = None

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
    #: HEP-over-TCP connections served at once, in all and from one address
    tcp_max_connections: int = 256
    tcp_max_connections_per_address: int = 16
    #: a HEP-over-TCP connection that sends nothing for this long is closed
    tcp_idle_timeout_s: int = 600
    #: a HEP frame begun on TCP must be complete within this
    tcp_frame_timeout_ms: int = 5000


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
    #: a connection must deliver a request's headers within this, from its
    #: opening or the end of its previous request
    header_timeout_ms: int = 10000
    #: and the body within this once the headers are in
    body_timeout_ms: int = 30000
    #: ISO 3166 region the sender's national numbers belong to (None: privacy.default_region)
    region: str | None = None

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
    #: things that work but deserve attention (a secret file others can read)
    warnings: tuple[Problem, ...] = ()
    #: private files taken to be the running service's credentials without being read
    #: (only with `assume_credentials`, as check-config runs under ExecReload=)
    unchecked: tuple[Problem, ...] = ()
    #: systemd credentials read in place of configured files
    stand_ins: tuple[StandIn, ...] = ()

    def source_regions(self) -> dict[tuple[str, str], str]:
        """The region of each (protocol, source name) that sets its own, for the redactor.

        Keyed by protocol too: one switch's RADIUS client and SIP source may
        share a name and still dial in different regions.
        """
        regions: dict[tuple[str, str], str] = {}
        for client in self.radius.clients if self.radius else ():
            if client.region:
                regions["radius", client.name] = client.region
        for source in self.sip.sources if self.sip else ():
            if source.region:
                regions["sip", source.name] = source.region
        if self.json is not None and self.json.region:
            regions["json", self.json.source] = self.json.region
        return regions


T = TypeVar("T")


class _Reader:
    """Collects problems while pulling typed values out of TOML tables."""

    def __init__(self, path: str, *, assume_credentials: bool = False) -> None:
        self.path = path
        self.base = Path(path).resolve().parent
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        #: see parse_config; `unchecked` holds the keys of the files it let pass unread
        self.assume_credentials = assume_credentials
        self.unchecked: list[Problem] = []
        self.stand_ins: list[StandIn] = []
        #: (key, value, host, port) of every valid listen address, for the clash check
        self.listeners: list[tuple[str, str, str, int]] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.path, key, reason))

    def warning(self, key: str, reason: str) -> None:
        self.warnings.append(Problem(self.path, key, reason))

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return None
        return value

    def unknown(self, data: Mapping[str, Any], prefix: str, allowed: frozenset[str]) -> None:
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
        if not isinstance(value, str) or not value.strip():
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
        if not value:
            self.problem(f"{prefix}.{key}", "must not be empty")
            return None
        return tuple(value)

    def listen(self, key: str, value: str) -> None:
        """Check one listen address and remember it for the clash check."""
        try:
            host, port = parse_host_port(value)
        except ValueError as exc:
            self.problem(key, f"{value!r} is not IP:PORT ({exc})")
            return
        self.listeners.append((key, value, host, port))

    def listen_clashes(self) -> None:
        """Two listeners on one port of one transport: a bind error, or (UDP) a silent split."""
        for index, (key, value, host, port) in enumerate(self.listeners):
            for key2, value2, host2, port2 in self.listeners[:index]:
                if port == 0 or port != port2 or not _hosts_overlap(host, host2):
                    continue
                shared = LISTENER_TRANSPORTS[key] & LISTENER_TRANSPORTS[key2]
                if not shared:
                    continue
                where = "in the same list" if key == key2 else f"in {key2}"
                self.problem(
                    key,
                    f"{value!r} takes {'/'.join(sorted(shared))} port {port}, "
                    f"already taken by {value2!r} {where}",
                )

    def resolve(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.base / path

    def read_text(self, key: str, name: str, *, private: bool = False) -> str | None:
        """The text of a file the configuration names (a UTF-8 byte order mark is dropped).

        With `private`, a file every user may read is reported as a warning,
        and a systemd credential named like the file (`LoadCredential=keys:...`
        for `.../keys`) is read in its place: the unit's dynamic user cannot
        read root's 0600 files, but systemd hands it a private copy. None when
        the file could not be used: a problem says why, or, with
        `assume_credentials`, `unchecked` says that it was let pass unread.
        """
        configured = path = self.resolve(name)
        credential: Path | None = None
        #: why $CREDENTIALS_DIRECTORY could not be searched, when it could not
        blocked: str | None = None
        if private:
            try:
                credential = find_credential(path.name)
            except OSError as exc:
                blocked = (
                    f"the credentials directory {credentials_directory()!r} cannot be "
                    f"searched ({exc.strerror or type(exc).__name__})"
                )
            if credential is not None:
                path, private = credential, False  # systemd's own copy, private by construction
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8-sig")
        except PermissionError:
            if blocked is None:
                self.problem(key, f"file {str(path)!r} is not readable (permission denied)")
            elif self.assume_credentials:
                self.unchecked.append(
                    Problem(
                        self.path,
                        key,
                        f"{str(path)!r} not checked: this user cannot read it and {blocked}; "
                        "taken to be the credential the running service loaded at start",
                    )
                )
            else:
                self.problem(
                    key, f"file {str(path)!r} is not readable (permission denied), and {blocked}"
                )
        except FileNotFoundError:
            self.problem(
                key,
                f"file {str(path)!r} does not exist"
                + (f", and {blocked}" if blocked is not None else ""),
            )
        except IsADirectoryError:
            self.problem(key, f"{str(path)!r} is a directory, not a file")
        except UnicodeDecodeError:
            self.problem(key, f"file {str(path)!r} is not UTF-8 text")
        except OSError as exc:
            self.problem(key, f"file {str(path)!r} cannot be read: {exc.strerror or exc}")
        else:
            if credential is not None:
                self.stand_ins.append(StandIn.read(key, configured, credential, raw))
            if private:
                self.check_private(key, path)
            return text
        return None

    def was_unchecked(self, key: str) -> bool:
        """Whether the file under `key` was let pass unread (see `assume_credentials`)."""
        return any(note.key == key for note in self.unchecked)

    def check_private(self, key: str, path: Path) -> None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            return
        if mode & stat.S_IROTH:
            self.warning(
                key,
                f"file {str(path)!r} is readable by every user (mode {mode:04o}): "
                "chmod o-r it, or hand it over as a systemd credential (LoadCredential=)",
            )

    def writable_directory(self, key: str, directory: Path) -> None:
        """The directory, or the nearest part of its path that exists, must be a writable directory."""
        probe = directory
        try:
            while not probe.exists() and probe.parent != probe:
                probe = probe.parent
            is_directory = probe.is_dir()
        except OSError as exc:  # a part of the path that cannot be searched
            self.problem(
                key,
                f"{str(directory)!r} cannot be checked: {exc.strerror or exc} "
                f"({str(exc.filename or probe)!r})",
            )
            return
        if not is_directory:
            what = "is" if probe == directory else f"cannot be created: {str(probe)!r} is"
            self.problem(key, f"{str(directory)!r} {what} not a directory")
        elif not os.access(probe, os.W_OK | os.X_OK):
            what = "is" if probe == directory else f"cannot be created: {str(probe)!r} is"
            self.problem(key, f"{str(directory)!r} {what} not writable by this user")


def _hosts_overlap(a: str, b: str) -> bool:
    """Whether binding both addresses on one port collides (a wildcard takes every address;
    "::" also takes IPv4, as the daemon's sockets are dual-stack)."""
    ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
    if ip_a == ip_b:
        return True
    for one, other in ((ip_a, ip_b), (ip_b, ip_a)):
        if one.is_unspecified and (one.version == other.version or one.version == 6):
            return True
    return False


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
        if ":" not in host:
            raise ValueError("brackets are for IPv6 addresses only")
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT")
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets: [ADDRESS]:PORT")
    if not host:
        raise ValueError("the host is empty")
    try:
        ipaddress.ip_address(host)  # listeners take addresses, not names
    except ValueError:
        raise ValueError("the host is not an IP address") from None
    if not (port.isascii() and port.isdigit()):
        raise ValueError("the port is not a number")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("port out of range")
    return host, number


def check_network(value: str) -> str | None:
    """Check helper: an IP address or CIDR network without host bits."""
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not an IP address or CIDR network"
    if "/" in value and str(network.network_address) != value.partition("/")[0]:
        single = value.partition("/")[0]
        return (
            f"{value!r} has host bits set: write {str(network)!r} for the network "
            f"or {single!r} for one address"
        )
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
    """Parse a rate deck: "prefix,destination" per line (digits, optional leading +).

    CSV quoting is understood ("4930","Berlin, Mitte"); blank lines and lines
    starting with '#' are skipped; a first row without any digit in its first
    field is a header. Raises ValueError naming the line of a bad row, a
    prefix listed twice, or a deck with no prefix at all.
    """
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    lines = text.lstrip("\ufeff").splitlines()
    first = True
    for number, fields in enumerate(csv.reader(lines), start=1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        prefix = fields[0].strip().removeprefix("+")
        if first and not any(c.isdigit() for c in prefix):
            first = False
            continue  # a header row such as "prefix,destination"
        first = False
        if len(fields) < 2 or not (prefix.isascii() and prefix.isdigit()):
            raise ValueError(f"line {number}: expected digits,destination")
        destination = fields[1].strip()
        if not destination:
            raise ValueError(f"line {number}: the destination of prefix {prefix} is empty")
        if prefix in seen:
            raise ValueError(
                f"line {number}: prefix {prefix} is already listed on line {seen[prefix]}"
            )
        seen[prefix] = number
        entries.append((prefix, destination))
    if not entries:
        raise ValueError("holds no prefix")
    return entries


def _privacy(r: _Reader, data: Mapping[str, Any], with_keys: bool) -> PrivacyConfig:
    p = "privacy"
    r.unknown(data, p, SECTION_KEYS[p])
    d = PrivacyConfig()
    key_file = r.optional_str(data, p, "key_file") or d.key_file
    record_key_file = r.optional_str(data, p, "record_key_file") or d.record_key_file
    retention = r.get(data, p, "retention_days", int, d.retention_days, positive)
    mask = r.get(
        data,
        p,
        "mask_digits",
        int,
        d.mask_digits,
        lambda v: (
            None
            if 1 <= v <= 8
            else "must be between 1 and 8 (with 0 the masked number would be the whole number)"
        ),
    )
    rate_deck = r.optional_str(data, p, "rate_deck")
    region = _region(r, data, p, "default_region")
    purge = r.get(data, p, "purge_interval_s", int, d.purge_interval_s, positive)
    keys: tuple[tuple[str, bytes], ...] = ()
    record_secret = b""
    entries: tuple[tuple[str, str], ...] = ()
    if with_keys:
        text = r.read_text("privacy.key_file", key_file, private=True)
        if text is not None:
            try:
                keys = tuple(parse_keys(text))
            except ValueError as exc:
                r.problem("privacy.key_file", f"{key_file}: {exc}")
        text = r.read_text("privacy.record_key_file", record_key_file, private=True)
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


def _region(r: _Reader, data: Mapping[str, Any], prefix: str, key: str = "region") -> str | None:
    """An ISO 3166 region code (in any case) whose numbering plan is known, upper-cased."""
    region = r.optional_str(data, prefix, key)
    if region is None:
        return None
    import phonenumbers

    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        r.problem(f"{prefix}.{key}", f"{region!r} is not an ISO 3166 region code")
        return None
    return region.upper()


def _listen_list(
    r: _Reader, data: Mapping[str, Any], p: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    listen = r.str_list(data, p, "listen")
    if listen is None:
        listen = () if "listen" in data else default
    for value in listen:
        r.listen(f"{p}.listen", value)
    return listen


def _peer_name_and_address(
    r: _Reader,
    raw: Mapping[str, Any],
    where: str,
    kind: str,
    names: set[str],
    addresses: set[str],
) -> tuple[str | None, str | None]:
    """The `name` and `address` of one client or source, unique within its list."""
    name = r.optional_str(raw, where, "name")
    if "name" not in raw:
        r.problem(f"{where}.name", "is required")
    elif name is not None:
        if name in names:
            r.problem(f"{where}.name", f"{name!r} is used by another {kind}")
        names.add(name)
    address = r.optional_str(raw, where, "address")
    if "address" not in raw:
        r.problem(f"{where}.address", "is required")
    elif address is not None:
        why = check_network(address)
        if why:
            r.problem(f"{where}.address", why)
            address = None
        else:
            canonical = str(ipaddress.ip_network(address, strict=False))
            if canonical in addresses:
                r.problem(f"{where}.address", f"{address!r} is used by another {kind}")
            addresses.add(canonical)
    return name, address


def _table_list(r: _Reader, data: Mapping[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    raw = data.get(key.rpartition(".")[2], [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        r.problem(key, f"must be an array of tables ([[{key}]])")
        return []
    if not raw:
        r.problem(key, f"no {what} is configured: every packet would be dropped")
    return raw


def _client_secret(r: _Reader, raw: Mapping[str, Any], cp: str) -> bytes | None:
    if "secret" in raw and "secret_file" in raw:
        r.problem(cp, "set either secret or secret_file, not both")
        return None
    if "secret" in raw:
        value = raw["secret"]
        if not isinstance(value, str) or not value.strip():
            r.problem(f"{cp}.secret", "must be a non-empty string (not only spaces)")
            return None
        return value.encode()
    if "secret_file" not in raw:
        r.problem(f"{cp}.secret", "is required (secret or secret_file)")
        return None
    name = r.optional_str(raw, cp, "secret_file")
    if name is None:
        return None
    text = r.read_text(f"{cp}.secret_file", name, private=True)
    if text is None:
        # a file let pass unread still makes a client (check-config counts it)
        return b"" if r.was_unchecked(f"{cp}.secret_file") else None
    secret = text.strip()
    if not secret:
        r.problem(f"{cp}.secret_file", f"{name}: the file is empty")
        return None
    if "\n" in secret or "\r" in secret:
        r.problem(f"{cp}.secret_file", f"{name}: holds more than one line")
        return None
    return secret.encode()


def _radius(r: _Reader, data: Mapping[str, Any]) -> RadiusConfig:
    p = "radius"
    r.unknown(data, p, SECTION_KEYS[p])
    d = RadiusConfig()
    listen = _listen_list(r, data, p, d.listen)
    clients: list[RadiusClient] = []
    names: set[str] = set()
    addresses: set[str] = set()
    for index, raw in enumerate(_table_list(r, data, "radius.clients", "client")):
        cp = f"radius.clients[{index}]"
        r.unknown(raw, cp, SECTION_KEYS["radius.clients"])
        name, address = _peer_name_and_address(r, raw, cp, "client", names, addresses)
        secret = _client_secret(r, raw, cp)
        profile = r.get(raw, cp, "profile", str, "auto", one_of(*PROFILES))
        region = _region(r, raw, cp)
        if name and address and secret is not None:
            clients.append(RadiusClient(name, address, secret, profile, region))
    window = r.get(data, p, "duplicate_window_s", int, d.duplicate_window_s, positive)
    rcvbuf = r.get(data, p, "receive_buffer_bytes", int, d.receive_buffer_bytes, positive)
    return RadiusConfig(listen, tuple(clients), window, rcvbuf)


def _sip(r: _Reader, data: Mapping[str, Any]) -> SipConfig:
    p = "sip"
    r.unknown(data, p, SECTION_KEYS[p])
    d = SipConfig()
    listen = _listen_list(r, data, p, d.listen)
    sources: list[SipSource] = []
    names: set[str] = set()
    addresses: set[str] = set()
    for index, raw in enumerate(_table_list(r, data, "sip.sources", "source")):
        sp = f"sip.sources[{index}]"
        r.unknown(raw, sp, SECTION_KEYS["sip.sources"])
        name, address = _peer_name_and_address(r, raw, sp, "source", names, addresses)
        auth = r.optional_str(raw, sp, "hep_auth_key")
        region = _region(r, raw, sp)
        if name and address:
            sources.append(SipSource(name, address, auth, region))
    max_dialogs = r.get(data, p, "max_dialogs", int, d.max_dialogs, positive)
    max_age = r.get(data, p, "max_dialog_age_s", int, d.max_dialog_age_s, positive)
    header = r.optional_str(data, p, "correlation_header")
    rcvbuf = r.get(data, p, "receive_buffer_bytes", int, d.receive_buffer_bytes, positive)
    tcp_max = r.get(data, p, "tcp_max_connections", int, d.tcp_max_connections, positive)
    tcp_per_address = r.get(
        data, p, "tcp_max_connections_per_address", int, d.tcp_max_connections_per_address, positive
    )
    tcp_idle = r.get(data, p, "tcp_idle_timeout_s", int, d.tcp_idle_timeout_s, positive)
    tcp_frame = r.get(data, p, "tcp_frame_timeout_ms", int, d.tcp_frame_timeout_ms, positive)
    return SipConfig(
        listen,
        tuple(sources),
        max_dialogs,
        max_age,
        header,
        rcvbuf,
        tcp_max,
        tcp_per_address,
        tcp_idle,
        tcp_frame,
    )


def _json(r: _Reader, data: Mapping[str, Any]) -> JsonConfig:
    p = "json"
    r.unknown(data, p, SECTION_KEYS[p])
    d = JsonConfig()
    listen = r.get(data, p, "listen", str, d.listen)
    r.listen("json.listen", listen)
    allowed = r.str_list(data, p, "allowed")
    if allowed is None and "allowed" not in data:
        r.problem("json.allowed", "is required: list the networks allowed to post CDRs")
    for value in allowed or ():
        why = check_network(value)
        if why:
            r.problem("json.allowed", why)
    auth_file = r.optional_str(data, p, "basic_auth_file")
    credentials: list[tuple[str, str]] = []
    if auth_file is not None:
        text = r.read_text("json.basic_auth_file", auth_file, private=True)
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
    source = r.get(
        data, p, "source", str, d.source, lambda v: None if v.strip() else "must not be empty"
    )
    max_body = r.get(data, p, "max_body_bytes", int, d.max_body_bytes, positive)
    header_timeout = r.get(data, p, "header_timeout_ms", int, d.header_timeout_ms, positive)
    body_timeout = r.get(data, p, "body_timeout_ms", int, d.body_timeout_ms, positive)
    return JsonConfig(
        listen,
        allowed or (),
        auth_file,
        tuple(credentials),
        source,
        max_body,
        header_timeout,
        body_timeout,
        _region(r, data, p),
    )


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


def _check_dsn(r: _Reader, dsn: str, from_env: bool) -> None:
    why = dsn_problem(dsn)
    if why:
        r.problem("database.dsn", why + (f" (from ${DSN_ENV})" if from_env else ""))


def _database(r: _Reader, t: Mapping[str, Any]) -> DatabaseConfig:
    p = "database"
    d = DatabaseConfig()
    r.unknown(t, p, SECTION_KEYS[p])
    dsn = r.get(t, p, "dsn", str, d.dsn)
    from_env = bool(os.environ.get(DSN_ENV))
    dsn = os.environ.get(DSN_ENV) or dsn
    _check_dsn(r, dsn, from_env)
    return DatabaseConfig(
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
        connect_timeout_ms=r.get(t, p, "connect_timeout_ms", int, d.connect_timeout_ms, positive),
        retry_interval_ms=r.get(t, p, "retry_interval_ms", int, d.retry_interval_ms, positive),
    )


def _spool(r: _Reader, t: Mapping[str, Any], check_directory: bool) -> SpoolConfig:
    d = SpoolConfig()
    r.unknown(t, "spool", SECTION_KEYS["spool"])
    directory = r.optional_str(t, "spool", "directory") or d.directory
    max_bytes = r.get(t, "spool", "max_bytes", int, d.max_bytes, positive)
    segment = r.get(
        t, "spool", "segment_max_bytes", int, min(d.segment_max_bytes, max_bytes), positive
    )
    if segment > max_bytes:
        r.problem("spool.segment_max_bytes", "must not exceed spool.max_bytes")
    resolved = r.resolve(directory)
    if check_directory:
        r.writable_directory("spool.directory", resolved)
    return SpoolConfig(str(resolved), max_bytes, segment)


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
    r = _Reader(path, assume_credentials=assume_credentials)
    r.unknown(data, "", SECTION_KEYS[""])

    service = ServiceConfig()
    if (t := r.table(data, "service")) is not None:
        r.unknown(t, "service", SECTION_KEYS["service"])
        service = ServiceConfig(
            drain_timeout_ms=r.get(
                t, "service", "drain_timeout_ms", int, service.drain_timeout_ms, positive
            ),
            queue_max_records=r.get(
                t, "service", "queue_max_records", int, service.queue_max_records, positive
            ),
        )

    database = _database(r, t) if (t := r.table(data, "database")) is not None else None
    spool = _spool(r, t, read_files) if (t := r.table(data, "spool")) is not None else None
    if database is None and spool is None:
        r.problem(
            "database",
            "neither [database] nor [spool] is configured: records would have nowhere to go",
        )

    metrics: MetricsConfig | None = None
    if (t := r.table(data, "metrics")) is not None:
        r.unknown(t, "metrics", SECTION_KEYS["metrics"])
        metrics = MetricsConfig(r.get(t, "metrics", "listen", str, MetricsConfig.listen))
        r.listen("metrics.listen", metrics.listen)

    logging_cfg = LoggingConfig()
    if (t := r.table(data, "logging")) is not None:
        r.unknown(t, "logging", SECTION_KEYS["logging"])
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
    r.listen_clashes()

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
    r = _Reader(path)
    privacy = r.table(data, "privacy") or {}
    d = PrivacyConfig()
    key_file = r.optional_str(privacy, "privacy", "key_file") or d.key_file
    record_key_file = r.optional_str(privacy, "privacy", "record_key_file") or d.record_key_file
    if r.problems:
        raise ConfigError(r.problems)
    return r.resolve(key_file), r.resolve(record_key_file)


def load_config(path: str, *, assume_credentials: bool = False) -> Config:
    """Read and validate a configuration file and the files it names (see parse_config
    for `assume_credentials`)."""
    return parse_config(path, read_toml(path), assume_credentials=assume_credentials)
