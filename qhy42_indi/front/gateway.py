"""How an HTTP front-end reads and commands the cameras: as one more client of the devices.

A command is the newXXXVector an INDI client would send, handled by the same device code
with the same checks (limits, the camera core's table, the handler) and the same publishing,
so every INDI client sees what an Alpaca client or the page changed. The outcome is what the
device said of that property while it handled the command: Alert with its reason, or the
state it ended in. A read-only address is refused before the device sees anything, as
hub.py refuses a read-only INDI client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from qhy42_indi.camera.config_file import command_for
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi.messages import (
    IndiMessage,
    PropertyState,
    SetVector,
)
from qhy42_indi.indi.properties import Value
from qhy42_indi.server.hub import Hub

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: PropertyState
    message: str = ""  # the device's reason when it refused or failed

    @property
    def ok(self) -> bool:
        return self.state is not PropertyState.ALERT


class Gateway:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def cameras(self) -> list[Qhy42Device]:
        """The cameras served, in the order they were added (Alpaca's device numbers)."""
        return [d for d in self.hub.devices.values() if isinstance(d, Qhy42Device)]

    async def command(
        self,
        device: Qhy42Device,
        name: str,
        values: Mapping[str, Value],
        *,
        read_only: bool,
        who: str,
    ) -> Outcome:
        """Set `values` (some members of property `name`; for a switch vector, the switches to
        turn on or off) as an INDI client would."""
        if read_only:
            log.warning("%s %s: not changed: %s is read-only (server.read_only)",
                        device.name, name, who)
            return Outcome(PropertyState.ALERT, f"{who} is read-only: {name} not changed")
        vector = device.props.get(name)
        if vector is None or name not in device.defined:
            what = "not connected" if not device.connected else "not available now"
            return Outcome(PropertyState.ALERT, f"{name} is {what}")
        command = command_for(device.name, vector, values)
        said: list[SetVector] = []

        def watch(message: IndiMessage) -> None:
            if (isinstance(message, SetVector) and message.device == device.name
                    and message.name == name):
                said.append(message)

        stop = self.hub.observe(watch)
        try:
            await device.handle_new(command)
        finally:
            stop()
        for message in said:
            if message.state is PropertyState.ALERT:
                return Outcome(PropertyState.ALERT, message.message or f"{name} refused")
        return Outcome(vector.state, (said[-1].message or "") if said else "")
