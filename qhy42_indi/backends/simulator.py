"""The simulated QHY42PRO: a CameraBackend that behaves like the camera, without one.

What it is for: the default backend. It keeps the camera's settings and limits, times
exposures as the rolling shutter does (whole line periods, then readout at the line rate or the
USB rate, whichever is slower), renders frames from the sensor model in one worker thread
(renderer.py), and runs the TEC, heater and supply model (thermal.py). `SimulatorOptions`
chooses the time scale (tests run faster than real time), the seed (reproducible noise), the
camera serial (which fixes hot pixels and the star field), the environment and the scene.

What it is not: not the sensor physics (sensor_model.py, renderer.py), not the cooler physics
(thermal.py), not the live-mode rules (live.py: frame cadence, numbering, burst, IDLE),
not the GPIO, trigger, GPS-BOX and sync models (sim_timing.py). Registers are stored;
REG39/REG142 drive the simulated GPIO block as they drive the camera's FPGA.

Time: exposures and the thermal model run on model time, wall time multiplied by `time_scale`.
Frame start times are host-clock UTC at the moment the exposure starts (SimClock.host_utc);
the GPS head and the event log carry the simulated world's UTC (SimClock.true_utc).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from qhy42_indi import __version__
from qhy42_indi.backends import sensor_model as sm
from qhy42_indi.backends.base import (
    BURST_PATCH_MAX,
    PWM_MAX,
    REG_GPIO,
    REG_TRIGOUT_ENABLE,
    REGISTER_ADDRESS_MAX,
    ArmedExposure,
    CameraBackend,
    CameraBusy,
    CameraGone,
    CaptureSettings,
    CoolerState,
    ExposureAborted,
    ExposureStart,
    FirmwareTooOld,
    Frame,
    GpioConfig,
    GpioMode,
    HeaterLevel,
    InvalidSetting,
    LiveFrame,
    LiveStart,
    LiveState,
    NoExposure,
    NotLive,
    NotOpen,
    ReadMode,
    Roi,
    SensorInfo,
    SimulatorControls,
    SmaOutput,
    TriggerMode,
    TriggerSource,
    TriggerTimeout,
    ValueRange,
    align_roi,
    channel_spans,
    check_binning,
    check_burst_range,
    check_register_access,
    frame_head_counter,
    full_frame_roi,
    gpio_firmware_problem,
)
from qhy42_indi.backends.live import LiveTimeline, SimulatedLive, burn_osd, stamp_frame_head
from qhy42_indi.backends.renderer import FrameRenderer, Pixels, RenderRequest
from qhy42_indi.backends.scenes import DarkScene, FlatScene, Scene, StarFieldScene
from qhy42_indi.backends.sim_timing import (
    DEFAULT_GPS_LOCK_AFTER_S,
    CameraSync,
    Event,
    GpioBlock,
    SimClock,
)
from qhy42_indi.backends.thermal import ThermalEnvironment, ThermalModel
from qhy42_indi.tasks import cancel_and_wait
from qhy42_indi.thread_names import named_executor

COOLER_TARGET_RANGE = ValueRange(-45.0, 20.0, 0.1)  # MIT GUI clamp for the QHY42PRO (ref 1.9)
# EZCAP waits this long between SetQHYCCDBurstIDLE and the release (ref 1.10); camera time.
BURST_SETTLE_S = 0.3


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
    # Frames ready the moment the exposure ends: no rolling readout or USB time. The camera
    # is not like that; indi_simulator_ccd is, so benchmarks against it can compare paths.
    instant_readout: bool = False
    # The FPGA builds (older than the datasheet's: no GPIO, TrigOut or GPS-BOX), the
    # GPS-BOX's time to lock (camera seconds), and the sync cable and clock shared with the
    # other simulated cameras of the daemon (None: a cable of its own).
    fpga_versions: tuple[str, ...] = ("FPGA_V20191118", "MAX10_V20191120")
    gps_lock_after_s: float = DEFAULT_GPS_LOCK_AFTER_S
    sync: CameraSync | None = field(default=None, compare=False)


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


@dataclass(slots=True)
class _Armed:
    """An armed exposure until its trigger started it, it timed out or it was aborted."""

    armed: ArmedExposure
    sources: tuple[TriggerSource, ...]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    start: ExposureStart | None = None
    aborted: bool = False


class SimulatorBackend(CameraBackend, SimulatorControls):
    """A QHY42PRO made of numbers. See the module docstring."""

    def __init__(self, options: SimulatorOptions | None = None) -> None:
        self.options = options or SimulatorOptions()
        if not self.options.time_scale > 0.0:
            raise ValueError("time_scale must be positive")
        self._camera_id = f"QHY42PRO-{self.options.camera_serial}"
        self._scene = self.options.scene
        self._sync = self.options.sync or CameraSync(self.options.time_scale)
        if self._sync.clock.time_scale != self.options.time_scale:
            raise ValueError("a shared CameraSync must run at the simulator's time_scale")
        self._clock = self._sync.clock
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
        self._fpga_versions = self.options.fpga_versions
        self._info = _sensor_info(self._camera_id, self._fpga_versions)
        self._live = SimulatedLive(self.model_time_s, self.options.time_scale)
        # The GPIO block (REG39/REG142, waveforms, GPS-BOX) and the trigger
        self._gpio = GpioBlock(self._camera_id, self._clock, self._registers,
                               self.options.gps_lock_after_s)
        self._trigger_mode = TriggerMode.SOFTWARE
        self._armed: _Armed | None = None

    # ---- simulator-only controls

    @property
    def scene(self) -> Scene:
        return self._scene

    def set_scene(self, scene: Scene) -> None:
        """What the camera looks at from the next exposure on."""
        self._scene = scene

    def choose_scene(self, kind: str, flat_level_e_per_s: float) -> None:
        scene: Scene = StarFieldScene()
        if kind == "dark":
            scene = DarkScene()
        elif kind == "flat":
            scene = FlatScene(level_e_per_s=flat_level_e_per_s)
        self.set_scene(scene)

    def simulate_unplug(self) -> None:
        """The camera vanishes: the pending exposure ends and every call raises CameraGone."""
        self._gone = True
        self._disarm()
        if self._exposure is not None:
            self._exposure.aborted.set()
        self._end_live()

    def simulate_replug(self) -> None:
        """The camera is back: open() works again (the backend stays closed until then)."""
        self._gone = False

    def model_time_s(self, monotonic_s: float | None = None) -> float:
        """Model time now, or at a given time.monotonic() reading."""
        return self._clock.model_s(monotonic_s)

    # ---- lifecycle

    @property
    def is_open(self) -> bool:
        return self._settings is not None

    async def open(self) -> None:
        if self._gone:
            raise CameraGone(f"{self._camera_id} is not connected")
        if self.is_open:
            return
        executor = named_executor("qhy42-sim", 1)
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
        self._open_timing()

    async def close(self) -> None:
        self._close_timing()
        if self._exposure is not None:
            self._exposure.aborted.set()
            self._exposure = None
        self._end_live()
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
        settings = self._current_idle()
        self._check_exposure_s(exposure_s)
        if self._trigger_sources():
            raise InvalidSetting("exposures wait for a trigger (hardware trigger mode or sync "
                                 "slave): arm_exposure, then wait_for_trigger")
        return self._begin_exposure(exposure_s, settings, self.model_time_s(),
                                    TriggerSource.SOFTWARE)

    async def abort_exposure(self) -> None:
        self._check_open()
        self._disarm()
        exposure = self._exposure
        if exposure is not None:
            if not exposure.aborted.is_set():
                self._gpio.aborted(exposure.start, exposure.end_model_s - exposure.start.exposure_s,
                                   exposure.settings.roi.height)
            exposure.aborted.set()

    async def read_frame(self) -> Frame:
        self._check_open()
        exposure = self._exposure
        if exposure is None:
            raise NoExposure("no exposure was started")
        if self._reading:
            raise CameraBusy("a read_frame is already waiting for this exposure")
        self._reading = True
        # The pixels are computed while the sensor integrates (the model knows the scene and
        # the temperature ahead), and the frame is handed over at its modelled readout time.
        request, temperature_c = self._render_request(exposure)
        pixels_job = asyncio.ensure_future(self._in_worker(request))
        try:
            try:
                await _wait_until_ready(exposure)
            except ExposureAborted:
                self._check_open()  # a camera that vanished meanwhile says so
                raise
            frame = self._frame(exposure, await pixels_job, temperature_c)
            if exposure.aborted.is_set():
                raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")
            return frame
        finally:
            if not pixels_job.done():
                await cancel_and_wait(pixels_job)
            self._reading = False
            if self._exposure is exposure:
                self._exposure = None

    async def _render(self, exposure: _Exposure) -> Frame:
        request, temperature_c = self._render_request(exposure)
        return self._frame(exposure, await self._in_worker(request), temperature_c)

    def _render_request(self, exposure: _Exposure) -> tuple[RenderRequest, float]:
        """What to render for an exposure, and its mean sensor temperature."""
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
        return request, temperature_c

    def _frame(self, exposure: _Exposure, pixels: Pixels, temperature_c: float) -> Frame:
        settings = exposure.settings
        # The frame's waveform edges, and the GPS head in GPS-BOX mode
        self._gpio.frame_read(exposure.start, exposure.end_model_s - exposure.start.exposure_s,
                              settings.roi.height, pixels)
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
            trigger=exposure.start.trigger,
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
        self._gpio.register_written(address, value)  # the FPGA acts on REG39/REG142

    # ---- triggers, GPIO and exposure timing (the signals: sim_timing.py)

    async def gpio_config(self) -> GpioConfig:
        self._check_open()
        return self._gpio.config

    async def set_gpio_mode(self, mode: GpioMode) -> GpioConfig:
        return await self._write_gpio_bits(REG_GPIO, 0x0F, 0, GpioMode(mode))

    async def set_sma_output(self, output: SmaOutput) -> GpioConfig:
        return await self._write_gpio_bits(REG_GPIO, 0xC0, 6, SmaOutput(output))

    async def set_trigout_enabled(self, enabled: bool) -> GpioConfig:
        return await self._write_gpio_bits(REG_TRIGOUT_ENABLE, 0x01, 0, int(enabled))

    async def set_trigger_mode(self, mode: TriggerMode) -> None:
        self._current_idle()
        self._trigger_mode = TriggerMode(mode)

    async def arm_exposure(self, exposure_s: float) -> ArmedExposure:
        settings = self._current_idle()
        self._check_exposure_s(exposure_s)
        sources = self._trigger_sources()
        if not sources:
            raise InvalidSetting("nothing would trigger it: choose hardware trigger mode or "
                                 "GPIO sync slave, or use start_exposure")
        line_count, actual_s = sm.quantise_exposure(exposure_s, settings.line_period_us)
        armed = ArmedExposure(exposure_s, actual_s, settings.line_period_us, line_count,
                              sources[0])
        self._armed = _Armed(armed, sources)
        return armed

    async def wait_for_trigger(self, timeout_s: float | None) -> ExposureStart:
        self._check_open()
        armed = self._armed
        if armed is None:
            raise NoExposure("no exposure is armed")
        if armed.start is None and not armed.aborted:
            limit_s = None if timeout_s is None else timeout_s / self.options.time_scale
            try:
                async with asyncio.timeout(limit_s):
                    await armed.done.wait()
            except TimeoutError:
                if armed.start is None and not armed.aborted:
                    self._armed = None
                    raise TriggerTimeout(
                        f"no trigger within {timeout_s:g} s: the exposure was disarmed"
                    ) from None
        if self._armed is armed:
            self._armed = None
        if armed.aborted or armed.start is None:
            self._check_open()  # a camera that vanished meanwhile says so
            raise ExposureAborted("the armed exposure was aborted")
        return armed.start

    # simulator-only: the outside world and the engineer's view

    def fire_trigger_in(self) -> bool:
        """A falling edge on the SMA Trig In, now. True if it started the armed exposure;
        an edge that finds nothing armed is logged and ignored, as the camera ignores it."""
        self._check_open()
        model_s = self.model_time_s()
        armed = self._armed
        accepted = (armed is not None and armed.start is None
                    and TriggerSource.TRIG_IN in armed.sources)
        self._gpio.trigger_in(model_s, accepted)
        if accepted:
            self._triggered(model_s, TriggerSource.TRIG_IN)
        return accepted

    def events(self) -> tuple[Event, ...]:
        """The GPIO block's event log (sim_timing.py), oldest first."""
        return tuple(self._gpio.log)

    def event_log(self) -> str:
        return "\n".join(event.to_text() for event in self._gpio.log)

    def clear_events(self) -> None:
        self._gpio.log.clear()

    @property
    def clock(self) -> SimClock:
        """Camera time and its UTC (shared with the other cameras on the same sync cable)."""
        return self._clock

    @property
    def fpga_versions(self) -> tuple[str, ...]:
        return self._fpga_versions

    def set_fpga_versions(self, versions: tuple[str, ...]) -> None:
        """Reflash the FPGAs: the camera runs the new builds from the next open()."""
        self._fpga_versions = tuple(versions)

    # helpers

    def _open_timing(self) -> None:
        self._info = _sensor_info(self._camera_id, self._fpga_versions)
        self._gpio.power_on(gpio_firmware_problem(self._fpga_versions) is None)
        self._trigger_mode = TriggerMode.SOFTWARE
        self._armed = None
        self._sync.attach(self._on_sync_edge)

    def _close_timing(self) -> None:
        self._disarm()
        self._sync.detach(self._on_sync_edge)

    async def _write_gpio_bits(self, address: int, mask: int, shift: int,
                               value: int) -> GpioConfig:
        self._check_open()
        problem = gpio_firmware_problem(self._info.fpga_versions)
        if problem is not None:
            raise FirmwareTooOld(problem)
        register = (self._registers[address] & ~mask) | ((int(value) << shift) & mask)
        await self.write_register(address, register)
        return self._gpio.config

    def _trigger_sources(self) -> tuple[TriggerSource, ...]:
        """What starts an exposure now, if not the host: Trig In, the sync master, or both."""
        sources = []
        if self._trigger_mode is TriggerMode.HARDWARE:
            sources.append(TriggerSource.TRIG_IN)
        if self._gpio.mode is GpioMode.SYNC_SLAVE:
            sources.append(TriggerSource.SYNC)
        return tuple(sources)

    def _check_exposure_s(self, exposure_s: float) -> None:
        info = self._info
        if not info.exposure_min_s <= exposure_s <= info.exposure_max_s:
            raise InvalidSetting(
                f"exposure {exposure_s} s outside {info.exposure_min_s}..{info.exposure_max_s} s"
            )

    def _begin_exposure(self, requested_s: float, settings: CaptureSettings,
                        start_model_s: float, trigger: TriggerSource) -> ExposureStart:
        """Row 0 begins to integrate at start_model_s (camera time)."""
        line_count, actual_s = sm.quantise_exposure(requested_s, settings.line_period_us)
        readout = sm.readout_s(settings.roi.height, _frame_bytes(settings), settings.line_period_us)
        if self.options.instant_readout:
            readout = 0.0
        self._sequence += 1
        start = ExposureStart(
            sequence=self._sequence,
            start_utc=self._clock.host_utc(start_model_s),
            requested_exposure_s=requested_s,
            exposure_s=actual_s,
            line_period_us=settings.line_period_us,
            line_count=line_count,
            readout_s=readout,
            trigger=trigger,
            clock_rate=self.options.time_scale,
        )
        # a triggered start may lie up to a line period ahead; the TEC does not move in that
        temperature_s = min(start_model_s, self.model_time_s())
        self._exposure = _Exposure(
            start=start,
            settings=settings,
            scene=self._scene,
            end_model_s=start_model_s + actual_s,
            ready_monotonic_s=self._clock.monotonic_at(start_model_s + actual_s + readout),
            start_temperature_c=self._thermal_model().state_at(temperature_s).temperature_c,
        )
        if self._gpio.is_sync_master():
            self._gpio.sync_out(start_model_s, start.sequence)
            self._sync.master_started(self._on_sync_edge, start_model_s)
        return start

    def _triggered(self, edge_model_s: float, source: TriggerSource) -> None:
        """The armed exposure's trigger came: it starts at the next line-clock edge."""
        armed = self._armed
        assert armed is not None
        settings = self._current()
        start_s = self._gpio.next_line_start(edge_model_s, settings.line_period_us)
        armed.start = self._begin_exposure(armed.armed.requested_exposure_s, settings, start_s,
                                           source)
        armed.done.set()

    def _on_sync_edge(self, model_s: float) -> None:
        """The sync master's exposure started (CameraSync calls every attached camera)."""
        if self._gone or not self.is_open or self._gpio.mode is not GpioMode.SYNC_SLAVE:
            return
        armed = self._armed
        accepted = (armed is not None and armed.start is None
                    and TriggerSource.SYNC in armed.sources)
        self._gpio.sync_in(model_s, accepted)
        if accepted:
            self._triggered(model_s, TriggerSource.SYNC)

    def _disarm(self) -> None:
        armed, self._armed = self._armed, None
        if armed is not None and armed.start is None:
            armed.aborted = True
            armed.done.set()

    def _note_mode_change(self, previous: CaptureSettings, current: CaptureSettings) -> None:
        changed = [name for name in ("read_mode", "speed", "bin_x", "bin_y", "roi", "bit_depth")
                   if getattr(previous, name) != getattr(current, name)]
        if changed:
            self._gpio.mode_changed("+".join(changed))

    # ---- live video and burst (the camera's rules are modelled in live.py)

    async def begin_live(self, exposure_s: float) -> LiveStart:
        self._current_idle()  # no single exposure pending, not live already
        start, readout_s = self._live_timing(exposure_s)
        self._live.timeline.begin(self.model_time_s(), start.exposure_s, start.frame_interval_s,
                                  readout_s, start.line_period_us * 1e-6)
        self._live.changed()
        return start

    async def set_live_exposure(self, exposure_s: float) -> LiveStart:
        timeline = self._live_timeline()
        start, readout_s = self._live_timing(exposure_s)
        timeline.retime(self.model_time_s(), start.exposure_s, start.frame_interval_s, readout_s)
        self._live.changed()
        return start

    async def stop_live(self) -> None:
        self._check_open()
        self._end_live()

    async def read_live_frame(self) -> LiveFrame:
        self._check_open()
        try:
            readout = await self._live.next_readout()
        except NotLive:
            self._check_open()  # a camera that vanished meanwhile says so
            raise
        settings = self._current()
        timeline = self._live.timeline
        now_s = self.model_time_s()
        start_s = readout.start_s(timeline.readout_s)
        ago_s = (now_s - start_s) / self.options.time_scale
        temperature_c = self._thermal_model().state_at(now_s).temperature_c
        period_s = settings.line_period_us * 1e-6
        exposure = _Exposure(
            start=ExposureStart(
                sequence=readout.index,
                start_utc=datetime.now(UTC) - timedelta(seconds=ago_s),
                requested_exposure_s=readout.exposure_s,
                exposure_s=readout.exposure_s,
                line_period_us=settings.line_period_us,
                line_count=max(1, round(readout.exposure_s / period_s)),
                readout_s=timeline.readout_s,
            ),
            settings=settings,
            scene=self._scene,
            end_model_s=start_s + readout.exposure_s,
            ready_monotonic_s=time.monotonic(),
            start_temperature_c=temperature_c,
            end_temperature_c=temperature_c,
        )
        frame = await self._render(exposure)
        if timeline.osd:
            burn_osd(frame.pixels, str(readout.counter))
        stamp_frame_head(frame.pixels, readout.counter)
        counter = frame_head_counter(frame.pixels)
        return LiveFrame(frame, readout.counter if counter is None else counter, readout.burst)

    async def live_state(self) -> LiveState:
        self._check_open()
        timeline = self._live.timeline
        return LiveState(
            live=timeline.live,
            exposure_s=timeline.exposure_s if timeline.live else None,
            burst_enabled=timeline.burst_enabled,
            idle=timeline.idle,
            burst_start=timeline.burst_start,
            burst_end=timeline.burst_end,
            patch_number=timeline.patch_number,
            anti_rbi=timeline.anti_rbi,
            osd=timeline.osd,
            frame_counter=timeline.frame_counter(self.model_time_s()),
        )

    async def enable_burst(self, enabled: bool) -> None:
        self._live_timeline().set_burst(self.model_time_s(), enabled)
        self._live.changed()

    async def set_burst_range(self, start: int, end: int) -> None:
        self._check_open()
        check_burst_range(start, end)
        self._live.timeline.set_burst_range(self.model_time_s(), start, end)
        self._live.changed()

    async def burst_idle(self) -> None:
        self._live_timeline().enter_idle(self.model_time_s())
        self._live.changed()

    async def burst_release(self) -> None:
        self._live_timeline().release(self.model_time_s())
        self._live.changed()

    async def capture_burst(self) -> range:
        timeline = self._live_timeline()
        if not timeline.burst_enabled:
            raise CameraBusy("burst mode is off: enable it first")
        await self.burst_idle()
        await asyncio.sleep(BURST_SETTLE_S / self.options.time_scale)
        await self.burst_release()
        return range(timeline.burst_start + 1, timeline.burst_end)

    async def set_burst_patch_number(self, patch_number: int) -> None:
        self._check_open()
        if not 0 <= patch_number <= BURST_PATCH_MAX:
            raise InvalidSetting(f"patch number {patch_number} outside 0..{BURST_PATCH_MAX}")
        self._live.timeline.patch_number = patch_number  # padding only: no effect on frames

    async def reset_frame_counter(self) -> None:
        self._live_timeline().reset_counter(self.model_time_s())
        self._live.changed()

    async def set_live_anti_rbi(self, enabled: bool) -> None:
        self._check_open()
        self._live.timeline.set_anti_rbi(self.model_time_s(), enabled)

    async def set_image_osd(self, enabled: bool) -> None:
        self._check_open()
        self._live.timeline.osd = enabled

    def _live_timeline(self) -> LiveTimeline:
        self._check_open()
        if not self._live.timeline.live:
            raise NotLive("live mode is not running: start it first")
        return self._live.timeline

    def _live_timing(self, exposure_s: float) -> tuple[LiveStart, float]:
        """The live cadence for an exposure: (LiveStart, readout time), camera seconds."""
        settings = self._current()
        info = self._info
        if not info.exposure_min_s <= exposure_s <= info.exposure_max_s:
            raise InvalidSetting(
                f"exposure {exposure_s} s outside {info.exposure_min_s}..{info.exposure_max_s} s"
            )
        _, actual_s = sm.quantise_exposure(exposure_s, settings.line_period_us)
        readout = sm.readout_s(settings.roi.height, _frame_bytes(settings), settings.line_period_us)
        return LiveStart(actual_s, max(actual_s, readout), settings.line_period_us), readout

    def _end_live(self) -> None:
        self._live.timeline.stop()
        self._live.changed()

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
        """The settings, if no exposure is pending and live mode is off (geometry may change)."""
        current = self._current()
        if self._live.timeline.live:
            raise CameraBusy("live mode is running: stop the video stream first")
        if self._exposure is not None and not self._exposure.aborted.is_set():
            raise CameraBusy("an exposure is pending: read its frame or abort it first")
        if self._armed is not None and self._armed.start is None:
            raise CameraBusy("an exposure is armed, waiting for its trigger: abort it first")
        return current

    def _apply(self, settings: CaptureSettings) -> CaptureSettings:
        previous, self._settings = self._settings, settings
        if previous is not None:
            self._note_mode_change(previous, settings)
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


# The loop's timers fire up to a millisecond late (epoll counts whole milliseconds); the last
# stretch before a frame is due is slept in a worker thread, which wakes on time.
PRECISE_WAKE_S = 0.002


async def _wait_until_ready(exposure: _Exposure) -> None:
    """Sleep until the frame would be read out, waking early (and raising) on abort."""
    remaining_s = exposure.ready_monotonic_s - time.monotonic()
    if remaining_s > PRECISE_WAKE_S:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exposure.aborted.wait(), timeout=remaining_s - PRECISE_WAKE_S)
    remaining_s = exposure.ready_monotonic_s - time.monotonic()
    if remaining_s > 0.0 and not exposure.aborted.is_set():
        await asyncio.to_thread(time.sleep, remaining_s)
    if exposure.aborted.is_set():
        raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")


def _frame_bytes(settings: CaptureSettings) -> int:
    roi = settings.roi
    pixels = (roi.width // settings.bin_x) * (roi.height // settings.bin_y)
    return pixels * settings.bit_depth // 8


def _sensor_info(camera_id: str, fpga_versions: tuple[str, ...]) -> SensorInfo:
    return SensorInfo(
        model="QHY42PRO",
        camera_id=camera_id,
        sensor="Gpixel GSENSE400 BSI",
        firmware_version="simulated",
        fpga_versions=fpga_versions,  # SimulatorOptions.fpga_versions, set_fpga_versions
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
