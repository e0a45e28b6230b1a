"""The hotplug watcher on a device without a network (simulator backend): a loss while idle,
a return that restores the settings, and DISCONNECT while the camera is away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi.messages import IndiMessage, NewVector, NumberElement, SetVector, VectorKind

BOUND_S = 20.0


@pytest.fixture
async def device() -> AsyncIterator[tuple[Qhy42Device, SimulatorBackend, list[IndiMessage]]]:
    backend = SimulatorBackend(SimulatorOptions(seed=1, time_scale=10))
    camera = Qhy42Device("Test Cam", backend)
    published: list[IndiMessage] = []
    camera.bind(published.append)
    await camera.connect()
    try:
        yield camera, backend, published
    finally:
        await camera.close()


async def until(condition: Callable[[], bool]) -> None:
    """Until the device's tasks made `condition` true (bounded)."""
    async with asyncio.timeout(BOUND_S):
        while not condition():
            await asyncio.sleep(0.02)


def connection_states(published: list[IndiMessage]) -> list[str]:
    return [m.state for m in published if isinstance(m, SetVector) and m.name == "CONNECTION"]


async def test_an_idle_camera_that_vanishes_and_returns_gets_its_settings_back(
    device: tuple[Qhy42Device, SimulatorBackend, list[IndiMessage]],
) -> None:
    camera, backend, published = device
    await camera.handle_new(NewVector(kind=VectorKind.NUMBER, device="Test Cam",
                                      name="CCD_GAIN",
                                      elements=(NumberElement(name="GAIN", value=42),)))
    backend.simulate_unplug()
    await until(lambda: camera.hotplug.gone)
    assert connection_states(published)[-1] == "Alert"
    assert not backend.is_open  # released while away
    backend.simulate_replug()
    await until(lambda: camera.hotplug.returns == 1)
    assert connection_states(published)[-1] == "Ok" and camera.connected
    assert (await backend.settings()).gain == 42


async def test_disconnect_while_the_camera_is_away_stops_waiting(
    device: tuple[Qhy42Device, SimulatorBackend, list[IndiMessage]],
) -> None:
    camera, backend, published = device
    backend.simulate_unplug()
    await until(lambda: camera.hotplug.gone)
    await camera.disconnect()
    assert not camera.connected and not camera.hotplug.gone
    assert connection_states(published)[-1] == "Idle"
    backend.simulate_replug()
    await camera.connect()  # an ordinary CONNECT works again
    assert camera.connected and connection_states(published)[-1] == "Ok"
