"""The QHY42PRO's own features for Alpaca clients, through Action(name, parameters).

Each action takes a parameter string and answers a JSON text: the setting as it is after the
action (an empty parameter string only reads it). Every change goes through the gateway, as
the INDI property of the same feature would (GPIO_MODE, SMA_OUTPUT, TRIGOUT_ENABLE,
TRIGGER_MODE, TRIGGER_TIMEOUT, BURST_*, HDR_OUTPUT), so the device's checks and refusals
apply and INDI clients see the change. Not here: the standard camera members (camera.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from qhy42_indi.alpaca.protocol import (
    ACTION_NOT_IMPLEMENTED,
    AlpacaError,
    invalid,
    invalid_operation,
)
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.frame_tap import DeliveredFrame
from qhy42_indi.indi.messages import SwitchState
from qhy42_indi.indi.properties import Value

# Sends one property command; raises AlpacaError when the device refuses it.
Command = Callable[[str, Mapping[str, Value]], Awaitable[None]]

# Action name -> (property, {parameter word: switch}).
SWITCH_ACTIONS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "GpioMode": ("GPIO_MODE", {
        "i2c": "GPIO_I2C", "gps_box": "GPIO_GPS_BOX", "5pin": "GPIO_5PIN", "4pin": "GPIO_4PIN",
        "sync_master": "GPIO_SYNC_MASTER", "sync_slave": "GPIO_SYNC_SLAVE"}),
    "SmaOutput": ("SMA_OUTPUT", {"shutter_measure": "SMA_SHUTTER_MEASURE",
                                 "trigout": "SMA_TRIGOUT"}),
    "TrigOut": ("TRIGOUT_ENABLE", {"on": "INDI_ENABLED", "off": "INDI_DISABLED"}),
    "TriggerMode": ("TRIGGER_MODE", {"software": "TRIGGER_SOFTWARE",
                                     "hardware": "TRIGGER_HARDWARE"}),
    "HdrOutput": ("HDR_OUTPUT", {"dual": "HDR_DUAL", "merged": "HDR_MERGED"}),
    "BurstMode": ("BURST_MODE", {"on": "INDI_ENABLED", "off": "INDI_DISABLED"}),
}
OTHER_ACTIONS = ("TriggerTimeout", "FrameTiming", "BurstConfigure", "BurstCapture")
SUPPORTED_ACTIONS: tuple[str, ...] = (*SWITCH_ACTIONS, *OTHER_ACTIONS)
_BY_FOLDED = {name.casefold(): name for name in SUPPORTED_ACTIONS}


def _switch_word(device: Qhy42Device, name: str, words: Mapping[str, str]) -> str | None:
    on = device.props[name].on_switches()
    return next((word for word, switch in words.items() if on and switch == on[0]), None)


class CameraActions:
    def __init__(self, device: Qhy42Device,
                 last_frame: Callable[[], DeliveredFrame | None]) -> None:
        self._device = device
        self._last_frame = last_frame

    async def run(self, action: str, parameters: str, command: Command) -> str:
        """Run `action`; `command` sends a property command for the client who asked."""
        return await _Run(self._device, self._last_frame, command).run(action, parameters)


class _Run:
    def __init__(self, device: Qhy42Device, last_frame: Callable[[], DeliveredFrame | None],
                 command: Command) -> None:
        self._device = device
        self._last_frame = last_frame
        self._command = command

    async def run(self, action: str, parameters: str) -> str:
        name = _BY_FOLDED.get(action.strip().casefold())
        if name is None:
            raise AlpacaError(ACTION_NOT_IMPLEMENTED,
                              f"no action {action!r}; SupportedActions lists them")
        parameters = parameters.strip()
        if name in SWITCH_ACTIONS:
            result: Any = await self._switch(name, parameters)
        elif name == "TriggerTimeout":
            result = await self._trigger_timeout(parameters)
        elif name == "FrameTiming":
            result = self._frame_timing()
        elif name == "BurstConfigure":
            result = await self._burst_configure(parameters)
        else:
            await self._command("BURST_CAPTURE", {"CAPTURE": SwitchState.ON})
            result = {"captured": True}
        return json.dumps(result)

    async def _switch(self, action: str, parameters: str) -> dict[str, str | None]:
        name, words = SWITCH_ACTIONS[action]
        if parameters:
            switch = words.get(parameters.casefold())
            if switch is None:
                raise invalid(f"{action} takes one of {', '.join(words)}, not {parameters!r}")
            await self._command(name, {switch: SwitchState.ON})
        return {"value": _switch_word(self._device, name, words)}

    async def _trigger_timeout(self, parameters: str) -> dict[str, float]:
        vector = self._device.props["TRIGGER_TIMEOUT"]
        if parameters:
            try:
                seconds = float(parameters)
            except ValueError:
                raise invalid(f"TriggerTimeout takes seconds, not {parameters!r}") from None
            limits = vector.number("TIMEOUT")
            low, high = limits.min or 0.0, limits.max or 86400.0
            if not (math.isfinite(seconds) and low <= seconds <= high):
                raise invalid(f"TriggerTimeout {parameters} is outside {low:g}..{high:g} s")
            await self._command("TRIGGER_TIMEOUT", {"TIMEOUT": seconds})
        return {"seconds": float(vector.value("TIMEOUT"))}

    def _frame_timing(self) -> dict[str, Any]:
        frame = self._last_frame()
        if frame is None:
            raise invalid_operation("no frame has been taken yet")
        props = self._device.props
        timing = props["EXPOSURE_TIMING"].values()
        gps: dict[str, Any] | None = None
        if "GPS_STATE" in self._device.defined:
            state = props["GPS_STATE"]
            gps = {"status": int(float(state.value("STATUS"))), "state": state.state.value,
                   "pps_counter": int(float(state.value("PPS_COUNTER")))}
        return {
            "start_utc": frame.start_utc.isoformat(),
            "end_utc": str(timing.get("END_UTC", "")),
            "exposure_s": frame.frame.exposure_s,
            "line_period_us": frame.frame.line_period_us,
            "sequence": frame.frame.sequence,
            "time_source": frame.time_source,
            "gps": gps,
        }

    async def _burst_configure(self, parameters: str) -> dict[str, Any]:
        props = self._device.props
        if parameters:
            try:
                given = json.loads(parameters)
            except ValueError:
                raise invalid("BurstConfigure takes a JSON object such as "
                              '{"start": 1, "end": 6, "patch": 32001, "idle": false}') from None
            if not isinstance(given, dict) or not set(given) <= {"start", "end", "patch",
                                                                 "idle"}:
                raise invalid("BurstConfigure takes start, end, patch and idle only")
            numbers = {k: given[k] for k in ("start", "end", "patch") if k in given}
            for key, value in numbers.items():
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise invalid(f"BurstConfigure {key} must be a non-negative integer")
            if "idle" in given and not isinstance(given["idle"], bool):
                raise invalid("BurstConfigure idle must be true or false")
            if "start" in numbers or "end" in numbers:
                await self._command("BURST_RANGE", {
                    "START": float(numbers.get("start", props["BURST_RANGE"].value("START"))),
                    "END": float(numbers.get("end", props["BURST_RANGE"].value("END")))})
            if "patch" in numbers:
                await self._command("BURST_PATCH", {"PATCH_NUMBER": float(numbers["patch"])})
            if "idle" in given:
                await self._command("BURST_IDLE", {
                    "IDLE" if given["idle"] else "RELEASE": SwitchState.ON})
        burst_range = props["BURST_RANGE"]
        return {
            "start": int(float(burst_range.value("START"))),
            "end": int(float(burst_range.value("END"))),
            "patch": int(float(props["BURST_PATCH"].value("PATCH_NUMBER"))),
            "idle": props["BURST_IDLE"].is_on("IDLE"),
            "mode": props["BURST_MODE"].is_on("INDI_ENABLED"),
        }
