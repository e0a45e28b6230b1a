"""Times in every frame, over real TCP against the daemon: FITS keywords against the exposure
and the simulated camera's own signal log, GPS-BOX heads, and a sync master with its slave.

Within one line period is the promise: a rolling shutter's row clock is the grain of its
timing. Nothing here measures how long anything took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from qhy42_indi.backends.sim_timing import Event
from qhy42_indi.indi.messages import DefVector
from tests.support.camera import DEVICE, connect_camera, number, set_numbers
from tests.support.client import IndiClient
from tests.support.processes import HOST, Running, daemon
from tests.timing.wire import (
    WAIT_S,
    Shot,
    fetch_events,
    head_start_utc,
    numbers,
    of,
    shoot,
    switch,
    text,
    until_done,
    waiting,
)

SLAVE = "QHY CCD QHY42PRO-SIM02"


async def prepared(client: IndiClient, device: str = DEVICE) -> None:
    await connect_camera(client, device)
    await client.send(f"<enableBLOB device='{device}'>Also</enableBLOB>")
    await switch(client, "SIM_SCENE", "SCENE_DARK", device)
    await numbers(client, "CCD_FRAME", device, X=0, Y=0, WIDTH=256, HEIGHT=128)


def shutter_pulse(events: list[Event], sequence: int) -> tuple[Event, Event, Event]:
    """The frame's shutter-measure rising and falling edges and its line-period train."""
    mine = [e for e in events if e.sequence == sequence]
    (rising,) = [e for e in mine if e.signal == "SHUTTER_MEASURE" and e.edge == "RISING"]
    (falling,) = [e for e in mine if e.signal == "SHUTTER_MEASURE" and e.edge == "FALLING"]
    (lines,) = [e for e in mine if e.signal == "LINE_PERIOD"]
    return rising, falling, lines


def check_times_against_the_log(shot: Shot, events: list[Event]) -> None:
    header = shot.header
    line = shot.line_period
    rising, falling, lines = shutter_pulse(events, header["FRAMESEQ"])
    start, end = shot.utc("DATE-OBS"), shot.utc("DATE-END")
    assert header["TIMESYS"] == "UTC"
    assert abs((end - start) - timedelta(seconds=header["EXPTIME"])) <= timedelta(microseconds=1)
    assert header["EXPTIME"] == pytest.approx(header["EXPLINES"] * header["LINEPER"] * 1e-6,
                                              abs=1e-9)
    assert abs(start - rising.utc) < line
    assert abs(end - falling.utc) < line
    assert lines.period_us == header["LINEPER"]
    assert lines.pulses == header["READROWS"]
    # the last row read starts (READROWS - 1) line periods after row 0
    last_row = start + timedelta(seconds=(header["READROWS"] - 1) * header["LINEPER"] * 1e-6)
    train_end = rising.utc + timedelta(microseconds=(lines.pulses - 1) * lines.period_us)
    assert abs(last_row - train_end) < line


# ---- host clock --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:  # time scale 1: the host clock and the camera's agree
        yield proc


@pytest.fixture
async def client(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await prepared(client)
        await switch(client, "TRIGGER_MODE", "TRIGGER_SOFTWARE")
        await numbers(client, "USB_SPEED", SPEED=1)
        yield client


@pytest.mark.parametrize(("speed", "line_period_us"), [(0, 40.7), (2, 10.2)])
async def test_fits_times_match_the_exposure_and_the_cameras_signal_log(
    client: IndiClient, speed: int, line_period_us: float
) -> None:
    start = len(client.received)
    await numbers(client, "USB_SPEED", SPEED=speed)
    period = await client.wait_for(of("LINE_PERIOD"), WAIT_S, start=start)
    assert number(period, "PERIOD") == line_period_us
    await numbers(client, "CCD_BINNING", HOR_BIN=2, VER_BIN=2)
    await numbers(client, "CCD_FRAME", X=64, Y=300, WIDTH=256, HEIGHT=200)
    await fetch_events(client, clear=True)
    shot = await shoot(client, 0.0123)
    events = await fetch_events(client)
    await numbers(client, "CCD_BINNING", HOR_BIN=1, VER_BIN=1)

    header = shot.header
    assert (header["LINEPER"], header["FIRSTROW"], header["READROWS"]) == (
        line_period_us, 300, 200)
    assert shot.pixels.shape == (100, 128)  # 2x2 binned: image row k is sensor rows 2k, 2k+1
    assert header["TIMESRC"] == "HOST" and header["TRIGGER"] == "SOFTWARE"
    check_times_against_the_log(shot, events)
    timing = next(m for m in reversed(client.received) if of("EXPOSURE_TIMING")(m))
    assert text(timing, "START_UTC") == header["DATE-OBS"]
    assert text(timing, "END_UTC") == header["DATE-END"]
    assert text(timing, "SEQUENCE") == str(header["FRAMESEQ"])
    assert text(timing, "TIME_SOURCE") == "HOST"


async def test_a_triggered_frame_starts_at_the_edge_within_a_line_period(
    client: IndiClient
) -> None:
    await switch(client, "TRIGGER_MODE", "TRIGGER_HARDWARE")
    await fetch_events(client, clear=True)
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.02)
    await client.wait_for(waiting(), WAIT_S, start=start)
    await switch(client, "SIM_TRIGGER", "FIRE")
    (shot,) = await until_done(client, start)
    events = await fetch_events(client)

    check_times_against_the_log(shot, events)
    (edge,) = [e for e in events if e.signal == "TRIG_IN"]
    rising, _, _ = shutter_pulse(events, shot.header["FRAMESEQ"])
    assert 0 <= rising.model_s - edge.model_s < shot.header["LINEPER"] * 1e-6


# ---- GPS-BOX -----------------------------------------------------------------------------


async def test_with_the_gps_box_the_times_come_from_the_frame_head() -> None:
    # At time scale 10 the simulated world's UTC (the GPS's) runs ahead of the host clock,
    # so a time taken from the host clock could not match the head.
    with daemon("--time-scale", "10") as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await prepared(client)
            start = len(client.received)
            await switch(client, "GPIO_MODE", "GPIO_GPS_BOX")
            await client.wait_for(lambda m: isinstance(m, DefVector) and m.name == "GPS_DATA",
                                  WAIT_S, start=start)
            shots = []
            for _ in range(60):  # the box locks after 5 s of camera time: 60 x 0.2 s is past it
                await fetch_events(client, clear=True)
                shots.append(await shoot(client, 0.2))
                if shots[-1].header["GPSLOCK"]:
                    break
            events = await fetch_events(client)
            state = next(m for m in reversed(client.received) if of("GPS_STATE")(m))
            data = next(m for m in reversed(client.received) if of("GPS_DATA")(m))

    for shot in shots[:-1]:  # before the lock: host clock, and said so
        assert shot.header["TIMESRC"] == "HOST" and not shot.header["GPSLOCK"]
        assert shot.header["GPS_STAT"] == 1
    locked = shots[-1]
    header = locked.header
    assert header["GPSLOCK"] and header["TIMESRC"] == "GPS"
    flag, head_start = head_start_utc(locked.pixels)  # read from the image's row 0 here
    assert flag == 0x33
    assert locked.utc("DATE-OBS") == head_start
    assert locked.utc("DATE-END") == head_start + timedelta(seconds=header["EXPTIME"])
    assert locked.utc("DATE-OBS") - datetime.now(UTC) > timedelta(seconds=2)  # not the host's
    check_times_against_the_log(locked, events)
    assert number(state, "STATUS") == 3 and state.state == "Ok"  # type: ignore[union-attr]
    assert abs(number(state, "PPS_COUNTER") - 10_000_000) <= 20
    assert text(data, "START_UTC") == header["DATE-OBS"]
    assert (header["GPS_SEQ"], header["GPS_SFLG"]) == (header["FRAMESEQ"], 0x33)
    assert header["GPS_LAT"] == pytest.approx(19.8207, abs=1e-5)
    assert header["GPS_LONG"] == pytest.approx(-155.4681, abs=1e-5)


# ---- multi-camera sync -------------------------------------------------------------------


async def test_a_sync_master_and_its_slave_start_together() -> None:
    with daemon("--simulators", "2") as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await prepared(client, DEVICE)
            await prepared(client, SLAVE)
            assert (await switch(client, "GPIO_MODE", "GPIO_SYNC_MASTER", DEVICE)).state == "Ok"
            assert (await switch(client, "GPIO_MODE", "GPIO_SYNC_SLAVE", SLAVE)).state == "Ok"
            slave_start = await set_numbers(client, "CCD_EXPOSURE", device=SLAVE,
                                            CCD_EXPOSURE_VALUE=0.03)
            armed = await client.wait_for(waiting(SLAVE), WAIT_S, start=slave_start)
            assert "sync master" in (armed.message or "")  # type: ignore[union-attr]
            master = await shoot(client, 0.03, DEVICE)
            (slave,) = await until_done(client, slave_start, SLAVE)
            master_log = await fetch_events(client, DEVICE)
            slave_log = await fetch_events(client, SLAVE)

    assert (master.header["TRIGGER"], slave.header["TRIGGER"]) == ("SOFTWARE", "SYNC")
    lag = slave.utc("DATE-OBS") - master.utc("DATE-OBS")
    assert timedelta(0) <= lag < slave.line_period
    assert master.header["EXPTIME"] == slave.header["EXPTIME"]
    (sync_out,) = [e for e in master_log if e.signal == "SYNC"]
    (sync_in,) = [e for e in slave_log if e.signal == "SYNC"]
    assert (sync_out.ports, sync_in.ports) == (("SYNC_OUT",), ("SYNC_IN",))
    assert sync_out.utc == sync_in.utc
    check_times_against_the_log(master, master_log)
    check_times_against_the_log(slave, slave_log)
