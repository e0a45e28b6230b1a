"""GPIO ports, TrigOut hold-off and hardware triggers, over real TCP against the daemon.

Each GPIO mode must set the datasheet's REG39 bits; the TrigOut pulse (REG142) must be off
while the camera changes mode and back after, so the simulated camera's signal log shows no
stray pulse; a Trig In edge fired through SIM_TRIGGER starts exactly one armed exposure; the
trigger timeout, abort and fast exposure work with triggers; FPGA firmware that is too old is
an Alert.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from qhy42_indi.backends.sim_timing import Event
from qhy42_indi.indi.messages import DefVector
from tests.support.camera import DEVICE, connect_camera, number, set_numbers, set_texts
from tests.support.client import IndiClient
from tests.support.processes import HOST, Running, daemon
from tests.timing.wire import (
    WAIT_S,
    blob_messages,
    fetch_events,
    is_frame,
    numbers,
    of,
    position,
    registers,
    shoot,
    switch,
    until_done,
    waiting,
)

GPIO_MODES = ["GPIO_I2C", "GPIO_GPS_BOX", "GPIO_5PIN", "GPIO_4PIN", "GPIO_SYNC_MASTER",
              "GPIO_SYNC_SLAVE"]


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:
        yield proc


@pytest.fixture
async def client(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await connect_camera(client)
        await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
        for name, member in (("TRIGGER_MODE", "TRIGGER_SOFTWARE"), ("GPIO_MODE", "GPIO_I2C"),
                             ("SMA_OUTPUT", "SMA_SHUTTER_MEASURE"),
                             ("TRIGOUT_ENABLE", "INDI_ENABLED"),
                             ("CCD_FAST_TOGGLE", "INDI_DISABLED"), ("SIM_SCENE", "SCENE_DARK")):
            assert (await switch(client, name, member)).state == "Ok"
        await numbers(client, "TRIGGER_TIMEOUT", TIMEOUT=60)
        await numbers(client, "CCD_FRAME", X=0, Y=0, WIDTH=256, HEIGHT=128)
        yield client


def rows(events: list[Event], signal: str, edge: str | None = None) -> list[Event]:
    return [e for e in events if e.signal == signal and (edge is None or e.edge == edge)]


def reg142_writes_bracket_every_mode_change(events: list[Event]) -> None:
    """REG142 is written 0 before each MODE_CHANGE and 1 after it, and no stray TrigOut."""
    trigout = 1
    changes = 0
    for event in events:
        if event.signal == "REGISTER" and event.note == "REG142":
            trigout = event.value
        elif event.signal == "MODE_CHANGE":
            changes += 1
            assert trigout == 0, f"TrigOut enabled during {event.note}"
    assert changes and trigout == 1
    assert not [e for e in rows(events, "TRIG_OUT") if e.note == "stray"]


# ---- GPIO registers ------------------------------------------------------------------------


async def test_each_gpio_mode_sets_the_documented_reg39_bits(client: IndiClient) -> None:
    assert (await switch(client, "SMA_OUTPUT", "SMA_TRIGOUT")).state == "Ok"
    for value, member in enumerate(GPIO_MODES):
        start = len(client.received)
        reply = await switch(client, "GPIO_MODE", member)
        assert reply.state == "Ok", reply.message
        await client.wait_for(of("GPIO_REGISTERS"), WAIT_S, start=start)
        reg39, reg142 = await registers(client)
        assert reg39 & 0x0F == value, member
        assert reg39 >> 6 == 1  # SMA: TrigOut, kept across the GPIO mode change
        assert reg142 == 1
    assert (await switch(client, "SMA_OUTPUT", "SMA_SHUTTER_MEASURE")).state == "Ok"
    assert (await registers(client))[0] >> 6 == 0


async def test_gps_properties_exist_only_in_gps_box_mode(client: IndiClient) -> None:
    start = len(client.received)
    await switch(client, "GPIO_MODE", "GPIO_GPS_BOX")
    await client.wait_for(lambda m: isinstance(m, DefVector) and m.name == "GPS_STATE",
                          WAIT_S, start=start)
    start = len(client.received)
    await switch(client, "GPIO_MODE", "GPIO_5PIN")
    await client.wait_for(lambda m: type(m).__name__ == "DelProperty"
                          and getattr(m, "name", None) == "GPS_STATE", WAIT_S, start=start)


async def test_trigout_enable_is_reg142(client: IndiClient) -> None:
    assert (await switch(client, "TRIGOUT_ENABLE", "INDI_DISABLED")).state == "Ok"
    assert (await registers(client))[1] == 0
    assert (await switch(client, "TRIGOUT_ENABLE", "INDI_ENABLED")).state == "Ok"
    assert (await registers(client))[1] == 1


async def test_trigout_is_off_during_every_mode_change_and_back_after(
    client: IndiClient
) -> None:
    await switch(client, "GPIO_MODE", "GPIO_5PIN")
    await fetch_events(client, clear=True)
    await numbers(client, "READ_MODE", MODE=2)
    await numbers(client, "READ_MODE", MODE=1)
    await numbers(client, "USB_SPEED", SPEED=2)
    await numbers(client, "USB_SPEED", SPEED=1)
    await numbers(client, "CCD_BINNING", HOR_BIN=2, VER_BIN=2)
    await numbers(client, "CCD_BINNING", HOR_BIN=1, VER_BIN=1)
    await switch(client, "CCD_CAPTURE_FORMAT", "INDI_MONO_8")
    await switch(client, "CCD_CAPTURE_FORMAT", "INDI_MONO_16")
    await numbers(client, "CCD_FRAME", X=0, Y=64, WIDTH=256, HEIGHT=128)
    events = await fetch_events(client)

    notes = [e.note for e in rows(events, "MODE_CHANGE")]
    assert {"read_mode+roi", "speed", "bin_x+bin_y", "bit_depth", "roi"} <= set(notes)
    reg142_writes_bracket_every_mode_change(events)
    assert (await registers(client))[1] == 1


async def test_trigout_is_held_off_while_connecting(client: IndiClient) -> None:
    await fetch_events(client, clear=True)
    await switch(client, "CONNECTION", "DISCONNECT")
    start = len(client.received)
    await switch(client, "CONNECTION", "CONNECT")
    await client.wait_for(of("GPIO_REGISTERS"), WAIT_S, start=start)
    events = await fetch_events(client)
    assert rows(events, "REGISTER")[0].note == "REG142" and rows(events, "REGISTER")[0].value == 0
    reg142_writes_bracket_every_mode_change(events)


# ---- hardware trigger ----------------------------------------------------------------------


async def test_a_software_fired_trigger_starts_exactly_one_exposure(client: IndiClient) -> None:
    assert (await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")).state == "Ok"
    await fetch_events(client, clear=True)
    sent = datetime.now(UTC)
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.05)
    armed = await client.wait_for(waiting(), WAIT_S, start=start)
    assert number(armed, "CCD_EXPOSURE_VALUE") == 0.05
    await client.wait_quiet(0.3)
    assert not blob_messages(client, start)  # nothing happens without the edge

    first = await switch(client, "SIM_TRIGGER", "FIRE")
    second = await switch(client, "SIM_TRIGGER", "FIRE")
    (shot,) = await until_done(client, start)
    await client.wait_quiet(0.3)

    assert "started" in (first.message or "") and "ignored" in (second.message or "")
    assert len(blob_messages(client, start)) == 1
    assert sum(of("CCD_EXPOSURE", state="Ok")(m) for m in client.received[start:]) == 1
    assert shot.header["TRIGGER"] == "TRIG_IN"
    # the start is when the edge came (at least the 0.3 s quiet later), not the command
    assert shot.utc("DATE-OBS") - sent >= timedelta(seconds=0.25)
    events = await fetch_events(client)
    assert [e.note for e in rows(events, "TRIG_IN")] == ["", "ignored"]
    (rising,) = rows(events, "SHUTTER_MEASURE", "RISING")
    assert rising.sequence == shot.header["FRAMESEQ"]
    edge = rows(events, "TRIG_IN")[0]
    assert 0 <= rising.model_s - edge.model_s < shot.header["LINEPER"] * 1e-6


async def test_no_trigger_within_the_timeout_ends_in_alert(client: IndiClient) -> None:
    await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")
    await numbers(client, "TRIGGER_TIMEOUT", TIMEOUT=0.5)
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.05)
    await client.wait_for(waiting(), WAIT_S, start=start)
    alert = await client.wait_for(of("CCD_EXPOSURE", state="Alert"), WAIT_S, start=start)
    assert "no trigger within 0.5 s" in (alert.message or "")  # type: ignore[union-attr]
    assert not blob_messages(client, start)
    assert "ignored" in ((await switch(client, "SIM_TRIGGER", "FIRE")).message or "")


async def test_abort_while_waiting_for_the_trigger(client: IndiClient) -> None:
    await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.05)
    await client.wait_for(waiting(), WAIT_S, start=start)
    assert (await switch(client, "CCD_ABORT_EXPOSURE", "ABORT")).state == "Ok"
    await client.wait_for(of("CCD_EXPOSURE", state="Idle"), WAIT_S, start=start)
    assert "ignored" in ((await switch(client, "SIM_TRIGGER", "FIRE")).message or "")
    await client.wait_quiet(0.3)
    assert not blob_messages(client, start)
    # and the camera is free again
    await switch(client, "TRIGGER_MODE", "TRIGGER_SOFTWARE")
    assert (await shoot(client, 0.01)).header["TRIGGER"] == "SOFTWARE"


async def test_fast_exposure_takes_one_frame_per_trigger(client: IndiClient) -> None:
    await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")
    await switch(client, "CCD_FAST_TOGGLE", "INDI_ENABLED")
    await numbers(client, "CCD_FAST_COUNT", FRAMES=2)
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.02)
    first_wait = await position(client, waiting(), start)
    await switch(client, "SIM_TRIGGER", "FIRE")
    first_frame = await position(client, is_frame(), first_wait)
    second_wait = await position(client, waiting(), first_wait + 1)
    assert second_wait > first_frame  # armed again, waiting once the first frame went out
    await switch(client, "SIM_TRIGGER", "FIRE")
    shots = await until_done(client, start)

    assert len(shots) == 2
    assert [s.header["TRIGGER"] for s in shots] == ["TRIG_IN", "TRIG_IN"]
    assert shots[1].header["FRAMESEQ"] == shots[0].header["FRAMESEQ"] + 1


# ---- firmware ------------------------------------------------------------------------------


async def test_fpga_firmware_too_old_is_an_alert_and_gpio_refuses(client: IndiClient) -> None:
    start = await set_texts(client, "SIM_FIRMWARE", FPGA="FPGA_V20190501, MAX10_V20190501")
    await client.wait_for(of("SIM_FIRMWARE", state="Ok"), WAIT_S, start=start)
    try:
        await switch(client, "CONNECTION", "DISCONNECT")
        start = len(client.received)
        await switch(client, "CONNECTION", "CONNECT")
        firmware = await client.wait_for(of("FIRMWARE_INFO", state="Alert"), WAIT_S, start=start)
        assert "FPGA_V20191118" in (firmware.message or "")  # type: ignore[union-attr]
        assert "FPGA_V20190501" in (firmware.message or "")  # type: ignore[union-attr]
        refused = await switch(client, "GPIO_MODE", "GPIO_5PIN")
        assert refused.state == "Alert" and "FPGA_V20191118" in (refused.message or "")
        assert (await switch(client, "TRIGOUT_ENABLE", "INDI_DISABLED")).state == "Alert"
        # Trig In is not a REG39 feature: it still works
        assert (await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")).state == "Ok"
    finally:
        start = await set_texts(client, "SIM_FIRMWARE", FPGA="FPGA_V20191118, MAX10_V20191120")
        await client.wait_for(of("SIM_FIRMWARE", state="Ok"), WAIT_S, start=start)
        await switch(client, "CONNECTION", "DISCONNECT")
        start = len(client.received)
        await switch(client, "CONNECTION", "CONNECT")
    again = await client.wait_for(
        lambda m: isinstance(m, DefVector) and m.name == "FIRMWARE_INFO", WAIT_S, start=start)
    assert again.state == "Ok"  # type: ignore[union-attr]
