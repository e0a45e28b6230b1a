"""GPIO ports, triggers and exposure timing as INDI properties (group "GPIO & Timing").

What it is for: the QHY42PRO datasheet's "Advanced Shutter Measurement" and the times in every
frame. GPIO_MODE, SMA_OUTPUT and TRIGOUT_ENABLE write REG39/REG142 (only with FPGA firmware new
enough: otherwise FIRMWARE_INFO is Alert and they refuse); TRIGGER_MODE and TRIGGER_TIMEOUT
make exposures wait for a Trig In edge (exposure.py arms them); a GPIO sync slave waits for
its master the same way. The TrigOut pulse is held off while the camera is set up at CONNECT
and around every mode change (read mode, speed, binning, frame, bit depth, GPIO and SMA
modes), then restored, so no stray pulse leaves the camera.

Each delivered frame gets its row-0 start and end in UTC: from the GPS-BOX head in row 0 when
the GPIO port is in GPS-BOX mode and the receiver's time is valid, else from the host clock at
the moment the backend reported the start. `timing_cards` writes them into the FITS header
with the line period and the rows, so any row's time can be computed; EXPOSURE_TIMING,
GPS_STATE and GPS_DATA show the last frame's.

The exposure sequence asks `trigger_wait` when it starts; settings.py wraps its mode changes
in `setting_guard`; capture.py asks `frame_timer` for each frame. GPIO, SMA and trigger mode
changes are refused while the camera is not idle (the core's CONFIGURE rule, device.py).

What it is not: not the simulator's controls (sim_controls.py), not the exposure sequence
(exposure.py, capture.py), not the head's layout
(backends/gps_header.py), not the signals themselves (the camera, or backends/sim_timing.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from qhy42_indi.backends.base import (
    REG_GPIO,
    REG_TRIGOUT_ENABLE,
    BackendError,
    Frame,
    GpioControl,
    GpioMode,
    Lifecycle,
    RegisterAccess,
    SmaOutput,
    TriggerMode,
    gpio_firmware_problem,
)
from qhy42_indi.backends.gps_header import GpsHeader, read_frame_head
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.exposure import TriggerWait
from qhy42_indi.camera.fits import Card
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value

log = logging.getLogger(__name__)

# Defined only while the GPIO port is in GPS-BOX mode (the device deletes them on DISCONNECT).
ON_DEMAND_PROPERTIES = ("GPS_STATE", "GPS_DATA")
# Settings whose change re-times the sensor: TrigOut is held off around them.
MODE_CHANGES = frozenset({"READ_MODE", "USB_SPEED", "CCD_BINNING", "CCD_FRAME",
                          "CCD_FRAME_RESET", "CCD_CAPTURE_FORMAT"})
GPIO_SWITCHES = {
    "GPIO_I2C": GpioMode.I2C_GPIO,
    "GPIO_GPS_BOX": GpioMode.GPS_BOX,
    "GPIO_5PIN": GpioMode.FIVE_PIN,
    "GPIO_4PIN": GpioMode.FOUR_PIN,
    "GPIO_SYNC_MASTER": GpioMode.SYNC_MASTER,
    "GPIO_SYNC_SLAVE": GpioMode.SYNC_SLAVE,
}
SMA_SWITCHES = {"SMA_SHUTTER_MEASURE": SmaOutput.SHUTTER_MEASURE,
                "SMA_TRIGOUT": SmaOutput.TRIG_OUT}
TRIGGER_SWITCHES = {"TRIGGER_SOFTWARE": TriggerMode.SOFTWARE,
                    "TRIGGER_HARDWARE": TriggerMode.HARDWARE}
WAITING_FOR_TRIGGER = "waiting for trigger"
WAITING_FOR_MASTER = "waiting for trigger from the sync master"


class TimeSource(StrEnum):
    """Where a frame's DATE-OBS comes from (the FITS keyword TIMESRC)."""

    GPS = "GPS"  # the GPS-BOX head in row 0
    HOST = "HOST"  # the host clock when the backend reported the start


@dataclass(frozen=True, slots=True)
class FrameTiming:
    """When a frame's row 0 began (UTC), from which clock (TIMESRC), and its timing cards."""

    start_utc: datetime
    source: str
    cards: Sequence[Card]


def iso_utc(moment: datetime) -> str:
    """UTC, ISO 8601 with microseconds, no zone suffix (as DATE-OBS)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def timing_cards(frame: Frame, start_utc: datetime, source: TimeSource,
                 gps: GpsHeader | None) -> list[Card]:
    """The FITS cards that say when each row of `frame` integrated.

    DATE-OBS (written by fits.py) is row 0's start; sensor row FIRSTROW + n starts n x LINEPER
    later and ends EXPTIME after its start; image row k covers sensor rows k x YBINNING to
    k x YBINNING + YBINNING - 1.
    """
    end_utc = start_utc + timedelta(seconds=frame.exposure_s)
    period_s = frame.line_period_us * 1e-6
    source_comment = ("GPS-BOX head in row 0" if source is TimeSource.GPS
                      else "host clock when the camera reported the start")
    cards = [
        Card("TIMESYS", "UTC", "Time scale of DATE-OBS and DATE-END"),
        Card("DATE-END", iso_utc(end_utc), "UTC end of row 0 exposure"),
        Card("TIMESRC", source.value, source_comment),
        Card("LINEPER", float(frame.line_period_us), "[us] row n starts at DATE-OBS + n*LINEPER"),
        Card("FIRSTROW", int(frame.roi.y), "Sensor row of image row 0 (unbinned)"),
        Card("READROWS", int(frame.roi.height), "Sensor rows read, one LINEPER apart"),
        Card("EXPLINES", round(frame.exposure_s / period_s), "Exposure in line periods"),
        Card("FRAMESEQ", int(frame.sequence), "Camera frame sequence number"),
        Card("TRIGGER", frame.trigger.value.upper(), "What started the exposure"),
    ]
    if gps is not None:
        cards += gps_cards(gps)
    return cards


def gps_cards(gps: GpsHeader) -> list[Card]:
    """The head, with indi_qhy_ccd's keywords (GPS_SS ...), plus GPSLOCK."""
    cards = [
        Card("GPSLOCK", gps.locked, "GPS receiver locked (status 3)"),
        Card("GPS_STAT", int(gps.status), "0 powered on, 1 not locked, 2 valid, 3 locked"),
        Card("GPS_SEQ", gps.sequence, "GPS head frame sequence"),
        Card("GPS_TMP", gps.temporary_sequence, "GPS head temporary sequence"),
    ]
    for prefix, name, stamp in (("S", "start", gps.start), ("E", "end", gps.end),
                                ("N", "vertical sync", gps.now)):
        cards += [
            Card(f"GPS_{prefix}FLG", stamp.flag, f"GPS {name} flag"),
            Card(f"GPS_{prefix}S", stamp.seconds, f"GPS {name} seconds since 1995-10-10"),
            Card(f"GPS_{prefix}U", stamp.microseconds, f"GPS {name} microseconds"),
            Card(f"GPS_{prefix}T", iso_utc(stamp.utc), f"GPS {name} time (UTC)"),
        ]
    cards += [
        Card("GPS_PPSC", gps.pps_counter, "GPS PPS counter (10 MHz ticks)"),
        Card("GPS_LAT", round(gps.latitude_deg, 6), "GPS latitude (deg, north +)"),
        Card("GPS_LONG", round(gps.longitude_deg, 6), "GPS longitude (deg, east +)"),
    ]
    return cards


def _chosen(proposed: dict[str, Value]) -> str:
    return next(name for name, state in proposed.items() if state is SwitchState.ON)


class Timing:
    def __init__(self, device: PropertyDevice, camera: Lifecycle, gpio: GpioControl,
                 registers: RegisterAccess) -> None:
        self._device = device
        self._camera = camera
        self._backend = gpio
        self._registers = registers
        self.firmware_problem: str | None = None  # FPGA too old for REG39/REG142
        self.gpio_problem: str | None = None  # why the GPIO registers cannot be used
        self._initialising = False

    def handlers(self) -> dict[str, Handler]:
        return {
            "GPIO_MODE": self._on_gpio_mode,
            "SMA_OUTPUT": self._on_sma_output,
            "TRIGOUT_ENABLE": self._on_trigout_enable,
            "TRIGGER_MODE": self._on_trigger_mode,
            "TRIGGER_TIMEOUT": self._on_trigger_timeout,
        }

    # ---- connect -------------------------------------------------------------------------

    async def open(self) -> None:
        """At CONNECT, before the camera is set up: hold the TrigOut pulse off."""
        self._initialising = True
        info = await self._camera.sensor_info()
        self.firmware_problem = gpio_firmware_problem(info.fpga_versions)
        self.gpio_problem = self.firmware_problem
        props = self._device.props
        props["FIRMWARE_INFO"].state = (PropertyState.ALERT if self.firmware_problem
                                        else PropertyState.OK)
        if self.gpio_problem is None:
            try:
                await self._backend.set_trigout_enabled(False)
            except BackendError as error:  # the camera still works, without its GPIO port
                self.gpio_problem = f"The GPIO registers cannot be written: {error}"

    async def init_done(self) -> None:
        """After the camera is set up (saved configuration included): apply the GPIO and
        trigger properties, then restore the TrigOut pulse."""
        try:
            await self._apply_trigger_mode()
            await self._apply_gpio()
        finally:
            self._initialising = False
            self._show_gps(self._gps_mode_on())
        await self._publish_line_period()
        await self._publish_registers()
        if self.firmware_problem is not None:
            self._device.alert("FIRMWARE_INFO", self.firmware_problem)
        elif self.gpio_problem is not None:
            self._device.alert("GPIO_MODE", self.gpio_problem)

    async def _apply_trigger_mode(self) -> None:
        try:
            await self._backend.set_trigger_mode(self._trigger_mode())
        except BackendError as error:
            self._device.props["TRIGGER_MODE"].set_values(
                {"TRIGGER_SOFTWARE": SwitchState.ON, "TRIGGER_HARDWARE": SwitchState.OFF})
            self._device.alert("TRIGGER_MODE", f"Exposures start in software: {error}")
        else:
            self._device.update("TRIGGER_MODE", PropertyState.OK)

    async def _apply_gpio(self) -> None:
        if self.gpio_problem is not None:
            return
        props = self._device.props
        try:
            await self._backend.set_gpio_mode(self._gpio_mode())
            await self._backend.set_sma_output(SMA_SWITCHES[props["SMA_OUTPUT"].on_switches()[0]])
            await self._backend.set_trigout_enabled(self._trigout_wanted())
        except BackendError as error:
            self.gpio_problem = f"Cannot set the GPIO port up: {error}"
            return
        for name in ("GPIO_MODE", "SMA_OUTPUT", "TRIGOUT_ENABLE"):
            self._device.update(name, PropertyState.OK)

    # ---- property handlers ---------------------------------------------------------------

    async def _on_gpio_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        mode = GPIO_SWITCHES[_chosen(proposed)]
        if await self._change_port(vector, proposed, lambda: self._backend.set_gpio_mode(mode)):
            self._show_gps(self._gps_mode_on())

    async def _on_sma_output(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        output = SMA_SWITCHES[_chosen(proposed)]
        await self._change_port(vector, proposed, lambda: self._backend.set_sma_output(output))

    async def _change_port(self, vector: PropertyVector, proposed: dict[str, Value],
                           setter: Callable[[], Awaitable[object]]) -> bool:
        """A GPIO or SMA mode change, with TrigOut held off around it."""
        if self._initialising:  # saved configuration: applied in init_done
            return self._store(vector, proposed)
        if not self._gpio_usable(vector.name):
            return False
        async with self._trigout_held_off():
            done = await self._call(vector.name, setter())
        if done:
            await self._publish_registers()
            self._store(vector, proposed)
        return done

    async def _on_trigout_enable(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        enabled = proposed["INDI_ENABLED"] is SwitchState.ON
        if self._initialising:
            self._store(vector, proposed)
        elif self._gpio_usable(vector.name) and await self._call(
                vector.name, self._backend.set_trigout_enabled(enabled)):
            await self._publish_registers()
            self._store(vector, proposed)

    async def _on_trigger_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        mode = TRIGGER_SWITCHES[_chosen(proposed)]
        if self._initialising or await self._call(
                vector.name, self._backend.set_trigger_mode(mode)):
            self._store(vector, proposed)

    async def _on_trigger_timeout(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        self._store(vector, proposed)

    # ---- the TrigOut pulse around mode changes -------------------------------------------

    @contextlib.asynccontextmanager
    async def setting_guard(self, name: str) -> AsyncIterator[None]:
        """SensorSettings wraps each backend setter in this (settings.py)."""
        if name not in MODE_CHANGES:
            yield
            return
        async with self._trigout_held_off():
            yield
        await self._publish_line_period()

    @contextlib.asynccontextmanager
    async def _trigout_held_off(self) -> AsyncIterator[None]:
        """REG142 off for the duration, back on after (if the user wants it on). During
        CONNECT it is already off, and init_done restores it."""
        hold = (self.gpio_problem is None and not self._initialising
                and self._trigout_wanted())
        if hold:
            await self._set_trigout(False)
        try:
            yield
        finally:
            if hold:
                await self._set_trigout(True)
                await self._publish_registers()

    async def _set_trigout(self, enabled: bool) -> None:
        try:
            await self._backend.set_trigout_enabled(enabled)
        except BackendError as error:  # a guard must not make the setting fail
            self._device.alert("TRIGOUT_ENABLE", f"Cannot {'restore' if enabled else 'hold off'}"
                               f" the TrigOut pulse: {error}")

    # ---- frames --------------------------------------------------------------------------

    def frame_timer(self, frame: Frame) -> FrameTiming:
        """Row 0's start of a frame, its clock and its timing cards (capture.py calls it per
        frame)."""
        start_utc, source, gps = self._start_of(frame)
        self._show(frame, start_utc, source, gps, publish_gps=True)
        return FrameTiming(start_utc, source.value, timing_cards(frame, start_utc, source, gps))

    def frame_start(self, frame: Frame) -> datetime:
        """Row 0's start of a live frame, from the clock frame_timer would use (the GPS head
        when the receiver's time is valid): the SER recorder's per-frame timestamps."""
        return self._start_of(frame)[0]

    def show_frame_times(self, frame: Frame, *, publish_gps: bool) -> None:
        """EXPOSURE_TIMING (and, with publish_gps, GPS_STATE/GPS_DATA) for this frame."""
        self._show(frame, *self._start_of(frame), publish_gps=publish_gps)

    def _show(self, frame: Frame, start_utc: datetime, source: TimeSource,
              gps: GpsHeader | None, *, publish_gps: bool) -> None:
        if publish_gps and self._gps_mode_on():
            self._publish_gps(gps)
        described = source.value
        if gps is not None:
            described += f" (GPS {gps.status.label})"
        self._device.props["EXPOSURE_TIMING"].set_values({
            "START_UTC": iso_utc(start_utc),
            "END_UTC": iso_utc(start_utc + timedelta(seconds=frame.exposure_s)),
            "SEQUENCE": str(frame.sequence),
            "TIME_SOURCE": described,
        })
        self._device.update("EXPOSURE_TIMING", PropertyState.OK)

    def _start_of(self, frame: Frame) -> tuple[datetime, TimeSource, GpsHeader | None]:
        gps = read_frame_head(frame.pixels) if self._gps_mode_on() else None
        if gps is not None and gps.time_valid:
            return gps.start.utc, TimeSource.GPS, gps
        return frame.start_utc, TimeSource.HOST, gps

    def _publish_gps(self, gps: GpsHeader | None) -> None:
        if gps is None:
            self._device.alert("GPS_STATE", "No GPS head: row 0 is too short to hold one")
            return
        self._device.props["GPS_STATE"].set_values({
            "STATUS": int(gps.status), "PPS_COUNTER": gps.pps_counter,
            "SEQUENCE": gps.sequence})
        state = PropertyState.OK if gps.locked else PropertyState.BUSY
        note = None
        if not gps.time_valid:
            note = f"GPS {gps.status.label}: frame times come from the host clock"
        self._device.update("GPS_STATE", state, note)
        self._device.props["GPS_DATA"].set_values({
            "START_UTC": iso_utc(gps.start.utc), "END_UTC": iso_utc(gps.end.utc),
            "NOW_UTC": iso_utc(gps.now.utc), "LATITUDE": f"{gps.latitude_deg:.6f}",
            "LONGITUDE": f"{gps.longitude_deg:.6f}"})
        self._device.update("GPS_DATA", state)

    # ---- helpers -------------------------------------------------------------------------

    def _trigger_mode(self) -> TriggerMode:
        return TRIGGER_SWITCHES[self._device.props["TRIGGER_MODE"].on_switches()[0]]

    def _gpio_mode(self) -> GpioMode:
        return GPIO_SWITCHES[self._device.props["GPIO_MODE"].on_switches()[0]]

    def _gps_mode_on(self) -> bool:
        return self.gpio_problem is None and self._gpio_mode() is GpioMode.GPS_BOX

    def _trigout_wanted(self) -> bool:
        return self._device.props["TRIGOUT_ENABLE"].is_on("INDI_ENABLED")

    def trigger_wait(self) -> TriggerWait | None:
        """Whether (and how long) exposures wait for a trigger: the exposure sequence asks
        when it starts."""
        timeout_s = float(self._device.props["TRIGGER_TIMEOUT"].value("TIMEOUT")) or None
        reason = None
        if self._trigger_mode() is TriggerMode.HARDWARE:
            reason = WAITING_FOR_TRIGGER
        elif self.gpio_problem is None and self._gpio_mode() is GpioMode.SYNC_SLAVE:
            reason = WAITING_FOR_MASTER
        return None if reason is None else TriggerWait(reason, timeout_s)

    def _show_gps(self, shown: bool) -> None:
        if shown:
            for name in ON_DEMAND_PROPERTIES:
                self._device.props[name].state = PropertyState.IDLE
            self._device.define(ON_DEMAND_PROPERTIES)
        else:
            self._device.delete(ON_DEMAND_PROPERTIES)

    def _gpio_usable(self, name: str) -> bool:
        if self.gpio_problem is None:
            return True
        self._device.alert(name, self.gpio_problem)
        return False

    def _store(self, vector: PropertyVector, proposed: dict[str, Value]) -> bool:
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)
        return True

    async def _call(self, name: str, call: Awaitable[object]) -> bool:
        try:
            await call
        except BackendError as error:
            self._device.alert(name, str(error))
            return False
        return True

    async def _publish_line_period(self) -> None:
        with contextlib.suppress(BackendError):
            settings = await self._camera.settings()
            self._device.props["LINE_PERIOD"].set_values({"PERIOD": settings.line_period_us})
            self._device.update("LINE_PERIOD", PropertyState.OK)

    async def _publish_registers(self) -> None:
        with contextlib.suppress(BackendError):
            values: dict[str, Value] = {
                "REG39": await self._registers.read_register(REG_GPIO),
                "REG142": await self._registers.read_register(REG_TRIGOUT_ENABLE)}
            self._device.props["GPIO_REGISTERS"].set_values(values)
            self._device.update("GPIO_REGISTERS", PropertyState.OK)

