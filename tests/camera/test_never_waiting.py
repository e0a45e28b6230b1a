"""What must not wait for what, on the device without a network (simulator backend): the HDR
merge runs off the event loop; a slow disk holds burst frames back in the camera instead of in
an unbounded queue, and loses none; RECORD_OFF does not keep other commands waiting while
the recording's buffered frames go to disk."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qhy42_indi.camera import capture, recording
from qhy42_indi.camera.burst import BURST_QUEUE_FRAMES
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi.messages import IndiMessage, NewVector, SetVector
from tests.support import in_process
from tests.support.in_process import connected_camera, last

NAME = "Test Cam"
BOUND_S = 30.0


@pytest.fixture
async def camera() -> AsyncIterator[tuple[Qhy42Device, list[IndiMessage]]]:
    async with connected_camera(NAME, seed=3) as connected:
        yield connected


def switch(name: str, member: str) -> NewVector:
    return in_process.switch(NAME, name, member)


def numbers(name: str, **values: float) -> NewVector:
    return in_process.numbers(NAME, name, **values)


def texts(name: str, **values: str) -> NewVector:
    return in_process.texts(NAME, name, **values)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_hdr_merge_runs_in_a_worker_thread(
    camera: tuple[Qhy42Device, list[IndiMessage]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    device, published = camera
    threads: list[threading.Thread] = []
    merge = capture.merge_hdr

    def watched_merge(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return merge(*args)

    monkeypatch.setattr(capture, "merge_hdr", watched_merge)
    for command in (numbers("READ_MODE", MODE=0), switch("HDR_OUTPUT", "HDR_MERGED"),
                    numbers("CCD_FRAME", X=0, Y=0, WIDTH=256, HEIGHT=256)):
        await device.handle_new(command)
    await device.handle_new(numbers("CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01))
    await until(lambda: (last(published, "CCD_EXPOSURE") or SetVector).state != "Busy"
                and device.capture.frames_delivered == 1)
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_a_slow_disk_holds_burst_frames_in_the_camera_and_loses_none(
    camera: tuple[Qhy42Device, list[IndiMessage]], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    device, published = camera
    save = capture.save_off_loop
    saved: list[Path] = []
    waiting: list[int] = []

    async def slow_save(*args: Any) -> Path:
        waiting.append(device.burst._queue.qsize())
        await asyncio.sleep(0.05)  # a disk slower than the burst
        path = await save(*args)
        saved.append(path)
        return path

    monkeypatch.setattr(capture, "save_off_loop", slow_save)
    for command in (numbers("CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=64),
                    texts("UPLOAD_SETTINGS", UPLOAD_DIR=str(tmp_path), UPLOAD_PREFIX="B_XXX"),
                    switch("UPLOAD_MODE", "UPLOAD_LOCAL"),
                    numbers("STREAMING_EXPOSURE", STREAMING_EXPOSURE_VALUE=0.001),
                    switch("CCD_VIDEO_STREAM", "STREAM_ON"),
                    numbers("BURST_RANGE", START=0, END=25),
                    switch("BURST_MODE", "INDI_ENABLED"),
                    switch("BURST_CAPTURE", "CAPTURE")):
        await device.handle_new(command)
        reply = last(published, command.name)
        assert reply is not None and reply.state != "Alert", (command.name, reply)
    await until(lambda: (last(published, "BURST_CAPTURE") or SetVector).state != "Busy")
    assert last(published, "BURST_CAPTURE").state == "Ok"  # type: ignore[union-attr]
    assert len(saved) == 24  # frames 1 to 24, every one
    assert max(waiting) <= BURST_QUEUE_FRAMES


async def test_record_off_does_not_hold_other_commands_behind_the_disk(
    camera: tuple[Qhy42Device, list[IndiMessage]], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    device, published = camera
    disk_free = asyncio.Event()
    finish = recording.SerRecording.finish

    async def finish_on_a_slow_disk(self: recording.SerRecording) -> Any:
        await disk_free.wait()
        return await finish(self)

    monkeypatch.setattr(recording.SerRecording, "finish", finish_on_a_slow_disk)
    for command in (numbers("CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=64),
                    numbers("STREAMING_EXPOSURE", STREAMING_EXPOSURE_VALUE=0.005),
                    texts("RECORD_FILE", RECORD_FILE_DIR=str(tmp_path), RECORD_FILE_NAME="r"),
                    switch("RECORD_STREAM", "RECORD_ON")):
        await device.handle_new(command)
    await until(lambda: device.live.frames_read >= 5)

    async def bounded(call: Awaitable[None]) -> None:
        async with asyncio.timeout(BOUND_S / 2):
            await call

    await bounded(device.handle_new(switch("RECORD_STREAM", "RECORD_OFF")))
    assert last(published, "RECORD_STREAM").state == "Busy"  # type: ignore[union-attr]
    await bounded(device.handle_new(numbers("CCD_GAIN", GAIN=12)))
    assert last(published, "CCD_GAIN").state == "Ok"  # type: ignore[union-attr]
    disk_free.set()
    await until(lambda: last(published, "RECORD_STREAM").state == "Idle")  # type: ignore[union-attr]
    assert (tmp_path / "r.ser").stat().st_size > 0
