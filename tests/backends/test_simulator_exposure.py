"""Single exposures through the backend: rolling-shutter timing, start time, abort, busy rules.

The simulator runs 1000x faster than real time here; assertions are on values, and the only
time comparison is a lower bound (a frame never arrives before its exposure has ended).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest

from qhy42_indi.backends.base import (
    CameraBusy,
    ExposureAborted,
    InvalidSetting,
    NoExposure,
    Roi,
)
from qhy42_indi.backends.scenes import DarkScene
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions

TIME_SCALE = 1000.0
STD_HG = 1


@pytest.fixture
async def camera() -> AsyncIterator[SimulatorBackend]:
    options = SimulatorOptions(time_scale=TIME_SCALE, seed=3, read_mode=STD_HG)
    async with SimulatorBackend(options) as backend:
        await backend.set_roi(Roi(0, 0, 256, 256))  # small frames keep the suite quick
        yield backend


@pytest.mark.parametrize("requested_s", [20e-6, 0.0123, 1.0, 299.99999])
async def test_exposure_is_a_whole_number_of_line_periods(
    camera: SimulatorBackend, requested_s: float
) -> None:
    start = await camera.start_exposure(requested_s)
    await camera.abort_exposure()
    line_period_s = start.line_period_us * 1e-6

    assert start.line_count >= 1
    assert start.exposure_s == pytest.approx(start.line_count * line_period_s, rel=1e-12)
    assert abs(start.exposure_s - requested_s) <= line_period_s / 2 + 1e-12
    assert start.requested_exposure_s == requested_s


async def test_line_period_is_set_by_speed(camera: SimulatorBackend) -> None:
    periods = []
    for speed in (0, 1, 2):
        settings = await camera.set_speed(speed)
        start = await camera.start_exposure(0.01)
        await camera.abort_exposure()
        assert start.line_period_us == settings.line_period_us
        periods.append(settings.line_period_us)

    assert periods[0] > periods[1] > periods[2]
    assert periods[1] == pytest.approx(1e6 / 24 / 2048, rel=0.01)  # 24 fps over 2048 rows


async def test_full_frame_readout_takes_the_camera_frame_time(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(0, 0, 2048, 2048))
    std_16 = await camera.start_exposure(0.001)
    await camera.abort_exposure()
    await camera.set_bit_depth(8)
    await camera.set_speed(2)
    std_8 = await camera.start_exposure(0.001)
    await camera.abort_exposure()

    assert 1.0 / std_16.readout_s == pytest.approx(24.0, rel=0.02)  # datasheet: 24 fps 12-bit
    assert 1.0 / std_8.readout_s == pytest.approx(48.0, rel=0.02)  # 48 fps 8-bit


async def test_frame_reports_the_start_time_and_actual_exposure(camera: SimulatorBackend) -> None:
    before = datetime.now(UTC)
    start = await camera.start_exposure(0.5)
    after = datetime.now(UTC)
    frame = await camera.read_frame()

    assert start.start_utc.tzinfo is UTC
    assert before <= start.start_utc <= after
    assert frame.start_utc == start.start_utc
    assert frame.exposure_s == start.exposure_s
    assert frame.sequence == start.sequence


async def test_a_frame_never_arrives_before_its_exposure_ends(camera: SimulatorBackend) -> None:
    started = time.monotonic()
    start = await camera.start_exposure(2.0)
    await camera.read_frame()
    elapsed_model_s = (time.monotonic() - started) * TIME_SCALE

    assert elapsed_model_s >= start.exposure_s + start.readout_s


async def test_sequence_numbers_count_exposures(camera: SimulatorBackend) -> None:
    sequences = []
    for _ in range(3):
        await camera.start_exposure(0.001)
        sequences.append((await camera.read_frame()).sequence)

    assert sequences == [sequences[0], sequences[0] + 1, sequences[0] + 2]


async def test_abort_before_reading_makes_read_frame_raise(camera: SimulatorBackend) -> None:
    await camera.start_exposure(10.0)
    await camera.abort_exposure()

    with pytest.raises(ExposureAborted):
        await camera.read_frame()
    with pytest.raises(NoExposure):  # the aborted exposure is gone
        await camera.read_frame()


async def test_abort_while_waiting_ends_the_wait_with_exposure_aborted(
    camera: SimulatorBackend,
) -> None:
    await camera.start_exposure(300.0)  # 0.3 s of wall time at this time scale
    reader = asyncio.create_task(camera.read_frame())
    await asyncio.sleep(0.01)
    await camera.abort_exposure()

    with pytest.raises(ExposureAborted):
        await reader


async def test_a_new_exposure_may_start_after_an_abort(camera: SimulatorBackend) -> None:
    await camera.start_exposure(10.0)
    await camera.abort_exposure()
    start = await camera.start_exposure(0.001)
    frame = await camera.read_frame()

    assert frame.sequence == start.sequence


async def test_read_frame_without_exposure_raises_no_exposure(camera: SimulatorBackend) -> None:
    with pytest.raises(NoExposure):
        await camera.read_frame()


async def test_abort_without_exposure_is_a_no_op(camera: SimulatorBackend) -> None:
    await camera.abort_exposure()
    await camera.start_exposure(0.001)

    assert (await camera.read_frame()).pixels.size > 0


async def test_a_second_exposure_while_one_is_pending_is_refused(camera: SimulatorBackend) -> None:
    await camera.start_exposure(10.0)

    with pytest.raises(CameraBusy):
        await camera.start_exposure(1.0)


async def test_a_second_reader_is_refused(camera: SimulatorBackend) -> None:
    await camera.start_exposure(100.0)
    first = asyncio.create_task(camera.read_frame())
    await asyncio.sleep(0.001)

    with pytest.raises(CameraBusy):
        await camera.read_frame()
    assert (await first).pixels.size > 0


async def test_geometry_is_locked_while_an_exposure_is_pending(camera: SimulatorBackend) -> None:
    await camera.start_exposure(10.0)

    for change in (
        camera.set_roi(Roi(0, 0, 128, 128)),
        camera.set_binning(2, 2),
        camera.set_bit_depth(8),
        camera.set_read_mode(0),
    ):
        with pytest.raises(CameraBusy):
            await change


async def test_gain_set_during_an_exposure_applies_to_the_next_one(
    camera: SimulatorBackend,
) -> None:
    await camera.set_gain(10)
    await camera.start_exposure(0.001)
    await camera.set_gain(50)
    during = await camera.read_frame()
    await camera.start_exposure(0.001)
    after = await camera.read_frame()

    assert (during.gain, after.gain) == (10, 50)


@pytest.mark.parametrize("exposure_s", [0.0, 10e-6, 300.5, -1.0])
async def test_exposure_outside_20_us_to_300_s_is_refused(
    camera: SimulatorBackend, exposure_s: float
) -> None:
    with pytest.raises(InvalidSetting):
        await camera.start_exposure(exposure_s)


async def test_the_same_seed_gives_the_same_frames() -> None:
    frames = []
    for _ in range(2):
        options = SimulatorOptions(time_scale=TIME_SCALE, seed=11, read_mode=STD_HG)
        async with SimulatorBackend(options) as camera:
            await camera.start_exposure(0.01)
            await camera.read_frame()
            await camera.start_exposure(0.01)
            frames.append((await camera.read_frame()).pixels)

    assert np.array_equal(frames[0], frames[1])


async def test_successive_frames_have_fresh_noise(camera: SimulatorBackend) -> None:
    camera.set_scene(DarkScene())
    pixels = []
    for _ in range(2):
        await camera.start_exposure(0.001)
        pixels.append((await camera.read_frame()).pixels.astype(np.int32))

    assert np.count_nonzero(pixels[0] != pixels[1]) > 0.5 * pixels[0].size
