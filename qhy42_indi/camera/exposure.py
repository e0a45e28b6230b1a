"""The exposure sequence, exactly as libindi drivers put it on the wire.

CCD_EXPOSURE Busy with the requested value, Busy countdowns (every second, then the rest),
then the frame is read out, CCD_FILE_PATH / CCD1 go out (delivery.py), then CCD_EXPOSURE Ok
with 0. A new exposure while one runs aborts the old one first; an abort ends with
CCD_EXPOSURE Idle 0 and no BLOB. With fast exposure (CCD_FAST_TOGGLE) the next exposure starts
the moment a frame is read, before that frame is delivered, and CCD_EXPOSURE stays Busy while
CCD_FAST_COUNT counts down.

With a trigger (hardware Trig In, or a GPIO sync slave waiting for its master: timing.py says
which when a sequence starts), each exposure is armed and CCD_EXPOSURE is Busy with "waiting
for trigger" until the edge starts it; then the sequence above follows. In fast exposure the next
one is armed as soon as a frame is read, and waits for its own trigger after that frame went
out. Without a trigger the wire order is exactly as above.

The sequence asks the camera's core (core.py) for each step: EXPOSE to begin (a running
sequence is ended first), ARM and TRIGGERED around a trigger, EXPOSURE_ENDED or
EXPOSURE_FAILED at the end; the core aborts whatever the backend still has pending when the
sequence is left, so a failed delivery in a fast sequence leaves nothing armed or exposing.
When the core leaves the exposure for any other reason (ABORT, DISCONNECT, the camera gone),
this part cancels the sequence. It runs one sequence as an asyncio task and does not know
INDI property names except through the small `ExposureHost` interface the device implements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from qhy42_indi.backends.base import (
    BackendError,
    CameraGone,
    ExposureControl,
    ExposureStart,
    Frame,
    GpioControl,
)
from qhy42_indi.camera.core import EXPOSURE_STATES, CameraCore, Request, Transition
from qhy42_indi.tasks import cancel_and_wait, start_task

log = logging.getLogger(__name__)


class ExposureHost(Protocol):
    """What the exposure sequence asks of the device."""

    def exposure_started(self, requested_s: float, start: ExposureStart) -> None: ...

    def exposure_progress(self, left_s: float) -> None: ...

    def exposure_waiting(self, requested_s: float, reason: str) -> None:
        """Armed: the exposure waits for its trigger."""

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
    def __init__(
        self,
        core: CameraCore,
        backend: ExposureControl,
        triggers: GpioControl,
        host: ExposureHost,
        trigger: Callable[[], TriggerWait | None],
        camera_gone: Callable[[CameraGone], None],
        polling_period_s: Callable[[], float],
    ) -> None:
        self._core = core
        self._polling_period_s = polling_period_s
        self._backend = backend
        self._triggers = triggers  # the same camera: arming exposures for a trigger
        self._host = host
        self._trigger = trigger
        self._camera_gone = camera_gone
        self._task: asyncio.Task[None] | None = None
        core.subscribe(self)

    @property
    def busy(self) -> bool:
        return self._core.state in EXPOSURE_STATES

    async def start(self, exposure_s: float, frame_count: int = 1) -> None:
        """Start a sequence of frame_count exposures, ending any running one first.
        core.Refused if the camera cannot expose now."""
        await self._core.transition(Request.EXPOSE)
        self._task = start_task(
            self._run(exposure_s, max(1, frame_count), self._trigger()), "exposure"
        )

    async def abort(self) -> bool:
        """End the running sequence without a frame. True if there was one."""
        change = await self._core.transition(Request.ABORT)
        return change.old in EXPOSURE_STATES

    async def wait(self) -> None:
        """Until the running sequence (if any) has ended; for shutdown and tests."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    # ---- the core's listener

    async def leaving(self, change: Transition) -> None:
        task = self._task
        if change.old not in EXPOSURE_STATES or task is None:
            return
        if task is asyncio.current_task():
            return  # the sequence's own step
        if change.new in EXPOSURE_STATES and change.request is not Request.EXPOSE:
            return
        self._task = None
        await cancel_and_wait(task)
        if change.request is Request.LOST:  # it was waiting for its frame: Alert, not silence
            self._host.exposure_failed(change.reason or "the camera disappeared")

    def entered(self, change: Transition) -> None:
        pass

    # ---- the sequence

    async def _run(self, exposure_s: float, frame_count: int,
                   trigger: TriggerWait | None) -> None:
        try:
            started = await self._begin(exposure_s, trigger)
            for remaining in range(frame_count - 1, -1, -1):
                start = started or await self._wait_for_trigger(exposure_s, trigger)
                log.debug("exposure %d: %.6f s asked, %.6f s taken (%d lines of %.3f us)",
                          start.sequence, exposure_s, start.exposure_s, start.line_count,
                          start.line_period_us)
                self._host.exposure_started(exposure_s, start)
                frame = await self._read_with_countdown(start)
                if remaining:
                    # Fast exposure: the camera integrates (or is armed for) the next frame
                    # during delivery.
                    started = await self._begin(exposure_s, trigger)
                    self._host.frames_left(remaining)
                await self._host.deliver(frame)
            await self._core.transition(Request.EXPOSURE_ENDED)
            self._host.exposure_done()
        except CameraGone as error:
            await self._failed(f"the camera disappeared ({error})")
            self._camera_gone(error)
        except BackendError as error:
            await self._failed(str(error) or type(error).__name__)
        except Exception as error:  # a bug or a failed save must not kill the daemon
            if not isinstance(error, DeliveryError):
                log.exception("exposure failed")
            await self._failed(str(error) or type(error).__name__)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _failed(self, reason: str) -> None:
        await self._core.transition(Request.EXPOSURE_FAILED)
        self._host.exposure_failed(reason)

    async def _begin(self, exposure_s: float, trigger: TriggerWait | None) -> ExposureStart | None:
        """Start the exposure (its start), or arm it when a trigger starts it (None)."""
        if trigger is None:
            return await self._backend.start_exposure(exposure_s)
        await self._triggers.arm_exposure(exposure_s)
        return None

    async def _wait_for_trigger(self, exposure_s: float,
                                trigger: TriggerWait | None) -> ExposureStart:
        assert trigger is not None
        await self._core.transition(Request.ARM)
        self._host.exposure_waiting(exposure_s, trigger.reason)
        start = await self._triggers.wait_for_trigger(trigger.timeout_s)
        await self._core.transition(Request.TRIGGERED)
        return start

    async def _read_with_countdown(self, start: ExposureStart) -> Frame:
        countdown = start_task(self._countdown(start.exposure_s, start.clock_rate), "countdown")
        try:
            return await self._backend.read_frame()
        finally:
            await cancel_and_wait(countdown)

    async def _countdown(self, exposure_s: float, clock_rate: float = 1.0) -> None:
        """libindi's countdown: an update every polling period (wall time), the last one
        shortened; the seconds left are the camera's (`clock_rate` camera s per wall s)."""
        began = time.monotonic()
        left_s = exposure_s
        while left_s > 0:
            await asyncio.sleep(min(self._polling_period_s(), left_s / clock_rate))
            left_s = max(0.0, exposure_s - clock_rate * (time.monotonic() - began))
            self._host.exposure_progress(round(left_s, 3))


class DeliveryError(Exception):
    """The frame was taken but could not be delivered as asked (e.g. the save failed): the
    sequence ends in Alert with this reason, without a traceback in the log."""
