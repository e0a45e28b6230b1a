"""The SDK backend through ctypes against the stub libqhyccd: calls, buffers, return codes,
one SDK thread, and a camera that vanishes."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path

import numpy as np
import pytest

from qhy42_indi.backends.base import (
    CameraBusy,
    CameraGone,
    Channel,
    CoolerMode,
    ExposureAborted,
    GpioMode,
    HeaterLevel,
    InvalidSetting,
    NoExposure,
    NotLive,
    NotOpen,
    Roi,
    TriggerMode,
)
from qhy42_indi.backends.qhysdk import SdkBackend, SdkNotSupported, SdkRuntime
from qhy42_indi.backends.sdk_bindings import SdkLibraryMissing, load_library
from qhy42_indi.backends.sdk_setup import sdk_cameras_async
from tests.sdk.stub import StubHooks

STUB_ID = "QHY42PRO-0123456789abcdef"


async def test_open_reads_the_camera_through_the_sdk(backend: SdkBackend) -> None:
    info = await backend.sensor_info()
    assert (info.model, info.camera_id) == ("QHY42PRO", STUB_ID)
    assert (info.width, info.height, info.pixel_width_um) == (2048, 2048, 11.0)
    assert (info.exposure_min_s, info.exposure_max_s) == (2e-05, 300.0)
    assert info.bit_depths == (8, 16) and info.bin_max == 4 and not info.is_color
    assert info.fpga_versions == ("FPGA_V20191118", "MAX10_V20191120")
    assert info.sdk_version == "V20240102_3" and info.firmware_version == "20230715"
    modes = await backend.read_modes()
    assert [(m.name, m.width, m.channels) for m in modes] == [
        ("HDR", 4096, (Channel.LOW_GAIN, Channel.HIGH_GAIN)),
        ("STD High Gain", 2048, (Channel.HIGH_GAIN,)),
        ("STD Low Gain", 2048, (Channel.LOW_GAIN,)),
    ]
    settings = await backend.settings()
    assert (settings.gain, settings.offset) == (10, 140)  # DefaultGain / DefaultOffset
    assert settings.line_period_us == 20.3  # GetQHYCCDPreciseExposureInfo


async def test_control_ids_above_80_are_found_by_name(
    runtime: SdkRuntime, hooks: StubHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QHY42_STUB_HEATER_ID", "117")  # this SDK build numbers it otherwise
    camera = SdkBackend(runtime)
    await camera.open()
    try:
        assert camera.named_controls["CONTROL_HEATINGBOARD"] == 117
        assert (await camera.sensor_info()).has_heater
        await camera.set_heater(HeaterLevel.HIGH)
        assert hooks.heater_level() == 3
        assert (await camera.cooler_state()).heater is HeaterLevel.HIGH
    finally:
        await camera.close()


async def test_every_sdk_call_runs_on_the_one_sdk_thread(
    backend: SdkBackend, hooks: StubHooks, runtime: SdkRuntime
) -> None:
    before = hooks.counts()["foreign_thread_calls"]
    await backend.set_binning(2, 2)
    await backend.start_exposure(0.01)
    _, frame = await asyncio.gather(backend.cooler_state(), backend.read_frame())
    await backend.set_read_mode(0)
    assert frame.pixels.shape == (1024, 2048)  # the SDK starts in mode 0, HDR
    assert hooks.counts()["foreign_thread_calls"] == before
    # The check itself works: a call from this thread is counted.
    runtime.library.cdll.ScanQHYCCD()
    assert hooks.counts()["foreign_thread_calls"] == before + 1


async def test_binning_waits_out_delay_200ms_before_the_next_call(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    before = hooks.counts()["delay_violations"]
    await backend.set_binning(2, 2)  # the stub answers QHYCCD_DELAY_200MS to a change
    await backend.set_roi(Roi(0, 0, 512, 256))
    await backend.set_binning(4, 4)
    assert hooks.counts()["delay_violations"] == before
    assert hooks.roi() == (0, 0, 128, 64, 4)


async def test_read_directly_counts_as_success(backend: SdkBackend) -> None:
    await backend.set_roi(Roi(0, 0, 64, 64))
    sequences = []
    for _ in range(3):  # the stub answers READ_DIRECTLY to every other exposure
        start = await backend.start_exposure(0.001)
        frame = await backend.read_frame()
        sequences.append((start.sequence, frame.sequence))
    assert sequences == [(1, 1), (2, 2), (3, 3)]


async def test_mode_and_bit_depth_changes_reinit_and_reapply_the_geometry(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    await backend.set_binning(2, 2)
    await backend.set_roi(Roi(256, 512, 1024, 512))
    await backend.set_bit_depth(8)  # InitQHYCCD resets bin and ROI in the camera
    assert hooks.roi() == (128, 256, 512, 256, 2)
    await backend.start_exposure(0.01)
    frame = await backend.read_frame()
    assert frame.pixels.dtype == np.uint8 and frame.pixels.shape == (256, 512)
    settings = await backend.set_read_mode(0)
    assert settings.roi == Roi(0, 0, 4096, 2048) and settings.bin_x == 2
    assert hooks.roi() == (0, 0, 2048, 1024, 2)
    assert hooks.ddr() == 1  # CONTROL_DDR stays on for single frames
    assert hooks.counts()["order_violations"] == 0


async def test_frames_are_what_was_asked_for(backend: SdkBackend) -> None:
    await backend.set_read_mode(1)
    await backend.set_roi(Roi(100, 200, 300, 40))
    start = await backend.start_exposure(0.05)
    assert start.exposure_s == pytest.approx(0.05, abs=21e-6)  # whole line periods
    frame = await backend.read_frame()
    assert frame.pixels.shape == (40, 300) and frame.pixels.dtype == np.uint16
    assert frame.pixels.flags.c_contiguous and frame.pixels.flags.owndata
    assert not np.any(frame.pixels & 0x000F)  # 12-bit data left-shifted into 16 bits
    assert abs(np.median(frame.pixels) / 16 - 140) < 5  # the offset is the pedestal
    await backend.set_read_mode(0)
    await backend.start_exposure(0.01)
    hdr = await backend.read_frame()
    assert hdr.pixels.shape == (2048, 4096)
    assert [(c.channel, c.first_column, c.column_count) for c in hdr.channels] == [
        (Channel.LOW_GAIN, 0, 2048), (Channel.HIGH_GAIN, 2048, 2048)]


async def test_abort_cancels_the_exposure(backend: SdkBackend) -> None:
    await backend.start_exposure(5.0)
    with pytest.raises(CameraBusy):
        await backend.set_binning(2, 2)
    reader = asyncio.create_task(backend.read_frame())
    await asyncio.sleep(0.05)
    await backend.abort_exposure()
    with pytest.raises(ExposureAborted):
        await reader
    with pytest.raises(NoExposure):
        await backend.read_frame()
    await backend.set_roi(Roi(0, 0, 32, 32))  # idle again
    await backend.start_exposure(0.001)
    assert (await backend.read_frame()).pixels.shape == (32, 32)


async def test_out_of_range_settings_change_nothing(backend: SdkBackend) -> None:
    calls = (lambda: backend.set_gain(101), lambda: backend.set_offset(-1),
             lambda: backend.start_exposure(301), lambda: backend.set_binning(2, 1),
             lambda: backend.set_binning(5, 5), lambda: backend.set_roi(Roi(0, 0, 4097, 10)),
             lambda: backend.set_read_mode(3), lambda: backend.set_bit_depth(12),
             lambda: backend.set_cooler_target(-60), lambda: backend.set_cooler_pwm(256),
             lambda: backend.write_register(39, 256))
    for call in calls:
        with pytest.raises(InvalidSetting):
            await call()
    assert (await backend.settings()).gain == 10


async def test_the_camera_vanishing_mid_exposure_is_camera_gone_until_it_returns(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    opens = hooks.counts()["opens"]
    await backend.start_exposure(0.3)
    reader = asyncio.create_task(backend.read_frame())
    await asyncio.sleep(0.05)
    hooks.vanish()
    with pytest.raises(CameraGone):
        await reader
    with pytest.raises(CameraGone):
        await backend.cooler_state()
    with pytest.raises(CameraGone):
        await backend.open()  # not back yet
    hooks.come_back()
    await backend.open()
    assert hooks.counts()["opens"] == opens + 1
    await backend.set_roi(Roi(0, 0, 16, 16))
    await backend.start_exposure(0.001)
    assert (await backend.read_frame()).pixels.shape == (16, 16)


async def test_a_camera_that_vanishes_while_idle_is_seen_by_the_next_call(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    hooks.vanish()
    with pytest.raises(CameraGone):
        await backend.cooler_state()
    with pytest.raises(CameraGone):
        await backend.settings()  # answered from memory, but the camera is known gone


async def test_cooler_modes(backend: SdkBackend) -> None:
    await backend.set_cooler_target(-10.0)
    reading = await backend.cooler_state()
    assert reading.mode is CoolerMode.AUTO and reading.target_temperature_c == -10.0
    assert reading.pwm == 255  # warm sensor, cold target
    await backend.set_cooler_pwm(100)
    reading = await backend.cooler_state()
    assert reading.mode is CoolerMode.MANUAL and reading.pwm == 100
    await backend.cooler_off()
    reading = await backend.cooler_state()
    assert reading.mode is CoolerMode.OFF and reading.pwm == 0
    assert reading.supply_voltage_v is None  # the SDK reports none
    assert await backend.humidity_percent() == 12.5


async def test_registers_and_gpio_map_to_fpga_writes(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    await backend.write_register(142, 1)
    assert await backend.read_register(142) == 1  # read back with vendor request 0xBC
    config = await backend.set_gpio_mode(GpioMode.GPS_BOX)
    assert config.gpio_mode is GpioMode.GPS_BOX and config.trigout_enabled
    assert hooks.gps() == 1  # CAM_GPS on with the GPS-BOX
    await backend.set_gpio_mode(GpioMode.FIVE_PIN)
    assert hooks.gps() == 0


async def test_hardware_trigger_is_set_but_triggered_exposures_are_not_supported(
    backend: SdkBackend, hooks: StubHooks
) -> None:
    await backend.set_trigger_mode(TriggerMode.HARDWARE)
    assert hooks.trigger_on()
    with pytest.raises(InvalidSetting):
        await backend.start_exposure(0.01)
    with pytest.raises(SdkNotSupported):
        await backend.arm_exposure(0.01)
    await backend.set_trigger_mode(TriggerMode.SOFTWARE)
    assert not hooks.trigger_on()


async def test_live_frames_carry_the_counter_from_their_head(backend: SdkBackend) -> None:
    await backend.set_roi(Roi(0, 0, 64, 64))
    start = await backend.begin_live(0.02)
    assert start.exposure_s == pytest.approx(0.02, abs=21e-6)
    with pytest.raises(CameraBusy):
        await backend.start_exposure(0.01)
    counters = [(await backend.read_live_frame()).counter for _ in range(3)]
    assert counters == sorted(counters) and len(set(counters)) == 3
    assert (await backend.live_state()).frame_counter == counters[-1]
    await backend.stop_live()
    with pytest.raises(NotLive):
        await backend.read_live_frame()
    await backend.start_exposure(0.001)  # single frames work again
    assert (await backend.read_frame()).pixels.shape == (64, 64)


async def test_a_burst_outputs_the_numbers_between_start_and_end(backend: SdkBackend) -> None:
    await backend.set_roi(Roi(0, 0, 32, 32))
    await backend.begin_live(0.005)
    await backend.enable_burst(True)
    await backend.burst_idle()
    await backend.set_burst_range(1, 5)
    numbers = await backend.capture_burst()
    assert list(numbers) == [2, 3, 4]
    got = [(await backend.read_live_frame()) for _ in numbers]
    assert [f.counter for f in got] == [2, 3, 4] and all(f.burst for f in got)
    await backend.stop_live()


async def test_calls_before_open_and_after_close_are_not_open(runtime: SdkRuntime) -> None:
    camera = SdkBackend(runtime)
    with pytest.raises(NotOpen):
        await camera.settings()
    await camera.open()
    await camera.close()
    with pytest.raises(NotOpen):
        await camera.start_exposure(0.1)


def test_a_missing_library_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SdkLibraryMissing, match="install QHYCCD's SDK"):
        load_library(str(tmp_path / "libqhyccd.so"))


def test_a_library_that_is_not_libqhyccd_is_refused() -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    with pytest.raises(SdkLibraryMissing, match="lacks InitQHYCCDResource"):
        load_library(libm)


async def test_backend_choice_without_the_library(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHY42_LIBQHYCCD", str(tmp_path / "nothing.so"))
    assert await sdk_cameras_async("auto") is None
    assert await sdk_cameras_async("simulator") is None
    with pytest.raises(SdkLibraryMissing, match=r"--backend sdk: .*install"):
        await sdk_cameras_async("sdk")


async def test_backend_choice_with_a_camera(stub_path: Path) -> None:
    cameras = await sdk_cameras_async("auto", str(stub_path))
    assert cameras is not None
    try:
        assert cameras.camera_ids == (STUB_ID,)
        assert cameras.make_backend(STUB_ID).camera_id == STUB_ID
    finally:
        cameras.runtime.stop()
