"""Commands over MQTT: `<prefix>/<device>/set/<PROPERTY>`, for the allow-listed properties.

Off unless `mqtt.commands` lists properties (config.MQTT_COMMANDABLE says which may be listed).
A command becomes the newXXXVector an INDI client would send and goes through the device's
own checks (defined now, writable, known members, limits, switch rule) and handler, so MQTT
can do nothing a client could not. The payload is JSON: an object of member values
(`{"CCD_EXPOSURE_VALUE": 30}`, `{"COOLER_ON": true}`), or, as a shorthand, a bare number for a
one-number property (`30`) or a member name to switch on (`"CONNECT"`, or CONNECT unquoted).
Every command is answered on `<prefix>/<device>/set_result` (not retained):
`{"property", "accepted", "state", "message"}` or `{"property", "accepted": false, "reason"}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Collection
from typing import Any

from qhy42_indi.camera.device_base import PropertyDevice
from qhy42_indi.indi.messages import (
    NewVector,
    NumberElement,
    PropertyState,
    SwitchElement,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.properties import PropertyVector
from qhy42_indi.server.hub import Hub
from qhy42_indi.telemetry.state import Publication, TelemetryState

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096


class CommandRefused(Exception):
    """A command not applied; the text says why."""


class MqttCommands:
    def __init__(self, hub: Hub, state: TelemetryState, allowed: Collection[str]) -> None:
        self._hub = hub
        self._state = state
        self._allowed = frozenset(allowed)

    @property
    def subscription(self) -> str:
        return f"{self._state.prefix}/+/set/+"

    async def handle(self, topic: str, payload: bytes) -> Publication | None:
        """Apply one command message; the answer to publish (None: not a command topic)."""
        levels = topic.removeprefix(self._state.prefix + "/").split("/")
        if len(levels) != 3 or levels[1] != "set":
            return None
        device_slug, _, name = levels
        device_name = self._state.device_named(device_slug)
        answer_topic = f"{self._state.prefix}/{device_slug}/set_result"
        try:
            device = self._device(device_name, device_slug)
            command = self._command(device, name, payload)
        except CommandRefused as refusal:
            log.warning("%s %s: MQTT command refused: %s", device_name or device_slug, name,
                        refusal)
            return Publication(answer_topic, {"property": name, "accepted": False,
                                              "reason": str(refusal)}, retain=False)
        log.info("%s %s: MQTT command %s", device.name, name,
                 {e.name: getattr(e, "value", None) for e in command.elements})
        await device.handle_new(command)
        vector = device.props[name]
        answer: dict[str, Any] = {"property": name, "accepted": True, "state": str(vector.state)}
        alert = self._state.last_alert(device.name, name)
        if alert and vector.state is PropertyState.ALERT:
            answer["message"] = alert
        return Publication(answer_topic, answer, retain=False)

    def _device(self, device_name: str | None, device_slug: str) -> PropertyDevice:
        device = self._hub.devices.get(device_name or "")
        if not isinstance(device, PropertyDevice):
            raise CommandRefused(f"no device {device_slug}")
        return device

    def _command(self, device: PropertyDevice, name: str, payload: bytes) -> NewVector:
        if name not in self._allowed:
            raise CommandRefused(f"{name} is not in mqtt.commands")
        vector = device.props.get(name)
        if vector is None or name not in device.defined:
            raise CommandRefused(f"{name} is not defined now (is the camera connected?)")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise CommandRefused(f"payload over {MAX_PAYLOAD_BYTES} bytes")
        values = _members(vector, _decode(payload))
        elements = tuple(_element(vector, member, value) for member, value in values.items())
        return NewVector(kind=vector.kind, device=device.name, name=name, elements=elements)


def _decode(payload: bytes) -> Any:
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare member name, unquoted


def _members(vector: PropertyVector, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        if not value:
            raise CommandRefused("no member values given")
        return value
    names = [e.name for e in vector.elements]
    if vector.kind is VectorKind.SWITCH and isinstance(value, str) and value in names:
        return {value: True}
    if vector.kind is VectorKind.SWITCH and len(names) == 1 and isinstance(value, bool):
        return {names[0]: value}
    if (vector.kind is not VectorKind.SWITCH and len(names) == 1
            and not isinstance(value, dict | list)):
        return {names[0]: value}
    raise CommandRefused(
        f"payload must be a JSON object of {vector.name} member values ({', '.join(names)})"
    )


def _element(
    vector: PropertyVector, member: str, value: Any
) -> NumberElement | SwitchElement | TextElement:
    if member not in {e.name for e in vector.elements}:
        raise CommandRefused(f"{vector.name} has no member {member}")
    if vector.kind is VectorKind.NUMBER:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CommandRefused(f"{vector.name}.{member} must be a number, not {value!r}")
        return NumberElement(name=member, value=float(value))
    if vector.kind is VectorKind.SWITCH:
        if isinstance(value, bool):
            return SwitchElement(name=member, value=SwitchState.ON if value else SwitchState.OFF)
        if value in ("On", "Off"):
            return SwitchElement(name=member, value=SwitchState(value))
        raise CommandRefused(f"{vector.name}.{member} must be true/false, not {value!r}")
    if vector.kind is VectorKind.TEXT and isinstance(value, str):
        return TextElement(name=member, value=value)
    raise CommandRefused(f"{vector.name}.{member} cannot be set to {value!r}")
