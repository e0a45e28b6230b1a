"""The QHY42PRO as an INDI device: its properties, its connection, and the parts that act.

Properties come from the xml/ skeletons: qhy42_base_sk.xml is defined from start-up,
qhy42_ccd_sk.xml and qhy42_qhy_sk.xml after CONNECT (deleted on DISCONNECT),
qhy42_ondemand_sk.xml while a mode needs it, qhy42_sim_sk.xml on the simulator only. The
handlers live with the part they belong to: settings.py (geometry, modes, sensor controls),
capture.py (exposures, uploads), cooling.py (temperature); this module connects the camera
and keeps the device's configuration (CONFIG_PROCESS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from qhy42_indi import __version__
from qhy42_indi.backends.base import BackendError, CameraBackend
from qhy42_indi.backends.scenes import DarkScene, FlatScene, StarFieldScene
from qhy42_indi.backends.simulator import SimulatorBackend
from qhy42_indi.camera import config_file
from qhy42_indi.camera.burst import Burst
from qhy42_indi.camera.capture import Capture
from qhy42_indi.camera.cooling import Cooling
from qhy42_indi.camera.device_base import PropertyDevice
from qhy42_indi.camera.hotplug import HotplugWatcher
from qhy42_indi.camera.live import LiveSession
from qhy42_indi.camera.settings import SensorSettings
from qhy42_indi.camera.streaming import Streaming
from qhy42_indi.camera.timing import ON_DEMAND_PROPERTIES, Timing
from qhy42_indi.camera.upload import UploadError
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir

log = logging.getLogger(__name__)

DRIVER_EXEC = "indi_qhy42_ccd"
# KStars' local profiles match a device to its driver by the first word of the driver name,
# and indi_qhy_ccd names its devices "QHY CCD <id>": keep both so profiles carry over.
DRIVER_NAME = "QHY CCD"
CCD_INTERFACE = 2

# What CONFIG_SAVE keeps, in the order CONFIG_LOAD replays it: modes before geometry.
CONFIG_PROPERTIES = (
    "POLLING_PERIOD", "ACTIVE_DEVICES", "READ_MODE", "HDR_OUTPUT", "CCD_CAPTURE_FORMAT",
    "USB_SPEED", "USB_TRAFFIC", "CCD_GAIN", "CCD_OFFSET", "CCD_AMP_GLOW", "CCD_BINNING",
    "CCD_FRAME", "CCD_FRAME_TYPE", "CCD_TRANSFER_FORMAT", "CCD_COMPRESSION", "CCD_TEMP_RAMP",
    "SCOPE_INFO", "UPLOAD_MODE", "UPLOAD_SETTINGS", "CCD_FAST_TOGGLE", "CCD_FAST_COUNT",
    "CCD_HEATER",
    # issue 5: GPIO & Timing
    "GPIO_MODE", "SMA_OUTPUT", "TRIGOUT_ENABLE", "TRIGGER_MODE", "TRIGGER_TIMEOUT",
)


def default_device_name(camera_id: str) -> str:
    """indi_qhy_ccd's naming: "QHY CCD " and the first 15 characters of the SDK camera id."""
    return f"QHY CCD {camera_id[:15]}"


class Qhy42Device(PropertyDevice):
    def __init__(self, name: str, backend: CameraBackend) -> None:
        directory = skeleton_dir()
        sets = {
            part: load_skeleton(directory / f"qhy42_{part}_sk.xml")
            for part in ("base", "ccd", "qhy", "ondemand", "sim", "stream", "burst", "gpio")
        }
        super().__init__(name, [v for vectors in sets.values() for v in vectors])
        self.backend = backend
        self.base_names = [v.name for v in sets["base"]]
        self.connected_names = [v.name for v in (*sets["ccd"], *sets["qhy"])]
        self.on_demand_names = [v.name for v in sets["ondemand"]]
        self.simulator_names = [v.name for v in sets["sim"]]
        # issue 6: live video (libindi's streaming set) and burst, defined after CONNECT
        self.connected_names += [v.name for v in (*sets["stream"], *sets["burst"])]
        # issue 5: GPIO & Timing after CONNECT; GPS_STATE/GPS_DATA only in GPS-BOX mode
        self.connected_names += [v.name for v in sets["gpio"]
                                 if v.name not in ON_DEMAND_PROPERTIES]
        self.on_demand_names += ON_DEMAND_PROPERTIES
        if isinstance(backend, SimulatorBackend):
            self.connected_names += self.simulator_names
        self._defaults = {n: dict(self.props[n].values()) for n in CONFIG_PROPERTIES}
        self.props["DRIVER_INFO"].set_values(
            {
                "DRIVER_NAME": DRIVER_NAME,
                "DRIVER_EXEC": DRIVER_EXEC,
                "DRIVER_VERSION": ".".join(__version__.split(".")[:2]),
                "DRIVER_INTERFACE": str(CCD_INTERFACE),
            }
        )
        self.settings = SensorSettings(self, backend)
        self.cooling = Cooling(self, backend)
        self.capture = Capture(self, backend, self.settings, lambda: self.cooling.target_c)
        for part in (self.settings, self.cooling, self.capture):
            self.handlers.update(part.handlers())
        # issue 6: live video and burst share one reader of the camera's live frames
        self.live = LiveSession(backend)
        self.streaming = Streaming(self, backend, self.live, lambda: self.capture.exposures.busy)
        self.burst = Burst(self, backend, self.live, self.capture.deliver)
        for live_part in (self.streaming, self.burst):
            self.handlers.update(live_part.handlers())
        # issue 5: GPIO ports, triggers and exposure timing (FITS times, TrigOut hold-off)
        self.timing = Timing(self, backend, self.settings, self.capture)
        self.handlers.update(self.timing.handlers())
        # issue 7: a camera unplugged and plugged in again (camera/hotplug.py)
        self.hotplug = HotplugWatcher(self, CONFIG_PROPERTIES)
        self.capture.exposures.on_gone = self.hotplug.camera_gone
        self.handlers["SIM_USB"] = self.hotplug.on_sim_usb
        self.handlers.update(
            {
                "CONNECTION": self._on_connection,
                "CONFIG_PROCESS": self._on_config_process,
                "SIM_SCENE": self._on_scene,
                "SIM_FLAT_LEVEL": self._on_scene,
            }
        )
        self.define(self.base_names)

    @property
    def connected(self) -> bool:
        return self.props["CONNECTION"].is_on("CONNECT")

    # ---- connection ----------------------------------------------------------------------

    async def _on_connection(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if (proposed["CONNECT"] is SwitchState.ON) == self.connected:
            self.update("CONNECTION", vector.state)
        elif proposed["CONNECT"] is SwitchState.ON:
            await self.connect()
        else:
            await self.disconnect()

    async def connect(self) -> None:
        try:
            await self.open_camera()
        except BackendError as error:
            with contextlib.suppress(BackendError):
                await self.backend.close()
            self.alert("CONNECTION", f"Cannot open the QHY42PRO: {error}")
            return
        self._set_connection(True)
        self.define(self.connected_names)
        await self._load_config(announce=False)
        await self.start_parts()
        info = self.settings.info
        self.say(f"{info.model if info else 'QHY42PRO'} connected "
                 f"({info.camera_id if info else ''})")
        self.hotplug.start()

    # The steps CONNECT and DISCONNECT share with a camera that vanishes and returns (issue 7).

    async def open_camera(self) -> None:
        await self.backend.open()
        await self.timing.open()  # issue 5: holds TrigOut off while the camera is set up
        await self.settings.open()

    async def start_parts(self) -> None:
        await self.timing.init_done()  # issue 5: GPIO and trigger applied, TrigOut restored
        try:
            await self.cooling.start()
        except BackendError as error:
            self.alert("CCD_TEMPERATURE", f"Cannot read the cooler: {error}")

    async def stop_parts(self) -> None:
        await self.streaming.close()  # issue 6: ends live mode, keeps the recording
        await self.burst.close()
        await self.capture.exposures.stop()
        await self.cooling.stop()

    @property
    def command_lock(self) -> asyncio.Lock:
        """Held while a client command is handled (hotplug.py takes it to reconnect)."""
        return self._command_lock

    async def disconnect(self) -> None:
        await self.hotplug.stop()
        await self.stop_parts()
        with contextlib.suppress(BackendError):
            await self.backend.close()
        self.delete([*self.connected_names, *self.on_demand_names])
        self._set_connection(False)
        self.say("QHY42PRO disconnected")

    def _set_connection(self, connected: bool) -> None:
        self.props["CONNECTION"].set_values(
            {
                "CONNECT": SwitchState.ON if connected else SwitchState.OFF,
                "DISCONNECT": SwitchState.OFF if connected else SwitchState.ON,
            }
        )
        self.update("CONNECTION", PropertyState.OK if connected else PropertyState.IDLE)

    async def close(self) -> None:
        """Stop everything and release the camera (daemon shutdown)."""
        if self.connected:
            await self.disconnect()

    # ---- configuration -------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return config_file.config_path(self.name)

    async def _on_config_process(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        action = next((n for n, s in proposed.items() if s is SwitchState.ON), None)
        vector.set_values({name: SwitchState.OFF for name in proposed})
        actions = {
            "CONFIG_SAVE": self._save_config,
            "CONFIG_LOAD": lambda: self._load_config(announce=True),
            "CONFIG_DEFAULT": self._restore_defaults,
            "CONFIG_PURGE": self._purge_config,
        }
        ok = await actions[action]() if action in actions else True
        self.update(vector.name, PropertyState.OK if ok else PropertyState.ALERT)

    async def _save_config(self) -> bool:
        vectors = [self.props[n] for n in CONFIG_PROPERTIES if n in self.defined]
        path = self.config_path
        try:
            await asyncio.to_thread(config_file.save_config, path, self.name, vectors)
        except (UploadError, OSError) as error:
            self.say(f"Saving the configuration failed: {error}", "ERROR")
            return False
        self.say(f"Configuration saved to {path}")
        return True

    async def _load_config(self, *, announce: bool) -> bool:
        commands = await asyncio.to_thread(config_file.load_config, self.config_path)
        if not commands and announce:
            self.say(f"No saved configuration at {self.config_path}", "WARNING")
            return False
        for command in commands:
            await self.replay(
                NewVector(kind=command.kind, device=self.name, name=command.name,
                          elements=command.elements)
            )
        if commands and announce:
            self.say(f"Configuration loaded from {self.config_path}")
        return True

    async def _restore_defaults(self) -> bool:
        for name, values in self._defaults.items():
            vector = self.props[name]
            if name not in self.defined or vector.values() == values:
                continue
            await self.replay(config_file.as_new_vector(
                self.name, _with_values(vector, values)))
        self.say("Default configuration restored")
        return True

    async def _purge_config(self) -> bool:
        with contextlib.suppress(FileNotFoundError):
            self.config_path.unlink()
        self.say(f"Configuration file {self.config_path} removed")
        return True

    # ---- simulator -----------------------------------------------------------------------

    async def _on_scene(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values(proposed)
        scenes = self.props["SIM_SCENE"]
        level = float(self.props["SIM_FLAT_LEVEL"].value("LEVEL"))
        if isinstance(self.backend, SimulatorBackend):
            if scenes.is_on("SCENE_DARK"):
                self.backend.set_scene(DarkScene())
            elif scenes.is_on("SCENE_FLAT"):
                self.backend.set_scene(FlatScene(level_e_per_s=level))
            else:
                self.backend.set_scene(StarFieldScene())
        self.update(vector.name, PropertyState.OK)


def _with_values(vector: PropertyVector, values: dict[str, Value]) -> PropertyVector:
    copy = PropertyVector.from_definition(vector.definition(""))
    copy.set_values(values)
    return copy
