"""The QHY42PROs served through libqhyccd, kept in step with the bus while the daemon runs.

Each camera is one INDI device, named once from what it is, never from when it came: with
`[camera] device_name` (or --device-name) the first camera gets that name and later ones the
name with " 2", " 3"...; without it, indi_qhy_ccd's `QHY CCD <first 15 characters of its SDK
id>` (a clash, two ids alike in their first 15 characters, gets " 2"). So an Ekos profile
made with the camera plugged in before the daemon started finds it on a night it was plugged
in after.

While no camera is served, a WaitingDevice holds the place (under the name the first camera
will get when device_name is set, else `QHY CCD QHY42PRO`) and says what it waits for. The
roster scans every SCAN_PERIOD_S; a QHY42PRO not served yet gets its device, defined at once
to the clients (libindi's hot-plug manager behaves alike), and the placeholder is deleted. A
served camera that is unplugged keeps its device: its watcher (camera/hotplug.py) waits for it
and restores its settings. The scan runs on the SDK thread, so it waits while any served
camera is busy (exposing, live, burst): a frame's readout never queues behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from qhy42_indi.backends.base import BackendError
from qhy42_indi.backends.qhysdk import SdkBackend
from qhy42_indi.backends.sdk_setup import SdkCameras
from qhy42_indi.camera.core import CameraState
from qhy42_indi.camera.device import Qhy42Device, default_device_name, driver_info
from qhy42_indi.camera.waiting import WaitingDevice
from qhy42_indi.indi.messages import DelProperty
from qhy42_indi.server.hub import Hub
from qhy42_indi.tasks import cancel_and_wait, start_task

log = logging.getLogger(__name__)

SCAN_PERIOD_S = 2.0
SCAN_PERIOD_ENV = "QHY42_SCAN_PERIOD_S"  # tests shorten it
PLACEHOLDER_NAME = default_device_name("QHY42PRO")
QUIET = (CameraState.DISCONNECTED, CameraState.IDLE, CameraState.GONE)

# Makes the device of a camera and puts it on the hub.
ServeCamera = Callable[[str, SdkBackend], Qhy42Device]


class Naming:
    """The device name each camera gets, in the order they are first served."""

    def __init__(self, device_name: str) -> None:
        self._device_name = device_name
        self._given: list[str] = []

    def placeholder(self) -> str:
        return self._device_name or PLACEHOLDER_NAME

    def future(self) -> str:
        """How the placeholder tells the first camera's name before it is known."""
        return self._device_name or "QHY CCD <its camera id>"

    def name_for(self, camera_id: str) -> str:
        base = self._device_name or default_device_name(camera_id)
        name, number = base, 1
        while name in self._given:
            number += 1
            name = f"{base} {number}"
        self._given.append(name)
        return name


class CameraRoster:
    def __init__(self, hub: Hub, cameras: SdkCameras, naming: Naming,
                 serve: ServeCamera, scan_period_s: float | None = None) -> None:
        self._hub = hub
        self._cameras = cameras
        self._naming = naming
        self._serve = serve
        self._scan_period_s = scan_period_s or scan_period_from_environment()
        self.served: dict[str, Qhy42Device] = {}  # by SDK camera id
        self.placeholder: WaitingDevice | None = None
        self._added: list[Callable[[Qhy42Device], None]] = []
        self._task: asyncio.Task[None] | None = None

    def on_added(self, listener: Callable[[Qhy42Device], None]) -> None:
        """Call `listener` with every device added after start (snoop clients, ...)."""
        self._added.append(listener)

    def serve_initial(self) -> None:
        """The cameras the start-up scan found, or the placeholder."""
        for camera_id in self._cameras.camera_ids:
            self._add(camera_id, announce=False)
        if not self.served:
            self.placeholder = WaitingDevice(self._naming.placeholder(), driver_info(),
                                             self._naming.future())
            self._hub.add_device(self.placeholder)

    def start(self) -> None:
        if self._task is None:
            self._task = start_task(self._watch(), "camera roster")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def scan_once(self) -> list[str]:
        """Scan now and serve every new QHY42PRO; the ids added."""
        try:
            ids = await self._cameras.runtime.camera_ids_async()
        except BackendError as error:
            log.debug("camera scan failed: %s", error)
            return []
        added = [camera_id for camera_id in ids if camera_id not in self.served]
        for camera_id in added:
            self._add(camera_id, announce=True)
        return added

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._scan_period_s)
            if all(device.core.state in QUIET for device in self.served.values()):
                await self.scan_once()

    def _add(self, camera_id: str, *, announce: bool) -> None:
        if self.placeholder is not None:
            self._remove_placeholder(camera_id)
        name = self._naming.name_for(camera_id)
        device = self._serve(name, self._cameras.make_backend(camera_id))
        self.served[camera_id] = device
        log.info("serving %s as %s", camera_id, name)
        if announce:
            # Defined to every client at once, as indiserver forwards a new driver's defs.
            device.publish_definitions()
            device.say(f"{camera_id} plugged in: served as {name}")
            for listener in list(self._added):
                try:
                    listener(device)
                except Exception:  # a listener's bug must not cost the camera its device
                    log.exception("roster listener %r failed for %s", listener, name)

    def _remove_placeholder(self, camera_id: str) -> None:
        placeholder, self.placeholder = self.placeholder, None
        assert placeholder is not None
        self._hub.remove_device(placeholder.name, DelProperty(
            device=placeholder.name,
            message=f"{camera_id} plugged in: this placeholder is replaced by its device"))


def scan_period_from_environment() -> float:
    """$QHY42_SCAN_PERIOD_S when it is a positive number, else SCAN_PERIOD_S."""
    try:
        value = float(os.environ.get(SCAN_PERIOD_ENV, ""))
    except ValueError:
        return SCAN_PERIOD_S
    return value if value > 0 else SCAN_PERIOD_S
