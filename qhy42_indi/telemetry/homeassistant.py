"""Home Assistant MQTT discovery: the camera appears as a device with sensors, unconfigured.

One retained config message per entity at
`<discovery prefix>/<component>/<node>/<object>/config`, as Home Assistant documents MQTT
discovery: node is `qhy42-indi_<device slug>`, object the state topic's leaf. Each entity
reads a JSON state topic of state.py, is available while `<prefix>/status` is `online`, and
belongs to one HA device per camera. Sent at every broker connection (they are retained, so
sending again is harmless and survives a broker that lost them).
"""

from __future__ import annotations

from typing import Any

from qhy42_indi import __version__
from qhy42_indi.telemetry.state import Publication, TelemetryState, slug

# object, component, name, state leaf, value template, unit, device class, state class
_ENTITIES: tuple[tuple[str, str, str, str, str, str | None, str | None, str | None], ...] = (
    ("connection", "binary_sensor", "Connected", "connection",
     "{{ 'ON' if value_json.value == 'connected' else 'OFF' }}", None, "connectivity", None),
    ("temperature", "sensor", "Sensor temperature", "temperature",
     "{{ value_json.value }}", "°C", "temperature", "measurement"),
    ("setpoint", "sensor", "Temperature set-point", "setpoint",
     "{{ value_json.value }}", "°C", "temperature", None),
    ("cooler_power", "sensor", "Cooler power", "cooler_power",
     "{{ value_json.value }}", "%", "power_factor", "measurement"),
    ("supply_voltage", "sensor", "Supply voltage", "supply_voltage",
     "{{ value_json.value }}", "V", "voltage", "measurement"),
    ("exposure_state", "sensor", "Exposure", "exposure",
     "{{ value_json.state }}", None, None, None),
    ("exposure_left", "sensor", "Exposure left", "exposure",
     "{{ value_json.left_s }}", "s", "duration", None),
    ("read_mode", "sensor", "Read mode", "read_mode",
     "{{ value_json.name }}", None, None, None),
    ("gain", "sensor", "Gain", "gain", "{{ value_json.value }}", None, None, None),
    ("offset", "sensor", "Offset", "offset", "{{ value_json.value }}", None, None, None),
    ("last_frame", "sensor", "Last frame", "frame",
     "{{ value_json.sequence }}", None, None, None),
)


def discovery_messages(
    state: TelemetryState, discovery_prefix: str, devices: list[str]
) -> list[Publication]:
    published = []
    for device in devices:
        node = f"qhy42-indi_{slug(device)}"
        for object_id, component, name, leaf, template, unit, device_class, state_class in (
            _ENTITIES
        ):
            payload: dict[str, Any] = {
                "name": name,
                "unique_id": f"{node}_{object_id}",
                "object_id": f"{slug(device)}_{object_id}",
                "state_topic": state.device_topic(device, leaf),
                "value_template": template,
                "availability_topic": state.status_topic,
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": {
                    "identifiers": [node],
                    "name": device,
                    "manufacturer": "QHYCCD",
                    "model": "QHY42PRO",
                    "sw_version": f"qhy42-indi {__version__}",
                },
            }
            if unit:
                payload["unit_of_measurement"] = unit
            if device_class:
                payload["device_class"] = device_class
            if state_class:
                payload["state_class"] = state_class
            topic = f"{discovery_prefix}/{component}/{node}/{object_id}/config"
            published.append(Publication(topic, payload, retain=True))
    return published
