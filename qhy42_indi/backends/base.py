"""The camera backend interface: what the INDI device asks of a QHY42PRO, typed.

`CameraBackend` is an abstract async interface. Its state and results are frozen dataclasses and
its failures are the exceptions defined here, so the INDI device (camera/) can drive the
simulator and the SDK backend (libqhyccd through ctypes, one dedicated thread) the same way.

What it is for: opening and closing the camera, describing it (`SensorInfo`, `ReadMode`),
applying capture settings, single exposures (start, abort, read the `Frame`), the cooler and
the anti-dew heater, raw FPGA register access (`QHY42PRO_REGISTERS`), live video with its
burst sub-mode (`LiveFrame`, one method per SDK call), and the GPIO ports, hardware and sync
triggers (`GpioConfig`, `ArmedExposure`; the GPS frame head is decoded in gps_header.py).

What it is not: no INDI names, no FITS, no threads. Implementations keep blocking work off the
event loop themselves. Later features are added as further methods in sections of their own,
beside the single-exposure ones, without changing these.

Units and conventions: exposures in seconds (SDK: microseconds), temperatures in degrees C,
cooler power as PWM 0..255, geometry in unbinned pixels of the current read mode's frame
(4096x2048 in HDR, 2048x2048 in STD), pixel values as the camera delivers them: 12-bit ADC data
left-shifted into 16-bit words, or its top 8 bits.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType, TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

# ---- errors: every backend raises these and only these -------------------------------------


class BackendError(Exception):
    """Base of every error a backend raises."""


class NotOpen(BackendError):
    """The backend is not open (never opened, or closed)."""


class CameraGone(BackendError):
    """The camera disappeared: unplugged, powered off, USB reset, brown-out."""


class InvalidSetting(BackendError):
    """A value out of range or not supported by the camera; nothing was changed."""


class CameraBusy(BackendError):
    """Not allowed now: an exposure is in progress or its frame has not been read."""


class NoExposure(BackendError):
    """read_frame was called without an exposure to read."""


class ExposureAborted(BackendError):
    """The exposure being read was aborted; it has no frame."""


# ---- description of the camera -------------------------------------------------------------


class Channel(StrEnum):
    """One of the GSENSE400's two column ADC chains."""

    HIGH_GAIN = "HG"
    LOW_GAIN = "LG"


@dataclass(frozen=True, slots=True)
class ValueRange:
    """A numeric setting's limits as the SDK reports them: (min, max, step)."""

    min: float
    max: float
    step: float

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.min, self.max, self.step)


@dataclass(frozen=True, slots=True)
class ReadMode:
    """A sensor read mode, in the SDK's index order.

    `channels` lists the channels side by side, left to right: in HDR the frame is the low gain
    image on the left and the high gain image on the right, each `width / len(channels)` wide.
    """

    index: int
    name: str
    width: int
    height: int
    channels: tuple[Channel, ...]

    @property
    def channel_width(self) -> int:
        return self.width // len(self.channels)


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the camera is and what it accepts. Fixed while the backend is open."""

    model: str
    camera_id: str
    sensor: str
    firmware_version: str
    fpga_versions: tuple[str, ...]
    sdk_version: str
    width: int  # sensor pixels, one channel
    height: int
    pixel_width_um: float
    pixel_height_um: float
    exposure_min_s: float
    exposure_max_s: float
    gain: ValueRange
    offset: ValueRange
    speed: ValueRange
    usb_traffic: ValueRange
    bin_max: int
    asymmetric_binning: bool
    bit_depths: tuple[int, ...]
    adc_bits: int
    cooler_target_c: ValueRange
    has_cooler: bool
    has_manual_pwm: bool
    has_heater: bool
    has_amp_glow_control: bool
    is_color: bool


# ---- triggers, GPIO and exposure timing: types ------------------------------------
# The QHY42PRO datasheet's "Advanced Shutter Measurement": REG39 selects the GPIO port mode
# (bits 3:0) and what the SMA Trig Out emits (bits 7:6); REG142 enables the TrigOut pulse. Both
# need FPGA_V20191118 and MAX10_V20191120 or newer. A hardware edge on the SMA Trig In, or a
# sync master's exposure start, can start an armed exposure (reference 1.11). The GPS-BOX head
# that timestamps frames is decoded in gps_header.py.


class TriggerMode(StrEnum):
    """How exposures start: at once (start_exposure), or armed and started by a Trig In edge."""

    SOFTWARE = "software"
    HARDWARE = "hardware"


class TriggerSource(StrEnum):
    """What started an exposure."""

    SOFTWARE = "software"
    TRIG_IN = "trig_in"  # an edge on the SMA Trig In
    SYNC = "sync"  # the multi-camera sync master's exposure start


class GpioMode(IntEnum):
    """REG39 bits 3:0 (6..15 are undefined)."""

    I2C_GPIO = 0
    GPS_BOX = 1  # QHYCCD GPS-BOX on the 6-pin port: a GPS head in every frame
    FIVE_PIN = 2  # 1 shutter measure, 3 line period, 4 TrigOut, 5 GND (2.5 V outputs)
    FOUR_PIN = 3
    SYNC_MASTER = 4
    SYNC_SLAVE = 5


class SmaOutput(IntEnum):
    """REG39 bits 7:6: what the SMA Trig Out port emits (2 and 3 are undefined)."""

    SHUTTER_MEASURE = 0  # high from row 0's exposure start to its end
    TRIG_OUT = 1  # vertical sync: a short low pulse, falling near row 0's exposure end


REG_GPIO = 39
REG_TRIGOUT_ENABLE = 142
# The builds the datasheet requires for REG39/REG142, as (name prefix, yyyymmdd).
GPIO_FIRMWARE_MINIMUM = (("FPGA", 20191118), ("MAX10", 20191120))


class TriggerTimeout(BackendError):
    """No trigger came within the timeout; the armed exposure was disarmed."""


class FirmwareTooOld(InvalidSetting):
    """The camera's FPGA firmware predates the feature (see GPIO_FIRMWARE_MINIMUM)."""


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """REG39 and REG142, decoded. `gpio_mode`/`sma_output` are None for undefined values."""

    reg39: int
    reg142: int

    @property
    def gpio_mode(self) -> GpioMode | None:
        try:
            return GpioMode(self.reg39 & 0x0F)
        except ValueError:
            return None

    @property
    def sma_output(self) -> SmaOutput | None:
        try:
            return SmaOutput((self.reg39 >> 6) & 0x03)
        except ValueError:
            return None

    @property
    def trigout_enabled(self) -> bool:
        return bool(self.reg142 & 0x01)


@dataclass(frozen=True, slots=True)
class ArmedExposure:
    """What arm_exposure prepared: an exposure that starts on a trigger."""

    requested_exposure_s: float
    exposure_s: float  # quantised to whole line periods
    line_period_us: float
    line_count: int
    waits_for: TriggerSource


def gpio_firmware_problem(fpga_versions: tuple[str, ...]) -> str | None:
    """Why REG39/REG142 cannot be used with these FPGA builds, or None if they can."""
    required = " and ".join(f"{name}_V{date}" for name, date in GPIO_FIRMWARE_MINIMUM)
    dates = {}
    for version in fpga_versions:
        name, _, stamp = version.strip().upper().partition("_V")
        if stamp[:8].isdigit():
            dates[name] = int(stamp[:8])
    missing = [f"{name}_V{date}" for name, date in GPIO_FIRMWARE_MINIMUM
               if dates.get(name, 0) < date]
    if not missing:
        return None
    have = ", ".join(fpga_versions) or "unknown"
    return (f"GPIO, TrigOut and GPS-BOX need FPGA firmware {required} or newer; this camera "
            f"has {have}")


# ---- settings and their results ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Roi:
    """A region of interest in unbinned pixels of the current read mode's frame."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """The settings the next exposure will use. `roi` is the effective one (bin-aligned)."""

    read_mode: ReadMode
    gain: int
    offset: int
    speed: int
    usb_traffic: int
    bin_x: int
    bin_y: int
    roi: Roi
    bit_depth: int
    amp_glow_suppression: bool
    line_period_us: float


@dataclass(frozen=True, slots=True)
class ExposureStart:
    """What start_exposure did. `start_utc` is when row 0 really began to integrate."""

    sequence: int
    start_utc: datetime
    requested_exposure_s: float
    exposure_s: float  # quantised to whole line periods
    line_period_us: float
    line_count: int
    readout_s: float  # expected time from exposure end to frame delivered
    trigger: TriggerSource = TriggerSource.SOFTWARE  # what started it
    # Camera seconds per wall second: 1 for a camera; the simulator's time_scale, so that
    # the countdown says the camera's seconds left.
    clock_rate: float = 1.0


@dataclass(frozen=True, slots=True)
class ChannelSpan:
    """Where one channel's image sits in a frame's columns (output pixels)."""

    channel: Channel
    first_column: int
    column_count: int


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One image as delivered, with what it was taken with.

    `pixels` is uint16 (bit_depth 16: 12-bit data << 4) or uint8 (bit_depth 8: the top 8 bits),
    shape (rows, columns), native byte order, C-contiguous, owned by the receiver.
    """

    pixels: npt.NDArray[np.uint16] | npt.NDArray[np.uint8]
    sequence: int
    start_utc: datetime
    exposure_s: float
    read_mode: ReadMode
    roi: Roi
    bin_x: int
    bin_y: int
    bit_depth: int
    gain: int
    offset: int
    sensor_temperature_c: float  # mean over the exposure
    line_period_us: float
    channels: tuple[ChannelSpan, ...]
    trigger: TriggerSource = TriggerSource.SOFTWARE  # what started it

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


# ---- cooling -------------------------------------------------------------------------------


class CoolerMode(StrEnum):
    OFF = "off"
    AUTO = "auto"  # the camera regulates the PWM toward a target temperature
    MANUAL = "manual"  # the PWM is fixed by the host


class HeaterLevel(IntEnum):
    """Anti-dew heater levels, valued as the SDK's CONTROL_HEATINGBOARD (EZCAP: 0, 2, 3)."""

    OFF = 0
    MID = 2
    HIGH = 3


PWM_MAX = 255
SUPPLY_VOLTAGE_MIN_V = 11.5  # datasheet: below this the camera does not work normally


@dataclass(frozen=True, slots=True)
class CoolerState:
    """A reading of the TEC and its surroundings. None where the camera cannot tell."""

    mode: CoolerMode
    sensor_temperature_c: float
    target_temperature_c: float | None  # None unless mode is AUTO
    pwm: int  # 0..PWM_MAX
    heater: HeaterLevel
    ambient_temperature_c: float | None
    supply_voltage_v: float | None

    @property
    def power_percent(self) -> float:
        return 100.0 * self.pwm / PWM_MAX


# ---- registers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterField:
    """Bits low_bit..high_bit (inclusive) of an 8-bit register, with named values."""

    name: str
    low_bit: int
    high_bit: int
    values: tuple[tuple[int, str], ...] = ()

    @property
    def mask(self) -> int:
        return ((1 << (self.high_bit - self.low_bit + 1)) - 1) << self.low_bit

    def extract(self, register_value: int) -> int:
        return (register_value & self.mask) >> self.low_bit

    def insert(self, register_value: int, field_value: int) -> int:
        return (register_value & ~self.mask) | ((field_value << self.low_bit) & self.mask)


@dataclass(frozen=True, slots=True)
class Register:
    """An FPGA register (8-bit address, 8-bit value, SetQHYCCDWriteFPGA)."""

    address: int
    name: str
    description: str
    fields: tuple[RegisterField, ...]


REGISTER_ADDRESS_MAX = 0xFF
REGISTER_VALUE_MAX = 0xFF

# From the QHY42PRO datasheet, "Advanced Shutter Measurement" (needs FPGA_V20191118 and
# MAX10_V20191120). Bits [5:4] of REG39 are all "undefined" there.
QHY42PRO_REGISTERS: Mapping[int, Register] = MappingProxyType(
    {
        39: Register(
            address=39,
            name="REG39",
            description="GPIO mode switch",
            fields=(
                RegisterField(
                    "gpio_mode",
                    0,
                    3,
                    (
                        (0, "I2C controlled GPIO output"),
                        (1, "QHYCCD GPS_BOX (6PIN)"),
                        (2, "5PIN"),
                        (3, "4PIN"),
                        (4, "Multiple camera sync, master"),
                        (5, "Multiple camera sync, slave"),
                    ),
                ),
                RegisterField("trig_out_port_mode", 4, 5),
                RegisterField(
                    "trig_in_port_mode",
                    6,
                    7,
                    ((0, "ShutterMeasure waveform output"), (1, "TrigOut (vertical sync) output")),
                ),
            ),
        ),
        142: Register(
            address=142,
            name="REG142",
            description="TrigOut pulse enable",
            fields=(RegisterField("trig_enable", 0, 0, ((0, "disabled"), (1, "enabled"))),),
        ),
    }
)


# ---- live video and burst: results and state ------------------------------------
# Live (continuous) mode and its burst sub-mode, reference qhy-sdk-and-drivers.md 1.8 and 1.10.
# The camera numbers every frame it reads out; the number sits in the frame head, the first
# FRAME_HEAD_BYTES bytes of the image buffer, big-endian (EZCAP reads it there).

FRAME_HEAD_BYTES = 4
BURST_NUMBER_MAX = 0xFFFF  # SetQHYCCDBurstModeStartEnd takes unsigned shorts
BURST_PATCH_MAX = 0xFFFFFFFF


class NotLive(BackendError):
    """A live-mode call while the camera is not in live mode (or live mode ended meanwhile)."""


@dataclass(frozen=True, slots=True)
class LiveStart:
    """What begin_live / set_live_exposure did. Times in seconds of camera time."""

    exposure_s: float  # quantised to whole line periods
    frame_interval_s: float  # the cadence: the longer of the exposure and the readout
    line_period_us: float

    @property
    def frames_per_s(self) -> float:
        return 1.0 / self.frame_interval_s


@dataclass(frozen=True, slots=True, eq=False)
class LiveFrame:
    """One frame from live mode. `counter` is the number in the frame head (see
    FRAME_HEAD_BYTES); `burst` is True when a burst output it (burst mode on)."""

    frame: Frame
    counter: int
    burst: bool


@dataclass(frozen=True, slots=True)
class LiveState:
    """Live mode as the host last set it. `frame_counter` is the number of the last frame
    read out (0 right after a reset or a release)."""

    live: bool
    exposure_s: float | None
    burst_enabled: bool
    idle: bool
    burst_start: int
    burst_end: int
    patch_number: int
    anti_rbi: bool
    osd: bool
    frame_counter: int

    @property
    def burst_numbers(self) -> range:
        """The frame numbers one burst outputs: strictly between start and end (1, 6 gives
        2, 3, 4, 5)."""
        return range(self.burst_start + 1, self.burst_end)


def frame_head_counter(pixels: npt.NDArray[np.uint16] | npt.NDArray[np.uint8]) -> int | None:
    """The frame number in a live frame's head, or None if the image is too small to hold it."""
    head = pixels.reshape(-1).view(np.uint8)[:FRAME_HEAD_BYTES]
    if head.size < FRAME_HEAD_BYTES:
        return None
    return int.from_bytes(head.tobytes(), "big")


def check_burst_range(start: int, end: int) -> None:
    """Raise InvalidSetting unless 0 <= start < end <= BURST_NUMBER_MAX."""
    if not 0 <= start < end <= BURST_NUMBER_MAX:
        raise InvalidSetting(
            f"burst start {start} and end {end}: need 0 <= start < end <= {BURST_NUMBER_MAX}"
        )


# ---- the interface -------------------------------------------------------------------------


class Lifecycle(abc.ABC):
    """Opening and closing the camera, and what it is. Every backend has it.

    Use as `async with backend:` (open on enter, close on exit) or call open()/close().
    Every method of every capability but open() raises NotOpen before open() and after
    close(), and CameraGone once the camera has disappeared."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and initialise the camera. A second call is a no-op."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Abort any exposure and release the camera. Safe to call more than once."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    # description

    @abc.abstractmethod
    async def sensor_info(self) -> SensorInfo: ...

    @abc.abstractmethod
    async def read_modes(self) -> tuple[ReadMode, ...]:
        """The read modes in the SDK's index order."""

    @abc.abstractmethod
    async def settings(self) -> CaptureSettings: ...


class CaptureControl(abc.ABC):
    """The capture settings. Setters raise InvalidSetting for values outside SensorInfo's
    limits. Changing the read mode, binning, ROI or bit depth while an exposure is pending
    (started and neither read nor aborted) raises CameraBusy; gain, offset, speed, USB
    traffic and amp glow apply from the next exposure. Each returns the settings in force."""


    @abc.abstractmethod
    async def set_read_mode(self, index: int) -> CaptureSettings:
        """Switch read mode. The ROI resets to the new mode's full frame."""

    @abc.abstractmethod
    async def set_gain(self, gain: int) -> CaptureSettings: ...

    @abc.abstractmethod
    async def set_offset(self, offset: int) -> CaptureSettings: ...

    @abc.abstractmethod
    async def set_speed(self, speed: int) -> CaptureSettings:
        """Readout speed; it sets the line period."""

    @abc.abstractmethod
    async def set_usb_traffic(self, usb_traffic: int) -> CaptureSettings: ...

    @abc.abstractmethod
    async def set_binning(self, bin_x: int, bin_y: int) -> CaptureSettings:
        """1..bin_max each; the ROI is re-aligned to the new binning."""

    @abc.abstractmethod
    async def set_roi(self, roi: Roi) -> CaptureSettings:
        """ROI in unbinned pixels of the current mode's frame; origin and size are rounded
        down to multiples of the binning. Raises InvalidSetting if it leaves the frame."""

    @abc.abstractmethod
    async def set_bit_depth(self, bits: int) -> CaptureSettings:
        """8 or 16 (16 carries the 12-bit ADC data left-shifted by 4)."""

    @abc.abstractmethod
    async def set_amp_glow_suppression(self, enabled: bool) -> CaptureSettings: ...


class ExposureControl(abc.ABC):
    """Single exposures."""


    @abc.abstractmethod
    async def start_exposure(self, exposure_s: float) -> ExposureStart:
        """Start one exposure with the current settings and return at once.

        exposure_s within [exposure_min_s, exposure_max_s]; the exposure actually taken is a
        whole number of line periods (ExposureStart.exposure_s). Raises CameraBusy if an
        exposure is pending, InvalidSetting if exposures wait for a trigger (arm_exposure).
        """

    @abc.abstractmethod
    async def abort_exposure(self) -> None:
        """End the pending exposure without a frame; read_frame then raises ExposureAborted.
        A no-op when nothing is pending."""

    @abc.abstractmethod
    async def read_frame(self) -> Frame:
        """Wait for the pending exposure to end and be read out, and return its frame.

        Raises NoExposure if none was started, ExposureAborted if it was aborted (also while
        waiting), CameraBusy if another read_frame is already waiting.
        """


class CoolerControl(abc.ABC):
    """The TEC and the anti-dew heater."""


    @abc.abstractmethod
    async def set_cooler_target(self, temperature_c: float) -> None:
        """Regulate the sensor toward temperature_c (mode AUTO)."""

    @abc.abstractmethod
    async def set_cooler_pwm(self, pwm: int) -> None:
        """Drive the TEC at a fixed PWM 0..255 (mode MANUAL)."""

    @abc.abstractmethod
    async def cooler_off(self) -> None: ...

    @abc.abstractmethod
    async def cooler_state(self) -> CoolerState: ...

    @abc.abstractmethod
    async def set_heater(self, level: HeaterLevel) -> None:
        """Anti-dew heater level; InvalidSetting if the camera has no heater."""


class RegisterAccess(abc.ABC):
    """Raw FPGA registers."""


    @abc.abstractmethod
    async def read_register(self, address: int) -> int:
        """Read an 8-bit FPGA register (see QHY42PRO_REGISTERS)."""

    @abc.abstractmethod
    async def write_register(self, address: int, value: int) -> None:
        """Write an 8-bit FPGA register. Raw access: the backend does not interpret it (the
        camera's FPGA does: REG39/REG142 change the GPIO ports, see the section below)."""


class GpioControl(abc.ABC):
    """Triggers, the GPIO ports and exposure timing (the GPS-BOX head that timestamps frames
    is part of each frame, decoded in gps_header.py).

    GPIO setters change REG39/REG142 (read-modify-write) and raise FirmwareTooOld when
    gpio_firmware_problem(SensorInfo.fpga_versions) says so. An exposure in HARDWARE trigger
    mode, or in GPIO mode SYNC_SLAVE, is armed (arm_exposure) and started by its trigger
    (wait_for_trigger returns the start); start_exposure then raises InvalidSetting.
    read_frame and abort_exposure work on an armed exposure as on a started one. Host-clock
    start times (ExposureStart.start_utc) are taken when the camera reports the start.
    """


    @abc.abstractmethod
    async def gpio_config(self) -> GpioConfig:
        """REG39 and REG142 as the camera holds them."""

    @abc.abstractmethod
    async def set_gpio_mode(self, mode: GpioMode) -> GpioConfig:
        """REG39 bits 3:0. GPS_BOX also makes the camera write the GPS head (gps_header.py)
        into row 0 of every frame (SDK: CAM_GPS 1; 0 in the other modes)."""

    @abc.abstractmethod
    async def set_sma_output(self, output: SmaOutput) -> GpioConfig:
        """REG39 bits 7:6: what the SMA Trig Out port emits."""

    @abc.abstractmethod
    async def set_trigout_enabled(self, enabled: bool) -> GpioConfig:
        """REG142: the TrigOut output pulse on (1) or off (0). Hosts turn it off during
        initialisation and mode changes, so that no stray pulse leaves the camera."""

    @abc.abstractmethod
    async def set_trigger_mode(self, mode: TriggerMode) -> None:
        """SOFTWARE or HARDWARE (SMA Trig In; SDK: SetQHYCCDTrigerFunction). CameraBusy while
        an exposure is pending or armed."""

    @abc.abstractmethod
    async def arm_exposure(self, exposure_s: float) -> ArmedExposure:
        """Prepare one exposure with the current settings that starts on its trigger: a Trig
        In edge (HARDWARE mode) or the sync master's exposure start (SYNC_SLAVE). Returns at
        once. InvalidSetting when nothing would trigger it; CameraBusy if one is pending."""

    @abc.abstractmethod
    async def wait_for_trigger(self, timeout_s: float | None) -> ExposureStart:
        """Wait until the armed exposure starts and return its start (as start_exposure
        does; then read_frame). TriggerTimeout after timeout_s seconds of camera time (None:
        no limit), and the exposure is disarmed; ExposureAborted if it was aborted;
        NoExposure if none is armed."""


class LiveControl(abc.ABC):
    """Live (continuous) video.

    One method per libqhyccd call (reference qhy-sdk-and-drivers.md 1.8, 1.10), named in
    each docstring. While live mode runs, start_exposure and the geometry setters (read
    mode, binning, ROI, bit depth) raise CameraBusy; gain, offset, speed, USB traffic and
    amp glow apply from the next frame. The calls that act on the running sensor
    (set_live_exposure, enable_burst, burst_idle, burst_release, capture_burst,
    reset_frame_counter) raise NotLive outside live mode; the burst range, patch number,
    anti-RBI and OSD may be set any time and apply in live mode.
    """


    @abc.abstractmethod
    async def begin_live(self, exposure_s: float) -> LiveStart:
        """Enter live mode with the current settings and start the frame sequence.
        SDK: SetQHYCCDStreamMode(1), InitQHYCCD, CONTROL_EXPOSURE, BeginQHYCCDLive.
        CameraBusy if a single exposure is pending or live mode already runs."""

    @abc.abstractmethod
    async def set_live_exposure(self, exposure_s: float) -> LiveStart:
        """Change the exposure while live; the sensor is re-timed (SDK: CONTROL_EXPOSURE)."""

    @abc.abstractmethod
    async def stop_live(self) -> None:
        """Leave live mode; a waiting read_live_frame raises NotLive. No-op when not live.
        SDK: StopQHYCCDLive, then SetQHYCCDStreamMode(0) and InitQHYCCD."""

    @abc.abstractmethod
    async def read_live_frame(self) -> LiveFrame:
        """Wait for the next frame the camera outputs (SDK: GetQHYCCDLiveFrame, polled) and
        return it with the counter from its frame head. The camera does not wait for the
        host: a reader that falls behind finds frames missing (gaps in the counter), except
        burst frames, which the camera keeps until read. NotLive if live mode is off or
        ends while waiting; CameraBusy if another read_live_frame is waiting."""

    @abc.abstractmethod
    async def live_state(self) -> LiveState: ...


class BurstControl(abc.ABC):
    """Burst mode inside live mode, and the live-mode options (see LiveControl)."""

    @abc.abstractmethod
    async def enable_burst(self, enabled: bool) -> None:
        """Burst mode on (the camera stops output) or off (continuous output resumes).
        SDK: EnableQHYCCDBurstMode, with EnableQHYCCDBurstCountFun(true) when enabling."""

    @abc.abstractmethod
    async def set_burst_range(self, start: int, end: int) -> None:
        """The numbers a burst outputs: those strictly between start and end.
        SDK: SetQHYCCDBurstModeStartEnd. Enter IDLE first: a camera that is not idle may start
        output at once (QHY's note 3). InvalidSetting unless 0 <= start < end <= 65535."""

    @abc.abstractmethod
    async def burst_idle(self) -> None:
        """Halt the sensor and its output (SDK: SetQHYCCDBurstIDLE)."""

    @abc.abstractmethod
    async def burst_release(self) -> None:
        """Leave IDLE: the frame sequence restarts at number 1; in burst mode that outputs
        one burst (SDK: ReleaseQHYCCDBurstIDLE)."""

    @abc.abstractmethod
    async def capture_burst(self) -> range:
        """Output one burst: IDLE, the settle pause the camera needs, release (EZCAP's
        sequence: SetQHYCCDBurstIDLE, 300 ms, ReleaseQHYCCDBurstIDLE). Returns the frame
        numbers to expect. NotLive unless live; CameraBusy unless burst mode is on."""

    @abc.abstractmethod
    async def set_burst_patch_number(self, patch_number: int) -> None:
        """Padding that keeps the last burst image from sticking in the camera (QHY's example:
        32001). SDK: SetQHYCCDBurstModePatchNumber."""

    @abc.abstractmethod
    async def reset_frame_counter(self) -> None:
        """The next frame read out is number 1 (SDK: ResetQHYCCDFrameCounter)."""

    @abc.abstractmethod
    async def set_live_anti_rbi(self, enabled: bool) -> None:
        """Anti residual-bulk-image: each normal frame follows a short flush frame, so the
        output alternates dark and bright frames. Effective in live mode; may be set any time.
        SDK: SetQHYCCDEnableLiveModeAntiRBI."""

    @abc.abstractmethod
    async def set_image_osd(self, enabled: bool) -> None:
        """Burn the frame number into the top rows of each live frame (on-screen display).
        May be set any time. SDK: EnableQHYCCDImageOSD."""


class SimulatorControls(abc.ABC):
    """What only a simulated camera can do: choose its scene, pull its USB cable, fire its
    Trig In, show its signal log, pretend other firmware. A backend that has it says so by
    being one; the camera layer asks with isinstance and never names the simulator."""

    @abc.abstractmethod
    def choose_scene(self, kind: str, flat_level_e_per_s: float) -> None:
        """What the camera looks at from the next exposure: "dark", "flat" (flat_level_e_per_s
        electrons a second per pixel) or "stars"."""

    @abc.abstractmethod
    def simulate_unplug(self) -> None: ...

    @abc.abstractmethod
    def simulate_replug(self) -> None: ...

    @abc.abstractmethod
    def fire_trigger_in(self) -> bool:
        """An edge on the Trig In; True if it started an armed exposure."""

    @abc.abstractmethod
    def event_log(self) -> str:
        """The simulated GPIO block's signal log, one event per line."""

    @abc.abstractmethod
    def clear_events(self) -> None: ...

    @property
    @abc.abstractmethod
    def fpga_versions(self) -> tuple[str, ...]: ...

    @abc.abstractmethod
    def set_fpga_versions(self, versions: tuple[str, ...]) -> None:
        """The FPGA builds the camera reports from its next open()."""


class CameraBackend(Lifecycle, CaptureControl, ExposureControl, CoolerControl, RegisterAccess,
                    GpioControl, LiveControl, BurstControl):
    """One QHY42PRO camera with every capability a real one has. All methods are coroutines
    and never block the event loop. The camera layer takes each part's capability on its
    own (a part that cools needs a CoolerControl), so a backend could offer fewer."""


def check_register_access(address: int, value: int = 0) -> None:
    """Raise InvalidSetting unless address and value fit the 8-bit register interface."""
    if not 0 <= address <= REGISTER_ADDRESS_MAX:
        raise InvalidSetting(f"register address {address} outside 0..{REGISTER_ADDRESS_MAX}")
    if not 0 <= value <= REGISTER_VALUE_MAX:
        raise InvalidSetting(f"register value {value} outside 0..{REGISTER_VALUE_MAX}")


# ---- geometry shared by every backend ------------------------------------------------------


def full_frame_roi(mode: ReadMode) -> Roi:
    return Roi(0, 0, mode.width, mode.height)


def check_binning(mode: ReadMode, bin_x: int, bin_y: int, bin_max: int) -> None:
    """Raise InvalidSetting unless the binning fits the mode: 1..bin_max each, and in a mode
    with channels side by side (HDR) bin_x must divide a channel's width, since each channel's
    image is binned on its own."""
    for name, value in (("bin_x", bin_x), ("bin_y", bin_y)):
        if not 1 <= value <= bin_max:
            raise InvalidSetting(f"{name} {value} outside 1..{bin_max}")
    if len(mode.channels) > 1 and mode.channel_width % bin_x:
        raise InvalidSetting(
            f"bin_x {bin_x} does not divide the {mode.channel_width}-column channels of {mode.name}"
        )


def align_roi(roi: Roi, mode: ReadMode, bin_x: int, bin_y: int) -> Roi:
    """The ROI a backend applies: origin and size rounded down to multiples of the binning
    (the SDK takes the ROI in binned pixels). Raises InvalidSetting if `roi` leaves the mode's
    frame or holds less than one binned pixel."""
    if roi.x < 0 or roi.y < 0 or roi.width < 1 or roi.height < 1:
        raise InvalidSetting(f"ROI {roi} has a negative origin or an empty size")
    if roi.x + roi.width > mode.width or roi.y + roi.height > mode.height:
        raise InvalidSetting(f"ROI {roi} leaves the {mode.width}x{mode.height} frame")
    aligned = Roi(
        x=roi.x // bin_x * bin_x,
        y=roi.y // bin_y * bin_y,
        width=roi.width // bin_x * bin_x,
        height=roi.height // bin_y * bin_y,
    )
    if aligned.width == 0 or aligned.height == 0:
        raise InvalidSetting(f"ROI {roi} is smaller than one {bin_x}x{bin_y} bin")
    return aligned


def channel_spans(mode: ReadMode, roi: Roi, bin_x: int) -> tuple[ChannelSpan, ...]:
    """Which output columns of a frame taken with `roi` (aligned) show which channel."""
    channel_columns = mode.channel_width // bin_x
    first, stop = roi.x // bin_x, (roi.x + roi.width) // bin_x
    spans = []
    for index, channel in enumerate(mode.channels):
        low = max(first, index * channel_columns)
        high = min(stop, (index + 1) * channel_columns)
        if low < high:
            spans.append(ChannelSpan(channel, low - first, high - low))
    return tuple(spans)
