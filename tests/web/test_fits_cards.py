"""Header cards read without astropy, checked against files astropy writes."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

from qhy42_indi.web.fits_cards import header_text, headers, image_header_value


def fits_bytes(hdus: fits.HDUList) -> bytes:
    out = io.BytesIO()
    hdus.writeto(out)
    return out.getvalue()


def test_values_keep_quotes_inside_strings_and_drop_comments() -> None:
    header = fits.Header()
    header["OBSERVER"] = ("O'Neil / guest", "who / what")
    header["EXPTIME"] = (2.5, "seconds")
    [found] = headers(fits_bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((3, 5), np.uint16),
                                                                header)])))
    assert found.value("OBSERVER") == "O'Neil / guest"
    assert found.value("EXPTIME") == "2.5"
    assert found.value("NAXIS1") == "5"
    assert found.value("MISSING") is None


def test_the_extensions_header_is_found_past_the_primary_data() -> None:
    primary = fits.PrimaryHDU(np.zeros((100, 100), np.uint16))
    primary.header["FRAME"] = "Light"
    image = fits.ImageHDU(np.zeros((4, 4), np.uint8))
    image.header["FRAME"] = "Dark"
    found = headers(fits_bytes(fits.HDUList([primary, image])))
    assert len(found) == 2
    assert image_header_value(found, "FRAME") == "Dark"  # the image's, not the primary's
    text = header_text(found).splitlines()
    assert "--- extension 1 ---" in text and "END" not in text


def test_truncated_bytes_give_what_is_complete() -> None:
    data = fits_bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((10, 10), np.uint16))]))
    assert len(headers(data[:2880])) == 1
    assert headers(data[:1000]) == []
