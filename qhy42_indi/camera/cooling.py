"""Temperature regulation with libindi's semantics, on top of the backend's TEC.

A set-point turns the cooler on. With CCD_TEMP_RAMP's slope s (C/min, 0 = off) the backend is
first asked for max(target, now - s) when cooling (min(target, now + s) when warming) and one
step further every minute. CCD_TEMPERATURE is Busy while the sensor moves and Ok once within
RAMP_THRESHOLD of the target. When warming stalls within the threshold for two minutes, the
ambient limits it and that is Ok too ("limited by ambient", as libindi says). Readings are
published when they change, so an idle connection costs next to nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from qhy42_indi.backends.base import (
    PWM_MAX,
    SUPPLY_VOLTAGE_MIN_V,
    BackendError,
    CoolerControl,
    CoolerMode,
    CoolerState,
    HeaterLevel,
)
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.tasks import cancel_and_wait, start_task

log = logging.getLogger(__name__)

RAMP_STEP_PERIOD_S = 60.0
AMBIENT_LIMIT_S = 120.0
TEMPERATURE_RESOLUTION_C = 0.05
POWER_RESOLUTION_PERCENT = 0.5
# The TEC is read at POLLING_PERIOD, but not more often than this: a sensor's temperature
# moves over seconds, and every reading is a USB control transfer beside the frames (a
# client asking 10 ms polling for its countdowns would otherwise read the cooler 100 times
# a second).
COOLER_POLL_MIN_S = 1.0


class Regulation:
    IDLE = "idle"  # cooler off or manual: nothing to reach
    MOVING = "moving"
    REACHED = "reached"


@dataclass
class RampPlan:
    """Where the temperature is going and how fast."""

    target_c: float
    slope_c_per_min: float
    threshold_c: float
    setpoint_c: float
    last_step_s: float
    stalled_since_s: float | None = None

    @classmethod
    def begin(
        cls, target_c: float, current_c: float, slope_c_per_min: float, threshold_c: float
    ) -> RampPlan:
        plan = cls(target_c, slope_c_per_min, threshold_c, target_c, time.monotonic())
        plan.setpoint_c = plan._next_setpoint(current_c)
        return plan

    def _next_setpoint(self, current_c: float) -> float:
        if self.slope_c_per_min <= 0:
            return self.target_c
        if self.target_c < current_c:
            return max(self.target_c, current_c - self.slope_c_per_min)
        return min(self.target_c, current_c + self.slope_c_per_min)

    def step(self, current_c: float, now_s: float) -> float | None:
        """A new set-point to command, when a ramp step is due."""
        # Compared as a due time, not a difference: (t + period) - t can fall short of period.
        if self.setpoint_c == self.target_c or now_s < self.last_step_s + RAMP_STEP_PERIOD_S:
            return None
        self.last_step_s = now_s
        self.setpoint_c = self._next_setpoint(current_c)
        return self.setpoint_c

    def regulation(self, reading: CoolerState, previous_c: float | None, now_s: float) -> str:
        if abs(self.target_c - reading.sensor_temperature_c) <= self.threshold_c:
            return Regulation.REACHED
        warming = self.target_c > reading.sensor_temperature_c
        flat = previous_c is not None and abs(reading.sensor_temperature_c - previous_c) <= (
            self.threshold_c
        )
        if warming and flat:
            if self.stalled_since_s is None:
                self.stalled_since_s = now_s
            if now_s >= self.stalled_since_s + AMBIENT_LIMIT_S:
                return Regulation.REACHED
        else:
            self.stalled_since_s = None
        return Regulation.MOVING


def supply_is_low(reading: CoolerState) -> bool:
    voltage = reading.supply_voltage_v
    return voltage is not None and voltage < SUPPLY_VOLTAGE_MIN_V


def changed(old: float | None, new: float, resolution: float) -> bool:
    return old is None or abs(old - new) >= resolution


HEATER_LEVELS = {
    "HEATER_OFF": HeaterLevel.OFF,
    "HEATER_MID": HeaterLevel.MID,
    "HEATER_HIGH": HeaterLevel.HIGH,
}


class Cooling:
    """The cooler's INDI properties and the task that keeps them current while connected."""

    def __init__(self, device: PropertyDevice, backend: CoolerControl,
                 polling_period_s: Callable[[], float]) -> None:
        self._device = device
        self._polling_period_s = polling_period_s
        self._backend = backend
        self._plan: RampPlan | None = None
        self._last_target_c: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._published: dict[str, float] = {}
        self._previous_c: float | None = None
        self._supply_low = False

    def handlers(self) -> dict[str, Handler]:
        return {
            "CCD_TEMPERATURE": self._on_temperature,
            "CCD_COOLER": self._on_cooler,
            "CCD_COOLER_MODE": self._on_cooler_mode,
            "CCD_COOLER_POWER": self._on_cooler_power,
            "CCD_HEATER": self._on_heater,
        }

    @property
    def target_c(self) -> float | None:
        """The set-point being regulated to, for SET-TEMP; None when not regulating."""
        return self._plan.target_c if self._plan is not None else None

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        reading = await self._backend.cooler_state()
        self._reflect(reading, force=True)
        self._task = start_task(self._poll_forever(), "cooler poll")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self._plan = None
        self._published.clear()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(max(COOLER_POLL_MIN_S, self._polling_period_s()))
            try:
                await self.poll()
            except BackendError as error:
                log.warning("cooler reading failed: %s", error)

    async def poll(self) -> None:
        """Read the TEC once, take a ramp step if due, publish what changed."""
        reading = await self._backend.cooler_state()
        if self._plan is not None and reading.mode is CoolerMode.AUTO:
            setpoint = self._plan.step(reading.sensor_temperature_c, time.monotonic())
            if setpoint is not None:
                await self._backend.set_cooler_target(setpoint)
        self._reflect(reading)

    # ---- publishing ----------------------------------------------------------------------

    def _reflect(self, reading: CoolerState, *, force: bool = False) -> None:
        device = self._device
        now_s = time.monotonic()
        temperature = reading.sensor_temperature_c
        state = PropertyState.IDLE
        if self._plan is not None and reading.mode is CoolerMode.AUTO:
            reached = self._plan.regulation(reading, self._previous_c, now_s)
            state = PropertyState.OK if reached == Regulation.REACHED else PropertyState.BUSY
        self._previous_c = temperature
        temp_vector = device.props["CCD_TEMPERATURE"]
        if force or state is not temp_vector.state or changed(
            self._published.get("temperature"), temperature, TEMPERATURE_RESOLUTION_C
        ):
            self._published["temperature"] = temperature
            temp_vector.set_values({"CCD_TEMPERATURE_VALUE": round(temperature, 2)})
            device.update("CCD_TEMPERATURE", state)
        power = reading.power_percent
        if force or changed(self._published.get("power"), power, POWER_RESOLUTION_PERCENT):
            self._published["power"] = power
            device.props["CCD_COOLER_POWER"].set_values({"CCD_COOLER_VALUE": round(power, 1)})
            on = reading.mode is not CoolerMode.OFF
            device.update("CCD_COOLER_POWER", PropertyState.BUSY if on else PropertyState.IDLE)
        if reading.supply_voltage_v is not None:
            self._reflect_supply(reading.supply_voltage_v, force)

    def _reflect_supply(self, voltage_v: float, force: bool) -> None:
        low = voltage_v < SUPPLY_VOLTAGE_MIN_V
        if not (force or low != self._supply_low or changed(
            self._published.get("voltage"), voltage_v, 0.05
        )):
            return
        self._published["voltage"] = voltage_v
        self._device.props["SUPPLY_VOLTAGE"].set_values({"VOLTAGE": round(voltage_v, 2)})
        message = None
        if low and not self._supply_low:
            message = (
                f"[WARNING] Supply voltage {voltage_v:.2f} V is below the camera's "
                f"{SUPPLY_VOLTAGE_MIN_V} V minimum: the camera may reboot when the cooler "
                "draws hard. Use a stronger 12 V supply or shorter cable."
            )
            log.warning("%s: supply %.2f V is low", self._device.name, voltage_v)
        self._supply_low = low
        state = PropertyState.ALERT if low else PropertyState.OK
        self._device.update("SUPPLY_VOLTAGE", state, message)

    def _set_switches(self, name: str, on: str) -> None:
        vector = self._device.props[name]
        vector.set_values({e: SwitchState.ON if e == on else SwitchState.OFF
                           for e in vector.values()})
        self._device.update(name, PropertyState.OK)

    # ---- handlers ------------------------------------------------------------------------

    async def _on_temperature(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        target_c = float(proposed["CCD_TEMPERATURE_VALUE"])
        await self.regulate_to(target_c)

    async def regulate_to(self, target_c: float) -> None:
        ramp = self._device.props["CCD_TEMP_RAMP"]
        reading = await self._backend.cooler_state()
        self._plan = RampPlan.begin(
            target_c,
            reading.sensor_temperature_c,
            float(ramp.value("RAMP_SLOPE")),
            float(ramp.value("RAMP_THRESHOLD")),
        )
        self._last_target_c = target_c
        try:
            await self._backend.set_cooler_target(self._plan.setpoint_c)
        except BackendError as error:
            self._plan = None
            self._device.alert("CCD_TEMPERATURE", f"Cannot set the temperature: {error}")
            return
        self._set_switches("CCD_COOLER", "COOLER_ON")
        self._set_switches("CCD_COOLER_MODE", "COOLER_AUTOMATIC")
        self._reflect(await self._backend.cooler_state(), force=True)

    async def _on_cooler(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if proposed["COOLER_ON"] is SwitchState.ON:
            reading = await self._backend.cooler_state()
            # Back to the last set-point, or (as indi_qhy_ccd) to 0 C or the current reading.
            target = self._last_target_c
            if target is None:
                target = min(reading.sensor_temperature_c, 0.0)
            await self.regulate_to(target)
            return
        self._plan = None
        try:
            await self._backend.cooler_off()
        except BackendError as error:
            self._device.alert("CCD_COOLER", f"Cannot switch the cooler off: {error}")
            return
        self._set_switches("CCD_COOLER", "COOLER_OFF")
        self._reflect(await self._backend.cooler_state(), force=True)

    async def _on_cooler_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if proposed["COOLER_AUTOMATIC"] is SwitchState.ON:
            reading = await self._backend.cooler_state()
            await self.regulate_to(self._last_target_c or reading.sensor_temperature_c)
            return
        reading = await self._backend.cooler_state()
        await self._manual(reading.pwm)

    async def _on_cooler_power(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        percent = float(proposed["CCD_COOLER_VALUE"])
        await self._manual(round(percent * PWM_MAX / 100.0))

    async def _manual(self, pwm: int) -> None:
        self._plan = None
        try:
            await self._backend.set_cooler_pwm(pwm)
        except BackendError as error:
            self._device.alert("CCD_COOLER_POWER", f"Cannot set the cooler power: {error}")
            return
        self._set_switches("CCD_COOLER_MODE", "COOLER_MANUAL")
        self._set_switches("CCD_COOLER", "COOLER_ON" if pwm > 0 else "COOLER_OFF")
        self._reflect(await self._backend.cooler_state(), force=True)

    async def _on_heater(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        chosen = next(name for name, state in proposed.items() if state is SwitchState.ON)
        try:
            await self._backend.set_heater(HEATER_LEVELS[chosen])
        except BackendError as error:
            self._device.alert("CCD_HEATER", f"Cannot set the heater: {error}")
            return
        vector.set_values(proposed)
        self._device.update("CCD_HEATER", PropertyState.OK)
