"""Capture settings as INDI properties: geometry, read mode, bit depth and the sensor controls.

CCD_FRAME is in unbinned pixels of the output image: the mode's frame (2048x2048 STD,
4096x2048 HDR dual) or one channel's 2048x2048 when HDR_OUTPUT is merged. CCD_INFO and
CCD_FRAME's limits follow the read mode and the HDR output. Every setter goes to the backend
and the property reports what the backend actually applied (an ROI is bin-aligned, for
example); a refusal is an Alert with the backend's reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from qhy42_indi.backends.base import (
    BackendError,
    CaptureControl,
    CaptureSettings,
    Lifecycle,
    ReadMode,
    Roi,
    SensorInfo,
)
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value

log = logging.getLogger(__name__)

T = TypeVar("T")

STD_HIGH_GAIN_MODE = 1  # the default, as MIT's QHY42PRO setup; mode 0 is HDR
BIT_DEPTHS = {"INDI_MONO_16": 16, "INDI_MONO_8": 8}

# Wraps every backend setter, given the property's name: timing.py's turns the TrigOut pulse
# off around mode changes and follows the line period.
SettingGuard = Callable[[str], contextlib.AbstractAsyncContextManager[None]]


def _unguarded(name: str) -> contextlib.AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


def _int(value: Value) -> int:
    return round(float(value))


class SensorSettings:
    def __init__(self, device: PropertyDevice, camera: Lifecycle, backend: CaptureControl,
                 setting_guard: SettingGuard = _unguarded) -> None:
        self._device = device
        self._camera = camera
        self._backend = backend
        self.info: SensorInfo | None = None
        self.settings: CaptureSettings | None = None
        # Output columns [x, x + width) of each channel, when HDR output is merged.
        self.merge_columns: tuple[int, int] | None = None
        self._setting_guard = setting_guard

    def handlers(self) -> dict[str, Handler]:
        return {
            "CCD_FRAME": self._on_frame,
            "CCD_FRAME_RESET": self._on_frame_reset,
            "CCD_BINNING": self._on_binning,
            "READ_MODE": self._on_read_mode,
            "HDR_OUTPUT": self._on_hdr_output,
            "CCD_CAPTURE_FORMAT": self._on_capture_format,
            "CCD_GAIN": self._on_gain,
            "CCD_OFFSET": self._on_offset,
            "USB_SPEED": self._on_speed,
            "USB_TRAFFIC": self._on_traffic,
            "CCD_AMP_GLOW": self._on_amp_glow,
        }

    @property
    def hdr_merged(self) -> bool:
        mode = self.settings.read_mode if self.settings else None
        merged = self._device.props["HDR_OUTPUT"].is_on("HDR_MERGED")
        return mode is not None and len(mode.channels) > 1 and merged

    # ---- on connect ----------------------------------------------------------------------

    async def open(self) -> None:
        """Read what the camera is, choose the default mode, publish limits (before defines)."""
        backend = self._backend
        self.info = info = await self._camera.sensor_info()
        modes = await self._camera.read_modes()
        default = STD_HIGH_GAIN_MODE if len(modes) > STD_HIGH_GAIN_MODE else 0
        self.settings = await backend.set_read_mode(default)
        props = self._device.props
        props["CCD_EXPOSURE"].set_limits("CCD_EXPOSURE_VALUE", info.exposure_min_s,
                                         info.exposure_max_s)
        props["CCD_BINNING"].set_limits("HOR_BIN", 1, info.bin_max)
        props["CCD_BINNING"].set_limits("VER_BIN", 1, info.bin_max)
        for name, element, limits in (
            ("CCD_GAIN", "GAIN", info.gain),
            ("CCD_OFFSET", "OFFSET", info.offset),
            ("USB_SPEED", "SPEED", info.speed),
            ("USB_TRAFFIC", "TRAFFIC", info.usb_traffic),
        ):
            props[name].set_limits(element, limits.min, limits.max, limits.step)
        current = self.settings
        for name, element, value in (
            ("CCD_GAIN", "GAIN", current.gain),
            ("CCD_OFFSET", "OFFSET", current.offset),
            ("USB_SPEED", "SPEED", current.speed),
            ("USB_TRAFFIC", "TRAFFIC", current.usb_traffic),
        ):
            props[name].set_values({element: value})
        props["READ_MODE"].set_limits("MODE", 0, len(modes) - 1)
        props["READ_MODE"].set_values({"MODE": default})
        props["CCD_INFO"].set_values({"CCD_PIXEL_SIZE": info.pixel_width_um,
                                      "CCD_PIXEL_SIZE_X": info.pixel_width_um,
                                      "CCD_PIXEL_SIZE_Y": info.pixel_height_um})
        props["SDK_VERSION"].set_values({"VERSION": info.sdk_version})
        props["FIRMWARE_INFO"].set_values({"CAMERA_ID": info.camera_id,
                                           "FIRMWARE": info.firmware_version,
                                           "FPGA": ", ".join(info.fpga_versions)})
        self._reflect(self.settings, publish=False)

    # ---- reflecting the backend ----------------------------------------------------------

    def output_size(self, mode: ReadMode) -> tuple[int, int]:
        width = mode.channel_width if self.hdr_merged else mode.width
        return width, mode.height

    def _reflect(self, settings: CaptureSettings, *, publish: bool = True,
                 frame: tuple[int, int, int, int] | None = None) -> None:
        """Copy the backend's settings into the properties (values and frame limits)."""
        self.settings = settings
        props = self._device.props
        width, height = self.output_size(settings.read_mode)
        roi = settings.roi
        if frame is None:
            frame = (roi.x, roi.y, roi.width, roi.height)
            if self.hdr_merged:
                frame = (0, roi.y, width, roi.height)
        props["CCD_INFO"].set_values({"CCD_MAX_X": width, "CCD_MAX_Y": height,
                                      "CCD_BITSPERPIXEL": settings.bit_depth})
        limits = props["CCD_FRAME"]
        limits.set_limits("X", 0, width - 1)
        limits.set_limits("Y", 0, height - 1)
        limits.set_limits("WIDTH", 1, width)
        limits.set_limits("HEIGHT", 1, height)
        limits.set_values(dict(zip(("X", "Y", "WIDTH", "HEIGHT"), frame, strict=True)))
        self.merge_columns = (frame[0], frame[2]) if self.hdr_merged else None
        props["CCD_BINNING"].set_values({"HOR_BIN": settings.bin_x, "VER_BIN": settings.bin_y})
        props["READ_MODE_INFO"].set_values({"NAME": settings.read_mode.name})
        if publish:
            self._device.update("CCD_INFO", PropertyState.OK)
            self._device.update("CCD_FRAME", PropertyState.OK, with_limits=True)
            self._device.update("CCD_BINNING", PropertyState.OK)
            self._device.update("READ_MODE_INFO", PropertyState.OK)

    async def _apply(self, name: str, call: Awaitable[T]) -> T | None:
        """Run a backend setter; on refusal, Alert on the property with the reason."""
        try:
            async with self._setting_guard(name):
                return await call
        except BackendError as error:
            self._device.alert(name, str(error))
            return None

    # ---- geometry ------------------------------------------------------------------------

    async def _on_frame(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        # INDI::CCD needs all four members: a partial frame is refused, not guessed.
        if {e.name for e in message.elements} != {"X", "Y", "WIDTH", "HEIGHT"}:
            self._device.alert(vector.name, "Invalid frame requested: X, Y, WIDTH and HEIGHT "
                               "are all required")
            return
        x, y = _int(proposed["X"]), _int(proposed["Y"])
        width, height = _int(proposed["WIDTH"]), _int(proposed["HEIGHT"])
        max_x = _int(self._device.props["CCD_INFO"].value("CCD_MAX_X"))
        max_y = _int(self._device.props["CCD_INFO"].value("CCD_MAX_Y"))
        if x + width > max_x or y + height > max_y:
            self._device.alert(vector.name, f"Frame {width}x{height} at ({x}, {y}) does not "
                               f"fit the {max_x}x{max_y} image")
            return
        await self.set_frame(x, y, width, height)

    async def set_frame(self, x: int, y: int, width: int, height: int) -> None:
        assert self.settings is not None
        if self.hdr_merged:
            # Both channels are read over full rows; the columns are cut after merging.
            mode = self.settings.read_mode
            roi = Roi(0, y, mode.width, height)
            applied = await self._apply("CCD_FRAME", self._backend.set_roi(roi))
            if applied is not None:
                bin_x = applied.bin_x
                self._reflect(applied, frame=(x // bin_x * bin_x, applied.roi.y,
                                              max(bin_x, width // bin_x * bin_x),
                                              applied.roi.height))
            return
        applied = await self._apply("CCD_FRAME", self._backend.set_roi(Roi(x, y, width, height)))
        if applied is not None:
            self._reflect(applied)

    async def _on_frame_reset(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values({"RESET": SwitchState.OFF})
        binned = await self._apply("CCD_FRAME_RESET", self._backend.set_binning(1, 1))
        if binned is None:
            return
        width, height = self.output_size(binned.read_mode)
        await self.set_frame(0, 0, width, height)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_binning(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        # HOR_BIN and VER_BIN may come in separate messages (indi_setprop); each applies alone.
        applied = await self._apply(vector.name, self._backend.set_binning(
            _int(proposed["HOR_BIN"]), _int(proposed["VER_BIN"])))
        if applied is not None:
            self._reflect(applied)

    # ---- modes ---------------------------------------------------------------------------

    async def _on_read_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        applied = await self._apply(vector.name, self._backend.set_read_mode(
            _int(proposed["MODE"])))
        if applied is None:
            return
        vector.set_values({"MODE": applied.read_mode.index})
        self._device.update(vector.name, PropertyState.OK)
        self._reflect(applied)
        self._device.say(f"Read mode {applied.read_mode.name}: "
                         f"{applied.read_mode.width}x{applied.read_mode.height}")

    async def _on_hdr_output(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)
        if self.settings is not None:
            width, height = self.output_size(self.settings.read_mode)
            await self.set_frame(0, 0, width, height)

    async def _on_capture_format(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        chosen = next(n for n, s in proposed.items() if s is SwitchState.ON)
        applied = await self._apply(vector.name, self._backend.set_bit_depth(BIT_DEPTHS[chosen]))
        if applied is not None:
            vector.set_values(proposed)
            self._device.update(vector.name, PropertyState.OK)
            self._reflect(applied)

    # ---- sensor controls -----------------------------------------------------------------

    async def _set_number(
        self, vector: PropertyVector, element: str, value: Value,
        setter: Awaitable[CaptureSettings],
    ) -> None:
        if await self._apply(vector.name, setter) is not None:
            vector.set_values({element: _int(value)})
            self._device.update(vector.name, PropertyState.OK)

    async def _on_gain(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        value = proposed["GAIN"]
        await self._set_number(vector, "GAIN", value, self._backend.set_gain(_int(value)))

    async def _on_offset(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        value = proposed["OFFSET"]
        await self._set_number(vector, "OFFSET", value, self._backend.set_offset(_int(value)))

    async def _on_speed(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        value = proposed["SPEED"]
        await self._set_number(vector, "SPEED", value, self._backend.set_speed(_int(value)))

    async def _on_traffic(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        value = proposed["TRAFFIC"]
        await self._set_number(vector, "TRAFFIC", value,
                               self._backend.set_usb_traffic(_int(value)))

    async def _on_amp_glow(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        suppress = proposed["AMP_OFF"] is not SwitchState.ON
        if await self._apply(vector.name,
                             self._backend.set_amp_glow_suppression(suppress)) is not None:
            vector.set_values(proposed)
            self._device.update(vector.name, PropertyState.OK)
