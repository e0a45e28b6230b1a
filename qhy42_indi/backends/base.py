"""The camera backend interface: what the INDI device asks of a QHY42PRO, typed.

`CameraBackend` is an abstract async interface. Its state and results are frozen dataclasses and
its failures are the exceptions defined here, so the INDI device (camera/) can drive the
simulator and the SDK backend (libqhyccd through ctypes, one dedicated thread) the same way.

What it is for: opening and closing the camera, describing it (`SensorInfo`, `ReadMode`),
applying capture settings, single exposures (start, abort, read the `Frame`), the cooler and
the anti-dew heater, and raw FPGA register access (`QHY42PRO_REGISTERS`).

What it is not: no INDI names, no FITS, no threads. Implementations keep blocking work off the
event loop themselves. Live video, burst, trigger and GPS timing come in later issues and will be
added as further methods beside the single-exposure ones, without changing these.

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


# ---- the interface -------------------------------------------------------------------------


class CameraBackend(abc.ABC):
    """One QHY42PRO camera. All methods are coroutines and never block the event loop.

    Use as `async with backend:` (open on enter, close on exit) or call open()/close().
    Every method but open() raises NotOpen before open() and after close(), and CameraGone once
    the camera has disappeared. Setters raise InvalidSetting for values outside SensorInfo's
    limits. Changing the read mode, binning, ROI or bit depth while an exposure is pending
    (started and neither read nor aborted) raises CameraBusy; gain, offset, speed, USB traffic
    and amp glow apply from the next exposure.
    """

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

    # lifecycle

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

    # capture settings: each returns the settings now in force

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

    # single exposure

    @abc.abstractmethod
    async def start_exposure(self, exposure_s: float) -> ExposureStart:
        """Start one exposure with the current settings and return at once.

        exposure_s within [exposure_min_s, exposure_max_s]; the exposure actually taken is a
        whole number of line periods (ExposureStart.exposure_s). Raises CameraBusy if an
        exposure is pending.
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

    # cooling

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

    # registers

    @abc.abstractmethod
    async def read_register(self, address: int) -> int:
        """Read an 8-bit FPGA register (see QHY42PRO_REGISTERS)."""

    @abc.abstractmethod
    async def write_register(self, address: int, value: int) -> None:
        """Write an 8-bit FPGA register. Raw access: the backend does not interpret it."""


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
