"""As Ekos sees a camera unplugged mid-exposure: libindiclient (the library KStars uses) gets
CCD_EXPOSURE Alert with the reason, not a dropped server, and once the cable is back the
same client program captures again with the settings made before. The cable is pulled and
plugged with indi_setprop."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from tests.interop.libindi_client import (
    EXIT_ALERT,
    build_capture_client,
    run_capture_client,
)
from tests.support.camera import DEVICE, answered, connect_camera, set_numbers
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, Running, daemon, indi_tool


@pytest.fixture
def server() -> Iterator[Running]:
    with daemon("--time-scale", "10") as proc:
        yield proc


def cable(server: Running, state: str) -> None:
    done = indi_tool("indi_setprop", "-h", HOST, "-p", str(server.port),
                     f"{DEVICE}.SIM_USB.{state}=On")
    assert done.returncode == 0, done.stderr


async def test_unplugged_mid_exposure_is_an_alert_and_the_next_capture_works(
    server: Running, tmp_path: Path,
) -> None:
    binary = build_capture_client()
    async with IndiClient.connect(HOST, server.port) as watcher:
        await connect_camera(watcher)
        await answered(watcher, "CCD_GAIN", await set_numbers(watcher, "CCD_GAIN", GAIN=27))
        # A long exposure (model seconds: 30 s are 3 s here), the cable pulled while it runs.
        client = subprocess.Popen(
            [str(binary), "--host", HOST, "--port", str(server.port), "--device", DEVICE,
             "--exposure", "30", "--out", str(tmp_path), "--timeout", "60",
             "--blob-mode", "also"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert client.stdout is not None
            line = client.stdout.readline()
            while line and not line.startswith("EXPOSURE state=Busy"):
                line = client.stdout.readline()
            if not line:
                raise AssertionError(f"no exposure began: {client.communicate(timeout=30)}")
            start = len(watcher.received)
            cable(server, "UNPLUGGED")
            _, stderr = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == EXIT_ALERT, (client.returncode, stderr)
        failed = await watcher.wait_for(is_set("CCD_EXPOSURE", "Alert"), start=start)
        assert "disappeared" in (failed.message or "")  # type: ignore[union-attr]
        await watcher.wait_for(is_set("CONNECTION", "Alert"), start=start)

        start = len(watcher.received)
        cable(server, "PLUGGED")
        await watcher.wait_for(is_set("CONNECTION", "Ok"), 30, start=start)
        back = run_capture_client(binary, HOST, server.port, DEVICE, 0.1, out_dir=tmp_path,
                                  extra_args=["--blob-mode", "also"], timeout_s=30)
        assert back.returncode == 0, back.stderr
        assert back.done_frames == 1 and len(back.frames) == 1
        with fits.open(back.frames[0].file) as hdus:
            assert hdus[0].header["GAIN"] == 27  # set before the loss, back after it
