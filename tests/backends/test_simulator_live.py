"""Live video and burst through the CameraBackend interface of the simulator: the read modes'
frame rates (counted in camera time, not timed), the frame head, burst numbering, IDLE, the
frame counter, OSD, and what live mode locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from qhy42_indi.backends.base import (
    CameraBusy,
    InvalidSetting,
    LiveFrame,
    NotLive,
    Roi,
    frame_head_counter,
)
from qhy42_indi.backends.live import OSD_ROWS
from qhy42_indi.backends.scenes import FlatScene
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions

SHORT_S = 0.001
WAIT_S = 10.0  # bound on any single wait


@pytest.fixture
async def camera() -> AsyncIterator[SimulatorBackend]:
    async with SimulatorBackend(SimulatorOptions(time_scale=5.0, seed=3)) as backend:
        await backend.set_read_mode(1)
        yield backend


async def read(camera: SimulatorBackend) -> LiveFrame:
    return await asyncio.wait_for(camera.read_live_frame(), WAIT_S)


async def counted_rate(camera: SimulatorBackend, camera_s: float) -> float:
    """Frames the camera numbered per second of camera time, between two frames we read."""
    await read(camera)  # the first frame includes the renderer's start-up
    first = await read(camera)
    began_s = camera.model_time_s()
    last = first
    while camera.model_time_s() - began_s < camera_s:
        last = await read(camera)
    return (last.counter - first.counter) / (camera.model_time_s() - began_s)


@pytest.mark.parametrize(
    ("mode", "speed", "bits", "frames_per_s"),
    [(1, 1, 16, 24.0), (1, 2, 8, 48.0), (0, 1, 16, 12.0)],
    ids=["STD 16-bit", "STD 8-bit", "HDR"],
)
async def test_full_frames_come_at_the_read_modes_rate(
    camera: SimulatorBackend, mode: int, speed: int, bits: int, frames_per_s: float
) -> None:
    await camera.set_read_mode(mode)
    await camera.set_speed(speed)
    await camera.set_bit_depth(bits)
    start = await camera.begin_live(SHORT_S)

    assert start.frames_per_s == pytest.approx(frames_per_s, rel=0.01)
    assert await counted_rate(camera, 3.0) == pytest.approx(frames_per_s, rel=0.15)
    frame = (await read(camera)).frame
    assert (frame.height, frame.width, frame.bit_depth) == (2048, 2048 * (2 - mode), bits)


async def test_a_smaller_roi_streams_faster_and_a_long_exposure_slower(
    camera: SimulatorBackend,
) -> None:
    await camera.set_roi(Roi(0, 0, 2048, 512))
    assert (await camera.begin_live(SHORT_S)).frames_per_s == pytest.approx(96, rel=0.02)
    assert (await camera.set_live_exposure(0.1)).frames_per_s == pytest.approx(10, rel=0.01)


async def test_every_frame_carries_its_number_in_the_frame_head(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 256, 256))
    await camera.begin_live(0.25)  # 4 frames/s, 20 at 5x: a reader keeps up
    frames = [await read(camera) for _ in range(5)]

    counters = [f.counter for f in frames]
    assert counters == list(range(counters[0], counters[0] + 5))
    assert all(frame_head_counter(f.frame.pixels) == f.counter for f in frames)
    assert not any(f.burst for f in frames)


async def test_the_camera_does_not_wait_for_a_slow_reader(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 256, 256))
    start = await camera.begin_live(0.02)
    first = await read(camera)
    await asyncio.sleep(2.0 / camera.options.time_scale)  # 2 s of camera time unread
    later = await read(camera)
    assert later.counter - first.counter >= 0.8 * 2.0 * start.frames_per_s


async def test_reset_frame_counter_restarts_numbering(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 256, 256))
    await camera.begin_live(0.25)
    for _ in range(3):
        await read(camera)
    await camera.reset_frame_counter()
    counters = [(await read(camera)).counter for _ in range(8)]
    # frames already read out keep their numbers; then numbering starts again at 1
    restart = counters.index(1)
    assert counters[restart:] == list(range(1, len(counters) - restart + 1))


async def test_burst_1_6_outputs_frames_2_to_5_once_then_nothing(
    camera: SimulatorBackend,
) -> None:
    await camera.set_roi(Roi(0, 0, 256, 256))
    await camera.begin_live(0.02)
    await camera.burst_idle()
    await camera.enable_burst(True)
    await camera.set_burst_range(1, 6)

    assert await camera.capture_burst() == range(2, 6)
    frames = [await read(camera) for _ in range(4)]
    assert [(f.counter, f.burst) for f in frames] == [(n, True) for n in (2, 3, 4, 5)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(camera.read_live_frame(), 0.5)

    assert await camera.capture_burst() == range(2, 6)  # a second burst after release
    assert [(await read(camera)).counter for _ in range(4)] == [2, 3, 4, 5]


async def test_idle_stops_output_until_release(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 256, 256))
    await camera.begin_live(0.02)
    await read(camera)
    await camera.burst_idle()
    while (await camera.live_state()).idle:
        try:
            await asyncio.wait_for(camera.read_live_frame(), 0.5)
        except TimeoutError:
            break  # the frames read out before IDLE are drained; nothing more comes
    else:
        pytest.fail("IDLE did not hold")
    await camera.burst_release()
    assert (await read(camera)).counter == 1


async def test_the_osd_marks_the_top_rows_when_on(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 512, 512))
    await camera.begin_live(0.05)
    plain = (await read(camera)).frame.pixels
    await camera.set_image_osd(True)
    marked = (await read(camera)).frame.pixels
    for _ in range(3):  # frames already read out before the switch
        if marked[:OSD_ROWS].max() == 65535:
            break
        marked = (await read(camera)).frame.pixels
    assert marked[:OSD_ROWS].max() == 65535 and np.median(marked[:OSD_ROWS]) == 0
    assert plain[:OSD_ROWS].max() < 65535
    assert np.median(marked[OSD_ROWS:]) == pytest.approx(np.median(plain[OSD_ROWS:]), rel=0.05)


async def test_anti_rbi_alternates_flush_and_normal_frames(camera: SimulatorBackend) -> None:
    camera.set_scene(FlatScene(level_e_per_s=200_000.0))
    await camera.set_roi(Roi(0, 0, 256, 256))
    await camera.set_live_anti_rbi(True)
    await camera.begin_live(0.05)
    frames = [await read(camera) for _ in range(4)]
    levels = {f.counter % 2: float(np.median(f.frame.pixels)) for f in frames}
    assert levels[1] > 2 * levels[0]  # odd frames exposed, even frames flushed


async def test_live_mode_locks_geometry_and_single_exposures(camera: SimulatorBackend) -> None:
    await camera.begin_live(SHORT_S)
    for call in (camera.set_roi(Roi(0, 0, 512, 512)), camera.set_binning(2, 2),
                 camera.set_bit_depth(8), camera.set_read_mode(0), camera.start_exposure(1.0),
                 camera.begin_live(SHORT_S)):
        with pytest.raises(CameraBusy):
            await call
    assert (await camera.set_gain(20)).gain == 20  # applies from the next frame
    await camera.stop_live()
    assert (await camera.set_binning(2, 2)).bin_x == 2


async def test_stop_live_ends_a_waiting_read(camera: SimulatorBackend) -> None:
    await camera.begin_live(1.0)
    await camera.burst_idle()
    waiting = asyncio.create_task(camera.read_live_frame())
    await asyncio.sleep(0.05)
    await camera.stop_live()
    with pytest.raises(NotLive):
        await asyncio.wait_for(waiting, WAIT_S)


async def test_burst_calls_need_live_mode_and_valid_numbers(camera: SimulatorBackend) -> None:
    for call in (camera.enable_burst(True), camera.burst_idle(), camera.burst_release(),
                 camera.capture_burst(), camera.reset_frame_counter(), camera.read_live_frame()):
        with pytest.raises(NotLive):
            await call
    for start, end in ((6, 1), (3, 3), (-1, 4), (0, 70_000)):
        with pytest.raises(InvalidSetting):
            await camera.set_burst_range(start, end)
    await camera.begin_live(SHORT_S)
    with pytest.raises(CameraBusy):
        await camera.capture_burst()  # burst mode is off
