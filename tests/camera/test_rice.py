"""Our RICE_1 coder writes the bytes cfitsio's coder writes, tile for tile."""

from __future__ import annotations

import io
import weakref

import numpy as np
import pytest
from astropy.io import fits as afits
from astropy.io.fits.hdu.compressed._compression import compress_rice_1_c
from numpy.typing import NDArray

from qhy42_indi import rice
from qhy42_indi.camera import fits
from qhy42_indi.camera.fits import build_fits_fz

RNG = np.random.default_rng(42)


def cfitsio_tiles(frame: NDArray[np.generic], tile_rows: int) -> list[bytes]:
    if frame.dtype.itemsize == 2:
        stored = np.bitwise_xor(frame, np.uint16(0x8000)).view(np.int16)  # value - BZERO
    else:
        stored = frame
    return [compress_rice_1_c(np.ascontiguousarray(stored[row : row + tile_rows]), 32,
                              frame.dtype.itemsize)
            for row in range(0, frame.shape[0], tile_rows)]


FRAMES = {
    "dark with read noise": RNG.normal(300, 4, (64, 2048)).astype(np.uint16),
    "bright flat": RNG.normal(30000, 250, (64, 2048)).astype(np.uint16),
    "every value": RNG.integers(0, 65536, (32, 2048)).astype(np.uint16),  # raw blocks
    "zeros": np.zeros((16, 2048), np.uint16),  # flat blocks: a code each
    "ramp through the wrap": (np.arange(32 * 2048) * 37 % 65536).astype(np.uint16)
    .reshape(32, 2048),
    # a lone spike in a quiet block: a unary run longer than one 32-bit code
    "hot pixels": np.where(RNG.random((32, 2048)) < 0.002, 20000, 50).astype(np.uint16),
    "saturated stars": np.where(RNG.random((32, 2048)) < 0.01, 65535, 100).astype(np.uint16),
    "odd shape": RNG.integers(0, 4096, (37, 1001)).astype(np.uint16),
    "8-bit dark": RNG.normal(30, 3, (64, 2048)).clip(0, 255).astype(np.uint8),
    "8-bit every value": RNG.integers(0, 256, (16, 2048)).astype(np.uint8),
    "8-bit hot pixels": np.where(RNG.random((16, 999)) < 0.01, 255, 0).astype(np.uint8),
}


def test_numba_codes_here() -> None:
    assert rice.available()  # else the tests below would compare cfitsio with itself


@pytest.mark.parametrize("tile_rows", [1, 16])
@pytest.mark.parametrize("name", list(FRAMES))
def test_tiles_are_cfitsios_bytes(name: str, tile_rows: int) -> None:
    frame = FRAMES[name]
    ours = [bytes(tile) for tile in rice.encode_tiles(frame, tile_rows, 32)]
    assert ours == cfitsio_tiles(frame, tile_rows)


def test_big_endian_and_strided_frames_code_by_value() -> None:
    frame = FRAMES["dark with read noise"]
    expected = cfitsio_tiles(frame, 16)
    for variant in (frame.astype(">u2"), np.repeat(frame, 2, axis=1)[:, ::2]):
        assert [bytes(tile) for tile in rice.encode_tiles(variant, 16, 32)] == expected


def test_held_tiles_keep_their_bytes_and_free_ones_are_reused() -> None:
    first, second = FRAMES["dark with read noise"], FRAMES["bright flat"]
    held = rice.encode_tiles(first, 16, 32)
    before = [bytes(tile) for tile in held]
    for _ in range(10):  # more calls than the pool keeps: none may take the held buffer
        assert [bytes(t) for t in rice.encode_tiles(second, 16, 32)] == cfitsio_tiles(second, 16)
    assert [bytes(tile) for tile in held] == before
    buffer = weakref.ref(held[0].obj.base)  # the coded words, not held by the test
    del held
    assert buffer() is not None  # kept for the next call (a fresh array per call is freed)
    again = rice.encode_tiles(first, 16, 32)
    assert [bytes(tile) for tile in again] == before


def test_other_pixel_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        rice.encode_tiles(np.zeros((4, 4), np.int32), 1, 32)


def test_without_numba_cfitsios_coder_gives_the_same_file(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = FRAMES["bright flat"]
    ours = build_fits_fz(frame, [])
    monkeypatch.setattr(rice, "available", lambda: False)
    assert build_fits_fz(frame, []) == ours
    monkeypatch.setattr(fits, "compress_rice_1_c", None)  # neither: astropy's writer
    assert build_fits_fz(frame, []) == ours
    with afits.open(io.BytesIO(ours)) as hdus:
        np.testing.assert_array_equal(hdus[1].data, frame)
