"""Live video against the daemon, over TCP, with two connections as KStars opens them: frames
at the read mode's rate (counted, with wide margins), raw and MJPEG formats sized by
CCD_STREAM_FRAME, a SER recording that matches the stream, what streaming refuses, and a slow
client that loses frames without slowing the camera or the other client."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qhy42_indi.camera.ser import read_ser
from qhy42_indi.indi.messages import SetVector
from tests.streaming.wire import (
    WAIT_S,
    blob_link,
    head_counter,
    main_link,
    payload,
    setup_live,
    stream,
    stream_blob_count,
    stream_frames,
)
from tests.support.camera import DEVICE, answered, number, set_numbers, set_switch, set_texts
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, Running, daemon

# STD, USB_SPEED 2, 4x4 binning: 2048 rows at 10.2 us, i.e. the 8-bit mode's 48 frames/s,
# in frames of 512 x 512 bytes.
MODE_RATE = 48.0
SIDE = 512


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:  # real time: the rate is the camera's
        yield proc


@pytest.fixture
async def main(server: Running) -> AsyncIterator[IndiClient]:
    async with main_link(server) as client:
        yield client
        await stream(client, False)


@pytest.fixture
async def video(server: Running, main: IndiClient) -> AsyncIterator[IndiClient]:
    async with blob_link(server) as client:
        yield client


async def test_stream_delivers_frames_at_the_read_modes_rate(
    main: IndiClient, video: IndiClient
) -> None:
    await setup_live(main)
    start = len(video.received)
    reply = await stream(main, True)
    assert reply.state == "Busy" and reply.elements[0].value == "On"
    await stream_blob_count(video, 1, start)
    began_s = time.monotonic()
    await asyncio.sleep(1.5)
    frames = stream_frames(video.received[start:])
    elapsed_s = time.monotonic() - began_s
    await stream(main, False)

    window = await main.wait_for(is_set("CCD_STREAM_FRAME"), WAIT_S)
    assert [number(window, n) for n in ("X", "Y", "WIDTH", "HEIGHT")] == [0, 0, SIDE, SIDE]
    assert all(f.format == ".stream" and f.size == SIDE * SIDE for f in frames)
    counters = [head_counter(payload(f)) for f in frames]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    produced = counters[-1] - counters[0] + 1
    # the camera numbered its frames at the mode's rate (wide margin: a loaded machine)
    assert 0.6 * MODE_RATE * elapsed_s < produced - 1 < 1.4 * MODE_RATE * elapsed_s
    # and a client that keeps up got most of them (all, on an idle machine)
    assert len(frames) >= 0.6 * produced
    fps = [m for m in main.received if is_set("FPS")(m) and number(m, "AVG_FPS") > 0]
    assert fps and 0.6 * MODE_RATE < number(fps[-1], "AVG_FPS") < 1.4 * MODE_RATE


async def test_mjpeg_and_16_bit_frames_follow_the_stream_frame(
    main: IndiClient, video: IndiClient
) -> None:
    await setup_live(main, bits=16, exposure_s=0.02)
    crop = {"X": 100, "Y": 50, "WIDTH": 200, "HEIGHT": 100}
    reply = await answered(main, "CCD_STREAM_FRAME", await set_numbers(
        main, "CCD_STREAM_FRAME", **crop))
    assert reply.state == "Ok"

    for encoder, depth, expected_size in (("RAW", "FULL_DEPTH_8BIT", 200 * 100),
                                          ("RAW", "FULL_DEPTH_16BIT", 2 * 200 * 100),
                                          ("MJPEG", "FULL_DEPTH_8BIT", None)):
        await answered(main, "CCD_STREAM_ENCODER", await set_switch(
            main, "CCD_STREAM_ENCODER", encoder))
        await answered(main, "STREAM_FULL_DEPTH", await set_switch(
            main, "STREAM_FULL_DEPTH", depth))
        start = len(video.received)
        await stream(main, True)
        frame = (await stream_blob_count(video, 2, start))[-1]
        await stream(main, False)
        data = payload(frame)
        if expected_size is None:
            assert frame.format == ".stream_jpg"
            assert Image.open(io.BytesIO(data)).size == (200, 100)
        else:
            assert frame.format == ".stream" and len(data) == expected_size
    window = [m for m in main.received if is_set("CCD_STREAM_FRAME")(m)][-1]
    assert [number(window, n) for n in ("X", "Y", "WIDTH", "HEIGHT")] == list(crop.values())
    whole = await answered(main, "CCD_STREAM_FRAME", await set_numbers(
        main, "CCD_STREAM_FRAME", X=0, Y=0, WIDTH=SIDE, HEIGHT=SIDE))
    assert whole.state == "Ok"


async def test_a_ser_recording_of_n_frames_holds_n_frames_that_match_the_stream(
    main: IndiClient, video: IndiClient, tmp_path: Path
) -> None:
    await setup_live(main, exposure_s=0.05)  # 20 frames/s
    await answered(main, "RECORD_FILE", await set_texts(
        main, "RECORD_FILE", RECORD_FILE_DIR=str(tmp_path / "rec__D_"),
        RECORD_FILE_NAME="moon"))
    await answered(main, "RECORD_OPTIONS", await set_numbers(
        main, "RECORD_OPTIONS", RECORD_FRAME_TOTAL=12))
    start = len(video.received)
    await stream(main, True)
    await stream_blob_count(video, 1, start)
    record = await set_switch(main, "RECORD_STREAM", "RECORD_FRAME_ON")
    assert (await main.wait_for(is_set("RECORD_STREAM"), WAIT_S, start=record)).state == "Busy"
    done = await main.wait_for(is_set("RECORD_STREAM", "Idle"), WAIT_S, start=record)
    await asyncio.sleep(0.3)  # the stream frames sent with the last recorded ones
    await stream(main, False)

    assert isinstance(done, SetVector)
    (path,) = list(tmp_path.glob("rec_*/moon.ser"))
    ser = read_ser(path)
    assert ser.header.frame_count == 12 and ser.frames.shape == (12, SIDE, SIDE)
    assert (ser.header.pixel_depth, ser.header.instrument) == (8, DEVICE)
    recorded = {head_counter(f.tobytes()): f.tobytes() for f in ser.frames}
    numbers = sorted(recorded)
    assert numbers == list(range(numbers[0], numbers[0] + 12))
    streamed = {head_counter(d): d for d in map(payload, stream_frames(video.received[start:]))}
    both = [n for n in numbers if n in streamed]
    assert len(both) >= 10  # a client that keeps up sees (nearly) all of them
    assert all(streamed[n] == recorded[n] for n in both)
    times = [ser.timestamp(i) for i in range(12)]
    assert times == sorted(times)


async def test_streaming_refuses_captures_and_geometry_changes(main: IndiClient) -> None:
    await setup_live(main, exposure_s=0.05)
    await stream(main, True)
    refused = await answered(main, "CCD_EXPOSURE", await set_numbers(
        main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1))
    binning = await answered(main, "CCD_BINNING", await set_numbers(
        main, "CCD_BINNING", HOR_BIN=2, VER_BIN=2))
    gain = await answered(main, "CCD_GAIN", await set_numbers(main, "CCD_GAIN", GAIN=12))
    await stream(main, False)

    assert refused.state == "Alert" and "video stream" in (refused.message or "")
    assert binning.state == "Alert" and "live mode" in (binning.message or "")
    assert gain.state == "Ok"  # gain applies from the next frame
    start = await set_numbers(main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)
    ok = await main.wait_for(lambda m: is_set("CCD_EXPOSURE")(m) and m.state in ("Ok", "Alert"),
                             WAIT_S, start=start)
    assert isinstance(ok, SetVector) and ok.state == "Ok"


async def test_a_slow_client_loses_frames_without_slowing_the_camera_or_others(
    server: Running, main: IndiClient, video: IndiClient
) -> None:
    await setup_live(main, binning=2)  # 1 MiB frames at 48 frames/s
    with socket.create_connection((HOST, server.port)) as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        stalled.sendall(f"<getProperties version='1.7' device='{DEVICE}'/>"
                        f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>".encode())
        start = len(video.received)
        await stream(main, True)
        await stream_blob_count(video, 1, start)
        await asyncio.sleep(1.5)  # the stalled client reads nothing all this time
        frames = stream_frames(video.received[start:])
        await stream(main, False)
    counters = [head_counter(payload(f)) for f in frames]
    produced = counters[-1] - counters[0] + 1
    assert produced > 0.6 * MODE_RATE * 1.5  # the camera kept its pace
    assert len(frames) >= 0.6 * produced  # and the client that reads kept getting frames
    # the daemon still answers
    reply = await answered(main, "CCD_GAIN", await set_numbers(main, "CCD_GAIN", GAIN=10))
    assert reply.state == "Ok"


async def test_recording_without_the_stream_and_a_bad_name(
    main: IndiClient, tmp_path: Path
) -> None:
    await setup_live(main, exposure_s=0.05)
    bad = await answered(main, "RECORD_FILE", await set_texts(
        main, "RECORD_FILE", RECORD_FILE_DIR=str(tmp_path), RECORD_FILE_NAME="a/b"))
    assert bad.state == "Alert"
    await answered(main, "RECORD_FILE", await set_texts(
        main, "RECORD_FILE", RECORD_FILE_DIR=str(tmp_path), RECORD_FILE_NAME="dur"))
    await answered(main, "RECORD_OPTIONS", await set_numbers(
        main, "RECORD_OPTIONS", RECORD_DURATION=0.5))
    record = await set_switch(main, "RECORD_STREAM", "RECORD_DURATION_ON")
    await main.wait_for(is_set("RECORD_STREAM", "Idle"), WAIT_S, start=record)
    ser = read_ser(tmp_path / "dur.ser")
    assert 3 <= ser.header.frame_count <= 16  # 0.5 s at 20 frames/s, wide margin
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    # live mode ended with the recording
    await main.wait_for(lambda m: is_set("FPS", "Idle")(m) and number(m, "AVG_FPS") == 0,
                        WAIT_S, start=record)
    assert np.all(ser.frames[:, 1:, :] < 64)  # a dark, 8-bit
