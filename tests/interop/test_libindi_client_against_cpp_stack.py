"""The libindiclient capture client against the C++ reference stack (indiserver +
indi_simulator_ccd), proving the client itself before it is pointed at our server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from astropy.io import fits

from tests.interop.libindi_client import (
    EXIT_ALERT,
    CaptureResult,
    ExposureUpdate,
    Frame,
    build_capture_client,
    run_capture_client,
)
from tests.support.processes import HOST, free_port, running

pytestmark = pytest.mark.skipif(
    shutil.which("indiserver") is None or shutil.which("indi_simulator_ccd") is None,
    reason="indiserver / indi_simulator_ccd not installed (Debian package indi-bin)",
)

DEVICE = "CCD Simulator"
WIDTH, HEIGHT = 64, 48
# A small frame keeps each capture to a few kilobytes.
SMALL_FRAME = ("--set", "CCD_FRAME.X=0", "--set", "CCD_FRAME.Y=0",
               "--set", f"CCD_FRAME.WIDTH={WIDTH}", "--set", f"CCD_FRAME.HEIGHT={HEIGHT}")


@dataclass
class ReferenceStack:
    port: int
    unix_socket: Path


@pytest.fixture(scope="module")
def client() -> Path:
    return build_capture_client()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceStack]:
    port = free_port()
    unix_socket = tmp_path_factory.mktemp("sock") / "indiserver"
    # indiserver binds every interface (it has no bind-address option); we only use loopback.
    argv = ["indiserver", "-p", str(port), "-u", str(unix_socket), "indi_simulator_ccd"]
    with running(argv, port):  # temporary HOME for the driver's config; stopped on exit
        yield ReferenceStack(port, unix_socket)


def capture(client: Path, host: str, port: int, out_dir: Path, *extra: str,
            exposure_s: float = 0.2, count: int = 1) -> CaptureResult:
    return run_capture_client(client, host, port, DEVICE, exposure_s, count, out_dir=out_dir,
                              extra_args=(*SMALL_FRAME, *extra), timeout_s=30)


def assert_small_fits(frame: Frame) -> None:
    assert frame.format == ".fits"
    assert frame.file.stat().st_size == frame.size == frame.bloblen
    header = fits.getheader(frame.file)
    assert (header["NAXIS1"], header["NAXIS2"]) == (WIDTH, HEIGHT)
    assert header["INSTRUME"] == DEVICE


@pytest.mark.parametrize("blob_mode", ["only", "also"])
def test_client_receives_a_fits_frame(
    client: Path, stack: ReferenceStack, tmp_path: Path, blob_mode: str
) -> None:
    result = capture(client, HOST, stack.port, tmp_path, "--blob-mode", blob_mode)

    assert result.returncode == 0, result.stderr
    assert result.done_frames == 1
    [frame] = result.frames
    assert frame.index == 1
    assert frame.file == tmp_path / "frame_1.fits"
    assert_small_fits(frame)
    assert result.exposure_states() == ["Busy", "Ok"]
    if blob_mode == "also":
        # One socket, so stdout is the wire order: countdown, BLOB, then Ok (libindi drivers).
        at = result.events.index(frame)
        assert all(isinstance(e, ExposureUpdate) and e.state == "Busy" for e in result.events[:at])
        assert at > 0
        assert result.events[at + 1:] == [ExposureUpdate("Ok", 0.0)]


def test_client_takes_exposures_one_after_another(
    client: Path, stack: ReferenceStack, tmp_path: Path
) -> None:
    result = capture(client, HOST, stack.port, tmp_path, exposure_s=0.1, count=3)

    assert result.returncode == 0, result.stderr
    assert result.done_frames == 3
    assert [f.file.name for f in result.frames] == ["frame_1.fits", "frame_2.fits", "frame_3.fits"]
    for frame in result.frames:
        assert_small_fits(frame)
    assert result.exposure_states() == ["Busy", "Ok"] * 3


def test_client_passes_a_local_socket_host_through(
    client: Path, stack: ReferenceStack, tmp_path: Path
) -> None:
    # libindiclient 1.9.9 reads "localhost:/path" as indiserver's -u socket (an abstract Unix
    # socket; BLOBs come as shared-memory fds). Nothing listens on port 1, so a frame proves it.
    result = capture(client, f"localhost:{stack.unix_socket}", 1, tmp_path)

    assert result.returncode == 0, result.stderr
    [frame] = result.frames
    assert_small_fits(frame)


def test_client_fails_when_the_exposure_goes_alert(
    client: Path, stack: ReferenceStack, tmp_path: Path
) -> None:
    result = capture(client, HOST, stack.port, tmp_path, exposure_s=99999)

    assert result.returncode == EXIT_ALERT
    assert "Alert" in result.stderr
    assert result.frames == []
    assert result.done_frames is None
