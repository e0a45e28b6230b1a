"""The QHY42PRO's timing through Alpaca: with the GPS-BOX chosen by Action("GpioMode") and
locked, LastExposureStartTime and Action("FrameTiming") give the frame's GPS start, the
DATE-OBS of the FITS an INDI client got for the same frame."""

from __future__ import annotations

import asyncio
import json

from tests.alpaca.support import alpaca_daemon, get, put
from tests.support.camera import DEVICE, blobs, decode_fits
from tests.support.client import IndiClient, is_blob, is_def
from tests.support.processes import HOST


async def call(function: object, *args: object, **kwargs: str) -> dict[str, object]:
    response = await asyncio.to_thread(function, *args, **kwargs)  # type: ignore[arg-type]
    body = response.json()
    assert body["ErrorNumber"] == 0, body
    assert isinstance(body, dict)
    return body


async def test_gps_start_time_reaches_alpaca_as_in_the_fits() -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await indi.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
            await indi.wait_for(is_def("CONNECTION"))
            await indi.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
            await call(put, server, "connected", Connected="True")
            mode = await call(put, server, "action", Action="GpioMode", Parameters="gps_box")
            assert json.loads(str(mode["Value"])) == {"value": "gps_box"}
            for _attempt in range(40):  # the receiver locks a few camera seconds after power-on
                start = len(indi.received)
                await call(put, server, "startexposure", Duration="0.5", Light="True")
                await indi.wait_for(is_blob, start=start)
                header = decode_fits(blobs(indi.received[start:])[0])[0].header
                if header["TIMESRC"] == "GPS":
                    break
                await asyncio.sleep(0.1)
            assert header["TIMESRC"] == "GPS"
            started = (await call(get, server, "lastexposurestarttime"))["Value"]
            assert started == str(header["DATE-OBS"])[:23]
            timing = json.loads(str((await call(put, server, "action", Action="FrameTiming",
                                                Parameters=""))["Value"]))
            assert timing["time_source"] == "GPS"
            assert timing["start_utc"].replace("+00:00", "")[:23] == started
            assert timing["gps"] is not None and timing["line_period_us"] > 0
