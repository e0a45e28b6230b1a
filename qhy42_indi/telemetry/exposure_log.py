"""Exposures in the daemon's log: start, progress of the long ones, end; device and property
on every line.

An observer of the hub like the MQTT telemetry, reading the CCD_EXPOSURE countdown the device
publishes anyway, so the camera code holds no log cadence. An exposure of LONG_EXPOSURE_S or
more is logged at INFO when it starts, then every tenth of it (at least 10 s and at most 60 s
of exposure apart) while it runs, and when it ends, with the file it was saved to. Shorter
ones go to DEBUG: a run of short frames would flood the log. Failures are not logged here:
the device logs them itself, with the reason (device_base.alert).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from qhy42_indi.indi.messages import (
    IndiMessage,
    NumberElement,
    PropertyState,
    SetVector,
    TextElement,
)

log = logging.getLogger(__name__)

LONG_EXPOSURE_S = 10.0
MIN_PROGRESS_STEP_S = 10.0
MAX_PROGRESS_STEP_S = 60.0


def progress_step_s(requested_s: float) -> float:
    """How much exposure passes between two progress lines."""
    return min(MAX_PROGRESS_STEP_S, max(MIN_PROGRESS_STEP_S, requested_s / 10))


@dataclass
class _Running:
    requested_s: float
    left_s: float
    logged_left_s: float
    saved_to: str | None = None

    @property
    def level(self) -> int:
        return logging.INFO if self.requested_s >= LONG_EXPOSURE_S else logging.DEBUG


class ExposureLog:
    """Call it with every device message (Hub.observe)."""

    def __init__(self) -> None:
        self._running: dict[str, _Running] = {}

    def __call__(self, message: IndiMessage) -> None:
        if not isinstance(message, SetVector):
            return
        if message.name == "CCD_EXPOSURE":
            value = next((e.value for e in message.elements if isinstance(e, NumberElement)), 0)
            self._exposure(message.device, message.state, float(value))
        elif message.name == "CCD_FILE_PATH" and message.state is PropertyState.OK:
            running = self._running.get(message.device)
            path = next((e.value for e in message.elements if isinstance(e, TextElement)), "")
            if running is not None:
                running.saved_to = path

    def _exposure(self, device: str, state: PropertyState | None, value_s: float) -> None:
        running = self._running.get(device)
        if state is PropertyState.BUSY:
            if running is None or value_s > running.left_s:
                if running is not None:  # fast exposure: the next one began without an Ok
                    self._done(device, running)
                running = self._running[device] = _Running(value_s, value_s, value_s)
                log.log(running.level, "%s CCD_EXPOSURE: %g s exposure started", device,
                        value_s)
                return
            running.left_s = value_s
            step_s = progress_step_s(running.requested_s)
            due = running.logged_left_s - value_s >= step_s and value_s > 0
            if running.level == logging.INFO and due:
                running.logged_left_s = value_s
                done = 100 * (1 - value_s / running.requested_s)
                log.info("%s CCD_EXPOSURE: %.0f s left of %g s (%.0f%%)", device, value_s,
                         running.requested_s, done)
            return
        if running is None:
            return
        del self._running[device]
        if state is PropertyState.OK:
            self._done(device, running)
        elif state is PropertyState.IDLE:
            log.info("%s CCD_EXPOSURE: %g s exposure aborted with %.1f s left", device,
                     running.requested_s, running.left_s)

    def _done(self, device: str, running: _Running) -> None:
        saved = f", saved to {running.saved_to}" if running.saved_to else ""
        log.log(running.level, "%s CCD_EXPOSURE: %g s exposure done%s", device,
                running.requested_s, saved)
