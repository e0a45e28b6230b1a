"""Burst mode against the daemon, over TCP: start 1 and end 6 deliver the frames numbered 2,
3, 4, 5 as FITS, each once, with their numbers and timing in the header; a second burst
works; burst frames are saved under the upload mode; IDLE stops output; resetting the frame
counter restarts the numbering; burst mode needs live mode."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from astropy.io import fits

from qhy42_indi.indi.messages import SetVector
from tests.streaming.wire import (
    WAIT_S,
    blob_link,
    fits_frames,
    head_counter,
    main_link,
    payload,
    setup_live,
    stream,
    stream_frames,
    video_quiet,
)
from tests.support.camera import answered, number, set_numbers, set_switch, set_texts
from tests.support.client import IndiClient, is_set
from tests.support.processes import Running, daemon

EXPOSURE_S = 0.05  # 20 frames/s of camera time


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon("--time-scale", "2") as proc:
        yield proc


@pytest.fixture
async def main(server: Running) -> AsyncIterator[IndiClient]:
    async with main_link(server) as client:
        await setup_live(client, exposure_s=EXPOSURE_S)
        yield client
        await set_switch(client, "BURST_MODE", "INDI_DISABLED")
        await stream(client, False)


@pytest.fixture
async def video(server: Running, main: IndiClient) -> AsyncIterator[IndiClient]:
    async with blob_link(server) as client:
        yield client


async def burst_mode(main: IndiClient, start: int, end: int) -> None:
    reply = await answered(main, "BURST_RANGE", await set_numbers(
        main, "BURST_RANGE", START=start, END=end))
    assert reply.state == "Ok"
    reply = await answered(main, "BURST_MODE", await set_switch(main, "BURST_MODE",
                                                                "INDI_ENABLED"))
    assert reply.state == "Ok", reply.message


async def capture(main: IndiClient) -> SetVector:
    start = await set_switch(main, "BURST_CAPTURE", "CAPTURE")
    reply = await main.wait_for(
        lambda m: is_set("BURST_CAPTURE")(m) and m.state in ("Ok", "Alert"), WAIT_S, start=start)
    assert isinstance(reply, SetVector)
    return reply


def headers(video: IndiClient, start: int) -> list[fits.Header]:
    return [fits.getheader(io.BytesIO(payload(b))) for b in fits_frames(video.received[start:])]


async def fits_arrived(video: IndiClient, count: int, start: int) -> None:
    """The BLOB connection is another socket: its frames may trail the main link's Ok."""
    await video.wait_for(lambda m: len(fits_frames(video.received[start:])) >= count, WAIT_S,
                         start=max(0, len(video.received) - 1))


async def test_burst_1_6_delivers_frames_2_3_4_5_as_fits_each_once_and_again(
    main: IndiClient, video: IndiClient
) -> None:
    await stream(main, True)
    await burst_mode(main, 1, 6)
    idle = [m for m in main.received if is_set("BURST_IDLE")(m)][-1]
    assert [e.value for e in idle.elements] == ["On", "Off"]  # IDLE before start/end
    await video_quiet(video)  # video frames sent before IDLE may trail on the BLOB socket

    for burst in (1, 2):
        start = len(video.received)
        reply = await capture(main)
        assert reply.state == "Ok", reply.message
        await fits_arrived(video, 4, start)
        await asyncio.sleep(0.5)  # nothing more may come
        cards = headers(video, start)
        assert [h["FRAMENUM"] for h in cards] == [2, 3, 4, 5]
        assert {(h["BURSTNUM"], h["BURSTSTA"], h["BURSTEND"]) for h in cards} == {(burst, 1, 6)}
        assert not stream_frames(video.received[start:])  # burst mode: no video frames
        starts = [datetime.fromisoformat(h["DATE-OBS"]) for h in cards]
        ends = [datetime.fromisoformat(h["DATE-END"]) for h in cards]
        assert starts == sorted(starts)
        for begin, end, header in zip(starts, ends, cards, strict=True):
            assert (end - begin).total_seconds() == pytest.approx(header["EXPTIME"], abs=1e-5)
            assert header["EXPTIME"] == pytest.approx(EXPOSURE_S, rel=1e-3)
            assert header["FRAMEPER"] == pytest.approx(EXPOSURE_S, rel=1e-3)
            assert header["BITPIX"] == 8 and header["NAXIS1"] == 512


async def test_burst_frames_are_saved_under_the_upload_mode(
    main: IndiClient, video: IndiClient, tmp_path: Path
) -> None:
    await answered(main, "UPLOAD_SETTINGS", await set_texts(
        main, "UPLOAD_SETTINGS", UPLOAD_DIR=str(tmp_path), UPLOAD_PREFIX="BURST_XXX"))
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_BOTH"))
    await stream(main, True)
    await burst_mode(main, 10, 13)
    start = len(video.received)
    reply = await capture(main)
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_CLIENT"))

    assert reply.state == "Ok", reply.message
    await fits_arrived(video, 2, start)
    saved = sorted(tmp_path.glob("BURST_*.fits"))
    assert [p.name for p in saved] == ["BURST_001.fits", "BURST_002.fits"]
    assert [fits.getheader(p)["FRAMENUM"] for p in saved] == [11, 12]
    assert [h["FRAMENUM"] for h in headers(video, start)] == [11, 12]


async def test_idle_stops_output_and_release_restarts_numbering(
    main: IndiClient, video: IndiClient
) -> None:
    await stream(main, True)
    idle = await answered(main, "BURST_IDLE", await set_switch(main, "BURST_IDLE", "IDLE"))
    assert idle.state == "Ok"
    await video_quiet(video)  # frames already read out drain
    quiet = len(video.received)
    await asyncio.sleep(1.0)  # 40 frames of camera time at 2x
    assert not stream_frames(video.received[quiet:])

    release = len(video.received)
    await answered(main, "BURST_IDLE", await set_switch(main, "BURST_IDLE", "RELEASE"))
    await video.wait_for(lambda m: bool(stream_frames([m])), WAIT_S, start=release)
    first = stream_frames(video.received[release:])[0]
    assert head_counter(payload(first)) == 1


async def test_frame_counter_reset_restarts_numbering(
    main: IndiClient, video: IndiClient
) -> None:
    await stream(main, True)
    await asyncio.sleep(1.0)
    counts = [m for m in main.received if is_set("FRAME_COUNTER")(m)]
    assert counts and number(counts[-1], "COUNT") > 5
    start = len(video.received)
    reset = await answered(main, "FRAME_COUNTER_RESET", await set_switch(
        main, "FRAME_COUNTER_RESET", "RESET"))
    assert reset.state == "Ok"
    await asyncio.sleep(1.0)
    numbers = [head_counter(payload(f)) for f in stream_frames(video.received[start:])]
    # frames read out before the reset keep their numbers; then the numbering starts again
    # (a frame or two may be lost to a loaded machine, never the restart itself)
    restart = next(i for i in range(1, len(numbers)) if numbers[i] < numbers[i - 1])
    after = numbers[restart:]
    assert after[0] <= 3 and after == sorted(after) and len(after) >= 5


async def test_burst_mode_needs_live_mode_and_a_valid_range(main: IndiClient) -> None:
    await stream(main, False)
    refused = await answered(main, "BURST_MODE", await set_switch(
        main, "BURST_MODE", "INDI_ENABLED"))
    assert refused.state == "Alert" and "live mode" in (refused.message or "")
    reversed_range = await answered(main, "BURST_RANGE", await set_numbers(
        main, "BURST_RANGE", START=6, END=1))
    assert reversed_range.state == "Alert"
    off = await answered(main, "BURST_CAPTURE", await set_switch(main, "BURST_CAPTURE",
                                                                 "CAPTURE"))
    assert off.state == "Alert" and "Burst mode is off" in (off.message or "")


async def test_osd_and_anti_rbi_switches_answer(main: IndiClient, video: IndiClient) -> None:
    for name in ("IMAGE_OSD", "LIVE_ANTI_RBI"):
        on = await answered(main, name, await set_switch(main, name, "INDI_ENABLED"))
        off = await answered(main, name, await set_switch(main, name, "INDI_DISABLED"))
        assert (on.state, off.state) == ("Ok", "Ok")
    await answered(main, "IMAGE_OSD", await set_switch(main, "IMAGE_OSD", "INDI_ENABLED"))
    start = len(video.received)
    await stream(main, True)
    await asyncio.sleep(0.5)
    await stream(main, False)
    await answered(main, "IMAGE_OSD", await set_switch(main, "IMAGE_OSD", "INDI_DISABLED"))
    frame = payload(stream_frames(video.received[start:])[-1])
    assert max(frame[512 * 4:512 * 20]) == 255  # digits burned into the top rows
