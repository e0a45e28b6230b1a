"""The page's FITS headers: of a frame's bytes and of saved files, plain and compressed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from astropy.io import fits

from qhy42_indi.web.fits_cards import (
    frame_headers,
    header_text,
    image_header_value,
    read_headers,
)


def fits_bytes(hdus: fits.HDUList) -> bytes:
    out = io.BytesIO()
    hdus.writeto(out)
    return out.getvalue()


def test_values_keep_quotes_inside_strings_and_drop_comments() -> None:
    header = fits.Header()
    header["OBSERVER"] = ("O'Neil / guest", "who / what")
    header["EXPTIME"] = (2.5, "seconds")
    found = frame_headers(fits_bytes(fits.HDUList([
        fits.PrimaryHDU(np.zeros((3, 5), np.uint16), header)])))
    assert len(found) == 1
    assert image_header_value(found, "OBSERVER") == "O'Neil / guest"
    assert image_header_value(found, "EXPTIME") == "2.5"
    assert image_header_value(found, "NAXIS1") == "5"
    assert image_header_value(found, "MISSING") is None


def test_the_extensions_header_is_found_past_the_primary_data() -> None:
    primary = fits.PrimaryHDU(np.zeros((100, 100), np.uint16))
    primary.header["FRAME"] = "Light"
    image = fits.ImageHDU(np.zeros((4, 4), np.uint8))
    image.header["FRAME"] = "Dark"
    found = frame_headers(fits_bytes(fits.HDUList([primary, image])))
    assert len(found) == 2
    assert image_header_value(found, "FRAME") == "Dark"  # the image's, not the primary's
    text = header_text(found).splitlines()
    assert "--- extension 1 ---" in text and "END" not in text


def test_truncated_bytes_give_what_is_complete() -> None:
    data = fits_bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((10, 10), np.uint16))]))
    assert len(frame_headers(data[:2880])) == 1
    assert frame_headers(data[:1000]) == []


def test_a_compressed_file_gives_its_image_header_and_a_stranger_file_none(
    tmp_path: Path
) -> None:
    image = fits.CompImageHDU(np.zeros((64, 64), np.uint16), compression_type="RICE_1")
    image.header["FRAME"] = "Flat"
    image.header["EXPTIME"] = 3.0
    saved = tmp_path / "flat.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(saved)
    found = read_headers(saved)
    assert image_header_value(found, "FRAME") == "Flat"
    assert image_header_value(found, "EXPTIME") == "3.0"
    stranger = tmp_path / "notes.fits"
    stranger.write_text("not a FITS file at all")
    assert read_headers(stranger) == []
