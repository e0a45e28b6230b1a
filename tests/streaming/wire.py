"""Helpers for the live video and burst tests over the wire: two connections as KStars opens
them, the camera set up for fast small frames, and decoding what arrives on CCD1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pybase64

from qhy42_indi.backends.base import FRAME_HEAD_BYTES
from qhy42_indi.indi.messages import BlobElement, IndiMessage, SetVector
from tests.support.camera import DEVICE, answered, blobs, connect_camera, set_numbers, set_switch
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, Running

WAIT_S = 30.0


@contextlib.asynccontextmanager
async def main_link(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await connect_camera(client)
        await client.send(f"<enableBLOB device='{DEVICE}'>Never</enableBLOB>")
        yield client


@contextlib.asynccontextmanager
async def blob_link(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
        await client.send(f"<enableBLOB device='{DEVICE}' name='CCD1'>Only</enableBLOB>")
        await client.send("<pingRequest uid='ready'/>")
        await client.wait_for(lambda m: type(m).__name__ == "PingReply")
        yield client


async def setup_live(main: IndiClient, *, bits: int = 8, binning: int = 4, speed: int = 2,
                     exposure_s: float = 0.001) -> None:
    """STD high gain, full frame, binned: small frames at the mode's line-limited rate."""
    await stream(main, False)
    for name, member in (("CCD_FRAME_RESET", "RESET"), ("SIM_SCENE", "SCENE_DARK"),
                         ("UPLOAD_MODE", "UPLOAD_CLIENT"), ("CCD_STREAM_ENCODER", "RAW"),
                         ("STREAM_FULL_DEPTH", "FULL_DEPTH_8BIT"),
                         ("CCD_CAPTURE_FORMAT", f"INDI_MONO_{bits}")):
        await answered(main, name, await set_switch(main, name, member))
    for name, values in (("READ_MODE", {"MODE": 1}), ("USB_SPEED", {"SPEED": speed}),
                         ("CCD_BINNING", {"HOR_BIN": binning, "VER_BIN": binning}),
                         ("STREAMING_EXPOSURE", {"STREAMING_EXPOSURE_VALUE": exposure_s,
                                                 "STREAMING_DIVISOR_VALUE": 1})):
        reply = await answered(main, name, await set_numbers(main, name, **values))
        assert reply.state == "Ok", reply.message


async def stream(main: IndiClient, on: bool) -> SetVector:
    start = await set_switch(main, "CCD_VIDEO_STREAM", "STREAM_ON" if on else "STREAM_OFF")
    reply = await main.wait_for(is_set("CCD_VIDEO_STREAM"), WAIT_S, start=start)
    assert isinstance(reply, SetVector)
    return reply


def payload(blob: BlobElement) -> bytes:
    data = pybase64.b64decode(bytes(blob.data_b64), validate=True)
    assert len(data) == blob.size
    return data


def stream_frames(messages: Sequence[IndiMessage]) -> list[BlobElement]:
    return [b for b in blobs(messages) if "stream" in b.format]


def fits_frames(messages: Sequence[IndiMessage]) -> list[BlobElement]:
    return [b for b in blobs(messages) if b.format == ".fits"]


def head_counter(data: bytes) -> int:
    """The frame number in an 8-bit raw frame's head (the camera's own bytes)."""
    return int.from_bytes(data[:FRAME_HEAD_BYTES], "big")


async def stream_blob_count(client: IndiClient, count: int, start: int) -> list[BlobElement]:
    """Wait (bounded) until `count` stream frames have arrived since `start`."""
    await client.wait_for(lambda m: len(stream_frames(client.received[start:])) >= count,
                          WAIT_S, start=len(client.received) - 1 if client.received else 0)
    return stream_frames(client.received[start:])


async def video_quiet(client: IndiClient, quiet_s: float = 0.5) -> None:
    """Wait (bounded) until no stream frame has arrived for quiet_s: frames the server had
    queued for this connection before the camera stopped have all landed."""
    async with asyncio.timeout(WAIT_S):
        while True:
            count = len(stream_frames(client.received))
            await asyncio.sleep(quiet_s)
            if len(stream_frames(client.received)) == count:
                return
