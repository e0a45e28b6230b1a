"""FITS headers for the page: of a saved file (the listing's frame type and exposure) and of
the last frame's bytes (the header on demand), read with astropy.

Only headers are read, never the data: astropy opens lazily and a tile-compressed .fits.fz
gives its image header without decompressing anything. Blocking: call these from a worker
thread.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

MAX_HEADERS = 2  # the primary and, for .fits.fz, the compressed image's
HEADER_BYTES = 64 * 2880  # where the headers of a frame we built end, with room to spare


def read_headers(path: Path) -> list[fits.Header]:
    """The headers of a FITS file (primary, and the first extension's when there is one);
    [] for a file that is not FITS. OSError when it cannot be read."""
    with path.open("rb") as file:
        return _headers(file)


def frame_headers(data: bytes | bytearray | memoryview) -> list[fits.Header]:
    """The headers at the start of a frame's bytes (a frame's first HEADER_BYTES hold them)."""
    return _headers(io.BytesIO(bytes(memoryview(data)[:HEADER_BYTES])))


def _headers(source: BinaryIO) -> list[fits.Header]:
    found: list[fits.Header] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)  # a truncated tail is expected here
        try:
            with fits.open(source, lazy_load_hdus=True, memmap=False) as hdus:
                for index in range(MAX_HEADERS):
                    found.append(hdus[index].header.copy())
        except (IndexError, OSError, ValueError):
            pass  # no more headers, or not FITS: what was found is what there is
    return found


def image_header_value(found: list[fits.Header], key: str) -> str | None:
    """`key` from the image header, as text: the compressed image's when there is one, else
    the primary's; None when absent."""
    for header in reversed(found):
        if key in header:
            return str(header[key]).rstrip()
    return None


def header_text(found: list[fits.Header]) -> str:
    parts = []
    for index, header in enumerate(found):
        if index:
            parts.append(f"--- extension {index} ---")
        parts.extend(str(card).rstrip() for card in header.cards)
    return "\n".join(parts) + "\n"
