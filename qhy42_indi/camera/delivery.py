"""From a backend Frame to what clients get: the FITS built once, saved, sent.

The FITS is built in a worker thread, once per frame; the same bytes go to the local file and,
through the hub, to every connection (as shared memory to local clients; as base64, made once
by the server and only if such a client wants the frame, to the others). Local saves are
atomic (upload.py). The order on the wire is libindi's: CCD_FILE_PATH (Local/Both), then the
CCD1 BLOB (Client/Both); the caller then reports CCD_EXPOSURE Ok.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.camera.fits import Card, EncodedFrame, encode_frame
from qhy42_indi.camera.upload import save_frame


class UploadMode:
    CLIENT = "UPLOAD_CLIENT"
    LOCAL = "UPLOAD_LOCAL"
    BOTH = "UPLOAD_BOTH"


async def encode_off_loop(
    pixels: NDArray[Any], cards: list[Card], *, compress: bool
) -> EncodedFrame:
    return await asyncio.to_thread(encode_frame, pixels, cards, compress=compress)


async def save_off_loop(upload_dir: str, prefix: str, frame: EncodedFrame) -> Path:
    """Atomic local save in a worker thread; raises upload.UploadError with the reason."""
    return await asyncio.to_thread(save_frame, upload_dir, prefix, frame.format, [frame.data])
