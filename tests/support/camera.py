"""Driving the camera device over the wire as Ekos does: small async helpers for tests."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pybase64
from astropy.io import fits

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    IndiMessage,
    Message,
    NumberElement,
    SetVector,
)
from tests.support.client import IndiClient, is_blob, is_def, is_set

DEVICE = "QHY CCD QHY42PRO-SIM01"


async def connect_camera(client: IndiClient, device: str = DEVICE) -> None:
    """getProperties, CONNECT, and wait until the CCD set is defined."""
    await client.send(f"<getProperties version='1.7' device='{device}'/>")
    await client.wait_for(is_def("CONNECTION"))
    await set_switch(client, "CONNECTION", "CONNECT", device=device)
    await client.wait_for(is_def("CCD_EXPOSURE"))



async def set_numbers(
    client: IndiClient, name: str, device: str = DEVICE, **values: float
) -> int:
    """Send a newNumberVector; return the index of the first message that can answer it."""
    start = len(client.received)
    members = "".join(f"<oneNumber name='{k}'>{v}</oneNumber>" for k, v in values.items())
    await client.send(
        f"<newNumberVector device='{device}' name='{name}'>{members}</newNumberVector>"
    )
    return start


async def set_switch(
    client: IndiClient, name: str, member: str, device: str = DEVICE, state: str = "On"
) -> int:
    start = len(client.received)
    await client.send(
        f"<newSwitchVector device='{device}' name='{name}'>"
        f"<oneSwitch name='{member}'>{state}</oneSwitch></newSwitchVector>"
    )
    return start


async def set_texts(client: IndiClient, name: str, device: str = DEVICE, **values: str) -> int:
    start = len(client.received)
    members = "".join(f"<oneText name='{k}'>{v}</oneText>" for k, v in values.items())
    await client.send(f"<newTextVector device='{device}' name='{name}'>{members}</newTextVector>")
    return start


async def answered(client: IndiClient, name: str, start: int, timeout_s: float = 20) -> SetVector:
    """The device's setXXXVector reply to a command sent at `start` (Ok, Alert or Idle)."""
    found = await client.wait_for(
        lambda m: isinstance(m, SetVector) and m.name == name and m.state != "Busy",
        timeout_s, start=start,
    )
    assert isinstance(found, SetVector)
    return found


async def expose(client: IndiClient, exposure_s: float, timeout_s: float = 60) -> int:
    """Start an exposure and wait for CCD_EXPOSURE Ok; returns where its traffic starts."""
    start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=exposure_s)
    reply = await client.wait_for(
        lambda m: is_set("CCD_EXPOSURE")(m) and m.state in ("Ok", "Alert"),  # type: ignore[union-attr]
        timeout_s, start=start,
    )
    assert isinstance(reply, SetVector) and reply.state == "Ok", messages_text(client, start)
    return start


def blobs(messages: Sequence[IndiMessage]) -> list[BlobElement]:
    return [m.elements[0] for m in messages if is_blob(m)]  # type: ignore[union-attr,misc]


def decode_fits(blob: BlobElement) -> fits.HDUList:
    data = pybase64.b64decode(bytes(blob.data_b64), validate=True)
    assert len(data) == blob.size
    return fits.open(io.BytesIO(data))


def image(hdus: fits.HDUList) -> np.ndarray:
    hdu = hdus[1] if hdus[0].data is None else hdus[0]
    return np.asarray(hdu.data)


def number(message: IndiMessage, element: str) -> float:
    assert isinstance(message, SetVector | DefVector)
    for member in message.elements:
        if isinstance(member, NumberElement) and member.name == element:
            return member.value
    raise KeyError(element)


def messages_text(client: IndiClient, start: int = 0) -> str:
    return "\n".join(
        m.message or "" for m in client.received[start:] if isinstance(m, Message)
    ) + "\n" + "\n".join(
        f"{m.name} {m.state} {m.message or ''}"
        for m in client.received[start:] if isinstance(m, SetVector) and m.message
    )
