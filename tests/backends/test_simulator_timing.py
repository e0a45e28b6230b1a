"""Triggers, GPIO registers, waveforms, GPS-BOX and sync on the simulated camera (issue 5).

The simulator runs faster than real time; every assertion is on values the camera reports
(register bits, start times, the signal log), never on how long something took.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from qhy42_indi.backends.base import (
    CameraBusy,
    ExposureAborted,
    FirmwareTooOld,
    GpioMode,
    InvalidSetting,
    Roi,
    SmaOutput,
    TriggerMode,
    TriggerSource,
    TriggerTimeout,
    gpio_firmware_problem,
)
from qhy42_indi.backends.gps_header import (
    GPS_EPOCH,
    GpsHeader,
    GpsTime,
    ReceiverStatus,
    decode_gps_header,
    encode_gps_header,
    read_frame_head,
    write_frame_head,
)
from qhy42_indi.backends.sim_timing import CameraSync, Event
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions

TIME_SCALE = 100.0
STD_HG = 1


def options(**overrides: object) -> SimulatorOptions:
    values: dict[str, object] = {"time_scale": TIME_SCALE, "seed": 5, "read_mode": STD_HG}
    values.update(overrides)
    return SimulatorOptions(**values)  # type: ignore[arg-type]


@pytest.fixture
async def camera() -> AsyncIterator[SimulatorBackend]:
    async with SimulatorBackend(options(gps_lock_after_s=2.0)) as backend:
        await backend.set_roi(Roi(0, 0, 256, 128))
        yield backend


def of(events: tuple[Event, ...], signal: str, edge: str | None = None) -> list[Event]:
    return [e for e in events if e.signal == signal and (edge is None or e.edge == edge)]


# ---- the GPS head --------------------------------------------------------------------------


def test_the_gps_head_is_the_documented_big_endian_layout() -> None:
    start = GpsTime.at(datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
                       ReceiverStatus.LOCKED)
    header = GpsHeader(
        sequence=0x01020304, temporary_sequence=7, width=2048, height=1024,
        latitude_deg=-33.5, longitude_deg=-70.25, start=start, end=start.plus_ticks(4),
        now=start.plus_ticks(123), pps_counter=10_000_012)
    raw = encode_gps_header(header)

    assert len(raw) == 44
    assert raw[0:4] == bytes([1, 2, 3, 4]) and raw[4] == 7
    assert struct.unpack(">HH", raw[5:9]) == (2048, 1024)
    latitude, longitude = struct.unpack(">II", raw[9:17])
    assert latitude == 1_000_000_000 + 33 * 10**7 + 30 * 10**5  # S 33 deg 30.00000'
    assert longitude == 1_000_000_000 + 70 * 10**6 + 15 * 10**4  # W 070 deg 15.0000'
    assert raw[17] == 0x33 and (raw[17] >> 4) & 3 == 3
    seconds = struct.unpack(">I", raw[18:22])[0]
    ticks = int.from_bytes(raw[22:25], "big")
    assert GPS_EPOCH + timedelta(seconds=seconds, microseconds=ticks / 10) == datetime(
        2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert int.from_bytes(raw[41:44], "big") == 10_000_012
    decoded = decode_gps_header(raw)
    assert decoded.start == start and decoded.now == start.plus_ticks(123)
    assert (decoded.latitude_deg, decoded.longitude_deg) == (-33.5, -70.25)
    assert decoded.locked and decoded.time_valid


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_head_sits_in_the_first_bytes_of_row_0_as_sent_over_usb(dtype: type) -> None:
    pixels = np.full((4, 64), 0x1234 if dtype is np.uint16 else 0x12, dtype=dtype)
    raw = bytes(range(44))

    assert write_frame_head(pixels, raw)
    assert pixels[0].astype("<u2" if dtype is np.uint16 else "u1").tobytes()[:44] == raw
    assert int(pixels[0, -1]) == (0x1234 if dtype is np.uint16 else 0x12)  # rest untouched
    assert np.all(pixels[1:] == pixels[1, 0])
    assert not write_frame_head(np.zeros((2, 10), dtype=dtype), raw)  # row too short
    assert read_frame_head(np.zeros((2, 10), dtype=dtype)) is None


def test_the_firmware_gate_is_the_datasheet_builds() -> None:
    assert gpio_firmware_problem(("FPGA_V20191118", "MAX10_V20191120")) is None
    assert gpio_firmware_problem(("FPGA_V20200301", "MAX10_V20210101")) is None
    old = gpio_firmware_problem(("FPGA_V20191117", "MAX10_V20191120"))
    assert old is not None and "FPGA_V20191118" in old and "FPGA_V20191117" in old
    assert gpio_firmware_problem(("FPGA_V20191118",)) is not None  # MAX10 unknown
    assert gpio_firmware_problem(()) is not None


# ---- registers -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(GpioMode))
async def test_each_gpio_mode_sets_reg39_bits_3_to_0(camera: SimulatorBackend,
                                                     mode: GpioMode) -> None:
    await camera.set_sma_output(SmaOutput.TRIG_OUT)
    config = await camera.set_gpio_mode(mode)

    assert await camera.read_register(39) == (1 << 6) | int(mode)  # bits 7:6 kept
    assert config.gpio_mode is mode and config.sma_output is SmaOutput.TRIG_OUT


async def test_sma_output_is_reg39_bits_7_to_6_and_trigout_is_reg142(
    camera: SimulatorBackend
) -> None:
    await camera.set_gpio_mode(GpioMode.FIVE_PIN)
    await camera.set_sma_output(SmaOutput.TRIG_OUT)
    assert await camera.read_register(39) == 0b0100_0010
    await camera.set_sma_output(SmaOutput.SHUTTER_MEASURE)
    assert await camera.read_register(39) == 0b0000_0010
    assert await camera.read_register(142) == 1  # power-on: pulse enabled
    assert not (await camera.set_trigout_enabled(False)).trigout_enabled
    assert await camera.read_register(142) == 0


async def test_old_fpga_firmware_refuses_the_gpio_registers_but_triggers_work() -> None:
    old = ("FPGA_V20190601", "MAX10_V20190601")
    async with SimulatorBackend(options(fpga_versions=old)) as backend:
        assert (await backend.sensor_info()).fpga_versions == old
        for call in (backend.set_gpio_mode(GpioMode.GPS_BOX),
                     backend.set_sma_output(SmaOutput.TRIG_OUT),
                     backend.set_trigout_enabled(True)):
            with pytest.raises(FirmwareTooOld, match="FPGA_V20191118"):
                await call
        await backend.set_trigger_mode(TriggerMode.HARDWARE)
        await backend.arm_exposure(0.001)
        assert backend.fire_trigger_in()


async def test_reflashed_firmware_applies_from_the_next_open() -> None:
    backend = SimulatorBackend(options())
    async with backend:
        backend.set_fpga_versions(("FPGA_V20180101", "MAX10_V20180101"))
        assert (await backend.sensor_info()).fpga_versions[0] == "FPGA_V20191118"
    async with backend:
        with pytest.raises(FirmwareTooOld):
            await backend.set_gpio_mode(GpioMode.FIVE_PIN)


async def test_a_mode_change_with_trigout_enabled_emits_a_stray_pulse(
    camera: SimulatorBackend
) -> None:
    camera.clear_events()
    await camera.set_speed(2)
    stray = of(camera.events(), "TRIG_OUT", "FALLING")
    assert [e.note for e in stray] == ["stray"]

    await camera.set_trigout_enabled(False)
    camera.clear_events()
    await camera.set_speed(0)
    await camera.set_binning(2, 2)
    events = camera.events()
    assert [e.note for e in of(events, "MODE_CHANGE")] == ["speed", "bin_x+bin_y"]
    assert not of(events, "TRIG_OUT")


# ---- waveforms -----------------------------------------------------------------------------


async def test_shutter_measure_line_period_and_trigout_edges(camera: SimulatorBackend) -> None:
    await camera.set_gpio_mode(GpioMode.FIVE_PIN)
    await camera.set_sma_output(SmaOutput.TRIG_OUT)
    camera.clear_events()
    start = await camera.start_exposure(0.0123)
    frame = await camera.read_frame()
    events = camera.events()

    (rising,) = of(events, "SHUTTER_MEASURE", "RISING")
    (falling,) = of(events, "SHUTTER_MEASURE", "FALLING")
    (lines,) = of(events, "LINE_PERIOD")
    (trig_fall,) = of(events, "TRIG_OUT", "FALLING")
    assert rising.sequence == falling.sequence == start.sequence == frame.sequence
    assert falling.model_s - rising.model_s == pytest.approx(start.exposure_s, abs=1e-9)
    assert rising.ports == falling.ports == ("5PIN.1",)
    assert (lines.ports, lines.pulses, lines.period_us) == (("5PIN.3",), 128, 20.3)
    assert trig_fall.ports == ("5PIN.4", "SMA_OUT")
    assert trig_fall.model_s == pytest.approx(falling.model_s, abs=1e-9)
    assert rising.utc == camera.clock.true_utc(rising.model_s)
    parsed = Event.from_text(rising.to_text())
    assert parsed.model_s == pytest.approx(rising.model_s, abs=1e-9)
    assert replace(parsed, model_s=rising.model_s) == rising


async def test_without_the_trigout_enable_no_trigout_pulse_leaves(
    camera: SimulatorBackend
) -> None:
    await camera.set_trigout_enabled(False)
    camera.clear_events()
    await camera.start_exposure(0.001)
    await camera.read_frame()
    events = camera.events()
    assert of(events, "SHUTTER_MEASURE", "FALLING") and not of(events, "TRIG_OUT")
    assert of(events, "SHUTTER_MEASURE")[0].ports == ("SMA_OUT",)


async def test_an_aborted_exposure_ends_its_shutter_measure_pulse(
    camera: SimulatorBackend
) -> None:
    camera.clear_events()
    await camera.start_exposure(100.0)
    await camera.abort_exposure()
    pulse = of(camera.events(), "SHUTTER_MEASURE")
    assert [e.edge for e in pulse] == ["RISING", "FALLING"]
    assert all(e.note == "aborted" for e in pulse)
    assert pulse[1].model_s - pulse[0].model_s < 100.0


# ---- hardware trigger ----------------------------------------------------------------------


async def test_an_edge_on_trig_in_starts_exactly_one_armed_exposure(
    camera: SimulatorBackend
) -> None:
    await camera.set_trigger_mode(TriggerMode.HARDWARE)
    with pytest.raises(InvalidSetting):
        await camera.start_exposure(0.01)
    armed = await camera.arm_exposure(0.01)
    assert armed.waits_for is TriggerSource.TRIG_IN
    with pytest.raises(CameraBusy):
        await camera.set_binning(2, 2)
    camera.clear_events()

    assert camera.fire_trigger_in()
    assert not camera.fire_trigger_in()  # the second edge finds nothing armed
    start = await camera.wait_for_trigger(1.0)
    frame = await camera.read_frame()

    assert start.trigger is TriggerSource.TRIG_IN and frame.trigger is TriggerSource.TRIG_IN
    assert start.exposure_s == armed.exposure_s
    edges = of(camera.events(), "TRIG_IN")
    assert [e.note for e in edges] == ["", "ignored"]
    (rising,) = of(camera.events(), "SHUTTER_MEASURE", "RISING")
    assert 0 <= rising.model_s - edges[0].model_s < start.line_period_us * 1e-6


async def test_no_trigger_within_the_timeout_disarms(camera: SimulatorBackend) -> None:
    await camera.set_trigger_mode(TriggerMode.HARDWARE)
    await camera.arm_exposure(0.01)
    with pytest.raises(TriggerTimeout, match=r"no trigger within 0\.5 s"):
        await camera.wait_for_trigger(0.5)
    assert not camera.fire_trigger_in()
    await camera.arm_exposure(0.01)  # nothing pending any more


async def test_abort_ends_the_wait_for_a_trigger(camera: SimulatorBackend) -> None:
    await camera.set_trigger_mode(TriggerMode.HARDWARE)
    await camera.arm_exposure(0.01)
    waiting = asyncio.create_task(camera.wait_for_trigger(None))
    await asyncio.sleep(0)
    await camera.abort_exposure()
    with pytest.raises(ExposureAborted):
        await asyncio.wait_for(waiting, 5)
    assert not camera.fire_trigger_in()


async def test_software_mode_has_nothing_to_arm(camera: SimulatorBackend) -> None:
    with pytest.raises(InvalidSetting):
        await camera.arm_exposure(0.01)


# ---- GPS-BOX -------------------------------------------------------------------------------


async def test_gps_box_heads_count_from_power_on_until_locked_then_carry_utc(
    camera: SimulatorBackend
) -> None:
    await camera.set_gpio_mode(GpioMode.GPS_BOX)
    await camera.start_exposure(0.01)
    unlocked = read_frame_head((await camera.read_frame()).pixels)
    assert unlocked is not None and unlocked.status is ReceiverStatus.NOT_LOCKED
    assert not unlocked.time_valid and unlocked.start.utc.year == 1995
    assert unlocked.pps_counter == 10_000_500

    locked = None
    for _ in range(200):  # 2 s of camera time to lock: a bounded number of frames
        camera.clear_events()
        start = await camera.start_exposure(0.01)
        frame = await camera.read_frame()
        locked = read_frame_head(frame.pixels)
        if locked is not None and locked.locked:
            break
    assert locked is not None and locked.locked and locked.time_valid
    assert locked.start.flag == 0x33 and abs(locked.pps_counter - 10_000_000) <= 20
    assert (locked.sequence, locked.width, locked.height) == (start.sequence, 256, 128)
    (rising,) = of(camera.events(), "SHUTTER_MEASURE", "RISING")
    assert rising.ports == ("GPS_BOX", "SMA_OUT")
    assert abs(locked.start.utc - rising.utc) <= timedelta(microseconds=1)
    assert locked.end.seconds * 10**7 + locked.end.ticks == (
        locked.start.seconds * 10**7 + locked.start.ticks + 4)  # 400 ns: not measured
    (falling,) = of(camera.events(), "SHUTTER_MEASURE", "FALLING")
    assert abs(locked.now.utc - falling.utc) <= timedelta(microseconds=1)


async def test_without_gps_box_mode_row_0_is_image(camera: SimulatorBackend) -> None:
    await camera.start_exposure(0.01)
    head = read_frame_head((await camera.read_frame()).pixels)
    assert head is not None and head.start.flag != 0x33


# ---- multi-camera sync ---------------------------------------------------------------------


async def test_a_sync_master_starts_its_armed_slaves_within_a_line_period() -> None:
    sync = CameraSync(TIME_SCALE)
    master = SimulatorBackend(options(camera_serial="M", sync=sync))
    slave = SimulatorBackend(options(camera_serial="S", sync=sync))
    bystander = SimulatorBackend(options(camera_serial="B", sync=sync))
    async with master, slave, bystander:
        for camera in (master, slave, bystander):
            await camera.set_roi(Roi(0, 0, 64, 64))
        await master.set_gpio_mode(GpioMode.SYNC_MASTER)
        await slave.set_gpio_mode(GpioMode.SYNC_SLAVE)
        with pytest.raises(InvalidSetting):
            await slave.start_exposure(0.02)
        armed = await slave.arm_exposure(0.02)
        assert armed.waits_for is TriggerSource.SYNC

        master_start = await master.start_exposure(0.02)
        slave_start = await slave.wait_for_trigger(1.0)
        await master.read_frame()
        slave_frame = await slave.read_frame()

        assert slave_start.trigger is TriggerSource.SYNC
        assert slave_frame.trigger is TriggerSource.SYNC
        lag = slave_start.start_utc - master_start.start_utc
        assert timedelta(0) <= lag < timedelta(microseconds=slave_start.line_period_us)
        (out,) = of(master.events(), "SYNC")
        (seen,) = of(slave.events(), "SYNC")
        assert (out.ports, seen.ports, out.model_s) == (("SYNC_OUT",), ("SYNC_IN",), seen.model_s)
        (rising,) = of(slave.events(), "SHUTTER_MEASURE", "RISING")
        assert 0 <= rising.model_s - out.model_s < slave_start.line_period_us * 1e-6
        assert not of(bystander.events(), "SYNC")  # not a slave: not listening
