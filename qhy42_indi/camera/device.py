"""The QHY42PRO as an INDI device: its properties, its connection, and the parts that act.

Properties come from the xml/ skeletons: qhy42_base_sk.xml is defined from start-up,
qhy42_ccd_sk.xml, qhy42_qhy_sk.xml, the streaming, burst and GPIO sets after CONNECT (deleted
on DISCONNECT), qhy42_ondemand_sk.xml while a mode needs it, qhy42_sim_sk.xml for a backend
with the simulator's controls. The camera's state is its core's (core.py); this module builds
the core and the parts around it, and:

* admits each command by the core's table before its handler runs (`COMMAND_REQUESTS`: which
  request a property's command is), so a command the state does not allow, or one sent while
  the camera is away, is an Alert with the reason, and whatever a handler raises is an Alert
  too, never a lost connection;
* connects and disconnects the camera through the core, and sets it up again, as it was,
  when it returns after vanishing (the hotplug watcher asks `restore`);
* keeps the device's configuration (CONFIG_PROCESS).

The handlers live with the part they belong to: settings.py (geometry, modes, sensor
controls), capture.py and exposure.py (exposures, uploads), cooling.py (temperature),
streaming.py and live.py (video, recording), burst.py, timing.py (GPIO, triggers, frame
times), sim_controls.py (the simulator's panel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Protocol

from qhy42_indi import __version__
from qhy42_indi.backends.base import BackendError, CameraBackend, CameraGone, SimulatorControls
from qhy42_indi.camera import config_file
from qhy42_indi.camera.burst import Burst
from qhy42_indi.camera.capture import Capture
from qhy42_indi.camera.cooling import Cooling
from qhy42_indi.camera.core import AWAY, CameraCore, CameraState, Refused, Request, Transition
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.device_log import DeviceLog
from qhy42_indi.camera.frame_tap import FrameTap
from qhy42_indi.camera.hotplug import HotplugWatcher, Snapshot
from qhy42_indi.camera.live import LiveSession
from qhy42_indi.camera.settings import SensorSettings
from qhy42_indi.camera.sim_controls import SimulatorPanel
from qhy42_indi.camera.snooping import Snooping
from qhy42_indi.camera.streaming import Streaming
from qhy42_indi.camera.timecards import Site
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
    "GPIO_MODE", "SMA_OUTPUT", "TRIGOUT_ENABLE", "TRIGGER_MODE", "TRIGGER_TIMEOUT",
)


# Which of the core's requests a command to each property is (core.py's table decides).
# CONFIGURE re-times the sensor, so only while idle; ADJUST needs the camera there. A property
# not named here acts on the host alone (upload settings, FITS keywords, the simulator's
# panel) and works in every state. The commands whose parts ask the core for a transition of
# their own (exposures, video, burst) are admitted as ADJUST: the camera must be there.
_CONFIGURE = ("READ_MODE", "HDR_OUTPUT", "CCD_CAPTURE_FORMAT", "CCD_BINNING", "CCD_FRAME",
              "CCD_FRAME_RESET", "GPIO_MODE", "SMA_OUTPUT", "TRIGGER_MODE")
_ADJUST = ("CCD_GAIN", "CCD_OFFSET", "USB_SPEED", "USB_TRAFFIC", "CCD_AMP_GLOW",
           "CCD_TEMPERATURE", "CCD_COOLER", "CCD_COOLER_MODE", "CCD_COOLER_POWER", "CCD_HEATER",
           "TRIGOUT_ENABLE", "STREAMING_EXPOSURE", "BURST_RANGE", "BURST_PATCH", "BURST_IDLE",
           "FRAME_COUNTER_RESET", "LIVE_ANTI_RBI", "IMAGE_OSD")
_TRANSITIONING = ("CCD_EXPOSURE", "CCD_VIDEO_STREAM", "RECORD_STREAM", "BURST_MODE",
                  "BURST_CAPTURE")
COMMAND_REQUESTS: dict[str, Request] = {
    **dict.fromkeys(_CONFIGURE, Request.CONFIGURE),
    **dict.fromkeys((*_ADJUST, *_TRANSITIONING), Request.ADJUST),
}


class HasHandlers(Protocol):
    def handlers(self) -> dict[str, Handler]: ...


def default_device_name(camera_id: str) -> str:
    """indi_qhy_ccd's naming: "QHY CCD " and the first 15 characters of the SDK camera id."""
    return f"QHY CCD {camera_id[:15]}"


def driver_info() -> dict[str, Value]:
    return {
        "DRIVER_NAME": DRIVER_NAME,
        "DRIVER_EXEC": DRIVER_EXEC,
        "DRIVER_VERSION": ".".join(__version__.split(".")[:2]),
        "DRIVER_INTERFACE": str(CCD_INTERFACE),
    }


class Qhy42Device(PropertyDevice):
    def __init__(self, name: str, backend: CameraBackend, *, site: Site | None = None) -> None:
        directory = skeleton_dir()
        sets = {
            part: load_skeleton(directory / f"qhy42_{part}_sk.xml")
            for part in ("base", "ccd", "qhy", "ondemand", "sim", "stream", "burst", "gpio",
                         "debug")
        }
        super().__init__(name, [v for vectors in sets.values() for v in vectors])
        self.backend = backend
        self.base_names = [v.name for v in sets["base"]]
        self.connected_names = [v.name for v in (*sets["ccd"], *sets["qhy"], *sets["stream"],
                                                 *sets["burst"])]
        self.connected_names += [v.name for v in sets["gpio"]
                                 if v.name not in ON_DEMAND_PROPERTIES]
        self.on_demand_names = [v.name for v in sets["ondemand"]] + list(ON_DEMAND_PROPERTIES)
        self._defaults = {n: dict(self.props[n].values()) for n in CONFIG_PROPERTIES}
        self.props["DRIVER_INFO"].set_values(driver_info())
        self.core = CameraCore(name, backend)
        self.frames = FrameTap()  # every delivered frame, for the HTTP front-ends
        self.device_log = DeviceLog(self, DRIVER_EXEC)
        self.hotplug = HotplugWatcher(name, self.core, backend, self)
        self.timing = Timing(self, backend, backend, backend)
        self.settings = SensorSettings(self, backend, backend, self.timing.setting_guard)
        self.cooling = Cooling(self, backend, self.polling_period_s)
        self.snooping = Snooping(self)
        self.capture = Capture(
            self, self.core, backend, backend, self.settings,
            set_temperature_c=lambda: self.cooling.target_c,
            frame_timer=self.timing.frame_timer, trigger=self.timing.trigger_wait,
            camera_gone=self.hotplug.camera_gone, snooped=self.snooping.snapshot, site=site,
            polling_period_s=self.polling_period_s, frames=self.frames,
        )
        # Live video and burst share one reader of the camera's live frames.
        self.live = LiveSession(self.core, backend, self.hotplug.camera_gone)
        self.streaming = Streaming(self, self.core, backend, self.live, self.timing,
                                   filter_name=self.snooping.filter_name)
        self.burst = Burst(self, self.core, backend, self.live, self.capture.deliver)
        parts: list[HasHandlers] = [self.settings, self.cooling, self.capture, self.streaming,
                                    self.burst, self.timing, self.snooping, self.device_log]
        self.simulator: SimulatorPanel | None = None
        if isinstance(backend, SimulatorControls):
            self.simulator = SimulatorPanel(self, backend)
            self.connected_names += [v.name for v in sets["sim"]]
            parts.append(self.simulator)
        for part in parts:
            self.handlers.update(part.handlers())
        self.handlers.update({
            "CONNECTION": self._on_connection,
            "CONFIG_PROCESS": self._on_config_process,
        })
        self.core.subscribe(self)
        self.define(self.base_names)

    @property
    def connected(self) -> bool:
        return self.core.connected

    def polling_period_s(self) -> float:
        """POLLING_PERIOD: the exposure countdown's period, and the cooler readings' (those at
        most once a second: cooling.COOLER_POLL_MIN_S)."""
        return float(self.props["POLLING_PERIOD"].value("PERIOD_MS")) / 1000.0

    @property
    def command_lock(self) -> asyncio.Lock:
        """Held while a client command is handled; a returning camera is set up under it."""
        return self._command_lock

    # ---- commands ------------------------------------------------------------------------

    def allows_message(self, level: str) -> bool:
        return self.device_log.to_clients(level)

    def admit(self, name: str) -> None:
        request = COMMAND_REQUESTS.get(name)
        if request is not None:
            self.core.check(request)

    def handler_failed(self, name: str, error: Exception) -> None:
        if isinstance(error, Refused):
            self.alert(name, error.reason)
        elif isinstance(error, CameraGone):
            self.alert(name, f"{AWAY} ({error})")
            self.hotplug.camera_gone(error)
        elif isinstance(error, BackendError):
            self.alert(name, str(error) or type(error).__name__)
        else:
            super().handler_failed(name, error)

    # ---- the core's listener ---------------------------------------------------------------

    async def leaving(self, change: Transition) -> None:
        ending = (CameraState.GONE, CameraState.DISCONNECTED)
        if change.new in ending and change.old not in ending:
            await self.stop_parts(wait_for_disk=change.new is CameraState.DISCONNECTED)

    def entered(self, change: Transition) -> None:
        if change.new is CameraState.GONE and change.old is not CameraState.GONE:
            self.alert("CONNECTION", f"{change.reason or 'The camera disappeared'}; waiting "
                       "for it to come back (DISCONNECT to give up)")

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
            await self.core.transition(Request.CONNECT, work=self.open_camera)
        except BackendError as error:
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

    async def open_camera(self) -> None:
        """Open the camera and read what it is: the work that makes CONNECT and RETURNED
        true. On failure the camera is closed again and the error raised."""
        try:
            await self.backend.open()
            await self.timing.open()  # holds TrigOut off while the camera is set up
            await self.settings.open()
        except BaseException:
            with contextlib.suppress(BackendError):
                await self.backend.close()
            raise
        if self.simulator is not None:
            self.simulator.show_firmware()

    async def start_parts(self) -> None:
        await self.timing.init_done()  # GPIO and trigger applied, TrigOut restored
        try:
            await self.cooling.start()
        except BackendError as error:
            self.alert("CCD_TEMPERATURE", f"Cannot read the cooler: {error}")

    async def stop_parts(self, *, wait_for_disk: bool) -> None:
        """What runs beside the camera's state ends: video (the recording is kept), burst
        delivery, the cooler poll. The core stops the exposure and live mode itself."""
        await self.streaming.close(wait_for_disk=wait_for_disk)
        await self.burst.close()
        await self.cooling.stop()

    async def disconnect(self) -> None:
        await self.hotplug.stop()
        await self.core.transition(Request.DISCONNECT)
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
        self.device_log.close()

    # ---- a camera that vanished and returned (hotplug.py) --------------------------------

    def snapshot(self) -> Snapshot:
        """What the clients had set, to set again when the camera returns."""
        values = {name: dict(self.props[name].values())
                  for name in CONFIG_PROPERTIES if name in self.defined}
        return Snapshot(values, self.cooling.target_c)

    async def restore(self, snapshot: Snapshot) -> None:
        """Open the camera again and give it the snapshot's settings; BackendError if it
        is not back (the state stays Gone) or went again while being set up."""
        async with self.command_lock:
            await self.core.transition(Request.RETURNED, work=self.open_camera)
            for name, values in snapshot.values.items():
                await self.replay(config_file.command_for(self.name, self.props[name], values))
            await self.start_parts()
            if snapshot.target_c is not None:
                await self.cooling.regulate_to(snapshot.target_c)
            self.update("CONNECTION", PropertyState.OK,
                        "[INFO] The camera is back; its settings were applied again")
            self.say("QHY42PRO reconnected")

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

    def _config_known(self) -> dict[str, list[str]]:
        """The saved properties the device applies now, with their members, in replay order."""
        return {name: [e.name for e in self.props[name].elements]
                for name in CONFIG_PROPERTIES if name in self.defined}

    async def _save_config(self) -> bool:
        vectors = [self.props[n] for n in CONFIG_PROPERTIES if n in self.defined]
        path = self.config_path
        try:
            # Merges into the file: another libindi driver's vectors there stay as they were.
            await asyncio.to_thread(config_file.save_config, path, self.name, vectors)
        except (UploadError, OSError) as error:
            self.say(f"Saving the configuration failed: {error}", "ERROR")
            return False
        self.say(f"Configuration saved to {path}")
        return True

    async def _load_config(self, *, announce: bool) -> bool:
        path = self.config_path
        loaded = await asyncio.to_thread(config_file.read_config, path, self.name,
                                         self._config_known())
        if not loaded.exists:
            if announce:
                self.say(f"No saved configuration at {path}", "WARNING")
            return not announce
        await self._apply_config(loaded)
        # libindi makes the .default copy after a load as well as after a save.
        with contextlib.suppress(UploadError, OSError):
            await asyncio.to_thread(config_file.ensure_default, path)
        if announce:
            self.say(f"Configuration loaded from {path}")
        return True

    async def _apply_config(self, loaded: config_file.LoadedConfig) -> None:
        for command in loaded.commands:
            await self.replay(
                NewVector(kind=command.kind, device=self.name, name=command.name,
                          elements=command.elements)
            )
        if loaded.ignored:
            self.say(f"Not applied from {loaded.path.name} (not this camera's): "
                     f"{', '.join(loaded.ignored)}")

    async def _restore_defaults(self) -> bool:
        """libindi's CONFIG_DEFAULT: the .default copy (the first saved configuration). With
        none, the skeleton's values, so a camera never saved still has defaults to go back to."""
        path = self.config_path
        loaded = await asyncio.to_thread(config_file.load_default, path, self.name,
                                         self._config_known())
        if loaded.exists:
            await self._apply_config(loaded)
            self.say(f"Default configuration loaded from {config_file.default_path(path)}")
            return True
        for name, values in self._defaults.items():
            vector = self.props[name]
            if name not in self.defined or vector.values() == values:
                continue
            await self.replay(config_file.command_for(self.name, vector, values))
        self.say("Default configuration restored")
        return True

    async def _purge_config(self) -> bool:
        path = self.config_path
        try:
            removed = await asyncio.to_thread(config_file.purge, path)
        except OSError as error:
            self.say(f"Cannot remove {path}: {error}", "WARNING")
            return False
        if not removed:
            self.say(f"No configuration file {path} to purge", "WARNING")
            return False
        self.say(f"Configuration file {path} removed ({config_file.default_path(path).name} "
                 "kept)")
        return True
