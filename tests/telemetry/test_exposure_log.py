"""Exposures in the log: device and property on every line, long ones with progress at INFO at
a sensible cadence, short ones quiet."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qhy42_indi.indi.messages import (
    NumberElement,
    PropertyState,
    SetVector,
    TextElement,
    VectorKind,
)
from qhy42_indi.telemetry.exposure_log import ExposureLog, progress_step_s
from tests.service.logs import logged
from tests.support.camera import connect_camera, expose
from tests.support.client import IndiClient
from tests.support.processes import HOST, daemon

DEVICE = "QHY CCD QHY42PRO-SIM01"


def exposure(value: float, state: PropertyState) -> SetVector:
    return SetVector(VectorKind.NUMBER, DEVICE, "CCD_EXPOSURE", state,
                     (NumberElement("CCD_EXPOSURE_VALUE", value),))


def countdown(observer: ExposureLog, requested_s: float) -> None:
    observer(exposure(requested_s, PropertyState.BUSY))
    left = requested_s - 1
    while left > 0:
        observer(exposure(left, PropertyState.BUSY))
        left -= 1
    observer(exposure(0, PropertyState.BUSY))


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_long_exposure_logs_its_start_every_tenth_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = ExposureLog()
    with caplog.at_level(logging.DEBUG, logger="qhy42_indi.telemetry.exposure_log"):
        countdown(observer, 300)
        observer(SetVector(VectorKind.TEXT, DEVICE, "CCD_FILE_PATH", PropertyState.OK,
                           (TextElement("FILE_PATH", "/data/M42_001.fits"),)))
        observer(exposure(0, PropertyState.OK))
    info = lines(caplog)
    assert info[0] == f"{DEVICE} CCD_EXPOSURE: 300 s exposure started"
    assert info[1] == f"{DEVICE} CCD_EXPOSURE: 270 s left of 300 s (10%)"
    assert len(info) == 1 + 9 + 1  # every 30 s of a 300 s exposure
    assert info[-1] == f"{DEVICE} CCD_EXPOSURE: 300 s exposure done, saved to /data/M42_001.fits"


@pytest.mark.parametrize(("requested_s", "step_s"), [(10, 10), (60, 10), (300, 30), (3600, 60)])
def test_the_cadence_is_a_tenth_between_10_and_60_seconds(requested_s: float,
                                                          step_s: float) -> None:
    assert progress_step_s(requested_s) == step_s


def test_short_exposures_go_to_debug_and_an_abort_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = ExposureLog()
    with caplog.at_level(logging.DEBUG, logger="qhy42_indi.telemetry.exposure_log"):
        countdown(observer, 3)
        observer(exposure(0, PropertyState.OK))
        assert lines(caplog) == []
        assert lines(caplog, logging.DEBUG)[-1].endswith("3 s exposure done")
        observer(exposure(120, PropertyState.BUSY))
        observer(exposure(100, PropertyState.BUSY))
        observer(exposure(0, PropertyState.IDLE))
    assert lines(caplog)[-1] == f"{DEVICE} CCD_EXPOSURE: 120 s exposure aborted with 100.0 s left"


def test_fast_exposure_frames_each_get_their_end(caplog: pytest.LogCaptureFixture) -> None:
    observer = ExposureLog()
    with caplog.at_level(logging.INFO, logger="qhy42_indi.telemetry.exposure_log"):
        countdown(observer, 20)
        countdown(observer, 20)  # the next one starts without an Ok in between
        observer(exposure(0, PropertyState.OK))
    assert [line.endswith("20 s exposure done") for line in lines(caplog)].count(True) == 2


async def test_the_daemon_logs_a_long_exposure_at_info(tmp_path: Path) -> None:
    # 20 s of model time in about 1 s: the start and the end are logged.
    with daemon("--time-scale", "20") as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            await expose(client, 20)
        await logged(proc, f"INFO qhy42_indi.telemetry.exposure_log: {DEVICE} CCD_EXPOSURE: "
                           "20 s exposure started")
        await logged(proc, "CCD_EXPOSURE: 20 s exposure done")
