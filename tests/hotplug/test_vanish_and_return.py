"""A camera unplugged and plugged in again while the daemon serves: on the SDK backend over
the stub libqhyccd (unplugged by a file the stub watches), and on the simulator (SIM_USB)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.sdk.daemon import sdk_daemon
from tests.support.camera import (
    answered,
    blobs,
    connect_camera,
    decode_fits,
    expose,
    messages_text,
    set_numbers,
    set_switch,
)
from tests.support.client import IndiClient, is_blob, is_def, is_set
from tests.support.processes import HOST, Running, daemon

STUB_DEVICE = "QHY CCD QHY42PRO-012345"  # indi_qhy_ccd's name: 15 characters of the id
SIM_DEVICE = "QHY CCD QHY42PRO-SIM01"


@pytest.fixture(scope="module")
def unplug_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("usb") / "unplugged"


@pytest.fixture(scope="module")
def stub_server(unplug_file: Path) -> Iterator[Running]:
    with sdk_daemon(env={"QHY42_STUB_UNPLUGGED_FILE": str(unplug_file)}) as proc:
        yield proc


@pytest.fixture
async def stub_client(stub_server: Running, unplug_file: Path) -> AsyncIterator[IndiClient]:
    unplug_file.unlink(missing_ok=True)
    async with IndiClient.connect(HOST, stub_server.port) as client:
        await connect_camera(client, STUB_DEVICE)
        await client.send(f"<enableBLOB device='{STUB_DEVICE}'>Also</enableBLOB>")
        yield client
    unplug_file.unlink(missing_ok=True)


async def test_sdk_device_is_named_by_the_camera_id(stub_client: IndiClient) -> None:
    info = await stub_client.wait_for(is_def("FIRMWARE_INFO"))
    assert info.device == STUB_DEVICE  # type: ignore[union-attr]


async def test_unplugged_mid_exposure_alerts_and_the_camera_is_picked_up_again(
    stub_client: IndiClient, stub_server: Running, unplug_file: Path
) -> None:
    client = stub_client
    await answered(client, "CCD_GAIN", await set_numbers(client, "CCD_GAIN", STUB_DEVICE,
                                                         GAIN=33))
    start = await set_numbers(client, "CCD_EXPOSURE", STUB_DEVICE, CCD_EXPOSURE_VALUE=3)
    await client.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=start)
    unplug_file.touch()

    failed = await client.wait_for(is_set("CCD_EXPOSURE", "Alert"), start=start)
    assert "not connected" in (failed.message or "")  # type: ignore[union-attr]
    lost = await client.wait_for(is_set("CONNECTION", "Alert"), start=start)
    assert "disappeared" in (lost.message or "")  # type: ignore[union-attr]
    assert not blobs(client.received[start:])

    # The daemon keeps serving: a new client gets the device, commands are answered.
    async with IndiClient.connect(HOST, stub_server.port) as other:
        await other.send(f"<getProperties version='1.7' device='{STUB_DEVICE}'/>")
        await other.wait_for(is_def("CCD_EXPOSURE"))
    refused = await answered(client, "CCD_OFFSET", await set_numbers(
        client, "CCD_OFFSET", STUB_DEVICE, OFFSET=99))
    assert refused.state == "Alert"

    back_from = len(client.received)
    unplug_file.unlink()
    back = await client.wait_for(is_set("CONNECTION", "Ok"), start=back_from)
    assert "back" in (back.message or "")  # type: ignore[union-attr]

    await answered(client, "CCD_FRAME", await set_numbers(
        client, "CCD_FRAME", STUB_DEVICE, X=0, Y=0, WIDTH=64, HEIGHT=64))
    start = await set_numbers(client, "CCD_EXPOSURE", STUB_DEVICE, CCD_EXPOSURE_VALUE=0.05)
    await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), start=start)
    (blob,) = blobs(client.received[start:])
    with decode_fits(blob) as hdus:
        assert hdus[0].data.shape == (64, 64)
        assert hdus[0].header["GAIN"] == 33  # the settings made before the loss came back


async def test_unplugged_while_idle_is_noticed_and_returns(
    stub_client: IndiClient, unplug_file: Path
) -> None:
    start = len(stub_client.received)
    unplug_file.touch()
    await stub_client.wait_for(is_set("CONNECTION", "Alert"), start=start)
    unplug_file.unlink()
    await stub_client.wait_for(is_set("CONNECTION", "Ok"), start=start)
    await answered(stub_client, "CONNECTION", await set_switch(
        stub_client, "CONNECTION", "DISCONNECT", STUB_DEVICE))


@pytest.fixture
async def sim_client() -> AsyncIterator[IndiClient]:
    with daemon() as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await connect_camera(client, SIM_DEVICE)
            await client.send(f"<enableBLOB device='{SIM_DEVICE}'>Also</enableBLOB>")
            yield client


async def test_simulator_usb_cable_unplug_and_replug(sim_client: IndiClient) -> None:
    client = sim_client
    start = await set_numbers(client, "CCD_EXPOSURE", SIM_DEVICE, CCD_EXPOSURE_VALUE=5)
    await client.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=start)
    await answered(client, "SIM_USB", await set_switch(client, "SIM_USB", "UNPLUGGED",
                                                       SIM_DEVICE))
    await client.wait_for(is_set("CCD_EXPOSURE", "Alert"), start=start)
    await client.wait_for(is_set("CONNECTION", "Alert"), start=start)
    back_from = await set_switch(client, "SIM_USB", "PLUGGED", SIM_DEVICE)
    await client.wait_for(is_set("CONNECTION", "Ok"), start=back_from)
    await answered(client, "CCD_FRAME", await set_numbers(
        client, "CCD_FRAME", SIM_DEVICE, X=0, Y=0, WIDTH=32, HEIGHT=32))
    start = await set_numbers(client, "CCD_EXPOSURE", SIM_DEVICE, CCD_EXPOSURE_VALUE=0.01)
    reply = await client.wait_for(is_blob, start=start)
    assert reply is not None, messages_text(client, start)
    assert await expose(client, 0.01) >= 0
