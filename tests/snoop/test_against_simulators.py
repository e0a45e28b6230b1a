"""The snoop client and cards against Debian's real simulators, beside indi_simulator_ccd.

One indiserver on a free 127.0.0.1 port runs the telescope, focuser, filter wheel, rotator,
sky quality meter and CCD simulators. The SnoopClient snoops the first five; the CCD
simulator snoops the same devices through indiserver and writes a FITS header, which our
cards must match: the same keywords in the same order, the same values where both read the
same message, the position within what libindi's own arithmetic explains. Then a driver is
stopped through indiserver's FIFO and the server is killed and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from astropy.io import fits as afits

from qhy42_indi.indi.messages import (
    DefVector,
    GetProperties,
    IndiMessage,
    NewVector,
    NumberElement,
    SetVector,
    SwitchElement,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.snoop.cards import SNOOP_KEYWORDS, snoop_cards
from qhy42_indi.snoop.client import SnoopClient
from qhy42_indi.snoop.state import ActiveDevices, PierSide, Snapshot, SnoopedValues
from tests.support.client import IndiClient
from tests.support.processes import HOST, Running, free_port, indi_tool, require, running

pytestmark = pytest.mark.timeout(180)

WAIT_S = 30.0
MOUNT = "Telescope Simulator"
FOCUSER = "Focuser Simulator"
WHEEL = "Filter Simulator"
ROTATOR = "Rotator Simulator"
SQM = "SQM Simulator"
CCD = "CCD Simulator"
DEVICES = ActiveDevices(telescope=MOUNT, rotator=ROTATOR, focuser=FOCUSER, filter_wheel=WHEEL,
                        sky_quality=SQM)
DRIVERS = ("indi_simulator_telescope", "indi_simulator_focus", "indi_simulator_wheel",
           "indi_simulator_rotator", "indi_simulator_sqm", "indi_simulator_ccd")
TARGET = (5.5, 22.0)
SITE = (48.5, 9.1, 300.0)


@dataclass
class Server:
    running: Running
    fifo: Path


@contextlib.contextmanager
def indiserver(port: int, home: Path, *drivers: str) -> Iterator[Server]:
    """indiserver with a control FIFO, on `port`, with its own local socket."""
    with tempfile.TemporaryDirectory(prefix="qhy42-snoop-") as scratch:
        fifo = Path(scratch) / "control"
        os.mkfifo(fifo)
        argv = [require("indiserver"), "-v", "-p", str(port), "-u",
                str(Path(scratch) / "indiserver"), "-f", str(fifo), *drivers]
        with running(argv, port, home) as proc:
            yield Server(proc, fifo)


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


def is_def_of(device: str, name: str) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, DefVector) and m.device == device and m.name == name


def is_set_of(device: str, name: str) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, SetVector) and m.device == device and m.name == name


def switch_on(device: str, name: str, member: str) -> NewVector:
    return NewVector(VectorKind.SWITCH, device, name, (SwitchElement(member, SwitchState.ON),))


def numbers(device: str, name: str, **members: float) -> NewVector:
    return NewVector(VectorKind.NUMBER, device, name,
                     tuple(NumberElement(n, v) for n, v in members.items()))


def texts(device: str, name: str, members: dict[str, str]) -> NewVector:
    return NewVector(VectorKind.TEXT, device, name,
                     tuple(TextElement(n, v) for n, v in members.items()))


async def setprop(port: int, spec: str) -> None:
    done = await asyncio.to_thread(indi_tool, "indi_setprop", "-h", HOST, "-p", str(port), spec)
    assert done.returncode == 0, done.stderr


async def prepare_devices(control: IndiClient, port: int, frames: Path) -> None:
    """Connect everything, put the mount on the target with tracking, move the focuser,
    wheel and rotator, and point the CCD simulator's snooping at the same devices."""
    await control.send(GetProperties())
    for device in (MOUNT, FOCUSER, WHEEL, ROTATOR, SQM, CCD):
        await control.wait_for(is_def_of(device, "CONNECTION"), WAIT_S)
        await control.send(switch_on(device, "CONNECTION", "CONNECT"))
    for device, name in ((MOUNT, "EQUATORIAL_EOD_COORD"), (FOCUSER, "ABS_FOCUS_POSITION"),
                         (WHEEL, "FILTER_SLOT"), (ROTATOR, "ABS_ROTATOR_ANGLE"),
                         (SQM, "SKY_QUALITY"), (CCD, "CCD_EXPOSURE")):
        await control.wait_for(is_def_of(device, name), WAIT_S)
    latitude, longitude, elevation = SITE
    await control.send(numbers(MOUNT, "GEOGRAPHIC_COORD", LAT=latitude, LONG=longitude,
                               ELEV=elevation))
    await control.send(switch_on(MOUNT, "TELESCOPE_TRACK_STATE", "TRACK_ON"))
    # The mount the way a user would: indi_setprop, SYNC then the coordinates.
    await setprop(port, f"{MOUNT}.ON_COORD_SET.SYNC=On")
    await setprop(port, f"{MOUNT}.EQUATORIAL_EOD_COORD.RA;DEC={TARGET[0]};{TARGET[1]}")
    await control.send(numbers(WHEEL, "FILTER_SLOT", FILTER_SLOT_VALUE=3))
    await control.send(numbers(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=42000))
    await control.send(numbers(ROTATOR, "ABS_ROTATOR_ANGLE", ANGLE=30))
    await control.send(texts(CCD, "ACTIVE_DEVICES", DEVICES.as_values()))
    await control.send(switch_on(CCD, "UPLOAD_MODE", "UPLOAD_LOCAL"))
    await control.send(texts(CCD, "UPLOAD_SETTINGS",
                             {"UPLOAD_DIR": str(frames), "UPLOAD_PREFIX": "SNOOP_XXX"}))


def settled(snap: Snapshot) -> bool:
    return (snap.ra_jnow_h is not None and snap.dec_jnow_deg is not None
            and abs(snap.ra_jnow_h - TARGET[0]) < 0.01 and abs(snap.dec_jnow_deg - TARGET[1])
            < 0.01 and snap.latitude_deg == SITE[0] and snap.focus_position == 42000
            and snap.filter_name == "Blue" and snap.rotator_angle_deg == 30
            and snap.sky_brightness_mpsas is not None and snap.pier_side is not None)


async def expose(control: IndiClient) -> Path:
    start = len(control.received)
    await control.send(numbers(CCD, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1))
    saved = await control.wait_for(is_set_of(CCD, "CCD_FILE_PATH"), WAIT_S, start=start)
    assert isinstance(saved, SetVector)
    element = saved.elements[0]
    assert isinstance(element, TextElement)
    return Path(element.value)


def sexagesimal_value(text: str) -> float:
    sign = -1 if text.strip().startswith("-") else 1
    d, m, s = (abs(float(part)) for part in text.split())
    return sign * (d + m / 60 + s / 3600)


def separation_arcsec(ra1_deg: float, dec1: float, ra2_deg: float, dec2: float) -> float:
    a1, d1, a2, d2 = map(math.radians, (ra1_deg, dec1, ra2_deg, dec2))
    cos = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(a1 - a2)
    return math.degrees(math.acos(min(1.0, cos))) * 3600


def compare_with_header(header: afits.Header, snap: Snapshot) -> None:
    # libindi computes at the moment it writes the header, just after the exposure.
    when = datetime.fromisoformat(header["DATE-OBS"]).replace(tzinfo=UTC) + timedelta(
        seconds=0.3)
    ours = snoop_cards(snap, when, focal_length_mm=None, aperture_mm=None)
    theirs = [k for k in header if k in SNOOP_KEYWORDS]
    assert [c.keyword for c in ours] == theirs
    # MPSAS sits where the source says: after APTDIA, before ROTATANG.
    assert theirs[theirs.index("APTDIA") + 1] == "MPSAS"
    values = {c.keyword: c.value for c in ours}
    for keyword in ("FILTER", "FOCALLEN", "APTDIA", "MPSAS", "ROTATANG", "FOCUSPOS",
                    "FOCUSTEM", "SITELAT", "SITELONG", "PIERSIDE", "EQUINOX"):
        assert values[keyword] == header[keyword], keyword
    assert values["AIRMASS"] == pytest.approx(header["AIRMASS"], rel=2e-3)
    assert values["OBJCTAZ"] == pytest.approx(header["OBJCTAZ"], abs=0.02)
    assert values["OBJCTALT"] == pytest.approx(header["OBJCTALT"], abs=0.02)
    # The rigorous J2000 place: within libindi 1.9.9's nutation slip of its numbers.
    assert separation_arcsec(float(values["RA"]), float(values["DEC"]), header["RA"],
                             header["DEC"]) < 20
    assert separation_arcsec(sexagesimal_value(str(values["OBJCTRA"])) * 15,
                             sexagesimal_value(str(values["OBJCTDEC"])),
                             sexagesimal_value(header["OBJCTRA"]) * 15,
                             sexagesimal_value(header["OBJCTDEC"])) < 20
    # libindi's arithmetic reproduced: its numbers to their last digit (0.04").
    compat = {c.keyword: c.value for c in snoop_cards(snap, when, focal_length_mm=None,
                                                      aperture_mm=None, libindi_1_9=True)}
    assert separation_arcsec(float(compat["RA"]), float(compat["DEC"]), header["RA"],
                             header["DEC"]) < 0.5
    assert separation_arcsec(sexagesimal_value(str(compat["OBJCTRA"])) * 15,
                             sexagesimal_value(str(compat["OBJCTDEC"])),
                             sexagesimal_value(header["OBJCTRA"]) * 15,
                             sexagesimal_value(header["OBJCTDEC"])) < 0.5


async def test_snooping_the_simulators_beside_indi_simulator_ccd(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    frames = tmp_path / "frames"
    home.mkdir()
    frames.mkdir()
    values = SnoopedValues(DEVICES)
    snoop = SnoopClient(HOST, port, values, min_retry_s=0.2, max_retry_s=1.0)
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(indiserver(port, home, *DRIVERS))
        snoop.start()
        try:
            async with IndiClient.connect(HOST, port) as control:
                await prepare_devices(control, port, frames)
                await until(lambda: settled(values.snapshot()), "the snooped values")
                snap = values.snapshot()
                assert snap.pier_side in (PierSide.WEST, PierSide.EAST)
                assert (snap.telescope_focal_length_mm, snap.telescope_aperture_mm) == (900, 120)
                header = afits.getheader(await expose(control))
                compare_with_header(header, values.snapshot())

                # A driver stopped through the FIFO: its device's values vanish, only them.
                await asyncio.to_thread((server.fifo).write_text, "stop indi_simulator_focus\n")
                await until(lambda: values.snapshot().focus_position is None,
                            "the focuser's values to go")
                snap = values.snapshot()
                assert snap.focus_temperature_c is None
                assert snap.filter_name == "Blue" and snap.ra_jnow_h is not None

            # The whole server goes away: everything it gave goes, the client keeps trying.
            servers.close()
            await until(lambda: not snoop.connected, "the client to notice")
            assert values.snapshot().is_empty()
            assert snoop.connections == 1

            # It comes back on the same port: the client reconnects and asks again.
            with indiserver(port, home, "indi_simulator_telescope"):
                await until(lambda: snoop.connections == 2 and snoop.connected,
                            "the client to reconnect")
                async with IndiClient.connect(HOST, port) as control:
                    await control.send(GetProperties(device=MOUNT))
                    await control.wait_for(is_def_of(MOUNT, "CONNECTION"), WAIT_S)
                    await control.send(switch_on(MOUNT, "CONNECTION", "CONNECT"))
                    await until(lambda: values.snapshot().ra_jnow_h is not None,
                                "the mount's position after the restart")
                    assert values.snapshot().latitude_deg is not None
                    assert values.snapshot().focus_position is None
        finally:
            await snoop.stop()
    assert not snoop.connected
