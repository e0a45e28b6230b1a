"""Live mode for the INDI device: one reader of the camera's frames, shared by the parts using it.

The streaming part (video stream, SER recording) asks the camera's core for live mode
(START_LIVE, with `start` as the work that makes it true) and for its end (STOP_LIVE); the
burst part works inside it. `LiveSession` keeps the backend in live mode while the core is in
a live state, reads every frame the camera outputs in one task, and hands each frame, in
order and on the event loop, to its listeners. A listener must not block: it keeps a
reference or queues work for a task of its own, so the reader keeps pace with the camera and
what cannot keep up (a slow client, a busy encoder) loses frames there, not here. The one
exception is a listener whose queue is full of frames the camera keeps until read (burst
frames): it returns an awaitable, and the reader waits for room, so the frames wait in the
camera's own buffer instead of in ours.

When the core leaves live mode (STOP_LIVE, DISCONNECT, the camera gone) the session ends and
its listeners hear `live_stopped`. When live mode fails under it (the camera stops output, a
backend error), it asks the core to leave live mode, or reports the camera gone.

It also measures the frame rate, from the frames' own start times (so the reader's jitter does
not show in it). No INDI names here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from qhy42_indi.backends.base import BackendError, CameraGone, LiveControl, LiveFrame, LiveStart
from qhy42_indi.camera.core import LIVE_STATES, CameraCore, Refused, Request, Transition
from qhy42_indi.tasks import cancel_and_wait, start_task

log = logging.getLogger(__name__)

AVERAGE_WINDOW_S = 1.0  # libindi's AVG_FPS window
INSTANT_WINDOW_S = 0.2  # EST_FPS: a few frames at video rates


class LiveListener(Protocol):
    def live_frame(self, frame: LiveFrame) -> Awaitable[None] | None:
        """A frame from the camera; called on the event loop, must return at once. An
        awaitable returned means "no room": the reader waits for it before reading on."""

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
    def __init__(self, core: CameraCore, backend: LiveControl,
                 camera_gone: Callable[[CameraGone], None]) -> None:
        self._core = core
        self._backend = backend
        self._camera_gone = camera_gone
        self.listeners: list[LiveListener] = []
        self.start_info: LiveStart | None = None
        self.rate = FrameRate()
        self.frames_read = 0
        self._reader: asyncio.Task[None] | None = None
        core.subscribe(self)

    @property
    def active(self) -> bool:
        return self.start_info is not None

    async def start(self, exposure_s: float) -> None:
        """Enter live mode (if not in it) and start reading: the work of START_LIVE."""
        if self.start_info is not None:
            return
        self.start_info = await self._backend.begin_live(exposure_s)
        self.rate.reset()
        self.frames_read = 0
        self._reader = start_task(self._read(), "live-reader")

    async def set_exposure(self, exposure_s: float) -> LiveStart:
        self.start_info = await self._backend.set_live_exposure(exposure_s)
        return self.start_info

    # ---- the core's listener

    async def leaving(self, change: Transition) -> None:
        if change.old in LIVE_STATES and change.new not in LIVE_STATES:
            await self._end(change.reason)  # None when a part asked for the end

    def entered(self, change: Transition) -> None:
        pass

    async def _end(self, failure: str | None) -> None:
        if self.start_info is None:
            return
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
                    room = listener.live_frame(frame)
                    if room is not None:
                        await room
        except CameraGone as error:
            self._camera_gone(error)
        except BackendError as error:  # NotLive: live mode ended without us asking
            log.warning("live mode failed: %s", error)
            await self._fail(str(error) or type(error).__name__)
        except Exception as error:  # a listener's bug must not leave live mode running
            log.exception("live frame handling failed")
            await self._fail(str(error) or type(error).__name__)

    async def _fail(self, reason: str) -> None:
        with contextlib.suppress(Refused):  # it left live mode meanwhile (gone, disconnected)
            await self._core.transition(Request.STOP_LIVE, reason=reason)
