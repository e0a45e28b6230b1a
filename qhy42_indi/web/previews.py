"""Previews of the frames each camera delivers, made in a worker thread at a bounded rate.

A camera offers every frame (camera/frame_tap.py); only the newest one waiting is kept, and
one preview at a time is made, at most one per MIN_PERIOD_S, whatever the frame rate: the
rest are skipped. The frame's arrays are the ones the INDI clients got and are only read.
What is kept of the last frame: its previews, its statistics, and the FITS bytes for the
header on demand (a reference, not a copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.backends.base import Frame
from qhy42_indi.camera.fits import frame_header
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.web.fits_cards import frame_headers, header_text
from qhy42_indi.web.preview import ChannelPreview, channel_preview, full_scale_of

log = logging.getLogger(__name__)

MIN_PERIOD_S = 0.5  # at most 2 previews a second per camera


@dataclass(frozen=True, slots=True)
class FramePreview:
    seq: int  # this page's count of previews of the camera, for the image URLs
    delivered: DeliveredFrame
    channels: tuple[ChannelPreview, ...]
    made_s: float  # epoch
    cost_ms: float  # worker time spent making it

    def header_text(self) -> str:
        return fits_header_text(self.delivered)


def fits_header_text(delivered: DeliveredFrame) -> str:
    """The FITS header of a frame as the clients got it (blocking: for a worker thread)."""
    if delivered.fits is not None:
        return header_text(frame_headers(delivered.fits.data))
    # Not built as FITS (no INDI client took it): the same header, from the same cards.
    return header_text(frame_headers(frame_header(delivered.pixels, delivered.cards)))


def _shifted(frame: Frame) -> bool:
    return frame.bit_depth == 16


def _channel_views(frame: Frame) -> list[tuple[str, NDArray[Any]]]:
    return [(str(span.channel), frame.pixels[:, span.first_column:span.first_column
                                             + span.column_count])
            for span in frame.channels]


def make_previews(delivered: DeliveredFrame) -> tuple[ChannelPreview, ...]:
    """The frame as saved, and for HDR each channel as well (dual: the channels only)."""
    frame = delivered.frame
    shifted = _shifted(frame)
    dual = delivered.pixels is frame.pixels and len(frame.channels) > 1
    previews: list[ChannelPreview] = []
    if not dual:
        merged = len(frame.channels) > 1
        label = "merged" if merged else (str(frame.channels[0].channel)
                                         if frame.channels else "image")
        pixels = delivered.pixels
        previews.append(channel_preview(label, pixels,
                                        full_scale_of(pixels, shifted and not merged)))
    if len(frame.channels) > 1:
        for label, view in _channel_views(frame):
            previews.append(channel_preview(label, view, full_scale_of(view, shifted)))
    return tuple(previews)


class Previewer:
    """One per camera: the newest frame waiting, the task making previews, the last made.

    Previews are made only while `wanted()` (a page is open): with nobody looking the
    newest frame is only kept, and `kick()` previews it when a page arrives."""

    def __init__(self, on_ready: Callable[[], None],
                 wanted: Callable[[], bool] = lambda: True) -> None:
        self._on_ready = on_ready
        self._wanted = wanted
        self._pending: DeliveredFrame | None = None
        self._task: asyncio.Task[None] | None = None
        self._count = 0
        self.last: FramePreview | None = None
        self.skipped = 0  # frames that came while one was waiting: never previewed

    def offer(self, delivered: DeliveredFrame) -> None:
        """Called on the loop for every frame: keeps it and returns at once."""
        if self._pending is not None:
            self.skipped += 1
        self._pending = delivered
        self.kick()

    def kick(self) -> None:
        """Preview the newest frame waiting, if there is one and a page wants it."""
        if self._pending is None or not self._wanted():
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work(), name="web preview")

    async def _work(self) -> None:
        while self._pending is not None and self._wanted():
            delivered, self._pending = self._pending, None
            started = time.perf_counter()
            try:
                channels = await asyncio.to_thread(make_previews, delivered)
            except Exception:  # a frame the preview cannot show must not stop the next
                log.exception("no preview of a frame of %s", delivered.device)
                continue
            spent = time.perf_counter() - started
            self._count += 1
            self.last = FramePreview(self._count, delivered, channels, time.time(),
                                     spent * 1000.0)
            self._on_ready()
            # The rate bound: frames arriving meanwhile replace one another in _pending.
            await asyncio.sleep(max(0.0, MIN_PERIOD_S - spent))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pending = None
