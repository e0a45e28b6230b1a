"""The exposure sequence, exactly as libindi drivers put it on the wire.

CCD_EXPOSURE Busy with the requested value, Busy countdowns (every second, then the rest),
then the frame is read out, CCD_FILE_PATH / CCD1 go out (delivery.py), then CCD_EXPOSURE Ok
with 0. A new exposure while one runs aborts the old one first; an abort ends with
CCD_EXPOSURE Idle 0 and no BLOB. With fast exposure (CCD_FAST_TOGGLE) the next exposure starts
the moment a frame is read, before that frame is delivered, and CCD_EXPOSURE stays Busy while
CCD_FAST_COUNT counts down.

With a trigger (hardware Trig In, or a GPIO sync slave waiting for its master; `trigger` set
by camera/timing.py), each exposure is armed and CCD_EXPOSURE is Busy with "waiting for
trigger" until the edge starts it; then the sequence above follows. In fast exposure the next
one is armed as soon as a frame is read, and waits for its own trigger after that frame went
out. Without a trigger the wire order is exactly as above.

This module runs one sequence as an asyncio task; it does not know INDI property names except
through the small `ExposureHost` interface the device implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from qhy42_indi.backends.base import (
    BackendError,
    CameraBackend,
    CameraGone,
    ExposureStart,
    Frame,
)
from qhy42_indi.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# libindi's countdown: one update per polling period (1 s), the last one shortened.
COUNTDOWN_PERIOD_S = 1.0


class ExposureHost(Protocol):
    """What the exposure sequence asks of the device."""

    def exposure_started(self, requested_s: float, start: ExposureStart) -> None: ...

    def exposure_progress(self, left_s: float) -> None: ...

    def exposure_waiting(self, requested_s: float, reason: str) -> None:
        """Armed: the exposure waits for its trigger (issue 5)."""

    def frames_left(self, count: int) -> None: ...

    async def deliver(self, frame: Frame) -> None:
        """Build and send the frame; raise to make the exposure fail."""

    def exposure_done(self) -> None: ...

    def exposure_failed(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TriggerWait:
    """Exposures wait for a trigger: what the client is told, and for how long (None: ever)."""

    reason: str
    timeout_s: float | None


class ExposureController:
    def __init__(self, backend: CameraBackend, host: ExposureHost) -> None:
        self._backend = backend
        self._host = host
        self._task: asyncio.Task[None] | None = None
        self.trigger: TriggerWait | None = None  # issue 5: set by camera/timing.py
        self.on_gone: Callable[[CameraGone], None] | None = None  # issue 7: camera/hotplug.py

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, exposure_s: float, frame_count: int = 1) -> None:
        """Start a sequence of frame_count exposures, ending any running one first."""
        await self.stop()
        self._task = asyncio.create_task(
            self._run(exposure_s, max(1, frame_count)), name="exposure"
        )

    async def stop(self) -> bool:
        """End the running sequence without a frame. True if there was one."""
        task, self._task = self._task, None
        if task is None or task.done():
            return False
        await cancel_and_wait(task)
        with contextlib.suppress(BackendError):
            await self._backend.abort_exposure()
        return True

    async def wait(self) -> None:
        """Until the running sequence (if any) has ended; for shutdown and tests."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, exposure_s: float, frame_count: int) -> None:
        trigger = self.trigger
        try:
            started = await self._begin(exposure_s, trigger)
            for remaining in range(frame_count - 1, -1, -1):
                start = started or await self._wait_for_trigger(exposure_s, trigger)
                self._host.exposure_started(exposure_s, start)
                frame = await self._read_with_countdown(start)
                if remaining:
                    # Fast exposure: the camera integrates (or is armed for) the next frame
                    # during delivery.
                    started = await self._begin(exposure_s, trigger)
                    self._host.frames_left(remaining)
                await self._host.deliver(frame)
            self._host.exposure_done()
        except BackendError as error:
            self._host.exposure_failed(str(error) or type(error).__name__)
            if isinstance(error, CameraGone) and self.on_gone is not None:
                self.on_gone(error)
        except Exception as error:  # a bug or a failed save must not kill the daemon
            log.exception("exposure failed")
            self._host.exposure_failed(str(error) or type(error).__name__)

    async def _begin(self, exposure_s: float, trigger: TriggerWait | None) -> ExposureStart | None:
        """Start the exposure (its start), or arm it when a trigger starts it (None)."""
        if trigger is None:
            return await self._backend.start_exposure(exposure_s)
        await self._backend.arm_exposure(exposure_s)
        return None

    async def _wait_for_trigger(self, exposure_s: float,
                                trigger: TriggerWait | None) -> ExposureStart:
        assert trigger is not None
        self._host.exposure_waiting(exposure_s, trigger.reason)
        return await self._backend.wait_for_trigger(trigger.timeout_s)

    async def _read_with_countdown(self, start: ExposureStart) -> Frame:
        countdown = asyncio.create_task(self._countdown(start.exposure_s))
        try:
            return await self._backend.read_frame()
        finally:
            await cancel_and_wait(countdown)

    async def _countdown(self, exposure_s: float) -> None:
        began = time.monotonic()
        left_s = exposure_s
        while left_s > 0:
            await asyncio.sleep(min(COUNTDOWN_PERIOD_S, left_s))
            left_s = max(0.0, exposure_s - (time.monotonic() - began))
            self._host.exposure_progress(round(left_s, 3))
