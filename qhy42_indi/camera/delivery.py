"""From a backend Frame to what clients get: the FITS built once, saved, sent.

The FITS is built in a worker thread, once per frame; the same bytes go to the local file and,
through the hub, to every connection (as shared memory to local clients; as base64, made once
by the server and only if such a client wants the frame, to the others). The header's cards
are made in the same worker call: each hand-off between the loop and a thread costs a wake-up.
A plain FITS is written into a frame-sized buffer in a memfd (memfd_buffers.py), which local
clients are given as it is; it is used again once nothing here refers to it any more and no
local client has it open or mapped: the FITS of a frame is never changed while a client, a
save or the frame tap still holds it. Local saves are atomic (upload.py). The order on the
wire is libindi's: CCD_FILE_PATH (Local/Both), then the CCD1 BLOB (Client/Both); the caller
then reports CCD_EXPOSURE Ok.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.camera.fits import Card, EncodedFrame, encode_frame
from qhy42_indi.camera.upload import save_frame
from qhy42_indi.memfd_buffers import FitsBuffers


class UploadMode:
    CLIENT = "UPLOAD_CLIENT"
    LOCAL = "UPLOAD_LOCAL"
    BOTH = "UPLOAD_BOTH"


async def encode_off_loop(
    pixels: NDArray[Any], cards: Callable[[], list[Card]], *, compress: bool | None
) -> tuple[list[Card], EncodedFrame | None]:
    """The header's cards (`cards()`, blocking) and the FITS of them, in one worker call;
    compress None: the cards only (nobody takes the FITS)."""
    return await asyncio.to_thread(_cards_and_fits, pixels, cards, compress)


def _cards_and_fits(
    pixels: NDArray[Any], make_cards: Callable[[], list[Card]], compress: bool | None
) -> tuple[list[Card], EncodedFrame | None]:
    cards = make_cards()
    if compress is None:
        return cards, None
    return cards, encode_frame(pixels, cards, compress=compress, buffer=PLAIN_FITS_BUFFERS)


# Plain FITS files go into memfd-backed buffers (memfd_buffers.py): local clients get them
# with no copy; a buffer is used again once nothing refers to it and no client maps it.
PLAIN_FITS_BUFFERS = FitsBuffers()


def prepare_fits_buffer() -> None:
    """Make the next frame's FITS buffer ahead if it needs a new one (local clients still hold
    the last); returns at once."""
    PLAIN_FITS_BUFFERS.prepare_spare()


async def save_off_loop(upload_dir: str, prefix: str, frame: EncodedFrame) -> Path:
    """Atomic local save in a worker thread; raises upload.UploadError with the reason."""
    return await asyncio.to_thread(save_frame, upload_dir, prefix, frame.format, [frame.data])
