"""The real camera: a CameraBackend that drives a QHY42PRO through libqhyccd (ctypes).

What it is for: `--backend sdk` (and `auto` when a camera answers). Every SDK call runs on the
one SDK thread (sdk_thread.py) as part of a job, a plain method named `_sdk_*` that may make
several calls in a row (the open and re-init sequences are one job each). The event loop only
waits: for the host clock while an exposure integrates, and for jobs.

The SDK's rules, as reference/qhy-sdk-and-drivers.md section 1 gives them:
- Open: Scan, GetQHYCCDId, OpenQHYCCD, read modes, SetQHYCCDReadMode, SetQHYCCDStreamMode,
  InitQHYCCD, then bin, resolution, bits and parameters (1.3). A read-mode, stream-mode or
  bit-depth change repeats ReadMode, StreamMode, InitQHYCCD and re-applies everything, since
  init resets it. Binning and ROI are set as INDI and NINA set them: SetQHYCCDBinMode, then
  SetQHYCCDResolution in binned pixels from the effective area's origin.
- Return codes: 0 is success; QHYCCD_READ_DIRECTLY (ExpQHYCCDSingleFrame) is success;
  QHYCCD_DELAY_200MS (SetQHYCCDBinMode) is success after a 200 ms pause on the SDK thread, so
  no call reaches the camera sooner; anything else is failure (GetQHYCCDParam: the error
  value as a double). A failure is followed by a presence check (Scan + GetQHYCCDId): if the
  camera's id is gone the call raises CameraGone, otherwise BackendError naming the call.
- CONTROL_IDs 0..80 are fixed (sdk_bindings.ControlId); the ones above 80 differ between SDK
  builds and are found by name at open: GetQHYCCDControlName over ids 81..255. Without that
  function (older SDKs) they are treated as absent: today that is only CONTROL_HEATINGBOARD,
  so the heater reports unavailable rather than guessing a number.
- Single frames: ExpQHYCCDSingleFrame returns at once; the loop waits on the host clock
  (abortable) until the exposure ends, then GetQHYCCDSingleFrame blocks the SDK thread only
  for the readout, bounded by SetQHYCCDSingleFrameTimeOut. Abort is
  CancelQHYCCDExposingAndReadout. The TEC is not touched from READOUT_QUIET_S before the end
  of an exposure until its frame is read (1.9): cooler_state returns the last reading then.
- Cooling: the host keeps the mode (the SDK has no getter); in AUTO every reading first
  renews the target with ControlQHYCCDTemp (the SDK wants it about every second, and the
  QHY42PRO reports a fresh CURPWM only right after it).
- A call that never returns (sdk_thread.py): the job's caller, and every later caller until
  the call returns, gets CameraNotAnswering (a CameraGone). Each job has a kind (the job, or
  the function or control it sets); at most one of a kind waits behind a stuck call. Reads
  (cooler reading, humidity, a register, a live poll) are shared by whoever asks meanwhile;
  other kinds are refused (SdkBusy) while one of theirs waits. open() waits for a stuck call
  to return instead of queueing behind it; close() leaves a close job behind it, which
  closes whatever handle exists once the call returns (even one a stuck open produced).

What it is not: no INDI, and not the USB bus (usb.py) or reconnection policy (hotplug.py).
Hardware-triggered exposures (arm_exposure, wait_for_trigger) raise SdkNotSupported: the SDK
signals no trigger start to the host. What was verified only against the stub library
(tests/sdk_stub) is listed in the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from qhy42_indi.backends import sensor_model as sm
from qhy42_indi.backends.base import (
    BURST_PATCH_MAX,
    PWM_MAX,
    REG_GPIO,
    REG_TRIGOUT_ENABLE,
    REGISTER_ADDRESS_MAX,
    ArmedExposure,
    BackendError,
    CameraBackend,
    CameraBusy,
    CameraGone,
    CaptureSettings,
    Channel,
    CoolerMode,
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
    SmaOutput,
    TriggerMode,
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
from qhy42_indi.backends.sdk_bindings import (
    CAMERA_ID_LENGTH,
    CONTROL_NAME_LENGTH,
    PARAM_ERROR,
    QHYCCD_DELAY_200MS,
    QHYCCD_ERROR,
    QHYCCD_READ_DIRECTLY,
    QHYCCD_SUCCESS,
    READ_MODE_NAME_LENGTH,
    ControlId,
    QhyLibrary,
    load_library,
)
from qhy42_indi.backends.sdk_thread import DEFAULT_TIMEOUT_S, CameraNotAnswering, SdkThread

log = logging.getLogger(__name__)

MODEL = "QHY42PRO"
SENSOR_NAME = "Gpixel GSENSE400 BSI"
HEATER_CONTROL = "CONTROL_HEATINGBOARD"
NAMED_CONTROL_IDS = range(81, 256)
COOLER_TARGET_FALLBACK = ValueRange(-45.0, 20.0, 0.1)  # MIT's QHY42PRO clamp (ref 1.9)
TEMPERATURE_PLAUSIBLE_C = 100.0  # INDI: a reading above this is invalid
READOUT_QUIET_S = 2.0
FRAME_TIMEOUT_MARGIN_S = 5.0
OPEN_TIMEOUT_S = 120.0  # InitQHYCCD alone takes about 2 s on a QHY42PRO
CLOSE_TIMEOUT_S = 10.0
ANSWER_WAIT_S = 300.0  # how long an open waits for a stuck call to return
LIVE_POLL_S = 0.005  # GetQHYCCDLiveFrame does not block (ref 1.8): INDI polls every 1 ms
LIVE_SILENCE_CHECK_S = 1.0  # no live frame for this long: is the camera still there?
BURST_SETTLE_S = 0.3  # EZCAP's pause between SetQHYCCDBurstIDLE and the release (ref 1.10)
DELAY_200MS_S = 0.2
FPGA_NAMES = ("FPGA", "MAX10")  # GetQHYCCDFPGAVersion index 0 and 1
VENDOR_READ_FPGA0 = 0xBC  # QHYCCDVendRequestRead: read an FPGA#0 register (ref 1.13)
STREAM_SINGLE, STREAM_LIVE = 0, 1
MAX_SCANNED_CAMERAS = 16


class SdkNotSupported(InvalidSetting):
    """This libqhyccd build (or this backend) cannot do what was asked; nothing changed."""


class SdkCallFailed(BackendError):
    """An SDK function returned failure while the camera is still present."""


# ---- the SDK, process-wide -----------------------------------------------------------------


class SdkRuntime:
    """libqhyccd loaded and initialised, and the one thread that calls it.

    One per process: InitQHYCCDResource and ReleaseQHYCCDResource act on every camera of the
    process (ref 1.2). Auto-detection is switched off before init, as INDIGO learned to.
    """

    def __init__(self, library: QhyLibrary, thread: SdkThread | None = None) -> None:
        self.library = library
        self.thread = thread or SdkThread(activity=lambda: library.calling)
        self._started = False
        self.sdk_version = ""

    @classmethod
    def load(cls, path: str | None = None) -> SdkRuntime:
        """Load libqhyccd (SdkLibraryMissing says what to install); not started yet."""
        return cls(load_library(path))

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Start the SDK thread and initialise the SDK on it (blocks: not on the loop)."""
        if self._started:
            return
        self.thread.start()
        self.thread.run_sync(self._sdk_start)
        self._started = True

    async def start_async(self) -> None:
        """The same, for the event loop: InitQHYCCDResource runs while the loop goes on."""
        if self._started:
            return
        self.thread.start()
        await self.thread.run(self._sdk_start)
        self._started = True

    def stop(self) -> None:
        """Release the SDK (every camera of the process) and end the thread."""
        if self._started:
            self._started = False
            try:
                self.thread.run_sync(self._sdk_stop, timeout_s=10.0)
            except BackendError as error:
                log.warning("releasing libqhyccd: %s", error)
        self.thread.stop()

    def camera_ids(self) -> list[str]:
        """Ids of the QHY42PROs the SDK sees now (blocks: start-up only)."""
        return self.thread.run_sync(self.sdk_qhy42_ids)

    async def camera_ids_async(self) -> list[str]:
        return await self.thread.run(self.sdk_qhy42_ids, kind="scan", share=True)

    # jobs (SDK thread)

    def _sdk_start(self) -> None:
        lib = self.library
        if lib.has("SetQHYCCDAutoDetectCamera"):
            lib("SetQHYCCDAutoDetectCamera", False)
        if lib.has("SetQHYCCDLogLevel"):
            lib("SetQHYCCDLogLevel", 2)
        if lib.has("EnableQHYCCDMessage"):
            lib("EnableQHYCCDMessage", False)
        if lib.has("EnableQHYCCDLogFile"):
            lib("EnableQHYCCDLogFile", False)
        code = lib("InitQHYCCDResource")
        if code != QHYCCD_SUCCESS:
            raise BackendError(f"InitQHYCCDResource failed (code {code:#x})")
        year, month, day, sub = (ctypes.c_uint32() for _ in range(4))
        if lib("GetQHYCCDSDKVersion", ctypes.byref(year), ctypes.byref(month),
               ctypes.byref(day), ctypes.byref(sub)) == QHYCCD_SUCCESS:
            # two-digit year, as MIT formats it
            self.sdk_version = f"V20{year.value:02d}{month.value:02d}{day.value:02d}_{sub.value}"

    def _sdk_stop(self) -> None:
        self.library("ReleaseQHYCCDResource")

    def sdk_scan(self) -> list[str]:
        """Every camera id the SDK sees (SDK thread only)."""
        lib = self.library
        count = lib("ScanQHYCCD")
        if count == QHYCCD_ERROR:
            return []
        ids = []
        for index in range(min(count, MAX_SCANNED_CAMERAS)):
            buffer = ctypes.create_string_buffer(CAMERA_ID_LENGTH)
            if lib("GetQHYCCDId", index, buffer) == QHYCCD_SUCCESS and buffer.value:
                ids.append(buffer.value.decode("ascii", "replace"))
        return ids

    def sdk_model(self, camera_id: str) -> str:
        """The short model name of a scanned camera (SDK thread only)."""
        if self.library.has("GetQHYCCDModel"):
            buffer = ctypes.create_string_buffer(CAMERA_ID_LENGTH)
            if self.library("GetQHYCCDModel", camera_id.encode(), buffer) == QHYCCD_SUCCESS:
                return buffer.value.decode("ascii", "replace")
        return camera_id.split("-", 1)[0]  # ids are MODEL-serialhash (ref 1.2)

    def sdk_qhy42_ids(self) -> list[str]:
        return [i for i in self.sdk_scan() if self.sdk_model(i).upper() == MODEL]


# ---- host-side state -----------------------------------------------------------------------


@dataclass(slots=True)
class _Exposure:
    start: ExposureStart
    settings: CaptureSettings
    end_monotonic_s: float
    start_temperature_c: float
    aborted: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Cooler:
    mode: CoolerMode = CoolerMode.OFF
    target_c: float | None = None
    pwm: int = 0
    heater: HeaterLevel = HeaterLevel.OFF
    last: CoolerState | None = None


@dataclass(slots=True)
class _Live:
    live: bool = False
    exposure_s: float | None = None
    interval_s: float = 0.0
    burst_enabled: bool = False
    idle: bool = False
    burst_start: int = 0
    burst_end: int = 0
    patch_number: int = 0
    anti_rbi: bool = False
    osd: bool = False
    frame_counter: int = 0
    last_frame_monotonic_s: float = 0.0
    reading: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class _Opened:
    camera_id: str
    handle: int
    modes: tuple[ReadMode, ...]
    info: SensorInfo
    settings: CaptureSettings
    named_controls: dict[str, int]
    effective_origin: tuple[int, int]
    buffer: np.ndarray[Any, np.dtype[np.uint8]]


class SdkBackend(CameraBackend):
    """One QHY42PRO through libqhyccd. See the module docstring.

    Timeouts: `call_timeout_s` for ordinary jobs, `open_timeout_s` for open and the re-init
    sequences, `answer_wait_s` for how long open() waits for a stuck call to return (tests
    shorten them). A job that outlives its timeout makes the camera CameraNotAnswering (a
    CameraGone) until the stuck call returns; see sdk_thread.py.
    """

    def __init__(self, runtime: SdkRuntime, camera_id: str | None = None, *,
                 call_timeout_s: float = DEFAULT_TIMEOUT_S,
                 open_timeout_s: float = OPEN_TIMEOUT_S,
                 answer_wait_s: float = ANSWER_WAIT_S) -> None:
        self._runtime = runtime
        self.call_timeout_s = call_timeout_s
        self.open_timeout_s = open_timeout_s
        self.answer_wait_s = answer_wait_s
        self._lib = runtime.library
        self._thread = runtime.thread
        self._wanted_id = camera_id
        self._camera_id = camera_id
        self._handle: int | None = None
        self._gone = False
        self._not_answering: str | None = None  # why it is gone, when an SDK call hung
        self._info: SensorInfo | None = None
        self._modes: tuple[ReadMode, ...] = ()
        self._settings: CaptureSettings | None = None
        self._requested_roi = Roi(0, 0, 0, 0)
        self._effective_origin = (0, 0)
        self._named: dict[str, int] = {}
        self._buffer: np.ndarray[Any, np.dtype[np.uint8]] | None = None
        self._exposure: _Exposure | None = None
        self._reading = False
        self._sequence = 0
        self._cooler = _Cooler()
        self._registers = bytearray(REGISTER_ADDRESS_MAX + 1)  # what was written, for reads
        self._trigger_mode = TriggerMode.SOFTWARE
        self._gps_on = False
        self._live = _Live()

    @property
    def camera_id(self) -> str | None:
        """The SDK id of the camera (known once found), e.g. QHY42PRO-a7ca3c438f7ea8e27."""
        return self._camera_id

    @property
    def named_controls(self) -> dict[str, int]:
        """CONTROL_IDs above 80 found by name at open (name -> number)."""
        return dict(self._named)

    # ---- lifecycle

    @property
    def is_open(self) -> bool:
        return self._handle is not None and self._settings is not None

    async def open(self) -> None:
        """Open the camera. While an SDK call is stuck this waits (up to answer_wait_s,
        cancellable) for it to return rather than queue an OpenQHYCCD behind it."""
        if self.is_open and not self._gone:
            return
        self._end_host_state()
        await self._thread.wait_until_answering(self.answer_wait_s)
        opened = await self._run(self._sdk_open, timeout_s=self.open_timeout_s)
        self._camera_id = opened.camera_id
        self._modes = opened.modes
        self._info = opened.info
        self._named = opened.named_controls
        self._effective_origin = opened.effective_origin
        self._buffer = opened.buffer
        self._requested_roi = opened.settings.roi
        self._settings = opened.settings
        self._cooler = _Cooler()
        self._registers = bytearray(REGISTER_ADDRESS_MAX + 1)
        self._trigger_mode = TriggerMode.SOFTWARE
        self._gps_on = False
        self._gone = False
        self._not_answering = None
        log.info("opened %s (%s), SDK %s", opened.camera_id, self._lib.path,
                 opened.info.sdk_version)

    async def close(self) -> None:
        """Forget the camera and close its handle. The handle is the SDK thread's: a close
        job closes whatever handle exists when it runs, so a stuck call that returns later
        (even a stuck open) leaves none behind. While a call is stuck the close waits behind
        it and this returns at once."""
        self._end_host_state()
        self._settings = None
        self._info = None
        self._buffer = None  # a job still reading into it holds its own reference
        try:
            closed = self._thread.defer(self._sdk_close, kind=_job_kind(self._sdk_close, ()),
                                        timeout_s=CLOSE_TIMEOUT_S)
        except BackendError:
            return  # the SDK thread has stopped: the SDK released every handle
        if self._thread.answering:
            with contextlib.suppress(BackendError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await asyncio.shield(asyncio.wrap_future(closed))

    def _end_host_state(self) -> None:
        if self._exposure is not None:
            self._exposure.aborted.set()
            self._exposure = None
        self._live.live = False
        self._live.ended.set()

    # ---- description

    async def sensor_info(self) -> SensorInfo:
        self._check_open()
        assert self._info is not None
        return self._info

    async def read_modes(self) -> tuple[ReadMode, ...]:
        self._check_open()
        return self._modes

    async def settings(self) -> CaptureSettings:
        return self._current()

    async def humidity_percent(self) -> float | None:
        """Relative humidity in the sensor chamber, if the camera measures it."""
        self._check_open()
        if not self._lib.has("GetQHYCCDHumidity"):
            return None
        humidity: float | None = await self._run(self._sdk_humidity, share=True)
        return humidity

    # ---- capture settings

    async def set_read_mode(self, index: int) -> CaptureSettings:
        current = self._current_idle()
        mode = self._mode(index)
        check_binning(mode, current.bin_x, current.bin_y, self._sensor().bin_max)
        self._requested_roi = full_frame_roi(mode)
        roi = align_roi(self._requested_roi, mode, current.bin_x, current.bin_y)
        wanted = replace(current, read_mode=mode, roi=roi)
        return self._store(await self._run(self._sdk_reinit, wanted, STREAM_SINGLE,
                                           timeout_s=self.open_timeout_s))

    async def set_gain(self, gain: int) -> CaptureSettings:
        current = await self._set_control("gain", ControlId.GAIN, gain, self._sensor().gain)
        return self._store(replace(current, gain=gain))

    async def set_offset(self, offset: int) -> CaptureSettings:
        current = await self._set_control("offset", ControlId.OFFSET, offset,
                                          self._sensor().offset)
        return self._store(replace(current, offset=offset))

    async def set_speed(self, speed: int) -> CaptureSettings:
        current = self._current()
        self._check_range("speed", speed, self._sensor().speed)
        period_us = await self._run(self._sdk_set_speed, speed)
        return self._store(replace(current, speed=speed, line_period_us=period_us))

    async def set_usb_traffic(self, usb_traffic: int) -> CaptureSettings:
        current = await self._set_control("usb_traffic", ControlId.USBTRAFFIC, usb_traffic,
                                          self._sensor().usb_traffic)
        return self._store(replace(current, usb_traffic=usb_traffic))

    async def set_binning(self, bin_x: int, bin_y: int) -> CaptureSettings:
        current = self._current_idle()
        if bin_x != bin_y:
            raise InvalidSetting(f"binning {bin_x}x{bin_y}: QHY cameras bin symmetrically only")
        check_binning(current.read_mode, bin_x, bin_y, self._sensor().bin_max)
        roi = align_roi(self._requested_roi, current.read_mode, bin_x, bin_y)
        wanted = replace(current, bin_x=bin_x, bin_y=bin_y, roi=roi)
        await self._run(self._sdk_geometry, wanted, True)
        return self._store(wanted)

    async def set_roi(self, roi: Roi) -> CaptureSettings:
        current = self._current_idle()
        aligned = align_roi(roi, current.read_mode, current.bin_x, current.bin_y)
        wanted = replace(current, roi=aligned)
        await self._run(self._sdk_geometry, wanted, False)
        self._requested_roi = roi
        return self._store(wanted)

    async def set_bit_depth(self, bits: int) -> CaptureSettings:
        current = self._current_idle()
        if bits not in self._sensor().bit_depths:
            raise InvalidSetting(f"bit depth {bits} not in {self._sensor().bit_depths}")
        if bits == current.bit_depth:
            return current
        wanted = replace(current, bit_depth=bits)
        return self._store(await self._run(self._sdk_reinit, wanted, STREAM_SINGLE,
                                           timeout_s=self.open_timeout_s))

    async def set_amp_glow_suppression(self, enabled: bool) -> CaptureSettings:
        current = self._current()
        if not self._sensor().has_amp_glow_control:
            raise SdkNotSupported("this camera reports no amp glow control (CONTROL_AMPV)")
        await self._run(self._sdk_set_param, ControlId.AMPV, 1.0 if enabled else 0.0)
        return self._store(replace(current, amp_glow_suppression=enabled))

    async def _set_control(self, name: str, control: ControlId, value: int,
                           limits: ValueRange) -> CaptureSettings:
        current = self._current()
        self._check_range(name, value, limits)
        await self._run(self._sdk_set_param, control, float(value))
        return current

    # ---- single exposure

    async def start_exposure(self, exposure_s: float) -> ExposureStart:
        settings = self._current_idle()
        self._check_exposure_s(exposure_s)
        if self._trigger_mode is TriggerMode.HARDWARE:
            raise InvalidSetting("exposures wait for a trigger (hardware trigger mode): "
                                 "arm_exposure, then wait_for_trigger")
        cached = self._cooler.last
        started, actual_s, temperature_c = await self._run(self._sdk_expose, settings,
                                                           exposure_s)
        line_count = max(1, round(actual_s / (settings.line_period_us * 1e-6)))
        readout_s = sm.readout_s(settings.roi.height, _frame_bytes(settings),
                                 settings.line_period_us)
        self._sequence += 1
        start = ExposureStart(
            sequence=self._sequence,
            start_utc=started,
            requested_exposure_s=exposure_s,
            exposure_s=actual_s,
            line_period_us=settings.line_period_us,
            line_count=line_count,
            readout_s=readout_s,
        )
        if temperature_c is None:
            temperature_c = cached.sensor_temperature_c if cached else math.nan
        elapsed_s = (datetime.now(UTC) - started).total_seconds()
        self._exposure = _Exposure(start, settings,
                                   time.monotonic() - elapsed_s + actual_s, temperature_c)
        return start

    async def abort_exposure(self) -> None:
        self._check_open()
        exposure = self._exposure
        if exposure is None or exposure.aborted.is_set():
            return
        exposure.aborted.set()
        await self._run(self._sdk_cancel)

    async def read_frame(self) -> Frame:
        self._check_open()
        exposure = self._exposure
        if exposure is None:
            raise NoExposure("no exposure was started")
        if self._reading:
            raise CameraBusy("a read_frame is already waiting for this exposure")
        self._reading = True
        try:
            await _wait_until(exposure.end_monotonic_s, exposure.aborted)
            if exposure.aborted.is_set():
                self._check_open()  # a camera that vanished meanwhile says so
                raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")
            timeout_s = exposure.start.readout_s + FRAME_TIMEOUT_MARGIN_S
            pixels, end_temperature_c = await self._run(
                self._sdk_read_single, exposure.settings, timeout_s,
                timeout_s=timeout_s + FRAME_TIMEOUT_MARGIN_S)
            if exposure.aborted.is_set():
                raise ExposureAborted(f"exposure {exposure.start.sequence} was aborted")
            temperatures = [t for t in (exposure.start_temperature_c, end_temperature_c)
                            if t is not None and not math.isnan(t)]
            return self._frame(pixels, exposure.start, exposure.settings,
                               sum(temperatures) / len(temperatures) if temperatures
                               else math.nan)
        finally:
            self._reading = False
            if self._exposure is exposure:
                self._exposure = None

    def _frame(self, pixels: np.ndarray[Any, Any], start: ExposureStart,
               settings: CaptureSettings, temperature_c: float) -> Frame:
        return Frame(
            pixels=pixels,
            sequence=start.sequence,
            start_utc=start.start_utc,
            exposure_s=start.exposure_s,
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
            trigger=start.trigger,
        )

    # ---- cooling

    async def set_cooler_target(self, temperature_c: float) -> None:
        self._check_open()
        info = self._sensor()
        if not info.has_cooler:
            raise SdkNotSupported("this camera reports no cooler (CONTROL_COOLER)")
        self._check_range("cooler target", temperature_c, info.cooler_target_c)
        await self._run(self._sdk_set_param, ControlId.COOLER, temperature_c)
        self._cooler.mode, self._cooler.target_c = CoolerMode.AUTO, temperature_c

    async def set_cooler_pwm(self, pwm: int) -> None:
        self._check_open()
        if not self._sensor().has_manual_pwm:
            raise SdkNotSupported("this camera reports no manual cooler power "
                                  "(CONTROL_MANULPWM)")
        if not 0 <= pwm <= PWM_MAX:
            raise InvalidSetting(f"PWM {pwm} outside 0..{PWM_MAX}")
        await self._run(self._sdk_set_param, ControlId.MANULPWM, float(pwm))
        self._cooler.mode, self._cooler.target_c, self._cooler.pwm = CoolerMode.MANUAL, None, pwm

    async def cooler_off(self) -> None:
        self._check_open()
        if self._sensor().has_manual_pwm:  # MANULPWM 0 is off (INDI, INDIGO, NINA, EZCAP)
            await self._run(self._sdk_set_param, ControlId.MANULPWM, 0.0)
        self._cooler.mode, self._cooler.target_c, self._cooler.pwm = CoolerMode.OFF, None, 0

    async def cooler_state(self) -> CoolerState:
        self._check_open()
        cooler = self._cooler
        if cooler.last is not None and self._in_readout_window():
            return replace(cooler.last, mode=cooler.mode, target_temperature_c=cooler.target_c,
                           heater=cooler.heater)
        # shared: the cooler polls after a hang wait behind it as one reading, not many
        temperature_c, pwm = await self._run(self._sdk_cooler_reading, cooler.mode,
                                             cooler.target_c, share=True)
        if cooler.mode is CoolerMode.MANUAL:
            pwm = cooler.pwm  # what the host set; CURPWM may read 0 (ref 1.9)
        cooler.last = CoolerState(
            mode=cooler.mode,
            sensor_temperature_c=temperature_c,
            target_temperature_c=cooler.target_c if cooler.mode is CoolerMode.AUTO else None,
            pwm=pwm,
            heater=cooler.heater,
            ambient_temperature_c=None,  # the SDK reports neither
            supply_voltage_v=None,
        )
        return cooler.last

    async def set_heater(self, level: HeaterLevel) -> None:
        self._check_open()
        try:
            heater = HeaterLevel(level)
        except ValueError:
            raise InvalidSetting(f"heater level {level} not one of {list(HeaterLevel)}") from None
        control = self._named.get(HEATER_CONTROL)
        if control is None or not self._sensor().has_heater:
            raise SdkNotSupported(f"this camera or SDK reports no {HEATER_CONTROL}")
        await self._run(self._sdk_set_param, control, float(heater))
        self._cooler.heater = heater

    def _in_readout_window(self) -> bool:
        exposure = self._exposure
        return (exposure is not None and not exposure.aborted.is_set()
                and time.monotonic() >= exposure.end_monotonic_s - READOUT_QUIET_S)

    # ---- registers

    async def read_register(self, address: int) -> int:
        self._check_open()
        check_register_access(address)
        if not self._lib.has("QHYCCDVendRequestRead"):
            return self._registers[address]  # no read path: what was last written
        value: int = await self._run(self._sdk_read_register, address,
                                     kind=f"read register {address}", share=True)
        self._registers[address] = value
        return value

    async def write_register(self, address: int, value: int) -> None:
        self._check_open()
        check_register_access(address, value)
        self._require("SetQHYCCDWriteFPGA", "FPGA register writes")
        await self._run(self._sdk_write_register, address, value)
        self._registers[address] = value

    # ---- triggers, GPIO and exposure timing

    async def gpio_config(self) -> GpioConfig:
        return GpioConfig(await self.read_register(REG_GPIO),
                          await self.read_register(REG_TRIGOUT_ENABLE))

    async def set_gpio_mode(self, mode: GpioMode) -> GpioConfig:
        config = await self._write_gpio_bits(REG_GPIO, 0x0F, 0, GpioMode(mode))
        gps = GpioMode(mode) is GpioMode.GPS_BOX
        await self._run(self._sdk_set_param, ControlId.CAM_GPS, 1.0 if gps else 0.0)
        self._gps_on = gps
        return config

    async def set_sma_output(self, output: SmaOutput) -> GpioConfig:
        return await self._write_gpio_bits(REG_GPIO, 0xC0, 6, SmaOutput(output))

    async def set_trigout_enabled(self, enabled: bool) -> GpioConfig:
        return await self._write_gpio_bits(REG_TRIGOUT_ENABLE, 0x01, 0, int(enabled))

    async def _write_gpio_bits(self, address: int, mask: int, shift: int,
                               value: int) -> GpioConfig:
        self._check_open()
        problem = gpio_firmware_problem(self._sensor().fpga_versions)
        if problem is not None:
            raise FirmwareTooOld(problem)
        register = (await self.read_register(address) & ~mask) | ((int(value) << shift) & mask)
        await self.write_register(address, register)
        return await self.gpio_config()

    async def set_trigger_mode(self, mode: TriggerMode) -> None:
        self._current_idle()
        mode = TriggerMode(mode)
        if mode is TriggerMode.HARDWARE:
            self._require("SetQHYCCDTrigerFunction", "hardware trigger")
        if self._lib.has("SetQHYCCDTrigerFunction"):
            await self._run(self._sdk_call, "SetQHYCCDTrigerFunction",
                            mode is TriggerMode.HARDWARE)
        self._trigger_mode = mode

    async def arm_exposure(self, exposure_s: float) -> ArmedExposure:
        self._current_idle()
        raise SdkNotSupported("triggered exposures are not supported by the SDK backend: "
                              "libqhyccd does not tell the host when a trigger started one")

    async def wait_for_trigger(self, timeout_s: float | None) -> ExposureStart:
        self._check_open()
        raise NoExposure("no exposure is armed (the SDK backend cannot arm exposures)")

    # ---- live video and burst

    async def begin_live(self, exposure_s: float) -> LiveStart:
        settings = self._current_idle()
        self._check_exposure_s(exposure_s)
        applied, actual_s = await self._run(self._sdk_begin_live, settings, exposure_s,
                                            timeout_s=self.open_timeout_s)
        self._store(applied)
        start = self._live_start(applied, actual_s)
        live = _Live(live=True, exposure_s=start.exposure_s, interval_s=start.frame_interval_s,
                     anti_rbi=self._live.anti_rbi, osd=self._live.osd,
                     patch_number=self._live.patch_number,
                     last_frame_monotonic_s=time.monotonic())
        self._live = live
        return start

    async def set_live_exposure(self, exposure_s: float) -> LiveStart:
        settings = self._current_live()
        self._check_exposure_s(exposure_s)
        actual_s = await self._run(self._sdk_set_exposure, settings, exposure_s)
        start = self._live_start(settings, actual_s)
        self._live.exposure_s, self._live.interval_s = start.exposure_s, start.frame_interval_s
        return start

    async def stop_live(self) -> None:
        settings = self._current()
        if not self._live.live:
            return
        self._live.live = False
        self._live.ended.set()
        self._store(await self._run(self._sdk_stop_live, settings, timeout_s=self.open_timeout_s))

    async def read_live_frame(self) -> LiveFrame:
        self._current_live()
        live = self._live
        if live.reading:
            raise CameraBusy("a read_live_frame is already waiting")
        live.reading = True
        try:
            silent_since = time.monotonic()
            # the next frame is not due before one interval after the last
            due = live.last_frame_monotonic_s + live.interval_s - 2 * LIVE_POLL_S
            await _wait_until(due, live.ended)
            while True:
                if not live.live:
                    self._check_open()
                    raise NotLive("live mode ended")
                settings = self._current()
                got = await self._run(self._sdk_poll_live, settings, share=True)
                if got is not None:
                    return self._live_frame(got, settings)
                if time.monotonic() - silent_since > max(LIVE_SILENCE_CHECK_S,
                                                         3 * live.interval_s):
                    await self._run(self._sdk_check_present, "GetQHYCCDLiveFrame")
                    silent_since = time.monotonic()
                await wait_event(live.ended, LIVE_POLL_S)
        finally:
            live.reading = False

    def _live_frame(self, pixels: np.ndarray[Any, Any], settings: CaptureSettings) -> LiveFrame:
        live = self._live
        now = time.monotonic()
        live.last_frame_monotonic_s = now
        counter = frame_head_counter(pixels)
        live.frame_counter = counter if counter is not None else live.frame_counter + 1
        exposure_s = live.exposure_s or 0.0
        readout_s = sm.readout_s(settings.roi.height, _frame_bytes(settings),
                                 settings.line_period_us)
        start = ExposureStart(
            sequence=live.frame_counter,
            start_utc=datetime.now(UTC) - timedelta(seconds=exposure_s + readout_s),
            requested_exposure_s=exposure_s,
            exposure_s=exposure_s,
            line_period_us=settings.line_period_us,
            line_count=max(1, round(exposure_s / (settings.line_period_us * 1e-6))),
            readout_s=readout_s,
        )
        temperature_c = self._cooler.last.sensor_temperature_c if self._cooler.last else math.nan
        frame = self._frame(pixels, start, settings, temperature_c)
        return LiveFrame(frame, live.frame_counter, live.burst_enabled)

    async def live_state(self) -> LiveState:
        self._check_open()
        live = self._live
        return LiveState(
            live=live.live,
            exposure_s=live.exposure_s if live.live else None,
            burst_enabled=live.burst_enabled,
            idle=live.idle,
            burst_start=live.burst_start,
            burst_end=live.burst_end,
            patch_number=live.patch_number,
            anti_rbi=live.anti_rbi,
            osd=live.osd,
            frame_counter=live.frame_counter,
        )

    async def enable_burst(self, enabled: bool) -> None:
        self._current_live()
        self._require("EnableQHYCCDBurstMode", "burst mode")
        await self._run(self._sdk_enable_burst, enabled)
        self._live.burst_enabled = enabled

    async def set_burst_range(self, start: int, end: int) -> None:
        self._check_open()
        check_burst_range(start, end)
        self._require("SetQHYCCDBurstModeStartEnd", "burst mode")
        await self._run(self._sdk_call, "SetQHYCCDBurstModeStartEnd", start, end)
        self._live.burst_start, self._live.burst_end = start, end

    async def burst_idle(self) -> None:
        self._current_live()
        self._require("SetQHYCCDBurstIDLE", "burst mode")
        await self._run(self._sdk_call, "SetQHYCCDBurstIDLE")
        self._live.idle = True

    async def burst_release(self) -> None:
        self._current_live()
        self._require("ReleaseQHYCCDBurstIDLE", "burst mode")
        await self._run(self._sdk_call, "ReleaseQHYCCDBurstIDLE")
        self._live.idle = False
        self._live.frame_counter = 0
        self._live.last_frame_monotonic_s = time.monotonic()

    async def capture_burst(self) -> range:
        self._current_live()
        if not self._live.burst_enabled:
            raise CameraBusy("burst mode is off: enable it first")
        await self.burst_idle()
        await asyncio.sleep(BURST_SETTLE_S)
        await self.burst_release()
        return range(self._live.burst_start + 1, self._live.burst_end)

    async def set_burst_patch_number(self, patch_number: int) -> None:
        self._check_open()
        if not 0 <= patch_number <= BURST_PATCH_MAX:
            raise InvalidSetting(f"patch number {patch_number} outside 0..{BURST_PATCH_MAX}")
        self._require("SetQHYCCDBurstModePatchNumber", "burst mode")
        await self._run(self._sdk_call, "SetQHYCCDBurstModePatchNumber", patch_number)
        self._live.patch_number = patch_number

    async def reset_frame_counter(self) -> None:
        self._current_live()
        self._require("ResetQHYCCDFrameCounter", "frame counter reset")
        await self._run(self._sdk_call, "ResetQHYCCDFrameCounter")
        self._live.frame_counter = 0
        self._live.last_frame_monotonic_s = time.monotonic()

    async def set_live_anti_rbi(self, enabled: bool) -> None:
        self._check_open()
        self._require("SetQHYCCDEnableLiveModeAntiRBI", "anti-RBI")
        await self._run(self._sdk_call, "SetQHYCCDEnableLiveModeAntiRBI", int(enabled))
        self._live.anti_rbi = enabled

    async def set_image_osd(self, enabled: bool) -> None:
        self._check_open()
        self._require("EnableQHYCCDImageOSD", "the image OSD")
        await self._run(self._sdk_call, "EnableQHYCCDImageOSD", int(enabled))
        self._live.osd = enabled

    def _live_start(self, settings: CaptureSettings, actual_s: float) -> LiveStart:
        readout_s = sm.readout_s(settings.roi.height, _frame_bytes(settings),
                                 settings.line_period_us)
        return LiveStart(actual_s, max(actual_s, readout_s), settings.line_period_us)

    # ---- checks (event loop)

    def _check_open(self) -> None:
        if self._gone and self._not_answering is not None:
            raise CameraNotAnswering(self._not_answering)
        if self._gone:
            raise CameraGone(f"{self._camera_id or MODEL} is not connected")
        if not self.is_open:
            raise NotOpen("the camera is not open")

    def _sensor(self) -> SensorInfo:
        self._check_open()
        assert self._info is not None
        return self._info

    def _current(self) -> CaptureSettings:
        self._check_open()
        assert self._settings is not None
        return self._settings

    def _current_idle(self) -> CaptureSettings:
        current = self._current()
        if self._live.live:
            raise CameraBusy("live mode is running: stop the video stream first")
        if self._exposure is not None and not self._exposure.aborted.is_set():
            raise CameraBusy("an exposure is pending: read its frame or abort it first")
        return current

    def _current_live(self) -> CaptureSettings:
        current = self._current()
        if not self._live.live:
            raise NotLive("live mode is not running: start it first")
        return current

    def _store(self, settings: CaptureSettings) -> CaptureSettings:
        self._settings = settings
        return settings

    def _mode(self, index: int) -> ReadMode:
        if not 0 <= index < len(self._modes):
            raise InvalidSetting(f"read mode {index} outside 0..{len(self._modes) - 1}")
        return self._modes[index]

    def _check_range(self, name: str, value: float, limits: ValueRange) -> None:
        if not limits.contains(value):
            raise InvalidSetting(f"{name} {value} outside {limits.min:g}..{limits.max:g}")

    def _check_exposure_s(self, exposure_s: float) -> None:
        info = self._sensor()
        if not info.exposure_min_s <= exposure_s <= info.exposure_max_s:
            raise InvalidSetting(
                f"exposure {exposure_s} s outside {info.exposure_min_s}..{info.exposure_max_s} s"
            )

    def _require(self, function: str, what: str) -> None:
        if not self._lib.has(function):
            raise SdkNotSupported(f"{what} needs {function}, which {self._lib.path} lacks")

    async def _run(self, job: Callable[..., Any], *args: Any, kind: str | None = None,
                   share: bool = False, timeout_s: float | None = None) -> Any:
        """Run a job on the SDK thread; an SDK that stops answering counts as a lost camera.
        Jobs of one kind do not queue twice (sdk_thread.py): by default the kind is the job,
        or the SDK function or control it sets."""
        try:
            return await self._thread.run(job, *args, kind=kind or _job_kind(job, args),
                                          share=share,
                                          timeout_s=timeout_s or self.call_timeout_s)
        except CameraNotAnswering as error:
            self._gone = True
            self._not_answering = str(error)
            raise

    # ---- jobs (SDK thread only) ----------------------------------------------------------

    def _ok(self, name: str, code: int) -> None:
        """Check a return code as the reference says (see the module docstring)."""
        if code in (QHYCCD_SUCCESS, QHYCCD_READ_DIRECTLY):
            return
        if code == QHYCCD_DELAY_200MS:
            time.sleep(DELAY_200MS_S)  # on the SDK thread: nothing reaches the camera sooner
            return
        raise self._failure(name, code)

    def _failure(self, name: str, code: int) -> BackendError:
        if not self._sdk_present():
            self._gone = True
            return CameraGone(f"{self._camera_id or MODEL} is not connected ({name} failed)")
        return SdkCallFailed(f"{name} failed (code {code:#x})")

    def _sdk_present(self) -> bool:
        return self._camera_id is not None and self._camera_id in self._runtime.sdk_scan()

    def _sdk_check_present(self, after: str) -> None:
        if not self._sdk_present():
            self._gone = True
            raise CameraGone(f"{self._camera_id or MODEL} is not connected ({after} failed)")

    def _sdk_call(self, name: str, *args: Any) -> None:
        self._ok(name, self._lib(name, self._handle, *args))

    def _sdk_try(self, name: str, *args: Any) -> bool:
        """Call a function whose failure only means 'not on this camera'."""
        return bool(self._lib(name, self._handle, *args) == QHYCCD_SUCCESS)

    def _sdk_available(self, control: int) -> bool:
        return bool(self._lib("IsQHYCCDControlAvailable", self._handle, control)
                    == QHYCCD_SUCCESS)

    def _sdk_set_param(self, control: int, value: float) -> None:
        self._ok(f"SetQHYCCDParam({_control_name(control)})",
                 self._lib("SetQHYCCDParam", self._handle, control, value))

    def _sdk_get_param(self, control: int) -> float:
        value = float(self._lib("GetQHYCCDParam", self._handle, control))
        if value == PARAM_ERROR or not math.isfinite(value):
            raise self._failure(f"GetQHYCCDParam({_control_name(control)})", QHYCCD_ERROR)
        return value

    def _sdk_range(self, control: int) -> ValueRange | None:
        low, high, step = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        if self._lib("GetQHYCCDParamMinMaxStep", self._handle, control, ctypes.byref(low),
                     ctypes.byref(high), ctypes.byref(step)) != QHYCCD_SUCCESS:
            return None
        return ValueRange(low.value, high.value, step.value)

    def _sdk_open(self) -> _Opened:
        lib = self._lib
        if self._handle is not None:  # a handle from before the camera vanished
            lib("CloseQHYCCD", self._handle)
            self._handle = None
        ids = self._runtime.sdk_qhy42_ids()
        wanted = self._wanted_id
        camera_id = wanted if wanted in ids else (ids[0] if ids and wanted is None else None)
        if camera_id is None:
            raise CameraGone(f"{wanted} is not connected (ScanQHYCCD does not list it)"
                             if wanted else f"no {MODEL} is connected (ScanQHYCCD found none)")
        handle = lib("OpenQHYCCD", camera_id.encode())
        if not handle:
            raise BackendError(f"OpenQHYCCD({camera_id}) failed: is the camera in use by "
                               "another program, or are its USB permissions missing (see "
                               "`qhy42-indi list`)?")
        self._handle, self._camera_id = handle, camera_id
        try:
            return self._sdk_prepare(camera_id, handle)
        except BaseException:
            lib("CloseQHYCCD", handle)
            self._handle = None
            raise

    def _sdk_prepare(self, camera_id: str, handle: int) -> _Opened:
        modes = self._sdk_read_modes()
        current = ctypes.c_uint32()
        index = current.value if self._sdk_try("GetQHYCCDReadMode", ctypes.byref(current)) \
            else 0
        mode = modes[index if index < len(modes) else 0]
        self._sdk_init_mode(mode.index, STREAM_SINGLE)
        self._named = named = self._sdk_named_controls()
        info = self._sdk_sensor_info(camera_id, modes, named)
        origin = self._sdk_effective_origin()
        self._effective_origin = origin
        speed = self._sdk_param_or(ControlId.SPEED, info.speed.min)
        traffic = self._sdk_param_or(ControlId.USBTRAFFIC, info.usb_traffic.min)
        settings = CaptureSettings(
            read_mode=mode,
            gain=round(self._sdk_param_or(ControlId.DEFAULT_GAIN, info.gain.min)),
            offset=round(self._sdk_param_or(ControlId.DEFAULT_OFFSET, info.offset.min)),
            speed=round(speed),
            usb_traffic=round(traffic),
            bin_x=1,
            bin_y=1,
            roi=full_frame_roi(mode),
            bit_depth=16 if 16 in info.bit_depths else info.bit_depths[0],
            amp_glow_suppression=False,
            line_period_us=0.0,
        )
        settings = self._sdk_apply(settings)
        length = self._lib("GetQHYCCDMemLength", handle)
        if not length or length == QHYCCD_ERROR:
            raise self._failure("GetQHYCCDMemLength", QHYCCD_ERROR)
        buffer = np.zeros(length, np.uint8)  # allocated once and reused (ref 1.15)
        return _Opened(camera_id, handle, modes, info, settings, named, origin, buffer)

    def _sdk_read_modes(self) -> tuple[ReadMode, ...]:
        count = ctypes.c_uint32()
        self._sdk_call("GetQHYCCDNumberOfReadModes", ctypes.byref(count))
        modes = []
        for index in range(max(1, count.value)):
            name = ctypes.create_string_buffer(READ_MODE_NAME_LENGTH)
            self._sdk_call("GetQHYCCDReadModeName", index, name)
            width, height = ctypes.c_uint32(), ctypes.c_uint32()
            self._sdk_call("GetQHYCCDReadModeResolution", index, ctypes.byref(width),
                           ctypes.byref(height))
            text = name.value.decode("ascii", "replace").strip() or f"Mode {index}"
            modes.append(ReadMode(index, text, width.value, height.value,
                                  _mode_channels(text, width.value, height.value)))
        return tuple(modes)

    def _sdk_init_mode(self, mode: int, stream: int) -> None:
        """The reference's order (1.3): read mode, stream mode, then InitQHYCCD."""
        self._sdk_call("SetQHYCCDReadMode", mode)
        self._sdk_call("SetQHYCCDStreamMode", stream)
        self._sdk_call("InitQHYCCD")

    def _sdk_named_controls(self) -> dict[str, int]:
        if not self._lib.has("GetQHYCCDControlName"):
            log.info("this libqhyccd has no GetQHYCCDControlName: CONTROL_IDs above 80 "
                     "(the heater) are treated as absent")
            return {}
        named: dict[str, int] = {}
        for control in NAMED_CONTROL_IDS:
            buffer = ctypes.create_string_buffer(CONTROL_NAME_LENGTH)
            if self._lib("GetQHYCCDControlName", self._handle, control, buffer) \
                    == QHYCCD_SUCCESS and buffer.value:
                named.setdefault(buffer.value.decode("ascii", "replace").strip(), control)
        return named

    def _sdk_sensor_info(self, camera_id: str, modes: tuple[ReadMode, ...],
                         named: dict[str, int]) -> SensorInfo:
        available = self._sdk_available
        chip_w, chip_h, pixel_w, pixel_h = (ctypes.c_double() for _ in range(4))
        image_w, image_h, bpp = (ctypes.c_uint32() for _ in range(3))
        self._sdk_call("GetQHYCCDChipInfo", ctypes.byref(chip_w), ctypes.byref(chip_h),
                       ctypes.byref(image_w), ctypes.byref(image_h), ctypes.byref(pixel_w),
                       ctypes.byref(pixel_h), ctypes.byref(bpp))
        exposure = self._sdk_range(ControlId.EXPOSURE) or ValueRange(
            sm.EXPOSURE_MIN_S * 1e6, sm.EXPOSURE_MAX_S * 1e6, 1)
        bins = [n for n, control in enumerate(
            (ControlId.CAM_BIN1X1MODE, ControlId.CAM_BIN2X2MODE, ControlId.CAM_BIN3X3MODE,
             ControlId.CAM_BIN4X4MODE), start=1) if available(control)]
        depths = tuple(bits for bits, control in ((8, ControlId.CAM_8BITS),
                                                  (16, ControlId.CAM_16BITS))
                       if available(control)) or (16,)
        colour = self._lib("IsQHYCCDControlAvailable", self._handle, ControlId.CAM_COLOR)
        heater = named.get(HEATER_CONTROL)
        single = [m for m in modes if len(m.channels) == 1] or list(modes)
        model = self._runtime.sdk_model(camera_id)
        has_cooler = available(ControlId.COOLER)
        return SensorInfo(
            model=model,
            camera_id=camera_id,
            sensor=SENSOR_NAME if model.upper() == MODEL else "unknown",
            firmware_version=self._sdk_firmware_version(),
            fpga_versions=self._sdk_fpga_versions(),
            sdk_version=self._runtime.sdk_version or "unknown",
            width=max(m.width for m in single),
            height=max(m.height for m in single),
            pixel_width_um=pixel_w.value,
            pixel_height_um=pixel_h.value,
            exposure_min_s=exposure.min / 1e6,
            exposure_max_s=exposure.max / 1e6,
            gain=self._sdk_range(ControlId.GAIN) or ValueRange(0, 0, 1),
            offset=self._sdk_range(ControlId.OFFSET) or ValueRange(0, 0, 1),
            speed=self._sdk_range(ControlId.SPEED) or ValueRange(0, 0, 1),
            usb_traffic=self._sdk_range(ControlId.USBTRAFFIC) or ValueRange(0, 0, 1),
            bin_max=max(bins, default=1),
            asymmetric_binning=False,
            bit_depths=depths,
            adc_bits=round(self._sdk_param_or(ControlId.OUTPUT_DATA_ACTUAL_BITS, sm.ADC_BITS)),
            cooler_target_c=(self._sdk_range(ControlId.COOLER) or COOLER_TARGET_FALLBACK)
            if has_cooler else COOLER_TARGET_FALLBACK,
            has_cooler=has_cooler,
            has_manual_pwm=available(ControlId.MANULPWM),
            has_heater=heater is not None and available(heater),
            has_amp_glow_control=available(ControlId.AMPV),
            is_color=colour in (1, 2, 3, 4),  # a BAYER_ID; anything else is mono (ref 1.1)
        )

    def _sdk_param_or(self, control: int, fallback: float) -> float:
        if not self._sdk_available(control):
            return fallback
        value = float(self._lib("GetQHYCCDParam", self._handle, control))
        return fallback if value == PARAM_ERROR or not math.isfinite(value) else value

    def _sdk_firmware_version(self) -> str:
        buffer = (ctypes.c_uint8 * 32)()
        if not self._lib.has("GetQHYCCDFWVersion") or not self._sdk_try(
                "GetQHYCCDFWVersion", buffer):
            return "unknown"
        year = buffer[0] >> 4
        year += 0x10 if year <= 9 else 0  # MAN-CN section 9
        return f"20{year:02d}{buffer[0] & 0x0F:02d}{buffer[1]:02d}"

    def _sdk_fpga_versions(self) -> tuple[str, ...]:
        if not self._lib.has("GetQHYCCDFPGAVersion"):
            return ()
        versions = []
        for index, name in enumerate(FPGA_NAMES):
            buffer = (ctypes.c_uint8 * 32)()
            if self._sdk_try("GetQHYCCDFPGAVersion", index, buffer):
                versions.append(_fpga_version(name, bytes(buffer[:4])))
        return tuple(versions)

    def _sdk_effective_origin(self) -> tuple[int, int]:
        if not self._lib.has("GetQHYCCDEffectiveArea"):
            return (0, 0)
        x, y, w, h = (ctypes.c_uint32() for _ in range(4))
        if not self._sdk_try("GetQHYCCDEffectiveArea", ctypes.byref(x), ctypes.byref(y),
                             ctypes.byref(w), ctypes.byref(h)) or w.value == 0:
            return (0, 0)  # some models report 0x0: then the full chip (ref 1.6)
        return (x.value, y.value)

    def _sdk_apply(self, settings: CaptureSettings) -> CaptureSettings:
        """Everything InitQHYCCD resets, applied again; returns it with the line period."""
        self._sdk_geometry(settings, True)
        self._sdk_call("SetQHYCCDBitsMode", settings.bit_depth)
        for control, value in ((ControlId.GAIN, settings.gain),
                               (ControlId.OFFSET, settings.offset),
                               (ControlId.SPEED, settings.speed),
                               (ControlId.USBTRAFFIC, settings.usb_traffic),
                               (ControlId.AMPV, int(settings.amp_glow_suppression)),
                               (ControlId.DDR, 1),  # must stay on for single frames (ref 1.5)
                               (ControlId.CAM_GPS, int(self._gps_on))):
            if self._sdk_available(control):
                self._sdk_set_param(control, float(value))
        return replace(settings, line_period_us=self._sdk_line_period_us(settings.speed))

    def _sdk_geometry(self, settings: CaptureSettings, with_binning: bool) -> None:
        if with_binning:
            self._sdk_call("SetQHYCCDBinMode", settings.bin_x, settings.bin_y)
        roi, origin_x, origin_y = settings.roi, *self._effective_origin
        self._sdk_call("SetQHYCCDResolution", (roi.x + origin_x) // settings.bin_x,
                       (roi.y + origin_y) // settings.bin_y, roi.width // settings.bin_x,
                       roi.height // settings.bin_y)

    def _sdk_reinit(self, settings: CaptureSettings, stream: int) -> CaptureSettings:
        self._sdk_init_mode(settings.read_mode.index, stream)
        return self._sdk_apply(settings)

    def _sdk_set_speed(self, speed: int) -> float:
        self._sdk_set_param(ControlId.SPEED, float(speed))
        return self._sdk_line_period_us(speed)

    def _sdk_line_period_us(self, speed: int) -> float:
        info = self._sdk_precise_info()
        if info is not None:
            return info[0]
        speeds = sm.LINE_PERIOD_US_BY_SPEED  # the datasheet's, when the SDK cannot tell
        return speeds[speed] if 0 <= speed < len(speeds) else sm.line_period_us(sm.DEFAULT_SPEED)

    def _sdk_precise_info(self) -> tuple[float, float] | None:
        """(line period us, actual exposure s) from GetQHYCCDPreciseExposureInfo."""
        if not self._lib.has("GetQHYCCDPreciseExposureInfo"):
            return None
        values = [ctypes.c_uint32() for _ in range(6)]
        long_mode = ctypes.c_uint8()
        if not self._sdk_try("GetQHYCCDPreciseExposureInfo",
                             *(ctypes.byref(v) for v in values), ctypes.byref(long_mode)):
            return None
        line_ns, actual_us = values[1].value, values[5].value
        return (line_ns / 1000.0, actual_us * 1e-6) if line_ns else None

    def _sdk_set_exposure(self, settings: CaptureSettings, exposure_s: float) -> float:
        """CONTROL_EXPOSURE, every time (PHD2: it re-times the sensor); the actual exposure."""
        self._sdk_set_param(ControlId.EXPOSURE, exposure_s * 1e6)
        precise = self._sdk_precise_info()
        if precise is not None and precise[1] > 0:
            return precise[1]
        return sm.quantise_exposure(exposure_s, settings.line_period_us)[1]

    def _sdk_temperature(self) -> float | None:
        if not self._sdk_available(ControlId.CURTEMP):
            return None
        value = float(self._lib("GetQHYCCDParam", self._handle, ControlId.CURTEMP))
        if value == PARAM_ERROR or not math.isfinite(value) or value > TEMPERATURE_PLAUSIBLE_C:
            return None
        return value

    def _sdk_expose(self, settings: CaptureSettings,
                    exposure_s: float) -> tuple[datetime, float, float | None]:
        temperature_c = self._sdk_temperature()
        actual_s = self._sdk_set_exposure(settings, exposure_s)
        self._sdk_call("ExpQHYCCDSingleFrame")  # READ_DIRECTLY is success (see _ok)
        return datetime.now(UTC), actual_s, temperature_c

    def _sdk_cancel(self) -> None:
        self._sdk_call("CancelQHYCCDExposingAndReadout")

    def _sdk_read_single(self, settings: CaptureSettings,
                         timeout_s: float) -> tuple[np.ndarray[Any, Any], float | None]:
        if self._lib.has("SetQHYCCDSingleFrameTimeOut"):
            self._sdk_call("SetQHYCCDSingleFrameTimeOut", max(1, round(timeout_s * 1000)))
        pixels = self._sdk_get_frame("GetQHYCCDSingleFrame", settings)
        assert pixels is not None
        return pixels, self._sdk_temperature()

    def _sdk_get_frame(self, function: str, settings: CaptureSettings,
                       *, missing_is_none: bool = False) -> np.ndarray[Any, Any] | None:
        buffer = self._buffer
        if buffer is None:
            raise NotOpen("the camera is not open")
        width, height, bpp, channels = (ctypes.c_uint32() for _ in range(4))
        code = self._lib(function, self._handle, ctypes.byref(width), ctypes.byref(height),
                         ctypes.byref(bpp), ctypes.byref(channels), buffer.ctypes.data)
        if code != QHYCCD_SUCCESS and missing_is_none:
            return None  # live mode: no frame ready yet
        self._ok(function, code)
        expected = (settings.roi.width // settings.bin_x, settings.roi.height // settings.bin_y,
                    settings.bit_depth, 1)
        got = (width.value, height.value, bpp.value, channels.value)
        if got != expected:  # as INDIGO does: never hand on a frame that is not what was asked
            raise SdkCallFailed(f"{function} delivered {got[0]}x{got[1]}, {got[2]}-bit, "
                                f"{got[3]} channel(s); expected {expected[0]}x{expected[1]}, "
                                f"{expected[2]}-bit, 1 channel")
        count = got[0] * got[1]
        size = count * (2 if got[2] == 16 else 1)
        if size > buffer.size:
            raise SdkCallFailed(f"{function} reported {size} bytes, more than the "
                                f"{buffer.size}-byte buffer of GetQHYCCDMemLength")
        dtype = np.uint16 if got[2] == 16 else np.uint8
        return buffer[:size].view(dtype).reshape(got[1], got[0]).copy()

    def _sdk_cooler_reading(self, mode: CoolerMode, target_c: float | None) -> tuple[float, int]:
        if mode is CoolerMode.AUTO and target_c is not None:
            self._sdk_call("ControlQHYCCDTemp", target_c)  # keep-alive, then fresh CURPWM
        temperature_c = self._sdk_get_param(ControlId.CURTEMP)
        if temperature_c > TEMPERATURE_PLAUSIBLE_C:
            raise SdkCallFailed(f"implausible sensor temperature {temperature_c} C")
        pwm = self._sdk_get_param(ControlId.CURPWM) if self._sdk_available(ControlId.CURPWM) \
            else 0.0
        return temperature_c, max(0, min(PWM_MAX, round(pwm)))

    def _sdk_humidity(self) -> float | None:
        value = ctypes.c_double()
        return value.value if self._sdk_try("GetQHYCCDHumidity", ctypes.byref(value)) else None

    def _sdk_read_register(self, address: int) -> int:
        data = (ctypes.c_uint8 * 1)()
        self._sdk_call("QHYCCDVendRequestRead", VENDOR_READ_FPGA0, 0, address, 1, data)
        return int(data[0])

    def _sdk_write_register(self, address: int, value: int) -> None:
        self._sdk_call("SetQHYCCDWriteFPGA", 0, address, value)

    def _sdk_begin_live(self, settings: CaptureSettings,
                        exposure_s: float) -> tuple[CaptureSettings, float]:
        applied = self._sdk_reinit(settings, STREAM_LIVE)
        actual_s = self._sdk_set_exposure(applied, exposure_s)
        self._sdk_call("BeginQHYCCDLive")
        return applied, actual_s

    def _sdk_stop_live(self, settings: CaptureSettings) -> CaptureSettings:
        self._sdk_call("StopQHYCCDLive")
        return self._sdk_reinit(settings, STREAM_SINGLE)  # INDI: cleaner teardown

    def _sdk_poll_live(self, settings: CaptureSettings) -> np.ndarray[Any, Any] | None:
        return self._sdk_get_frame("GetQHYCCDLiveFrame", settings, missing_is_none=True)

    def _sdk_enable_burst(self, enabled: bool) -> None:
        self._sdk_call("EnableQHYCCDBurstMode", enabled)
        if enabled and self._lib.has("EnableQHYCCDBurstCountFun"):
            self._sdk_call("EnableQHYCCDBurstCountFun", True)

    def _sdk_close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        lib = self._lib
        lib("StopQHYCCDLive", handle)  # return codes ignored: the camera may be gone
        lib("CancelQHYCCDExposingAndReadout", handle)
        lib("CloseQHYCCD", handle)


# ---- helpers -------------------------------------------------------------------------------


async def _wait_until(deadline_monotonic_s: float, stop: asyncio.Event) -> None:
    """Sleep until the deadline, waking early when `stop` is set."""
    await wait_event(stop, deadline_monotonic_s - time.monotonic())


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for `event` at most timeout_s; whether it is set. (asyncio.timeout, not
    wait_for: Python 3.11's wait_for can swallow a cancellation that meets the event.)"""
    if timeout_s > 0 and not event.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
    return event.is_set()


def _frame_bytes(settings: CaptureSettings) -> int:
    roi = settings.roi
    return (roi.width // settings.bin_x) * (roi.height // settings.bin_y) * settings.bit_depth // 8


def _mode_channels(name: str, width: int, height: int) -> tuple[Channel, ...]:
    """Which channels a read mode delivers, side by side. The SDK does not say; QHY's
    example (ref 1.4) has HDR as 4096x2048, low gain left and high gain right, and STD modes
    one channel. The names current SDKs use are unverified: a mode twice as wide as high is
    taken as HDR, a name with 'low' as the low gain channel, any other as high gain."""
    if width >= 2 * height or "HDR" in name.upper():
        return (Channel.LOW_GAIN, Channel.HIGH_GAIN)
    if "LOW" in name.upper() or "LG" in name.upper().split():
        return (Channel.LOW_GAIN,)
    return (Channel.HIGH_GAIN,)


def _fpga_version(name: str, raw: bytes) -> str:
    """GetQHYCCDFPGAVersion's 4 bytes as NAME_VyyyyMMdd when they read as yy, MM, dd (the
    layout is not documented: [unverified] on hardware), else NAME_0x<hex>."""
    year, month, day = raw[0], raw[1], raw[2]
    if year <= 99 and 1 <= month <= 12 and 1 <= day <= 31:
        return f"{name}_V20{year:02d}{month:02d}{day:02d}"
    return f"{name}_0x{raw.hex()}"


def _job_kind(job: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """A job's kind: the generic jobs are told apart by the function or control they set,
    so that setting the gain does not count as a second offset change."""
    name = str(getattr(job, "__name__", repr(job)))
    if name == "_sdk_call" and args:
        return str(args[0])
    if name == "_sdk_set_param" and args:
        return f"SetQHYCCDParam({_control_name(args[0])})"
    return name.removeprefix("_sdk_").replace("_", " ")  # "cooler reading", "open"


def _control_name(control: int) -> str:
    try:
        return ControlId(control).name
    except ValueError:
        return str(control)
