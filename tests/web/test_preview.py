"""The preview's statistics, histogram and stretch, on arrays whose answers are known."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from qhy42_indi.web.preview import (
    channel_preview,
    frame_stats,
    full_scale_of,
    histogram,
    stretch,
    subsample,
    value_counts,
)


def test_stats_are_exact_min_max_median_and_saturated_fraction() -> None:
    pixels = np.array([[10, 20, 30, 40], [50, 65520, 65520, 65535]], dtype=np.uint16)
    stats = frame_stats(pixels, full_scale=0xFFF0)
    assert (stats.minimum, stats.maximum) == (10, 65535)
    assert stats.median == (40 + 50) / 2  # even count: the mean of the middle two
    assert stats.saturated_fraction == pytest.approx(3 / 8)


def test_stats_of_odd_count_and_of_8_bit_frames() -> None:
    pixels = np.array([[7, 255, 3]], dtype=np.uint8)
    stats = frame_stats(pixels, full_scale=full_scale_of(pixels, shifted_12_bit=True))
    assert stats.full_scale == 255
    assert (stats.minimum, stats.median, stats.maximum) == (3, 7.0, 255)
    assert stats.saturated_fraction == pytest.approx(1 / 3)


def test_stats_match_numpy_on_a_noisy_frame() -> None:
    rng = np.random.default_rng(1)
    pixels = (rng.integers(0, 4096, size=(301, 257), dtype=np.uint16) << 4).astype(np.uint16)
    stats = frame_stats(pixels, 0xFFF0)
    assert stats.median == float(np.median(pixels))
    assert stats.saturated_fraction == pytest.approx(float(np.mean(pixels >= 0xFFF0)))


def test_no_saturated_pixel_below_full_scale() -> None:
    assert frame_stats(np.full((4, 4), 1000, np.uint16), 0xFFF0).saturated_fraction == 0.0


def test_empty_image_is_an_error() -> None:
    with pytest.raises(ValueError):
        frame_stats(np.zeros((0, 5), np.uint16), 0xFFF0)


def test_histogram_counts_every_pixel_in_its_bin() -> None:
    pixels = np.array([0, 0, 127, 128, 255], dtype=np.uint8)
    assert histogram(value_counts(pixels), 255, bins=2) == [3, 2]
    assert histogram(value_counts(pixels), 255, bins=256)[127:129] == [1, 1]


def test_stretch_puts_a_dark_sky_background_near_a_quarter_and_keeps_stars_bright() -> None:
    rng = np.random.default_rng(2)
    sky = rng.normal(1200.0, 15.0, size=(256, 256))
    sky[100:103, 50:53] = 30000.0  # a star
    pixels = (np.clip(sky, 0, 4095 * 16)).astype(np.uint16)
    shown = stretch(pixels, 0xFFF0)
    assert shown.dtype == np.uint8
    assert 40 <= np.median(shown) <= 90  # 0.25 of 255 is 64: the background is visible
    assert shown[101, 51] > 240  # the star stands out
    assert shown.std() > 10  # the noise is visible, not a flat grey


def test_stretch_of_a_constant_frame_does_not_fail() -> None:
    shown = stretch(np.full((8, 8), 5000, np.uint16), 0xFFF0)
    assert shown.shape == (8, 8)


def test_subsample_fits_the_longer_side_without_copying() -> None:
    pixels = np.zeros((2048, 4096), np.uint16)
    small = subsample(pixels, 1024)
    assert small.shape == (512, 1024)
    assert np.shares_memory(small, pixels)


def test_median_of_a_large_frame_is_its_samples_and_the_rest_exact() -> None:
    pixels = np.full((2048, 2048), 1000, np.uint16)
    pixels[1::3, :] = 3000  # rows the preview's sample (every 3rd) skips
    pixels[2::3, :] = 3000
    pixels[1, 1] = 0xFFF0
    stats = channel_preview("HG", pixels, 0xFFF0).stats
    assert stats.median == 1000.0
    assert (stats.minimum, stats.maximum) == (1000, 0xFFF0)
    assert stats.saturated_fraction == 1 / pixels.size


def test_channel_preview_is_a_jpeg_of_the_preview_size_with_full_frame_stats() -> None:
    pixels = np.arange(2048 * 2048, dtype=np.uint32).reshape(2048, 2048) % 4096
    pixels = (pixels << 4).astype(np.uint16)
    preview = channel_preview("HG", pixels, 0xFFF0)
    image = Image.open(io.BytesIO(preview.jpeg))
    assert image.format == "JPEG" and image.size == (683, 683)  # every 3rd pixel
    assert (preview.width, preview.height) == (2048, 2048)
    assert preview.stats.maximum == 4095 << 4
    assert sum(preview.histogram) == 683 * 683
