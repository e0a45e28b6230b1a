"""The at-a-glance model: what the page shows of each camera, its clients and its messages.

`camera_status` reads a device's current property values (the ones its INDI clients see)
and its core's state into plain JSON-ready data. `Glance` watches the hub's messages: it keeps
the device messages and the cooling history, and says which parts of the page changed, so
that the feed sends only those. It is called on the loop for every message and returns at
once: no I/O, no copying of vectors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.front.http import HttpClients
from qhy42_indi.indi.messages import (
    DefVector,
    DelProperty,
    IndiMessage,
    Message,
    PropertyState,
    SetVector,
)
from qhy42_indi.indi.properties import PropertyVector
from qhy42_indi.server.hub import Hub
from qhy42_indi.web.history import CoolingHistory, CoolingSample
from qhy42_indi.web.logbook import Ring

LOW_SUPPLY_V = 11.5
GPS_STATUS = {0: "on", 1: "no lock", 2: "valid", 3: "locked"}
# The properties whose changes the status part of the page shows; others are not pushed.
SHOWN = frozenset({
    "CONNECTION", "CCD_EXPOSURE", "CCD_TEMPERATURE", "CCD_COOLER", "CCD_COOLER_POWER",
    "SUPPLY_VOLTAGE", "READ_MODE", "READ_MODE_INFO", "CCD_GAIN", "CCD_OFFSET", "CCD_BINNING",
    "CCD_FRAME", "CCD_FRAME_TYPE", "GPS_STATE", "GPS_DATA", "EXPOSURE_TIMING", "LINE_PERIOD",
    "UPLOAD_SETTINGS", "UPLOAD_MODE", "HDR_OUTPUT", "CCD_FILE_PATH", "CCD_VIDEO_STREAM",
})
COOLING = frozenset({"CCD_TEMPERATURE", "CCD_COOLER_POWER"})

Json = dict[str, Any]


def _defined(device: Qhy42Device, name: str) -> PropertyVector | None:
    return device.props.get(name) if name in device.defined else None


def _number(device: Qhy42Device, name: str, member: str) -> float | None:
    vector = _defined(device, name)
    if vector is None:
        return None
    value = vector.value(member)
    return float(value) if isinstance(value, float | int) and math.isfinite(value) else None


def _text(device: Qhy42Device, name: str, member: str) -> str | None:
    vector = _defined(device, name)
    return None if vector is None else str(vector.value(member))


def _on(device: Qhy42Device, name: str) -> str | None:
    vector = _defined(device, name)
    if vector is None:
        return None
    on = vector.on_switches()
    return on[0] if on else None


def _limits(device: Qhy42Device, name: str, member: str) -> list[float | None] | None:
    vector = _defined(device, name)
    if vector is None:
        return None
    element = vector.number(member)
    return [element.min, element.max, element.step]


def camera_status(index: int, device: Qhy42Device) -> Json:
    """What the page shows of one camera, as it is now."""
    states = {name: str(device.props[name].state) for name in SHOWN if name in device.defined}
    exposing = states.get("CCD_EXPOSURE") == PropertyState.BUSY
    voltage = _number(device, "SUPPLY_VOLTAGE", "VOLTAGE")
    gps_status = _number(device, "GPS_STATE", "STATUS")
    return {
        "index": index,
        "name": device.name,
        "state": str(device.core.state),
        "connected": device.connected,
        "exposure_left_s": _number(device, "CCD_EXPOSURE", "CCD_EXPOSURE_VALUE")
        if exposing else None,
        "temperature_c": _number(device, "CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE"),
        "setpoint_c": device.cooling.target_c,
        "cooler": _on(device, "CCD_COOLER"),
        "cooler_power": _number(device, "CCD_COOLER_POWER", "CCD_COOLER_VALUE"),
        "voltage": voltage,
        "voltage_low": voltage is not None and voltage < LOW_SUPPLY_V,
        "read_mode": _number(device, "READ_MODE", "MODE"),
        "read_mode_name": _text(device, "READ_MODE_INFO", "NAME"),
        "gain": _number(device, "CCD_GAIN", "GAIN"),
        "offset": _number(device, "CCD_OFFSET", "OFFSET"),
        "binning": [_number(device, "CCD_BINNING", "HOR_BIN"),
                    _number(device, "CCD_BINNING", "VER_BIN")],
        "frame": [_number(device, "CCD_FRAME", m) for m in ("X", "Y", "WIDTH", "HEIGHT")],
        "frame_type": _on(device, "CCD_FRAME_TYPE"),
        "hdr_output": _on(device, "HDR_OUTPUT"),
        "upload_dir": _text(device, "UPLOAD_SETTINGS", "UPLOAD_DIR"),
        "upload_prefix": _text(device, "UPLOAD_SETTINGS", "UPLOAD_PREFIX"),
        "upload_mode": _on(device, "UPLOAD_MODE"),
        "file_path": _text(device, "CCD_FILE_PATH", "FILE_PATH"),
        "gps": None if gps_status is None else {
            "status": GPS_STATUS.get(int(gps_status), str(gps_status)),
            "pps_counter": _number(device, "GPS_STATE", "PPS_COUNTER"),
            "latitude": _text(device, "GPS_DATA", "LATITUDE"),
            "longitude": _text(device, "GPS_DATA", "LONGITUDE"),
        },
        "timing": {
            "start_utc": _text(device, "EXPOSURE_TIMING", "START_UTC"),
            "time_source": _text(device, "EXPOSURE_TIMING", "TIME_SOURCE"),
            "sequence": _text(device, "EXPOSURE_TIMING", "SEQUENCE"),
            "line_period_us": _number(device, "LINE_PERIOD", "PERIOD"),
        },
        "limits": {
            "gain": _limits(device, "CCD_GAIN", "GAIN"),
            "offset": _limits(device, "CCD_OFFSET", "OFFSET"),
            "read_mode": _limits(device, "READ_MODE", "MODE"),
            "temperature": _limits(device, "CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE"),
            "exposure": _limits(device, "CCD_EXPOSURE", "CCD_EXPOSURE_VALUE"),
        },
        "property_states": states,
    }


def clients_now(hub: Hub, http: HttpClients, mqtt: Json | None) -> list[Json]:
    """Everyone using the daemon now: INDI connections, HTTP clients heard lately, MQTT."""
    listed: list[Json] = [
        {"kind": "INDI", "address": c.peer, "since": c.since, "read_only": c.read_only}
        for c in sorted(hub.connections, key=lambda c: c.since)
    ]
    listed += [{"kind": c.kind, "address": c.address, "since": c.first_seen,
                "read_only": c.read_only} for c in http.recent()]
    if mqtt is not None:
        listed.append(mqtt)
    return listed


class Glance:
    """Follows the hub's messages for the page: device messages, cooling history, changes."""

    def __init__(self, cameras: Callable[[], Iterable[Qhy42Device]],
                 changed: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self._cameras = cameras
        self._changed = changed
        self._clock = clock
        self.messages = Ring()
        self.history: dict[str, CoolingHistory] = {}

    def observe(self, message: IndiMessage) -> None:
        if isinstance(message, Message):
            if message.message:
                self.messages.add(self._clock(), "INFO", message.device or "", message.message)
                self._changed("messages")
            return
        if not isinstance(message, SetVector | DefVector | DelProperty):
            return
        if isinstance(message, SetVector | DefVector) and message.message:
            level = "WARNING" if message.state is PropertyState.ALERT else "INFO"
            self.messages.add(self._clock(), level, message.device,
                              f"{message.name}: {message.message}")
            self._changed("messages")
        if message.name in SHOWN or isinstance(message, DelProperty):
            self._changed("status")
        if isinstance(message, SetVector | DefVector) and message.name in COOLING:
            self._record_cooling(message.device)

    def _record_cooling(self, device_name: str) -> None:
        device = next((d for d in self._cameras() if d.name == device_name), None)
        if device is None:
            return
        temperature = _number(device, "CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE")
        if temperature is None:
            return
        history = self.history.setdefault(device_name, CoolingHistory())
        history.record(self._clock(), temperature, device.cooling.target_c,
                       _number(device, "CCD_COOLER_POWER", "CCD_COOLER_VALUE"))
        self._changed("history")  # a new sample, or the pending reading the plot ends with


def samples_json(history: CoolingHistory | None, since: int) -> list[list[float | None]]:
    if history is None:
        return []
    return [_sample_json(s) for s in history.since(since)]


def pending_json(history: CoolingHistory | None) -> list[float | None] | None:
    pending = None if history is None else history.pending
    return None if pending is None else _sample_json(pending)


def _sample_json(s: CoolingSample) -> list[float | None]:
    return [s.seq, s.time_s, s.temperature_c, s.setpoint_c, s.power_percent]


def lines_json(lines: Iterable[Any]) -> list[Json]:
    return [{"seq": line.seq, "time": line.time_s, "level": line.level, "source": line.source,
             "text": line.text} for line in lines]

