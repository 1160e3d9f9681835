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

from collector.model import StoredCdr

MAGIC = b"CS"
VERSION = 1
# magic, version, reserved, record count, payload length, crc32c
_HEADER = struct.Struct("!2sBBIII")
HEADER_SIZE = _HEADER.size
SUFFIX = ".seg"
#: keep this much disk free whatever max_bytes allows
MIN_FREE_DISK_BYTES = 64 * 1024 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_FIELDS = frozenset(
    {"setup_time", "connect_time", "disconnect_time", "event_time", "received_at"}
)
_BYTES_FIELDS = frozenset({"record_key"})
_FIELD_NAMES = StoredCdr._fields


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


def encode_rows(rows: list[StoredCdr]) -> bytes:
    """Rows as compact JSON: bytes as hex, datetimes as epoch microseconds."""
    out = []
    for row in rows:
        values: list[object] = []
        for name, value in zip(_FIELD_NAMES, row, strict=True):
            if value is None:
                values.append(None)
            elif name in _TIME_FIELDS:
                values.append(_to_micros(value))  # type: ignore[arg-type]
            elif name in _BYTES_FIELDS:
                values.append(value.hex())  # type: ignore[union-attr]
            else:
                values.append(value)
        out.append(values)
    return json.dumps(out, separators=(",", ":")).encode()


def decode_rows(payload: bytes) -> list[StoredCdr]:
    """The inverse of encode_rows; raises ValueError on a payload of the wrong shape."""
    data = json.loads(payload)
    if not isinstance(data, list):
        raise ValueError("payload is not a list")
    rows = []
    width = len(_FIELD_NAMES)
    for values in data:
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("row of the wrong width")
        converted: list[object] = []
        for name, value in zip(_FIELD_NAMES, values, strict=True):
            if value is None:
                converted.append(None)
            elif name in _TIME_FIELDS:
                converted.append(_from_micros(int(value)))
            elif name in _BYTES_FIELDS:
                converted.append(bytes.fromhex(value))
            else:
                converted.append(value)
        rows.append(StoredCdr(*converted))  # type: ignore[arg-type]
    return rows


def encode_frame(rows: list[StoredCdr]) -> bytes:
    """One frame: header (with CRC32C over header fields and payload) then payload."""
    payload = encode_rows(rows)
    partial = _HEADER.pack(MAGIC, VERSION, 0, len(rows), len(payload), 0)[:-4]
    checksum = crc32c.crc32c(payload, crc32c.crc32c(partial))
    return partial + checksum.to_bytes(4, "big") + payload


def _frame_at(data: bytes, pos: int) -> tuple[int, int, bytes] | None:
    """(record count, frame end, payload) of a valid frame at pos, or None."""
    if pos + HEADER_SIZE > len(data):
        return None
    magic, version, _reserved, count, length, checksum = _HEADER.unpack_from(data, pos)
    if magic != MAGIC or version != VERSION:
        return None
    end = pos + HEADER_SIZE + length
    if end > len(data):
        return None
    payload = data[pos + HEADER_SIZE : end]
    if crc32c.crc32c(payload, crc32c.crc32c(data[pos : pos + HEADER_SIZE - 4])) != checksum:
        return None
    return count, end, payload


def scan_frames(data: bytes) -> Iterator[tuple[int, bytes] | int]:
    """Walk the frames of a segment's bytes.

    Yields (count, payload) for each valid frame and, for damage, the number
    of bytes skipped to reach the next valid frame (or the end). A frame is
    valid only if its header and payload pass the CRC, so resynchronizing on
    the magic bytes never accepts garbage.
    """
    pos = 0
    size = len(data)
    while pos < size:
        found = _frame_at(data, pos)
        if found is not None:
            count, end, payload = found
            yield count, payload
            pos = end
            continue
        nxt = data.find(MAGIC, pos + 1)
        while nxt >= 0 and _frame_at(data, nxt) is None:
            nxt = data.find(MAGIC, nxt + 1)
        stop = nxt if nxt >= 0 else size
        yield stop - pos
        pos = stop


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
        """Create the directory (mode 0700) and index the segments already there."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = []
        for path in self.directory.iterdir():
            if path.suffix != SUFFIX or not path.stem.isdigit():
                continue
            data = path.read_bytes()
            records = sum(item[0] for item in scan_frames(data) if isinstance(item, tuple))
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
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fsync_parent()

    def _fsync_parent(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.directory.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

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
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
        """Every intact batch of a sealed segment, and what damage was skipped."""
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
            try:
                batches.append(decode_rows(item[1]))
            except (ValueError, TypeError, KeyError):
                corrupt += 1
                skipped += len(item[1])
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
