"""HDR merge: one linear 16-bit image from the QHY42PRO's low- and high-gain halves.

The SDK's splice model (reference qhy-sdk-and-drivers.md 6.3): each channel maps linearly,
y = k * v + b, and the high-gain value is used below a switch point x (in high-gain units),
the low-gain value above it. Output units are high-gain 12-bit ADU, so the high-gain channel's
precision is kept and the low-gain channel extends the range up to 16 bits (the ratio of the
two conversion gains is about 12-16). k and b are fitted on each frame from pixels that both
channels measure well (the SDK's "compute k, b" mode); a frame with too little signal to fit
(a dark) reuses the last fit. The parameters go in the FITS header.

It runs in a worker thread once per frame, so it is built to be cheap and to share nothing:
the fit is closed-form least squares on a fixed grid subsample of a few 10^4 pixels, and the
output is written in blocks of rows through a lookup table of the low-gain branch, so no
full-size float copy of either half is made; a block that is all one branch skips the other,
and row ranges are merged on several threads at once. Every call allocates its own buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.base import Channel, Frame
from qhy42_indi.camera.fits import Card
from qhy42_indi.row_work import RowWork

ADC_SHIFT = 4  # 12-bit data sits in the top of 16-bit words
ADC_MAX = 4095
SWITCH_POINT_ADU = 3600  # below the high-gain channel's saturation, above its noise
MIN_FIT_PIXELS = 500
FIT_FLOOR_ABOVE_OFFSET_ADU = 40  # low-gain pixels this far above the pedestal carry signal
OUTPUT_MAX = 65535
# Before any frame could be fitted: a typical conversion gain ratio (LG / HG e-/ADU).
DEFAULT_RATIO = 13.5
# About this many pixels of the overlap go into the fit: the statistical error of k is then
# ~0.1 % on a flat, far below what the splice needs, and the fit costs well under a ms.
FIT_SAMPLE_PIXELS = 1 << 16
# Rows merged at a time: a block's mask and the gather's index copy stay in the CPU cache
# and each numpy call is short.
ROW_BLOCK = 64
WORD_COUNT = 1 << 16
# Row ranges merged in parallel (one in the calling thread).
MERGE_WORK = RowWork("hdr-merge", most_threads=4)

Words = npt.NDArray[np.uint16]
Values = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, slots=True)
class Splice:
    k: float
    b: float
    switch_point_adu: int
    fitted_pixels: int


def merge_hdr(
    frame: Frame, columns: tuple[int, int] | None, previous: Splice | None = None
) -> tuple[Words, Splice]:
    """The merged image, cut to output columns [x, x + width) in unbinned pixels, and the
    splice used (pass it back as `previous` so a frame without signal can reuse it)."""
    low, high = _channel_views(frame)
    lg_sample, hg_sample = _fit_sample(low, high)
    splice = fit_splice(lg_sample, hg_sample, frame.offset, previous)
    if columns is not None:
        x, width = columns
        cut = slice(x // frame.bin_x, (x + width) // frame.bin_x)
        low, high = low[:, cut], high[:, cut]
    return _spliced(low, high, splice), splice


def _channel_views(frame: Frame) -> tuple[Words, Words]:
    """The low- and high-gain halves as views of the frame's words (no copies)."""
    spans = {span.channel: span for span in frame.channels}
    if Channel.LOW_GAIN not in spans or Channel.HIGH_GAIN not in spans or frame.bit_depth != 16:
        raise ValueError("HDR merge needs both channels in a 16-bit frame")
    low, high = spans[Channel.LOW_GAIN], spans[Channel.HIGH_GAIN]
    count = min(low.column_count, high.column_count)
    pixels: Words = frame.pixels  # type: ignore[assignment]  # bit_depth 16 is uint16
    return (
        pixels[:, low.first_column : low.first_column + count],
        pixels[:, high.first_column : high.first_column + count],
    )


def _fit_sample(low: Words, high: Words) -> tuple[Values, Values]:
    """Every Nth row and column of both halves, in 12-bit ADU: the same pixels in each."""
    step = max(1, math.isqrt(low.size // FIT_SAMPLE_PIXELS))
    grid = (slice(step // 2, None, step), slice(step // 2, None, step))
    return (
        (low[grid] >> ADC_SHIFT).astype(np.float64),
        (high[grid] >> ADC_SHIFT).astype(np.float64),
    )


def fit_splice(
    lg: Values,
    hg: Values,
    offset_adu: int,
    previous: Splice | None = None,
) -> Splice:
    """k, b of hg = k * lg + b over pixels both channels measure well.

    The line is fitted as lg on hg and inverted. Least squares puts all the noise in the
    dependent variable; the high-gain channel's read noise is about ten times smaller in
    electrons, so taking it as the regressor leaves k unbiased, where hg on lg would be
    flattened by the low-gain read noise (by ~15 % on a flat, whose only spread is shot noise).
    """
    usable = (hg < SWITCH_POINT_ADU) & (hg > offset_adu) & (
        lg > offset_adu + FIT_FLOOR_ABOVE_OFFSET_ADU
    )
    count = int(np.count_nonzero(usable))
    line = _inverse_fit(lg[usable], hg[usable]) if count >= MIN_FIT_PIXELS else None
    if line is not None:
        return Splice(line[0], line[1], SWITCH_POINT_ADU, count)
    if previous is not None:
        return Splice(previous.k, previous.b, previous.switch_point_adu, 0)
    # Both channels share the pedestal: k * offset + b = offset.
    return Splice(DEFAULT_RATIO, offset_adu * (1 - DEFAULT_RATIO), SWITCH_POINT_ADU, 0)


def _inverse_fit(lg: Values, hg: Values) -> tuple[float, float] | None:
    """(k, b) from the centred sums of lg = a * hg + c, k = 1 / a; None if lg does not rise
    with hg (no signal shared by the channels)."""
    x, y = hg.astype(np.float64), lg.astype(np.float64)
    x_mean, y_mean = float(x.mean()), float(y.mean())
    dx = x - x_mean
    # Not np.dot: that is BLAS, whose worker threads then spin on the other cores for a
    # 65536-element sum that numpy's own reduction does in a few microseconds.
    sxx = float(np.add.reduce(dx * dx))
    sxy = float(np.add.reduce(dx * (y - y_mean)))
    if sxx <= 0.0 or sxy <= 0.0:
        return None
    k = sxx / sxy
    return k, x_mean - k * y_mean


def _low_gain_table(splice: Splice) -> Words:
    """The low-gain branch for every 16-bit word: clip(rint(k * (word >> 4) + b))."""
    adu = np.arange(ADC_MAX + 1, dtype=np.float64)
    branch = np.clip(np.rint(splice.k * adu + splice.b), 0, OUTPUT_MAX).astype(np.uint16)
    # Binned 16-bit words carry fraction bits below the 12-bit value: the shift drops them.
    return np.repeat(branch, WORD_COUNT // (ADC_MAX + 1))


def _spliced(low: Words, high: Words, splice: Splice) -> Words:
    """hg where hg < x, else the low-gain branch, into one output array: row ranges on several
    threads (numpy runs these loops without the GIL), each block by block."""
    table = _low_gain_table(splice)
    out = np.empty(low.shape, dtype=np.uint16)
    rows = low.shape[0]
    groups = MERGE_WORK.groups(rows // ROW_BLOCK)
    bounds = [rows * g // groups for g in range(groups + 1)]
    switch_word = splice.switch_point_adu << ADC_SHIFT  # hg12 < x exactly when word < x << 4
    MERGE_WORK.run(
        lambda start, stop: _splice_rows(low, high, out, table, switch_word, start, stop),
        bounds)
    return out


def _splice_rows(low: Words, high: Words, out: Words, table: Words, switch_word: int,
                 first: int, stop: int) -> None:
    columns = low.shape[1]
    mask = np.empty((ROW_BLOCK, columns), dtype=np.bool_)
    # take() converts any other index type to intp on every call, which costs more than the
    # gather itself: the block's indices are copied once into a buffer of that type.
    index = np.empty((ROW_BLOCK, columns), dtype=np.intp)
    for start in range(first, stop, ROW_BLOCK):
        rows = slice(start, min(start + ROW_BLOCK, stop))
        block, high_block = out[rows], high[rows]
        count = block.shape[0]
        use_high = mask[:count]
        np.less(high_block, switch_word, out=use_high)
        high_pixels = int(np.count_nonzero(use_high))
        # Most blocks are all one branch (the sky below the switch, a saturated flat above).
        if high_pixels == use_high.size:
            np.right_shift(high_block, ADC_SHIFT, out=block)
            continue
        block_index = index[:count]
        np.copyto(block_index, low[rows], casting="unsafe")
        np.take(table, block_index, out=block, mode="clip")  # "clip": no index check
        if high_pixels:
            np.right_shift(high_block, ADC_SHIFT, out=block, where=use_high)


def splice_cards(splice: Splice) -> list[Card]:
    return [
        Card("HDRMERGE", True, "LG and HG channels merged"),
        Card("HDRUNIT", "HG ADU12", "output unit: high-gain 12-bit ADU"),
        Card("HDR_K", round(splice.k, 6), "LG to HG scale, out = K * LG + B"),
        Card("HDR_B", round(splice.b, 3), "LG to HG offset (HG ADU12)"),
        Card("HDR_X", splice.switch_point_adu, "HG used below this value (HG ADU12)"),
        Card("HDR_NFIT", splice.fitted_pixels, "pixels in the k, b fit (0: reused)"),
    ]
