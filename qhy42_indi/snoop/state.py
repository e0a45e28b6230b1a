"""The snooped values: which devices play which role, and the last values INDI::CCD reads
from them.

`ActiveDevices` is the ACTIVE_DEVICES text vector as a value. `SnoopedValues` is fed parsed
INDI messages of any device (DefVector, SetVector, DelProperty; everything else is ignored)
and keeps the members of exactly the (device, property) pairs that INDI::CCD snoops for the
current roles (libindi `indiccd.cpp` initProperties / ISSnoopDevice):

  telescope     EQUATORIAL_EOD_COORD (RA h, DEC deg), EQUATORIAL_COORD (J2000 RA, DEC),
                TELESCOPE_INFO (TELESCOPE_APERTURE, TELESCOPE_FOCAL_LENGTH mm),
                GEOGRAPHIC_COORD (LAT, LONG deg east 0..360, ELEV m),
                TELESCOPE_PIER_SIDE (PIER_WEST, PIER_EAST)
  rotator       ABS_ROTATOR_ANGLE (ANGLE deg)
  focuser       ABS_FOCUS_POSITION (FOCUS_ABSOLUTE_POSITION steps), FOCUS_TEMPERATURE
                (TEMPERATURE C)
  filter wheel  FILTER_SLOT (FILTER_SLOT_VALUE, 1-based), FILTER_NAME (one text per slot)
  sky quality   SKY_QUALITY (SKY_BRIGHTNESS mag/arcsec^2)

`snapshot()` gives an immutable `Snapshot` of what is known now (None for unknowns), cached
until the next change, so it is cheap to take once per frame. Unlike libindi, a device that
goes away (delProperty) or a role that is emptied takes its values with it: no stale cards.

Sans-IO and single-threaded: call it from the event loop. Memory is bounded by the number of
wanted pairs (at most 11), MAX_MEMBERS per property and MAX_TEXT_LENGTH per text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

from qhy42_indi.indi.messages import (
    DefVector,
    DelProperty,
    Element,
    IndiMessage,
    NumberElement,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)

log = logging.getLogger(__name__)

MAX_MEMBERS = 64
MAX_TEXT_LENGTH = 256

# ACTIVE_DEVICES element names, in libindi's order, and the field of ActiveDevices each fills.
ACTIVE_DEVICE_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("ACTIVE_TELESCOPE", "telescope"),
    ("ACTIVE_ROTATOR", "rotator"),
    ("ACTIVE_FOCUSER", "focuser"),
    ("ACTIVE_FILTER", "filter_wheel"),
    ("ACTIVE_SKYQUALITY", "sky_quality"),
)

# What INDI::CCD snoops for each role, in the order it sends the requests.
ROLE_PROPERTIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("telescope", ("EQUATORIAL_EOD_COORD", "EQUATORIAL_COORD", "TELESCOPE_INFO",
                   "GEOGRAPHIC_COORD", "TELESCOPE_PIER_SIDE")),
    ("rotator", ("ABS_ROTATOR_ANGLE",)),
    ("focuser", ("ABS_FOCUS_POSITION", "FOCUS_TEMPERATURE")),
    ("filter_wheel", ("FILTER_SLOT", "FILTER_NAME")),
    ("sky_quality", ("SKY_QUALITY",)),
)

# The vector type each property has in libindi; a device defining it otherwise is ignored.
_PROPERTY_KINDS: dict[str, VectorKind] = {
    "EQUATORIAL_EOD_COORD": VectorKind.NUMBER,
    "EQUATORIAL_COORD": VectorKind.NUMBER,
    "TELESCOPE_INFO": VectorKind.NUMBER,
    "GEOGRAPHIC_COORD": VectorKind.NUMBER,
    "TELESCOPE_PIER_SIDE": VectorKind.SWITCH,
    "ABS_ROTATOR_ANGLE": VectorKind.NUMBER,
    "ABS_FOCUS_POSITION": VectorKind.NUMBER,
    "FOCUS_TEMPERATURE": VectorKind.NUMBER,
    "FILTER_SLOT": VectorKind.NUMBER,
    "FILTER_NAME": VectorKind.TEXT,
    "SKY_QUALITY": VectorKind.NUMBER,
}

Pair = tuple[str, str]
MemberValue = float | str | bool


@dataclass(frozen=True, slots=True)
class ActiveDevices:
    """The device name for each snooped role; "" means no device for that role."""

    telescope: str = ""
    rotator: str = ""
    focuser: str = ""
    filter_wheel: str = ""
    sky_quality: str = ""

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> ActiveDevices:
        """From ACTIVE_DEVICES members by element name (ACTIVE_TELESCOPE ... ACTIVE_SKYQUALITY);
        a missing member means no device. Surrounding whitespace is not part of a name."""
        return cls(**{attribute: values.get(element, "").strip()
                      for element, attribute in ACTIVE_DEVICE_ELEMENTS})

    def as_values(self) -> dict[str, str]:
        """The ACTIVE_DEVICES members, by element name, in libindi's order."""
        return {element: getattr(self, attribute) for element, attribute in ACTIVE_DEVICE_ELEMENTS}

    def wanted(self) -> list[Pair]:
        """The (device, property) pairs INDI::CCD snoops for these roles, without repeats."""
        pairs: list[Pair] = []
        for role, properties in ROLE_PROPERTIES:
            device = getattr(self, role)
            if device:
                pairs.extend((device, name) for name in properties
                             if (device, name) not in pairs)
        return pairs


class PierSide(StrEnum):
    """TELESCOPE_PIER_SIDE, spelled as the PIERSIDE card."""

    WEST = "WEST"
    EAST = "EAST"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What is known now. Angles in degrees except right ascensions (hours); None: unknown.

    `longitude_deg` is east-positive in (-180, 180], as libindi writes SITELONG (the mount
    reports 0..360). `ra/dec_jnow` come from EQUATORIAL_EOD_COORD (true equator and equinox
    of date), `ra/dec_j2000` from EQUATORIAL_COORD, which few mounts publish."""

    devices: ActiveDevices = field(default_factory=ActiveDevices)
    ra_jnow_h: float | None = None
    dec_jnow_deg: float | None = None
    ra_j2000_h: float | None = None
    dec_j2000_deg: float | None = None
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    elevation_m: float | None = None
    pier_side: PierSide | None = None
    telescope_aperture_mm: float | None = None
    telescope_focal_length_mm: float | None = None
    rotator_angle_deg: float | None = None
    focus_position: int | None = None
    focus_temperature_c: float | None = None
    filter_slot: int | None = None
    filter_names: tuple[str, ...] = ()
    sky_brightness_mpsas: float | None = None

    @property
    def filter_name(self) -> str | None:
        """The name of the current slot (FILTER_SLOT is 1-based), if both are known."""
        slot = self.filter_slot
        if slot is None or not 1 <= slot <= len(self.filter_names):
            return None
        return self.filter_names[slot - 1]

    def is_empty(self) -> bool:
        """True when nothing at all is known (the roles aside)."""
        return all(getattr(self, f.name) in (None, ())
                   for f in fields(self) if f.name != "devices")


@dataclass(slots=True)
class _Stored:
    """The members of one snooped property, in the order the device defined them."""

    kind: VectorKind
    members: dict[str, MemberValue]
    rule: SwitchRule | None = None


class SnoopedValues:
    """The last values of the snooped properties of the current roles.

    Listeners added with `add_wanted_listener` (or `on_wanted_change`) are called, with no
    argument, whenever `wanted()` changes, so a client can ask for the new pairs."""

    def __init__(self, devices: ActiveDevices | None = None, *,
                 on_wanted_change: Callable[[], None] | None = None) -> None:
        self._devices = ActiveDevices() if devices is None else devices
        self._wanted = self._devices.wanted()
        self._wanted_set = frozenset(self._wanted)
        self._stored: dict[Pair, _Stored] = {}
        self._listeners: list[Callable[[], None]] = []
        self._snapshot: Snapshot | None = None
        if on_wanted_change is not None:
            self._listeners.append(on_wanted_change)

    # ---- roles ------------------------------------------------------------------------------

    @property
    def devices(self) -> ActiveDevices:
        return self._devices

    def wanted(self) -> list[Pair]:
        """The (device, property) pairs to ask for with getProperties, in libindi's order."""
        return list(self._wanted)

    def set_devices(self, devices: ActiveDevices) -> None:
        """Change all roles at once. Values of pairs no longer wanted are dropped."""
        if devices == self._devices:
            return
        self._devices = devices
        self._snapshot = None
        wanted = devices.wanted()
        if wanted == self._wanted:
            return
        self._wanted = wanted
        self._wanted_set = frozenset(wanted)
        for pair in [pair for pair in self._stored if pair not in self._wanted_set]:
            del self._stored[pair]
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a listener's bug must not break the caller's set_devices
                log.exception("snoop: a wanted-set listener failed")

    def add_wanted_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` whenever the wanted pairs change; returns the function that
        removes it again."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # ---- feeding ----------------------------------------------------------------------------

    def feed(self, message: IndiMessage) -> None:
        """Take one parsed message of any device; only wanted pairs are kept."""
        match message:
            case DefVector():
                self._define(message)
            case SetVector():
                self._update(message)
            case DelProperty():
                self._delete(message.device, message.name)
            case _:
                pass

    def feed_all(self, messages: Iterable[IndiMessage]) -> None:
        for message in messages:
            self.feed(message)

    def clear(self) -> None:
        """Forget every value (the server they came from is gone); the roles stay."""
        if self._stored:
            self._stored.clear()
            self._snapshot = None

    def _define(self, message: DefVector) -> None:
        pair = (message.device, message.name)
        if pair not in self._wanted_set or _PROPERTY_KINDS[message.name] is not message.kind:
            return
        # A def carries every member: it replaces what we had.
        stored = _Stored(message.kind, {}, message.rule)
        _merge(stored, message.elements)
        self._stored[pair] = stored
        self._snapshot = None

    def _update(self, message: SetVector) -> None:
        pair = (message.device, message.name)
        if pair not in self._wanted_set or _PROPERTY_KINDS[message.name] is not message.kind:
            return
        stored = self._stored.get(pair)
        if stored is None:
            # A set before its def (we connected mid-stream): take what it says.
            stored = self._stored[pair] = _Stored(message.kind, {})
        _merge(stored, message.elements)
        self._snapshot = None

    def _delete(self, device: str, name: str | None) -> None:
        doomed = [pair for pair in self._stored
                  if pair[0] == device and (name is None or pair[1] == name)]
        for pair in doomed:
            del self._stored[pair]
        if doomed:
            self._snapshot = None

    # ---- reading ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """What is known now; the same object until something changes."""
        if self._snapshot is None:
            self._snapshot = self._build_snapshot()
        return self._snapshot

    def _members(self, role: str, name: str) -> dict[str, MemberValue]:
        device = getattr(self._devices, role)
        stored = self._stored.get((device, name)) if device else None
        return {} if stored is None else stored.members

    def _build_snapshot(self) -> Snapshot:
        eod = self._members("telescope", "EQUATORIAL_EOD_COORD")
        j2000 = self._members("telescope", "EQUATORIAL_COORD")
        info = self._members("telescope", "TELESCOPE_INFO")
        site = self._members("telescope", "GEOGRAPHIC_COORD")
        longitude = _number(site, "LONG")
        if longitude is not None and longitude > 180:
            longitude -= 360
        ra_jnow, dec_jnow = _number(eod, "RA"), _number(eod, "DEC")
        ra_j2000, dec_j2000 = _number(j2000, "RA"), _number(j2000, "DEC")
        return Snapshot(
            devices=self._devices,
            # A position is only a position with both coordinates.
            ra_jnow_h=ra_jnow if dec_jnow is not None else None,
            dec_jnow_deg=dec_jnow if ra_jnow is not None else None,
            ra_j2000_h=ra_j2000 if dec_j2000 is not None else None,
            dec_j2000_deg=dec_j2000 if ra_j2000 is not None else None,
            latitude_deg=_number(site, "LAT"),
            longitude_deg=longitude,
            elevation_m=_number(site, "ELEV"),
            pier_side=_pier_side(self._members("telescope", "TELESCOPE_PIER_SIDE")),
            telescope_aperture_mm=_number(info, "TELESCOPE_APERTURE"),
            telescope_focal_length_mm=_number(info, "TELESCOPE_FOCAL_LENGTH"),
            rotator_angle_deg=_number(self._members("rotator", "ABS_ROTATOR_ANGLE"), "ANGLE"),
            focus_position=_integer(self._members("focuser", "ABS_FOCUS_POSITION"),
                                    "FOCUS_ABSOLUTE_POSITION"),
            focus_temperature_c=_number(self._members("focuser", "FOCUS_TEMPERATURE"),
                                        "TEMPERATURE"),
            filter_slot=_integer(self._members("filter_wheel", "FILTER_SLOT"),
                                 "FILTER_SLOT_VALUE"),
            filter_names=tuple(value for value in
                               self._members("filter_wheel", "FILTER_NAME").values()
                               if isinstance(value, str)),
            sky_brightness_mpsas=_number(self._members("sky_quality", "SKY_QUALITY"),
                                         "SKY_BRIGHTNESS"),
        )


def _merge(stored: _Stored, elements: tuple[Element, ...]) -> None:
    members = stored.members
    for element in elements:
        value = _member_value(element)
        if value is None or (element.name not in members and len(members) >= MAX_MEMBERS):
            continue
        members[element.name] = value
    # A set that turns one member of a OneOfMany/AtMostOne switch On turns the others Off,
    # even when it lists only that member (what libindi clients send).
    if stored.rule in (SwitchRule.ONE_OF_MANY, SwitchRule.AT_MOST_ONE):
        turned_on = [e.name for e in elements if isinstance(e, SwitchElement)
                     and e.value is SwitchState.ON]
        if turned_on:
            for name in members:
                members[name] = name == turned_on[-1]


def _member_value(element: Element) -> MemberValue | None:
    match element:
        case NumberElement():
            return float(element.value)
        case TextElement():
            return element.value[:MAX_TEXT_LENGTH]
        case SwitchElement():
            return element.value is SwitchState.ON
        case _:
            return None


def _number(members: Mapping[str, MemberValue], name: str) -> float | None:
    value = members.get(name)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _integer(members: Mapping[str, MemberValue], name: str) -> int | None:
    # libindi reads these with atol/atoi: the integer part.
    value = _number(members, name)
    return None if value is None else int(value)


def _pier_side(members: Mapping[str, MemberValue]) -> PierSide | None:
    # As ISSnoopDevice: the last member that is On decides, none On means unknown.
    side: PierSide | None = None
    for name, value in members.items():
        if value is True and name == "PIER_WEST":
            side = PierSide.WEST
        elif value is True and name == "PIER_EAST":
            side = PierSide.EAST
    return side
