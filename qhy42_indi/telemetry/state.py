"""What the camera says on INDI, as MQTT topics and JSON payloads: sans-IO.

Fed every message the devices publish (the hub's observer), it returns the publications they
mean: retained state topics (the current value, for late subscribers) and events (one per
frame, device messages). It keeps the latest payload of every retained topic, so a fresh
broker connection can republish the whole state at once. No asyncio, no MQTT client here:
mqtt.py moves these to the broker, and tests feed messages and read publications.

Topics, under `<prefix>/<device>/` where <device> is the INDI device name in lower case with
every run of characters other than a-z, 0-9, - and _ replaced by one _ ("QHY CCD
QHY42PRO-SIM01" -> "qhy_ccd_qhy42pro-sim01"):

  retained   connection, temperature, setpoint, cooler, cooler_power, supply_voltage,
             exposure, read_mode, gain, offset, gps/<name> (for each GPS_<NAME> property)
  events     frame (one per frame taken), message (the device's messages), set_result

`<prefix>/status` (online/offline, retained, the MQTT last will) is mqtt.py's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    IndiMessage,
    LightElement,
    Message,
    NumberElement,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchState,
    TextElement,
)
from qhy42_indi.telemetry.fits_header import HeaderValue, file_header_values, header_values

FRAME_KEYWORDS = ("EXPTIME", "DATE-OBS", "IMAGETYP")
UPLOAD_LOCAL = "UPLOAD_LOCAL"


@dataclass(frozen=True, slots=True)
class Publication:
    """One MQTT message to send. `header_file`: a frame saved only to disk, whose event
    still needs its size and header values read from that file (blocking: see
    complete_from_file)."""

    topic: str
    payload: dict[str, Any]
    retain: bool
    header_file: str | None = None

    def body(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":"), allow_nan=False).encode()


def slug(name: str) -> str:
    """A device name as one topic level (and a Home Assistant object id)."""
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_") or "device"


def iso_time(timestamp: str | None) -> str:
    """An INDI timestamp (UTC, no zone) as ISO 8601 with Z; now when there is none."""
    if not timestamp:
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return timestamp if timestamp.endswith("Z") else f"{timestamp}Z"


def _values(message: DefVector | SetVector) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for element in message.elements:
        if isinstance(element, NumberElement):
            values[element.name] = float(element.value)
        elif isinstance(element, TextElement | SwitchElement | LightElement):
            values[element.name] = element.value
    return values


def _state(message: DefVector | SetVector, previous: PropertyState) -> PropertyState:
    return message.state if message.state is not None else previous


def _text(message: str | None) -> str | None:
    """A message without its [ERROR]/[WARNING] tag."""
    if message is None:
        return None
    return re.sub(r"^\[[A-Z]+\]\s*", "", message)


@dataclass
class _Exposure:
    state: str = "idle"
    requested_s: float = 0.0
    left_s: float = 0.0
    frames_left: int = 0


@dataclass
class _Device:
    name: str
    slug: str
    states: dict[str, PropertyState] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    exposure: _Exposure = field(default_factory=_Exposure)
    upload_mode: str = "UPLOAD_CLIENT"
    saved_path: str | None = None
    save_error: str | None = None
    frames: int = 0
    setpoint_c: float | None = None
    setpoint_known: bool = False
    alerts: dict[str, str] = field(default_factory=dict)


class TelemetryState:
    def __init__(
        self, prefix: str, setpoint_of: Callable[[str], float | None] = lambda _: None
    ) -> None:
        self.prefix = prefix
        self._setpoint_of = setpoint_of
        self._devices: dict[str, _Device] = {}
        self._retained: dict[str, Publication] = {}
        self._handlers: dict[str, Callable[[_Device, DefVector | SetVector], list[Publication]]]
        self._handlers = {
            "CONNECTION": self._connection,
            "CCD_TEMPERATURE": self._temperature,
            "CCD_COOLER": self._cooler,
            "CCD_COOLER_MODE": self._cooler,
            "CCD_COOLER_POWER": self._measurement("cooler_power", "CCD_COOLER_VALUE", "%"),
            "SUPPLY_VOLTAGE": self._measurement("supply_voltage", "VOLTAGE", "V"),
            "CCD_EXPOSURE": self._exposure,
            "CCD_FAST_COUNT": self._fast_count,
            "READ_MODE": self._read_mode,
            "READ_MODE_INFO": self._read_mode,
            "CCD_GAIN": self._measurement("gain", "GAIN", None),
            "CCD_OFFSET": self._measurement("offset", "OFFSET", None),
            "UPLOAD_MODE": self._upload_mode,
            "CCD_FILE_PATH": self._file_path,
            "CCD1": self._blob,
        }

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    def device_topic(self, device: str, leaf: str) -> str:
        return f"{self.prefix}/{slug(device)}/{leaf}"

    def device_named(self, device_slug: str) -> str | None:
        """The device name behind a topic level, among those seen so far."""
        return next((d.name for d in self._devices.values() if d.slug == device_slug), None)

    def last_alert(self, device: str, name: str) -> str | None:
        known = self._devices.get(device)
        return known.alerts.get(name) if known else None

    def snapshot(self) -> list[Publication]:
        """The latest publication of every retained topic, for a fresh broker connection."""
        return list(self._retained.values())

    # ---- feeding ---------------------------------------------------------------------------

    def feed(self, message: IndiMessage) -> list[Publication]:
        if isinstance(message, DefVector | SetVector):
            device = self._device(message.device)
            if message.state is PropertyState.ALERT and message.message:
                device.alerts[message.name] = _text(message.message) or ""
            handler = self._handlers.get(message.name)
            if handler is None and message.name.startswith("GPS_"):
                handler = self._gps
            if handler is None:
                return []
            published = handler(device, message)
            device.states[message.name] = _state(message, PropertyState.IDLE)
        elif isinstance(message, DelProperty):
            published = self._deleted(self._device(message.device), message.name)
        elif isinstance(message, Message) and message.device and message.message:
            topic = self.device_topic(message.device, "message")
            payload = {"text": message.message, "time": iso_time(message.timestamp)}
            published = [Publication(topic, payload, retain=False)]
        else:
            return []
        for publication in published:
            if publication.retain:
                self._retained[publication.topic] = publication
        return published

    def _device(self, name: str) -> _Device:
        known = self._devices.get(name)
        if known is None:
            known = self._devices[name] = _Device(name, slug(name))
        return known

    def _retain(self, device: _Device, leaf: str, message: IndiMessage | None,
                **payload: Any) -> Publication:
        timestamp = getattr(message, "timestamp", None)
        return Publication(self.device_topic(device.name, leaf),
                           {**payload, "time": iso_time(timestamp)}, retain=True)

    # ---- state topics ----------------------------------------------------------------------

    def _connection(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        connected = _values(message).get("CONNECT") is SwitchState.ON
        return [self._retain(device, "connection", message,
                             value="connected" if connected else "disconnected",
                             state=str(_state(message, PropertyState.IDLE)))]

    def _measurement(
        self, leaf: str, member: str, unit: str | None
    ) -> Callable[[_Device, DefVector | SetVector], list[Publication]]:
        def publish(device: _Device, message: DefVector | SetVector) -> list[Publication]:
            value = _values(message).get(member)
            extra = {"unit": unit} if unit else {}
            return [self._retain(device, leaf, message, value=value, **extra,
                                 state=str(_state(message, PropertyState.IDLE)))]
        return publish

    def _temperature(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        value = _values(message).get("CCD_TEMPERATURE_VALUE")
        return [self._retain(device, "temperature", message, value=value, unit="C",
                             state=str(_state(message, PropertyState.IDLE))),
                *self._setpoint(device, message)]

    def _setpoint(self, device: _Device, message: IndiMessage) -> list[Publication]:
        setpoint = self._setpoint_of(device.name)
        if device.setpoint_known and setpoint == device.setpoint_c:
            return []
        device.setpoint_c, device.setpoint_known = setpoint, True
        return [self._retain(device, "setpoint", message, value=setpoint, unit="C")]

    def _cooler(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        device.values[message.name] = _values(message)
        cooler = device.values.get("CCD_COOLER", {})
        mode = device.values.get("CCD_COOLER_MODE", {})
        on = cooler.get("COOLER_ON") is SwitchState.ON
        manual = mode.get("COOLER_MANUAL") is SwitchState.ON
        return [self._retain(device, "cooler", message, value="on" if on else "off",
                             mode="manual" if manual else "automatic"),
                *self._setpoint(device, message)]

    def _read_mode(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        device.values[message.name] = _values(message)
        mode = device.values.get("READ_MODE", {}).get("MODE")
        name = device.values.get("READ_MODE_INFO", {}).get("NAME")
        return [self._retain(device, "read_mode", message,
                             value=None if mode is None else int(mode), name=name)]

    def _gps(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        values = _values(message)
        payload: dict[str, Any] = {
            "state": str(_state(message, PropertyState.IDLE)),
            "values": {k: str(v) if isinstance(v, SwitchState | PropertyState) else v
                       for k, v in values.items()},
        }
        lit = [k for k, v in values.items() if v in (PropertyState.OK, PropertyState.BUSY)]
        on = [k for k, v in values.items() if v is SwitchState.ON]
        if any(isinstance(e, LightElement) for e in message.elements):
            payload["value"] = lit[-1].removeprefix("GPS_").lower() if lit else "off"
        elif on:
            payload["value"] = on[0]
        leaf = "gps/" + message.name.removeprefix("GPS_").lower()
        return [self._retain(device, leaf, message, **payload)]

    # ---- exposures -------------------------------------------------------------------------

    def _fast_count(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        busy = _state(message, PropertyState.IDLE) is PropertyState.BUSY
        frames = _values(message).get("FRAMES", 0)
        device.exposure.frames_left = int(frames) if busy else 0
        return []

    def _exposure(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        exposure = device.exposure
        value = float(_values(message).get("CCD_EXPOSURE_VALUE", 0.0))
        state = _state(message, PropertyState.IDLE)
        error = None
        if state is PropertyState.BUSY:
            # A value above what was left is a new exposure (fast exposure starts the next
            # one without an Ok in between).
            if exposure.state != "exposing" or value > exposure.left_s:
                exposure.requested_s = value
            exposure.state, exposure.left_s = "exposing", value
        elif state is PropertyState.OK:
            exposure.state, exposure.left_s = "complete", 0.0
        elif state is PropertyState.ALERT:
            exposure.state, exposure.left_s = "failed", 0.0
            error = _text(message.message)
        else:
            exposure.state = "aborted" if exposure.state == "exposing" else "idle"
            exposure.left_s = 0.0
        requested = exposure.requested_s
        progress = 1.0 if exposure.state == "complete" else (
            round(1.0 - exposure.left_s / requested, 3)
            if exposure.state == "exposing" and requested > 0 else 0.0)
        payload: dict[str, Any] = {
            "state": exposure.state,
            "requested_s": requested,
            "left_s": round(exposure.left_s, 3),
            "progress": max(0.0, min(1.0, progress)),
        }
        if exposure.frames_left and exposure.state == "exposing":
            payload["frames_left"] = exposure.frames_left
        if error:
            payload["error"] = error
        return [self._retain(device, "exposure", message, **payload)]

    # ---- frame events ----------------------------------------------------------------------

    def _upload_mode(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        on = [k for k, v in _values(message).items() if v is SwitchState.ON]
        if on:
            device.upload_mode = on[0]
        return []

    def _file_path(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        if not isinstance(message, SetVector):
            return []
        if message.state is PropertyState.ALERT:
            device.saved_path, device.save_error = None, _text(message.message)
            return []
        if message.state is not PropertyState.OK:
            return []
        path = str(_values(message).get("FILE_PATH", ""))
        if device.upload_mode != UPLOAD_LOCAL:
            device.saved_path, device.save_error = path, None  # its BLOB follows
            return []
        return [self._frame(device, message, path=path, header_file=path)]

    def _blob(self, device: _Device, message: DefVector | SetVector) -> list[Publication]:
        if not isinstance(message, SetVector) or message.state is PropertyState.ALERT:
            return []
        blob = next((e for e in message.elements if isinstance(e, BlobElement)), None)
        if blob is None or blob.size <= 0 or "stream" in blob.format:
            return []  # video streams are not frames worth an event each
        header = header_values(blob.data, FRAME_KEYWORDS) if blob.data is not None else {}
        path, error = device.saved_path, device.save_error
        device.saved_path = device.save_error = None
        return [self._frame(device, message, path=path, header=header, size=blob.size,
                            fmt=blob.format, save_error=error)]

    def _frame(
        self,
        device: _Device,
        message: SetVector,
        *,
        path: str | None,
        header: dict[str, HeaderValue] | None = None,
        size: int | None = None,
        fmt: str | None = None,
        header_file: str | None = None,
        save_error: str | None = None,
    ) -> Publication:
        device.frames += 1
        payload: dict[str, Any] = {
            "sequence": device.frames,
            "path": path or None,
            "size": size,
            "format": fmt if fmt is not None else _format_of(path),
            **frame_fields(header or {}),
            "time": iso_time(message.timestamp),
        }
        if save_error:
            payload["save_error"] = save_error
        return Publication(self.device_topic(device.name, "frame"), payload, retain=False,
                           header_file=header_file)

    def _deleted(self, device: _Device, name: str | None) -> list[Publication]:
        """A property gone (the camera disconnected): its topics say so with a null value."""
        base = self.device_topic(device.name, "")
        if name is None:
            leaves = [t.removeprefix(base) for t in self._retained
                      if t.startswith(base) and t != base + "connection"]
        elif name.startswith("GPS_"):
            leaves = ["gps/" + name.removeprefix("GPS_").lower()]
        else:
            leaves = list(_LEAVES.get(name, ()))
        if name in ("CCD_TEMPERATURE", None):
            device.setpoint_known = False
        published = []
        for leaf in leaves:
            topic = base + leaf
            known = self._retained.get(topic)
            if known is not None and known.payload.get("value", 0) is not None:
                published.append(Publication(topic, {"value": None, "time": iso_time(None)},
                                             retain=True))
        return published


# The retained topics each property feeds (for DelProperty).
_LEAVES = {
    "CCD_TEMPERATURE": ("temperature", "setpoint"),
    "CCD_COOLER": ("cooler",),
    "CCD_COOLER_MODE": ("cooler",),
    "CCD_COOLER_POWER": ("cooler_power",),
    "SUPPLY_VOLTAGE": ("supply_voltage",),
    "CCD_EXPOSURE": ("exposure",),
    "READ_MODE": ("read_mode",),
    "READ_MODE_INFO": ("read_mode",),
    "CCD_GAIN": ("gain",),
    "CCD_OFFSET": ("offset",),
}


def _format_of(path: str | None) -> str | None:
    if not path:
        return None
    name = Path(path).name
    return name[name.find("."):] if "." in name else None


def frame_fields(header: dict[str, HeaderValue]) -> dict[str, Any]:
    """The frame event's fields taken from its FITS header (None when not found)."""
    exposure = header.get("EXPTIME")
    start = header.get("DATE-OBS")
    frame_type = header.get("IMAGETYP")
    return {
        "exposure_s": float(exposure) if isinstance(exposure, int | float) else None,
        "start": iso_time(start) if isinstance(start, str) and start else None,
        "frame_type": frame_type if isinstance(frame_type, str) else None,
    }


def complete_from_file(publication: Publication) -> Publication:
    """Blocking (run it in a worker thread): a locally saved frame's event, with the size and
    header values read from its file. A file that is gone already leaves them null."""
    if publication.header_file is None:
        return publication
    try:
        header, size = file_header_values(Path(publication.header_file), FRAME_KEYWORDS)
    except OSError:
        header, size = {}, None
    payload = {**publication.payload, "size": size, **frame_fields(header)}
    return replace(publication, payload=payload, header_file=None)
