"""The daemon with the real INDI peers: indi_getprop, indi_setprop and indiserver 1.9.9."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.processes import HOST, Running, daemon, indi_tool, indiserver

DEVICE = "QHY CCD QHY42PRO-SIM01"


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:
        yield proc


def getprop(port: int, *specs: str, timeout_s: int = 2) -> dict[str, str]:
    result = indi_tool("indi_getprop", "-h", HOST, "-p", str(port), "-t", str(timeout_s), *specs)
    values = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def setprop(port: int, spec: str) -> None:
    result = indi_tool("indi_setprop", "-h", HOST, "-p", str(port), spec)
    assert result.returncode == 0, result.stderr


def wait_for_value(port: int, key: str, expected: str, timeout_s: float = 15) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    values: dict[str, str] = {}
    while time.monotonic() < deadline:
        values = getprop(port, key.rsplit(".", 1)[0] + ".*", timeout_s=1)
        if values.get(key) == expected:
            return values
    raise AssertionError(f"{key} never became {expected}: {values}")


def test_indi_getprop_lists_the_device_before_connect(server: Running) -> None:
    values = getprop(server.port, "*.*.*")
    assert values[f"{DEVICE}.CONNECTION.CONNECT"] == "Off"
    assert values[f"{DEVICE}.CONNECTION.DISCONNECT"] == "On"
    assert values[f"{DEVICE}.DRIVER_INFO.DRIVER_INTERFACE"] == "2"
    assert values[f"{DEVICE}.DRIVER_INFO.DRIVER_EXEC"] == "indi_qhy42_ccd"
    assert f"{DEVICE}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE" not in values


def test_indi_setprop_connects_and_changes_a_value(server: Running) -> None:
    setprop(server.port, f"{DEVICE}.CONNECTION.CONNECT=On")
    values = wait_for_value(server.port, f"{DEVICE}.CONNECTION.CONNECT", "On")
    assert values[f"{DEVICE}.CONNECTION.DISCONNECT"] == "Off"
    info = getprop(server.port, f"{DEVICE}.CCD_INFO.*")
    assert info[f"{DEVICE}.CCD_INFO.CCD_MAX_X"] == "2048"
    assert info[f"{DEVICE}.CCD_INFO.CCD_PIXEL_SIZE"] == "11"
    setprop(server.port, f"{DEVICE}.CCD_BINNING.HOR_BIN;VER_BIN=2;2")
    binning = wait_for_value(server.port, f"{DEVICE}.CCD_BINNING.HOR_BIN", "2")
    assert binning[f"{DEVICE}.CCD_BINNING.VER_BIN"] == "2"
    state = getprop(server.port, f"{DEVICE}.CCD_BINNING._STATE")
    assert state[f"{DEVICE}.CCD_BINNING._STATE"] == "Ok"


def test_indiserver_chained_to_the_daemon_sees_the_device(server: Running) -> None:
    with indiserver(f"@{HOST}:{server.port}") as chain:
        values = getprop(chain.port, "*.DRIVER_INFO.*", timeout_s=3)
        assert values.get(f"{DEVICE}.DRIVER_INFO.DRIVER_INTERFACE") == "2", chain.log()


def test_indiserver_runs_the_daemon_as_a_local_driver() -> None:
    with indiserver("indi_qhy42_ccd") as local:
        values = getprop(local.port, "*.CONNECTION.*", timeout_s=3)
        assert values.get(f"{DEVICE}.CONNECTION.CONNECT") == "Off", local.log()
        setprop(local.port, f"{DEVICE}.CONNECTION.CONNECT=On")
        connected = wait_for_value(local.port, f"{DEVICE}.CCD_INFO.CCD_MAX_Y", "2048")
        assert connected[f"{DEVICE}.CCD_INFO.CCD_BITSPERPIXEL"] == "16"
