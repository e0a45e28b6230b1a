"""Stream frames as KStars' video window takes them: cropped to CCD_STREAM_FRAME, raw 8-bit
(width x height bytes), raw 16-bit little-endian on request, or one JPEG per frame."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from qhy42_indi.camera.stream_frames import (
    MJPEG_FORMAT,
    RAW_FORMAT,
    StreamWindow,
    crop,
    encode_stream_frame,
    needs_work,
)


def frame16() -> np.ndarray:
    rng = np.random.default_rng(2)
    return (rng.integers(0, 4096, (40, 64)) << 4).astype(np.uint16)


def test_a_16_bit_frame_streams_as_its_top_byte_one_byte_per_pixel() -> None:
    pixels = frame16()
    data, fmt = encode_stream_frame(pixels, mjpeg=False, full_depth=False)
    assert fmt == RAW_FORMAT
    raw = np.asarray(data).tobytes()
    assert len(raw) == 64 * 40
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(40, 64), pixels >> 8)


def test_full_depth_streams_16_bit_little_endian() -> None:
    pixels = frame16()
    data, fmt = encode_stream_frame(pixels, mjpeg=False, full_depth=True)
    raw = np.asarray(data).tobytes()
    assert fmt == RAW_FORMAT and len(raw) == 2 * 64 * 40
    assert np.array_equal(np.frombuffer(raw, "<u2").reshape(40, 64), pixels)


def test_an_8_bit_frame_goes_out_as_it_is() -> None:
    pixels = (frame16() >> 8).astype(np.uint8)
    assert not needs_work(pixels, mjpeg=False, full_depth=False)
    data, _ = encode_stream_frame(pixels, mjpeg=False, full_depth=True)
    assert np.asarray(data).tobytes() == pixels.tobytes()


def test_mjpeg_is_a_grey_jpeg_of_the_frame() -> None:
    pixels = frame16()
    data, fmt = encode_stream_frame(pixels, mjpeg=True, full_depth=False)
    assert fmt == MJPEG_FORMAT and isinstance(data, bytes) and data[:2] == b"\xff\xd8"
    image = Image.open(io.BytesIO(data))
    assert (image.mode, image.size) == ("L", (64, 40))


def test_the_window_crops_and_fits_the_frame() -> None:
    pixels = frame16()
    assert crop(pixels, StreamWindow.full(64, 40)) is pixels
    window = StreamWindow(10, 5, 20, 8)
    assert np.array_equal(crop(pixels, window), pixels[5:13, 10:30])
    assert StreamWindow(60, 30, 20, 20).fitted(64, 40) == StreamWindow(60, 30, 4, 10)
    assert StreamWindow(100, -3, 5, 5).fitted(64, 40) == StreamWindow(63, 0, 1, 5)
