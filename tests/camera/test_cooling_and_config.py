"""Cooling toward a set-point, the supply voltage, and CONFIG_PROCESS, over the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.camera import (
    DEVICE,
    answered,
    connect_camera,
    number,
    set_numbers,
    set_switch,
)
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, Running, daemon

# Cooling runs 60x faster than real time, so minutes of TEC take seconds.
TIME_SCALE = "60"


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon("--time-scale", TIME_SCALE) as proc:
        yield proc


@pytest.fixture
async def client(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as connection:
        await connect_camera(connection)
        yield connection


async def test_a_set_point_turns_the_cooler_on_and_is_reached(client: IndiClient) -> None:
    start = await set_numbers(client, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-10)
    cooler = await client.wait_for(is_set("CCD_COOLER"), start=start)
    assert [e.value for e in cooler.elements] == ["On", "Off"]  # type: ignore[union-attr]
    busy = await client.wait_for(is_set("CCD_TEMPERATURE", "Busy"), start=start)
    assert number(busy, "CCD_TEMPERATURE_VALUE") > -9
    reached = await client.wait_for(is_set("CCD_TEMPERATURE", "Ok"), timeout_s=60, start=start)
    assert abs(number(reached, "CCD_TEMPERATURE_VALUE") + 10) <= 0.2
    power = [number(m, "CCD_COOLER_VALUE") for m in client.received[start:]
             if is_set("CCD_COOLER_POWER")(m)]
    assert power and max(power) > 50 and all(0 <= p <= 100 for p in power)


async def test_temperatures_readings_move_monotonically_toward_a_colder_target(
    client: IndiClient,
) -> None:
    start = await set_numbers(client, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-14)
    await client.wait_for(is_set("CCD_TEMPERATURE", "Ok"), timeout_s=60, start=start)
    readings = [number(m, "CCD_TEMPERATURE_VALUE") for m in client.received[start:]
                if is_set("CCD_TEMPERATURE")(m)]
    assert readings[-1] < readings[0]


async def test_a_target_beyond_the_limits_is_alert(client: IndiClient) -> None:
    reply = await answered(client, "CCD_TEMPERATURE", await set_numbers(
        client, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-80))
    assert reply.state == "Alert" and "[-50, 50]" in (reply.message or "")


async def test_cooler_off_idles_the_temperature(client: IndiClient) -> None:
    start = await set_switch(client, "CCD_COOLER", "COOLER_OFF")
    reply = await answered(client, "CCD_COOLER", start)
    assert [e.value for e in reply.elements] == ["Off", "On"]
    await client.wait_for(is_set("CCD_TEMPERATURE", "Idle"), start=start)


async def test_manual_power_switches_to_manual_mode(client: IndiClient) -> None:
    start = await set_numbers(client, "CCD_COOLER_POWER", CCD_COOLER_VALUE=40)
    mode = await client.wait_for(is_set("CCD_COOLER_MODE"), start=start)
    assert [e.value for e in mode.elements] == ["Off", "On"]  # type: ignore[union-attr]
    power = await client.wait_for(is_set("CCD_COOLER_POWER"), start=start)
    assert abs(number(power, "CCD_COOLER_VALUE") - 40) < 1
    await answered(client, "CCD_COOLER", await set_switch(client, "CCD_COOLER", "COOLER_OFF"))


async def test_config_save_and_load_round_trip(client: IndiClient, server: Running) -> None:
    await answered(client, "CCD_GAIN", await set_numbers(client, "CCD_GAIN", GAIN=33))
    saved = await answered(client, "CONFIG_PROCESS", await set_switch(
        client, "CONFIG_PROCESS", "CONFIG_SAVE"))
    assert saved.state == "Ok"
    path = server.home / ".indi" / f"{DEVICE}_config.xml"
    assert path.is_file() and b"CCD_GAIN" in path.read_bytes()
    await answered(client, "CCD_GAIN", await set_numbers(client, "CCD_GAIN", GAIN=44))
    start = await set_switch(client, "CONFIG_PROCESS", "CONFIG_LOAD")
    gain = await client.wait_for(is_set("CCD_GAIN", "Ok"), start=start)
    assert number(gain, "GAIN") == 33
    loaded = await answered(client, "CONFIG_PROCESS", start)
    assert loaded.state == "Ok" and all(e.value == "Off" for e in loaded.elements)


async def test_saved_config_is_applied_on_connect(client: IndiClient) -> None:
    await answered(client, "CCD_OFFSET", await set_numbers(client, "CCD_OFFSET", OFFSET=77))
    await answered(client, "CONFIG_PROCESS", await set_switch(
        client, "CONFIG_PROCESS", "CONFIG_SAVE"))
    await answered(client, "CONNECTION", await set_switch(client, "CONNECTION", "DISCONNECT"))
    start = await set_switch(client, "CONNECTION", "CONNECT")
    offset = await client.wait_for(is_set("CCD_OFFSET", "Ok"), start=start)
    assert number(offset, "OFFSET") == 77


async def test_config_default_restores_skeleton_values_and_purge_removes_the_file(
    client: IndiClient, server: Running
) -> None:
    await answered(client, "CCD_FAST_COUNT", await set_numbers(client, "CCD_FAST_COUNT",
                                                               FRAMES=9))
    start = await set_switch(client, "CONFIG_PROCESS", "CONFIG_DEFAULT")
    count = await client.wait_for(is_set("CCD_FAST_COUNT", "Ok"), start=start)
    assert number(count, "FRAMES") == 1
    # CONFIG_DEFAULT's own reply first: taken for CONFIG_SAVE's, the file is not written yet.
    await answered(client, "CONFIG_PROCESS", start)
    await answered(client, "CONFIG_PROCESS", await set_switch(
        client, "CONFIG_PROCESS", "CONFIG_SAVE"))
    path = server.home / ".indi" / f"{DEVICE}_config.xml"
    assert path.exists()
    await answered(client, "CONFIG_PROCESS", await set_switch(
        client, "CONFIG_PROCESS", "CONFIG_PURGE"))
    assert not path.exists()
