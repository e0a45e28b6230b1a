"""The HTTP front-ends' way into the camera: an INDI client's command, through the same checks,
seen by every INDI client; and their frame tap. In process, on the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.front.gateway import Gateway
from qhy42_indi.indi.messages import (
    BlobEnable,
    EnableBlob,
    GetProperties,
    IndiMessage,
    PropertyState,
    SetVector,
    SwitchState,
)
from qhy42_indi.server.connection import Connection
from qhy42_indi.server.hub import Hub
from qhy42_indi.web.previews import fits_header_text
from tests.support.in_process import numbers
from tests.support.transports import FakeTransport

NAME = "QHY CCD QHY42PRO-SIM01"


def camera_hub() -> tuple[Hub, Qhy42Device, list[IndiMessage]]:
    hub = Hub()
    device = Qhy42Device(NAME, SimulatorBackend(SimulatorOptions(seed=3, time_scale=50,
                                                                 instant_readout=True)))
    hub.add_device(device)
    seen: list[IndiMessage] = []
    hub.observe(seen.append)
    return hub, device, seen


async def test_a_command_is_an_indi_command_every_client_sees() -> None:
    hub, device, seen = camera_hub()
    gateway = Gateway(hub)
    assert gateway.cameras() == [device]
    outcome = await gateway.command(device, "CCD_GAIN", {"GAIN": 10.0}, read_only=False,
                                    who="test")
    assert not outcome.ok and "not connected" in outcome.message  # not defined yet
    connected = await gateway.command(device, "CONNECTION", {"CONNECT": SwitchState.ON},
                                      read_only=False, who="test")
    try:
        assert connected.ok and device.connected
        assert device.props["CONNECTION"].is_on("CONNECT")
        assert not device.props["CONNECTION"].is_on("DISCONNECT")  # one of many: the other off
        outcome = await gateway.command(device, "CCD_GAIN", {"GAIN": 12.0}, read_only=False,
                                        who="test")
        assert outcome.ok and float(device.props["CCD_GAIN"].value("GAIN")) == 12.0
        assert any(isinstance(m, SetVector) and m.name == "CCD_GAIN"
                   and m.state is PropertyState.OK for m in seen)
    finally:
        await device.close()


async def test_refusals_carry_the_device_s_reason_and_change_nothing() -> None:
    hub, device, _ = camera_hub()
    gateway = Gateway(hub)
    await device.connect()
    try:
        before = float(device.props["CCD_GAIN"].value("GAIN"))
        too_high = await gateway.command(device, "CCD_GAIN", {"GAIN": 1e9}, read_only=False,
                                         who="test")
        assert not too_high.ok and too_high.message
        watcher = await gateway.command(device, "CCD_GAIN", {"GAIN": 5.0}, read_only=True,
                                        who="10.0.0.9")
        assert not watcher.ok and "read-only" in watcher.message
        assert float(device.props["CCD_GAIN"].value("GAIN")) == before
        # The core's table: no exposure while live video runs.
        live = await gateway.command(device, "CCD_VIDEO_STREAM", {"STREAM_ON": SwitchState.ON},
                                     read_only=False, who="test")
        assert live.ok
        refused = await gateway.command(device, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.01},
                                        read_only=False, who="test")
        assert not refused.ok and refused.message
    finally:
        await device.close()


async def test_every_delivered_frame_reaches_the_tap(tmp_path: Path) -> None:
    hub, device, _ = camera_hub()
    gateway = Gateway(hub)
    frames: list[DeliveredFrame] = []
    device.frames.subscribe(frames.append)
    await device.connect()
    try:
        # LOCAL upload: no BLOB goes to INDI clients, the front-ends still get the frame
        await gateway.command(device, "UPLOAD_SETTINGS", {"UPLOAD_DIR": str(tmp_path)},
                              read_only=False, who="test")
        await gateway.command(device, "UPLOAD_MODE", {"UPLOAD_LOCAL": SwitchState.ON},
                              read_only=False, who="test")
        await gateway.command(device, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.01},
                              read_only=False, who="test")
        async with asyncio.timeout(20):
            while not frames:
                await asyncio.sleep(0.02)
        frame = frames[0]
        assert frame.device == NAME and frame.pixels.shape == (2048, 2048)
        assert frame.fits.data[:6] == b"SIMPLE"
        assert device.frames.last is frame
        assert [p.suffix for p in tmp_path.iterdir()] == [".fits"]
    finally:
        await device.close()


async def expose_once(device: Qhy42Device, frames: list[DeliveredFrame]) -> DeliveredFrame:
    count = len(frames)
    await device.handle_new(numbers(device.name, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01))
    async with asyncio.timeout(20):
        while len(frames) == count:
            await asyncio.sleep(0.02)
    return frames[-1]


async def test_a_frame_nobody_takes_as_fits_is_not_built_and_a_taker_gets_it() -> None:
    hub, device, seen = camera_hub()
    frames: list[DeliveredFrame] = []
    device.frames.subscribe(frames.append)
    await device.connect()
    try:
        # No INDI client wants the BLOB: the front-ends get pixels and cards, no FITS.
        untaken = await expose_once(device, frames)
        assert untaken.fits is None and untaken.pixels.shape == (2048, 2048)
        assert not any(isinstance(m, SetVector) and m.name == "CCD1" for m in seen)
        header = fits_header_text(untaken)  # the page's header on demand still works
        assert "EXPTIME" in header and "NAXIS1  =                 2048" in header

        # A client that enabled BLOBs gets the FITS, the same header included.
        client = Connection("indi-client", FakeTransport())
        hub.attach(client)
        await hub.handle(client, GetProperties())
        await hub.handle(client, EnableBlob(device=NAME, mode=BlobEnable.ALSO))
        taken = await expose_once(device, frames)
        assert taken.fits is not None and taken.fits.data[:6] == b"SIMPLE"
        assert fits_header_text(taken).splitlines()[:6] == header.splitlines()[:6]
        assert any(isinstance(m, SetVector) and m.name == "CCD1" for m in seen)
        hub.detach(client)

        # An observer that reads BLOBs (MQTT's frame events) counts as a taker too.
        stop = hub.observe(lambda message: None, reads_blobs=True)
        assert (await expose_once(device, frames)).fits is not None
        stop()
        assert (await expose_once(device, frames)).fits is None
    finally:
        await device.close()
