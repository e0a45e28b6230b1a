"""The device without a network: what it publishes for the supply, HDR merge and errors."""

from __future__ import annotations

import asyncio

import numpy as np

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.camera.hdr import DEFAULT_RATIO, Splice, fit_splice
from qhy42_indi.indi.messages import (
    IndiMessage,
    Message,
    NewVector,
    NumberElement,
    SetVector,
    VectorKind,
)


def device_with(options: SimulatorOptions) -> tuple[Qhy42Device, list[IndiMessage]]:
    device = Qhy42Device("Test Cam", SimulatorBackend(options))
    published: list[IndiMessage] = []
    device.bind(published.append)
    return device, published


async def test_a_weak_supply_under_cooler_load_is_alert_with_a_warning() -> None:
    device, published = device_with(SimulatorOptions(
        seed=1, time_scale=60, supply_voltage_v=12.0, supply_resistance_ohm=0.6))
    await device.connect()
    try:
        await device.handle_new(NewVector(
            kind=VectorKind.NUMBER, device="Test Cam", name="CCD_COOLER_POWER",
            elements=(NumberElement(name="CCD_COOLER_VALUE", value=100),)))
        for _ in range(3):
            await device.cooling.poll()
            await asyncio.sleep(0.05)
        supply = [m for m in published if isinstance(m, SetVector) and m.name == "SUPPLY_VOLTAGE"]
        assert supply[-1].state == "Alert"
        voltage = supply[-1].elements[0]
        assert isinstance(voltage, NumberElement) and voltage.value < 11.5
        warnings = [m.message for m in supply if m.message]
        assert len(warnings) == 1 and "below the camera's 11.5 V minimum" in warnings[0]
    finally:
        await device.close()


async def test_a_healthy_supply_is_ok() -> None:
    device, published = device_with(SimulatorOptions(seed=1, time_scale=60))
    await device.connect()
    try:
        await device.cooling.poll()
        supply = [m for m in published if isinstance(m, SetVector) and m.name == "SUPPLY_VOLTAGE"]
        assert supply and supply[-1].state == "Ok"
    finally:
        await device.close()


async def test_connect_fails_with_alert_when_the_camera_is_gone() -> None:
    backend = SimulatorBackend(SimulatorOptions(seed=1))
    device = Qhy42Device("Test Cam", backend)
    published: list[IndiMessage] = []
    device.bind(published.append)
    backend.simulate_unplug()
    await device.connect()
    connection = [m for m in published if isinstance(m, SetVector) and m.name == "CONNECTION"]
    assert connection[-1].state == "Alert"
    assert not device.connected and "CCD_EXPOSURE" not in device.defined
    assert not any(isinstance(m, Message) and "connected" in (m.message or "") for m in published)


def test_splice_fit_recovers_the_channel_ratio() -> None:
    rng = np.random.default_rng(3)
    electrons = rng.uniform(0, 6000, 50_000)
    hg = (140 + electrons / 1.6 + rng.normal(0, 1, electrons.size)).astype(np.float32)
    lg = (140 + electrons / 24.0 + rng.normal(0, 0.6, electrons.size)).astype(np.float32)
    splice = fit_splice(lg, np.minimum(hg, 4095), 140)
    assert abs(splice.k - 15.0) < 0.3
    assert abs(splice.k * 140 + splice.b - 140) < 5  # pedestals line up


def test_splice_without_signal_reuses_the_previous_fit_or_the_default() -> None:
    flat = np.full(10_000, 140, dtype=np.float32)
    first = fit_splice(flat, flat, 140)
    assert first.k == DEFAULT_RATIO and first.fitted_pixels == 0
    again = fit_splice(flat, flat, 140, previous=Splice(14.0, -1820.0, 3600, 900))
    assert again.k == 14.0 and again.fitted_pixels == 0


async def test_a_short_polling_period_does_not_read_the_cooler_more_than_once_a_second() -> None:
    """10 ms polling (for fine countdowns) still reads the TEC at most once a second: each
    reading is a USB control transfer beside the frames."""
    device, _ = device_with(SimulatorOptions(seed=1))
    await device.handle_new(NewVector(
        kind=VectorKind.NUMBER, device="Test Cam", name="POLLING_PERIOD",
        elements=(NumberElement(name="PERIOD_MS", value=10),)))
    assert device.polling_period_s() == 0.01
    backend = device.backend
    reads = 0
    read = backend.cooler_state

    async def counted() -> object:
        nonlocal reads
        reads += 1
        return await read()

    backend.cooler_state = counted  # type: ignore[method-assign]
    await device.connect()
    try:
        began = asyncio.get_running_loop().time()
        await asyncio.sleep(0.5)
        elapsed = asyncio.get_running_loop().time() - began
    finally:
        await device.close()
    # One at connect, then one a second: at 10 ms it would be ~50.
    assert 1 <= reads <= 2 + int(elapsed), (reads, elapsed)
