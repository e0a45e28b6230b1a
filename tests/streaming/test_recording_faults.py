"""SER recordings meeting real faults: a disk that fills up (a small tmpfs mounted for the
test), a disk full or read-only from the start, a writer killed with SIGKILL, and the
recovery of what such a crash leaves. What was written before the fault must be kept in a
finished, readable file under the recording's name.

Mounting needs root (CI runs as root); without it, or where mount fails, those tests skip.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from qhy42_indi.camera.recording import (
    RecordingResult,
    SerRecording,
    recover_recordings,
    temp_path_for,
)
from qhy42_indi.camera.ser import HEADER_BYTES, SerWriter, read_ser, read_ser_header, ser_ticks
from qhy42_indi.camera.upload import UploadError
from tests.support.tmpfs import tmpfs

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, 21, 30, 15, 123456, tzinfo=UTC)
BIG_BUFFER = 64 << 20  # the buffer never skips a frame here: only the disk does


def frame_for(index: int, shape: tuple[int, int] = (256, 256)) -> NDArray[np.uint16]:
    """Frame `index` of a recording: 12-bit data in 16-bit words, different every frame."""
    rng = np.random.default_rng(index)
    return (rng.integers(0, 4096, shape) << 4).astype(np.uint16)


def start_for(index: int) -> datetime:
    return START + timedelta(milliseconds=40 * index)


def frame_bytes(shape: tuple[int, int]) -> int:
    return shape[0] * shape[1] * 2


# ---- a small disk of our own ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk") as disk:
        yield disk


def fill(path: Path) -> None:
    """Take every free block of the disk `path` is on."""
    with path.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(4096))
        except OSError as error:
            assert error.errno == errno.ENOSPC


async def record_until_the_disk_fails(
    recording: SerRecording, count: int, shape: tuple[int, int]
) -> list[NDArray[np.uint16]]:
    frames = [frame_for(index, shape) for index in range(count)]
    await recording.open()
    assert all(recording.offer(frame, start_for(i)) for i, frame in enumerate(frames))
    while recording.failure is None:  # the writer thread meets the full disk
        await asyncio.sleep(0.01)
    return frames


# ---- write errors -------------------------------------------------------------------------


async def test_a_full_disk_keeps_every_frame_written_with_their_timestamps(
    small_disk: Path,
) -> None:
    path = small_disk / "occultation.ser"
    recording = SerRecording(path, max_buffer_bytes=BIG_BUFFER)
    frames = await record_until_the_disk_fails(recording, 40, (256, 256))  # 5 MiB for 2 MiB
    # From the first failure on, no frame is taken.
    assert recording.failure is not None and "disk is full" in recording.failure
    assert not recording.offer(frames[0], START)

    result = await recording.finish()

    kept = result.frames_kept
    assert 0 < kept < 40
    assert result == RecordingResult(path, kept, 41 - kept, recording.failure)
    ser = read_ser(path)
    assert ser.header.frame_count == kept == recording.frames_written
    assert np.array_equal(ser.frames, np.stack(frames[:kept]))
    assert ser.timestamps == tuple(ser_ticks(start_for(i)) for i in range(kept))
    assert sorted(p.name for p in small_disk.iterdir()) == ["occultation.ser"]


async def test_when_not_even_the_trailer_fits_the_frames_are_kept_without_it(
    small_disk: Path,
) -> None:
    # 4 KiB frames fill the 2 MiB disk to its last block; the 511 frames' trailer (4 KiB)
    # then finds no room, whatever part of a frame is cut off again.
    shape = (32, 64)
    path = small_disk / "long.ser"
    recording = SerRecording(path, max_buffer_bytes=BIG_BUFFER)
    frames = await record_until_the_disk_fails(recording, 600, shape)
    fill(small_disk / "filler")  # nothing freed elsewhere on the disk either

    result = await recording.finish()

    kept = result.frames_kept
    assert result.path == path and kept > 500 and "disk is full" in str(result.failure)
    assert path.stat().st_size == HEADER_BYTES + kept * frame_bytes(shape)
    ser = read_ser(path)
    assert ser.header.frame_count == kept and ser.timestamps == ()
    assert np.array_equal(ser.frames, np.stack(frames[:kept]))
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "long.ser"]


async def test_a_disk_full_from_the_start_keeps_nothing_and_says_why(small_disk: Path) -> None:
    fill(small_disk / "filler")
    recording = SerRecording(small_disk / "r.ser", max_buffer_bytes=BIG_BUFFER)
    await recording.open()  # an empty file still fits
    for index in range(3):
        recording.offer(frame_for(index), start_for(index))

    result = await recording.finish()

    assert result.path is None and result.frames_kept == 0 and result.frames_skipped == 3
    assert "Cannot write the recording" in str(result.failure)
    assert "disk is full" in str(result.failure)
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


async def test_a_recording_that_cannot_be_created_fails_clearly(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        recording = SerRecording(disk / "r.ser", max_buffer_bytes=BIG_BUFFER)
        with pytest.raises(UploadError, match="read-only") as raised:
            await recording.open()
        assert recording.failure == str(raised.value)
        assert not recording.offer(frame_for(0), START)
        assert await recording.finish() == RecordingResult(None, 0, 1, str(raised.value))
        assert list(disk.iterdir()) == []


# ---- crashes and recovery -------------------------------------------------------------------

CRASHING_WRITER = """
import asyncio, sys
from pathlib import Path
from qhy42_indi.camera.recording import SerRecording
from tests.streaming.test_recording_faults import frame_for, start_for

async def main(path: str, count: int) -> None:
    recording = SerRecording(Path(path), max_buffer_bytes=1 << 26)
    await recording.open()
    for index in range(count):
        recording.offer(frame_for(index), start_for(index))
    while recording.frames_written < count:
        await asyncio.sleep(0.001)
    print(recording.frames_written, flush=True)
    await asyncio.Event().wait()  # recording on, until the power goes

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def record_and_crash(path: Path, count: int) -> None:
    """A recording in another process, killed with SIGKILL once `count` frames are written."""
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(path), str(count)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == str(count)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL


def test_a_crash_leaves_a_readable_file_that_recovery_finishes(tmp_path: Path) -> None:
    path = tmp_path / "crash.ser"
    temp = temp_path_for(path)
    record_and_crash(path, 6)

    # What a reader finds before recovery: a header counting whole frames that are there.
    assert not path.exists()
    counted = read_ser_header(temp).frame_count
    assert 0 < counted <= 6
    assert temp.stat().st_size == HEADER_BYTES + 6 * frame_bytes((256, 256))
    cut = read_ser(temp)
    assert np.array_equal(cut.frames, np.stack([frame_for(i) for i in range(counted)]))

    (result,) = recover_recordings(tmp_path)

    assert (result.path, result.frames_kept, result.frames_skipped) == (path, 6, 0)
    assert "interrupted" in str(result.failure)
    ser = read_ser(path)
    assert ser.header.frame_count == 6 and ser.timestamps == ()
    assert np.array_equal(ser.frames, np.stack([frame_for(i) for i in range(6)]))
    assert [p.name for p in tmp_path.iterdir()] == ["crash.ser"]
    assert recover_recordings(tmp_path) == []


def test_the_recover_command_finishes_what_a_crash_left(tmp_path: Path) -> None:
    path = tmp_path / "night.ser"
    record_and_crash(path, 4)
    done = subprocess.run([sys.executable, "-m", "qhy42_indi.cli", "recover", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{path}: 4 frames" in done.stdout
    assert read_ser(path).header.frame_count == 4
    again = subprocess.run([sys.executable, "-m", "qhy42_indi.cli", "recover", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "no interrupted recording" in again.stdout


async def test_the_header_on_disk_counts_the_frames_as_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "r.ser"
    recording = SerRecording(path, max_buffer_bytes=BIG_BUFFER, checkpoint_interval_s=0)
    await recording.open()
    for index in range(3):
        recording.offer(frame_for(index), start_for(index))
    while recording.frames_written < 3:
        await asyncio.sleep(0.01)
    assert read_ser_header(temp_path_for(path)).frame_count == 3
    assert (await recording.finish()).frames_kept == 3


def write_cut_off_temp(path: Path, frames: int) -> None:
    """A temporary file as a crash in the middle of frame `frames` + 1 leaves it."""
    with temp_path_for(path).open("wb") as file:
        writer = SerWriter(file, 256, 256, 16, started=START)
        for index in range(frames):
            writer.write_frame(frame_for(index), start_for(index))
            if index == 0:
                writer.write_header()
        file.write(frame_for(frames).tobytes()[:1000])


async def test_the_next_recording_finishes_an_interrupted_one_without_replacing_a_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jupiter.ser"
    path.write_bytes(b"an earlier recording")
    write_cut_off_temp(path, 4)

    # The same name again: the interrupted file goes beside both, and nothing is replaced.
    recording = SerRecording(path, max_buffer_bytes=BIG_BUFFER)
    await recording.open()
    recovered = tmp_path / "jupiter-recovered.ser"
    assert [(r.path, r.frames_kept) for r in recording.recovered] == [(recovered, 4)]
    assert np.array_equal(read_ser(recovered).frames, np.stack([frame_for(i) for i in range(4)]))
    assert recovered.stat().st_size == HEADER_BYTES + 4 * frame_bytes((256, 256))

    recording.offer(frame_for(9), START)
    assert (await recording.finish()).frames_kept == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jupiter-recovered.ser", "jupiter.ser"]


async def test_recovery_leaves_a_recording_that_is_being_written_alone(tmp_path: Path) -> None:
    first = SerRecording(tmp_path / "a.ser", max_buffer_bytes=BIG_BUFFER)
    await first.open()
    first.offer(frame_for(0), START)
    try:
        second = SerRecording(tmp_path / "b.ser", max_buffer_bytes=BIG_BUFFER)
        await second.open()
        assert second.recovered == ()
        assert recover_recordings(tmp_path) == []
        assert temp_path_for(tmp_path / "a.ser").exists()
        # Nor does a second recording of the same name overwrite it.
        with pytest.raises(UploadError, match="exists already"):
            await SerRecording(tmp_path / "a.ser", max_buffer_bytes=BIG_BUFFER).open()
        await second.abort()
    finally:
        result = await first.finish()
    assert result == RecordingResult(tmp_path / "a.ser", 1, 0, None)


def test_recovery_of_a_directory_with_nothing_to_recover(tmp_path: Path) -> None:
    assert recover_recordings(tmp_path) == []
    assert recover_recordings(tmp_path / "missing") == []
    # A crash before the first frame leaves a file with no frame: removed, and said so.
    temp_path_for(tmp_path / "x.ser").write_bytes(b"")
    (result,) = recover_recordings(tmp_path)
    assert result.path is None and result.frames_kept == 0
    assert "holds no frame" in str(result.failure)
    assert list(tmp_path.iterdir()) == []
