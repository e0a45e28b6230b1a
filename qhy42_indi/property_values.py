"""INDI property values written in the daemon's configuration, checked before they are used.

`[camera.defaults]` and `[upload]` name property values to apply when a camera connects. They
are checked here, at start, against the xml/ skeletons exactly as a client's newXXXVector is
checked (known property, writable, known members, member types, number limits, switch rule),
so a mistake stops the daemon with a message naming the key instead of surfacing as an Alert
at 3 a.m. The result is the commands themselves, without a device name; connect_defaults.py
applies them. Pure: no device, no asyncio.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qhy42_indi.indi.messages import (
    NewVector,
    NumberElement,
    Perm,
    SwitchElement,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.properties import InvalidInput, PropertyVector
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir

# Actions, not settings: applying them on every CONNECT would be surprising or harmful.
NOT_PRESETTABLE = frozenset(
    {"CONNECTION", "CONFIG_PROCESS", "CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CCD_FRAME_RESET"}
)
UPLOAD_MODES = {"client": "UPLOAD_CLIENT", "local": "UPLOAD_LOCAL", "both": "UPLOAD_BOTH"}


class PropertyValueError(ValueError):
    """A configured property value that a client's command could not set; names the key."""


@dataclass(frozen=True, slots=True)
class PresetCommand:
    """A command to apply on CONNECT, and the configuration key it came from."""

    key: str
    command: NewVector

    def for_device(self, device: str) -> NewVector:
        command = self.command
        return NewVector(kind=command.kind, device=device, name=command.name,
                         elements=command.elements)


@functools.cache
def skeleton_properties() -> Mapping[str, PropertyVector]:
    """Every property the camera can define, by name (read them, do not change them)."""
    properties: dict[str, PropertyVector] = {}
    for path in sorted(skeleton_dir().glob("qhy42_*_sk.xml")):
        for vector in load_skeleton(path):
            properties[vector.name] = vector
    return properties


def writable_properties() -> list[str]:
    return sorted(n for n, v in skeleton_properties().items() if v.perm is not Perm.RO
                  and v.kind is not VectorKind.LIGHT)


def preset_command(key: str, name: str, values: Mapping[str, Any]) -> PresetCommand:
    """The command that sets property `name` to `values`, checked; `key` prefixes errors."""
    vector = skeleton_properties().get(name)
    if vector is None:
        raise PropertyValueError(f"{key}: the camera has no property {name}")
    if name in NOT_PRESETTABLE or vector.perm is Perm.RO or vector.kind is VectorKind.BLOB:
        raise PropertyValueError(f"{key}: {name} is an action or read-only, not a setting")
    if not isinstance(values, Mapping) or not values:
        raise PropertyValueError(
            f"{key} must be a table of member values, e.g. {{ {vector.elements[0].name} = ... }}"
        )
    elements = tuple(_element(vector, f"{key}.{member}", member, value)
                     for member, value in values.items())
    command = NewVector(kind=vector.kind, device="", name=name, elements=elements)
    try:
        vector.propose(command)
    except InvalidInput as error:
        raise PropertyValueError(f"{key}: {error}") from error
    return PresetCommand(key, command)


def _element(
    vector: PropertyVector, key: str, member: str, value: Any
) -> NumberElement | TextElement | SwitchElement:
    try:
        vector.element(member)
    except KeyError:
        members = ", ".join(e.name for e in vector.elements)
        raise PropertyValueError(
            f"{key}: {vector.name} has no member {member} (it has {members})"
        ) from None
    if vector.kind is VectorKind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PropertyValueError(f"{key} must be a number, not {value!r}")
        return NumberElement(name=member, value=float(value))
    if vector.kind is VectorKind.TEXT:
        if not isinstance(value, str):
            raise PropertyValueError(f"{key} must be a string, not {value!r}")
        return TextElement(name=member, value=value)
    if isinstance(value, bool):
        return SwitchElement(name=member, value=SwitchState.ON if value else SwitchState.OFF)
    if value in ("On", "Off"):
        return SwitchElement(name=member, value=SwitchState(value))
    raise PropertyValueError(f"{key} must be true/false (or \"On\"/\"Off\"), not {value!r}")


def upload_commands(directory: str, prefix: str, mode: str) -> list[PresetCommand]:
    """[upload] dir, prefix and mode as UPLOAD_SETTINGS and UPLOAD_MODE commands."""
    commands = []
    settings = {k: v for k, v in (("UPLOAD_DIR", directory), ("UPLOAD_PREFIX", prefix)) if v}
    if settings:
        commands.append(preset_command("upload", "UPLOAD_SETTINGS", settings))
    if mode:
        if mode not in UPLOAD_MODES:
            raise PropertyValueError(
                f"upload.mode must be one of {', '.join(UPLOAD_MODES)}, not {mode!r}"
            )
        commands.append(preset_command("upload.mode", "UPLOAD_MODE", {UPLOAD_MODES[mode]: True}))
    return commands
