"""HDR merge: one linear 16-bit image from the QHY42PRO's low- and high-gain halves.

The SDK's splice model (reference qhy-sdk-and-drivers.md 6.3): each channel maps linearly,
y = k * v + b, and the high-gain value is used below a switch point x (in high-gain units),
the low-gain value above it. Output units are high-gain 12-bit ADU, so the high-gain channel's
precision is kept and the low-gain channel extends the range up to 16 bits (the ratio of the
two conversion gains is about 12-16). k and b are fitted on each frame from pixels that both
channels measure well (the SDK's "compute k, b" mode); a frame with too little signal to fit
(a dark) reuses the last fit. The parameters go in the FITS header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.base import Channel, Frame
from qhy42_indi.camera.fits import Card

ADC_SHIFT = 4  # 12-bit data sits in the top of 16-bit words
ADC_MAX = 4095
SWITCH_POINT_ADU = 3600  # below the high-gain channel's saturation, above its noise
MIN_FIT_PIXELS = 500
FIT_FLOOR_ABOVE_OFFSET_ADU = 40  # low-gain pixels this far above the pedestal carry signal
OUTPUT_MAX = 65535
# Before any frame could be fitted: a typical conversion gain ratio (LG / HG e-/ADU).
DEFAULT_RATIO = 13.5


@dataclass(frozen=True, slots=True)
class Splice:
    k: float
    b: float
    switch_point_adu: int
    fitted_pixels: int


def merge_hdr(
    frame: Frame, columns: tuple[int, int] | None, previous: Splice | None = None
) -> tuple[npt.NDArray[np.uint16], Splice]:
    """The merged image, cut to output columns [x, x + width) in unbinned pixels, and the
    splice used (pass it back as `previous` so a frame without signal can reuse it)."""
    spans = {span.channel: span for span in frame.channels}
    if Channel.LOW_GAIN not in spans or Channel.HIGH_GAIN not in spans or frame.bit_depth != 16:
        raise ValueError("HDR merge needs both channels in a 16-bit frame")
    low, high = spans[Channel.LOW_GAIN], spans[Channel.HIGH_GAIN]
    count = min(low.column_count, high.column_count)
    pixels = frame.pixels
    lg = (pixels[:, low.first_column : low.first_column + count] >> ADC_SHIFT).astype(np.float32)
    hg = (pixels[:, high.first_column : high.first_column + count] >> ADC_SHIFT).astype(
        np.float32
    )
    splice = fit_splice(lg, hg, frame.offset, previous)
    merged = np.where(hg < splice.switch_point_adu, hg, splice.k * lg + splice.b)
    result = np.clip(np.rint(merged), 0, OUTPUT_MAX).astype(np.uint16)
    if columns is not None:
        x, width = columns
        first, stop = x // frame.bin_x, (x + width) // frame.bin_x
        result = np.ascontiguousarray(result[:, first:stop])
    return result, splice


def fit_splice(
    lg: npt.NDArray[np.float32],
    hg: npt.NDArray[np.float32],
    offset_adu: int,
    previous: Splice | None = None,
) -> Splice:
    """k, b of hg = k * lg + b over pixels both channels measure well."""
    usable = (hg < SWITCH_POINT_ADU) & (hg > offset_adu) & (
        lg > offset_adu + FIT_FLOOR_ABOVE_OFFSET_ADU
    )
    count = int(np.count_nonzero(usable))
    if count >= MIN_FIT_PIXELS:
        k, b = np.polyfit(lg[usable].astype(np.float64), hg[usable].astype(np.float64), 1)
        return Splice(float(k), float(b), SWITCH_POINT_ADU, count)
    if previous is not None:
        return Splice(previous.k, previous.b, previous.switch_point_adu, 0)
    # Both channels share the pedestal: k * offset + b = offset.
    return Splice(DEFAULT_RATIO, offset_adu * (1 - DEFAULT_RATIO), SWITCH_POINT_ADU, 0)


def splice_cards(splice: Splice) -> list[Card]:
    return [
        Card("HDRMERGE", True, "LG and HG channels merged"),
        Card("HDRUNIT", "HG ADU12", "output unit: high-gain 12-bit ADU"),
        Card("HDR_K", round(splice.k, 6), "LG to HG scale, out = K * LG + B"),
        Card("HDR_B", round(splice.b, 3), "LG to HG offset (HG ADU12)"),
        Card("HDR_X", splice.switch_point_adu, "HG used below this value (HG ADU12)"),
        Card("HDR_NFIT", splice.fitted_pixels, "pixels in the k, b fit (0: reused)"),
    ]
