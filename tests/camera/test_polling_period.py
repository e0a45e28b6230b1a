"""POLLING_PERIOD as in a libindi driver: the exposure countdown a client sees comes at the
period it set (KStars shows it; scripts time their polls by it)."""

from __future__ import annotations

from tests.support.camera import answered, connect_camera, set_numbers
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, daemon


async def countdown_updates(client: IndiClient, exposure_s: float) -> int:
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=exposure_s)
    await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), 60, start=start)
    return sum(1 for m in client.received[start:] if is_set("CCD_EXPOSURE", "Busy")(m))


async def test_the_countdown_follows_the_polling_period() -> None:
    with daemon() as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await connect_camera(client)
            await answered(client, "CCD_FRAME", await set_numbers(
                client, "CCD_FRAME", X=0, Y=0, WIDTH=32, HEIGHT=32))
            at_one_second = await countdown_updates(client, 2.0)
            reply = await answered(client, "POLLING_PERIOD", await set_numbers(
                client, "POLLING_PERIOD", PERIOD_MS=100))
            assert reply.state == "Ok"
            at_a_tenth = await countdown_updates(client, 2.0)
    assert at_one_second <= 4  # Busy(2), 1, 0: libindi's default of 1 s
    assert at_a_tenth >= 8  # about 20 at 100 ms; a loaded machine still gives many


async def test_a_fast_simulator_counts_down_in_camera_seconds() -> None:
    """At --time-scale 10 a 20 s exposure lasts 2 wall seconds: its countdown goes from 20
    toward 0 (not 20, 19, 18 and then a frame)."""
    with daemon("--time-scale", "10") as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await connect_camera(client)
            await answered(client, "CCD_FRAME", await set_numbers(
                client, "CCD_FRAME", X=0, Y=0, WIDTH=32, HEIGHT=32))
            start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=20.0)
            await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), 60, start=start)
            left = [float(m.elements[0].value) for m in client.received[start:]
                    if is_set("CCD_EXPOSURE", "Busy")(m)]
    assert left[0] == 20.0
    assert min(left) < 11.0, left  # one wall second in, ten camera seconds are gone
