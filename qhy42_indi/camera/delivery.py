"""From a backend Frame to what clients get: the FITS built once, saved, sent.

The FITS is built in a worker thread, once per frame; the same bytes go to the local file and,
through the hub, to every connection (as shared memory to local clients; as base64, made once
by the server and only if such a client wants the frame, to the others). A plain FITS is
written into a frame-sized buffer that is used again once nothing refers to it any more
(pixel_pool.py): the FITS of a frame is never changed while a client, a save or the frame tap
still holds it. Local saves are atomic (upload.py). The order on the wire is libindi's:
CCD_FILE_PATH (Local/Both), then the CCD1 BLOB (Client/Both); the caller then reports
CCD_EXPOSURE Ok.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.backends.pixel_pool import BufferPool
from qhy42_indi.camera.fits import Card, EncodedFrame, encode_frame
from qhy42_indi.camera.upload import save_frame


class UploadMode:
    CLIENT = "UPLOAD_CLIENT"
    LOCAL = "UPLOAD_LOCAL"
    BOTH = "UPLOAD_BOTH"


async def encode_off_loop(
    pixels: NDArray[Any], cards: list[Card], *, compress: bool
) -> EncodedFrame:
    return await asyncio.to_thread(encode_frame, pixels, cards, compress=compress,
                                   buffer=PLAIN_FITS_BUFFERS)


class FitsBuffers:
    """Bytearrays for plain FITS files, each used again once nothing refers to it."""

    def __init__(self) -> None:
        self._pool: BufferPool[bytearray] = BufferPool()
        self._lock = threading.Lock()  # the encodes of several cameras run in parallel threads

    def __call__(self, size: int) -> bytearray:
        with self._lock:
            return self._pool.take(size, lambda: bytearray(size))


PLAIN_FITS_BUFFERS = FitsBuffers()


async def save_off_loop(upload_dir: str, prefix: str, frame: EncodedFrame) -> Path:
    """Atomic local save in a worker thread; raises upload.UploadError with the reason."""
    return await asyncio.to_thread(save_frame, upload_dir, prefix, frame.format, [frame.data])
