"""From a backend Frame to what clients get: FITS (and its base64) built once, saved, sent.

The FITS and its base64 are produced together in one worker thread, once per frame; the same
bytes go to the local file and, through the hub, to every connection. Local saves are atomic
(upload.py). The order on the wire is libindi's: CCD_FILE_PATH (Local/Both), then the CCD1
BLOB (Client/Both); the caller then reports CCD_EXPOSURE Ok.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pybase64
from numpy.typing import NDArray

from qhy42_indi.camera.fits import Card, EncodedFrame, encode_frame
from qhy42_indi.camera.upload import save_frame


class UploadMode:
    CLIENT = "UPLOAD_CLIENT"
    LOCAL = "UPLOAD_LOCAL"
    BOTH = "UPLOAD_BOTH"


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    encoded: EncodedFrame
    base64: bytes | None  # None when no client is to receive it


def prepare(
    pixels: NDArray[Any], cards: list[Card], *, compress: bool, with_base64: bool
) -> PreparedFrame:
    """Blocking: FITS bytes and, if wanted, their base64. Run it in a worker thread."""
    encoded = encode_frame(pixels, cards, compress=compress)
    b64 = pybase64.b64encode(encoded.data) if with_base64 else None
    return PreparedFrame(encoded, b64)


async def prepare_off_loop(
    pixels: NDArray[Any], cards: list[Card], *, compress: bool, with_base64: bool
) -> PreparedFrame:
    return await asyncio.to_thread(
        prepare, pixels, cards, compress=compress, with_base64=with_base64
    )


async def save_off_loop(upload_dir: str, prefix: str, frame: PreparedFrame) -> Path:
    """Atomic local save in a worker thread; raises upload.UploadError with the reason."""
    return await asyncio.to_thread(
        save_frame, upload_dir, prefix, frame.encoded.format, [frame.encoded.data]
    )
