"""The CameraBackend contract as the simulator keeps it: lifecycle, description, settings
validation, errors, registers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from qhy42_indi.backends.base import (
    QHY42PRO_REGISTERS,
    CameraBackend,
    CameraGone,
    InvalidSetting,
    NotOpen,
    RegisterField,
    ValueRange,
)
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions


@pytest.fixture
async def camera() -> AsyncIterator[SimulatorBackend]:
    async with SimulatorBackend(SimulatorOptions(time_scale=1000.0, seed=2)) as backend:
        yield backend


def test_the_simulator_is_a_camera_backend() -> None:
    assert isinstance(SimulatorBackend(), CameraBackend)


async def test_calls_before_open_and_after_close_raise_not_open() -> None:
    backend = SimulatorBackend()
    with pytest.raises(NotOpen):
        await backend.settings()
    await backend.open()
    await backend.open()  # a second open is a no-op
    assert backend.is_open
    await backend.close()
    await backend.close()

    assert not backend.is_open
    with pytest.raises(NotOpen):
        await backend.start_exposure(1.0)


async def test_sensor_info_describes_a_qhy42pro(camera: SimulatorBackend) -> None:
    info = await camera.sensor_info()

    assert info.model == "QHY42PRO"
    assert info.camera_id.startswith("QHY42PRO-")
    assert (info.width, info.height) == (2048, 2048)
    assert (info.pixel_width_um, info.pixel_height_um) == (11.0, 11.0)
    assert (info.exposure_min_s, info.exposure_max_s) == (20e-6, 300.0)
    assert info.bin_max == 4
    assert info.bit_depths == (8, 16)
    assert info.adc_bits == 12
    assert info.fpga_versions == ("FPGA_V20191118", "MAX10_V20191120")
    for limits in (info.gain, info.offset, info.speed, info.usb_traffic):
        assert isinstance(limits, ValueRange)
        assert limits.min < limits.max and limits.step > 0
    assert not info.is_color


async def test_the_camera_serial_sets_the_camera_id() -> None:
    async with SimulatorBackend(SimulatorOptions(camera_serial="abc123")) as backend:
        assert (await backend.sensor_info()).camera_id == "QHY42PRO-abc123"


@pytest.mark.parametrize(
    ("setter", "value"),
    [
        ("set_gain", 101),
        ("set_gain", -1),
        ("set_offset", 256),
        ("set_speed", 3),
        ("set_usb_traffic", 61),
        ("set_read_mode", 3),
    ],
)
async def test_values_out_of_range_are_refused_and_change_nothing(
    camera: SimulatorBackend, setter: str, value: int
) -> None:
    before = await camera.settings()

    with pytest.raises(InvalidSetting):
        await getattr(camera, setter)(value)
    assert await camera.settings() == before


@pytest.mark.parametrize(("bin_x", "bin_y"), [(0, 1), (5, 5), (1, 5)])
async def test_binning_outside_1_to_4_is_refused(
    camera: SimulatorBackend, bin_x: int, bin_y: int
) -> None:
    with pytest.raises(InvalidSetting):
        await camera.set_binning(bin_x, bin_y)


async def test_setters_return_the_settings_now_in_force(camera: SimulatorBackend) -> None:
    assert (await camera.set_gain(30)).gain == 30
    assert (await camera.set_offset(20)).offset == 20
    assert (await camera.set_usb_traffic(0)).usb_traffic == 0
    assert (await camera.set_amp_glow_suppression(True)).amp_glow_suppression
    settings = await camera.settings()

    assert (settings.gain, settings.offset, settings.usb_traffic) == (30, 20, 0)


async def test_registers_read_back_what_was_written(camera: SimulatorBackend) -> None:
    await camera.write_register(39, 0x42)
    await camera.write_register(142, 1)

    assert await camera.read_register(39) == 0x42
    assert await camera.read_register(142) == 1


@pytest.mark.parametrize(("address", "value"), [(256, 0), (-1, 0), (39, 256), (39, -1)])
async def test_register_access_outside_8_bits_is_refused(
    camera: SimulatorBackend, address: int, value: int
) -> None:
    with pytest.raises(InvalidSetting):
        await camera.write_register(address, value)


def test_the_register_map_names_the_datasheet_gpio_registers() -> None:
    gpio = QHY42PRO_REGISTERS[39]
    fields = {field.name: field for field in gpio.fields}

    assert QHY42PRO_REGISTERS[142].name == "REG142"
    assert (fields["gpio_mode"].low_bit, fields["gpio_mode"].high_bit) == (0, 3)
    assert dict(fields["gpio_mode"].values)[1] == "QHYCCD GPS_BOX (6PIN)"
    assert (fields["trig_in_port_mode"].low_bit, fields["trig_in_port_mode"].high_bit) == (6, 7)


def test_register_fields_insert_and_extract_their_bits() -> None:
    field = RegisterField("mode", 4, 5)
    value = field.insert(0b1100_1111, 0b10)

    assert value == 0b1110_1111
    assert field.extract(value) == 0b10


async def test_an_unplugged_camera_raises_camera_gone(camera: SimulatorBackend) -> None:
    await camera.start_exposure(10.0)
    camera.simulate_unplug()

    with pytest.raises(CameraGone):
        await camera.read_frame()
    with pytest.raises(CameraGone):
        await camera.cooler_state()
    await camera.close()  # closing a vanished camera still works


async def test_unplugging_during_a_wait_ends_it_with_camera_gone(camera: SimulatorBackend) -> None:
    await camera.start_exposure(300.0)
    reader = asyncio.create_task(camera.read_frame())
    await asyncio.sleep(0.01)
    camera.simulate_unplug()

    with pytest.raises(CameraGone):
        await reader


async def test_a_replugged_camera_opens_again() -> None:
    backend = SimulatorBackend(SimulatorOptions(time_scale=1000.0))
    await backend.open()
    backend.simulate_unplug()
    await backend.close()
    with pytest.raises(CameraGone):
        await backend.open()
    backend.simulate_replug()
    await backend.open()

    assert backend.is_open
    await backend.close()
