"""The camera's frames know where the telescope pointed: our daemon snoops Debian's simulators
(mount, focuser, filter wheel, rotator, sky-quality meter) beside indi_simulator_ccd, which
snoops the same devices, and both write their FITS headers in the same run.

As a driver under the real indiserver, the camera snoops through indiserver; standalone
(`serve --snoop-server`), through its own client. Either way the header has the cards
indi_simulator_ccd writes, in its order, with the mount's coordinates, plus the time cards and
BJD_TDB (the site from the mount). ACTIVE_DEVICES changed mid-run takes effect on the next
frame; a snooped driver stopped mid-run costs the next frame only its cards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits as afits

from qhy42_indi.snoop.cards import SNOOP_KEYWORDS
from tests.snoop.test_against_simulators import (
    DEVICES,
    DRIVERS,
    TARGET,
    WAIT_S,
    Server,
    expose,
    indiserver,
    prepare_devices,
    separation_arcsec,
    sexagesimal_value,
)
from tests.support.camera import (
    answered,
    connect_camera,
    set_numbers,
    set_switch,
    set_texts,
)
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, daemon, free_port

pytestmark = pytest.mark.timeout(240)

# The cards both sides read from the same messages, so their values must be equal.
SAME_VALUES = ("FILTER", "FOCALLEN", "APTDIA", "MPSAS", "ROTATANG", "FOCUSPOS", "FOCUSTEM",
               "SITELAT", "SITELONG", "PIERSIDE", "EQUINOX")


async def our_frame(client: IndiClient) -> afits.Header:
    """One exposure of our camera, saved locally; its header."""
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1)
    saved = await client.wait_for(is_set("CCD_FILE_PATH"), WAIT_S, start=start)
    await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), WAIT_S, start=start)
    return afits.getheader(str(saved.elements[0].value))  # type: ignore[union-attr]


async def set_up_our_camera(client: IndiClient, frames: Path) -> None:
    await connect_camera(client)
    await answered(client, "CCD_FRAME", await set_numbers(
        client, "CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=64))
    await answered(client, "ACTIVE_DEVICES", await set_texts(
        client, "ACTIVE_DEVICES", **DEVICES.as_values()))
    await answered(client, "UPLOAD_SETTINGS", await set_texts(
        client, "UPLOAD_SETTINGS", UPLOAD_DIR=str(frames), UPLOAD_PREFIX="QHY_XXX"))
    await answered(client, "UPLOAD_MODE", await set_switch(client, "UPLOAD_MODE",
                                                           "UPLOAD_LOCAL"))


def on_target(header: afits.Header) -> bool:
    return ("OBJCTRA" in header and header.get("FOCUSPOS") == 42000
            and header.get("FILTER") == "Blue" and header.get("ROTATANG") == 30
            and "MPSAS" in header and "PIERSIDE" in header
            and abs(sexagesimal_value(header["OBJCTRA"]) - TARGET[0]) < 0.05)


async def settled_frame(client: IndiClient) -> afits.Header:
    """Frames until the snooped devices have reached what prepare_devices asked of them."""
    async with asyncio.timeout(WAIT_S * 2):
        while not on_target(header := await our_frame(client)):
            await asyncio.sleep(0.2)
    return header


def same_cards(ours: afits.Header, theirs: afits.Header) -> None:
    assert [k for k in ours if k in SNOOP_KEYWORDS] == [k for k in theirs if k in SNOOP_KEYWORDS]
    for keyword in SAME_VALUES:
        assert ours[keyword] == theirs[keyword], keyword
    # The rigorous J2000 place against libindi 1.9.9's (which slips by up to ~16").
    assert separation_arcsec(ours["RA"], ours["DEC"], theirs["RA"], theirs["DEC"]) < 20
    assert ours["AIRMASS"] == pytest.approx(theirs["AIRMASS"], rel=5e-3)


def time_cards_and_bjd(header: afits.Header) -> None:
    for keyword in ("DATE-BEG", "DATE-AVG", "MJD-OBS", "MJD-AVG", "MJD-END"):
        assert keyword in header, keyword
    assert header["BJD_TDB"] == pytest.approx(header["MJD-AVG"] + 2400000.5, abs=0.01)
    assert "image row 31" in header.comments["BJD_TDB"]  # the middle of 64 rows


@contextlib.contextmanager
def simulators(tmp_path: Path, *extra: str) -> Iterator[tuple[Server, int]]:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    with indiserver(port, home, *DRIVERS, *extra) as server:
        yield server, port


async def test_as_a_driver_under_indiserver_it_snoops_through_indiserver(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    with simulators(tmp_path, "indi_qhy42_ccd") as (_, port):
        async with IndiClient.connect(HOST, port) as control, \
                IndiClient.connect(HOST, port) as client:  # ours alone: its own names
            await prepare_devices(control, port, frames)
            await set_up_our_camera(client, frames)
            ours = await settled_frame(client)
            theirs = afits.getheader(await expose(control))
            assert theirs.get("FOCUSPOS") == 42000, "the CCD simulator did not snoop"
        same_cards(ours, theirs)
        time_cards_and_bjd(ours)


async def test_standalone_it_snoops_the_server_it_is_given_and_follows_changes(
    tmp_path: Path,
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    with simulators(tmp_path) as (server, port), \
            daemon("--snoop-server", f"{HOST}:{port}", home=tmp_path) as ours_server:
        async with IndiClient.connect(HOST, port) as control, \
                IndiClient.connect(HOST, ours_server.port) as client:
            await prepare_devices(control, port, frames)
            await set_up_our_camera(client, frames)
            ours = await settled_frame(client)
            theirs = afits.getheader(await expose(control))
            same_cards(ours, theirs)
            time_cards_and_bjd(ours)

            # ACTIVE_DEVICES changed: the next frame follows it.
            await answered(client, "ACTIVE_DEVICES", await set_texts(
                client, "ACTIVE_DEVICES", ACTIVE_FOCUSER=""))
            header = await our_frame(client)
            assert "FOCUSPOS" not in header and header["FILTER"] == "Blue"

            # The filter wheel's driver stopped mid-run: the frame comes, without FILTER.
            await asyncio.to_thread(server.fifo.write_text, "stop indi_simulator_wheel\n")
            async with asyncio.timeout(WAIT_S):
                while "FILTER" in (header := await our_frame(client)):
                    await asyncio.sleep(0.1)
            assert "OBJCTRA" in header and "EQUINOX" in header
        log = ours_server.log()
    assert "Traceback" not in log


async def test_without_a_snoop_server_or_devices_frames_have_no_snooped_cards(
    tmp_path: Path,
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    port = free_port()  # nothing listens there: the client keeps trying, the camera works
    with daemon("--snoop-server", f"{HOST}:{port}", home=tmp_path) as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await set_up_our_camera(client, frames)
            header = await our_frame(client)
    assert not [k for k in header if k in SNOOP_KEYWORDS]
    assert "MJD-OBS" in header and "BJD_TDB" not in header
