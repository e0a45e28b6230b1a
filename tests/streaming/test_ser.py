"""SER files as written by ser.py and recording.py: the 178-byte header, frames, trailer,
timestamps, the endianness convention, repairing a cut-off file, atomic files and libindi's
name patterns. (Real write faults and crashes: test_recording_faults.py.)"""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from qhy42_indi.camera.recording import RecordingResult, SerRecording, expand_record_path
from qhy42_indi.camera.ser import (
    HEADER_BYTES,
    SerHeader,
    SerWriter,
    read_ser,
    read_ser_header,
    repair_ser,
    ser_ticks,
)
from qhy42_indi.camera.upload import UploadError

START = datetime(2026, 3, 1, 21, 30, 15, 123456, tzinfo=UTC)


def frames16(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [(rng.integers(0, 4096, (6, 10)) << 4).astype(np.uint16) for _ in range(count)]


def test_ticks_count_100ns_since_year_one() -> None:
    assert ser_ticks(datetime(1, 1, 1, tzinfo=UTC)) == 0
    assert ser_ticks(datetime(1, 1, 2, tzinfo=UTC)) == 864_000_000_000
    # the value .NET gives for 2000-01-01T00:00:00Z
    assert ser_ticks(datetime(2000, 1, 1, tzinfo=UTC)) == 630_822_816_000_000_000
    assert ser_ticks(START + timedelta(microseconds=1)) - ser_ticks(START) == 10


def test_header_frames_and_trailer_are_laid_out_as_the_format_says() -> None:
    out = io.BytesIO()
    writer = SerWriter(out, 10, 6, 16, started=START, instrument="QHY CCD X", telescope="Scope")
    frames = frames16(3)
    for index, frame in enumerate(frames):
        writer.write_frame(frame, START + timedelta(seconds=index / 24))
    writer.finish()
    data = out.getvalue()

    assert len(data) == HEADER_BYTES + 3 * 6 * 10 * 2 + 3 * 8
    assert data[:14] == b"LUCAM-RECORDER"
    lu_id, color, endian, width, height, depth, count = struct.unpack_from("<7i", data, 14)
    assert (lu_id, color, endian, width, height, depth, count) == (0, 0, 0, 10, 6, 16, 3)
    assert data[42 + 40:42 + 80].rstrip(b"\0") == b"QHY CCD X"
    assert struct.unpack_from("<q", data, 170)[0] == ser_ticks(START)
    # 16-bit pixels little-endian (LittleEndian = 0: the convention readers follow)
    assert np.array_equal(np.frombuffer(data, "<u2", 60, HEADER_BYTES).reshape(6, 10), frames[0])
    trailer = np.frombuffer(data, "<u8", 3, HEADER_BYTES + 360)
    assert trailer[1] - trailer[0] == 416_670  # 1/24 s, to the microsecond


def test_read_ser_gives_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "a.ser"
    frames = frames16(4)
    with path.open("wb") as file:
        writer = SerWriter(file, 10, 6, 16, started=START)
        for frame in frames:
            writer.write_frame(frame, START)
        writer.finish()
    ser = read_ser(path)
    assert ser.header == SerHeader.unpack(path.read_bytes())
    assert ser.header.frame_count == 4 and ser.frames.dtype == np.uint16
    assert np.array_equal(ser.frames, np.stack(frames))
    assert ser.timestamp(3) == START


def test_a_frame_of_another_shape_is_refused() -> None:
    writer = SerWriter(io.BytesIO(), 10, 6, 8, started=START)
    with pytest.raises(ValueError, match="does not match"):
        writer.write_frame(np.zeros((6, 11), np.uint8), START)


def written(count: int, *, trailer: bool = True) -> bytes:
    out = io.BytesIO()
    writer = SerWriter(out, 10, 6, 16, started=START)
    for index, frame in enumerate(frames16(count)):
        writer.write_frame(frame, START + timedelta(seconds=index))
    writer.finish(trailer=trailer)
    return out.getvalue()


def test_the_header_count_is_brought_up_to_date_in_place() -> None:
    out = io.BytesIO()
    writer = SerWriter(out, 10, 6, 16, started=START)
    frames = frames16(3)
    writer.write_frame(frames[0], START)
    writer.write_frame(frames[1], START)
    assert SerHeader.unpack(out.getvalue()).frame_count == 0
    writer.write_header()
    assert SerHeader.unpack(out.getvalue()).frame_count == 2
    writer.write_frame(frames[2], START)  # appended after the others, not over the header
    writer.finish()
    data = out.getvalue()
    assert len(data) == HEADER_BYTES + 3 * 120 + 3 * 8
    assert SerHeader.unpack(data).frame_count == 3
    pixels = np.frombuffer(data, "<u2", 3 * 60, HEADER_BYTES).reshape(3, 6, 10)
    assert np.array_equal(pixels, np.stack(frames))


def test_a_file_without_trailer_reads_with_its_frames_and_no_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "a.ser"
    path.write_bytes(written(3, trailer=False))
    ser = read_ser(path)
    assert ser.header.frame_count == 3 and ser.timestamps == ()
    assert np.array_equal(ser.frames, np.stack(frames16(3)))


def test_repair_counts_whole_frames_and_cuts_off_a_partial_one(tmp_path: Path) -> None:
    path = tmp_path / "cut.ser"
    data = written(4)
    # as a crash leaves it: the header counting 1, 3 frames and half of the fourth
    header = replace(SerHeader.unpack(data), frame_count=1)
    path.write_bytes(header.pack() + data[HEADER_BYTES:HEADER_BYTES + 3 * 120 + 60])
    assert read_ser_header(path).frame_count == 1
    assert read_ser(path).timestamps == ()  # what follows is no trailer
    with path.open("r+b") as file:
        header, complete = repair_ser(file)
    assert (header.frame_count, complete) == (3, False)
    assert path.stat().st_size == HEADER_BYTES + 3 * 120
    assert np.array_equal(read_ser(path).frames, np.stack(frames16(4)[:3]))


def test_repair_leaves_a_complete_file_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "whole.ser"
    path.write_bytes(written(4))
    with path.open("r+b") as file:
        header, complete = repair_ser(file)
    assert (header.frame_count, complete) == (4, True)
    assert path.read_bytes() == written(4)
    path.write_bytes(b"GIF89a" + bytes(200))
    with path.open("r+b") as file, pytest.raises(ValueError, match="not a SER file"):
        repair_ser(file)


def test_record_names_expand_libindi_patterns(tmp_path: Path) -> None:
    now = datetime(2026, 3, 1, 21, 30, 15, tzinfo=UTC)
    path = expand_record_path(f"{tmp_path}/indi__D_", "jupiter__T_", now)
    assert path == tmp_path / "indi_2026-03-01" / "jupiter_2026-03-01@21-30-15.ser"
    assert expand_record_path("_HOME_/v", "x_H_.ser", now) == Path.home() / "v" / "x21-30-15.ser"
    with pytest.raises(UploadError):
        expand_record_path(str(tmp_path), "a/b", now)


async def test_a_recording_appears_only_when_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rec.ser"
    recording = SerRecording(path, max_buffer_bytes=1 << 20)
    await recording.open()
    for frame in frames16(5):
        assert recording.offer(frame, START)
    assert not path.exists()
    assert await recording.finish() == RecordingResult(path, 5, 0, None)
    assert read_ser(path).header.frame_count == 5
    assert [p.name for p in path.parent.iterdir()] == ["rec.ser"]


async def test_a_full_buffer_skips_frames_instead_of_growing(tmp_path: Path) -> None:
    recording = SerRecording(tmp_path / "r.ser", max_buffer_bytes=250)
    await recording.open()
    accepted = [recording.offer(frame, START) for frame in frames16(5)]  # 120 bytes each
    assert accepted == [True, True, False, False, False]
    assert await recording.finish() == RecordingResult(tmp_path / "r.ser", 2, 3, None)
    assert recording.frames_skipped == 3 and read_ser(tmp_path / "r.ser").header.frame_count == 2


async def test_a_recording_without_frames_is_an_empty_ser_file(tmp_path: Path) -> None:
    recording = SerRecording(tmp_path / "e.ser", max_buffer_bytes=1 << 20)
    await recording.open()
    assert await recording.finish() == RecordingResult(tmp_path / "e.ser", 0, 0, None)
    assert read_ser(tmp_path / "e.ser").header.frame_count == 0


async def test_a_recording_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UploadError, match=r"not a directory|a file"):
        await SerRecording(blocker / "r.ser", max_buffer_bytes=1 << 20).open()


def test_the_record_name_takes_the_snooped_filter_for_f() -> None:
    now = datetime(2026, 12, 1, 21, 0, 5, tzinfo=UTC)
    path = expand_record_path("/data/_D_", "jupiter__F___H_", now, filter_name="R/IR cut")
    assert path == Path("/data/2026-12-01/jupiter_R-IR cut_21-00-05.ser")
    assert expand_record_path("/data", "x__F_", now).name == "x_.ser"  # no wheel: empty
