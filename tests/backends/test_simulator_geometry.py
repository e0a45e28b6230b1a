"""Frame geometry through the backend: read modes, ROI, binning, bit depth, channel layout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from qhy42_indi.backends.base import Channel, ChannelSpan, Frame, InvalidSetting, Roi
from qhy42_indi.backends.scenes import StarFieldScene, star_rates
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions

HDR, STD_HG, STD_LG = 0, 1, 2


@pytest.fixture
async def camera() -> AsyncIterator[SimulatorBackend]:
    async with SimulatorBackend(SimulatorOptions(time_scale=1000.0, seed=5)) as backend:
        yield backend


async def take(camera: SimulatorBackend, exposure_s: float = 0.01) -> Frame:
    await camera.start_exposure(exposure_s)
    return await camera.read_frame()


async def test_read_modes_follow_the_sdk_order_hdr_first(camera: SimulatorBackend) -> None:
    modes = await camera.read_modes()

    assert [(m.index, m.name, m.width, m.height) for m in modes] == [
        (0, "HDR", 4096, 2048),
        (1, "STD High Gain", 2048, 2048),
        (2, "STD Low Gain", 2048, 2048),
    ]
    assert modes[HDR].channels == (Channel.LOW_GAIN, Channel.HIGH_GAIN)
    assert modes[STD_HG].channels == (Channel.HIGH_GAIN,)
    assert modes[STD_LG].channels == (Channel.LOW_GAIN,)


async def test_frames_are_c_contiguous_native_uint16_of_the_mode_size(
    camera: SimulatorBackend,
) -> None:
    hdr = await take(camera)
    await camera.set_read_mode(STD_HG)
    std = await take(camera)

    assert hdr.pixels.shape == (2048, 4096)
    assert std.pixels.shape == (2048, 2048)
    for frame in (hdr, std):
        assert frame.pixels.dtype == np.dtype(np.uint16)
        assert frame.pixels.dtype.isnative
        assert frame.pixels.flags.c_contiguous
        assert frame.pixels.flags.writeable


async def test_hdr_frame_has_low_gain_left_and_high_gain_right(camera: SimulatorBackend) -> None:
    frame = await take(camera)

    assert frame.channels == (
        ChannelSpan(Channel.LOW_GAIN, 0, 2048),
        ChannelSpan(Channel.HIGH_GAIN, 2048, 2048),
    )


async def test_hdr_roi_across_the_middle_shows_both_channels(camera: SimulatorBackend) -> None:
    await camera.set_roi(Roi(1948, 1000, 200, 100))
    frame = await take(camera)

    assert frame.pixels.shape == (100, 200)
    assert frame.channels == (
        ChannelSpan(Channel.LOW_GAIN, 0, 100),
        ChannelSpan(Channel.HIGH_GAIN, 100, 100),
    )


async def test_roi_and_binning_set_the_frame_shape(camera: SimulatorBackend) -> None:
    await camera.set_read_mode(STD_HG)
    await camera.set_roi(Roi(100, 200, 300, 160))
    await camera.set_binning(2, 2)
    binned = await take(camera)
    await camera.set_binning(1, 4)
    asymmetric = await take(camera)

    assert binned.pixels.shape == (80, 150)
    assert (binned.bin_x, binned.bin_y, binned.roi) == (2, 2, Roi(100, 200, 300, 160))
    assert asymmetric.pixels.shape == (40, 300)


async def test_roi_is_aligned_down_to_the_binning(camera: SimulatorBackend) -> None:
    await camera.set_read_mode(STD_HG)
    await camera.set_binning(4, 4)
    settings = await camera.set_roi(Roi(101, 203, 302, 161))
    frame = await take(camera)

    assert settings.roi == Roi(100, 200, 300, 160)
    assert frame.pixels.shape == (40, 75)
    # back at bin 1 the requested ROI applies again, not the aligned one
    assert (await camera.set_binning(1, 1)).roi == Roi(101, 203, 302, 161)


async def test_a_roi_leaving_the_frame_is_refused(camera: SimulatorBackend) -> None:
    await camera.set_read_mode(STD_HG)
    before = await camera.settings()

    with pytest.raises(InvalidSetting):
        await camera.set_roi(Roi(2000, 0, 100, 100))
    with pytest.raises(InvalidSetting):
        await camera.set_roi(Roi(0, 0, 0, 10))
    assert await camera.settings() == before


async def test_read_mode_change_resets_the_roi_to_the_new_full_frame(
    camera: SimulatorBackend,
) -> None:
    await camera.set_roi(Roi(0, 0, 4096, 100))
    settings = await camera.set_read_mode(STD_LG)

    assert settings.roi == Roi(0, 0, 2048, 2048)


async def test_8_bit_frames_are_uint8(camera: SimulatorBackend) -> None:
    await camera.set_read_mode(STD_HG)
    await camera.set_bit_depth(8)
    frame = await take(camera)

    assert frame.pixels.dtype == np.dtype(np.uint8)
    assert frame.bit_depth == 8
    with pytest.raises(InvalidSetting):
        await camera.set_bit_depth(12)


async def test_a_star_appears_at_its_sensor_position_within_roi_and_bins() -> None:
    scene = StarFieldScene(star_count=1, magnitude_span=0.0, sky_e_per_s=10.0)
    options = SimulatorOptions(time_scale=1000.0, seed=1, read_mode=STD_HG, scene=scene)
    async with SimulatorBackend(options) as camera:
        rates = star_rates(scene, (await camera.sensor_info()).camera_id)
        flat_light = np.zeros(2048 * 2048)
        flat_light[rates.flat_index] = rates.e_per_s
        light = flat_light.reshape(2048, 2048)
        star_row, star_column = np.unravel_index(np.argmax(light), light.shape)
        roi = Roi(
            int(np.clip(star_column - 40, 0, 1948)) // 2 * 2,
            int(np.clip(star_row - 30, 0, 1968)) // 2 * 2,
            100,
            80,
        )
        await camera.set_roi(roi)
        unbinned = await take(camera)
        await camera.set_binning(2, 2)
        binned = await take(camera)

    window = light[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width]
    binned_light = window.reshape(40, 2, 50, 2).sum(axis=(1, 3))
    assert np.unravel_index(np.argmax(unbinned.pixels), unbinned.pixels.shape) == (
        star_row - roi.y,
        star_column - roi.x,
    )
    assert np.unravel_index(np.argmax(binned.pixels), binned.pixels.shape) == np.unravel_index(
        np.argmax(binned_light), binned_light.shape
    )


async def test_binning_by_3_trims_std_frames_to_whole_bins(camera: SimulatorBackend) -> None:
    await camera.set_read_mode(STD_HG)
    settings = await camera.set_binning(3, 3)
    frame = await take(camera)

    assert settings.roi == Roi(0, 0, 2046, 2046)
    assert frame.pixels.shape == (682, 682)


async def test_hdr_refuses_a_horizontal_binning_that_splits_its_halves(
    camera: SimulatorBackend,
) -> None:
    with pytest.raises(InvalidSetting):
        await camera.set_binning(3, 1)
    await camera.set_read_mode(STD_HG)
    await camera.set_binning(3, 3)
    with pytest.raises(InvalidSetting):
        await camera.set_read_mode(HDR)
    assert (await camera.set_binning(2, 3)).bin_x == 2
    assert (await camera.set_read_mode(HDR)).roi == Roi(0, 0, 4096, 2046)
