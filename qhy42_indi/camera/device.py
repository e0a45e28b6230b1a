"""The QHY42PRO as an INDI device: its properties, and what each one does.

The properties come from the xml/ skeletons: qhy42_base_sk.xml is defined from start-up,
qhy42_ccd_sk.xml after CONNECT (deleted on DISCONNECT), qhy42_ondemand_sk.xml while a mode
needs it. Handlers are bound by property name.
"""

from __future__ import annotations

import logging

from qhy42_indi import __version__
from qhy42_indi.camera.device_base import PropertyDevice
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir

log = logging.getLogger(__name__)

DRIVER_EXEC = "indi_qhy42_ccd"
# KStars' local profiles match a device to its driver by the first word of the driver name,
# and indi_qhy_ccd names its devices "QHY CCD <id>": keep both so profiles carry over.
DRIVER_NAME = "QHY CCD"
CCD_INTERFACE = 2


def default_device_name(camera_id: str) -> str:
    """indi_qhy_ccd's naming: "QHY CCD " and the first 15 characters of the SDK camera id."""
    return f"QHY CCD {camera_id[:15]}"


class Qhy42Device(PropertyDevice):
    def __init__(self, name: str) -> None:
        directory = skeleton_dir()
        base = load_skeleton(directory / "qhy42_base_sk.xml")
        ccd = load_skeleton(directory / "qhy42_ccd_sk.xml")
        on_demand = load_skeleton(directory / "qhy42_ondemand_sk.xml")
        super().__init__(name, [*base, *ccd, *on_demand])
        self.base_names = [v.name for v in base]
        self.ccd_names = [v.name for v in ccd]
        self.on_demand_names = [v.name for v in on_demand]
        self.props["DRIVER_INFO"].set_values(
            {
                "DRIVER_NAME": DRIVER_NAME,
                "DRIVER_EXEC": DRIVER_EXEC,
                "DRIVER_VERSION": ".".join(__version__.split(".")[:2]),
                "DRIVER_INTERFACE": str(CCD_INTERFACE),
            }
        )
        self.handlers.update(
            {
                "CONNECTION": self._on_connection,
                "CONFIG_PROCESS": self._on_config_process,
                "CCD_FRAME": self._on_frame,
                "CCD_FRAME_RESET": self._on_frame_reset,
                "CCD_BINNING": self._on_binning,
                "UPLOAD_MODE": self._on_upload_mode,
            }
        )
        self.define(self.base_names)

    @property
    def connected(self) -> bool:
        return self.props["CONNECTION"].is_on("CONNECT")

    # ---- connection ------------------------------------------------------------------------

    async def _on_connection(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        want_connected = proposed["CONNECT"] is SwitchState.ON
        if want_connected == self.connected:
            self.update("CONNECTION", vector.state)
            return
        if want_connected:
            await self.connect()
        else:
            await self.disconnect()

    async def connect(self) -> None:
        connection = self.props["CONNECTION"]
        connection.set_values({"CONNECT": SwitchState.ON, "DISCONNECT": SwitchState.OFF})
        self.update("CONNECTION", PropertyState.OK)
        self.define(self.ccd_names)
        self.say("QHY42PRO connected")

    async def disconnect(self) -> None:
        self.delete([*self.ccd_names, *self.on_demand_names])
        connection = self.props["CONNECTION"]
        connection.set_values({"CONNECT": SwitchState.OFF, "DISCONNECT": SwitchState.ON})
        self.update("CONNECTION", PropertyState.IDLE)
        self.say("QHY42PRO disconnected")

    # ---- options ---------------------------------------------------------------------------

    async def _on_config_process(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        # Acting on the configuration comes with the camera issue; the switch resets, as
        # libindi's does after acting.
        vector.set_values({name: SwitchState.OFF for name in proposed})
        self.update(vector.name, PropertyState.OK)

    async def _on_upload_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values(proposed)
        self.update(vector.name, PropertyState.OK)
        if vector.is_on("UPLOAD_CLIENT"):
            self.delete(["CCD_FILE_PATH"])
        else:
            self.define(["CCD_FILE_PATH"])

    # ---- geometry --------------------------------------------------------------------------

    async def _on_frame(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        # INDI::CCD needs all four members: a partial frame is refused, not guessed.
        named = {e.name for e in message.elements}
        if named != {"X", "Y", "WIDTH", "HEIGHT"}:
            self.alert(vector.name, "Invalid frame requested: X, Y, WIDTH and HEIGHT are all "
                       "required")
            return
        x, y = int(float(proposed["X"])), int(float(proposed["Y"]))
        width, height = int(float(proposed["WIDTH"])), int(float(proposed["HEIGHT"]))
        max_x = int(self.props["CCD_INFO"].number("CCD_MAX_X").value)
        max_y = int(self.props["CCD_INFO"].number("CCD_MAX_Y").value)
        if x + width > max_x or y + height > max_y:
            self.alert(vector.name, f"Frame {width}x{height} at ({x}, {y}) does not fit the "
                       f"{max_x}x{max_y} sensor")
            return
        vector.set_values({"X": x, "Y": y, "WIDTH": width, "HEIGHT": height})
        self.update(vector.name, PropertyState.OK)

    async def _on_frame_reset(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        info = self.props["CCD_INFO"]
        self.props["CCD_FRAME"].set_values(
            {
                "X": 0,
                "Y": 0,
                "WIDTH": info.number("CCD_MAX_X").value,
                "HEIGHT": info.number("CCD_MAX_Y").value,
            }
        )
        self.props["CCD_BINNING"].set_values({"HOR_BIN": 1, "VER_BIN": 1})
        vector.set_values({"RESET": SwitchState.OFF})
        self.update(vector.name, PropertyState.OK)
        self.update("CCD_FRAME", PropertyState.OK)
        self.update("CCD_BINNING", PropertyState.OK)

    async def _on_binning(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        # HOR_BIN and VER_BIN may arrive in separate messages (indi_setprop): each is applied
        # on its own; the range check already happened in the vector.
        vector.set_values({name: int(float(value)) for name, value in proposed.items()})
        self.update(vector.name, PropertyState.OK)
