"""A frame taken with CCD_COMPRESSION on: the .fits.fz BLOB the device publishes holds, after
decompression by astropy and by cfitsio (fitsio), exactly the pixels the camera delivered (as
the frame tap hands them to the other front-ends), and merged HDR frames go the same way."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits

from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.indi.messages import BlobElement, IndiMessage, SetVector
from tests.support.in_process import connected_camera, numbers, switch

fitsio = pytest.importorskip("fitsio")

NAME = "Packed Cam"


@pytest.fixture
async def camera() -> AsyncIterator[tuple[Qhy42Device, list[IndiMessage]]]:
    async with connected_camera(NAME, seed=9, time_scale=50) as connected:
        yield connected


async def one_frame(device: Qhy42Device, published: list[IndiMessage],
                    *settings: Any) -> tuple[BlobElement, DeliveredFrame]:
    delivered: list[DeliveredFrame] = []
    stop = device.frames.subscribe(delivered.append)
    try:
        for message in settings:
            await device.handle_new(message)
        start = len(published)
        await device.handle_new(numbers(NAME, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01))
        async with asyncio.timeout(30):
            while not delivered:
                await asyncio.sleep(0.01)
    finally:
        stop()
    blob = next(e for m in published[start:] if isinstance(m, SetVector) and m.name == "CCD1"
                for e in m.elements if isinstance(e, BlobElement) and e.data is not None)
    return blob, delivered[0]


def decompressed(data: bytes, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with afits.open(io.BytesIO(data)) as hdus:
        by_astropy = np.array(hdus[1].data)
    path = tmp_path / "frame.fits.fz"
    path.write_bytes(data)
    return by_astropy, np.asarray(fitsio.read(str(path), ext=1))


@pytest.mark.parametrize("scene", ["SCENE_DARK", "SCENE_STARS", "SCENE_FLAT"])
async def test_a_compressed_frame_holds_the_delivered_pixels(
    camera: tuple[Qhy42Device, list[IndiMessage]], scene: str, tmp_path: Path
) -> None:
    device, published = camera
    blob, delivered = await one_frame(
        device, published, switch(NAME, "SIM_SCENE", scene),
        switch(NAME, "CCD_FRAME_TYPE", "FRAME_LIGHT"),
        switch(NAME, "CCD_COMPRESSION", "INDI_ENABLED"))
    assert blob.format == ".fits.fz"
    assert blob.data is not None
    data = bytes(blob.data)
    assert data == bytes(delivered.fits.data)  # one encoding, shared with the frame tap
    for pixels in decompressed(data, tmp_path):
        np.testing.assert_array_equal(pixels, delivered.pixels)


async def test_a_compressed_merged_hdr_frame_holds_the_merged_pixels(
    camera: tuple[Qhy42Device, list[IndiMessage]], tmp_path: Path
) -> None:
    device, published = camera
    blob, delivered = await one_frame(
        device, published, numbers(NAME, "READ_MODE", MODE=0),
        switch(NAME, "HDR_OUTPUT", "HDR_MERGED"), switch(NAME, "SIM_SCENE", "SCENE_FLAT"),
        switch(NAME, "CCD_COMPRESSION", "INDI_ENABLED"))
    assert blob.data is not None
    assert delivered.pixels.shape == (delivered.frame.height, delivered.frame.width // 2)
    for pixels in decompressed(bytes(blob.data), tmp_path):
        np.testing.assert_array_equal(pixels, delivered.pixels)
