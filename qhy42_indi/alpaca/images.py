"""A delivered frame as Alpaca's two image transfers: ImageBytes and the JSON ImageArray.

Both hold the pixels of the FITS the INDI clients get, in Alpaca's element order: x-major
([NumX][NumY]), the transpose of numpy's (rows, columns). Each form is built at most once per
frame, in a worker thread, the first time it is wanted (or ahead of time, `prepare`), and the
same bytes serve every download of that frame; only the few bytes that carry the transaction
numbers are made per request. 16-bit frames travel as UInt16 and 8-bit ones as Byte: the
image elements are integers (Int32) either way.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qhy42_indi.alpaca.protocol import Transaction

IMAGEBYTES_MEDIA_TYPE = "application/imagebytes"
METADATA_VERSION = 1
HEADER = struct.Struct("<11i")
DATA_START = HEADER.size  # 44

INT32, UINT16, BYTE = 2, 8, 6
TRANSMISSION_TYPES = {np.dtype(np.uint16): UINT16, np.dtype(np.uint8): BYTE}
Payload = bytes | memoryview  # a large one is a view of the array, never copied to bytes


TRANSPOSE_ROWS = 32  # rows per block: a block's columns stay in cache while written


def x_major(pixels: NDArray[Any]) -> NDArray[Any]:
    """The pixels as [x][y] in C order, little-endian: Alpaca's element order.

    Transposed a band of rows at a time: numpy's whole-array transpose walks memory with a
    stride of a full row and is ten times slower on a 2048x2048 frame (33 ms against 3.5).
    """
    rows, columns = pixels.shape
    out = np.empty((columns, rows), dtype=pixels.dtype.newbyteorder("<"))
    for first in range(0, rows, TRANSPOSE_ROWS):
        band = pixels[first:first + TRANSPOSE_ROWS]
        out[:, first:first + band.shape[0]] = band.T
    return out


def imagebytes_data(pixels: NDArray[Any]) -> memoryview:
    """The ImageBytes payload (after the header): a view of one x-major copy, not a bytes."""
    if pixels.dtype not in TRANSMISSION_TYPES:
        raise TypeError(f"no ImageBytes transmission type for {pixels.dtype}")
    return x_major(pixels).data.cast("B")


def imagebytes_header(pixels: NDArray[Any], transaction: Transaction) -> bytes:
    rows, columns = pixels.shape
    return HEADER.pack(METADATA_VERSION, 0, transaction.client_transaction_id,
                       transaction.server_transaction_id, DATA_START, INT32,
                       TRANSMISSION_TYPES[pixels.dtype], 2, columns, rows, 0)


def imagebytes_error(number: int, message: str, transaction: Transaction) -> bytes:
    """An ImageBytes reply that carries an error: the header, then the message in UTF-8."""
    return HEADER.pack(METADATA_VERSION, number, transaction.client_transaction_id,
                       transaction.server_transaction_id, DATA_START, 0, 0, 0, 0, 0,
                       0) + message.encode()


@functools.cache
def _decimal_table(dtype: np.dtype[Any]) -> NDArray[np.uint8]:
    """Every value of `dtype` as a fixed-width JSON field: two or more spaces, the digits,
    a comma ("  65535,", "      0,"). Whitespace before a number is JSON's own, so a frame
    becomes text by one table lookup per pixel, not by formatting numbers one at a time."""
    digits = len(str(np.iinfo(dtype).max))
    count = int(np.iinfo(dtype).max) + 1
    values = np.arange(count)
    table = np.full((count, digits + 3), ord(" "), dtype=np.uint8)
    for power in range(digits):
        shown = (values >= 10 ** power) | (power == 0)
        digit = (values // 10 ** power) % 10 + ord("0")
        table[:, digits + 1 - power] = np.where(shown, digit, ord(" "))
    table[:, -1] = ord(",")
    return table


def json_value(pixels: NDArray[Any]) -> memoryview:
    """The JSON text of ImageArray's Value: [[column 0's pixels],[column 1's],...].

    Each pixel takes a fixed-width field (see _decimal_table); a column's first field starts
    with ",[" in place of its two spaces ("[[" for the first column) and its last ends with
    "]" in place of the comma. About 30 ms for a 2048x2048 frame where json.dumps takes 500.
    """
    if pixels.dtype not in TRANSMISSION_TYPES:
        raise TypeError(f"no JSON image encoding for {pixels.dtype}")
    table = _decimal_table(pixels.dtype)
    width = table.shape[1]
    columns = x_major(pixels)
    count = columns.size
    text = np.empty(count * width + 1, dtype=np.uint8)
    fields = text[:-1].reshape(count, width)
    np.take(table, columns.reshape(-1), axis=0, out=fields)
    grid = fields.reshape(columns.shape[0], columns.shape[1], width)
    grid[:, 0, 0], grid[:, 0, 1] = ord(","), ord("[")
    grid[0, 0, 0] = ord("[")
    grid[:, -1, -1] = ord("]")
    text[-1] = ord("]")
    return text.data


def json_reply(value: Payload, transaction: Transaction) -> tuple[bytes, Payload, bytes]:
    """(head, value, tail) of the ImageArray JSON reply; sent in three writes, never joined."""
    head = b'{"Type":2,"Rank":2,"Value":'
    tail = (f',"ClientTransactionID":{transaction.client_transaction_id},'
            f'"ServerTransactionID":{transaction.server_transaction_id},'
            f'"ErrorNumber":0,"ErrorMessage":""}}').encode()
    return head, value, tail


@dataclass
class _Once:
    build: Callable[[], Payload]
    task: asyncio.Task[Payload] | None = None

    def get(self) -> asyncio.Task[Payload]:
        if self.task is None:
            self.task = asyncio.ensure_future(asyncio.to_thread(self.build))
        return self.task


class FrameImages:
    """The two transfers of one frame, each made once, on demand, off the event loop."""

    def __init__(self, pixels: NDArray[Any]) -> None:
        self.pixels = pixels
        self._bytes = _Once(lambda: imagebytes_data(pixels))
        self._json = _Once(lambda: json_value(pixels))

    def prepare(self) -> None:
        """Start making the ImageBytes form now, before anyone asks for it."""
        self._bytes.get()

    async def imagebytes(self) -> Payload:
        return await asyncio.shield(self._bytes.get())

    async def json(self) -> Payload:
        return await asyncio.shield(self._json.get())

    def discard(self) -> None:
        for once in (self._bytes, self._json):
            task = once.task
            if task is not None and task.done() and not task.cancelled():
                task.exception()  # a failure nobody awaited must not be logged as lost
