"""The generic configuration reader: declarative schemas in, typed values and problems out.

A schema is a frozen dataclass whose fields carry their TOML key, default,
check and other rules in `option()` metadata; each option is written once,
there. `read_table` pulls such a dataclass out of one TOML table, reporting
every problem as `FILE: KEY: REASON` (unknown keys included: a typo must not
silently switch a feature off) and building what it can, so that every
problem is found at once. Fields made with plain `field()` are not options:
a schema fills them in its `checked()` hook (the contents of the files it
names, say). The reader never opens a socket or a database connection, so
`check-config` stays safe as systemd's `ExecStartPre`; it reads files only
through `Reader.read_text`, which also takes systemd credentials in their
place, and it never logs or echoes a secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from collector.credentials import StandIn, credentials_directory, find_credential

T = TypeVar("T")

#: a check: None when the value is fine, else what is wrong with it
Check = Callable[[Any], "str | None"]

_OPTION = "collector.option"


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
class Option:
    """How one dataclass field is read from TOML (see `option`)."""

    key: str
    check: Check | None = None
    convert: Callable[[Any], Any] | None = None
    #: why a missing key is a problem (None: it is optional)
    required: str | None = None
    #: a string that must not be blank, its type and emptiness told as one problem
    text: bool = False
    #: transports this listen address binds (empty: not a listen address)
    listen: frozenset[str] = frozenset()
    #: within an array of tables, values that must differ between items (compared by this)
    unique: Callable[[Any], Any] | None = None
    #: an array of tables needs at least one item, a `noun`
    noun: str | None = None
    #: reads the field itself from the table (several keys, a file): (reader, table, where)
    read: Callable[[Reader, Mapping[str, Any], str], Any] | None = None
    #: the TOML keys `read` takes
    keys: tuple[str, ...] = ()


def option(
    default: Any = dataclasses.MISSING,
    *,
    key: str | None = None,
    check: Check | None = None,
    convert: Callable[[Any], Any] | None = None,
    required: str | None = None,
    text: bool = False,
    listen: frozenset[str] = frozenset(),
    unique: Callable[[Any], Any] | None = None,
    noun: str | None = None,
    read: Callable[[Reader, Mapping[str, Any], str], Any] | None = None,
    keys: tuple[str, ...] = (),
) -> Any:
    """A dataclass field that is a configuration option.

    Its type says how the TOML value is read: `int`, `bool`, `str`, `str | None`
    (a non-blank string, absent: None), `tuple[str, ...]` (a list of strings,
    or one string), `tuple[Schema, ...]` (an array of tables). The key is the
    field's name unless `key` says otherwise. `check` runs on a value of the
    right type (on each item of a list); `convert` then normalizes it. A value
    with a problem is replaced by the default.
    """
    rules = Option(key or "", check, convert, required, text, listen, unique, noun, read, keys)
    return field(default=default, metadata={_OPTION: rules})


def section(default_factory: Callable[[], Any] | None = None, *, receiver: bool = False) -> Any:
    """A field of the top-level schema that is a [table]: always read (an absent one as
    empty) when it has a default, else None when absent. `receiver`: a listener section."""
    metadata = {"collector.section": True, "collector.receiver": receiver}
    if default_factory is None:
        return field(default=None, metadata=metadata)
    return field(default_factory=default_factory, metadata=metadata)


def options(schema: type) -> Iterator[tuple[str, Option, Any]]:
    """(field name, rules, type) of every option of a schema, in declaration order."""
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        rules = item.metadata.get(_OPTION)
        if rules is not None:
            key = rules.key or item.name
            yield item.name, dataclasses.replace(rules, key=key), hints[item.name]


def sections(schema: type) -> Iterator[tuple[str, type, bool, bool]]:
    """(name, schema, optional, receiver) of every [table] field of a top-level schema."""
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        if item.metadata.get("collector.section"):
            inner, optional = _strip_none(hints[item.name])
            yield item.name, inner, optional, bool(item.metadata["collector.receiver"])


def table_keys(schema: type) -> frozenset[str]:
    """Every key a table of this schema accepts."""
    keys: set[str] = set()
    for _, rules, _ in options(schema):
        keys.update(rules.keys or (rules.key,))
    return frozenset(keys)


def schema_keys(schema: type, table: str = "") -> Iterator[tuple[str, str]]:
    """(table, key) of every key a schema accepts, its arrays of tables' keys too
    ("radius.clients", "name"); for a top-level schema, its sections ("", "radius")."""
    for name, inner, _, _ in sections(schema):
        yield table, name
        yield from schema_keys(inner, name)
    for _, rules, hint in options(schema):
        for key in rules.keys or (rules.key,):
            yield table, key
        if (item := _table_item(hint)) is not None:
            where = f"{table}.{rules.key}" if table else rules.key
            yield from schema_keys(item, where)


def _strip_none(hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (hint, False)."""
    args = typing.get_args(hint)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _table_item(hint: Any) -> type | None:
    """The schema of the items of `tuple[Schema, ...]`, else None."""
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return cast(type, item)
    return None


class Reader:
    """Collects problems while pulling typed values out of the TOML tables of one file."""

    def __init__(
        self, path: str, *, read_files: bool = True, assume_credentials: bool = False
    ) -> None:
        self.path = path
        self.base = Path(path).resolve().parent
        #: whether the files a configuration names are read and its directories checked
        self.read_files = read_files
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        #: see collector.config.parse_config; `unchecked` holds the files let pass unread
        self.assume_credentials = assume_credentials
        self.unchecked: list[Problem] = []
        self.stand_ins: list[StandIn] = []
        #: (key, value, host, port, transports) of every valid listen address
        self.listeners: list[tuple[str, str, str, int, frozenset[str]]] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.path, key, reason))

    def warning(self, key: str, reason: str) -> None:
        self.warnings.append(Problem(self.path, key, reason))

    def raise_problems(self) -> None:
        """Raise ConfigError when any problem was found."""
        if self.problems:
            raise ConfigError(self.problems)

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

    def listen(self, key: str, value: str, transports: frozenset[str]) -> None:
        """Check one listen address and remember it for the clash check."""
        try:
            host, port = parse_host_port(value)
        except ValueError as exc:
            self.problem(key, f"{value!r} is not IP:PORT ({exc})")
            return
        self.listeners.append((key, value, host, port, transports))

    def listen_clashes(self) -> None:
        """Two listeners on one port of one transport: a bind error, or (UDP) a silent split."""
        for index, (key, value, host, port, transports) in enumerate(self.listeners):
            for key2, value2, host2, port2, transports2 in self.listeners[:index]:
                if port == 0 or port != port2 or not _hosts_overlap(host, host2):
                    continue
                shared = transports & transports2
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

        With `private`, a file that users other than its owner may read or
        write is a problem (see `check_private`), and a systemd credential
        named like the file (`LoadCredential=keys:...` for `.../keys`) is read
        in its place: the unit's dynamic user cannot read root's 0600 files,
        but systemd hands it a private copy. None when the file could not be
        used: a problem says why, or, with `assume_credentials`, `unchecked`
        says that it was let pass unread.
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
                path = credential  # systemd's own copy: see check_private
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8-sig")
        except PermissionError:
            if blocked is None:
                self.problem(key, f"file {str(path)!r} is not readable (permission denied)")
            elif self.assume_credentials:
                self.check_private(key, configured)
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
                self.check_private(key, configured)
            return text
        return None

    def was_unchecked(self, key: str) -> bool:
        """Whether the file under `key` was let pass unread (see `assume_credentials`)."""
        return any(note.key == key for note in self.unchecked)

    def check_private(self, key: str, path: Path) -> None:
        """A problem unless the private file at `path` is closed to all users but its owner.

        Any group or other permission bit is a problem: a readable pseudonym
        key reverses every pseudonym (there are few phone numbers to try), a
        writable one can be swapped. A systemd credential read in its place
        does not excuse the configured file, which still holds the secret;
        the copy itself is systemd's, private to the service, and not checked.
        A file that cannot be looked at is not judged here (reading it says why).
        """
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            return
        if not mode & 0o077:
            return
        granted = [
            what
            for what, bits in (("readable", 0o044), ("writable", 0o022), ("executable", 0o011))
            if mode & bits
        ]
        who = ", ".join(granted[:-1]) + (" and " if len(granted) > 1 else "") + granted[-1]
        self.problem(key, f"{path} is mode {mode:04o}: {who} by others; chmod 600 it")

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


_MISSING: Any = object()


def read_table(
    reader: Reader,
    schema: type[T],
    data: Mapping[str, Any],
    where: str,
    *,
    only: frozenset[str] | None = None,
    seen: dict[str, set[Any]] | None = None,
    noun: str = "",
) -> T | None:
    """The `schema` read from the TOML table `data` at `where` ("radius", "radius.clients[0]").

    Every problem goes to `reader`; a value with a problem is replaced by its
    default. None when a field without a default could not be had. `only`:
    read just these fields (others keep their defaults, unknown keys pass);
    `seen`: the values of `unique` options in earlier items of the same array.
    The schema's `checked(reader, data, where)` method, when it has one, then
    checks what spans fields and fills the fields that are not options.
    """
    if only is None:
        reader.unknown(data, where, table_keys(schema))
    fallbacks = defaults(schema)
    values: dict[str, Any] = {}
    complete = True
    for name, rules, hint in options(schema):
        if only is not None and name not in only:
            continue
        default = fallbacks.get(name, _MISSING)
        value = _read_option(reader, data, where, name, rules, hint, default, seen, noun)
        if value is _MISSING:
            complete = complete and default is not _MISSING
        else:
            values[name] = value
    if not complete:
        return None
    result = schema(**values)
    checked = getattr(result, "checked", None)
    if checked is not None and only is None:
        result = checked(reader, data, where)
    return result


def defaults(schema: type) -> dict[str, Any]:
    """The default of every field that has one."""
    defaults: dict[str, Any] = {}
    for item in dataclasses.fields(schema):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


def _read_option(
    reader: Reader,
    data: Mapping[str, Any],
    prefix: str,
    name: str,
    rules: Option,
    hint: Any,
    default: Any,
    seen: dict[str, set[Any]] | None,
    noun: str,
) -> Any:
    """One option's value; _MISSING for its default (absent, or a problem)."""
    where = f"{prefix}.{rules.key}" if prefix else rules.key
    if rules.read is not None:
        value = rules.read(reader, data, prefix)
        return _MISSING if value is None else value
    if (item := _table_item(hint)) is not None:
        return _read_tables(reader, data, where, rules, item)
    if rules.key not in data:
        if rules.required is not None:
            reader.problem(where, rules.required)
        value = _MISSING
    else:
        value = _typed(reader, data[rules.key], where, rules, hint)
        if value is not _MISSING and rules.unique is not None and seen is not None:
            identity = rules.unique(value)
            if identity in seen.setdefault(name, set()):
                reader.problem(where, f"{value!r} is used by another {noun}")
            seen[name].add(identity)
    if rules.listen:
        for address in _as_tuple(default if value is _MISSING else value):
            reader.listen(where, address, rules.listen)
    return value


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is _MISSING:
        return ()
    return value if isinstance(value, tuple) else (value,)


def _typed(reader: Reader, value: Any, where: str, rules: Option, hint: Any) -> Any:
    """`value` when it has the option's type and passes its check, else _MISSING."""
    inner, _ = _strip_none(hint)
    if typing.get_origin(inner) is tuple:  # a list of strings
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            reader.problem(where, "must be a list of strings")
            return ()
        if not value:
            reader.problem(where, "must not be empty")
            return ()
        for item in value:
            if rules.check is not None and (why := rules.check(item)):
                reader.problem(where, why)
        return tuple(value)
    if rules.text or (inner is not hint and inner is str):  # a non-blank string
        if not isinstance(value, str) or not value.strip():
            reader.problem(where, "must be a non-empty string")
            return _MISSING
    elif inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            reader.problem(where, f"must be an integer, not {type(value).__name__}")
            return _MISSING
    elif not isinstance(value, inner):
        reader.problem(where, f"must be a {inner.__name__}, not {type(value).__name__}")
        return _MISSING
    if rules.check is not None and (why := rules.check(value)):
        reader.problem(where, why)
        return _MISSING
    return rules.convert(value) if rules.convert is not None else value


def _read_tables(
    reader: Reader, data: Mapping[str, Any], where: str, rules: Option, schema: type
) -> tuple[Any, ...]:
    """An array of tables ([[radius.clients]]); an item with a problem is left out."""
    raw = data.get(rules.key, [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        reader.problem(where, f"must be an array of tables ([[{where}]])")
        return ()
    noun = rules.noun or "item"
    if not raw and rules.noun is not None:
        reader.problem(where, f"no {noun} is configured: every packet would be dropped")
    items: list[Any] = []
    seen: dict[str, set[Any]] = {}
    for index, table in enumerate(raw):
        before = len(reader.problems)
        item = read_table(reader, schema, table, f"{where}[{index}]", seen=seen, noun=noun)
        if item is not None and len(reader.problems) == before:
            items.append(item)
    return tuple(items)


# -- checks ----------------------------------------------------------------------------------


def positive(value: int) -> str | None:
    """Check: the value must be greater than zero."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: int) -> str | None:
    """Check: the value must be zero or more."""
    return None if value >= 0 else "must not be negative"


def not_blank(value: str) -> str | None:
    """Check: the string must hold more than spaces."""
    return None if value.strip() else "must not be empty"


def one_of(*choices: str) -> Callable[[str], str | None]:
    """Check: the value must be one of `choices`."""

    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def check_region(value: str) -> str | None:
    """Check: an ISO 3166 region code (in any case) whose numbering plan is known."""
    import phonenumbers  # only when a region is configured: the metadata is large

    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        return f"{value!r} is not an ISO 3166 region code"
    return None


def check_network(value: str) -> str | None:
    """Check: an IP address or CIDR network without host bits."""
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


def canonical_network(value: str) -> str:
    """The network an address or CIDR stands for, written one way (to compare two)."""
    return str(ipaddress.ip_network(value, strict=False))


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
