"""The [files] section and its [[files.sources]]: the CDR file receiver's configuration.

Each option is declared once, as a field below (see collector.settings).
With files read (the daemon, `check-config`), each source's directory must
exist and be readable and writable by this user: files are deleted from it
once their records are durable, and claimed by renaming them there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.settings import Reader, check_region, one_of, option, positive

FORMATS = ("asterisk-csv", "freeswitch-csv")


def check_timezone(value: str) -> str | None:
    """Check: an IANA time zone name ("UTC", "Europe/Berlin") this system knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a time zone name (such as UTC or Europe/Berlin)"
    return None


def check_pattern(value: str) -> str | None:
    """Check: a file name pattern (fnmatch), not a path."""
    if "/" in value or "\0" in value:
        return "must be a file name pattern such as *.csv, without a directory"
    return None


@dataclass(frozen=True)
class FileSource:
    """One directory a switch drops CDR files into."""

    name: str = option(text=True, required="is required", unique=str)
    directory: str = option(text=True, required="is required", unique=os.path.normpath)
    format: str = option(
        text=True, required=f"is required (one of {', '.join(FORMATS)})", check=one_of(*FORMATS)
    )
    pattern: str = option("*.csv", text=True, check=check_pattern)
    #: how the file's times (local to the switch) are read
    timezone: str = option("UTC", text=True, check=check_timezone)
    #: ISO 3166 region its national numbers belong to (None: privacy.default_region)
    region: str | None = option(None, check=check_region, convert=str.upper)

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> FileSource:
        """With the directory resolved, and checked when files are read."""
        del table
        directory = reader.resolve(self.directory)
        if reader.read_files:
            key = f"{where}.directory"
            if not directory.exists():
                reader.problem(key, f"{str(directory)!r} does not exist")
            elif not directory.is_dir():
                reader.problem(key, f"{str(directory)!r} is not a directory")
            elif not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
                reader.problem(
                    key,
                    f"{str(directory)!r} is not readable and writable by this user "
                    "(files are deleted from it once stored)",
                )
        return dataclasses.replace(self, directory=str(directory))


@dataclass(frozen=True)
class FilesConfig:
    """The CDR file receiver: directories polled for finished CSV files."""

    #: the receiver that serves this section (see collector.receivers.receiver_factory)
    RECEIVER: ClassVar[str] = "collector.receivers.files.receiver:FilesReceiver"
    #: the protocol its records carry (collector.model.Protocol.FILE): a source's region
    #: is looked up under it
    PROTOCOL: ClassVar[str] = "file"

    poll_interval_s: int = option(2, check=positive)
    sources: tuple[FileSource, ...] = option((), noun="source")

    def source_names(self) -> tuple[str, ...]:
        """Every source's name."""
        return tuple(source.name for source in self.sources)

    def regions(self) -> dict[str, str]:
        """The region of each source that sets its own, by source name."""
        return {source.name: source.region for source in self.sources if source.region}

    def summary(self) -> str:
        """Its sources, counted."""
        return f"{len(self.sources)} CDR file source(s)"

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """None: every line of a file is a finished call; nothing stays open."""
        return None
