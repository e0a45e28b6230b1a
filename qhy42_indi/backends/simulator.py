"""The simulated QHY42PRO: a CameraBackend that behaves like the camera, without one.

What it is for: the default backend. It keeps the camera's settings and limits, times
exposures as the rolling shutter does (whole line periods, then readout at the line rate or the
USB rate, whichever is slower), renders frames from the sensor model in one worker thread
(renderer.py), and runs the TEC, heater and supply model (thermal.py). `SimulatorOptions`
chooses the time scale (tests run faster than real time), the seed (reproducible noise), the
camera serial (which fixes hot pixels and the star field), the environment and the scene.

What it is not: not the sensor physics (sensor_model.py, renderer.py), not the cooler physics
(thermal.py), no live video, burst, trigger or GPS yet. Registers are plain storage: writing
REG39/REG142 changes nothing else.

Time: exposures and the thermal model run on model time, wall time multiplied by `time_scale`.
Frame start times are wall-clock UTC, taken when the exposure starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from qhy42_indi import __version__
from qhy42_indi.backends import sensor_model as sm
from qhy42_indi.backends.base import (
    PWM_MAX,
    REGISTER_ADDRESS_MAX,
    CameraBackend,
    CameraBusy,
    CameraGone,
    CaptureSettings,
    CoolerState,
    ExposureAborted,
    ExposureStart,
    Frame,
    HeaterLevel,
    InvalidSetting,
    NoExposure,
    NotOpen,
    ReadMode,
    Roi,
    SensorInfo,
    ValueRange,
    align_roi,
    channel_spans,
    check_binning,
    check_register_access,
    full_frame_roi,
)
from qhy42_indi.backends.renderer import FrameRenderer, Pixels, RenderRequest
from qhy42_indi.backends.scenes import Scene, StarFieldScene
from qhy42_indi.backends.thermal import ThermalEnvironment, ThermalModel

COOLER_TARGET_RANGE = ValueRange(-45.0, 20.0, 0.1)  # MIT GUI clamp for the QHY42PRO (ref 1.9)


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    time_scale: float = 1.0  # model seconds per wall second; > 1 runs faster than real time
    seed: int | None = None  # None: different noise every run
    camera_serial: str = "5a1c0de42"  # camera id "QHY42PRO-<serial>" fixes defects and sky
    read_mode: int = 0  # the SDK starts in mode 0 (HDR on the QHY42PRO, ref 1.4)
    ambient_c: float = 20.0
    supply_voltage_v: float = 12.0
    supply_resistance_ohm: float = 0.1
    scene: Scene = field(default_factory=StarFieldScene)


@dataclass(slots=True)
class _Exposure:
    """A started exposure until its frame is read or it is aborted."""

    start: ExposureStart
    settings: CaptureSettings
    scene: Scene
    end_model_s: float
    ready_monotonic_s: float
    start_temperature_c: float
    end_temperature_c: float | None = None  # taken before the thermal model moves past the end
    aborted: asyncio.Event = field(default_factory=asyncio.Event)


class SimulatorBackend(CameraBackend):
    """A QHY42PRO made of numbers. See the module docstring."""

    def __init__(self, options: SimulatorOptions | None = None) -> None:
        self.options = options or SimulatorOptions()
        if not self.options.time_scale > 0.0:
            raise ValueError("time_scale must be positive")
        self._camera_id = f"QHY42PRO-{self.options.camera_serial}"
        self._scene = self.options.scene
        self._epoch_monotonic_s = time.monotonic()
        self._executor: ThreadPoolExecutor | None = None
        self._renderer: FrameRenderer | None = None
        self._thermal: ThermalModel | None = None
        self._settings: CaptureSettings | None = None
        self._requested_roi = Roi(0, 0, 0, 0)
        self._exposure: _Exposure | None = None
        self._reading = False
        self._sequence = 0
        self._registers = bytearray(REGISTER_ADDRESS_MAX + 1)
        self._gone = False
        self._info = _sensor_info(self._camera_id)

    # ---- simulator-only controls

    @property
    def scene(self) -> Scene:
        return self._scene

    def set_scene(self, scene: Scene) -> None:
        """What the camera looks at from the next exposure on."""
        self._scene = scene

    def simulate_unplug(self) -> None:
        """The camera vanishes: the pending exposure ends and every call raises CameraGone."""
        self._gone = True
        if self._exposure is not None:
            self._exposure.aborted.set()

    def simulate_replug(self) -> None:
        """The camera is back: open() works again (the backend stays closed until then)."""
        self._gone = False

    def model_time_s(self, monotonic_s: float | None = None) -> float:
        """Model time now, or at a given time.monotonic() reading."""
        if monotonic_s is None:
            monotonic_s = time.monotonic()
        return (monotonic_s - self._epoch_monotonic_s) * self.options.time_scale

    # ---- lifecycle

    @property
    def is_open(self) -> bool:
        return self._settings is not None

    async def open(self) -> None:
        if self._gone:
            raise CameraGone(f"{self._camera_id} is not connected")
        if self.is_open:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qhy42-sim")
        loop = asyncio.get_running_loop()
        self._renderer = await loop.run_in_executor(
            executor, FrameRenderer, self._camera_id, self.options.seed
        )
        self._executor = executor
        self._thermal = ThermalModel(
            ThermalEnvironment(
                ambient_c=self.options.ambient_c,
                supply_voltage_v=self.options.supply_voltage_v,
                supply_resistance_ohm=self.options.supply_resistance_ohm,
            ),
            start_time_s=self.model_time_s(),
        )
        mode = self._mode(self.options.read_mode)
        self._requested_roi = full_frame_roi(mode)
        self._settings = CaptureSettings(
            read_mode=mode,
            gain=sm.DEFAULT_GAIN,
            offset=sm.DEFAULT_OFFSET,
            speed=sm.DEFAULT_SPEED,
            usb_traffic=sm.DEFAULT_USB_TRAFFIC,
            bin_x=1,
            bin_y=1,
            roi=self._requested_roi,
            bit_depth=16,
            amp_glow_suppression=False,
            line_period_us=sm.line_period_us(sm.DEFAULT_SPEED),
        )

    async def close(self) -> None:
        if self._exposure is not None:
            self._exposure.aborted.set()
            self._exposure = None
        if self._executor is not None:
            # a render in progress finishes in its thread; nobody waits for it
            self._executor.shutdown(wait=False)
        self._executor = None
        self._renderer = None
        self._thermal = None
        self._settings = None

    # ---- description

    async def sensor_info(self) -> SensorInfo:
        self._check_open()
        return self._info

    async def read_modes(self) -> tuple[ReadMode, ...]:
        self._check_open()
        return sm.READ_MODES

    async def settings(self) -> CaptureSettings:
        return self._current()

    # ---- capture settings

    async def set_read_mode(self, index: int) -> CaptureSettings:
        current = self._current_idle()
        mode = self._mode(index)
        check_binning(mode, current.bin_x, current.bin_y, self._info.bin_max)
        self._requested_roi = full_frame_roi(mode)
        roi = align_roi(self._requested_roi, mode, current.bin_x, current.bin_y)
        return self._apply(replace(current, read_mode=mode, roi=roi))

    async def set_gain(self, gain: int) -> CaptureSettings:
        self._check_range("gain", gain, self._info.gain)
        return self._apply(replace(self._current(), gain=gain))

    async def set_offset(self, offset: int) -> CaptureSettings:
        self._check_range("offset", offset, self._info.offset)
        return self._apply(replace(self._current(), offset=offset))

    async def set_speed(self, speed: int) -> CaptureSettings:
        self._check_range("speed", speed, self._info.speed)
        current = self._current()
        return self._apply(replace(current, speed=speed, line_period_us=sm.line_period_us(speed)))

    async def set_usb_traffic(self, usb_traffic: int) -> CaptureSettings:
        # MIT measured no effect on the QHY42PRO's frame timing (ref 1.8): stored only
        self._check_range("usb_traffic", usb_traffic, self._info.usb_traffic)
        return self._apply(replace(self._current(), usb_traffic=usb_traffic))

    async def set_binning(self, bin_x: int, bin_y: int) -> CaptureSettings:
        current = self._current_idle()
        check_binning(current.read_mode, bin_x, bin_y, self._info.bin_max)
        roi = align_roi(self._requested_roi, current.read_mode, bin_x, bin_y)
        return self._apply(replace(current, bin_x=bin_x, bin_y=bin_y, roi=roi))

    async def set_roi(self, roi: Roi) -> CaptureSettings:
        current = self._current_idle()
        aligned = align_roi(roi, current.read_mode, current.bin_x, current.bin_y)
        self._requested_roi = roi
        return self._apply(replace(current, roi=aligned))

    async def set_bit_depth(self, bits: int) -> CaptureSettings:
        current = self._current_idle()
        if bits not in self._info.bit_depths:
            raise InvalidSetting(f"bit depth {bits} not in {self._info.bit_depths}")
        return self._apply(replace(current, bit_depth=bits))

    async def set_amp_glow_suppression(self, enabled: bool) -> CaptureSettings:
        return self._apply(replace(self._current(), amp_glow_suppression=enabled))

    # ---- single exposure

    async def start_exposure(self, exposure_s: float) -> ExposureStart:
        settings = self._current()
        if self._exposure is not None and not self._exposure.aborted.is_set():
            raise CameraBusy("an exposure is pending: read its frame or abort it first")
        info = self._info
        if not info.exposure_min_s <= exposure_s <= info.exposure_max_s:
            raise InvalidSetting(
                f"exposure {exposure_s} s outside {info.exposure_min_s}..{info.exposure_max_s} s"
            )
        line_count, actual_s = sm.quantise_exposure(exposure_s, settings.line_period_us)
        readout = sm.readout_s(settings.roi.height, _frame_bytes(settings), settings.line_period_us)
        now_monotonic_s = time.monotonic()
        start_model_s = self.model_time_s(now_monotonic_s)
        self._sequence += 1
        start = ExposureStart(
            sequence=self._sequence,
            start_utc=datetime.now(UTC),
            requested_exposure_s=exposure_s,
            exposure_s=actual_s,
            line_period_us=settings.line_period_us,
            line_count=line_count,
            readout_s=readout,
        )
        self._exposure = _Exposure(
            start=start,
            settings=settings,
            scene=self._scene,
            end_model_s=start_model_s + actual_s,
            ready_monotonic_s=now_monotonic_s + (actual_s + readout) / self.options.time_scale,
            start_temperature_c=self._thermal_model().state_at(start_model_s).temperature_c,
        )
        return start

    async def abort_exposure(self) -> None:
        self._check_open()
        if self._exposure is not None:
            self._exposure.aborted.set()

    async def read_frame(self) -> Frame:
        self._check_open()
        exposure = self._exposure
        if exposure is None:
            raise NoExposure("no exposure was started")
        if self._reading:
            raise CameraBusy("a read_frame is already waiting for this exposure")
        self._reading = True
        try:
            try:
                await _wait_until_ready(exposure)
            except ExposureAborted:
                self._check_open()  # a camera that vanished meanwhile says so
                raise
            frame = await self._render(exposure)
            if exposure.aborted.is_set():
                raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")
            return frame
        finally:
            self._reading = False
            if self._exposure is exposure:
                self._exposure = None

    async def _render(self, exposure: _Exposure) -> Frame:
        settings = exposure.settings
        thermal = self._thermal_model()  # records the end temperature if it has passed
        end_temperature_c = exposure.end_temperature_c
        if end_temperature_c is None:
            end_temperature_c = thermal.state_at(exposure.end_model_s).temperature_c
        temperature_c = (exposure.start_temperature_c + end_temperature_c) / 2.0
        request = RenderRequest(
            read_mode=settings.read_mode,
            roi=settings.roi,
            bin_x=settings.bin_x,
            bin_y=settings.bin_y,
            bit_depth=settings.bit_depth,
            gain=settings.gain,
            offset=settings.offset,
            exposure_s=exposure.start.exposure_s,
            temperature_c=temperature_c,
            amp_glow_suppression=settings.amp_glow_suppression,
            scene=exposure.scene,
        )
        pixels = await self._in_worker(request)
        return Frame(
            pixels=pixels,
            sequence=exposure.start.sequence,
            start_utc=exposure.start.start_utc,
            exposure_s=exposure.start.exposure_s,
            read_mode=settings.read_mode,
            roi=settings.roi,
            bin_x=settings.bin_x,
            bin_y=settings.bin_y,
            bit_depth=settings.bit_depth,
            gain=settings.gain,
            offset=settings.offset,
            sensor_temperature_c=temperature_c,
            line_period_us=settings.line_period_us,
            channels=channel_spans(settings.read_mode, settings.roi, settings.bin_x),
        )

    async def _in_worker(self, request: RenderRequest) -> Pixels:
        if self._executor is None or self._renderer is None:
            raise NotOpen("the simulator was closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._renderer.render, request)

    # ---- cooling

    async def set_cooler_target(self, temperature_c: float) -> None:
        self._check_range("cooler target", temperature_c, self._info.cooler_target_c)
        self._thermal_model().set_target(self.model_time_s(), temperature_c)

    async def set_cooler_pwm(self, pwm: int) -> None:
        if not 0 <= pwm <= PWM_MAX:
            raise InvalidSetting(f"PWM {pwm} outside 0..{PWM_MAX}")
        self._thermal_model().set_manual(self.model_time_s(), pwm)

    async def cooler_off(self) -> None:
        self._thermal_model().switch_off(self.model_time_s())

    async def cooler_state(self) -> CoolerState:
        thermal = self._thermal_model()
        state = thermal.state_at(self.model_time_s())
        return CoolerState(
            mode=state.mode,
            sensor_temperature_c=state.temperature_c,
            target_temperature_c=state.target_c,
            pwm=state.pwm,
            heater=state.heater,
            ambient_temperature_c=thermal.environment.ambient_c,
            supply_voltage_v=thermal.supply_voltage_v(state),
        )

    async def set_heater(self, level: HeaterLevel) -> None:
        try:
            heater = HeaterLevel(level)
        except ValueError:
            raise InvalidSetting(f"heater level {level} not one of {list(HeaterLevel)}") from None
        self._thermal_model().set_heater(self.model_time_s(), heater)

    # ---- registers

    async def read_register(self, address: int) -> int:
        self._check_open()
        check_register_access(address)
        return self._registers[address]

    async def write_register(self, address: int, value: int) -> None:
        self._check_open()
        check_register_access(address, value)
        self._registers[address] = value

    # ---- helpers

    def _check_open(self) -> None:
        if self._gone:
            raise CameraGone(f"{self._camera_id} is not connected")
        if not self.is_open:
            raise NotOpen("the simulator is not open")

    def _current(self) -> CaptureSettings:
        self._check_open()
        assert self._settings is not None
        return self._settings

    def _current_idle(self) -> CaptureSettings:
        """The settings, if no exposure is pending (geometry may change)."""
        current = self._current()
        if self._exposure is not None and not self._exposure.aborted.is_set():
            raise CameraBusy("an exposure is pending: read its frame or abort it first")
        return current

    def _apply(self, settings: CaptureSettings) -> CaptureSettings:
        self._settings = settings
        return settings

    def _thermal_model(self) -> ThermalModel:
        """The thermal model, once the pending exposure's end temperature is recorded if the
        model is about to move past that end (every use advances it to now)."""
        self._check_open()
        assert self._thermal is not None
        exposure = self._exposure
        if (
            exposure is not None
            and exposure.end_temperature_c is None
            and exposure.end_model_s <= self.model_time_s()
        ):
            state = self._thermal.state_at(exposure.end_model_s)
            exposure.end_temperature_c = state.temperature_c
        return self._thermal

    def _mode(self, index: int) -> ReadMode:
        if not 0 <= index < len(sm.READ_MODES):
            raise InvalidSetting(f"read mode {index} outside 0..{len(sm.READ_MODES) - 1}")
        return sm.READ_MODES[index]

    def _check_range(self, name: str, value: float, limits: ValueRange) -> None:
        self._check_open()
        if not limits.contains(value):
            raise InvalidSetting(f"{name} {value} outside {limits.min}..{limits.max}")


async def _wait_until_ready(exposure: _Exposure) -> None:
    """Sleep until the frame would be read out, waking early (and raising) on abort."""
    remaining_s = exposure.ready_monotonic_s - time.monotonic()
    if remaining_s > 0.0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exposure.aborted.wait(), timeout=remaining_s)
    if exposure.aborted.is_set():
        raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")


def _frame_bytes(settings: CaptureSettings) -> int:
    roi = settings.roi
    pixels = (roi.width // settings.bin_x) * (roi.height // settings.bin_y)
    return pixels * settings.bit_depth // 8


def _sensor_info(camera_id: str) -> SensorInfo:
    return SensorInfo(
        model="QHY42PRO",
        camera_id=camera_id,
        sensor="Gpixel GSENSE400 BSI",
        firmware_version="simulated",
        # the FPGA builds the datasheet requires for the advanced TrigOut registers
        fpga_versions=("FPGA_V20191118", "MAX10_V20191120"),
        sdk_version=f"qhy42-indi simulator {__version__}",
        width=sm.SENSOR_WIDTH_PX,
        height=sm.SENSOR_HEIGHT_PX,
        pixel_width_um=sm.PIXEL_SIZE_UM,
        pixel_height_um=sm.PIXEL_SIZE_UM,
        exposure_min_s=sm.EXPOSURE_MIN_S,
        exposure_max_s=sm.EXPOSURE_MAX_S,
        gain=ValueRange(sm.GAIN_MIN, sm.GAIN_MAX, 1),
        offset=ValueRange(sm.OFFSET_MIN, sm.OFFSET_MAX, 1),
        speed=ValueRange(0, len(sm.LINE_PERIOD_US_BY_SPEED) - 1, 1),
        usb_traffic=ValueRange(sm.USB_TRAFFIC_MIN, sm.USB_TRAFFIC_MAX, 1),
        bin_max=sm.BIN_MAX,
        asymmetric_binning=True,
        bit_depths=(8, 16),
        adc_bits=sm.ADC_BITS,
        cooler_target_c=COOLER_TARGET_RANGE,
        has_cooler=True,
        has_manual_pwm=True,
        has_heater=True,
        has_amp_glow_control=True,
        is_color=False,
    )
