"""Helpers for the timing tests over the wire: switches, the simulator's signal log, frames,
FITS times and the GPS head read straight from the pixels."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from qhy42_indi.backends.sim_timing import Event
from qhy42_indi.indi.messages import IndiMessage, SetVector, TextElement, VectorKind
from tests.support.camera import (
    DEVICE,
    decode_fits,
    image,
    messages_text,
    number,
    set_numbers,
    set_switch,
)
from tests.support.client import IndiClient

GPS_EPOCH = datetime(1995, 10, 10, tzinfo=UTC)
WAIT_S = 30.0


def of(name: str, device: str = DEVICE, state: str | None = None) -> Callable[[IndiMessage], bool]:
    return lambda m: (isinstance(m, SetVector) and m.name == name and m.device == device
                      and (state is None or m.state == state))


def waiting(device: str = DEVICE) -> Callable[[IndiMessage], bool]:
    """CCD_EXPOSURE Busy, waiting for its trigger."""
    return lambda m: (of("CCD_EXPOSURE", device, "Busy")(m)
                      and "waiting for trigger" in (m.message or ""))  # type: ignore[union-attr]


async def position(client: IndiClient, predicate: Callable[[IndiMessage], bool],
                   start: int = 0) -> int:
    """The index in client.received of the first message from `start` on that matches."""
    await client.wait_for(predicate, WAIT_S, start=start)
    return next(i for i in range(start, len(client.received)) if predicate(client.received[i]))


def is_frame(device: str = DEVICE) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, SetVector) and m.kind is VectorKind.BLOB and m.device == device


def blob_messages(client: IndiClient, start: int = 0, device: str = DEVICE) -> list[SetVector]:
    return [m for m in client.received[start:]
            if isinstance(m, SetVector) and m.kind is VectorKind.BLOB and m.device == device]


def text(message: IndiMessage, element: str) -> str:
    assert isinstance(message, SetVector)
    for member in message.elements:
        if isinstance(member, TextElement) and member.name == element:
            return member.value
    raise KeyError(element)


async def switch(client: IndiClient, name: str, member: str, device: str = DEVICE) -> SetVector:
    """Set a switch and return the device's (non-Busy) answer."""
    start = await set_switch(client, name, member, device=device)
    return await client.wait_for(  # type: ignore[return-value]
        lambda m: of(name, device)(m) and m.state != "Busy", WAIT_S, start=start)


async def numbers(client: IndiClient, name: str, device: str = DEVICE,
                  **values: float) -> SetVector:
    start = await set_numbers(client, name, device=device, **values)
    return await client.wait_for(  # type: ignore[return-value]
        lambda m: of(name, device)(m) and m.state != "Busy", WAIT_S, start=start)


async def fetch_events(client: IndiClient, device: str = DEVICE, *,
                       clear: bool = False) -> list[Event]:
    """The simulated camera's signal log (SIM_EVENTS FETCH or CLEAR, then SIM_EVENT_LOG)."""
    start = await set_switch(client, "SIM_EVENTS", "CLEAR" if clear else "FETCH", device=device)
    log = await client.wait_for(of("SIM_EVENT_LOG", device), WAIT_S, start=start)
    return [Event.from_text(line) for line in text(log, "EVENTS").splitlines() if line]


async def registers(client: IndiClient, device: str = DEVICE) -> tuple[int, int]:
    """REG39 and REG142 as GPIO_REGISTERS last showed them."""
    last = next(m for m in reversed(client.received) if of("GPIO_REGISTERS", device)(m))
    return int(number(last, "REG39")), int(number(last, "REG142"))


@dataclass
class Shot:
    """One frame as a client received it."""

    header: Any
    pixels: np.ndarray
    start: int  # where its traffic begins in client.received

    def utc(self, keyword: str) -> datetime:
        return datetime.fromisoformat(self.header[keyword]).replace(tzinfo=UTC)

    @property
    def line_period(self) -> timedelta:
        """One line period plus the microsecond the FITS times are rounded to."""
        return timedelta(microseconds=math.ceil(self.header["LINEPER"]) + 1)


async def until_done(client: IndiClient, start: int, device: str = DEVICE) -> list[Shot]:
    """Wait for CCD_EXPOSURE Ok after `start`; the frames that arrived with it."""
    reply = await client.wait_for(
        lambda m: of("CCD_EXPOSURE", device)(m) and m.state in ("Ok", "Alert"),  # type: ignore[union-attr]
        WAIT_S, start=start)
    assert isinstance(reply, SetVector) and reply.state == "Ok", messages_text(client, start)
    shots = []
    for message in blob_messages(client, start, device):
        with decode_fits(message.elements[0]) as hdus:  # type: ignore[arg-type]
            shots.append(Shot(hdus[0].header.copy(), image(hdus).copy(), start))
    return shots


async def shoot(client: IndiClient, exposure_s: float, device: str = DEVICE) -> Shot:
    """A software exposure: its one frame."""
    start = await set_numbers(client, "CCD_EXPOSURE", device=device,
                              CCD_EXPOSURE_VALUE=exposure_s)
    (shot,) = await until_done(client, start, device)
    return shot


def head_start_utc(pixels: np.ndarray) -> tuple[int, datetime]:
    """The GPS head's start flag and time, parsed from row 0's bytes as the camera sent them
    (16-bit words little-endian; big-endian fields; seconds since 1995-10-10, 0.1 us)."""
    row = pixels[0].astype("<u2" if pixels.dtype.itemsize == 2 else "u1").tobytes()
    flag = row[17]
    seconds = struct.unpack(">I", row[18:22])[0]
    ticks = int.from_bytes(row[22:25], "big")
    return flag, GPS_EPOCH + timedelta(seconds=seconds, microseconds=round(ticks / 10))

