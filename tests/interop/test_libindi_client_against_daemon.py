"""libindiclient, the library KStars uses, captures from our daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from tests.interop.libindi_client import build_capture_client, run_capture_client
from tests.support.camera import DEVICE
from tests.support.processes import HOST, Running, daemon


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:
        yield proc


@pytest.fixture(scope="module")
def client_binary() -> Path:
    return build_capture_client()


@pytest.mark.parametrize("blob_mode", ["only", "also"])
def test_libindiclient_captures_frames(
    server: Running, client_binary: Path, tmp_path: Path, blob_mode: str
) -> None:
    result = run_capture_client(
        client_binary, HOST, server.port, DEVICE, 0.5, count=2, out_dir=tmp_path,
        extra_args=["--blob-mode", blob_mode, "--set", "CCD_BINNING.HOR_BIN=2",
                    "--set", "CCD_BINNING.VER_BIN=2"],
    )
    assert result.returncode == 0, result.stderr
    assert result.done_frames == 2 and len(result.frames) == 2
    for frame in result.frames:
        assert frame.format == ".fits" and frame.size == frame.bloblen
        with fits.open(frame.file) as hdus:
            assert hdus[0].data.shape == (1024, 1024)
            assert hdus[0].header["INSTRUME"] == DEVICE
    assert result.exposure_states()[:2] == ["Busy", "Ok"]
    if blob_mode == "also":  # one connection: stdout is the wire order
        kinds = [type(e).__name__ for e in result.events]
        last_busy = max(i for i, e in enumerate(result.events)
                        if getattr(e, "state", "") == "Busy")
        assert kinds[last_busy + 1] == "Frame"
