"""A camera that is unplugged and plugged in again, while the daemon keeps serving.

What it is for: while the device is connected, `HotplugWatcher` notices that the camera has
gone: the backend raised CameraGone during an exposure (ExposureController.on_gone calls
`camera_gone`), or the periodic presence check (`backend.settings()`, which every backend
answers from memory but refuses with CameraGone once any call found the camera missing; the
cooler poll touches the camera every second) fails. Then:
- everything that uses the camera stops (an exposure in flight has already ended in Alert),
  the backend is closed, and CONNECTION turns Alert with a message; properties stay defined
  and CONNECT stays On, so clients (Ekos, PHD2) keep their view of the device;
- every RETRY_PERIOD_S the backend is opened again; when the camera answers, the settings
  the clients had made (the CONFIG_PROPERTIES values at the moment it vanished) are applied
  again, cooling resumes toward its set-point, and CONNECTION is Ok again.
DISCONNECT stops the watcher; a client that wants to give up on a vanished camera sends it.

It also binds SIM_USB, the simulator's USB cable (simulate_unplug / simulate_replug), so the
cycle can be driven over the wire.

What it is not: no USB or SDK knowledge (backends/usb.py, backends/qhysdk.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from qhy42_indi.backends.base import BackendError, CameraGone
from qhy42_indi.backends.simulator import SimulatorBackend
from qhy42_indi.camera import config_file
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.tasks import cancel_and_wait

if TYPE_CHECKING:
    from qhy42_indi.camera.device import Qhy42Device

log = logging.getLogger(__name__)

PRESENCE_PERIOD_S = 1.0
RETRY_PERIOD_S = 1.0

Snapshot = dict[str, dict[str, Value]]


class HotplugWatcher:
    def __init__(self, device: Qhy42Device, config_properties: tuple[str, ...]) -> None:
        self._device = device
        self._config_properties = config_properties
        self._task: asyncio.Task[None] | None = None
        self._reported: CameraGone | None = None
        self._wake = asyncio.Event()
        self.gone = False
        self.losses = 0
        self.returns = 0

    # ---- lifecycle (the device calls these on CONNECT and DISCONNECT)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self.gone = False
            self._reported = None
            self._wake.clear()
            self._task = asyncio.create_task(self._run(), name=f"hotplug {self._device.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self.gone = False

    def camera_gone(self, error: CameraGone) -> None:
        """A part of the device met CameraGone (the hook ExposureController.on_gone)."""
        if self._task is not None and not self.gone:
            self._reported = error
            self._wake.set()

    # ---- the watch

    async def _run(self) -> None:
        while True:
            error = await self._wait_for_loss()
            snapshot, target_c = await self._lost(error)
            await self._wait_for_return()
            while not await self._found(snapshot, target_c):
                await self._wait_for_return()

    async def _wait_for_loss(self) -> CameraGone:
        while True:
            await wait_event(self._wake, PRESENCE_PERIOD_S)
            if self._reported is not None:
                error, self._reported = self._reported, None
                self._wake.clear()
                return error
            try:
                await self._device.backend.settings()
            except CameraGone as gone:
                return gone
            except BackendError:
                pass  # not open, busy...: not this watcher's business

    async def _lost(self, error: CameraGone) -> tuple[Snapshot, float | None]:
        device = self._device
        self.gone = True
        self.losses += 1
        async with device.command_lock:
            snapshot = {name: dict(device.props[name].values())
                        for name in self._config_properties if name in device.defined}
            target_c = device.cooling.target_c
            exposing = device.capture.exposures.busy
            await device.stop_parts()
            if exposing:  # it was waiting for its frame: it ends in Alert, not silently
                device.capture.exposure_failed(str(error))
            with contextlib.suppress(BackendError):
                await device.backend.close()
            device.alert("CONNECTION", f"The camera disappeared ({error}); waiting for it to "
                         "come back (DISCONNECT to give up)")
        return snapshot, target_c

    async def _wait_for_return(self) -> None:
        backend = self._device.backend
        while True:
            await asyncio.sleep(RETRY_PERIOD_S)
            try:
                await backend.open()
                return
            except BackendError as error:
                log.debug("%s: camera not back yet: %s", self._device.name, error)
                with contextlib.suppress(BackendError):
                    await backend.close()

    async def _found(self, snapshot: Snapshot, target_c: float | None) -> bool:
        """Set the camera up as it was; False if it failed (it went again at once)."""
        device = self._device
        async with device.command_lock:
            try:
                await device.open_camera()
                for name, values in snapshot.items():
                    await device.replay(_as_command(device.name, device.props[name], values))
                await device.start_parts()
                if target_c is not None:
                    await device.cooling.regulate_to(target_c)
            except BackendError as error:
                log.warning("%s: the camera came back but could not be set up: %s",
                            device.name, error)
                await device.stop_parts()
                with contextlib.suppress(BackendError):
                    await device.backend.close()
                return False
            self.gone = False
            self.returns += 1
            device.update("CONNECTION", PropertyState.OK,
                          "[INFO] The camera is back; its settings were applied again")
            device.say("QHY42PRO reconnected")
            return True

    # ---- SIM_USB: the simulator's cable

    async def on_sim_usb(self, vector: PropertyVector, proposed: dict[str, Value],
                         message: NewVector) -> None:
        backend = self._device.backend
        vector.set_values(proposed)
        if isinstance(backend, SimulatorBackend):
            if proposed.get("UNPLUGGED") is SwitchState.ON:
                backend.simulate_unplug()
            else:
                backend.simulate_replug()
        self._device.update(vector.name, PropertyState.OK)


async def wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for `event` at most timeout_s (asyncio.timeout, not wait_for: Python 3.11's
    wait_for can swallow a cancellation that meets the event, and DISCONNECT cancels)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


def _as_command(device: str, vector: PropertyVector, values: dict[str, Value]) -> NewVector:
    copy = PropertyVector.from_definition(vector.definition(""))
    copy.set_values(values)
    return config_file.as_new_vector(device, copy)
