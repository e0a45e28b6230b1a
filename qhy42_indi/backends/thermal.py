"""The QHY42PRO's two-stage TEC, its regulator, the anti-dew heater and the 12 V supply.

What it is for: `ThermalModel` gives the sensor temperature, PWM and supply voltage at any model
time. The sensor follows a first-order response toward an equilibrium set by the TEC power and
the heater; in AUTO the camera firmware's regulator (a PI loop, updated once per second) sets
the PWM toward a target. Time is passed in explicitly (seconds of model time), so the model is
deterministic and testable without waiting.

What it is not: no asyncio, no wall clock (the simulator maps its clock onto model time), no
self-heating at short exposures and none of the firmware's read-back quirks (ref 1.9).

Numbers: at most 35 C below ambient (datasheet: "-35C below ambient", test ambient +20 C);
from warm toward 0 C the PWM starts at 255 and tapers within ~20 s (MIT field notes), and the
sensor reaches -10 C in about 2-3 minutes (datasheet guide): a 30 s time constant and the PI
gains below reproduce both. The cooling power saturates with PWM (p * (2 - p), p = PWM / 255),
as a Peltier's heat pumping does when its I^2 R loss grows. Supply: the camera needs 11.5-13.8 V
(datasheet); [model] currents: 0.6 A electronics, up to 3 A TEC, heater 0.3 / 0.6 A, through a
0.1 ohm supply and cable, so a full load sags 12 V by ~0.4 V and a weak supply (higher
resistance) drops below 11.5 V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from qhy42_indi.backends.base import PWM_MAX, CoolerMode, HeaterLevel

MAX_DELTA_C = 35.0
TIME_CONSTANT_S = 30.0
REGULATOR_TICK_S = 1.0
# The regulator settles within ~3 minutes; a longer gap between readings starts from the settled
# state and steps only the last 10 minutes, so a reading costs the same after any gap.
SETTLED_AFTER_TICKS = 600
# PI gains in PWM per C and PWM per (C s); the integral starts from zero, so the first seconds
# toward a new target run at full power and the approach overshoots a little, as the MAN-CN
# notes describe ("oscillates for a while before it settles").
PROPORTIONAL_PWM_PER_C = 30.0
INTEGRAL_PWM_PER_C_S = 1.5
HEATER_RISE_C = {HeaterLevel.OFF: 0.0, HeaterLevel.MID: 1.0, HeaterLevel.HIGH: 2.0}
HEATER_CURRENT_A = {HeaterLevel.OFF: 0.0, HeaterLevel.MID: 0.3, HeaterLevel.HIGH: 0.6}
ELECTRONICS_CURRENT_A = 0.6
TEC_CURRENT_MAX_A = 3.0


@dataclass(frozen=True, slots=True)
class ThermalEnvironment:
    ambient_c: float = 20.0
    supply_voltage_v: float = 12.0
    supply_resistance_ohm: float = 0.1


@dataclass(frozen=True, slots=True)
class ThermalState:
    time_s: float
    temperature_c: float
    pwm: int
    mode: CoolerMode
    target_c: float | None
    heater: HeaterLevel
    integral_pwm: float  # the regulator's integral term


def cooling_fraction(pwm: int) -> float:
    """The share of MAX_DELTA_C that a PWM holds at equilibrium (0..1)."""
    p = pwm / PWM_MAX
    return p * (2.0 - p)


def _pwm_fraction_for(cooling: float) -> float:
    """The PWM / PWM_MAX whose cooling_fraction is `cooling`, clamped to 0..1."""
    return 1.0 - math.sqrt(1.0 - min(max(cooling, 0.0), 1.0))


class ThermalModel:
    """Sensor temperature, TEC and supply, advanced on demand in regulator ticks."""

    def __init__(self, environment: ThermalEnvironment, start_time_s: float = 0.0) -> None:
        self.environment = environment
        self._state = ThermalState(
            time_s=start_time_s,
            temperature_c=environment.ambient_c,
            pwm=0,
            mode=CoolerMode.OFF,
            target_c=None,
            heater=HeaterLevel.OFF,
            integral_pwm=0.0,
        )

    # commands take effect at `time_s`

    def set_target(self, time_s: float, target_c: float) -> None:
        self.advance(time_s)
        restart = self._state.mode is not CoolerMode.AUTO
        self._state = replace(
            self._state,
            mode=CoolerMode.AUTO,
            target_c=target_c,
            integral_pwm=0.0 if restart else self._state.integral_pwm,
        )
        self._regulate()

    def set_manual(self, time_s: float, pwm: int) -> None:
        self.advance(time_s)
        self._state = replace(self._state, mode=CoolerMode.MANUAL, target_c=None, pwm=pwm)

    def switch_off(self, time_s: float) -> None:
        self.advance(time_s)
        self._state = replace(self._state, mode=CoolerMode.OFF, target_c=None, pwm=0)

    def set_heater(self, time_s: float, level: HeaterLevel) -> None:
        self.advance(time_s)
        self._state = replace(self._state, heater=level)

    # readings

    def state_at(self, time_s: float) -> ThermalState:
        """The state at `time_s`: whole ticks are integrated, the rest is interpolated."""
        self.advance(time_s)
        state = self._state
        partial_s = time_s - state.time_s
        if partial_s <= 0.0:
            return state
        return replace(
            state,
            time_s=time_s,
            temperature_c=self._relax(state.temperature_c, state.pwm, partial_s),
        )

    def supply_voltage_v(self, state: ThermalState) -> float:
        current_a = (
            ELECTRONICS_CURRENT_A
            + TEC_CURRENT_MAX_A * state.pwm / PWM_MAX
            + HEATER_CURRENT_A[state.heater]
        )
        env = self.environment
        return env.supply_voltage_v - current_a * env.supply_resistance_ohm

    # integration

    def advance(self, time_s: float) -> None:
        """Integrate whole regulator ticks up to `time_s`, in time independent of the span:
        at a fixed PWM (OFF, MANUAL) one exact step covers it; in AUTO a span longer than
        SETTLED_AFTER_TICKS starts from the settled state, and only its last ticks are stepped."""
        ticks = int((time_s - self._state.time_s) // REGULATOR_TICK_S)
        if ticks <= 0:
            return
        if self._state.mode is not CoolerMode.AUTO:
            self._hold_pwm(ticks * REGULATOR_TICK_S)
            return
        if ticks > SETTLED_AFTER_TICKS:
            self._settle((ticks - SETTLED_AFTER_TICKS) * REGULATOR_TICK_S)
            ticks = SETTLED_AFTER_TICKS
        for _ in range(ticks):
            self._hold_pwm(REGULATOR_TICK_S)
            self._regulate()

    def _hold_pwm(self, duration_s: float) -> None:
        state = self._state
        self._state = replace(
            state,
            time_s=state.time_s + duration_s,
            temperature_c=self._relax(state.temperature_c, state.pwm, duration_s),
        )

    def _settle(self, duration_s: float) -> None:
        """Jump `duration_s` ahead in AUTO at the PWM that holds the target (or at the rail
        when the target is out of reach), with the regulator's integral at that PWM."""
        state = self._state
        assert state.target_c is not None
        needed_fraction = (
            self.environment.ambient_c + HEATER_RISE_C[state.heater] - state.target_c
        ) / MAX_DELTA_C
        pwm = round(PWM_MAX * _pwm_fraction_for(needed_fraction))
        self._state = replace(state, pwm=pwm, integral_pwm=float(pwm))
        self._hold_pwm(duration_s)

    def _equilibrium_c(self, pwm: int) -> float:
        return (
            self.environment.ambient_c
            - MAX_DELTA_C * cooling_fraction(pwm)
            + HEATER_RISE_C[self._state.heater]
        )

    def _relax(self, temperature_c: float, pwm: int, duration_s: float) -> float:
        equilibrium_c = self._equilibrium_c(pwm)
        decay = math.exp(-duration_s / TIME_CONSTANT_S)
        return equilibrium_c + (temperature_c - equilibrium_c) * decay

    def _regulate(self) -> None:
        """One firmware PI step: PWM from the error, integrating only while not saturated."""
        state = self._state
        if state.mode is not CoolerMode.AUTO or state.target_c is None:
            return
        error_c = state.temperature_c - state.target_c
        integral = state.integral_pwm + INTEGRAL_PWM_PER_C_S * error_c * REGULATOR_TICK_S
        command = PROPORTIONAL_PWM_PER_C * error_c + integral
        if not 0.0 <= command <= PWM_MAX:
            integral = state.integral_pwm  # anti-windup: hold the integral at the rails
            command = PROPORTIONAL_PWM_PER_C * error_c + integral
        pwm = min(PWM_MAX, max(0, round(command)))
        self._state = replace(state, pwm=pwm, integral_pwm=integral)
