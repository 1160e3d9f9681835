"""The spool: an append-only, fsync'd, checksummed local buffer of redacted records.

While PostgreSQL is away (down, refusing, or slower than the commit deadline)
the writer appends each batch here and acknowledges it only after `fsync`
returns, so an acknowledged record survives a crash of the daemon or of the
machine. A background replay feeds segments, oldest first, through the same
idempotent insert as live traffic and deletes a segment only after its rows
are committed. Frames carry a CRC32C over header and payload: a torn tail
(crash mid-write, never acknowledged) or a corrupt frame is reported, counted
and skipped, never replayed as garbage. It holds only `StoredCdr` rows, which
are already redacted. It never grows past `max_bytes` nor fills the disk:
`append` raises `SpoolFull` instead, and the caller stops acknowledging.

The directory may be removed under a running daemon (a clean-up script, an
operator): the next write recreates it, and the segment still open for
appending (its file unlinked but readable through the open descriptor) is
written back under its name before anything more is acknowledged from it. A
sealed segment whose file is gone is reported as lost, never an error that
stops the replay.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import crc32c

from collector.disk import fsync_directory
from collector.model import StoredCdr
from collector.sink.columns import BY_NAME, COPY_COLUMNS, FIELDS, Field

MAGIC = b"CS"
#: the frame versions this release reads: 1 (positional rows in LAYOUT_1's field
#: order) and 2 (rows under the names of their columns); it writes VERSION
VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
# magic, version, reserved, record count, payload length, crc32c
_HEADER = struct.Struct("!2sBBIII")
HEADER_SIZE = _HEADER.size
SUFFIX = ".seg"
#: keep this much disk free whatever max_bytes allows
MIN_FREE_DISK_BYTES = 64 * 1024 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: the fields of a version 1 frame's rows, in order: StoredCdr as released with
#: frame version 1. A record of history: it never changes, whatever StoredCdr becomes.
LAYOUT_1: tuple[str, ...] = (
    "kind", "record_key", "source", "protocol", "account", "leg", "setup_time",
    "connect_time", "disconnect_time", "duration_ms", "answered", "disconnect_cause",
    "sip_code", "pdd_ms", "called_prefix", "called_country", "called_destination",
    "called_masked", "called_hmac", "calling_country", "calling_hmac", "correlation_hmac",
    "times_derived", "clock_unsynced", "incomplete", "event_time", "received_at",
)  # fmt: skip


class NewerLayoutError(ValueError):
    """Rows written by a newer release (an unknown frame version or column): never
    decoded as something else, never skipped as damage."""


class SpoolFull(Exception):
    """The spool reached max_bytes, or the disk is nearly full: the batch was not written."""


@dataclass
class Segment:
    """One segment file: its sequence number, path, size and record count."""

    sequence: int
    path: Path
    size: int
    records: int


@dataclass
class ReadResult:
    """What reading one segment found: its batches and any damage skipped."""

    batches: list[list[StoredCdr]]
    corrupt_frames: int
    skipped_bytes: int
    #: the file was gone: the records the index knew of in it are lost
    missing: bool = False


def _to_micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _encode_value(f: Field, value: object) -> object:
    if value is None:
        return None
    if f.type is datetime:
        return _to_micros(value)  # type: ignore[arg-type]
    if f.type is bytes:
        return value.hex()  # type: ignore[attr-defined]
    return value


def _decode_value(f: Field, value: object) -> object:
    """One stored value back to its Python type; ValueError when it cannot be one."""
    if value is None:
        if f.nullable:
            return None
        raise ValueError(f"{f.name} is empty")
    kind = f.type
    if kind is datetime:
        if type(value) is not int:
            raise ValueError(f"{f.name} is not a time")
        return _from_micros(value)
    if kind is bytes:
        if not isinstance(value, str):
            raise ValueError(f"{f.name} is not hex")
        return bytes.fromhex(value)
    if kind is int:
        if type(value) is not int:
            raise ValueError(f"{f.name} is not an integer")
        return value
    if type(value) is not kind:
        raise ValueError(f"{f.name} is not {kind.__name__}")
    return value


def encode_rows(rows: list[StoredCdr]) -> bytes:
    """Rows as a self-describing JSON object: their column names, then their values.

    Bytes are hex, datetimes epoch microseconds. The names make the payload
    readable by any later release, whatever fields it adds or reorders.
    """
    data = {
        "columns": COPY_COLUMNS,
        "rows": [[_encode_value(f, v) for f, v in zip(FIELDS, row, strict=True)] for row in rows],
    }
    return json.dumps(data, separators=(",", ":")).encode()


def _layout(names: object) -> list[Field]:
    """The field of each column of a payload, in the payload's order."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("payload columns are not a list of names")
    if len(set(names)) != len(names):
        raise ValueError("a column named twice")
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        # a column this release does not know: a newer release wrote it
        raise NewerLayoutError(f"columns unknown to this release: {', '.join(sorted(unknown))}")
    missing = [f.name for f in FIELDS if f.required and f.name not in names]
    if missing:
        raise ValueError(f"required columns missing: {', '.join(missing)}")
    return [BY_NAME[n] for n in names]


_LAYOUT_1_FIELDS = _layout(list(LAYOUT_1))


def decode_rows(payload: bytes) -> list[StoredCdr]:
    """Rows of any layout a release wrote: a positional list (layout 1) or a named object.

    Columns a payload lacks get their declared default. Raises
    NewerLayoutError for columns this release does not know and ValueError
    for a payload of the wrong shape or types.
    """
    data = json.loads(payload)
    values_list: object
    if isinstance(data, list):
        layout, values_list = _LAYOUT_1_FIELDS, data
    elif isinstance(data, dict):
        layout, values_list = _layout(data.get("columns")), data.get("rows")
    else:
        raise ValueError("payload is neither a list nor an object")
    if not isinstance(values_list, list):
        raise ValueError("payload rows are not a list")
    width = len(layout)
    defaults = {f.name: f.column.default for f in FIELDS}
    rows = []
    for values in values_list:
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("row of the wrong width")
        named = dict(defaults)
        for f, value in zip(layout, values, strict=True):
            named[f.name] = _decode_value(f, value)
        rows.append(StoredCdr(**named))  # type: ignore[arg-type]
    return rows


def encode_frame(rows: list[StoredCdr]) -> bytes:
    """One frame: header (with CRC32C over header fields and payload) then payload."""
    payload = encode_rows(rows)
    partial = _HEADER.pack(MAGIC, VERSION, 0, len(rows), len(payload), 0)[:-4]
    checksum = crc32c.crc32c(payload, crc32c.crc32c(partial))
    return partial + checksum.to_bytes(4, "big") + payload


@dataclass(frozen=True, slots=True)
class Frame:
    """One intact frame: the version that wrote it, its record count and its payload."""

    version: int
    count: int
    payload: bytes


def _frame_at(data: bytes, pos: int) -> tuple[Frame, int] | None:
    """The intact frame at pos and where it ends, or None.

    Intact means its CRC holds over header and payload, whatever its
    version: a frame of a version this release does not know is a newer
    release's, never damage.
    """
    if pos + HEADER_SIZE > len(data):
        return None
    magic, version, _reserved, count, length, checksum = _HEADER.unpack_from(data, pos)
    if magic != MAGIC or version == 0:
        return None
    end = pos + HEADER_SIZE + length
    if end > len(data):
        return None
    payload = data[pos + HEADER_SIZE : end]
    if crc32c.crc32c(payload, crc32c.crc32c(data[pos : pos + HEADER_SIZE - 4])) != checksum:
        return None
    return Frame(version, count, payload), end


def scan_frames(data: bytes) -> Iterator[Frame | int]:
    """Walk the frames of a segment's bytes.

    Yields each intact frame and, for damage, the number of bytes skipped to
    reach the next intact frame (or the end). A frame is intact only if its
    header and payload pass the CRC, so resynchronizing on the magic bytes
    never accepts garbage.
    """
    pos = 0
    size = len(data)
    while pos < size:
        found = _frame_at(data, pos)
        if found is not None:
            frame, pos = found
            yield frame
            continue
        nxt = data.find(MAGIC, pos + 1)
        while nxt >= 0 and _frame_at(data, nxt) is None:
            nxt = data.find(MAGIC, nxt + 1)
        stop = nxt if nxt >= 0 else size
        yield stop - pos
        pos = stop


class SpoolLayoutError(Exception):
    """The spool holds frames a newer release wrote: this release must not touch them."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"spool segment {path} was written by a newer cdr-collector ({reason}); this "
            f"release reads frame versions {', '.join(map(str, sorted(READABLE_VERSIONS)))}: "
            "run the newer release until its spool is empty, or move the segment aside"
        )
        self.path = path


def check_layout(path: Path, frame: Frame) -> None:
    """Raise SpoolLayoutError when `frame` of `path` is of a layout this release cannot read."""
    if frame.version not in READABLE_VERSIONS:
        raise SpoolLayoutError(path, f"frame version {frame.version}")
    if frame.version >= 2:
        try:
            data = json.loads(frame.payload)
            _layout(data.get("columns") if isinstance(data, dict) else None)
        except NewerLayoutError as exc:
            raise SpoolLayoutError(path, str(exc)) from None
        except ValueError:
            pass  # damage: reported when the segment is replayed


class Spool:
    """Segments in one directory; one writer (the pipeline's writer task) at a time."""

    def __init__(self, directory: str, max_bytes: int, segment_max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_max_bytes = segment_max_bytes
        self.segments: list[Segment] = []
        self._active: Segment | None = None
        self._fd: int | None = None
        #: the last append was refused (no room, or an I/O error); cleared when one succeeds
        self.refusing = False

    # --- state -----------------------------------------------------------
    def open(self) -> None:
        """Create the directory (mode 0700) and index the segments already there.

        Raises SpoolLayoutError when a segment holds frames of a newer
        release: they are left as they are, for that release to replay.
        """
        self._ensure_directory()
        found = []
        for path in self.directory.iterdir():
            if path.suffix != SUFFIX or not path.stem.isdigit():
                continue
            data = path.read_bytes()
            records = 0
            checked: set[int] = set()
            for item in scan_frames(data):
                if isinstance(item, Frame):
                    if item.version not in checked:
                        # one release writes one layout per version: its first frame tells
                        check_layout(path, item)
                        checked.add(item.version)
                    records += item.count
            found.append(Segment(int(path.stem), path, len(data), records))
        found.sort(key=lambda s: s.sequence)
        self.segments = found
        # never append after a tail that may be torn: new writes start a new segment
        self._active = None

    @property
    def records(self) -> int:
        """Records waiting for replay."""
        return sum(s.records for s in self.segments)

    @property
    def size(self) -> int:
        """Bytes used by all segments."""
        return sum(s.size for s in self.segments)

    @property
    def pending(self) -> bool:
        """True while any segment holds records (live batches must queue behind them)."""
        return any(s.records or s.size for s in self.segments)

    def full(self) -> bool:
        """True while appends are being refused, or when not even a small one would fit."""
        return self.refusing or self.size + 1024 > self.max_bytes or self._disk_low(1024)

    def _disk_low(self, need: int) -> bool:
        try:
            stat = os.statvfs(self.directory)
        except OSError:
            return True
        return stat.f_bavail * stat.f_frsize - need < MIN_FREE_DISK_BYTES

    # --- writing -----------------------------------------------------------
    def append(self, rows: list[StoredCdr]) -> None:
        """Write one batch as a frame and fsync it; raise SpoolFull when it does not fit.

        Raises OSError when the frame could not be made durable (the caller
        must not acknowledge it); what was acknowledged before stays on disk.
        """
        frame = encode_frame(rows)
        try:
            self._ensure_directory()
            self._rescue_active()
        except OSError:
            self.refusing = True
            raise
        if self.size + len(frame) > self.max_bytes or self._disk_low(len(frame)):
            self.refusing = True
            raise SpoolFull()
        try:
            if self._active is None or self._active.size >= self.segment_max_bytes:
                self._start_segment()
            assert self._active is not None and self._fd is not None
            active = self._active
            self._write_frame(active, self._fd, frame)
            active.records += len(rows)
            # removed while this frame was written: put the file back before answering
            self._rescue_active()
        except OSError:
            self.refusing = True
            raise
        self.refusing = False

    def _write_frame(self, segment: Segment, fd: int, frame: bytes) -> None:
        before = segment.size
        written = 0
        try:
            while written < len(frame):
                written += os.write(fd, frame[written:])
            os.fsync(fd)
        except OSError:
            # cut off what may have been written of the frame, so that a replay
            # does not report it as damage; then start afresh in a new segment
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            self._close_active()
            raise
        segment.size += len(frame)

    def _ensure_directory(self) -> None:
        """Create the directory (and missing parents) if it is not there, durably.

        A directory's entry lives in its parent: without an fsync of the
        parent, a power cut could lose the new directory and every segment
        acknowledged from it.
        """
        if self.directory.is_dir():
            return
        made = []
        path = self.directory
        while not path.exists() and path != path.parent:
            made.append(path)
            path = path.parent
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in reversed(made):
            # best effort: a parent this process may not open (a sandbox's) is not ours to sync
            with contextlib.suppress(OSError):
                fsync_directory(directory.parent)

    def _rescue_active(self) -> None:
        """Write the open segment back to disk if its file was removed while it was open.

        Its frames were acknowledged: they are still readable through the
        open descriptor, and only lost when it is closed.
        """
        fd, segment = self._fd, self._active
        if fd is None or segment is None or os.fstat(fd).st_nlink > 0:
            return
        data = bytearray()
        while len(data) < segment.size:
            chunk = os.pread(fd, segment.size - len(data), len(data))
            if not chunk:
                break
            data += chunk
        self._ensure_directory()
        new_fd = os.open(segment.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(new_fd, view[written:])
            os.fsync(new_fd)
            self._fsync_directory()
        except OSError:
            os.close(new_fd)
            with contextlib.suppress(OSError):
                segment.path.unlink()
            raise
        os.close(fd)
        self._fd = new_fd
        segment.size = len(data)

    def _start_segment(self) -> None:
        self._close_active()
        sequence = self.segments[-1].sequence + 1 if self.segments else 1
        path = self.directory / f"{sequence:020d}{SUFFIX}"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._active = Segment(sequence, path, 0, 0)
        self.segments.append(self._active)
        self._fsync_directory()

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._active = None

    def _fsync_directory(self) -> None:
        fsync_directory(self.directory)

    def close(self) -> None:
        """Close the active segment (its data is already durable)."""
        self._close_active()

    # --- replay ------------------------------------------------------------
    def oldest(self) -> Segment | None:
        """The oldest segment, sealing it first if it is the active one."""
        if not self.segments:
            return None
        segment = self.segments[0]
        if segment is self._active:
            # closing the descriptor of a removed file would lose its frames
            with contextlib.suppress(OSError):
                self._rescue_active()
            self._close_active()
        return segment

    def read(self, segment: Segment) -> ReadResult:
        """Every intact batch of a sealed segment, and what damage was skipped.

        Raises SpoolLayoutError for a frame of a newer release (never skipped as damage).
        """
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            return ReadResult([], 0, 0, missing=True)
        batches: list[list[StoredCdr]] = []
        corrupt = skipped = 0
        for item in scan_frames(data):
            if isinstance(item, int):
                corrupt += 1
                skipped += item
                continue
            check_layout(segment.path, item)
            try:
                batches.append(decode_rows(item.payload))
            except NewerLayoutError as exc:
                raise SpoolLayoutError(segment.path, str(exc)) from None
            except (ValueError, TypeError, KeyError):
                corrupt += 1
                skipped += len(item.payload)
        return ReadResult(batches, corrupt, skipped)

    def delete(self, segment: Segment) -> None:
        """Remove a segment whose rows are committed, and make the removal durable."""
        if segment is self._active:
            self._close_active()
        segment.path.unlink(missing_ok=True)
        self.segments.remove(segment)
        with contextlib.suppress(FileNotFoundError):  # the directory itself was removed
            self._fsync_directory()
        self.refusing = False
