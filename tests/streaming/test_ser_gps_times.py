"""A SER recording in GPS-BOX mode: its trailer holds, for every frame, the start time from
the GPS head in that frame's row 0, not the host's clock. Read back with the project's
reader and with a second, independent one written here from the format's description.

The second reader is serfilesreader (PyPI), someone else's SER code; it imports OpenCV for
PNG export only, so the test gives it an empty stand-in for that module.

The simulated GPS-BOX writes the simulated world's UTC, which runs `time_scale` times as fast
as the host clock: a trailer taken from the host clock would be far from the heads' times."""

from __future__ import annotations

import asyncio
import importlib
import sys
import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from qhy42_indi.backends.gps_header import read_frame_head
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.ser import read_ser
from qhy42_indi.indi.messages import IndiMessage, SetVector
from tests.support.in_process import connected_camera, numbers, switch, texts

NAME = "GPS Cam"
FRAMES = 8
EPOCH = datetime(1, 1, 1, tzinfo=UTC)


@pytest.fixture
async def camera() -> AsyncIterator[tuple[Qhy42Device, list[IndiMessage]]]:
    async with connected_camera(NAME, seed=5) as connected:
        yield connected


def independent_trailer(path: Path) -> tuple[int, list[datetime], list[np.ndarray]]:
    """Frame count, per-frame UTC times and frames of a SER file, as serfilesreader reads
    them (the trailer: one 64-bit count of 100 ns ticks since 0001-01-01 per frame)."""
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))  # used only for PNG export
    reader = importlib.import_module("serfilesreader").Serfile(str(path))
    count = reader.getLength()
    ticks = [int(reader.dateFrameAtPos(n)) for n in range(count)]
    frames = [np.asarray(reader.readFrameAtPos(n)) for n in range(count)]
    return count, [EPOCH + timedelta(microseconds=t // 10) for t in ticks], frames


async def test_a_gps_box_recording_has_the_gps_start_times_in_its_trailer(
    camera: tuple[Qhy42Device, list[IndiMessage]], tmp_path: Path,
) -> None:
    device, published = camera
    for message in (
        switch(NAME, "GPIO_MODE", "GPIO_GPS_BOX"),
        numbers(NAME, "CCD_FRAME", X=0, Y=0, WIDTH=128, HEIGHT=64),
        numbers(NAME, "STREAMING_EXPOSURE", STREAMING_EXPOSURE_VALUE=0.01),
        texts(NAME, "RECORD_FILE", RECORD_FILE_DIR=str(tmp_path), RECORD_FILE_NAME="gps"),
        numbers(NAME, "RECORD_OPTIONS", RECORD_DURATION=1, RECORD_FRAME_TOTAL=FRAMES),
    ):
        await device.handle_new(message)
    await asyncio.sleep(0.5)  # the GPS-BOX locks after 5 s of camera time (0.25 s here)
    await device.handle_new(switch(NAME, "RECORD_STREAM", "RECORD_FRAME_ON"))
    async with asyncio.timeout(30):
        while not (tmp_path / "gps.ser").exists():
            await asyncio.sleep(0.02)

    ser = read_ser(tmp_path / "gps.ser")
    count, times, frames = independent_trailer(tmp_path / "gps.ser")
    assert count == len(ser.frames) == FRAMES
    for index, pixels in enumerate(ser.frames):
        assert np.array_equal(frames[index], pixels)
        head = read_frame_head(np.ascontiguousarray(pixels))
        assert head is not None and head.time_valid, index
        assert abs(ser.timestamp(index) - head.start.utc) < timedelta(microseconds=1)
        assert abs(times[index] - head.start.utc) < timedelta(microseconds=1)
    host_now = datetime.now(UTC)
    assert abs(times[-1] - host_now) > timedelta(seconds=5)  # not the host clock
    timing = [m for m in published if isinstance(m, SetVector) and m.name == "EXPOSURE_TIMING"]
    assert timing and any("GPS" in str(e.value) for m in timing for e in m.elements
                          if e.name == "TIME_SOURCE")
