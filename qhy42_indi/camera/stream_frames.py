"""What a live frame becomes on CCD1 while streaming: cropped, then encoded as the client asked.

The formats are those of libindi's stream manager and KStars' video window:

* RAW, format `.stream`: the pixel bytes, row by row, nothing else. The size and the shape
  travel apart: KStars takes the width and height from CCD_STREAM_FRAME (binned pixels) and
  shows a frame whose size is width x height (8-bit grey) or three times that (RGB). So a
  16-bit frame is sent as its top byte, exactly what the camera's own 8-bit mode outputs (and
  what libindi sends: it reduces every deeper stream to 8 bits), unless STREAM_FULL_DEPTH asks
  for 16 bits: then 2 x width x height bytes, little-endian, for clients that read them
  (libindi's STREAM_FULL_DEPTH; KStars does not display those).
* MJPEG, format `.stream_jpg`: one baseline JPEG per frame, 8-bit grey, quality 85 as
  libindi's encoder; KStars decodes it whatever CCD_STREAM_FRAME says.

`StreamWindow` is CCD_STREAM_FRAME: a software crop in binned pixels of the camera's frame,
applied before streaming and before recording, as libindi does.

Pure and blocking: the streaming part runs encode_stream_frame in a worker thread when there
is work to do (a conversion or a JPEG).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

RAW_FORMAT = ".stream"
MJPEG_FORMAT = ".stream_jpg"
JPEG_QUALITY = 85

Pixels = NDArray[Any]


@dataclass(frozen=True, slots=True)
class StreamWindow:
    """A crop in binned pixels of the frame: x, y of the top left corner, width, height."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def full(cls, width: int, height: int) -> StreamWindow:
        return cls(0, 0, width, height)

    def fitted(self, width: int, height: int) -> StreamWindow:
        """This window moved and shrunk to fit a width x height frame (at least one pixel)."""
        x = min(max(0, self.x), width - 1)
        y = min(max(0, self.y), height - 1)
        return StreamWindow(x, y, max(1, min(self.width, width - x)),
                            max(1, min(self.height, height - y)))


def crop(pixels: Pixels, window: StreamWindow) -> Pixels:
    """The window's pixels (a view when the window is the whole frame, else a copy), C order."""
    height, width = pixels.shape
    if window == StreamWindow.full(width, height):
        return pixels
    view = pixels[window.y:window.y + window.height, window.x:window.x + window.width]
    return np.ascontiguousarray(view)


def to_8bit(pixels: Pixels) -> NDArray[np.uint8]:
    """8-bit pixels: as they are, or the top byte of 16-bit words."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint8, copy=False)
    return (pixels >> 8).astype(np.uint8)


def needs_work(pixels: Pixels, mjpeg: bool, full_depth: bool) -> bool:
    """False when the frame's own bytes go out as they are (no thread needed)."""
    return mjpeg or (pixels.dtype != np.uint8 and not full_depth)


def encode_stream_frame(
    pixels: Pixels, *, mjpeg: bool, full_depth: bool
) -> tuple[bytes | NDArray[Any], str]:
    """(payload, format) for one cropped frame; the payload is bytes or a C-contiguous array
    whose memory is the payload."""
    if mjpeg:
        return encode_mjpeg(to_8bit(pixels)), MJPEG_FORMAT
    if full_depth and pixels.dtype != np.uint8:
        return np.ascontiguousarray(pixels, dtype="<u2"), RAW_FORMAT
    return np.ascontiguousarray(to_8bit(pixels)), RAW_FORMAT


def encode_mjpeg(pixels: NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
