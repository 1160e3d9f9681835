"""Every list of stored columns, derived from the one declaration in `StoredCdr`.

`collector.model.StoredCdr` declares each field once, with its Python type
and a `Column` (SQL type, default for older layouts, whether it is a column
of `cdrs` and whether an open call keeps it). This module turns that into
what the sink, the spool and retention need: the staging table, the COPY
column list, the select lists of the statements that write `cdrs` and
`open_calls`, and the typed field list the spool codec encodes and checks.
Nothing else in the package may list columns by hand, and nothing here does
I/O.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from collector.model import Column, StoredCdr


@dataclass(frozen=True, slots=True)
class Field:
    """One field of StoredCdr: its name, position, base Python type and storage."""

    name: str
    index: int
    #: str, bytes, int, bool or datetime
    type: type
    nullable: bool
    column: Column

    @property
    def table_column(self) -> str:
        """Its name in `cdrs` and `open_calls`."""
        return self.column.column or self.name

    @property
    def required(self) -> bool:
        """Every layout must hold it: it can be neither None nor filled in by default."""
        return not self.nullable and self.column.default is None


def _fields() -> tuple[Field, ...]:
    hints = typing.get_type_hints(StoredCdr, include_extras=True)
    found = []
    for index, name in enumerate(StoredCdr._fields):
        annotated = hints[name]
        base, *metadata = typing.get_args(annotated)
        columns = [item for item in metadata if isinstance(item, Column)]
        if len(columns) != 1:
            raise TypeError(f"StoredCdr.{name} must be Annotated with exactly one Column")
        nullable = False
        if isinstance(base, types.UnionType) or typing.get_origin(base) is typing.Union:
            members = [arg for arg in typing.get_args(base) if arg is not type(None)]
            nullable = len(members) < len(typing.get_args(base))
            if len(members) != 1:
                raise TypeError(f"StoredCdr.{name}: one type, optionally with None")
            base = members[0]
        if base not in (str, bytes, int, bool, datetime):
            raise TypeError(f"StoredCdr.{name}: no codec for {base!r}")
        found.append(Field(name, index, base, nullable, columns[0]))
    return tuple(found)


#: every field, in StoredCdr order
FIELDS: tuple[Field, ...] = _fields()
BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}
#: the columns COPY fills in the staging table (all of StoredCdr, in order)
COPY_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: fields that are columns of `cdrs`
STORED: tuple[Field, ...] = tuple(f for f in FIELDS if f.column.stored)
#: fields an open call keeps (its columns in `open_calls`, besides opened_at / updated_at)
CARRIED: tuple[Field, ...] = tuple(f for f in FIELDS if f.column.carried)

STAGING_TABLE = "cdr_staging"
CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} ("
    + ", ".join(f"{f.name} {f.column.sql}" for f in FIELDS)
    + ") ON COMMIT DELETE ROWS"
)


def sql_literal(value: object) -> str:
    """A constant default as SQL (None, bool, int or plain text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def cdrs_select(
    computed: Mapping[str, str], carried: str | None, staged: str | None
) -> tuple[str, str]:
    """(column list, select list) of an `INSERT INTO cdrs ... SELECT` statement.

    `computed` gives the expression of each column decided by the statement
    itself (`call_time`, which no field holds, among them). Every other
    column of `cdrs` comes from the staged row `staged` (alias), completed
    from the open call `carried` (alias) when it is nullable and the open
    call keeps it; without a staged row it is the open call's value, or the
    field's default.
    """
    names: list[str] = []
    values: list[str] = []
    unknown = set(computed) - {f.table_column for f in STORED} - {"call_time"}
    if unknown:
        raise ValueError(f"not columns of cdrs: {sorted(unknown)}")
    for f in STORED:
        names.append(f.table_column)
        if f.table_column in computed:
            values.append(computed[f.table_column])
        elif staged is not None and carried is not None and f.column.carried and f.nullable:
            values.append(f"coalesce({staged}.{f.name}, {carried}.{f.table_column})")
        elif staged is not None:
            values.append(f"{staged}.{f.name}")
        elif carried is not None and f.column.carried:
            values.append(f"{carried}.{f.table_column}")
        else:
            values.append(sql_literal(f.column.default))
    names.append("call_time")
    values.append(computed["call_time"])
    return ", ".join(names), ",\n    ".join(values)
