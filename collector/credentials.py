"""systemd credentials (`LoadCredential=`) read in place of configured private files.

The unit's dynamic user cannot read root's 0600 key files, so systemd copies
each into `$CREDENTIALS_DIRECTORY` as the service starts, and the daemon reads
the copy named like the configured file. Two consequences are handled here. A
process of the unit that cannot search that directory (on systemd 252 an
`ExecReload=` command sees the variable set and every access refused) must be
told so, not crash. And the copy is made only at start: when the configured
file changes afterwards (`keygen --rotate`), a reload still reads the old
copy, so the configured file's identity is recorded with what was read from
its stand-in, and a reload can tell that only a restart brings the new one.
This module never returns, logs or keeps a secret: only a digest to tell two
contents apart.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

#: what tells a changed file from the one seen before: (st_mtime_ns, st_ino, st_size);
#: `keygen` writes a new file and renames it over the old, so the inode changes too
FileState = tuple[int, int, int]


def credentials_directory() -> str | None:
    """$CREDENTIALS_DIRECTORY, when systemd set it for this process."""
    return os.environ.get(CREDENTIALS_ENV) or None


def find_credential(name: str) -> Path | None:
    """The credential called `name` (`LoadCredential=name:...`), None when there is none.

    Raises OSError when $CREDENTIALS_DIRECTORY is set but cannot be searched
    (permission denied): whether the credential is there cannot be known.
    """
    directory = credentials_directory()
    if directory is None or not name:
        return None
    candidate = Path(directory) / name
    try:
        status = candidate.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    # only a file is a credential (as before: anything else, the configured file is read)
    return candidate if stat.S_ISREG(status.st_mode) else None


def file_state(path: Path) -> FileState | None:
    """The identity of the file at `path` (it need not be readable), None when it has none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_ino, status.st_size)


@dataclass(frozen=True)
class StandIn:
    """A credential that was read in place of a configured file."""

    #: the configuration key naming the file ("privacy.key_file")
    key: str
    #: the configured file, and the credential read instead of it
    configured: str
    credential: str
    #: the configured file's identity when the credential was read
    configured_state: FileState | None
    #: a digest of what the credential held (to tell a new copy from the old one)
    digest: bytes = field(repr=False)

    @classmethod
    def read(cls, key: str, configured: Path, credential: Path, content: bytes) -> StandIn:
        """Record that `content` was read from `credential` in place of `configured`."""
        return cls(
            key,
            str(configured),
            str(credential),
            file_state(configured),
            hashlib.sha256(content).digest(),
        )


def stale_stand_ins(
    loaded: Mapping[str, StandIn], reread: Iterable[StandIn]
) -> tuple[dict[str, StandIn], list[StandIn]]:
    """Compare what a reload read from credentials with what the daemon holds.

    `loaded`: by key, the stand-ins whose contents are in use, each with the
    configured file's identity as it was when that content was first read.
    Returns what is in use after the reload, and the stand-ins whose content
    is unchanged while their configured file has changed since: the file was
    replaced (a rotated key) and the credential, copied at start, still holds
    the old content. A credential whose content did change was read anew, and
    starts from the configured file as it is now.
    """
    in_use: dict[str, StandIn] = {}
    stale: list[StandIn] = []
    for stand_in in reread:
        before = loaded.get(stand_in.key)
        same = (
            before is not None
            and before.digest == stand_in.digest
            and before.configured == stand_in.configured
        )
        if before is not None and same:
            in_use[stand_in.key] = before  # keep when it was loaded: every reload warns again
            if before.configured_state != stand_in.configured_state:
                stale.append(stand_in)
        else:
            in_use[stand_in.key] = stand_in
    return in_use, stale
