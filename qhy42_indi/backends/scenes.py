"""What the simulated camera looks at: dark, a flat field, or a star field.

What it is for: the scene dataclasses a simulator user picks (`set_scene`), and the fixed star
field of a camera as a sparse map of electron rates per sensor pixel. Rates are in electrons per
second per pixel, after quantum efficiency, so no optics or photometry model is needed.

What it is not: no noise, no sensor response, no geometry of a particular frame (renderer.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.sensor_model import SENSOR_HEIGHT_PX, SENSOR_WIDTH_PX, camera_seed


@dataclass(frozen=True, slots=True)
class DarkScene:
    """The sensor covered: bias, dark current, amp glow and hot pixels only."""

    @property
    def uniform_e_per_s(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class FlatScene:
    """A uniform illumination of every pixel."""

    level_e_per_s: float = 5000.0

    @property
    def uniform_e_per_s(self) -> float:
        return self.level_e_per_s


@dataclass(frozen=True, slots=True)
class StarFieldScene:
    """Point sources with a Gaussian PSF on a uniform sky; the field is fixed per camera.

    Star fluxes follow counts that grow 10**0.4 per magnitude (a uniform density of stars in
    space), from `brightest_e_per_s` down over `magnitude_span` magnitudes.
    """

    sky_e_per_s: float = 20.0
    star_count: int = 500
    fwhm_px: float = 2.5
    brightest_e_per_s: float = 1.0e6
    magnitude_span: float = 8.0

    @property
    def uniform_e_per_s(self) -> float:
        return self.sky_e_per_s


Scene = DarkScene | FlatScene | StarFieldScene

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
STAMP_SIGMAS = 4.0  # a stamp reaches 4 sigma: the PSF beyond holds < 0.04 % of the flux


@dataclass(frozen=True, slots=True)
class SparseRates:
    """Electron rates on a sparse set of sensor pixels (sorted unique flat indices)."""

    flat_index: npt.NDArray[np.int64]
    e_per_s: npt.NDArray[np.float64]

    @staticmethod
    def empty() -> SparseRates:
        return SparseRates(np.zeros(0, np.int64), np.zeros(0, np.float64))


def star_rates(scene: Scene, camera_id: str) -> SparseRates:
    """The star light of `scene` on the sensor of camera `camera_id`, summed per pixel."""
    if not isinstance(scene, StarFieldScene) or scene.star_count == 0:
        return SparseRates.empty()
    rng = np.random.default_rng(camera_seed(camera_id, f"stars/{scene.star_count}"))
    sigma_px = scene.fwhm_px / FWHM_PER_SIGMA
    radius_px = max(1, math.ceil(STAMP_SIGMAS * sigma_px))
    x = rng.uniform(0.0, SENSOR_WIDTH_PX, scene.star_count)
    y = rng.uniform(0.0, SENSOR_HEIGHT_PX, scene.star_count)
    fluxes = _star_fluxes(rng, scene)
    offsets = np.arange(-radius_px, radius_px + 1)
    stamp_dy, stamp_dx = np.meshgrid(offsets, offsets, indexing="ij")
    columns = np.floor(x)[:, None, None].astype(np.int64) + stamp_dx[None]
    rows = np.floor(y)[:, None, None].astype(np.int64) + stamp_dy[None]
    # Sampled at pixel centres within a circle (the square's corners would add pixels to draw
    # but no light) and normalised over it, so a star's flux is conserved.
    in_circle = (stamp_dx**2 + stamp_dy**2 <= radius_px**2)[None]
    weight = np.where(in_circle, 1.0, 0.0) * np.exp(
        -((columns + 0.5 - x[:, None, None]) ** 2 + (rows + 0.5 - y[:, None, None]) ** 2)
        / (2.0 * sigma_px**2)
    )
    weight /= weight.sum(axis=(1, 2), keepdims=True)
    rates = weight * fluxes[:, None, None]
    on_sensor = (
        (columns >= 0) & (columns < SENSOR_WIDTH_PX) & (rows >= 0) & (rows < SENSOR_HEIGHT_PX)
    )
    inside = on_sensor & in_circle
    flat = (rows * SENSOR_WIDTH_PX + columns)[inside]
    unique, inverse = np.unique(flat, return_inverse=True)
    summed = np.bincount(inverse, weights=rates[inside], minlength=unique.size).astype(np.float64)
    return SparseRates(unique.astype(np.int64), summed)


def _star_fluxes(rng: np.random.Generator, scene: StarFieldScene) -> npt.NDArray[np.float64]:
    # N(<m) grows as 10**(0.4 m): invert its CDF over [0, span] magnitudes below the brightest.
    low = 10.0 ** (-0.4 * scene.magnitude_span)
    magnitudes = np.log10(rng.uniform(low, 1.0, scene.star_count)) / 0.4 + scene.magnitude_span
    return scene.brightest_e_per_s * 10.0 ** (-0.4 * magnitudes)
