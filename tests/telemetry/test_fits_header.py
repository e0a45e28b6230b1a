"""Reading EXPTIME, DATE-OBS and IMAGETYP back from a frame's first FITS blocks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from astropy.io import fits

from qhy42_indi.telemetry.fits_header import file_header_values, header_values

KEYS = ("EXPTIME", "DATE-OBS", "IMAGETYP")


def fits_bytes(compressed: bool = False) -> bytes:
    header = fits.Header()
    header["EXPTIME"] = (12.5, "Total Exposure Time (s)")
    header["DATE-OBS"] = ("2026-01-02T03:04:05.678901", "UTC start date of observation")
    header["IMAGETYP"] = ("Dark Frame", "Frame Type")
    header["OBSERVER"] = "O'Brien"
    header["HDR"] = True
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    buffer = io.BytesIO()
    if compressed:
        hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)])
    else:
        hdus = fits.HDUList([fits.PrimaryHDU(data, header)])
    hdus.writeto(buffer)
    return buffer.getvalue()


def test_values_come_back_typed_from_a_plain_fits() -> None:
    values = header_values(fits_bytes(), (*KEYS, "OBSERVER", "HDR", "BITPIX"))
    assert values == {"EXPTIME": 12.5, "DATE-OBS": "2026-01-02T03:04:05.678901",
                      "IMAGETYP": "Dark Frame", "OBSERVER": "O'Brien", "HDR": True,
                      "BITPIX": 16}


def test_a_tile_compressed_fits_has_them_in_its_second_header() -> None:
    values = header_values(memoryview(fits_bytes(compressed=True)), KEYS)
    assert values["EXPTIME"] == 12.5 and values["IMAGETYP"] == "Dark Frame"


def test_what_is_not_fits_gives_nothing() -> None:
    assert header_values(b"\x78\x9c" + bytes(5000), KEYS) == {}
    assert header_values(b"", KEYS) == {}


def test_a_saved_file_gives_its_values_and_size(tmp_path: Path) -> None:
    path = tmp_path / "frame.fits"
    path.write_bytes(fits_bytes())
    values, size = file_header_values(path, KEYS)
    assert values["DATE-OBS"].startswith("2026-01-02")  # type: ignore[union-attr]
    assert size == path.stat().st_size
