"""SnoopedValues fed with recorded simulator traffic and with constructed messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    IndiMessage,
    Message,
    NumberElement,
    Perm,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser
from qhy42_indi.snoop.state import (
    MAX_MEMBERS,
    MAX_TEXT_LENGTH,
    ActiveDevices,
    PierSide,
    SnoopedValues,
)

DATA = Path(__file__).parent / "data"

SIMULATORS = ActiveDevices(
    telescope="Telescope Simulator",
    rotator="Rotator Simulator",
    focuser="Focuser Simulator",
    filter_wheel="Filter Simulator",
    sky_quality="SQM Simulator",
)


def recorded() -> list[IndiMessage]:
    items = IndiParser().feed((DATA / "simulator_defs_1_9_9.xml").read_bytes())
    messages = [item for item in items if isinstance(item, DefVector)]
    assert len(messages) == len(items) == 10
    return messages


def numbers(device: str, name: str, *members: tuple[str, float], define: bool = False,
            ) -> IndiMessage:
    elements = tuple(NumberElement(n, v) for n, v in members)
    if define:
        return DefVector(VectorKind.NUMBER, device, name, PropertyState.OK, elements,
                         perm=Perm.RW)
    return SetVector(VectorKind.NUMBER, device, name, PropertyState.OK, elements)


def switches(device: str, name: str, *members: tuple[str, bool], define: bool = False,
             rule: SwitchRule = SwitchRule.AT_MOST_ONE) -> IndiMessage:
    elements = tuple(SwitchElement(n, SwitchState.ON if on else SwitchState.OFF)
                     for n, on in members)
    if define:
        return DefVector(VectorKind.SWITCH, device, name, PropertyState.OK, elements,
                         perm=Perm.RO, rule=rule)
    return SetVector(VectorKind.SWITCH, device, name, PropertyState.OK, elements)


def test_active_devices_read_acive_devices_by_libindi_element_names() -> None:
    values = {"ACTIVE_TELESCOPE": "Telescope Simulator", "ACTIVE_ROTATOR": " ",
              "ACTIVE_FOCUSER": "Focuser Simulator", "ACTIVE_FILTER": "CCD Simulator",
              "ACTIVE_SKYQUALITY": "SQM", "UNRELATED": "x"}
    devices = ActiveDevices.from_values(values)
    assert devices == ActiveDevices("Telescope Simulator", "", "Focuser Simulator",
                                    "CCD Simulator", "SQM")
    assert list(devices.as_values()) == ["ACTIVE_TELESCOPE", "ACTIVE_ROTATOR",
                                         "ACTIVE_FOCUSER", "ACTIVE_FILTER", "ACTIVE_SKYQUALITY"]
    assert ActiveDevices.from_values({}) == ActiveDevices()


def test_wanted_is_what_indi_ccd_snoops_in_its_order() -> None:
    assert SnoopedValues(SIMULATORS).wanted() == [
        ("Telescope Simulator", "EQUATORIAL_EOD_COORD"),
        ("Telescope Simulator", "EQUATORIAL_COORD"),
        ("Telescope Simulator", "TELESCOPE_INFO"),
        ("Telescope Simulator", "GEOGRAPHIC_COORD"),
        ("Telescope Simulator", "TELESCOPE_PIER_SIDE"),
        ("Rotator Simulator", "ABS_ROTATOR_ANGLE"),
        ("Focuser Simulator", "ABS_FOCUS_POSITION"),
        ("Focuser Simulator", "FOCUS_TEMPERATURE"),
        ("Filter Simulator", "FILTER_SLOT"),
        ("Filter Simulator", "FILTER_NAME"),
        ("SQM Simulator", "SKY_QUALITY"),
    ]
    assert SnoopedValues().wanted() == []
    # One device in two roles is asked for each property once.
    both = ActiveDevices(focuser="CCD Simulator", filter_wheel="CCD Simulator")
    assert SnoopedValues(both).wanted() == [
        ("CCD Simulator", "ABS_FOCUS_POSITION"), ("CCD Simulator", "FOCUS_TEMPERATURE"),
        ("CCD Simulator", "FILTER_SLOT"), ("CCD Simulator", "FILTER_NAME")]


def test_recorded_simulator_defs_fill_the_snapshot() -> None:
    values = SnoopedValues(SIMULATORS)
    assert values.snapshot().is_empty()
    values.feed_all(recorded())
    snap = values.snapshot()
    assert snap.devices == SIMULATORS
    assert snap.ra_jnow_h == pytest.approx(5.4999582368590802517, abs=1e-15)
    assert snap.dec_jnow_deg == pytest.approx(22.0, abs=1e-12)
    assert (snap.ra_j2000_h, snap.dec_j2000_deg) == (None, None)
    assert snap.latitude_deg == 48.5
    assert snap.longitude_deg == pytest.approx(9.1, abs=1e-12)
    assert snap.elevation_m == 300
    assert snap.pier_side is PierSide.WEST
    assert (snap.telescope_aperture_mm, snap.telescope_focal_length_mm) == (120, 900)
    assert snap.rotator_angle_deg == 0
    assert (snap.focus_position, snap.focus_temperature_c) == (42000, 0)
    assert snap.filter_slot == 3
    assert snap.filter_names == ("Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR",
                                 "Luminance")
    assert snap.filter_name == "Blue"
    assert snap.sky_brightness_mpsas == pytest.approx(16.9)
    assert not snap.is_empty()


def test_snapshot_is_cached_until_something_changes() -> None:
    values = SnoopedValues(SIMULATORS)
    values.feed_all(recorded())
    first = values.snapshot()
    assert values.snapshot() is first
    values.feed(Message("Telescope Simulator", "hello"))
    values.feed(numbers("Some Other Mount", "EQUATORIAL_EOD_COORD", ("RA", 1), ("DEC", 2)))
    assert values.snapshot() is first
    values.feed(numbers("Focuser Simulator", "ABS_FOCUS_POSITION",
                        ("FOCUS_ABSOLUTE_POSITION", 41000)))
    second = values.snapshot()
    assert second is not first
    assert (first.focus_position, second.focus_position) == (42000, 41000)


def test_only_the_wanted_pairs_are_stored() -> None:
    values = SnoopedValues(ActiveDevices(focuser="Focuser Simulator"))
    values.feed_all(recorded())
    # The filter wheel, mount, rotator and SQM defs were not wanted: nothing of them is kept,
    # not even after the roles change to name them.
    values.set_devices(SIMULATORS)
    snap = values.snapshot()
    assert snap.focus_position == 42000
    assert snap.ra_jnow_h is None and snap.filter_names == () and snap.latitude_deg is None
    assert len(values._stored) == 2  # the focuser's two properties, nothing else


def test_sets_update_members_and_a_set_before_its_def_is_taken() -> None:
    values = SnoopedValues(ActiveDevices(telescope="Mount"))
    values.feed(numbers("Mount", "EQUATORIAL_EOD_COORD", ("RA", 5.5), ("DEC", 22)))
    assert (values.snapshot().ra_jnow_h, values.snapshot().dec_jnow_deg) == (5.5, 22)
    values.feed(numbers("Mount", "EQUATORIAL_EOD_COORD", ("DEC", 23)))  # partial set
    assert (values.snapshot().ra_jnow_h, values.snapshot().dec_jnow_deg) == (5.5, 23)
    # A def replaces everything: members it lacks are gone.
    values.feed(numbers("Mount", "EQUATORIAL_EOD_COORD", ("RA", 6.0), define=True))
    assert (values.snapshot().ra_jnow_h, values.snapshot().dec_jnow_deg) == (None, None)


def test_longitude_is_written_east_positive_within_180() -> None:
    values = SnoopedValues(ActiveDevices(telescope="Mount"))
    values.feed(numbers("Mount", "GEOGRAPHIC_COORD", ("LAT", -33.9), ("LONG", 289.5),
                        ("ELEV", 2400), define=True))
    snap = values.snapshot()
    assert (snap.latitude_deg, snap.longitude_deg, snap.elevation_m) == (-33.9, -70.5, 2400)


def test_pier_side_follows_the_switch_rule() -> None:
    values = SnoopedValues(ActiveDevices(telescope="Mount"))
    values.feed(switches("Mount", "TELESCOPE_PIER_SIDE", ("PIER_WEST", True),
                         ("PIER_EAST", False), define=True))
    assert values.snapshot().pier_side is PierSide.WEST
    # libindi clients' form: only the member that turns On. The other one turns Off.
    values.feed(switches("Mount", "TELESCOPE_PIER_SIDE", ("PIER_EAST", True)))
    assert values.snapshot().pier_side is PierSide.EAST
    values.feed(switches("Mount", "TELESCOPE_PIER_SIDE", ("PIER_WEST", False),
                         ("PIER_EAST", False)))
    assert values.snapshot().pier_side is None


def test_nan_and_wrong_types_are_unknowns() -> None:
    values = SnoopedValues(ActiveDevices(telescope="Mount", focuser="Focuser"))
    values.feed(numbers("Mount", "EQUATORIAL_EOD_COORD", ("RA", float("nan")), ("DEC", 10)))
    # A device that defines a snooped name with another type is not what libindi reads.
    values.feed(DefVector(VectorKind.TEXT, "Focuser", "ABS_FOCUS_POSITION", PropertyState.OK,
                          (TextElement("FOCUS_ABSOLUTE_POSITION", "12"),), perm=Perm.RO))
    values.feed(SetVector(VectorKind.BLOB, "Mount", "EQUATORIAL_COORD", PropertyState.OK,
                          (BlobElement("RA", format=".fits", size=3, data_b64=b"AAAA"),)))
    snap = values.snapshot()
    assert (snap.ra_jnow_h, snap.dec_jnow_deg, snap.focus_position) == (None, None, None)
    assert snap.is_empty()


def test_filter_name_needs_a_slot_within_the_names() -> None:
    values = SnoopedValues(ActiveDevices(filter_wheel="Wheel"))
    names = tuple(TextElement(f"FILTER_SLOT_NAME_{i}", n) for i, n in enumerate("LRGB", 1))
    values.feed(DefVector(VectorKind.TEXT, "Wheel", "FILTER_NAME", PropertyState.IDLE, names,
                          perm=Perm.RW))
    for slot, expected in ((0, None), (1, "L"), (4, "B"), (5, None)):
        values.feed(numbers("Wheel", "FILTER_SLOT", ("FILTER_SLOT_VALUE", slot)))
        assert values.snapshot().filter_name == expected
    values.feed(SetVector(VectorKind.TEXT, "Wheel", "FILTER_NAME", PropertyState.OK,
                          (TextElement("FILTER_SLOT_NAME_4", "Blue"),)))
    values.feed(numbers("Wheel", "FILTER_SLOT", ("FILTER_SLOT_VALUE", 4)))
    assert values.snapshot().filter_names == ("L", "R", "G", "Blue")
    assert values.snapshot().filter_name == "Blue"


def test_a_device_or_property_that_goes_away_takes_its_values() -> None:
    values = SnoopedValues(SIMULATORS)
    values.feed_all(recorded())
    values.feed(DelProperty("Focuser Simulator", "FOCUS_TEMPERATURE"))
    snap = values.snapshot()
    assert (snap.focus_position, snap.focus_temperature_c) == (42000, None)
    values.feed(DelProperty("Telescope Simulator"))  # the whole device (driver death)
    snap = values.snapshot()
    assert snap.ra_jnow_h is None and snap.latitude_deg is None and snap.pier_side is None
    assert snap.telescope_focal_length_mm is None
    assert snap.filter_name == "Blue" and snap.focus_position == 42000
    values.feed(DelProperty("Nobody"))
    assert values.snapshot() is snap
    values.clear()
    assert values.snapshot().is_empty()
    assert values.snapshot().devices == SIMULATORS


def test_set_devices_drops_old_roles_and_tells_listeners_once() -> None:
    calls: list[str] = []
    values = SnoopedValues(SIMULATORS, on_wanted_change=lambda: calls.append("ctor"))
    remove = values.add_wanted_listener(lambda: calls.append("added"))
    values.feed_all(recorded())

    values.set_devices(SIMULATORS)  # no change, no call
    assert calls == []
    values.set_devices(ActiveDevices(telescope="Telescope Simulator", focuser="Other Focuser"))
    assert calls == ["ctor", "added"]
    snap = values.snapshot()
    assert snap.ra_jnow_h is not None  # the mount stayed
    assert snap.focus_position is None and snap.filter_names == () and snap.rotator_angle_deg \
        is None and snap.sky_brightness_mpsas is None
    assert ("Other Focuser", "ABS_FOCUS_POSITION") in values.wanted()
    assert all(device != "Filter Simulator" for device, _ in values.wanted())

    remove()
    remove()  # harmless twice
    values.set_devices(ActiveDevices())
    assert calls == ["ctor", "added", "ctor"]
    assert values.wanted() == [] and values.snapshot().is_empty()


def test_a_failing_listener_does_not_break_set_devices() -> None:
    def broken() -> None:
        raise RuntimeError("listener bug")

    seen: list[int] = []
    values = SnoopedValues(on_wanted_change=broken)
    values.add_wanted_listener(lambda: seen.append(1))
    values.set_devices(SIMULATORS)
    assert seen == [1]
    assert values.devices == SIMULATORS


def test_storage_is_bounded() -> None:
    values = SnoopedValues(ActiveDevices(filter_wheel="Wheel"))
    names = tuple(TextElement(f"FILTER_SLOT_NAME_{i}", "x" * 10_000)
                  for i in range(1, 2 * MAX_MEMBERS))
    values.feed(DefVector(VectorKind.TEXT, "Wheel", "FILTER_NAME", PropertyState.IDLE, names,
                          perm=Perm.RW))
    values.feed(SetVector(VectorKind.TEXT, "Wheel", "FILTER_NAME", PropertyState.OK,
                          (TextElement("ANOTHER", "y"),)))
    snap = values.snapshot()
    assert len(snap.filter_names) == MAX_MEMBERS
    assert {len(name) for name in snap.filter_names} == {MAX_TEXT_LENGTH}
    # Properties nobody asked for, of any device, are never stored.
    for i in range(1000):
        values.feed(numbers(f"Device {i}", "EQUATORIAL_EOD_COORD", ("RA", 1), ("DEC", 1)))
    assert len(values._stored) == 1
