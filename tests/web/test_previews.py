"""Previews of the frames a simulated camera delivers: both HDR channels, a bounded rate."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from PIL import Image

from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.indi.messages import IndiMessage
from qhy42_indi.web import previews
from qhy42_indi.web.preview import PREVIEW_MAX_SIDE
from qhy42_indi.web.previews import MIN_PERIOD_S, Previewer
from tests.support import in_process

NAME = "QHY CCD WEB-TEST"


@pytest.fixture
async def camera() -> AsyncIterator[tuple[Qhy42Device, list[IndiMessage]]]:
    async with in_process.connected_camera(NAME, seed=7) as found:
        yield found


async def until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def one_frame(device: Qhy42Device, *commands: Any) -> DeliveredFrame:
    for command in commands:
        await device.handle_new(command)
    before = device.frames.last
    await device.handle_new(in_process.numbers(NAME, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01))
    await until(lambda: device.frames.last is not before)
    assert device.frames.last is not None
    return device.frames.last


async def preview_of(delivered: DeliveredFrame) -> previews.FramePreview:
    ready = asyncio.Event()
    previewer = Previewer(ready.set)
    previewer.offer(delivered)
    await asyncio.wait_for(ready.wait(), 20)
    await previewer.stop()
    assert previewer.last is not None
    return previewer.last


async def test_dual_hdr_frame_shows_both_channels_and_merged_shows_all_three(
    camera: tuple[Qhy42Device, list[IndiMessage]],
) -> None:
    device, _ = camera
    frame = in_process.numbers(NAME, "CCD_FRAME", X=0, Y=0, WIDTH=512, HEIGHT=256)
    hdr = in_process.numbers(NAME, "READ_MODE", MODE=0)
    delivered = await one_frame(device, hdr, frame,
                                in_process.switch(NAME, "HDR_OUTPUT", "HDR_DUAL"))
    dual = await preview_of(delivered)
    assert [c.label for c in dual.channels] == ["LG", "HG"]
    width = delivered.pixels.shape[1]
    assert [c.width for c in dual.channels] == [width // 2, width // 2]
    merged = await preview_of(await one_frame(
        device, in_process.switch(NAME, "HDR_OUTPUT", "HDR_MERGED")))
    assert [c.label for c in merged.channels] == ["merged", "LG", "HG"]
    merged_image = Image.open(io.BytesIO(merged.channels[0].jpeg))
    step = -(-max(merged.channels[0].width, merged.channels[0].height) // PREVIEW_MAX_SIDE)
    assert merged_image.size == (-(-merged.channels[0].width // step),
                                 -(-merged.channels[0].height // step))
    cards = merged.header_text().splitlines()
    assert any(card.startswith("EXPTIME ") for card in cards) and "END" not in cards


async def test_previews_are_made_in_a_worker_thread_at_a_bounded_rate(
    camera: tuple[Qhy42Device, list[IndiMessage]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    device, _ = camera
    delivered = await one_frame(
        device, in_process.numbers(NAME, "CCD_FRAME", X=0, Y=0, WIDTH=256, HEIGHT=256))
    threads: list[threading.Thread] = []
    make = previews.make_previews

    def watched(frame: DeliveredFrame) -> Any:
        threads.append(threading.current_thread())
        return make(frame)

    monkeypatch.setattr(previews, "make_previews", watched)
    made: list[int] = []
    previewer = Previewer(lambda: made.append(1))
    started = asyncio.get_running_loop().time()
    for _ in range(40):  # 100 frames/s for 0.4 s
        previewer.offer(delivered)
        await asyncio.sleep(0.01)
    await until(lambda: len(made) >= 2)
    elapsed = asyncio.get_running_loop().time() - started
    await previewer.stop()
    assert len(made) <= 1 + elapsed / MIN_PERIOD_S + 1
    assert previewer.skipped >= 40 - len(made) - 1
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_no_preview_is_made_while_no_page_looks_and_the_newest_is_made_when_one_does(
    camera: tuple[Qhy42Device, list[IndiMessage]],
) -> None:
    device, _ = camera
    first = await one_frame(
        device, in_process.numbers(NAME, "CCD_FRAME", X=0, Y=0, WIDTH=128, HEIGHT=128))
    second = await one_frame(device)
    looking = False
    ready = asyncio.Event()
    previewer = Previewer(ready.set, lambda: looking)
    previewer.offer(first)
    previewer.offer(second)
    await asyncio.sleep(0.2)
    assert previewer.last is None and not ready.is_set()
    looking = True
    previewer.kick()
    await asyncio.wait_for(ready.wait(), 20)
    await previewer.stop()
    assert previewer.last is not None and previewer.last.delivered is second
