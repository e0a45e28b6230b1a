"""The temperature ramp and the "reached" rule, as libindi's CCD base class applies them."""

from __future__ import annotations

from qhy42_indi.backends.base import CoolerMode, CoolerState, HeaterLevel
from qhy42_indi.camera.cooling import (
    AMBIENT_LIMIT_S,
    RAMP_STEP_PERIOD_S,
    RampPlan,
    Regulation,
)


def reading(temperature_c: float) -> CoolerState:
    return CoolerState(CoolerMode.AUTO, temperature_c, None, 100, HeaterLevel.OFF, 20.0, 12.0)


def test_without_a_ramp_the_set_point_is_the_target() -> None:
    plan = RampPlan.begin(-10, 20, slope_c_per_min=0, threshold_c=0.2)
    assert plan.setpoint_c == -10
    assert plan.step(20, plan.last_step_s + 1000) is None


def test_a_ramp_moves_one_slope_per_minute_toward_the_target() -> None:
    plan = RampPlan.begin(-10, 20, slope_c_per_min=5, threshold_c=0.2)
    assert plan.setpoint_c == 15  # max(target, now - slope)
    assert plan.step(15, plan.last_step_s + RAMP_STEP_PERIOD_S / 2) is None  # not yet due
    assert plan.step(15, plan.last_step_s + RAMP_STEP_PERIOD_S) == 10
    start = plan.last_step_s
    assert plan.step(-8, start + RAMP_STEP_PERIOD_S) == -10  # never past the target
    assert plan.step(-10, start + 3 * RAMP_STEP_PERIOD_S) is None


def test_warming_ramps_upward() -> None:
    plan = RampPlan.begin(10, -15, slope_c_per_min=4, threshold_c=0.2)
    assert plan.setpoint_c == -11


def test_within_the_threshold_is_reached() -> None:
    plan = RampPlan.begin(-10, -9.85, slope_c_per_min=0, threshold_c=0.2)
    assert plan.regulation(reading(-9.85), None, 0) == Regulation.REACHED
    assert plan.regulation(reading(-9.5), None, 0) == Regulation.MOVING


def test_warming_that_stalls_at_ambient_for_two_minutes_counts_as_reached() -> None:
    plan = RampPlan.begin(30, 19, slope_c_per_min=0, threshold_c=0.2)
    assert plan.regulation(reading(19.9), 19.9, 0) == Regulation.MOVING
    assert plan.regulation(reading(19.95), 19.9, AMBIENT_LIMIT_S / 2) == Regulation.MOVING
    assert plan.regulation(reading(19.95), 19.95, AMBIENT_LIMIT_S) == Regulation.REACHED
