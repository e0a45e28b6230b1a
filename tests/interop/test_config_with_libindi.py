"""Config files shared with a real libindi driver: indi_simulator_ccd (indi-bin 1.9.9) run under
our device name reads what config_file.py writes, and the daemon reads what it writes."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhy42_indi.camera import config_file
from qhy42_indi.camera.device import CONFIG_PROPERTIES
from qhy42_indi.indi.messages import NewVector, SwitchState
from qhy42_indi.indi.properties import PropertyVector
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir
from tests.support.processes import (
    HOST,
    Running,
    daemon,
    free_port,
    indi_tool,
    require,
    running,
)

DEVICE = "QHY CCD QHY42PRO-SIM01"
CONFIG_NAME = f"{DEVICE}_config.xml"


@contextlib.contextmanager
def libindi_camera(home: Path) -> Iterator[Running]:
    """indiserver with indi_simulator_ccd named as our camera; HOME (so ~/.indi) is `home`."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="qhy42-sock-") as sockdir:
        argv = [require("indiserver"), "-v", "-p", str(port), "-u",
                str(Path(sockdir) / "indiserver"), "indi_simulator_ccd"]
        with running(argv, port, home, env_extra={"INDIDEV": DEVICE}) as proc:
            yield proc


def getprop(port: int, spec: str) -> dict[str, str]:
    result = indi_tool("indi_getprop", "-h", HOST, "-p", str(port), "-t", "1", spec)
    return dict(line.partition("=")[::2] for line in result.stdout.splitlines())


def setprop(port: int, spec: str) -> None:
    result = indi_tool("indi_setprop", "-h", HOST, "-p", str(port), spec)
    assert result.returncode == 0, result.stderr


def wait_for(port: int, expected: dict[str, str], timeout_s: float = 20) -> dict[str, str]:
    """Poll until every PROPERTY.ELEMENT has its value; the bound only keeps a hang short."""
    deadline = time.monotonic() + timeout_s
    values: dict[str, str] = {}
    while time.monotonic() < deadline:
        values = getprop(port, f"{DEVICE}.*.*")
        if all(values.get(f"{DEVICE}.{key}") == value for key, value in expected.items()):
            return values
        time.sleep(0.1)
    raise AssertionError(f"never saw {expected}: {values}")


def wait_for_file(path: Path, needle: bytes, timeout_s: float = 20) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if needle in data and data.rstrip().endswith(b"</INDIDriver>"):
                return data
        time.sleep(0.1)
    raise AssertionError(f"{path} never held {needle!r}")


def connect(port: int) -> None:
    setprop(port, f"{DEVICE}.CONNECTION.CONNECT=On")
    wait_for(port, {"CONNECTION.CONNECT": "On"})


@pytest.fixture(scope="module")
def props() -> dict[str, PropertyVector]:
    directory = skeleton_dir()
    vectors = [v for part in ("base", "ccd", "qhy")
               for v in load_skeleton(directory / f"qhy42_{part}_sk.xml")]
    return {v.name: PropertyVector.from_definition(v.definition(DEVICE)) for v in vectors}


def our_known(props: dict[str, PropertyVector]) -> dict[str, list[str]]:
    return {n: [e.name for e in props[n].elements] for n in CONFIG_PROPERTIES if n in props}


def values(command: NewVector) -> dict[str, object]:
    return {e.name: getattr(e, "value", None) for e in command.elements}


def test_the_libindi_simulator_applies_a_file_we_wrote(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    upload_dir = tmp_path / "lights"
    upload, mode = props["UPLOAD_SETTINGS"], props["UPLOAD_MODE"]
    upload.set_values({"UPLOAD_DIR": str(upload_dir), "UPLOAD_PREFIX": "QHY42_XXX"})
    mode.set_values({"UPLOAD_CLIENT": SwitchState.OFF, "UPLOAD_LOCAL": SwitchState.ON})
    config_file.save_config(tmp_path / ".indi" / CONFIG_NAME, DEVICE,
                            [props["CCD_GAIN"], upload, mode])
    with libindi_camera(tmp_path) as camera:
        connect(camera.port)
        setprop(camera.port, f"{DEVICE}.CONFIG_PROCESS.CONFIG_LOAD=On")
        seen = wait_for(camera.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "QHY42_XXX",
                                      "UPLOAD_MODE.UPLOAD_LOCAL": "On"})
    assert seen[f"{DEVICE}.UPLOAD_SETTINGS.UPLOAD_DIR"] == str(upload_dir)
    assert seen[f"{DEVICE}.UPLOAD_MODE.UPLOAD_CLIENT"] == "Off"


def simulator_saved_file(home: Path) -> bytes:
    """A config file indi_simulator_ccd wrote (CONFIG_SAVE) with a prefix of our choosing."""
    path = home / ".indi" / CONFIG_NAME
    with libindi_camera(home) as camera:
        connect(camera.port)
        setprop(camera.port, f"{DEVICE}.UPLOAD_SETTINGS.UPLOAD_PREFIX=SIM_XXX")
        wait_for(camera.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "SIM_XXX"})
        setprop(camera.port, f"{DEVICE}.CONFIG_PROCESS.CONFIG_SAVE=On")
        return wait_for_file(path, b"SIM_XXX")


def test_a_file_the_libindi_simulator_wrote_yields_the_shared_properties(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    simulator_saved_file(tmp_path)
    path = tmp_path / ".indi" / CONFIG_NAME
    loaded = config_file.read_config(path, DEVICE, our_known(props))
    by_name = {c.name: values(c) for c in loaded.commands}
    assert by_name["UPLOAD_SETTINGS"]["UPLOAD_PREFIX"] == "SIM_XXX"
    assert {"CCD_GAIN", "CCD_OFFSET", "UPLOAD_MODE", "CCD_TRANSFER_FORMAT",
            "CCD_TEMP_RAMP"} <= set(by_name)
    assert "SIMULATOR_SETTINGS" in loaded.ignored and not loaded.legacy
    # The simulator's only capture format (INDI_MONO) is none of ours: not applied.
    assert "CCD_CAPTURE_FORMAT" not in by_name


def test_saving_over_the_simulators_file_keeps_its_settings(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    original = simulator_saved_file(tmp_path)
    path = tmp_path / ".indi" / CONFIG_NAME
    sim_settings = original[original.index(b"<newNumberVector device='QHY CCD QHY42PRO-SIM01' "
                                           b"name='SIMULATOR_SETTINGS'>"):]
    sim_settings = sim_settings[:sim_settings.index(b"</newNumberVector>")]
    upload = props["UPLOAD_SETTINGS"]
    upload.set_values({"UPLOAD_DIR": str(tmp_path), "UPLOAD_PREFIX": "OURS_XXX"})
    config_file.save_config(path, DEVICE, [upload])
    assert sim_settings in path.read_bytes()
    # And the simulator, started again on the merged file, reads both its own and ours.
    with libindi_camera(tmp_path) as camera:
        connect(camera.port)
        setprop(camera.port, f"{DEVICE}.UPLOAD_SETTINGS.UPLOAD_PREFIX=OTHER_XXX")
        wait_for(camera.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "OTHER_XXX"})
        setprop(camera.port, f"{DEVICE}.CONFIG_PROCESS.CONFIG_LOAD=On")
        wait_for(camera.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "OURS_XXX",
                               "CONFIG_PROCESS.CONFIG_LOAD": "Off"})


def test_the_daemon_applies_the_simulators_file_on_connect(tmp_path: Path) -> None:
    simulator_saved_file(tmp_path)
    with daemon(home=tmp_path) as server:
        connect(server.port)
        wait_for(server.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "SIM_XXX"})


def test_the_daemon_applies_only_what_it_shares_from_the_simulators_file(tmp_path: Path) -> None:
    simulator_saved_file(tmp_path)
    with daemon(home=tmp_path) as server:
        connect(server.port)
        wait_for(server.port, {"UPLOAD_SETTINGS.UPLOAD_PREFIX": "SIM_XXX"})
        states = indi_tool("indi_getprop", "-h", HOST, "-p", str(server.port), "-t", "1", "-1",
                           f"{DEVICE}.CCD_CAPTURE_FORMAT._STATE").stdout
    assert states.strip() != "Alert"
