"""Live mode for the INDI device: one reader of the camera's frames, shared by the parts using it.

The streaming part (video stream, SER recording) starts and stops live mode; the burst part
works inside it. `LiveSession` keeps the backend in live mode while started, reads every
frame the camera outputs in one task, and hands each frame, in order and on the event loop,
to its listeners. A listener must not block: it keeps a reference or queues work for a task of
its own. So the reader keeps pace with the camera and nothing downstream slows it down; what
cannot keep up (a slow client, a busy encoder) loses frames there, not here.

It also measures the frame rate, from the frames' own start times (so the reader's jitter does
not show in it). No INDI names here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Protocol

from qhy42_indi.backends.base import BackendError, CameraBackend, LiveFrame, LiveStart, NotLive
from qhy42_indi.tasks import cancel_and_wait

log = logging.getLogger(__name__)

AVERAGE_WINDOW_S = 1.0  # libindi's AVG_FPS window
INSTANT_WINDOW_S = 0.2  # EST_FPS: a few frames at video rates


class LiveListener(Protocol):
    def live_frame(self, frame: LiveFrame) -> None:
        """A frame from the camera; called on the event loop, must return at once."""

    def live_stopped(self, failure: str | None) -> None:
        """Live mode ended: asked to (failure None) or because the camera failed."""


class FrameRate:
    """Frames per second over the last AVERAGE_WINDOW_S and INSTANT_WINDOW_S of frame times."""

    def __init__(self) -> None:
        self._arrivals: deque[float] = deque()

    def reset(self) -> None:
        self._arrivals.clear()

    def add(self, now_s: float) -> None:
        self._arrivals.append(now_s)
        while self._arrivals and now_s - self._arrivals[0] > AVERAGE_WINDOW_S:
            self._arrivals.popleft()

    def average(self) -> float:
        return self._rate(AVERAGE_WINDOW_S)

    def instant(self) -> float:
        return self._rate(INSTANT_WINDOW_S)

    def _rate(self, window_s: float) -> float:
        if not self._arrivals:
            return 0.0
        last = self._arrivals[-1]
        times = [t for t in self._arrivals if last - t <= window_s]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class LiveSession:
    def __init__(self, backend: CameraBackend) -> None:
        self._backend = backend
        self.listeners: list[LiveListener] = []
        self.start_info: LiveStart | None = None
        self.rate = FrameRate()
        self.frames_read = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.start_info is not None

    async def start(self, exposure_s: float) -> LiveStart:
        """Enter live mode (if not in it) and start reading. Raises BackendError."""
        if self.start_info is not None:
            return self.start_info
        self.start_info = await self._backend.begin_live(exposure_s)
        self.rate.reset()
        self.frames_read = 0
        self._reader = asyncio.create_task(self._read(), name="live-reader")
        return self.start_info

    async def set_exposure(self, exposure_s: float) -> LiveStart:
        self.start_info = await self._backend.set_live_exposure(exposure_s)
        return self.start_info

    async def stop(self) -> None:
        """Leave live mode (if in it); listeners hear live_stopped(None)."""
        if self.start_info is None:
            return
        await self._end(None)

    async def _end(self, failure: str | None) -> None:
        self.start_info = None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            await cancel_and_wait(reader)
        with contextlib.suppress(BackendError):
            await self._backend.stop_live()
        for listener in list(self.listeners):
            listener.live_stopped(failure)

    async def _read(self) -> None:
        try:
            while True:
                frame = await self._backend.read_live_frame()
                self.frames_read += 1
                self.rate.add(frame.frame.start_utc.timestamp())
                for listener in list(self.listeners):
                    listener.live_frame(frame)
        except NotLive:
            if self.start_info is not None:  # live mode ended without us asking
                await self._end("live mode ended")
        except BackendError as error:
            log.warning("live mode failed: %s", error)
            await self._end(str(error) or type(error).__name__)
        except Exception as error:  # a listener's bug must not leave live mode running
            log.exception("live frame handling failed")
            await self._end(str(error) or type(error).__name__)
