"""What the page shows of a frame: an auto-stretched 8-bit image, a histogram and statistics.

Pure functions on numpy arrays, meant to run in a worker thread: nothing here knows asyncio,
the device or HTTP. The stretch is PixInsight's screen transfer function (a midtones transfer
function whose black point sits a few sigma below the median and which maps the median to a
quarter of full scale), so that a dark sky frame shows its stars instead of a black square.

Cheap on purpose, since it shares the machine with the camera: one count of the values of
the preview's sample (every n-th pixel) gives the median, the spread, the histogram and a
lookup table for the stretch; only minimum, maximum and the saturated fraction are read from
every pixel (reductions numpy does in a millisecond or two).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

HISTOGRAM_BINS = 128
# Pixels on the longer side; the page shows it at most 640 px wide. Pillow's JPEG encoder
# holds the GIL for the whole image (about 4 ms at 1024x1024 here), which the event loop
# then waits for: a smaller preview keeps that pause short.
PREVIEW_MAX_SIDE = 768
TARGET_BACKGROUND = 0.25  # where the median lands after the stretch
SHADOWS_CLIP_SIGMA = 2.8
QUARTILES_PER_SIGMA = 1.349  # q75 - q25 of a normal distribution, in sigma
JPEG_QUALITY = 80

Counts = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class FrameStats:
    minimum: int
    maximum: int
    median: float  # of the sample the preview shows (exact when it is every pixel)
    saturated_fraction: float  # of all pixels at or above the channel's full scale
    full_scale: int


def subsample(pixels: NDArray[Any], max_side: int = PREVIEW_MAX_SIDE) -> NDArray[Any]:
    """Every n-th pixel so the longer side fits `max_side`: a view, not a copy."""
    step = max(1, -(-max(pixels.shape[:2]) // max_side))
    return pixels[::step, ::step]


def value_counts(pixels: NDArray[Any]) -> Counts:
    """How many pixels have each integer value, 0 to the largest present."""
    if pixels.size == 0:
        raise ValueError("an empty image has no statistics")
    return np.bincount(np.ascontiguousarray(pixels).reshape(-1))


def _at_rank(cumulative: Counts, rank: int) -> int:
    return int(np.searchsorted(cumulative, rank, side="right"))


def quantile(counts: Counts, fraction: float) -> float:
    """The value at `fraction` of the sorted pixels (the median at 0.5, mean of the middle
    two for an even count)."""
    cumulative = np.cumsum(counts)
    position = (int(cumulative[-1]) - 1) * fraction
    low, high = int(np.floor(position)), int(np.ceil(position))
    return (_at_rank(cumulative, low) + _at_rank(cumulative, high)) / 2.0


def frame_stats(pixels: NDArray[Any], full_scale: int,
                counts: Counts | None = None) -> FrameStats:
    """Statistics of an integer image; the median from `counts` when given (a sample's)."""
    if pixels.size == 0:
        raise ValueError("an empty image has no statistics")
    counts = value_counts(pixels) if counts is None else counts
    return FrameStats(
        minimum=int(pixels.min()),
        maximum=int(pixels.max()),
        median=quantile(counts, 0.5),
        saturated_fraction=int(np.count_nonzero(pixels >= full_scale)) / pixels.size,
        full_scale=full_scale,
    )


def histogram(counts: Counts, full_scale: int, bins: int = HISTOGRAM_BINS) -> list[int]:
    """`counts` in `bins` equal bins from 0 to full scale (values above it in the last)."""
    which = np.minimum(np.arange(counts.size) * bins // (full_scale + 1), bins - 1)
    binned = np.bincount(which, weights=counts, minlength=bins)
    return [int(c) for c in binned]


def midtones(x: NDArray[np.float64], m: float) -> NDArray[np.float64]:
    """The midtones transfer function: 0 -> 0, m -> 0.5, 1 -> 1."""
    return np.asarray(((m - 1.0) * x) / ((2.0 * m - 1.0) * x - m), dtype=np.float64)


def stretch_table(counts: Counts, full_scale: int) -> NDArray[np.uint8]:
    """The screen transfer function as a table from pixel value to 8-bit grey."""
    scale = float(max(full_scale, 1))
    median = quantile(counts, 0.5) / scale
    sigma = (quantile(counts, 0.75) - quantile(counts, 0.25)) / scale / QUARTILES_PER_SIGMA
    shadows = max(0.0, median - SHADOWS_CLIP_SIGMA * sigma)
    span = max(1.0 - shadows, 1e-6)
    x = np.clip((np.arange(counts.size) / scale - shadows) / span, 0.0, 1.0)
    background = (median - shadows) / span
    if 0.0 < background < 1.0:
        # m such that midtones(background, m) == TARGET_BACKGROUND
        t = TARGET_BACKGROUND
        m = background * (t - 1.0) / (2.0 * t * background - t - background)
        x = midtones(x, min(max(m, 1e-4), 1.0 - 1e-4))
    return np.asarray(np.rint(x * 255.0), dtype=np.uint8)


def stretch(pixels: NDArray[Any], full_scale: int) -> NDArray[np.uint8]:
    """An 8-bit rendering of `pixels` with the screen transfer function."""
    return np.asarray(stretch_table(value_counts(pixels), full_scale)[pixels], dtype=np.uint8)


def encode_jpeg(image: NDArray[np.uint8], quality: int = JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="L").save(out, "JPEG", quality=quality)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    """One image the page shows: the frame as saved, or one HDR channel of it."""

    label: str
    jpeg: bytes
    width: int  # of the frame, not of the preview
    height: int
    stats: FrameStats
    histogram: list[int]


def channel_preview(label: str, pixels: NDArray[Any], full_scale: int) -> ChannelPreview:
    small = subsample(pixels)
    counts = value_counts(small)
    return ChannelPreview(
        label=label,
        jpeg=encode_jpeg(stretch_table(counts, full_scale)[small]),
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        stats=frame_stats(pixels, full_scale, counts),
        histogram=histogram(counts, full_scale),
    )


def full_scale_of(pixels: NDArray[Any], shifted_12_bit: bool) -> int:
    """The value a saturated pixel has: 12-bit data sits in the top of 16-bit words."""
    if pixels.dtype == np.uint8:
        return 0xFF
    return 0xFFF0 if shifted_12_bit else int(np.iinfo(pixels.dtype).max)
