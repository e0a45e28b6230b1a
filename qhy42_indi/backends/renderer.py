"""Turns one exposure's settings into the pixels a QHY42PRO would deliver, fast.

What it is for: `FrameRenderer.render(RenderRequest)` returns a frame (uint16 or uint8, C order,
native byte order) for a read mode, ROI, binning, bit depth, gain, offset, exposure, sensor
temperature and scene. It runs in the simulator's worker thread and is not thread-safe.

What it is not: no timing, no asyncio, no cooler; the numbers come from sensor_model.py and the
scenes from scenes.py.

The model, per unbinned pixel, in electrons: mean m = (dark(T) * hot multiple + scene + amp glow
of the row) * t; charge = min(Poisson(m), full well); per channel (HDR reads the same charge
twice), ADU12 = clip(round(pedestal + charge / (e-/ADU) + read noise), 0, 4095). A binned pixel
is the average of its bin_x * bin_y ADU12 values (so levels stay put and the result stays in
range); its 16-bit word keeps the average's extra precision (16 * sum / n, rounded); at bin 1
that is ADU12 << 4 with the low 4 bits zero. 8-bit output is the top 8 bits of that word.

How it stays fast (a full 2048x2048 dark or flat in 3-4 ms on a 2-core x86 VM): the bulk of the
frame, whose mean is the same in every pixel of a row, is drawn in the Gaussian limit, mean +
sigma * z, with z taken as a view at a random offset into a pre-computed bank of standard
normals (so frame k's noise is frame j's shifted by a random number of pixels: independent per
pixel, not a fresh draw). The Gaussian limit of Poisson + read noise is exact in its first two
moments; its shape differs only where the charge is a few electrons, and there read noise
dominates (Poisson(0.5) + 1.6 e- read noise has a skewness of 0.09). Rows with visible amp glow
get per-row coefficients. Everything that varies within a row (hot pixels, stars) is a sparse
set of bins drawn exactly, pixel by pixel, with Poisson charge, per-pixel full well and per-
pixel ADC clipping, and written over the bulk. In the bulk, a bin's charge is clipped at n *
full well and its sum at n * 4095, and the rounding of each pixel's value enters as its variance
(n - 1) / 12 ADU12^2.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.base import Channel, ReadMode, Roi, channel_spans
from qhy42_indi.backends.scenes import Scene, SparseRates, StarFieldScene, star_rates
from qhy42_indi.backends.sensor_model import (
    ADC_MAX_ADU,
    CHANNELS,
    FULL_WELL_E,
    OUTPUT_SHIFT_BITS,
    SENSOR_HEIGHT_PX,
    SENSOR_WIDTH_PX,
    HotPixels,
    dark_current_e_per_s,
    e_per_adu,
    glow_edge_e_per_s,
    glow_profile,
    hot_pixels,
    pedestal_adu,
)
from qhy42_indi.buffer_pool import PixelPool

NOISE_BANK_MARGIN = 1 << 20  # random offsets into the bank range over this many values
# Rows whose glow is below this fraction of the bulk's noise are drawn without it: invisible in
# one frame and in stacks of a few hundred.
GLOW_VISIBLE_FRACTION = 0.05
# A Poisson mean this far above the full well saturates for sure; capping it keeps numpy's
# Poisson sampler in its domain for very long exposures of bright stars.
POISSON_MEAN_CAP_E = 100.0 * FULL_WELL_E
PLAN_CACHE_SIZE = 8
# The bulk is made in blocks of rows whose float32 scratch is this big: small enough for the
# L2 cache, large enough that numpy's per-call cost stays small against the work.
ROW_BLOCK_BYTES = 512 * 1024

FloatArray = npt.NDArray[np.float32]
Coefficient = np.float32 | FloatArray  # one value for a block of rows, or one per row
Pixels = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]


def _coefficient(value: float | np.floating[Any] | npt.NDArray[np.floating[Any]]) -> Coefficient:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    return np.float32(value)


def _rows(value: Coefficient, rows: slice) -> Coefficient:
    """The rows of a per-row coefficient ((rows, 1) column); a scalar as it is."""
    return value[rows] if isinstance(value, np.ndarray) and value.ndim else value


@dataclass(frozen=True, slots=True)
class RenderRequest:
    read_mode: ReadMode
    roi: Roi  # bin-aligned, unbinned pixels of the read mode's frame
    bin_x: int
    bin_y: int
    bit_depth: int
    gain: int
    offset: int
    exposure_s: float
    temperature_c: float
    amp_glow_suppression: bool
    scene: Scene


# ---- output conversion ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Conversion:
    """One channel's electrons -> ADU12 -> delivered word, for bins of n pixels.

    A bin's sum x of ADU12 values becomes floor(clip(scale * x + bias, 0, word_max)), and
    finally << shift (done on the whole frame). See the module docstring for the format.
    """

    e_per_adu: float
    pedestal_adu: float
    read_sigma_adu: float  # one pixel
    bin_pixels: int
    scale: float
    bias: float
    word_max: float
    shift: int

    @property
    def bin_read_sigma_adu(self) -> float:
        """Read noise of a bin's sum, with each pixel's rounding as variance 1/12."""
        n = self.bin_pixels
        return math.sqrt(n * self.read_sigma_adu**2 + (n - 1) / 12.0)


def _conversion(channel: Channel, gain: int, offset: int, n: int, bit_depth: int) -> _Conversion:
    adu_per_word16 = 16.0 / n  # the average of n ADU12 values, in 16-bit word units
    top_word16 = ADC_MAX_ADU * 16.0 + 0.5
    if bit_depth == 16 and n == 1:
        scale, bias, word_max, shift = 1.0, 0.5, ADC_MAX_ADU + 0.5, OUTPUT_SHIFT_BITS
    elif bit_depth == 16:
        scale, bias, word_max, shift = adu_per_word16, 0.5, top_word16, 0
    elif n == 1:  # 8-bit: floor(round(x) / 16)
        scale, bias, word_max, shift = 1.0 / 16.0, 0.5 / 16.0, (ADC_MAX_ADU + 0.5) / 16.0, 0
    else:  # 8-bit: the top byte of the 16-bit word
        scale, bias, word_max, shift = adu_per_word16 / 256.0, 0.5 / 256.0, top_word16 / 256.0, 0
    gain_e_per_adu = e_per_adu(channel, gain)
    return _Conversion(
        e_per_adu=gain_e_per_adu,
        pedestal_adu=pedestal_adu(offset),
        read_sigma_adu=CHANNELS[channel].read_noise_e / gain_e_per_adu,
        bin_pixels=n,
        scale=scale,
        bias=bias,
        word_max=word_max,
        shift=shift,
    )


# ---- geometry plan -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """One channel's columns: output columns [out_start, out_stop) show window columns
    [window_start, window_stop); `sparse_bins` of the plan land at `sparse_out_flat`."""

    channel: Channel
    out_start: int
    out_stop: int
    window_start: int
    window_stop: int
    sparse_bins: npt.NDArray[np.int64]
    sparse_out_flat: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Geometry of one (read mode, ROI, binning, scene): the window is the binned sensor area
    that the frame's channels show (in HDR both halves may show the same sensor columns)."""

    rows: int
    window_columns: int
    out_columns: int
    bin_pixels: int
    parts: tuple[_Part, ...]
    glow_row_weight: npt.NDArray[np.float64]  # sum of glow_profile over each bin row's pixels
    member_glow: npt.NDArray[np.float64]  # (bins, n) glow_profile of each sparse bin's pixels
    member_dark_multiple: npt.NDArray[np.float64]  # (bins, n) 1, or a hot pixel's multiple
    member_star_e_per_s: npt.NDArray[np.float64]  # (bins, n)


@dataclass(frozen=True, slots=True)
class _SensorSparse:
    """Hot pixels and star light on the unbinned sensor, merged on sorted flat indices."""

    flat_index: npt.NDArray[np.int64]
    dark_multiple: npt.NDArray[np.float64]
    star_e_per_s: npt.NDArray[np.float64]


def _merge_sparse(hot: HotPixels, stars: SparseRates) -> _SensorSparse:
    flat_index = np.union1d(hot.flat_index, stars.flat_index).astype(np.int64)
    dark_multiple = np.ones(flat_index.size)
    dark_multiple[np.searchsorted(flat_index, hot.flat_index)] = hot.dark_factor
    star_e_per_s = np.zeros(flat_index.size)
    star_e_per_s[np.searchsorted(flat_index, stars.flat_index)] = stars.e_per_s
    return _SensorSparse(flat_index, dark_multiple, star_e_per_s)


def _build_plan(mode: ReadMode, roi: Roi, bin_x: int, bin_y: int, sparse: _SensorSparse) -> _Plan:
    first_column, out_columns = roi.x // bin_x, roi.width // bin_x
    first_row, rows = roi.y // bin_y, roi.height // bin_y
    channel_columns = mode.channel_width // bin_x
    spans = []  # (channel, out start, out stop, binned sensor start, stop)
    for span in channel_spans(mode, roi, bin_x):
        sensor_start = first_column + span.first_column
        sensor_start -= mode.channels.index(span.channel) * channel_columns
        out_stop = span.first_column + span.column_count
        spans.append(
            (
                span.channel,
                span.first_column,
                out_stop,
                sensor_start,
                sensor_start + span.column_count,
            )
        )
    window_first = min(span[3] for span in spans)
    window_columns = max(span[4] for span in spans) - window_first

    bin_rows = (first_row + np.arange(rows))[:, None] * bin_y + np.arange(bin_y)[None, :]
    glow_row_weight = bin_x * glow_profile(bin_rows).sum(axis=1)

    sparse_bins, members = _sparse_bins(
        sparse, first_row, rows, window_first, window_columns, bin_x, bin_y
    )
    # every bin holds a sparse pixel, so `sparse` is not empty when `members` is not
    lookup = np.minimum(np.searchsorted(sparse.flat_index, members), sparse.flat_index.size - 1)
    hit = sparse.flat_index[lookup] == members
    member_dark_multiple = np.where(hit, sparse.dark_multiple[lookup], 1.0)
    member_star = np.where(hit, sparse.star_e_per_s[lookup], 0.0)

    bin_row, bin_column = np.divmod(sparse_bins, window_columns)
    parts = []
    for channel, out_start, out_stop, sensor_start, sensor_stop in spans:
        window_start, window_stop = sensor_start - window_first, sensor_stop - window_first
        chosen = np.flatnonzero((bin_column >= window_start) & (bin_column < window_stop))
        out_flat = bin_row[chosen] * out_columns + out_start + bin_column[chosen] - window_start
        parts.append(
            _Part(channel, out_start, out_stop, window_start, window_stop, chosen, out_flat)
        )
    return _Plan(
        rows=rows,
        window_columns=window_columns,
        out_columns=out_columns,
        bin_pixels=bin_x * bin_y,
        parts=tuple(parts),
        glow_row_weight=glow_row_weight,
        member_glow=glow_profile(members // SENSOR_WIDTH_PX),
        member_dark_multiple=member_dark_multiple,
        member_star_e_per_s=member_star,
    )


def _sparse_bins(
    sparse: _SensorSparse,
    first_row: int,
    rows: int,
    window_first: int,
    window_columns: int,
    bin_x: int,
    bin_y: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The window bins holding a sparse pixel (flat window indices, sorted) and the flat sensor
    indices of all their pixels, shape (bins, bin_x * bin_y)."""
    sensor_row, sensor_column = np.divmod(sparse.flat_index, SENSOR_WIDTH_PX)
    bin_row = sensor_row // bin_y - first_row
    bin_column = sensor_column // bin_x - window_first
    inside = (bin_row >= 0) & (bin_row < rows) & (bin_column >= 0) & (bin_column < window_columns)
    bins = np.unique(bin_row[inside] * window_columns + bin_column[inside])
    row_of_bin, column_of_bin = np.divmod(bins, window_columns)
    dy, dx = np.divmod(np.arange(bin_x * bin_y), bin_x)
    member_row = (row_of_bin + first_row)[:, None] * bin_y + dy[None, :]
    member_column = (column_of_bin + window_first)[:, None] * bin_x + dx[None, :]
    return bins.astype(np.int64), (member_row * SENSOR_WIDTH_PX + member_column).astype(np.int64)


# ---- noise ---------------------------------------------------------------------------------


class NoiseBank:
    """Standard normal float32 values, drawn once; frames take views at random offsets."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self._rng = rng
        self._values = rng.standard_normal(size, dtype=np.float32)
        self.min = float(self._values.min())
        self.max = float(self._values.max())

    def views(self, count: int, rows: int, columns: int) -> list[FloatArray]:
        """`count` (rows, columns) views at distinct random offsets."""
        length = rows * columns
        offsets: list[int] = []
        while len(offsets) < count:
            offset = int(self._rng.integers(0, self._values.size - length + 1))
            if offset not in offsets:  # equal offsets would make the draws identical
                offsets.append(offset)
        return [self._values[o : o + length].reshape(rows, columns) for o in offsets]


# ---- the renderer --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bulk:
    """The rows [start, stop) of the window, with their mean charge per bin and its shot
    variance (scalars, or one value per row as (rows, 1) columns)."""

    start: int
    stop: int
    mean_e: float | FloatArray
    shot_variance_e: float | FloatArray

    def saturated(self, full_well_e: float) -> _Bulk:
        """The same rows with every bin holding exactly `full_well_e`."""
        return _Bulk(self.start, self.stop, full_well_e, 0.0)


@dataclass(frozen=True, slots=True)
class _Terms:
    """One channel's words over a bulk, before flooring: level + shot_slope * z_charge (+
    read_slope * z_read when the read noise is drawn apart), or near full well level +
    charge_scale * clipped charge + read_slope * z_read. `in_range`: no word can leave
    [0, word_max], so no clipping is needed."""

    level: Coefficient
    shot_slope: Coefficient
    read_slope: Coefficient
    charge_scale: np.float32
    in_range: bool
    word_max: float


class FrameRenderer:
    """Renders frames for one camera. Use from one thread at a time."""

    def __init__(self, camera_id: str, seed: int | None) -> None:
        self._camera_id = camera_id
        self._rng = np.random.default_rng(seed)
        self._bank = NoiseBank(self._rng, SENSOR_WIDTH_PX * SENSOR_HEIGHT_PX + NOISE_BANK_MARGIN)
        self._hot = hot_pixels(camera_id)
        self._sparse: tuple[object, _SensorSparse] | None = None
        self._plans: OrderedDict[tuple[object, ...], _Plan] = OrderedDict()
        self._scratch: dict[str, FloatArray] = {}
        self._outputs = PixelPool()

    @property
    def hot_pixels(self) -> HotPixels:
        return self._hot

    def render(self, request: RenderRequest) -> Pixels:
        plan = self._plan(request)
        n = plan.bin_pixels
        out = self._outputs.take((plan.rows, plan.out_columns), request.bit_depth)
        conversions = [
            _conversion(part.channel, request.gain, request.offset, n, request.bit_depth)
            for part in plan.parts
        ]
        exposure_s = request.exposure_s
        dark_e_per_s = dark_current_e_per_s(request.temperature_c)
        uniform_e = n * (dark_e_per_s + request.scene.uniform_e_per_s) * exposure_s
        glow_e = glow_edge_e_per_s(request.amp_glow_suppression) * exposure_s * plan.glow_row_weight
        z_charge = self._bank.views(1, plan.rows, plan.window_columns)[0]
        shift = conversions[0].shift  # applied as the words are written
        for bulk in _bulks(
            uniform_e, glow_e, min(c.bin_read_sigma_adu * c.e_per_adu for c in conversions)
        ):
            self._fill_bulk(out, plan, conversions, bulk, z_charge, shift)
        self._fill_sparse(out, plan, conversions, request, dark_e_per_s, shift)
        return out

    # -- geometry cache

    def _plan(self, request: RenderRequest) -> _Plan:
        stars_key = request.scene if isinstance(request.scene, StarFieldScene) else None
        key = (request.read_mode, request.roi, request.bin_x, request.bin_y, stars_key)
        plan = self._plans.get(key)
        if plan is None:
            sparse = self._sensor_sparse(request.scene)
            plan = _build_plan(request.read_mode, request.roi, request.bin_x, request.bin_y, sparse)
            self._plans[key] = plan
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return plan

    def _sensor_sparse(self, scene: Scene) -> _SensorSparse:
        stars_key = scene if isinstance(scene, StarFieldScene) else None
        if self._sparse is None or self._sparse[0] != stars_key:
            merged = _merge_sparse(self._hot, star_rates(scene, self._camera_id))
            self._sparse = (stars_key, merged)
        return self._sparse[1]

    def _buffer(self, name: str, rows: int, columns: int) -> FloatArray:
        size = rows * columns
        buffer = self._scratch.get(name)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, dtype=np.float32)
            self._scratch[name] = buffer
        return buffer[:size].reshape(rows, columns)

    # -- the bulk: mean + sigma * z

    def _fill_bulk(
        self,
        out: Pixels,
        plan: _Plan,
        conversions: list[_Conversion],
        bulk: _Bulk,
        z_charge: FloatArray,
        shift: int,
    ) -> None:
        row_count = bulk.stop - bulk.start
        full_well_e = plan.bin_pixels * FULL_WELL_E
        lowest_e, highest_e = float(np.min(bulk.mean_e)), float(np.max(bulk.mean_e))
        clipped_charge = False
        if lowest_e + self._bank.min * math.sqrt(lowest_e) >= full_well_e:
            bulk = bulk.saturated(full_well_e)  # no draw in the bank falls short of the well
        elif highest_e + self._bank.max * math.sqrt(highest_e) > full_well_e:
            clipped_charge = True
        z_reads = self._bank.views(len(plan.parts), row_count, plan.window_columns)
        terms = [
            self._terms(plan, bulk, conversion, clipped_charge, shift)
            for conversion in conversions
        ]
        # The words are made 2^shift times too large, so truncation keeps `shift` bits below
        # the word, which the mask clears: the same as flooring, then shifting, in one pass
        # less (scaling by a power of two rounds exactly as the unscaled sum).
        low_bits_clear = np.uint16(~((1 << shift) - 1) & 0xFFFF)
        shot_sigma_e = _coefficient(np.sqrt(bulk.shot_variance_e))
        mean_e = _coefficient(bulk.mean_e)
        # Row blocks small enough to stay in the cache: each block's noise is scaled, offset,
        # floored into the frame and shifted while it is hot, instead of a pass over the whole
        # frame for each step.
        block_rows = max(1, ROW_BLOCK_BYTES // (4 * plan.window_columns))
        for first in range(0, row_count, block_rows):
            rows = slice(first, min(first + block_rows, row_count))
            frame_rows = slice(bulk.start + rows.start, bulk.start + rows.stop)
            z_charge_rows = z_charge[frame_rows]
            charge: FloatArray | None = None
            if clipped_charge:
                charge = self._buffer("charge", rows.stop - rows.start, plan.window_columns)
                np.multiply(z_charge_rows, _rows(shot_sigma_e, rows), out=charge)
                np.add(charge, _rows(mean_e, rows), out=charge)
                np.minimum(charge, full_well_e, out=charge)
            for part, term, z_read in zip(plan.parts, terms, z_reads, strict=True):
                columns = slice(part.window_start, part.window_stop)
                y = self._buffer("y", rows.stop - rows.start, columns.stop - columns.start)
                if charge is not None:
                    # near full well: the clipped charge image, then read noise
                    np.multiply(charge[:, columns], term.charge_scale, out=y)
                    self._add_scaled(y, z_read[rows, columns], term.read_slope)
                else:
                    # one channel: charge and read noise in one draw; HDR: the shot noise is
                    # common to both channels, read noise is not
                    np.multiply(z_charge_rows[:, columns], _rows(term.shot_slope, rows), out=y)
                    if len(plan.parts) > 1:
                        self._add_scaled(y, z_read[rows, columns], term.read_slope)
                target = out[frame_rows, part.out_start : part.out_stop]
                np.add(y, _rows(term.level, rows), out=y)
                if not term.in_range:
                    np.clip(y, 0.0, term.word_max, out=y)
                np.copyto(target, y, casting="unsafe")  # the cast floors: y >= 0
                if shift:
                    np.bitwise_and(target, low_bits_clear, out=target)

    def _add_scaled(self, y: FloatArray, z: FloatArray, slope: Coefficient) -> None:
        temp = self._buffer("temp", *y.shape)
        np.multiply(z, slope, out=temp)
        np.add(y, temp, out=y)

    def _terms(
        self, plan: _Plan, bulk: _Bulk, c: _Conversion, clipped_charge: bool, shift: int
    ) -> _Terms:
        """One channel's words over a bulk, times 2^shift: level + slopes times the bank's z
        (or, near full well, times the clipped charge image)."""
        times = np.float32(1 << shift)
        read_slope = _coefficient(c.scale * c.bin_read_sigma_adu)
        if clipped_charge:
            return _Terms(
                level=_level(0.0, c) * times,
                shot_slope=np.float32(0.0),
                read_slope=read_slope * times,
                charge_scale=np.float32(c.scale / c.e_per_adu) * times,
                in_range=False,
                word_max=c.word_max * float(times),
            )
        if len(plan.parts) == 1:
            # sigma^2 = shot / g^2 + read^2, one draw
            sigma_adu = np.sqrt(bulk.shot_variance_e / c.e_per_adu**2 + c.bin_read_sigma_adu**2)
            shot_slope = _coefficient(c.scale * sigma_adu)
            slopes = [shot_slope]
        else:
            shot_slope = _coefficient(c.scale * np.sqrt(bulk.shot_variance_e) / c.e_per_adu)
            slopes = [shot_slope, read_slope]
        level = _level(bulk.mean_e, c)
        return _Terms(
            level=level * times,
            shot_slope=shot_slope * times,
            read_slope=read_slope * times,
            charge_scale=np.float32(0.0),
            in_range=self._stays_in_range(level, slopes, c.word_max),
            word_max=c.word_max * float(times),
        )

    def _stays_in_range(
        self, level: Coefficient, slopes: list[Coefficient], word_max: float
    ) -> bool:
        """Whether level + sum(slope * z) stays within [0, word_max] for every z in the bank."""
        spread = sum(float(np.max(slope)) for slope in slopes)
        low = float(np.min(level)) + spread * self._bank.min
        high = float(np.max(level)) + spread * self._bank.max
        return low >= 0.0 and high <= word_max

    # -- the sparse bins: exact, pixel by pixel

    def _fill_sparse(
        self,
        out: Pixels,
        plan: _Plan,
        conversions: list[_Conversion],
        request: RenderRequest,
        dark_e_per_s: float,
        shift: int,
    ) -> None:
        if plan.member_glow.size == 0:
            return
        glow_e_per_s = glow_edge_e_per_s(request.amp_glow_suppression) * plan.member_glow
        rate_e_per_s = (
            dark_e_per_s * plan.member_dark_multiple
            + request.scene.uniform_e_per_s
            + glow_e_per_s
            + plan.member_star_e_per_s
        )
        mean_e = np.minimum(rate_e_per_s * request.exposure_s, POISSON_MEAN_CAP_E)
        charge = np.minimum(self._rng.poisson(mean_e), FULL_WELL_E)
        flat_out = out.reshape(-1)
        for part, c in zip(plan.parts, conversions, strict=True):
            part_charge = charge[part.sparse_bins]
            z_read = self._bank.views(1, *part_charge.shape)[0]
            adu = c.pedestal_adu + part_charge / c.e_per_adu + c.read_sigma_adu * z_read
            adu_sum = np.clip(np.floor(adu + 0.5), 0, ADC_MAX_ADU).sum(axis=1)
            words = np.floor(np.clip(c.scale * adu_sum + c.bias, 0.0, c.word_max))
            flat_out[part.sparse_out_flat] = words * float(1 << shift)  # exact: words < 4096


def _level(mean_e: float | FloatArray, c: _Conversion) -> Coefficient:
    """The word, before flooring, of a bin holding mean_e electrons, noise aside."""
    return _coefficient(c.scale * (c.bin_pixels * c.pedestal_adu + mean_e / c.e_per_adu) + c.bias)


def _bulks(uniform_e: float, glow_e: npt.NDArray[np.float64], read_sigma_e: float) -> list[_Bulk]:
    """Split the window's rows into those with visible glow (per-row means) and the rest."""
    threshold_e = GLOW_VISIBLE_FRACTION * math.sqrt(uniform_e + read_sigma_e**2)
    glow_rows = int(np.count_nonzero(glow_e >= threshold_e))
    # glow falls monotonically with the row, so the visible rows are the first ones
    bulks = []
    if glow_rows:
        mean = (uniform_e + glow_e[:glow_rows]).astype(np.float32)[:, None]
        bulks.append(_Bulk(0, glow_rows, mean, mean))
    if glow_rows < glow_e.size:
        bulks.append(_Bulk(glow_rows, int(glow_e.size), uniform_e, uniform_e))
    return bulks
