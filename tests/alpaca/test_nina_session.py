"""alpyca drives the daemon as N.I.N.A. would: discovery, the management API, connect,
settings, cooling, an exposure, and the image by ImageBytes and by JSON, which must both be the
pixels of the FITS that an INDI client got for the same frame."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import requests
from alpaca import management
from alpaca.camera import Camera, CameraStates

from qhy42_indi.backends.base import Channel
from qhy42_indi.backends.sensor_model import ADC_MAX_ADU, FULL_WELL_E, e_per_adu
from tests.alpaca.support import HTTP_TIMEOUT_S, alpaca_daemon, discover
from tests.support.camera import DEVICE, blobs, decode_fits, image
from tests.support.client import IndiClient, is_blob, is_def
from tests.support.processes import HOST


def wait_until(condition: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def nina_session(address: str) -> dict[str, object]:
    """What N.I.N.A. does with a camera, synchronously, as alpyca does it."""
    camera = Camera(address, 0)
    camera.Connected = True
    assert camera.Connected
    assert camera.CameraXSize == 2048 and camera.CameraYSize == 2048
    assert camera.ReadoutModes == ["HDR", "STD High Gain", "STD Low Gain"]
    camera.ReadoutMode = 2
    camera.Gain = 20
    camera.BinX = 2
    camera.BinY = 2
    camera.StartX, camera.StartY, camera.NumX, camera.NumY = 100, 50, 300, 200
    camera.SetCCDTemperature = 5.0
    camera.CoolerOn = True
    start_c = camera.CCDTemperature
    wait_until(lambda: camera.CCDTemperature < start_c - 1.0)
    camera.StartExposure(1.0, True)
    wait_until(lambda: camera.ImageReady)
    assert camera.CameraState == CameraStates.cameraIdle
    by_bytes = np.array(camera.ImageArray)  # alpyca asks for ImageBytes
    info = camera.ImageArrayInfo
    by_json = requests.get(f"http://{address}/api/v1/camera/0/imagearray",
                           timeout=HTTP_TIMEOUT_S).json()
    return {"bytes": by_bytes, "info": info, "json": by_json,
            "gain": camera.Gain, "mode": camera.ReadoutMode, "bin": (camera.BinX, camera.BinY),
            "duration": camera.LastExposureDuration, "cooler": camera.CoolerOn,
            "e_per_adu": camera.ElectronsPerADU, "full_well": camera.FullWellCapacity,
            "max_adu": camera.MaxADU}


async def test_nina_session_images_equal_the_fits_an_indi_client_got() -> None:
    with alpaca_daemon() as server:
        answer = discover(server.discovery_port)
        assert answer == {"AlpacaPort": server.alpaca_port}
        assert management.apiversions(server.address) == [1]
        assert management.description(server.address)["ServerName"] == "qhy42-indi"
        devices = management.configureddevices(server.address)
        assert [(d["DeviceName"], d["DeviceType"], d["DeviceNumber"]) for d in devices] == [
            (DEVICE, "Camera", 0)]
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await indi.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
            await indi.wait_for(is_def("CONNECTION"))
            await indi.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
            session = await asyncio.to_thread(nina_session, server.address)
            await indi.wait_for(is_blob)
            fits_pixels = image(decode_fits(blobs(indi.received)[-1]))
        assert session["gain"] == 20 and session["mode"] == 2 and session["bin"] == (2, 2)
        assert session["cooler"] is True
        # STD Low Gain at gain 20, 16-bit output (12-bit data << 4): the sensor model's figures.
        low_gain_e_per_adu12 = e_per_adu(Channel.LOW_GAIN, 20)
        assert session["e_per_adu"] == pytest.approx(low_gain_e_per_adu12 / 16)
        assert session["full_well"] == pytest.approx(min(FULL_WELL_E,
                                                         low_gain_e_per_adu12 * ADC_MAX_ADU))
        assert session["max_adu"] == 65535
        assert session["duration"] == pytest.approx(1.0, rel=1e-3)
        assert fits_pixels.shape == (200, 300)
        by_bytes = session["bytes"]
        assert isinstance(by_bytes, np.ndarray)
        assert by_bytes.shape == (300, 200)  # [NumX][NumY]
        info = session["info"]
        assert (info.ImageElementType, info.TransmissionElementType) == (2, 8)  # Int32, UInt16
        assert np.array_equal(by_bytes.T, fits_pixels)
        reply = session["json"]
        assert isinstance(reply, dict) and reply["Type"] == 2 and reply["Rank"] == 2
        assert np.array_equal(np.array(reply["Value"]).T, fits_pixels)
        assert fits_pixels.std() > 0  # a real frame, not a constant
