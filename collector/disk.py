"""Making changes to a directory durable: one place for the directory fsync.

A rename, a new file or a deletion is durable only once the directory that
holds it is synced. The spool needs to know when that failed (it answers no
request before it is sure); retention and the CDR-file receiver only make
their renames and deletions as durable as the system lets them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(path: str | Path) -> None:
    """fsync a directory, so that the entries just made in it are durable (OSError raised)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(path: str | Path) -> None:
    """fsync a directory as far as the system lets it: a failure is not raised."""
    with contextlib.suppress(OSError):
        fsync_directory(path)
