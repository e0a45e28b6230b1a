"""An INDI client and an Alpaca client on one camera at once: each sees what the other does,
and a command that conflicts with what the camera is doing is refused with 0x40B and the
reason, never queued."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import requests
from astropy.io import fits

from tests.alpaca.support import HTTP_TIMEOUT_S, alpaca_daemon, get, put
from tests.support.camera import (
    DEVICE,
    blobs,
    connect_camera,
    decode_fits,
    set_numbers,
    set_switch,
    set_texts,
)
from tests.support.client import IndiClient, is_blob, is_set
from tests.support.processes import HOST

INVALID_OPERATION = 0x40B
EXPOSING = 2


async def alpaca_value(server: object, member: str) -> object:
    body = (await asyncio.to_thread(get, server, member)).json()  # type: ignore[arg-type]
    assert body["ErrorNumber"] == 0, body
    return body["Value"]


async def alpaca_put(server: object, member: str, **form: str) -> dict[str, object]:
    response = await asyncio.to_thread(put, server, member, **form)  # type: ignore[arg-type]
    body = response.json()
    assert isinstance(body, dict)
    return body


async def test_an_alpaca_exposure_is_busy_on_indi_and_its_fits_reaches_indi() -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            await indi.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
            assert (await alpaca_put(server, "connected", Connected="True"))["ErrorNumber"] == 0
            start = len(indi.received)
            reply = await alpaca_put(server, "startexposure", Duration="2", Light="False")
            assert reply["ErrorNumber"] == 0, reply
            await indi.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=start)
            await indi.wait_for(is_blob, start=start)
            hdus = decode_fits(blobs(indi.received[start:])[0])
            assert hdus[0].header["FRAME"] == "Dark"  # Light=False
            assert await alpaca_value(server, "imageready") is True


async def test_an_indi_exposure_shows_as_exposing_and_alpaca_cannot_start_another() -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            assert (await alpaca_put(server, "connected", Connected="True"))["ErrorNumber"] == 0
            start = await set_numbers(indi, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=200)
            first = await indi.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=start)
            assert await alpaca_value(server, "camerastate") == EXPOSING
            # The countdown moved on: Alpaca's PercentCompleted follows the INDI exposure too.
            later = indi.received.index(first) + 1
            await indi.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=later)
            percent = await alpaca_value(server, "percentcompleted")
            assert isinstance(percent, int) and 0 < percent < 100, percent
            refused = await alpaca_put(server, "startexposure", Duration="1", Light="True")
            assert refused["ErrorNumber"] == INVALID_OPERATION
            assert "exposure" in str(refused["ErrorMessage"]).lower()
            # Not queued: the INDI exposure is still the one that runs.
            assert await alpaca_value(server, "camerastate") == EXPOSING
            start = await set_switch(indi, "CCD_ABORT_EXPOSURE", "ABORT")
            await indi.wait_for(is_set("CCD_EXPOSURE", "Idle"), start=start)
            assert await alpaca_value(server, "camerastate") == 0


async def test_startexposure_during_live_video_is_refused_with_the_reason() -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            assert (await alpaca_put(server, "connected", Connected="True"))["ErrorNumber"] == 0
            start = await set_switch(indi, "CCD_VIDEO_STREAM", "STREAM_ON")
            await indi.wait_for(is_set("CCD_VIDEO_STREAM", "Busy"), start=start)
            refused = await alpaca_put(server, "startexposure", Duration="1", Light="True")
            assert refused["ErrorNumber"] == INVALID_OPERATION
            reason = str(refused["ErrorMessage"])
            assert "video" in reason.lower() and not reason.startswith("[")  # no INDI level tag
            start = await set_switch(indi, "CCD_VIDEO_STREAM", "STREAM_OFF")
            await indi.wait_for(is_set("CCD_VIDEO_STREAM", "Idle"), start=start)


async def test_settings_and_cooler_changes_show_on_both_sides() -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            assert (await alpaca_put(server, "connected", Connected="True"))["ErrorNumber"] == 0
            start = await set_switch(indi, "CCD_COOLER", "COOLER_ON")
            await indi.wait_for(is_set("CCD_COOLER"), start=start)
            assert await alpaca_value(server, "cooleron") is True
            start = await set_numbers(indi, "CCD_GAIN", GAIN=42)
            await indi.wait_for(is_set("CCD_GAIN"), start=start)
            assert await alpaca_value(server, "gain") == 42
            start = len(indi.received)
            assert (await alpaca_put(server, "gain", Gain="17"))["ErrorNumber"] == 0
            await indi.wait_for(lambda m: is_set("CCD_GAIN")(m) and any(
                getattr(e, "value", None) == 17 for e in m.elements), start=start)  # type: ignore[union-attr]
            assert (await alpaca_put(server, "cooleron", CoolerOn="False"))["ErrorNumber"] == 0
            await indi.wait_for(lambda m: is_set("CCD_COOLER")(m) and any(
                e.name == "COOLER_OFF" and str(e.value) == "On" for e in m.elements),  # type: ignore[union-attr]
                start=start)
            # Alpaca's Disconnect leaves the camera connected for the INDI client.
            assert (await alpaca_put(server, "connected", Connected="False"))["ErrorNumber"] == 0
            start = await set_numbers(indi, "CCD_GAIN", GAIN=5)
            reply = await indi.wait_for(is_set("CCD_GAIN"), start=start)
            assert reply.state == "Ok"  # type: ignore[union-attr]


async def test_an_alpaca_exposure_is_saved_under_upload_local_and_still_downloads(
        tmp_path: Path) -> None:
    with alpaca_daemon() as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            start = await set_texts(indi, "UPLOAD_SETTINGS", UPLOAD_DIR=str(tmp_path),
                                    UPLOAD_PREFIX="ALPACA_XXX")
            await indi.wait_for(is_set("UPLOAD_SETTINGS"), start=start)
            start = await set_switch(indi, "UPLOAD_MODE", "UPLOAD_LOCAL")
            await indi.wait_for(is_set("UPLOAD_MODE"), start=start)
            assert (await alpaca_put(server, "connected", Connected="True"))["ErrorNumber"] == 0
            assert (await alpaca_put(server, "numx", NumX="64"))["ErrorNumber"] == 0
            assert (await alpaca_put(server, "numy", NumY="32"))["ErrorNumber"] == 0
            reply = await alpaca_put(server, "startexposure", Duration="1", Light="True")
            assert reply["ErrorNumber"] == 0, reply
            for _ in range(200):
                if await alpaca_value(server, "imageready"):
                    break
                await asyncio.sleep(0.05)
            saved = sorted(tmp_path.glob("ALPACA_*.fits"))
            assert len(saved) == 1
            pixels = await asyncio.to_thread(
                lambda: requests.get(server.camera_url("imagearray"),
                                     timeout=HTTP_TIMEOUT_S).json()["Value"])
            with fits.open(saved[0]) as hdus:
                assert np.array_equal(np.array(pixels).T, hdus[0].data)
