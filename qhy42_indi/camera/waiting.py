"""The device that stands for a camera not plugged in yet (`--backend sdk`, none on the bus).

It has the base properties a client expects of a driver (CONNECTION, DRIVER_INFO) and says,
on CONNECTION's definition and on CONNECT, that it waits for a QHY42PRO and under which name
that camera will be served. It never opens anything: when a camera appears, the roster
(roster.py) deletes this device and defines the camera's own, so a camera is always served
under the name it keeps (a CONNECT racing the camera's arrival cannot bind it to this name).
"""

from __future__ import annotations

from dataclasses import replace

from qhy42_indi.camera.device_base import PropertyDevice
from qhy42_indi.indi.messages import DefVector, NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir

BASE_PROPERTIES = ("CONNECTION", "DRIVER_INFO")


class WaitingDevice(PropertyDevice):
    def __init__(self, name: str, driver_info: dict[str, Value], future_name: str) -> None:
        vectors = [v for v in load_skeleton(skeleton_dir() / "qhy42_base_sk.xml")
                   if v.name in BASE_PROPERTIES]
        super().__init__(name, vectors)
        self.props["DRIVER_INFO"].set_values(driver_info)
        self.waiting_text = (f"Waiting for a QHY42PRO: no QHY42PRO is connected (see "
                             f"`qhy42-indi list`). It is served as {future_name} when it is "
                             "plugged in.")
        self.handlers["CONNECTION"] = self._on_connection
        self.define(BASE_PROPERTIES)

    def definitions(self, name: str | None = None) -> list[DefVector]:
        return [replace(d, message=self.waiting_text) if d.name == "CONNECTION" else d
                for d in super().definitions(name)]

    async def _on_connection(self, vector: PropertyVector, proposed: dict[str, Value],
                             message: NewVector) -> None:
        if proposed["CONNECT"] is SwitchState.ON:
            self.alert("CONNECTION", self.waiting_text)
        else:
            self.update("CONNECTION", PropertyState.IDLE)
