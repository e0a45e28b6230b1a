"""ImageBytes and the JSON ImageArray of a frame: Alpaca's x-major element order, the 44-byte
header, UInt16 for 16-bit frames and Byte for 8-bit ones, and JSON that any parser reads back
as the same pixels."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from qhy42_indi.alpaca.images import (
    FrameImages,
    imagebytes_data,
    imagebytes_header,
    json_reply,
    json_value,
    x_major,
)
from qhy42_indi.alpaca.protocol import Transaction

TRANSACTION = Transaction(client_id=3, client_transaction_id=77, server_transaction_id=9)


def frame(rows: int, columns: int, dtype: type) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.random.default_rng(rows * 1000 + columns).integers(0, top + 1, (rows, columns),
                                                                 dtype=dtype)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (33, 70), (2048, 64)])
def test_x_major_is_the_transpose_in_c_order(shape: tuple[int, int]) -> None:
    pixels = frame(*shape, np.uint16)
    columns = x_major(pixels)
    assert columns.shape == (shape[1], shape[0]) and columns.flags.c_contiguous
    assert np.array_equal(columns, pixels.T)
    assert columns.dtype.byteorder in ("<", "=") and columns.dtype.itemsize == 2


def test_imagebytes_header_and_payload_of_a_16_bit_frame() -> None:
    pixels = frame(4, 6, np.uint16)
    header = imagebytes_header(pixels, TRANSACTION)
    assert struct.unpack("<11i", header) == (1, 0, 77, 9, 44, 2, 8, 2, 6, 4, 0)
    payload = bytes(imagebytes_data(pixels))
    decoded = np.frombuffer(payload, dtype="<u2").reshape(6, 4)  # [NumX][NumY]
    assert np.array_equal(decoded.T, pixels)


def test_an_8_bit_frame_travels_as_bytes() -> None:
    pixels = frame(5, 3, np.uint8)
    assert struct.unpack("<11i", imagebytes_header(pixels, TRANSACTION))[6] == 6  # Byte
    assert bytes(imagebytes_data(pixels)) == pixels.T.tobytes()


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (17, 9)])
def test_json_value_parses_back_to_the_pixels(dtype: type, shape: tuple[int, int]) -> None:
    pixels = frame(*shape, dtype)
    pixels[0, 0] = 0
    pixels[-1, -1] = np.iinfo(dtype).max
    parsed = json.loads(bytes(json_value(pixels)))
    assert np.array_equal(np.array(parsed).T, pixels)


def test_json_reply_is_a_complete_alpaca_reply() -> None:
    pixels = frame(3, 2, np.uint16)
    reply = json.loads(b"".join(bytes(part) for part in json_reply(json_value(pixels),
                                                                    TRANSACTION)))
    assert reply["Type"] == 2 and reply["Rank"] == 2
    assert (reply["ClientTransactionID"], reply["ServerTransactionID"]) == (77, 9)
    assert reply["ErrorNumber"] == 0 and reply["ErrorMessage"] == ""
    assert np.array_equal(np.array(reply["Value"]).T, pixels)


async def test_each_form_is_made_once_however_many_download_it() -> None:
    images = FrameImages(frame(8, 8, np.uint16))
    images.prepare()
    first, second = await images.imagebytes(), await images.imagebytes()
    assert first is second
    assert await images.json() is await images.json()
