"""A command from the page, checked as input before it becomes a gateway command.

The page posts `{"camera": 0, "property": "CCD_GAIN", "values": {"GAIN": 30}}`. Only the
properties the page has controls for are accepted, each member must exist, numbers must be
finite numbers, switches "On" or "Off", texts strings of bounded length. Anything else is a
BadCommand that changes nothing; the device then applies its own checks (limits, the core's
state table) as for an INDI client.
"""

from __future__ import annotations

import math
from typing import Any

from qhy42_indi.indi.messages import SwitchState, VectorKind
from qhy42_indi.indi.properties import PropertyVector, Value

CONTROLS = frozenset({
    "CONNECTION", "CCD_COOLER", "CCD_TEMPERATURE", "CCD_EXPOSURE", "CCD_ABORT_EXPOSURE",
    "READ_MODE", "CCD_GAIN", "CCD_OFFSET", "CCD_BINNING", "CCD_FRAME", "CCD_FRAME_TYPE",
    "UPLOAD_SETTINGS", "UPLOAD_MODE", "HDR_OUTPUT",
})
MAX_TEXT = 1024


class BadCommand(ValueError):
    pass


def parse_request(body: Any) -> tuple[int, str, dict[str, Any]]:
    """camera index, property name and raw values from the posted JSON."""
    if not isinstance(body, dict):
        raise BadCommand("the body must be a JSON object")
    camera, name, values = body.get("camera"), body.get("property"), body.get("values")
    if not isinstance(camera, int) or isinstance(camera, bool) or camera < 0:
        raise BadCommand("camera must be a camera's index")
    if not isinstance(name, str) or name not in CONTROLS:
        raise BadCommand(f"the page does not control {name!r}")
    if not isinstance(values, dict) or not values:
        raise BadCommand("values must be an object of member names and values")
    return camera, name, values


def checked_values(vector: PropertyVector, values: dict[str, Any]) -> dict[str, Value]:
    """`values` in the vector's terms; BadCommand for a member or value it cannot take."""
    members = vector.values()
    out: dict[str, Value] = {}
    for member, raw in values.items():
        if member not in members:
            raise BadCommand(f"{vector.name} has no member {member!r}")
        out[member] = _value(vector.kind, member, raw)
    return out


def _value(kind: VectorKind, member: str, raw: Any) -> Value:
    if kind is VectorKind.NUMBER:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise BadCommand(f"{member} must be a finite number")
        return float(raw)
    if kind is VectorKind.SWITCH:
        if raw not in ("On", "Off"):
            raise BadCommand(f"{member} must be On or Off")
        return SwitchState(raw)
    if kind is VectorKind.TEXT:
        if not isinstance(raw, str) or len(raw) > MAX_TEXT or "\0" in raw:
            raise BadCommand(f"{member} must be a text of at most {MAX_TEXT} characters")
        return raw
    raise BadCommand(f"the page cannot set a {kind} vector")
