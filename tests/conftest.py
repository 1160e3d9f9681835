"""Shared fixtures: a fresh PostgreSQL database per test, daemon configs, external tools.

Tests talk to the real PostgreSQL of the machine (DSN from $CDR_TEST_PG, default
postgresql://root@127.0.0.1:5432). A test that needs an external program fails
loudly when it is missing; nothing here skips.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.daemon import CollectorConfig

ADMIN_DSN = os.environ.get("CDR_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


def dsn_for(database: str) -> str:
    """The admin DSN pointed at another database."""
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    name = f"cdr_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield dsn_for(name)
    finally:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
def collector_config(tmp_path: Path, dsn: str) -> CollectorConfig:
    """A daemon configuration on free ports, with a spool, against the test database."""
    return CollectorConfig(directory=tmp_path / "collector", dsn=dsn)


def require_program(name: str) -> str:
    """The path of an external program the test needs; fail (never skip) without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: .ci/run installs it (apt-get install)")
    return path


@pytest.fixture
def radclient() -> str:
    """FreeRADIUS's radclient (Debian package freeradius-utils)."""
    return require_program("radclient")


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return Path(__file__).parent / "data"
