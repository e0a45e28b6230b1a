"""The camera device without a network, for tests of what must not wait for what: a
connected simulated camera, what it published, and the commands a client would send."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi.messages import (
    IndiMessage,
    NewVector,
    NumberElement,
    SetVector,
    SwitchElement,
    SwitchState,
    TextElement,
    VectorKind,
)


@contextlib.asynccontextmanager
async def connected_camera(name: str, *, seed: int, time_scale: float = 20
                           ) -> AsyncIterator[tuple[Qhy42Device, list[IndiMessage]]]:
    device = Qhy42Device(name, SimulatorBackend(SimulatorOptions(seed=seed,
                                                                 time_scale=time_scale)))
    published: list[IndiMessage] = []
    device.bind(published.append)
    await device.connect()
    try:
        yield device, published
    finally:
        await device.close()


def switch(device: str, name: str, member: str) -> NewVector:
    return NewVector(kind=VectorKind.SWITCH, device=device, name=name,
                     elements=(SwitchElement(name=member, value=SwitchState.ON),))


def numbers(device: str, name: str, **values: float) -> NewVector:
    return NewVector(kind=VectorKind.NUMBER, device=device, name=name,
                     elements=tuple(NumberElement(name=k, value=v) for k, v in values.items()))


def texts(device: str, name: str, **values: str) -> NewVector:
    return NewVector(kind=VectorKind.TEXT, device=device, name=name,
                     elements=tuple(TextElement(name=k, value=v) for k, v in values.items()))


def last(published: list[IndiMessage], name: str) -> SetVector | None:
    found = [m for m in published if isinstance(m, SetVector) and m.name == name]
    return found[-1] if found else None
