"""The GSENSE400 BSI in a QHY42PRO as numbers: the simulator's physics, one place.

What it is for: every constant the simulator uses (geometry, conversion gain per channel and gain
setting, read noise, full well, dark current against temperature, amp glow, hot pixels, line
period by speed, USB bandwidth) with where it comes from, and the small scalar functions built
on them (exposure quantisation, readout time). Sources are reference/qhy-sdk-and-drivers.md
section 6 ("ref 6.x") and the QHY42PRO datasheet ("datasheet"); "[model]" marks a choice of
ours where no source gives a number.

What it is not: no images, no noise, no timing of the event loop (see renderer.py), no cooler
(see thermal.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.base import Channel, ReadMode

SENSOR_WIDTH_PX = 2048  # datasheet: 2048 x 2048 effective pixels
SENSOR_HEIGHT_PX = 2048
PIXEL_SIZE_UM = 11.0  # datasheet
ADC_BITS = 12  # datasheet: dual 12-bit A/D
ADC_MAX_ADU = (1 << ADC_BITS) - 1
OUTPUT_SHIFT_BITS = 16 - ADC_BITS  # ref 6.2: 12-bit data left-shifted into 16-bit words

EXPOSURE_MIN_S = 20e-6  # datasheet: 20 us - 300 s
EXPOSURE_MAX_S = 300.0

# Read modes in the SDK's index order. ref 1.4: the names and count are not published; NINA
# (#909) found its driver defaulting to HDR 4096x2048, i.e. HDR is mode 0, and MIT runs mode 1
# with a 42 ms full frame, the STD single-channel rate. The datasheet's third mode (the single
# low gain channel) comes last [model]; the SDK backend reads the real list at runtime.
READ_MODES: tuple[ReadMode, ...] = (
    ReadMode(
        0, "HDR", 2 * SENSOR_WIDTH_PX, SENSOR_HEIGHT_PX, (Channel.LOW_GAIN, Channel.HIGH_GAIN)
    ),
    ReadMode(1, "STD High Gain", SENSOR_WIDTH_PX, SENSOR_HEIGHT_PX, (Channel.HIGH_GAIN,)),
    ReadMode(2, "STD Low Gain", SENSOR_WIDTH_PX, SENSOR_HEIGHT_PX, (Channel.LOW_GAIN,)),
)


@dataclass(frozen=True, slots=True)
class ChannelModel:
    """One ADC chain: conversion gain at gain setting 0 and read noise."""

    channel: Channel
    e_per_adu_at_gain0: float  # electrons per 12-bit ADU
    read_noise_e: float


# ref 6.2: 0.11 e-/ADU16 measured at gain 5 on a QHY42Pro = 1.76 e-/ADU12, so the HG ADC fills at
# ~7.2 ke-. With our gain law (below) that is 1.98 e-/ADU12 at gain 0. Read noise 1.6 e-: the
# datasheet's overview ("1.6e-"; its table says 1.7; the Marana GSENSE400 measured 1.577).
HIGH_GAIN = ChannelModel(Channel.HIGH_GAIN, e_per_adu_at_gain0=1.98, read_noise_e=1.6)
# [model] LG must reach the 89 ke- full well within the ADC range left above the pedestal: at
# 30 e-/ADU12 (23.8 at the default gain 10) 3955 ADU12 above offset 140 hold 94 ke-, so the
# pixel, not the ADC, saturates (HDR: "LG to full well"), 15x the HG step. Its read noise is not
# published: 18 e- is ~0.6 ADU12 at gain 0, an ADC-limited chain.
LOW_GAIN = ChannelModel(Channel.LOW_GAIN, e_per_adu_at_gain0=30.0, read_noise_e=18.0)
CHANNELS = {Channel.HIGH_GAIN: HIGH_GAIN, Channel.LOW_GAIN: LOW_GAIN}

FULL_WELL_E = 89_000.0  # datasheet: 89 ke- (HDR)

GAIN_MIN, GAIN_MAX = 0, 100  # [model] the SDK reports the real range; none is published
GAIN_DB_PER_STEP = 0.2  # [model] 100 steps = 20 dB = 10x in e-/ADU
OFFSET_MIN, OFFSET_MAX = 0, 255  # ref 6.2/MIT fallback range 0..255
PEDESTAL_ADU_PER_OFFSET = 1.0  # [model] offset 140 (MIT default) -> 140 ADU12 = 2240 ADU16
DEFAULT_GAIN = 10  # MIT's validated QHY42PRO defaults (ref 6.2)
DEFAULT_OFFSET = 140

# ref 6.2: 2.2 e-/px/s at -20 C (nightscribe preset); halving every 6 C is the generic silicon
# assumption the reference names (not sourced for this sensor).
DARK_E_PER_S_AT_REF = 2.2
DARK_REF_TEMPERATURE_C = -20.0
DARK_DOUBLING_C = 6.0

# [model] Amp glow: an exponential gradient from the top edge (row 0), growing linearly with
# exposure. The datasheet only says the anti-glow control gives "significant glow reduction".
GLOW_EDGE_E_PER_S = 20.0
GLOW_SCALE_ROWS = 60.0
GLOW_SUPPRESSED_FRACTION = 0.05

# [model] Hot pixels: 0.02 % of pixels, dark current a log-normal multiple of the normal one.
HOT_PIXEL_FRACTION = 2e-4
HOT_PIXEL_MEDIAN_FACTOR = 30.0
HOT_PIXEL_SIGMA_LN = 1.2

# Line period by SPEED (datasheet: only SPEED changes it). Derived from the datasheet's frame
# rates at 2048 rows: 24 fps (12-bit STD; MIT measured 42 ms/frame) -> 20.3 us/row; 48 fps
# (8-bit STD) -> 10.2 us; 12 fps -> 40.7 us. Speed 0 is the slowest, as on other QHY cameras.
LINE_PERIOD_US_BY_SPEED = (40.7, 20.3, 10.2)
DEFAULT_SPEED = 1
# [derived] every datasheet rate moves the same ~201 MB/s (2048*2048*2 B * 24 fps, HDR 12-bit
# 16 MiB * 12 fps, 8-bit 4 MiB * 48 fps): the USB link, not the sensor, sets the frame rate.
USB_BYTES_PER_S = 2048 * 2048 * 2 * 24.0
USB_TRAFFIC_MIN, USB_TRAFFIC_MAX = 0, 60  # MIT fallback range
DEFAULT_USB_TRAFFIC = 30  # MIT default; MIT measured no effect on timing (ref 1.8)

BIN_MAX = 4


def e_per_adu(channel: Channel, gain: int) -> float:
    """Electrons per 12-bit ADU of `channel` at a gain setting ([model]: a dB-linear PGA)."""
    model = CHANNELS[channel]
    return float(model.e_per_adu_at_gain0 * 10.0 ** (-gain * GAIN_DB_PER_STEP / 20.0))


def pedestal_adu(offset: int) -> float:
    """The bias level in 12-bit ADU for an offset setting."""
    return offset * PEDESTAL_ADU_PER_OFFSET


def dark_current_e_per_s(temperature_c: float) -> float:
    """Mean dark current of a normal pixel at a sensor temperature."""
    doublings = (temperature_c - DARK_REF_TEMPERATURE_C) / DARK_DOUBLING_C
    return float(DARK_E_PER_S_AT_REF * 2.0**doublings)


def glow_edge_e_per_s(suppressed: bool) -> float:
    return GLOW_EDGE_E_PER_S * (GLOW_SUPPRESSED_FRACTION if suppressed else 1.0)


def glow_profile(sensor_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Relative amp glow (1 at row 0) of each sensor row."""
    return np.exp(-sensor_rows.astype(np.float64) / GLOW_SCALE_ROWS)


def line_period_us(speed: int) -> float:
    return LINE_PERIOD_US_BY_SPEED[speed]


def quantise_exposure(exposure_s: float, period_us: float) -> tuple[int, float]:
    """(line count, exposure in s): the nearest whole number of line periods, at least one.

    A rolling shutter starts and stops each row on line clock edges (ref 1.12), so the
    exposure actually taken is a multiple of the line period.
    """
    period_s = period_us * 1e-6
    line_count = max(1, round(exposure_s / period_s))
    return line_count, line_count * period_s


def readout_s(sensor_rows: int, output_bytes: int, period_us: float) -> float:
    """Time from the end of the exposure to the frame at the host: the slower of the rolling
    readout of the rows and the USB transfer of the data."""
    return max(sensor_rows * period_us * 1e-6, output_bytes / USB_BYTES_PER_S)


def camera_seed(camera_id: str, purpose: str) -> int:
    """A seed fixed by the camera's identity, so its defects and sky are the same every run."""
    digest = hashlib.sha256(f"{camera_id}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True, slots=True)
class HotPixels:
    """A camera's hot pixels: flat sensor indices (sorted) and dark current multiples."""

    flat_index: npt.NDArray[np.int64]
    dark_factor: npt.NDArray[np.float64]


def hot_pixels(camera_id: str) -> HotPixels:
    """The hot pixels of the camera with this id (deterministic)."""
    rng = np.random.default_rng(camera_seed(camera_id, "hot-pixels"))
    pixel_count = SENSOR_WIDTH_PX * SENSOR_HEIGHT_PX
    count = round(pixel_count * HOT_PIXEL_FRACTION)
    flat_index = np.sort(rng.choice(pixel_count, size=count, replace=False)).astype(np.int64)
    dark_factor = HOT_PIXEL_MEDIAN_FACTOR * np.exp(rng.normal(0.0, HOT_PIXEL_SIGMA_LN, count))
    return HotPixels(flat_index, np.maximum(dark_factor, 2.0))
