"""The cooling and configuration tests of tests/camera, run against the daemon on the SDK
backend over the stub libqhyccd (its TEC 60 times faster than real time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.camera.test_cooling_and_config import (  # noqa: F401 (fixtures and tests)
    TIME_SCALE,
    test_a_set_point_turns_the_cooler_on_and_is_reached,
    test_a_target_beyond_the_limits_is_alert,
    test_config_default_restores_skeleton_values_and_purge_removes_the_file,
    test_config_save_and_load_round_trip,
    test_cooler_off_idles_the_temperature,
    test_manual_power_switches_to_manual_mode,
    test_saved_config_is_applied_on_connect,
    test_temperatures_readings_move_monotonically_toward_a_colder_target,
)
from tests.sdk.daemon import sdk_daemon
from tests.support.camera import DEVICE
from tests.support.processes import Running


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with sdk_daemon("--device-name", DEVICE, env={"QHY42_STUB_TIME_SCALE": TIME_SCALE}) as proc:
        yield proc
