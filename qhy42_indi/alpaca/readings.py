"""What an Alpaca camera reads of a device, in Alpaca's units, as plain functions of its
properties: binned subframes, the sensor size of the read mode, electrons per output ADU
and the full well from the sensor model, the frame start in ASCOM's format. Nothing here
changes anything or keeps state (that is camera.py)."""

from __future__ import annotations

from datetime import UTC

from qhy42_indi.backends.base import Channel
from qhy42_indi.backends.sensor_model import ADC_MAX_ADU, FULL_WELL_E, OUTPUT_SHIFT_BITS, e_per_adu
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.indi.properties import Value

ROI_MEMBERS = ("StartX", "StartY", "NumX", "NumY")


def as_int(value: Value) -> int:
    return round(float(value))


def number(device: Qhy42Device, name: str, member: str) -> float:
    return float(device.props[name].value(member))


def limits(device: Qhy42Device, name: str, member: str) -> tuple[float, float]:
    element = device.props[name].number(member)
    return float(element.min or 0.0), float(element.max or 0.0)


def binning(device: Qhy42Device) -> tuple[int, int]:
    return (as_int(number(device, "CCD_BINNING", "HOR_BIN")),
            as_int(number(device, "CCD_BINNING", "VER_BIN")))


def sensor_size(device: Qhy42Device) -> tuple[int, int]:
    """The unbinned image of the read mode (4096 x 2048 for HDR dual)."""
    return (as_int(number(device, "CCD_INFO", "CCD_MAX_X")),
            as_int(number(device, "CCD_INFO", "CCD_MAX_Y")))


def frame_binned(device: Qhy42Device) -> dict[str, int]:
    """CCD_FRAME (unbinned pixels) as Alpaca's StartX/StartY/NumX/NumY (binned)."""
    bin_x, bin_y = binning(device)
    frame = device.props["CCD_FRAME"]
    return {"StartX": as_int(frame.value("X")) // bin_x,
            "StartY": as_int(frame.value("Y")) // bin_y,
            "NumX": as_int(frame.value("WIDTH")) // bin_x,
            "NumY": as_int(frame.value("HEIGHT")) // bin_y}


def bit_depth(device: Qhy42Device) -> int:
    return as_int(number(device, "CCD_INFO", "CCD_BITSPERPIXEL"))


def _channel(device: Qhy42Device) -> Channel:
    settings = device.settings.settings
    if settings is None:
        return Channel.HIGH_GAIN
    # HDR: the low gain channel, which holds the full well.
    return settings.read_mode.channels[0]


def _e_per_adu12(device: Qhy42Device) -> float:
    return e_per_adu(_channel(device), as_int(number(device, "CCD_GAIN", "GAIN")))


def electrons_per_output_adu(device: Qhy42Device) -> float:
    # 16-bit output holds the 12-bit value shifted left; 8-bit output its top 8 bits.
    scale = float(1 << OUTPUT_SHIFT_BITS)
    per_adu12 = _e_per_adu12(device)
    return per_adu12 / scale if bit_depth(device) == 16 else per_adu12 * scale


def full_well_e(device: Qhy42Device) -> float:
    """The pixel's full well, or what the ADC reaches first at a high gain."""
    return min(FULL_WELL_E, _e_per_adu12(device) * ADC_MAX_ADU)


def fits_time(frame: DeliveredFrame) -> str:
    """The frame's start as ASCOM wants it: FITS's CCYY-MM-DDThh:mm:ss.sss, UTC."""
    start = frame.start_utc.astimezone(UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}"
