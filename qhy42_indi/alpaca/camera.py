"""One camera as an ASCOM ICameraV4 device: every member, read from the device's properties
and changed through the gateway, as an INDI client would change it.

What Alpaca adds to the camera is small and lives here: whether this Alpaca server is
connected to it (Connected false leaves the camera connected for the INDI clients), the
subframe a client is composing (NumX/NumY/StartX/StartY in binned pixels, applied as one
CCD_FRAME at StartExposure, when the whole of it can be checked), and the last frame, whoever
started it, for ImageArray. Everything else is the device's: an exposure started here is the
INDI exposure (CCD_EXPOSURE Busy for the INDI clients, its FITS to them), and one started by
an INDI client is what CameraState shows here.

Not here: HTTP and the envelope (front.py, protocol.py), the image encodings (images.py),
the QHY42PRO's own features (actions.py), the conversions of property values (readings.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from qhy42_indi import __version__
from qhy42_indi.alpaca import readings
from qhy42_indi.alpaca.actions import SUPPORTED_ACTIONS, CameraActions
from qhy42_indi.alpaca.images import FrameImages
from qhy42_indi.alpaca.protocol import (
    DRIVER_ERROR,
    INVALID_OPERATION,
    NOT_CONNECTED,
    VALUE_NOT_SET,
    AlpacaError,
    Caller,
    Params,
    invalid,
    invalid_operation,
    not_implemented,
)
from qhy42_indi.alpaca.readings import as_int
from qhy42_indi.camera.core import (
    AWAY,
    EXPOSURE_STATES,
    CameraState,
    Refused,
    Request,
)
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.front.gateway import Gateway
from qhy42_indi.indi.messages import PropertyState, SwitchState
from qhy42_indi.indi.properties import Value

log = logging.getLogger(__name__)

INTERFACE_VERSION = 4
SENSOR_NAME = "GSENSE400"
MONOCHROME = 0


class AlpacaCameraState(IntEnum):
    IDLE = 0
    WAITING = 1
    EXPOSING = 2
    READING = 3
    DOWNLOAD = 4
    ERROR = 5


Getter = Callable[[], Any]
Putter = Callable[[Params, Caller], Awaitable[Any]]


class AlpacaCamera:
    """ICameraV4 for one device. Members are looked up by their lowercase Alpaca names."""

    def __init__(self, device: Qhy42Device, gateway: Gateway) -> None:
        self.device = device
        self._gateway = gateway
        self._attached = False
        self._connecting: asyncio.Task[None] | None = None
        self._mode_names: list[str] = []
        self._subframe: dict[str, int] = {}  # what a client set and StartExposure applies
        self._last: DeliveredFrame | None = None
        self._images: FrameImages | None = None
        self._awaiting_frame = False
        self.actions = CameraActions(device, lambda: self._last)
        self._stop_tap = device.frames.subscribe(self._on_frame)
        self.getters: dict[str, Getter] = self._getters()
        self.putters: dict[str, Putter] = self._putters()
        # Members that answer whether or not a client is connected.
        self.unconnected = {
            "connected", "connecting", "description", "driverinfo", "driverversion",
            "interfaceversion", "name", "supportedactions", "canabortexposure",
            "canasymmetricbin", "canfastreadout", "cangetcoolerpower", "canpulseguide",
            "cansetccdtemperature", "canstopexposure", "hasshutter", "sensortype",
            "sensorname", "maxbinx", "maxbiny", "connect", "disconnect",
        }

    def close(self) -> None:
        self._stop_tap()
        if self._connecting is not None:
            self._connecting.cancel()

    # ---- frames --------------------------------------------------------------------------

    def _on_frame(self, frame: DeliveredFrame) -> None:
        self._last = frame
        self._images = FrameImages(frame.pixels)
        if self._awaiting_frame:
            # A client of ours waits for it: its download should not wait for the transpose.
            self._awaiting_frame = False
            self._images.prepare()

    def image(self) -> FrameImages:
        self.require_connected()
        if self._images is None:
            raise invalid_operation("No image is ready: StartExposure first, and wait for "
                                    "ImageReady")
        return self._images

    # ---- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._attached and self.device.connected

    def require_connected(self) -> None:
        if not self.connected:
            raise AlpacaError(NOT_CONNECTED, f"{self.device.name} is not connected: set "
                              "Connected (or call Connect) first")

    async def _attach(self, caller: Caller) -> None:
        if not self.device.connected:
            await self._command("CONNECTION", {"CONNECT": SwitchState.ON}, caller,
                                failure=DRIVER_ERROR)
        modes = await self.device.backend.read_modes()
        self._mode_names = [mode.name for mode in modes]
        self._attached = True

    async def _set_connected(self, params: Params, caller: Caller) -> None:
        if params.boolean("Connected"):
            await self._attach(caller)
        else:
            # The camera stays connected: INDI clients may be using it.
            self._attached = False

    async def _connect(self, params: Params, caller: Caller) -> None:
        if self._connecting is not None and not self._connecting.done():
            return
        task = asyncio.create_task(self._attach(caller), name=f"alpaca connect {self.device.name}")
        task.add_done_callback(_log_failure)
        self._connecting = task

    async def _disconnect(self, params: Params, caller: Caller) -> None:
        self._attached = False

    # ---- commands ------------------------------------------------------------------------

    async def _command(self, name: str, values: Mapping[str, Value], caller: Caller, *,
                       failure: int = INVALID_OPERATION) -> None:
        outcome = await self._gateway.command(self.device, name, values,
                                              read_only=caller.read_only, who=caller.who)
        if not outcome.ok:
            raise AlpacaError(failure, device_reason(outcome.message) or f"{name} was refused")

    async def action(self, params: Params, caller: Caller) -> str:
        async def command(name: str, values: Mapping[str, Value]) -> None:
            await self._command(name, values, caller)

        return await self.actions.run(params.text("Action"), params.text("Parameters"), command)

    # ---- reading the device --------------------------------------------------------------

    def _number(self, name: str, member: str) -> float:
        return readings.number(self.device, name, member)

    def _limits(self, name: str, member: str) -> tuple[float, float]:
        return readings.limits(self.device, name, member)

    def _subframe_member(self, member: str) -> int:
        return self._subframe.get(member, readings.frame_binned(self.device)[member])

    def camera_state(self) -> AlpacaCameraState:
        state = self.device.core.state
        if state is CameraState.WAITING_FOR_TRIGGER:
            return AlpacaCameraState.WAITING
        if state is CameraState.EXPOSING:
            left_s = self._number("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")
            return AlpacaCameraState.EXPOSING if left_s > 0 else AlpacaCameraState.READING
        if state in (CameraState.LIVE, CameraState.BURST):
            return AlpacaCameraState.EXPOSING
        if state is CameraState.GONE:
            return AlpacaCameraState.ERROR
        if self._awaiting_frame and self.device.props["CCD_EXPOSURE"].state is PropertyState.ALERT:
            return AlpacaCameraState.ERROR  # our exposure failed: no image will come
        return AlpacaCameraState.IDLE

    def _percent_completed(self) -> int:
        if self.device.core.state in EXPOSURE_STATES:
            # whoever started it (Alpaca or an INDI client): the device knows its length
            exposure_s = self.device.capture.exposure_in_flight_s
            if exposure_s <= 0:
                return 0
            left_s = self._number("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")
            done = 1.0 - left_s / exposure_s
            return max(0, min(100, round(100 * done)))
        return 100 if self._images is not None else 0

    def _last_frame(self) -> DeliveredFrame:
        if self._last is None:
            raise AlpacaError(VALUE_NOT_SET, "No exposure has been taken yet")
        return self._last

    def _readout_mode_names(self) -> list[str]:
        return list(self._mode_names)

    def _exposure_resolution_s(self) -> float:
        period_us = self._number("LINE_PERIOD", "PERIOD")
        return period_us * 1e-6

    def device_state(self) -> list[dict[str, Any]]:
        values: list[tuple[str, Any]] = [
            ("CameraState", int(self.camera_state())),
            ("CCDTemperature", self._number("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE")),
            ("CoolerPower", self._number("CCD_COOLER_POWER", "CCD_COOLER_VALUE")),
            ("ImageReady", self._images is not None),
            ("IsPulseGuiding", False),
            ("PercentCompleted", self._percent_completed()),
            ("TimeStamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]),
        ]
        return [{"Name": name, "Value": value} for name, value in values]

    def _getters(self) -> dict[str, Getter]:
        props = self.device.props

        def unimplemented(member: str) -> Getter:
            def refuse() -> Any:
                raise not_implemented(member)
            return refuse

        return {
            # common members
            "connected": lambda: self.connected,
            "connecting": lambda: self._connecting is not None and not self._connecting.done(),
            "description": lambda: "QHYCCD QHY42PRO (GSENSE400 BSI, 2048x2048, 11 um)",
            "driverinfo": lambda: f"qhy42-indi {__version__}: the QHY42PRO over INDI and "
                                  "ASCOM Alpaca, one daemon",
            "driverversion": lambda: ".".join(__version__.split(".")[:2]),
            "interfaceversion": lambda: INTERFACE_VERSION,
            "name": lambda: self.device.name,
            "supportedactions": lambda: list(SUPPORTED_ACTIONS),
            "devicestate": self.device_state,
            # capabilities
            "canabortexposure": lambda: True,
            "canasymmetricbin": lambda: True,
            "canfastreadout": lambda: False,
            "cangetcoolerpower": lambda: True,
            "canpulseguide": lambda: False,
            "cansetccdtemperature": lambda: True,
            "canstopexposure": lambda: False,
            "hasshutter": lambda: False,
            "sensortype": lambda: MONOCHROME,
            "sensorname": lambda: SENSOR_NAME,
            "maxbinx": lambda: as_int(props["CCD_BINNING"].number("HOR_BIN").max or 4),
            "maxbiny": lambda: as_int(props["CCD_BINNING"].number("VER_BIN").max or 4),
            "bayeroffsetx": unimplemented("BayerOffsetX (a monochrome sensor)"),
            "bayeroffsety": unimplemented("BayerOffsetY (a monochrome sensor)"),
            "fastreadout": unimplemented("FastReadout"),
            "heatsinktemperature": unimplemented("HeatSinkTemperature"),
            "gains": unimplemented("Gains (Gain is numeric: GainMin..GainMax)"),
            "offsets": unimplemented("Offsets (Offset is numeric: OffsetMin..OffsetMax)"),
            "subexposureduration": unimplemented("SubExposureDuration"),
            # geometry
            "binx": lambda: readings.binning(self.device)[0],
            "biny": lambda: readings.binning(self.device)[1],
            "cameraxsize": lambda: readings.sensor_size(self.device)[0],
            "cameraysize": lambda: readings.sensor_size(self.device)[1],
            "pixelsizex": lambda: self._number("CCD_INFO", "CCD_PIXEL_SIZE_X"),
            "pixelsizey": lambda: self._number("CCD_INFO", "CCD_PIXEL_SIZE_Y"),
            "startx": lambda: self._subframe_member("StartX"),
            "starty": lambda: self._subframe_member("StartY"),
            "numx": lambda: self._subframe_member("NumX"),
            "numy": lambda: self._subframe_member("NumY"),
            # sensor
            "gain": lambda: as_int(self._number("CCD_GAIN", "GAIN")),
            "gainmin": lambda: as_int(self._limits("CCD_GAIN", "GAIN")[0]),
            "gainmax": lambda: as_int(self._limits("CCD_GAIN", "GAIN")[1]),
            "offset": lambda: as_int(self._number("CCD_OFFSET", "OFFSET")),
            "offsetmin": lambda: as_int(self._limits("CCD_OFFSET", "OFFSET")[0]),
            "offsetmax": lambda: as_int(self._limits("CCD_OFFSET", "OFFSET")[1]),
            "readoutmode": lambda: as_int(self._number("READ_MODE", "MODE")),
            "readoutmodes": self._readout_mode_names,
            "maxadu": lambda: (1 << readings.bit_depth(self.device)) - 1,
            "electronsperadu": lambda: readings.electrons_per_output_adu(self.device),
            "fullwellcapacity": lambda: readings.full_well_e(self.device),
            # exposure
            "exposuremin": lambda: self._limits("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")[0],
            "exposuremax": lambda: self._limits("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")[1],
            "exposureresolution": self._exposure_resolution_s,
            "camerastate": lambda: int(self.camera_state()),
            "imageready": lambda: self._images is not None,
            "percentcompleted": self._percent_completed,
            "lastexposureduration": lambda: self._last_frame().frame.exposure_s,
            "lastexposurestarttime": lambda: readings.fits_time(self._last_frame()),
            "ispulseguiding": lambda: False,
            # cooling
            "ccdtemperature": lambda: self._number("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE"),
            "setccdtemperature": self._setpoint_c,
            "cooleron": lambda: props["CCD_COOLER"].is_on("COOLER_ON"),
            "coolerpower": lambda: self._number("CCD_COOLER_POWER", "CCD_COOLER_VALUE"),
        }

    def _setpoint_c(self) -> float:
        target = self.device.cooling.target_c
        if target is None:
            return self._number("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE")
        return float(target)

    # ---- changing the device -------------------------------------------------------------

    def _putters(self) -> dict[str, Putter]:
        def unimplemented(member: str) -> Putter:
            async def refuse(params: Params, caller: Caller) -> None:
                raise not_implemented(member)
            return refuse

        async def refuse_command(params: Params, caller: Caller) -> None:
            raise not_implemented("Command (raw commands; use Action)")

        return {
            "connected": self._set_connected,
            "connect": self._connect,
            "disconnect": self._disconnect,
            "action": self.action,
            "commandblind": refuse_command,
            "commandbool": refuse_command,
            "commandstring": refuse_command,
            "binx": lambda p, c: self._put_bin(p, c, "BinX", "HOR_BIN"),
            "biny": lambda p, c: self._put_bin(p, c, "BinY", "VER_BIN"),
            "startx": lambda p, c: self._put_subframe(p, "StartX"),
            "starty": lambda p, c: self._put_subframe(p, "StartY"),
            "numx": lambda p, c: self._put_subframe(p, "NumX"),
            "numy": lambda p, c: self._put_subframe(p, "NumY"),
            "gain": lambda p, c: self._put_integer(p, c, "Gain", "CCD_GAIN", "GAIN"),
            "offset": lambda p, c: self._put_integer(p, c, "Offset", "CCD_OFFSET", "OFFSET"),
            "readoutmode": lambda p, c: self._put_integer(p, c, "ReadoutMode", "READ_MODE",
                                                          "MODE"),
            "cooleron": self._put_cooler,
            "setccdtemperature": self._put_setpoint,
            "startexposure": self._start_exposure,
            "abortexposure": self._abort_exposure,
            "stopexposure": unimplemented("StopExposure (CanStopExposure is false: use "
                                          "AbortExposure)"),
            "pulseguide": unimplemented("PulseGuide (CanPulseGuide is false)"),
            "fastreadout": unimplemented("FastReadout"),
            "subexposureduration": unimplemented("SubExposureDuration"),
        }

    async def _put_bin(self, params: Params, caller: Caller, member: str, element: str) -> None:
        value = params.integer(member)
        high = as_int(self.device.props["CCD_BINNING"].number(element).max or 4)
        if not 1 <= value <= high:
            raise invalid(f"{member}={value} is outside 1..{high}")
        bin_x, bin_y = readings.binning(self.device)
        values = {"HOR_BIN": float(bin_x), "VER_BIN": float(bin_y), element: float(value)}
        await self._command("CCD_BINNING", values, caller)

    async def _put_subframe(self, params: Params, member: str) -> None:
        value = params.integer(member)
        low = 1 if member.startswith("Num") else 0
        if value < low:
            raise invalid(f"{member}={value} must be at least {low}")
        self._subframe[member] = value

    async def _put_integer(self, params: Params, caller: Caller, member: str, name: str,
                           element: str) -> None:
        value = params.integer(member)
        low, high = self._limits(name, element)
        if not low <= value <= high:
            raise invalid(f"{member}={value} is outside {low:g}..{high:g}")
        await self._command(name, {element: float(value)}, caller)

    async def _put_cooler(self, params: Params, caller: Caller) -> None:
        on = params.boolean("CoolerOn")
        await self._command("CCD_COOLER", {"COOLER_ON" if on else "COOLER_OFF": SwitchState.ON},
                            caller)

    async def _put_setpoint(self, params: Params, caller: Caller) -> None:
        value = params.number("SetCCDTemperature")
        low, high = self._limits("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE")
        if not low <= value <= high:
            raise invalid(f"SetCCDTemperature={value:g} is outside {low:g}..{high:g} C")
        await self._command("CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": value}, caller)

    # ---- exposures -----------------------------------------------------------------------

    def _check_can_expose(self) -> None:
        state = self.device.core.state
        if state in EXPOSURE_STATES:
            raise invalid_operation("Another exposure is running (CameraState exposing): "
                                    "abort it or let it end first")
        if state is CameraState.GONE:
            raise invalid_operation(AWAY)
        try:
            self.device.core.check(Request.EXPOSE)
        except Refused as refused:
            raise invalid_operation(refused.reason) from None

    def _subframe_to_apply(self) -> dict[str, float] | None:
        """The CCD_FRAME a client's StartX/StartY/NumX/NumY make; InvalidValue if they do not
        fit the sensor at the current binning. None when nothing changes."""
        if not self._subframe:
            return None
        bin_x, bin_y = readings.binning(self.device)
        width, height = readings.sensor_size(self.device)
        wanted = {m: self._subframe_member(m) for m in readings.ROI_MEMBERS}
        if wanted["StartX"] + wanted["NumX"] > width // bin_x:
            raise invalid(f"StartX {wanted['StartX']} + NumX {wanted['NumX']} exceed the "
                          f"{width // bin_x} columns at BinX {bin_x}")
        if wanted["StartY"] + wanted["NumY"] > height // bin_y:
            raise invalid(f"StartY {wanted['StartY']} + NumY {wanted['NumY']} exceed the "
                          f"{height // bin_y} rows at BinY {bin_y}")
        if wanted == readings.frame_binned(self.device):
            return None
        return {"X": float(wanted["StartX"] * bin_x), "Y": float(wanted["StartY"] * bin_y),
                "WIDTH": float(wanted["NumX"] * bin_x), "HEIGHT": float(wanted["NumY"] * bin_y)}

    def _frame_type_for(self, light: bool) -> str | None:
        on = self.device.props["CCD_FRAME_TYPE"].on_switches()
        current = on[0] if on else "FRAME_LIGHT"
        if light and current in ("FRAME_DARK", "FRAME_BIAS"):
            return "FRAME_LIGHT"
        if not light and current in ("FRAME_LIGHT", "FRAME_FLAT"):
            return "FRAME_DARK"
        return None

    async def _start_exposure(self, params: Params, caller: Caller) -> None:
        duration_s = params.number("Duration")
        light = params.boolean("Light")
        self.require_connected()
        low, high = self._limits("CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")
        if duration_s < 0 or duration_s > high:
            raise invalid(f"Duration {duration_s:g} s is outside 0..{high:g} s")
        self._check_can_expose()
        frame = self._subframe_to_apply()
        frame_type = self._frame_type_for(light)
        if frame is not None:
            await self._command("CCD_FRAME", frame, caller, failure=INVALID_OPERATION)
        self._subframe.clear()
        if frame_type is not None:
            await self._command("CCD_FRAME_TYPE", {frame_type: SwitchState.ON}, caller)
        # A zero duration (a bias) is the shortest the sensor takes.
        exposure_s = max(duration_s, low)
        self._images = None
        self._awaiting_frame = True
        try:
            await self._command("CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": exposure_s}, caller)
        except AlpacaError:
            self._awaiting_frame = False
            raise

    async def _abort_exposure(self, params: Params, caller: Caller) -> None:
        self.require_connected()
        state = self.device.core.state
        if state not in EXPOSURE_STATES:
            return  # nothing to abort: ASCOM asks for no error
        self._awaiting_frame = False
        await self._command("CCD_ABORT_EXPOSURE", {"ABORT": SwitchState.ON}, caller)


def device_reason(message: str) -> str:
    """The device's message without INDI's "[ERROR] " style level prefix."""
    for level in ("[ERROR] ", "[WARNING] ", "[INFO] "):
        if message.startswith(level):
            return message[len(level):]
    return message


def _log_failure(task: asyncio.Task[None]) -> None:
    error = None if task.cancelled() else task.exception()
    if error is not None:
        log.warning("Alpaca Connect failed: %s", error)
