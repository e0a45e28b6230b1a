"""The Alpaca management API: which API versions this server speaks, what it is, and which
devices it serves, each with a UniqueID that stays the same across restarts and replugs
(derived from the device name, which is itself stable)."""

from __future__ import annotations

import uuid
from typing import Any

from qhy42_indi import __version__
from qhy42_indi.camera.device import Qhy42Device

API_VERSIONS = [1]
SERVER_NAME = "qhy42-indi"
MANUFACTURER = "qhy42-indi (QHYCCD QHY42PRO)"
# A fixed namespace: the same device name gives the same UniqueID on every machine and run.
UNIQUE_ID_NAMESPACE = uuid.UUID("6f0f3d52-6a53-4c8e-9a3e-42a1ca3a0042")


def unique_id(device: Qhy42Device) -> str:
    return str(uuid.uuid5(UNIQUE_ID_NAMESPACE, f"camera/{device.name}"))


def description(location: str) -> dict[str, Any]:
    return {"ServerName": SERVER_NAME, "Manufacturer": MANUFACTURER,
            "ManufacturerVersion": __version__, "Location": location}


def configured_devices(cameras: list[Qhy42Device]) -> list[dict[str, Any]]:
    return [{"DeviceName": device.name, "DeviceType": "Camera", "DeviceNumber": number,
             "UniqueID": unique_id(device)} for number, device in enumerate(cameras)]
