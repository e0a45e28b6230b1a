"""The configuration's property values ([upload], [camera.defaults]) applied on CONNECT.

When a camera connects for the first time in the daemon's life, each configured value is
sent to it as the newXXXVector a client would send, in the order written, through the
device's own checks and handlers. Only then: a camera that vanished and came back gets the
settings it had (the device restores them), and one a client disconnected and connected
again keeps what the clients have set since, so a client's GAIN 33 never turns back into the
file's 10. The device's
saved configuration (CONFIG_SAVE, ~/.indi/<device>_config.xml) wins for the properties it
holds: what a user saved from Ekos is not undone at the next connect; CONFIG_PURGE returns a
property to the daemon's default. They go in ahead of any command a client sends after its
CONNECT (the device takes commands one at a time, in order of arrival).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from qhy42_indi.camera import config_file
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.device_base import PropertyDevice
from qhy42_indi.indi.messages import (
    IndiMessage,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchState,
)
from qhy42_indi.property_values import PresetCommand
from qhy42_indi.server.hub import Hub
from qhy42_indi.tasks import TaskGroup

log = logging.getLogger(__name__)


class ConnectDefaults:
    def __init__(self, hub: Hub, commands: list[PresetCommand]) -> None:
        self._hub = hub
        self._commands = commands
        self._applied: set[str] = set()  # devices the defaults went to
        self._tasks = TaskGroup("connect defaults")
        self._unobserve: Callable[[], None] | None = None

    def start(self) -> None:
        if self._commands:
            self._unobserve = self._hub.observe(self._observe)

    async def stop(self) -> None:
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None
        await self._tasks.cancel()

    def _observe(self, message: IndiMessage) -> None:
        if not isinstance(message, SetVector) or message.name != "CONNECTION":
            return
        connected = message.state is PropertyState.OK and any(
            isinstance(e, SwitchElement) and e.name == "CONNECT" and e.value is SwitchState.ON
            for e in message.elements
        )
        if connected and message.device not in self._applied:
            self._applied.add(message.device)
            self._tasks.start(self._apply(message.device), message.device)

    async def _apply(self, device_name: str) -> None:
        device = self._hub.devices.get(device_name)
        if not isinstance(device, PropertyDevice):
            return
        saved: set[str] = set()
        if isinstance(device, Qhy42Device):
            commands = await asyncio.to_thread(config_file.load_config, device.config_path)
            saved = {c.name for c in commands}
        for preset in self._commands:
            name = preset.command.name
            if name in saved:
                log.info("%s %s: the saved configuration's value kept over %s", device_name,
                         name, preset.key)
                continue
            command = preset.for_device(device_name)
            log.info("%s %s: set from %s: %s", device_name, name, preset.key,
                     {e.name: getattr(e, "value", None) for e in command.elements})
            await device.handle_new(command)
