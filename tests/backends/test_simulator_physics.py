"""The simulator's sensor physics as specifications, checked on rendered frames.

Frames are rendered directly (FrameRenderer) so the sensor temperature is set exactly; the
statistics use a central region away from the amp glow edge, with the camera's hot pixels
masked, and tolerances far wider than the statistical error of ~10^5-10^6 pixels.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from qhy42_indi.backends.base import Roi
from qhy42_indi.backends.renderer import FrameRenderer, Pixels, RenderRequest
from qhy42_indi.backends.scenes import DarkScene, FlatScene, Scene, StarFieldScene
from qhy42_indi.backends.sensor_model import (
    FULL_WELL_E,
    HIGH_GAIN,
    LOW_GAIN,
    READ_MODES,
    SENSOR_WIDTH_PX,
    ChannelModel,
    dark_current_e_per_s,
    e_per_adu,
    hot_pixels,
)

CAMERA_ID = "QHY42PRO-physics"
HDR, STD_HG, STD_LG = 0, 1, 2
CENTRE = Roi(0, 1024, 2048, 512)  # 1024 rows below the glow edge: glow there is e^-17 of it
GAIN = 10
OFFSET = 140


@pytest.fixture(scope="module")
def renderer() -> FrameRenderer:
    return FrameRenderer(CAMERA_ID, seed=42)


def render(
    renderer: FrameRenderer,
    *,
    mode: int = STD_HG,
    scene: Scene | None = None,
    exposure_s: float = 1.0,
    temperature_c: float = -20.0,
    gain: int = GAIN,
    offset: int = OFFSET,
    bit_depth: int = 16,
    bins: tuple[int, int] = (1, 1),
    roi: Roi | None = None,
    glow_suppressed: bool = True,
) -> Pixels:
    read_mode = READ_MODES[mode]
    return renderer.render(
        RenderRequest(
            read_mode=read_mode,
            roi=roi or Roi(0, 0, read_mode.width, read_mode.height),
            bin_x=bins[0],
            bin_y=bins[1],
            bit_depth=bit_depth,
            gain=gain,
            offset=offset,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            amp_glow_suppression=glow_suppressed,
            scene=scene or DarkScene(),
        )
    )


def adu12(pixels: Pixels) -> npt.NDArray[np.float64]:
    return pixels.astype(np.float64) / 16.0


def normal_pixels(roi: Roi) -> npt.NDArray[np.bool_]:
    """True where the ROI (unbinned, STD) holds no hot pixel."""
    mask = np.ones((roi.height, roi.width), dtype=bool)
    rows, columns = np.divmod(hot_pixels(CAMERA_ID).flat_index, SENSOR_WIDTH_PX)
    inside = (rows >= roi.y) & (rows < roi.y + roi.height)
    inside &= (columns >= roi.x) & (columns < roi.x + roi.width)
    mask[rows[inside] - roi.y, columns[inside] - roi.x] = False
    return mask


def dark_signal_e(renderer: FrameRenderer, exposure_s: float, temperature_c: float) -> float:
    """Mean dark electrons above the pedestal in the central region, hot pixels excluded."""
    frame = adu12(render(renderer, roi=CENTRE, exposure_s=exposure_s, temperature_c=temperature_c))
    signal_adu = (frame[normal_pixels(CENTRE)] - OFFSET).mean()
    return float(signal_adu * e_per_adu(HIGH_GAIN.channel, GAIN))


# ---- photon transfer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "channel_model", "signal_e"),
    [(STD_HG, HIGH_GAIN, 2000.0), (STD_LG, LOW_GAIN, 40000.0)],
)
def test_flat_pair_mean_and_variance_give_the_channels_gain(
    renderer: FrameRenderer, mode: int, channel_model: ChannelModel, signal_e: float
) -> None:
    gain_e_per_adu = e_per_adu(channel_model.channel, GAIN)
    read_noise_adu = channel_model.read_noise_e / gain_e_per_adu
    exposure_s = 0.1
    scene = FlatScene(level_e_per_s=signal_e / exposure_s)
    first, second = (
        adu12(render(renderer, mode=mode, scene=scene, exposure_s=exposure_s, roi=CENTRE))
        for _ in range(2)
    )
    normal = normal_pixels(CENTRE)
    signal_adu = (first[normal] + second[normal]).mean() / 2.0 - OFFSET
    pair_variance_adu2 = (first[normal] - second[normal]).var() / 2.0
    shot_variance_adu2 = pair_variance_adu2 - read_noise_adu**2 - 1.0 / 12.0
    dark_e = dark_current_e_per_s(-20.0) * exposure_s

    assert signal_adu * gain_e_per_adu == pytest.approx(signal_e + dark_e, rel=0.005)
    assert signal_adu / shot_variance_adu2 == pytest.approx(gain_e_per_adu, rel=0.02)


def test_bias_pair_variance_gives_the_read_noise(renderer: FrameRenderer) -> None:
    first, second = (adu12(render(renderer, exposure_s=20e-6, roi=CENTRE)) for _ in range(2))
    normal = normal_pixels(CENTRE)
    pair_variance_adu2 = (first[normal] - second[normal]).var() / 2.0
    read_noise_e = math.sqrt(pair_variance_adu2 - 1.0 / 12.0) * e_per_adu(HIGH_GAIN.channel, GAIN)

    assert read_noise_e == pytest.approx(HIGH_GAIN.read_noise_e, rel=0.04)


@pytest.mark.parametrize("offset", [20, 140, 255])
def test_bias_level_is_the_offset_pedestal(renderer: FrameRenderer, offset: int) -> None:
    bias = adu12(render(renderer, exposure_s=20e-6, offset=offset, roi=CENTRE))

    assert bias[normal_pixels(CENTRE)].mean() == pytest.approx(offset, abs=0.05)


# ---- data format ---------------------------------------------------------------------------


def test_16_bit_words_carry_12_bit_data_with_the_low_4_bits_zero(renderer: FrameRenderer) -> None:
    frame = render(renderer, scene=StarFieldScene(), exposure_s=2.0, glow_suppressed=False)

    assert frame.dtype == np.uint16
    assert not np.any(frame & 0x000F)
    assert frame.max() == 4095 << 4  # bright stars reach the ADC's top code
    assert np.unique(frame).size > 1000


def test_8_bit_frames_are_the_top_8_bits_of_the_16_bit_words() -> None:
    words16, words8 = (
        render(
            FrameRenderer(CAMERA_ID, seed=7),
            scene=FlatScene(20000.0),
            exposure_s=0.1,
            roi=CENTRE,
            bit_depth=bits,
        )
        for bits in (16, 8)
    )

    assert words8.dtype == np.uint8
    difference = words8.astype(np.int32) - (words16 >> 8)
    assert np.abs(difference).max() <= 1  # float rounding at a code boundary, at most
    assert np.count_nonzero(difference) < 1e-3 * difference.size


def test_8_bit_frames_span_0_to_255(renderer: FrameRenderer) -> None:
    saturated = render(renderer, scene=FlatScene(1e6), bit_depth=8, roi=CENTRE)
    bias = render(renderer, exposure_s=20e-6, bit_depth=8, offset=0, roi=CENTRE)

    assert saturated.min() == 255
    assert bias.min() == 0


# ---- saturation ----------------------------------------------------------------------------


def test_low_gain_pixels_saturate_at_the_full_well(renderer: FrameRenderer) -> None:
    full_well_adu = OFFSET + FULL_WELL_E / e_per_adu(LOW_GAIN.channel, 0)
    levels = [
        adu12(render(renderer, mode=STD_LG, gain=0, scene=FlatScene(5e5), exposure_s=t, roi=CENTRE))
        for t in (1.0, 4.0)
    ]

    for frame in levels:
        assert frame.mean() == pytest.approx(full_well_adu, abs=0.1)
        assert frame.std() < 1.0  # only read noise is left
    assert full_well_adu < 4095


def test_pixels_filled_to_the_full_well_on_average_clip_there(renderer: FrameRenderer) -> None:
    full_well_adu = OFFSET + FULL_WELL_E / e_per_adu(LOW_GAIN.channel, 0)
    read_noise_adu = LOW_GAIN.read_noise_e / e_per_adu(LOW_GAIN.channel, 0)
    frame = adu12(render(renderer, mode=STD_LG, gain=0, scene=FlatScene(FULL_WELL_E), roi=CENTRE))
    shot_noise_adu = math.sqrt(FULL_WELL_E) / e_per_adu(LOW_GAIN.channel, 0)

    # unclipped, half the pixels would exceed the well by up to ~5 sigma of shot noise (50 ADU)
    assert frame.max() < full_well_adu + 6.0 * read_noise_adu
    assert np.median(frame) == pytest.approx(full_well_adu, abs=1.5)
    assert np.percentile(frame, 10) == pytest.approx(full_well_adu - 1.28 * shot_noise_adu, abs=1.5)


def test_high_gain_pixels_saturate_at_the_adc_top(renderer: FrameRenderer) -> None:
    frame = render(renderer, scene=FlatScene(5e5), roi=CENTRE)

    assert np.all(frame == 4095 << 4)


# ---- dark current, amp glow, hot pixels ----------------------------------------------------


def test_dark_signal_grows_linearly_with_exposure(renderer: FrameRenderer) -> None:
    short_e = dark_signal_e(renderer, exposure_s=10.0, temperature_c=-20.0)
    long_e = dark_signal_e(renderer, exposure_s=40.0, temperature_c=-20.0)

    assert short_e == pytest.approx(dark_current_e_per_s(-20.0) * 10.0, rel=0.03)
    assert long_e / short_e == pytest.approx(4.0, rel=0.03)


def test_dark_current_is_2_2_e_per_s_at_minus_20_c_and_halves_every_6_c(
    renderer: FrameRenderer,
) -> None:
    at_minus_20, at_minus_12, at_0 = (
        dark_signal_e(renderer, exposure_s=20.0, temperature_c=t) / 20.0
        for t in (-20.0, -12.0, 0.0)
    )

    assert at_minus_20 == pytest.approx(2.2, rel=0.03)
    assert at_0 / at_minus_12 == pytest.approx(4.0, rel=0.03)


def glow_excess_adu(renderer: FrameRenderer, *, exposure_s: float, suppressed: bool) -> float:
    """Median of the first 10 rows minus the median of central rows (ADU12)."""
    frame = adu12(render(renderer, exposure_s=exposure_s, glow_suppressed=suppressed))
    return float(np.median(frame[:10]) - np.median(frame[1000:1100]))


def test_amp_glow_is_a_gradient_from_the_top_edge_that_grows_with_exposure(
    renderer: FrameRenderer,
) -> None:
    excess_30s = glow_excess_adu(renderer, exposure_s=30.0, suppressed=False)
    excess_60s = glow_excess_adu(renderer, exposure_s=60.0, suppressed=False)
    frame = adu12(render(renderer, exposure_s=30.0, glow_suppressed=False))
    row_medians = np.median(frame[:300:30], axis=1)

    assert excess_30s > 100.0
    assert excess_60s / excess_30s == pytest.approx(2.0, rel=0.1)
    assert np.all(np.diff(row_medians) <= 0.0)


def test_anti_glow_switch_suppresses_the_glow(renderer: FrameRenderer) -> None:
    glowing = glow_excess_adu(renderer, exposure_s=60.0, suppressed=False)
    suppressed = glow_excess_adu(renderer, exposure_s=60.0, suppressed=True)

    assert 0.0 < suppressed < glowing / 10.0


def bright_pixels(frame: Pixels) -> set[int]:
    """Flat indices of pixels far above the frame's typical level."""
    level = np.median(frame)
    spread = np.median(np.abs(frame - level)) * 1.4826
    return set(np.flatnonzero(frame > level + 30.0 * spread).tolist())


def warm_dark(camera_id: str, seed: int) -> Pixels:
    return render(FrameRenderer(camera_id, seed), exposure_s=30.0, temperature_c=0.0)


def test_hot_pixels_are_where_the_camera_has_them_and_do_not_move() -> None:
    first = bright_pixels(warm_dark(CAMERA_ID, seed=1))
    second = bright_pixels(warm_dark(CAMERA_ID, seed=2))
    other_camera = bright_pixels(warm_dark("QHY42PRO-another", seed=1))
    hot = set(hot_pixels(CAMERA_ID).flat_index.tolist())

    assert len(first) > 0.8 * len(hot)
    assert first <= hot
    assert len(first & second) > 0.95 * len(first)
    assert len(first & other_camera) < 0.05 * len(first)


# ---- binning -------------------------------------------------------------------------------


def test_binning_averages_bins_keeping_the_level_and_dividing_the_noise(
    renderer: FrameRenderer,
) -> None:
    scene = FlatScene(20000.0)
    unbinned = adu12(render(renderer, scene=scene, exposure_s=0.1, roi=CENTRE))
    binned = adu12(render(renderer, scene=scene, exposure_s=0.1, roi=CENTRE, bins=(2, 2)))
    normal = normal_pixels(CENTRE)
    normal_bins = normal.reshape(256, 2, 1024, 2).all(axis=(1, 3))

    assert binned.shape == (256, 1024)
    assert binned[normal_bins].mean() == pytest.approx(unbinned[normal].mean(), rel=0.001)
    assert unbinned[normal].var() / binned[normal_bins].var() == pytest.approx(4.0, rel=0.05)
    assert binned.max() <= 4095


# ---- HDR -----------------------------------------------------------------------------------


def test_hdr_halves_are_low_gain_left_and_high_gain_right_of_one_charge_image(
    renderer: FrameRenderer,
) -> None:
    signal_e = 3000.0
    frame = adu12(render(renderer, mode=HDR, scene=FlatScene(signal_e / 0.1), exposure_s=0.1))
    low, high = frame[1024:1536, :2048], frame[1024:1536, 2048:]
    normal = normal_pixels(CENTRE)
    dark_e = dark_current_e_per_s(-20.0) * 0.1

    assert frame.shape == (2048, 4096)
    assert (low[normal].mean() - OFFSET) * e_per_adu(LOW_GAIN.channel, GAIN) == pytest.approx(
        signal_e + dark_e, rel=0.01
    )
    assert (high[normal].mean() - OFFSET) * e_per_adu(HIGH_GAIN.channel, GAIN) == pytest.approx(
        signal_e + dark_e, rel=0.01
    )
    # the same shot noise in both halves, pixel by pixel
    assert np.corrcoef(low[normal], high[normal])[0, 1] > 0.8


def test_hdr_read_noise_is_independent_per_channel(renderer: FrameRenderer) -> None:
    frame = adu12(render(renderer, mode=HDR, exposure_s=20e-6))
    low, high = frame[1024:1536, :2048], frame[1024:1536, 2048:]
    normal = normal_pixels(CENTRE)

    assert abs(np.corrcoef(low[normal], high[normal])[0, 1]) < 0.02


def test_hdr_high_gain_saturates_first_and_low_gain_reaches_the_full_well(
    renderer: FrameRenderer,
) -> None:
    half_full = render(renderer, mode=HDR, scene=FlatScene(20000.0), roi=Roi(0, 1024, 4096, 512))
    overfull = adu12(render(renderer, mode=HDR, scene=FlatScene(2e5), roi=Roi(0, 1024, 4096, 512)))

    assert np.all(half_full[:, 2048:] == 4095 << 4)
    assert half_full[:, :2048].max() < 4095 << 4
    assert overfull[:, :2048].mean() == pytest.approx(
        OFFSET + FULL_WELL_E / e_per_adu(LOW_GAIN.channel, GAIN), abs=0.1
    )
