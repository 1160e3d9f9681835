"""The spool: durable round trips, rotation, reopening, and damage that never becomes a row.

Real files in a temporary directory, real fsync. Damage is made the way it
happens: a crash mid-write leaves a torn tail (the file is cut), a bad disk
block flips bits; the spool must return the intact batches around it, count
the damage and never hand back a row that was not written.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.model import StoredCdr
from collector.sink.spool import HEADER_SIZE, SUFFIX, Spool, SpoolFull, encode_frame

START = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def row(index: int, **fields: object) -> StoredCdr:
    """A redacted record with every kind of value: times, bytes, None, bools, text."""
    base = StoredCdr(
        kind="stop",
        record_key=index.to_bytes(4, "big") + bytes(range(12)),
        source="sbc-fra-1",
        protocol="radius",
        account=None if index % 3 else "trunk-ä",
        leg="originate",
        setup_time=START + timedelta(seconds=index),
        connect_time=None if index % 2 else START + timedelta(seconds=index + 4, microseconds=7),
        disconnect_time=START + timedelta(seconds=index + 60),
        duration_ms=0 if index % 2 else 55_999,
        answered=not index % 2,
        disconnect_cause=16 if index % 2 == 0 else 17,
        sip_code=None,
        pdd_ms=4000,
        called_prefix="+4420",
        called_country="GB",
        called_destination=None,
        called_masked="+442071234***",
        called_hmac=f"k1:{index:032x}",
        calling_country="DE",
        calling_hmac="k1:" + "ab" * 16,
        correlation_hmac=None,
        call_id_hmac=None,
        high_risk=None,
        times_derived=bool(index % 5 == 0),
        clock_unsynced=False,
        times_implausible=False,
        incomplete=False,
        event_time=START + timedelta(seconds=index + 60),
        received_at=START + timedelta(seconds=index + 61),
    )
    return base._replace(**fields)  # type: ignore[arg-type]


def batch(first: int, size: int = 3) -> list[StoredCdr]:
    return [row(i) for i in range(first, first + size)]


def new_spool(directory: Path, max_bytes: int = 10_000_000, segment: int = 1_000_000) -> Spool:
    spool = Spool(str(directory), max_bytes, segment)
    spool.open()
    return spool


def read_all(spool: Spool) -> tuple[list[list[StoredCdr]], int]:
    batches: list[list[StoredCdr]] = []
    damage = 0
    for segment in spool.segments:
        result = spool.read(segment)
        batches.extend(result.batches)
        damage += result.corrupt_frames
    return batches, damage


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


# -- round trips -------------------------------------------------------------------------


def test_rows_come_back_exactly(tmp_path: Path) -> None:
    spool = new_spool(tmp_path / "spool")
    written = [
        batch(0),
        [
            row(
                10,
                connect_time=datetime(
                    2024, 5, 1, 14, 0, 1, 999999, tzinfo=timezone(timedelta(hours=2))
                ),
            )
        ],
        [row(11, account="acme", sip_code=487, correlation_hmac="ff" * 16, incomplete=True)],
        batch(20, 50),
    ]
    for rows in written:
        spool.append(rows)
    assert spool.records == sum(len(b) for b in written)
    segment = spool.oldest()
    assert segment is not None
    result = spool.read(segment)
    assert result.batches == written
    assert (result.corrupt_frames, result.skipped_bytes) == (0, 0)
    back = result.batches[0][0]
    assert isinstance(back.record_key, bytes)
    assert back.answered is True and back.times_derived is True
    assert back.account == "trunk-ä"
    assert back.setup_time is not None and back.setup_time.utcoffset() == timedelta(0)
    assert result.batches[1][0].connect_time == datetime(2024, 5, 1, 12, 0, 1, 999999, tzinfo=UTC)


def test_append_writes_exactly_the_encoded_frames(tmp_path: Path) -> None:
    spool = new_spool(tmp_path / "spool")
    spool.append(batch(0))
    spool.append(batch(5, 1))
    spool.close()
    (path,) = segment_files(tmp_path / "spool")
    assert path.read_bytes() == encode_frame(batch(0)) + encode_frame(batch(5, 1))


def test_segments_rotate_at_segment_max_bytes(tmp_path: Path) -> None:
    frame_size = len(encode_frame(batch(0, 4)))
    segment_max = frame_size * 3 + 10
    spool = new_spool(tmp_path / "spool", segment=segment_max)
    written = [batch(i * 4, 4) for i in range(10)]
    for rows in written:
        spool.append(rows)
    files = segment_files(tmp_path / "spool")
    assert len(files) == len(spool.segments) >= 3
    for path in files:
        # a segment is sealed once it reached the limit: it passes it by one frame at most
        assert path.stat().st_size <= segment_max + frame_size
    assert [s.sequence for s in spool.segments] == sorted(s.sequence for s in spool.segments)
    batches, damage = read_all(spool)
    assert batches == written  # in order across segments
    assert damage == 0


def test_reopen_indexes_segments_and_never_appends_to_an_old_one(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory, segment=len(encode_frame(batch(0))) * 2)
    for i in range(5):
        spool.append(batch(i * 3))
    spool.close()
    before = {p.name: p.read_bytes() for p in segment_files(directory)}
    (directory / "notes.txt").write_text("not a segment")

    reopened = new_spool(directory, segment=len(encode_frame(batch(0))) * 2)
    assert [s.path.name for s in reopened.segments] == sorted(before)
    assert reopened.records == 15
    assert reopened.size == sum(len(b) for b in before.values())
    assert reopened.pending

    reopened.append(batch(100))
    after = {p.name: p.read_bytes() for p in segment_files(directory)}
    for name, data in before.items():
        assert after[name] == data  # old segments untouched
    (new_name,) = set(after) - set(before)
    assert new_name > max(before)  # sequence continues after the old segments
    batches, _ = read_all(reopened)
    assert batches == [batch(i * 3) for i in range(5)] + [batch(100)]


def test_reopen_after_a_torn_tail_starts_a_new_segment(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(batch(0))
    spool.append(batch(3))
    spool.close()
    (path,) = segment_files(directory)
    torn = path.read_bytes()[:-7]
    path.write_bytes(torn)

    reopened = new_spool(directory)
    assert reopened.records == 3  # only the intact frame counts
    reopened.append(batch(9))
    assert path.read_bytes() == torn  # nothing written after the torn frame
    batches, damage = read_all(reopened)
    assert batches == [batch(0), batch(9)]
    assert damage == 1


# -- damage --------------------------------------------------------------------------------


def test_torn_tail_keeps_the_intact_frames(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    for first in (0, 3, 6):
        spool.append(batch(first))
    spool.close()
    (path,) = segment_files(directory)
    third = len(encode_frame(batch(6)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - third // 2])
    reopened = new_spool(directory)
    segment = reopened.oldest()
    assert segment is not None
    result = reopened.read(segment)
    assert result.batches == [batch(0), batch(3)]
    assert result.corrupt_frames == 1
    assert result.skipped_bytes == third - third // 2  # the written part of the torn frame


@pytest.mark.parametrize("where", ["magic", "count", "length", "crc", "payload"])
def test_corrupt_frame_in_the_middle_is_skipped(tmp_path: Path, where: str) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    for first in (0, 3, 6):
        spool.append(batch(first))
    spool.close()
    (path,) = segment_files(directory)
    data = bytearray(path.read_bytes())
    second = len(encode_frame(batch(0)))
    offset = {"magic": 0, "count": 4, "length": 8, "crc": 12, "payload": HEADER_SIZE + 40}[where]
    data[second + offset] ^= 0x10
    path.write_bytes(bytes(data))
    reopened = new_spool(directory)
    batches, damage = read_all(reopened)
    assert batches == [batch(0), batch(6)]
    assert damage >= 1


def test_frame_with_a_valid_checksum_but_unreadable_rows_is_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(batch(0))
    spool.close()
    (path,) = segment_files(directory)
    payload = b'[["stop", "zz"]]'  # wrong width and not hex
    header = b"CS\x01\x00" + (1).to_bytes(4, "big") + len(payload).to_bytes(4, "big")
    checksum = crc32c.crc32c(payload, crc32c.crc32c(header))
    bogus = header + checksum.to_bytes(4, "big") + payload
    path.write_bytes(path.read_bytes() + bogus + encode_frame(batch(3)))
    batches, damage = read_all(new_spool(directory))
    assert batches == [batch(0), batch(3)]
    assert damage == 1


WRITTEN = [batch(0, 2), batch(2, 1), batch(3, 4), batch(7, 2)]
FRAMES = [encode_frame(rows) for rows in WRITTEN]
SEGMENT = b"".join(FRAMES)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(SEGMENT)),
    flips=st.lists(st.tuples(st.integers(0, len(SEGMENT) - 1), st.integers(1, 255)), max_size=3),
)
def test_damage_never_yields_a_row_that_was_not_written(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(SEGMENT[:cut])
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, f"{1:020d}{SUFFIX}").write_bytes(bytes(data))
        batches, damage = read_all(new_spool(Path(directory)))
    # every batch returned is one that was written, whole, and in the written order
    positions = [WRITTEN.index(b) for b in batches]
    assert positions == sorted(set(positions))
    # a frame that lies entirely before the damage is never lost
    first_damage = min([cut, *(p for p, _ in flips if p < cut)])
    end = 0
    for index, frame in enumerate(FRAMES):
        end += len(frame)
        if end <= first_damage:
            assert index in positions
    clean_prefixes = {b"".join(FRAMES[:k]): k for k in range(len(FRAMES) + 1)}
    if bytes(data) in clean_prefixes:
        # cut exactly between frames and nothing flipped: no damage to report
        assert batches == WRITTEN[: clean_prefixes[bytes(data)]] and damage == 0
    else:
        assert damage >= 1


# -- limits ------------------------------------------------------------------------------


def test_spool_full_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    frame = len(encode_frame(batch(0)))
    spool = new_spool(directory, max_bytes=frame * 2 + frame // 2, segment=frame * 10)
    spool.append(batch(0))
    spool.append(batch(3))
    sizes = {p.name: p.stat().st_size for p in segment_files(directory)}
    with pytest.raises(SpoolFull):
        spool.append(batch(6))
    assert {p.name: p.stat().st_size for p in segment_files(directory)} == sizes
    assert spool.records == 6
    assert spool.full()
    batches, damage = read_all(spool)
    assert batches == [batch(0), batch(3)] and damage == 0


def test_batch_larger_than_the_whole_spool_creates_no_segment(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory, max_bytes=500, segment=500)
    with pytest.raises(SpoolFull):
        spool.append(batch(0, 20))
    assert segment_files(directory) == []
    assert spool.segments == []
    assert not spool.pending


def test_full_spool_accepts_again_after_a_delete(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    frame = len(encode_frame(batch(0)))
    spool = new_spool(directory, max_bytes=frame * 2, segment=frame)
    spool.append(batch(0))
    spool.append(batch(3))
    with pytest.raises(SpoolFull):
        spool.append(batch(6))
    oldest = spool.oldest()
    assert oldest is not None
    spool.delete(oldest)
    spool.append(batch(6))
    batches, _ = read_all(spool)
    assert batches == [batch(3), batch(6)]


def test_delete_removes_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory, segment=1)  # one frame per segment
    spool.append(batch(0))
    spool.append(batch(3))
    oldest = spool.oldest()
    assert oldest is not None
    path = oldest.path
    spool.delete(oldest)
    assert not path.exists()
    assert spool.records == 3
    assert len(segment_files(directory)) == 1
    last = spool.oldest()
    assert last is not None
    spool.delete(last)
    assert segment_files(directory) == []
    assert not spool.pending
    assert new_spool(directory).segments == []


# -- permissions ------------------------------------------------------------------------


def test_directory_is_private_and_segments_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        directory = tmp_path / "state" / "spool"
        spool = new_spool(directory)
        spool.append(batch(0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (path,) = segment_files(directory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- the directory or the disk failing under a running daemon ---------------------------


def test_removed_directory_is_recreated_and_the_open_segment_written_back(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(batch(0))
    spool.append(batch(3))
    shutil.rmtree(directory)  # the open segment lives on only through its descriptor
    spool.append(batch(6))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # the segment written back is as private as any other
    assert [stat.S_IMODE(p.stat().st_mode) for p in segment_files(directory)] == [0o600]
    spool.close()
    batches, damage = read_all(new_spool(directory))
    assert batches == [batch(0), batch(3), batch(6)]  # nothing acknowledged before is lost
    assert damage == 0


def test_open_segment_removed_before_replay_is_written_back(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(batch(0))
    (path,) = segment_files(directory)
    path.unlink()
    oldest = spool.oldest()
    assert oldest is not None
    result = spool.read(oldest)
    assert result.batches == [batch(0)] and not result.missing


def test_sealed_segment_removed_is_reported_missing_and_can_be_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory, segment=1)  # one frame per segment
    spool.append(batch(0))
    spool.append(batch(3))
    shutil.rmtree(directory)
    oldest = spool.oldest()
    assert oldest is not None
    result = spool.read(oldest)
    assert result.missing and result.batches == []
    spool.delete(oldest)  # the directory is gone too: no error
    last = spool.oldest()
    assert last is not None
    assert spool.read(last).batches == [batch(3)]  # the open one was written back
    spool.delete(last)
    assert not spool.pending


def test_failed_write_leaves_no_torn_frame_and_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    spool.append(batch(0))
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        if len(data) > 8:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(OSError, match="No space left"):
        spool.append(batch(3))
    monkeypatch.setattr(os, "write", real_write)
    assert spool.refusing and spool.full()  # /readyz reports it
    spool.append(batch(6))
    assert not spool.refusing
    spool.close()
    batches, damage = read_all(new_spool(directory))
    assert batches == [batch(0), batch(6)]
    assert damage == 0  # no half frame reported as damage on replay
