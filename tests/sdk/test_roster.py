"""A camera keeps its INDI device name whatever the order of starting the daemon and
plugging it in; one plugged in after start is served; a second QHY42PRO gets its own device.

Over the wire, with the daemon on the SDK backend over the stub libqhyccd: the stub's
unplugged file and second-camera file stand for the USB cable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qhy42_indi.indi.messages import DefVector, DelProperty, IndiMessage, SetVector
from tests.sdk.daemon import sdk_daemon
from tests.support.client import IndiClient

STUB_NAME = "QHY CCD QHY42PRO-012345"  # "QHY CCD " + the stub's id, first 15 characters
SECOND_NAME = "QHY CCD QHY42PRO-fedcba"
PLACEHOLDER = "QHY CCD QHY42PRO"
APPEAR_S = 15.0
SCAN = {"QHY42_SCAN_PERIOD_S": "0.2"}


def defines(device: str, name: str = "CONNECTION") -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, DefVector) and m.device == device and m.name == name


def deletes(device: str) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, DelProperty) and m.device == device and m.name is None


def sets(device: str, name: str, state: str) -> Callable[[IndiMessage], bool]:
    return lambda m: (isinstance(m, SetVector) and m.device == device and m.name == name
                      and m.state == state)


def devices_defined(client: IndiClient) -> set[str]:
    return {m.device for m in client.received if isinstance(m, DefVector)}


async def connect(client: IndiClient, device: str) -> None:
    await client.send(f'<newSwitchVector device="{device}" name="CONNECTION">'
                      '<oneSwitch name="CONNECT">On</oneSwitch></newSwitchVector>')


async def test_a_camera_plugged_in_before_start_gets_its_name(tmp_path: Path) -> None:
    with sdk_daemon(env=SCAN) as proc:
        async with IndiClient.connect("127.0.0.1", proc.port) as client:
            await client.send('<getProperties version="1.7"/>')
            await client.wait_for(defines(STUB_NAME))
            await client.wait_quiet()
            assert devices_defined(client) == {STUB_NAME}


async def test_a_camera_plugged_in_after_start_gets_the_same_name(tmp_path: Path) -> None:
    unplugged = tmp_path / "unplugged"
    unplugged.touch()
    with sdk_daemon(env={"QHY42_STUB_UNPLUGGED_FILE": str(unplugged), **SCAN}) as proc:
        async with IndiClient.connect("127.0.0.1", proc.port) as client:
            await client.send('<getProperties version="1.7"/>')
            waiting = await client.wait_for(defines(PLACEHOLDER))
            assert isinstance(waiting, DefVector)
            assert waiting.message is not None and "Waiting for a QHY42PRO" in waiting.message
            mark = len(client.received)
            await connect(client, PLACEHOLDER)
            refused = await client.wait_for(sets(PLACEHOLDER, "CONNECTION", "Alert"),
                                            start=mark)
            assert isinstance(refused, SetVector) and "no QHY42PRO is connected" in (
                refused.message or "")

            mark = len(client.received)
            unplugged.unlink()  # plugged in
            await client.wait_for(deletes(PLACEHOLDER), APPEAR_S, start=mark)
            await client.wait_for(defines(STUB_NAME), APPEAR_S, start=mark)
            mark = len(client.received)
            await connect(client, STUB_NAME)
            await client.wait_for(sets(STUB_NAME, "CONNECTION", "Ok"), APPEAR_S, start=mark)

        # A client that comes now sees the camera only: the placeholder is gone for good.
        async with IndiClient.connect("127.0.0.1", proc.port) as late:
            await late.send('<getProperties version="1.7"/>')
            await late.wait_for(defines(STUB_NAME, "CCD_EXPOSURE"))
            await late.wait_quiet()
            assert devices_defined(late) == {STUB_NAME}


async def test_the_configured_name_wins_in_either_order(tmp_path: Path) -> None:
    unplugged = tmp_path / "unplugged"
    unplugged.touch()
    env = {"QHY42_STUB_UNPLUGGED_FILE": str(unplugged), **SCAN}
    with sdk_daemon("--device-name", "Main Camera", env=env) as proc:
        async with IndiClient.connect("127.0.0.1", proc.port) as client:
            await client.send('<getProperties version="1.7"/>')
            first = await client.wait_for(defines("Main Camera"))
            assert isinstance(first, DefVector) and "Waiting" in (first.message or "")
            mark = len(client.received)
            unplugged.unlink()
            await client.wait_for(deletes("Main Camera"), APPEAR_S, start=mark)
            again = await client.wait_for(defines("Main Camera"), APPEAR_S, start=mark)
            assert isinstance(again, DefVector) and not again.message  # the camera itself
            mark = len(client.received)
            await connect(client, "Main Camera")
            await client.wait_for(sets("Main Camera", "CONNECTION", "Ok"), APPEAR_S,
                                  start=mark)


async def test_a_second_camera_plugged_in_later_gets_a_device_of_its_own(
    tmp_path: Path
) -> None:
    second = tmp_path / "second"
    with sdk_daemon(env={"QHY42_STUB_SECOND_CAMERA_FILE": str(second), **SCAN}) as proc:
        async with IndiClient.connect("127.0.0.1", proc.port) as client:
            await client.send('<getProperties version="1.7"/>')
            await client.wait_for(defines(STUB_NAME))
            await connect(client, STUB_NAME)
            await client.wait_for(sets(STUB_NAME, "CONNECTION", "Ok"), APPEAR_S)
            mark = len(client.received)
            second.touch()  # plugged in
            await client.wait_for(defines(SECOND_NAME), APPEAR_S, start=mark)
            assert not any(deletes(STUB_NAME)(m) for m in client.received[mark:])
            # The stub models one sensor: the second camera's CONNECT fails, and says so;
            # the first camera goes on.
            mark = len(client.received)
            await connect(client, SECOND_NAME)
            await client.wait_for(sets(SECOND_NAME, "CONNECTION", "Alert"), APPEAR_S,
                                  start=mark)
            await client.send(f'<newNumberVector device="{STUB_NAME}" name="CCD_EXPOSURE">'
                              '<oneNumber name="CCD_EXPOSURE_VALUE">0.01</oneNumber>'
                              '</newNumberVector>')
            await client.wait_for(sets(STUB_NAME, "CCD_EXPOSURE", "Ok"), APPEAR_S,
                                  start=mark)


def test_names_come_from_the_camera_and_clashes_are_numbered() -> None:
    from qhy42_indi.roster import Naming

    naming = Naming("")
    assert naming.name_for("QHY42PRO-0123456789abcdef") == STUB_NAME
    assert naming.name_for("QHY42PRO-0123457777777777") == f"{STUB_NAME} 2"  # same 15
    assert naming.placeholder() == PLACEHOLDER
    configured = Naming("Main")
    assert [configured.name_for(i) for i in ("a", "b", "c")] == ["Main", "Main 2", "Main 3"]
    assert configured.placeholder() == "Main"
