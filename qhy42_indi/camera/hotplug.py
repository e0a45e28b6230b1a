"""A camera that is unplugged (or stops answering) and comes back, while the daemon serves on.

While the camera is connected, `HotplugWatcher` notices that it has gone: a part met
CameraGone (the exposure sequence, the live reader or a command call `camera_gone`), or the
periodic presence check (`settings()`, which every backend answers from memory but refuses
with CameraGone once any call found the camera missing or not answering; the cooler poll
touches the camera every second) fails. Then it:

1. takes a snapshot of what the clients had set (the device's `snapshot`);
2. asks the core for LOST: the exposure in flight ends in Alert, live video ends and its
   recording is kept, the cooler poll stops, the backend is closed, and CONNECTION turns
   Alert with the reason; properties stay defined and CONNECT stays On, so clients (Ekos,
   PHD2) keep their view of the device, and their commands get an Alert saying the camera is
   away;
3. every RETRY_PERIOD_S asks the device to `restore` the snapshot: open the camera again
   (core: RETURNED), apply the settings the clients had, resume cooling toward the set-point.
   A backend whose camera hangs in a call makes open() wait for that call instead of piling
   another behind it, so the retries never queue up.

DISCONNECT stops the watcher; a client that wants to give up on a vanished camera sends it.

What it is not: no USB or SDK knowledge (backends/usb.py, backends/qhysdk.py), no INDI names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from qhy42_indi.backends.base import BackendError, CameraGone, Lifecycle
from qhy42_indi.camera.core import CameraCore, CameraState, Refused, Request
from qhy42_indi.indi.properties import Value
from qhy42_indi.tasks import cancel_and_wait, start_task

log = logging.getLogger(__name__)

PRESENCE_PERIOD_S = 1.0
RETRY_PERIOD_S = 1.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The clients' settings when the camera vanished: property values by name, in the
    order they are to be applied, and the cooler's set-point."""

    values: dict[str, dict[str, Value]]
    target_c: float | None


class Restorable(Protocol):
    def snapshot(self) -> Snapshot: ...

    async def restore(self, snapshot: Snapshot) -> None:
        """Open the camera and set it up as in the snapshot; BackendError if it is not back."""


class HotplugWatcher:
    def __init__(self, name: str, core: CameraCore, camera: Lifecycle,
                 device: Restorable) -> None:
        self._name = name
        self._core = core
        self._camera = camera
        self._device = device
        self._task: asyncio.Task[None] | None = None
        self._reported: CameraGone | None = None
        self._wake = asyncio.Event()
        self.losses = 0
        self.returns = 0

    @property
    def gone(self) -> bool:
        return self._core.state is CameraState.GONE

    # ---- lifecycle (the device calls these on CONNECT and DISCONNECT)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._reported = None
            self._wake.clear()
            self._task = start_task(self._run(), f"hotplug {self._name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def camera_gone(self, error: CameraGone) -> None:
        """A part of the device met CameraGone."""
        if self._task is not None and self._core.present:
            self._reported = error
            self._wake.set()

    # ---- the watch

    async def _run(self) -> None:
        while True:
            error = await self._wait_for_loss()
            snapshot = self._device.snapshot()
            try:
                await self._core.transition(
                    Request.LOST, reason=f"The camera disappeared ({error})")
            except Refused:
                continue  # it was disconnected meanwhile
            self.losses += 1
            await self._wait_for_return(snapshot)

    async def _wait_for_loss(self) -> CameraGone:
        while True:
            await wait_event(self._wake, PRESENCE_PERIOD_S)
            if self._reported is not None:
                error, self._reported = self._reported, None
                self._wake.clear()
                return error
            try:
                await self._camera.settings()
            except CameraGone as gone:
                return gone
            except BackendError:
                pass  # not open, busy...: not this watcher's business

    async def _wait_for_return(self, snapshot: Snapshot) -> None:
        while True:
            await asyncio.sleep(RETRY_PERIOD_S)
            try:
                await self._device.restore(snapshot)
            except BackendError as error:
                log.debug("%s: camera not back yet: %s", self._name, error)
                if self._core.state is not CameraState.GONE:  # back, but went again at once
                    with contextlib.suppress(Refused):
                        await self._core.transition(
                            Request.LOST, reason=f"The camera disappeared again ({error})")
                continue
            self.returns += 1
            return


async def wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for `event` at most timeout_s (asyncio.timeout, not wait_for: Python 3.11's
    wait_for can swallow a cancellation that meets the event, and DISCONNECT cancels)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
