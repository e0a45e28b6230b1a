"""The TEC, its regulator, the anti-dew heater and the supply voltage.

ThermalModel takes model time explicitly, so most checks step it deterministically; the backend
checks run at 1000x and only assert states that hold however long the wait turned out.
"""

from __future__ import annotations

import asyncio

import pytest

from qhy42_indi.backends.base import (
    PWM_MAX,
    SUPPLY_VOLTAGE_MIN_V,
    CoolerMode,
    HeaterLevel,
    InvalidSetting,
    Roi,
)
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.backends.thermal import ThermalEnvironment, ThermalModel, cooling_fraction

AMBIENT_C = 20.0
DATASHEET_MAX_DELTA_C = 35.0  # "Dual Stage TEC cooler: -35C below ambient"


def cooled_model(target_c: float, environment: ThermalEnvironment | None = None) -> ThermalModel:
    model = ThermalModel(environment or ThermalEnvironment(ambient_c=AMBIENT_C))
    model.set_target(0.0, target_c)
    return model


def test_the_sensor_starts_at_ambient_with_the_cooler_off() -> None:
    state = ThermalModel(ThermalEnvironment(ambient_c=AMBIENT_C)).state_at(600.0)

    assert state.mode is CoolerMode.OFF
    assert state.pwm == 0
    assert state.temperature_c == pytest.approx(AMBIENT_C)


def test_regulation_cools_30_c_within_3_minutes_and_holds_the_target() -> None:
    model = cooled_model(-10.0)
    temperatures = [model.state_at(float(t)).temperature_c for t in range(0, 601, 5)]

    assert temperatures[0] == pytest.approx(AMBIENT_C)
    assert all(t >= -10.0 - 0.5 for t in temperatures)  # a small overshoot at most
    assert all(abs(t + 10.0) < 0.2 for t in temperatures[180 // 5 :])


def test_regulation_starts_at_full_power_and_tapers_near_the_target() -> None:
    model = cooled_model(0.0)
    pwm_by_time = {t: model.state_at(float(t)).pwm for t in (1, 10, 20, 300)}

    assert pwm_by_time[1] == PWM_MAX
    assert pwm_by_time[20] < pwm_by_time[10] <= PWM_MAX
    assert 0 < pwm_by_time[300] < pwm_by_time[20]


def test_pwm_stays_within_0_and_255() -> None:
    for target_c in (-45.0, -10.0, 15.0, 20.0):
        model = cooled_model(target_c)
        assert all(0 <= model.state_at(float(t)).pwm <= PWM_MAX for t in range(0, 900, 3))


def test_the_sensor_stops_at_35_c_below_ambient_however_cold_the_target() -> None:
    model = cooled_model(-45.0)
    temperatures = [model.state_at(float(t)).temperature_c for t in range(0, 3601, 60)]

    assert min(temperatures) >= AMBIENT_C - DATASHEET_MAX_DELTA_C
    assert temperatures[-1] == pytest.approx(AMBIENT_C - DATASHEET_MAX_DELTA_C, abs=0.1)
    assert model.state_at(3600.0).pwm == PWM_MAX


def test_a_reading_after_a_long_gap_matches_one_stepped_all_the_way() -> None:
    stepped, jumped = cooled_model(-12.0), cooled_model(-12.0)
    for t in range(0, 100_001, 500):  # readings 500 s apart: every tick is integrated
        stepped.state_at(float(t))
    reference = stepped.state_at(100_000.0)
    state = jumped.state_at(100_000.0)

    assert state.temperature_c == pytest.approx(reference.temperature_c, abs=0.05)
    assert abs(state.pwm - reference.pwm) <= 2
    assert state.mode is CoolerMode.AUTO


def test_readings_stay_cheap_at_any_model_time() -> None:
    model = cooled_model(-10.0)
    for exponent in range(2, 13):  # up to 10**12 s: stepping tick by tick would never finish
        state = model.state_at(10.0**exponent)
        assert state.temperature_c == pytest.approx(-10.0, abs=0.2)


def test_manual_pwm_holds_a_fixed_power_and_settles_where_that_power_holds() -> None:
    model = ThermalModel(ThermalEnvironment(ambient_c=AMBIENT_C))
    model.set_manual(0.0, 128)
    state = model.state_at(600.0)

    assert state.mode is CoolerMode.MANUAL
    assert state.pwm == 128
    assert state.temperature_c == pytest.approx(
        AMBIENT_C - DATASHEET_MAX_DELTA_C * cooling_fraction(128), abs=0.01
    )


def test_switching_off_warms_back_to_ambient() -> None:
    model = cooled_model(-10.0)
    model.switch_off(300.0)
    state = model.state_at(900.0)

    assert (state.mode, state.pwm, state.target_c) == (CoolerMode.OFF, 0, None)
    assert state.temperature_c == pytest.approx(AMBIENT_C, abs=0.01)


def test_supply_voltage_sags_with_cooler_current() -> None:
    model = ThermalModel(ThermalEnvironment(ambient_c=AMBIENT_C))
    idle_v = model.supply_voltage_v(model.state_at(0.0))
    model.set_manual(0.0, PWM_MAX)
    loaded_v = model.supply_voltage_v(model.state_at(1.0))

    assert idle_v < 12.0
    assert SUPPLY_VOLTAGE_MIN_V < loaded_v < idle_v


def test_a_weak_supply_drops_below_11_5_v_at_full_cooler_power() -> None:
    weak = ThermalEnvironment(ambient_c=AMBIENT_C, supply_resistance_ohm=0.3)
    model = ThermalModel(weak)
    idle_v = model.supply_voltage_v(model.state_at(0.0))
    model.set_manual(0.0, PWM_MAX)
    loaded_v = model.supply_voltage_v(model.state_at(1.0))

    assert idle_v >= SUPPLY_VOLTAGE_MIN_V
    assert loaded_v < SUPPLY_VOLTAGE_MIN_V


def test_the_heater_warms_the_sensor_a_little_and_draws_current() -> None:
    plain, heated = (ThermalModel(ThermalEnvironment(ambient_c=AMBIENT_C)) for _ in range(2))
    for model in (plain, heated):
        model.set_manual(0.0, 200)
    heated.set_heater(0.0, HeaterLevel.HIGH)
    plain_state, heated_state = plain.state_at(900.0), heated.state_at(900.0)

    assert 0.0 < heated_state.temperature_c - plain_state.temperature_c < 5.0
    assert heated.supply_voltage_v(heated_state) < plain.supply_voltage_v(plain_state)


# ---- through the backend -------------------------------------------------------------------


async def test_backend_cools_toward_the_target_and_reports_its_state() -> None:
    options = SimulatorOptions(time_scale=1000.0, ambient_c=AMBIENT_C)
    async with SimulatorBackend(options) as camera:
        await camera.set_cooler_target(-10.0)
        await asyncio.sleep(0.3)  # >= 300 s of model time
        cooling = await camera.cooler_state()
        await camera.cooler_off()
        off = await camera.cooler_state()

    assert cooling.mode is CoolerMode.AUTO
    assert cooling.target_temperature_c == -10.0
    assert cooling.sensor_temperature_c == pytest.approx(-10.0, abs=0.3)
    assert 0 < cooling.pwm < PWM_MAX
    assert cooling.ambient_temperature_c == AMBIENT_C
    assert cooling.supply_voltage_v is not None
    assert SUPPLY_VOLTAGE_MIN_V < cooling.supply_voltage_v < 12.0
    assert (off.mode, off.pwm) == (CoolerMode.OFF, 0)


async def test_backend_frames_report_the_sensor_temperature_during_the_exposure() -> None:
    options = SimulatorOptions(time_scale=1000.0, ambient_c=AMBIENT_C, read_mode=1)
    async with SimulatorBackend(options) as camera:
        await camera.set_cooler_target(-5.0)
        await asyncio.sleep(0.3)
        await camera.start_exposure(1.0)
        frame = await camera.read_frame()

    assert frame.sensor_temperature_c == pytest.approx(-5.0, abs=0.3)


async def test_backend_refuses_cooler_values_out_of_range() -> None:
    async with SimulatorBackend(SimulatorOptions(time_scale=1000.0)) as camera:
        info = await camera.sensor_info()
        with pytest.raises(InvalidSetting):
            await camera.set_cooler_pwm(PWM_MAX + 1)
        with pytest.raises(InvalidSetting):
            await camera.set_cooler_pwm(-1)
        with pytest.raises(InvalidSetting):
            await camera.set_cooler_target(info.cooler_target_c.min - 1.0)
        await camera.set_cooler_pwm(100)
        manual = await camera.cooler_state()
        await camera.set_heater(HeaterLevel.MID)

        assert (manual.mode, manual.pwm) == (CoolerMode.MANUAL, 100)
        assert (await camera.cooler_state()).heater is HeaterLevel.MID


async def test_frames_keep_coming_at_a_million_times_real_time() -> None:
    options = SimulatorOptions(time_scale=1e6, read_mode=1)
    async with SimulatorBackend(options) as camera:
        await camera.set_cooler_target(-10.0)
        await camera.set_roi(Roi(0, 1000, 256, 64))
        temperatures = []
        for _ in range(20):
            await camera.start_exposure(1.0)
            temperatures.append((await camera.read_frame()).sensor_temperature_c)

    assert temperatures[-1] == pytest.approx(-10.0, abs=0.3)
