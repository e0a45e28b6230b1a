"""USB discovery of QHYCCD cameras with pyusb: what is plugged in, whether its firmware is
loaded, and whether this process may open it.

What it is for: `qhy42-indi list`, and telling a user why the SDK sees no camera. QHYCCD
cameras use vendor id 0x1618. Before its firmware is uploaded a camera enumerates with its
"pre-load" product id (the QHY42PRO: 0x4202), udev runs fxload (systemd/85-qhy42-indi.rules),
and the camera re-enumerates as pre-load id + 1 (QHY's convention, reference section 2; for
the QHY42PRO, 0x4203 is [unverified]: confirm with lsusb). The SDK only sees loaded cameras.
Access is judged from the device node (/dev/bus/usb/BBB/DDD): read and write permission is
what libusb needs to open it.

What it is not: no SDK, and no I/O with the device (nothing is opened or claimed). pyusb's
backend is a parameter, so tests fake the bus (tests/usb/).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

QHYCCD_VENDOR_ID = 0x1618
QHY42PRO_PRELOAD_ID = 0x4202
QHY42PRO_LOADED_ID = QHY42PRO_PRELOAD_ID + 1  # [unverified] on hardware
FIRMWARE_DIR = Path("/lib/firmware/qhy")  # where the udev rule's fxload finds QHY42PRO.img
DEV_ROOT = Path("/dev/bus/usb")

# Pre-load product ids and the firmware image each gets (the vendor rules, reference 2).
PRELOAD_MODELS: dict[int, str] = {
    0x4200: "QHY42",
    QHY42PRO_PRELOAD_ID: "QHY42PRO",
    0x4040: "QHY4040",
    0x4042: "QHY4040PRO",
    0x2020: "QHY2020",
    0x6060: "QHY6060",
    0xC600: "QHY600",
    0xC174: "QHY174",
}


class Firmware(StrEnum):
    LOADED = "firmware loaded"
    PENDING = "firmware NOT loaded"
    UNKNOWN = "firmware state unknown"


class Access(StrEnum):
    OK = "access ok"
    DENIED = "no permission"
    NO_NODE = "no device node"


class UsbUnavailable(RuntimeError):
    """pyusb has no usable backend (libusb is missing)."""


@dataclass(frozen=True, slots=True)
class UsbCamera:
    bus: int
    address: int
    vendor_id: int
    product_id: int
    model: str | None
    firmware: Firmware
    access: Access
    node: Path

    @property
    def is_qhy42pro(self) -> bool:
        return self.model == "QHY42PRO"

    def describe(self) -> str:
        model = self.model or "QHYCCD device (model unknown)"
        line = (f"Bus {self.bus:03d} Device {self.address:03d}: ID "
                f"{self.vendor_id:04x}:{self.product_id:04x} {model}, {self.firmware}, "
                f"{self.access}")
        if self.firmware is Firmware.PENDING and self.model:
            line += (f" (udev should run fxload with {FIRMWARE_DIR}/{self.model}.img: "
                     "see systemd/85-qhy42-indi.rules)")
        if self.access is Access.DENIED:
            line += f" ({self.node}: install the udev rules or join the device's group)"
        return line


def classify(product_id: int) -> tuple[str | None, Firmware]:
    """(model, firmware state) of a QHYCCD product id."""
    if product_id in PRELOAD_MODELS:
        return PRELOAD_MODELS[product_id], Firmware.PENDING
    if product_id - 1 in PRELOAD_MODELS:
        return PRELOAD_MODELS[product_id - 1], Firmware.LOADED
    return None, Firmware.UNKNOWN


def node_access(node: Path, access: Callable[[Path, int], bool] = os.access) -> Access:
    if not node.exists():
        return Access.NO_NODE
    return Access.OK if access(node, os.R_OK | os.W_OK) else Access.DENIED


def list_cameras(backend: Any = None, dev_root: Path = DEV_ROOT,
                 access: Callable[[Path, int], bool] = os.access) -> list[UsbCamera]:
    """Every QHYCCD device on the bus. `backend` is a pyusb backend (None: pyusb's default,
    libusb); UsbUnavailable when there is none."""
    import usb.core  # pyusb: imported here, so the daemon runs without it until asked

    try:
        devices: Iterable[Any] = usb.core.find(find_all=True, idVendor=QHYCCD_VENDOR_ID,
                                               backend=backend)
        found = list(devices)
    except usb.core.NoBackendError as error:
        raise UsbUnavailable("pyusb finds no USB backend: install libusb-1.0 (Debian: "
                             "libusb-1.0-0)") from error
    cameras = []
    for device in found:
        model, firmware = classify(int(device.idProduct))
        node = dev_root / f"{int(device.bus):03d}" / f"{int(device.address):03d}"
        cameras.append(UsbCamera(int(device.bus), int(device.address), int(device.idVendor),
                                 int(device.idProduct), model, firmware,
                                 node_access(node, access), node))
    return sorted(cameras, key=lambda c: (c.bus, c.address))


def format_listing(cameras: list[UsbCamera]) -> str:
    """What `qhy42-indi list` prints about the bus."""
    if not cameras:
        return (f"no QHYCCD USB device (vendor {QHYCCD_VENDOR_ID:04x}) is connected")
    return "\n".join(camera.describe() for camera in cameras)
