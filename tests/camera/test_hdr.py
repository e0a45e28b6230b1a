"""The HDR merge on frames from the simulator: the fit finds the model's conversion-gain ratio,
the two branches meet at the switch point, a dark frame keeps the last fit, the cut columns
are the merged ones, and concurrent merges in threads give the sequential results."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from qhy42_indi.backends.base import Channel, Frame
from qhy42_indi.backends.scenes import DarkScene, FlatScene, Scene
from qhy42_indi.backends.sensor_model import DEFAULT_GAIN, DEFAULT_OFFSET, e_per_adu
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.hdr import (
    ADC_SHIFT,
    DEFAULT_RATIO,
    OUTPUT_MAX,
    SWITCH_POINT_ADU,
    Splice,
    merge_hdr,
    splice_cards,
)

EXPOSURE_S = 0.1


async def _take(scene: Scene, bins: tuple[int, int]) -> Frame:
    options = SimulatorOptions(time_scale=1000.0, seed=11, scene=scene, instant_readout=True)
    async with SimulatorBackend(options) as camera:
        await camera.set_binning(*bins)
        await camera.start_exposure(EXPOSURE_S)
        return await camera.read_frame()


@cache
def hdr_frame(level_e_per_s: float | None, bins: tuple[int, int] = (1, 1)) -> Frame:
    """An HDR frame of a flat at `level_e_per_s` (None: dark), rendered once per module run."""
    scene: Scene = DarkScene() if level_e_per_s is None else FlatScene(level_e_per_s)
    return asyncio.run(_take(scene, bins))


def true_ratio(frame: Frame) -> float:
    return e_per_adu(Channel.LOW_GAIN, frame.gain) / e_per_adu(Channel.HIGH_GAIN, frame.gain)


def flat_level_for_hg(hg_adu: float) -> float:
    """The flat (e-/s) that puts the high-gain channel at `hg_adu` in EXPOSURE_S, at the
    simulator's default gain and offset."""
    return (hg_adu - DEFAULT_OFFSET) * e_per_adu(Channel.HIGH_GAIN, DEFAULT_GAIN) / EXPOSURE_S


def halves(frame: Frame) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The low- and high-gain halves in 12-bit ADU."""
    width = frame.width // 2
    pixels = frame.pixels >> ADC_SHIFT
    return pixels[:, :width].astype(np.float64), pixels[:, width:].astype(np.float64)


@pytest.mark.parametrize("level_e_per_s", [20_000.0, 50_000.0])
def test_fit_on_a_bright_flat_recovers_the_models_gain_ratio(level_e_per_s: float) -> None:
    frame = hdr_frame(level_e_per_s)
    _, splice = merge_hdr(frame, None)

    assert splice.fitted_pixels > 10_000
    assert splice.k == pytest.approx(true_ratio(frame), rel=0.01)
    # both channels share the pedestal, so the line must pass through it
    assert abs(splice.k * frame.offset + splice.b - frame.offset) < 10


def test_merged_output_is_continuous_across_the_switch_point() -> None:
    frame = hdr_frame(flat_level_for_hg(SWITCH_POINT_ADU))
    assert (frame.gain, frame.offset) == (DEFAULT_GAIN, DEFAULT_OFFSET)
    merged, splice = merge_hdr(frame, None)
    lg, hg = halves(frame)
    unsaturated = hg < 4000  # hot pixels fill the high-gain ADC: no reference value there
    from_low = unsaturated & (hg >= SWITCH_POINT_ADU)
    from_high = unsaturated & (hg < SWITCH_POINT_ADU)

    assert from_low.mean() > 0.2 and from_high.mean() > 0.2  # the flat straddles the switch
    assert np.array_equal(merged[from_high], hg[from_high])
    # where the low-gain branch is used, it gives what the high-gain channel measured
    step = merged[from_low].mean() - hg[from_low].mean()
    assert abs(step) < 1.0
    assert abs(merged[unsaturated].mean() - hg[unsaturated].mean()) < 0.5
    expected = np.clip(np.rint(splice.k * lg[from_low] + splice.b), 0, OUTPUT_MAX)
    assert np.array_equal(merged[from_low], expected)


def test_a_dark_frame_reuses_the_previous_fit_or_the_default_ratio() -> None:
    dark = hdr_frame(None)
    previous = Splice(14.0, -1820.0, SWITCH_POINT_ADU, 900)

    merged, reused = merge_hdr(dark, None, previous)
    _, default = merge_hdr(dark, None)

    assert (reused.k, reused.b, reused.fitted_pixels) == (14.0, -1820.0, 0)
    assert default.k == DEFAULT_RATIO and default.fitted_pixels == 0
    assert default.k * dark.offset + default.b == pytest.approx(dark.offset)
    _, hg = halves(dark)
    below = hg < SWITCH_POINT_ADU  # all but the hottest pixels of a warm sensor
    assert below.mean() > 0.999
    assert np.array_equal(merged[below], hg[below])


def test_fit_from_a_bright_frame_carries_over_to_the_next_dark() -> None:
    _, fitted = merge_hdr(hdr_frame(20_000.0), None)
    _, carried = merge_hdr(hdr_frame(None), None, fitted)

    assert (carried.k, carried.b) == (fitted.k, fitted.b)
    assert carried.fitted_pixels == 0
    assert {c.keyword: c.value for c in splice_cards(carried)}["HDR_NFIT"] == 0


def test_output_is_clipped_to_16_bits() -> None:
    frame = hdr_frame(2e6)  # the high-gain channel saturates everywhere: nothing to fit
    merged, splice = merge_hdr(frame, None, Splice(20.0, 0.0, SWITCH_POINT_ADU, 1))

    assert splice.fitted_pixels == 0
    assert merged.dtype == np.uint16 and int(merged.max()) == OUTPUT_MAX


@pytest.mark.parametrize("bins", [(1, 1), (2, 2)])
def test_columns_cut_the_merged_image(bins: tuple[int, int]) -> None:
    frame = hdr_frame(20_000.0, bins)
    full, splice = merge_hdr(frame, None)
    cut, cut_splice = merge_hdr(frame, (512, 700))

    first, stop = 512 // bins[0], (512 + 700) // bins[0]
    assert full.shape == (2048 // bins[1], 2048 // bins[0])
    assert cut.shape == (full.shape[0], stop - first)
    assert cut.flags.c_contiguous and cut.dtype == np.uint16
    assert np.array_equal(cut, full[:, first:stop])
    assert cut_splice == splice  # the fit uses the whole overlap, whatever the cut


def test_merges_in_threads_match_the_sequential_results() -> None:
    frames = [hdr_frame(20_000.0), hdr_frame(flat_level_for_hg(SWITCH_POINT_ADU))]
    expected = [merge_hdr(frame, None) for frame in frames]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: merge_hdr(frames[i % 2], None), range(8)))

    for i, (pixels, splice) in enumerate(results):
        assert splice == expected[i % 2][1]
        assert np.array_equal(pixels, expected[i % 2][0])


def reference_merge(frame: Frame, splice: Splice) -> npt.NDArray[np.uint16]:
    """The splice model written out whole-frame, as the documentation states it: the high-gain
    12-bit value below the switch point, clip(rint(k * lg12 + b)) above it."""
    width = frame.width // 2
    lg12 = (frame.pixels[:, :width] >> ADC_SHIFT).astype(np.float64)
    hg12 = frame.pixels[:, width:] >> ADC_SHIFT
    low_branch = np.clip(np.rint(splice.k * lg12 + splice.b), 0, OUTPUT_MAX)
    return np.where(hg12 < splice.switch_point_adu, hg12, low_branch).astype(np.uint16)


@pytest.mark.parametrize("level", [None, 20_000.0, "switch", 2_000_000.0, "mixed"])
def test_the_blockwise_threaded_merge_equals_the_whole_frame_reference(level: object) -> None:
    if level == "switch":
        frame = hdr_frame(flat_level_for_hg(SWITCH_POINT_ADU))  # both branches in every block
    elif level == "mixed":
        # Rows that alternate between the branches block by block, and odd row counts.
        bright, dark = hdr_frame(2_000_000.0), hdr_frame(None)
        stripes = np.where((np.arange(bright.height) // 40 % 2 == 0)[:, None],
                           bright.pixels, dark.pixels)[:1001]
        frame = replace(bright, pixels=np.ascontiguousarray(stripes))
    else:
        frame = hdr_frame(level if isinstance(level, float) else None)
    pixels, splice = merge_hdr(frame, None)
    np.testing.assert_array_equal(pixels, reference_merge(frame, splice))
