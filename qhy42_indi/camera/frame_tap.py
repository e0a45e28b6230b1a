"""Each delivered frame, offered to whoever else shows it (the Alpaca front-end, the page).

The frame is the one the INDI clients get: the pixels the FITS holds (merged, when HDR is
merged), the FITS bytes themselves when they were built (for an INDI client or a save; the
header's cards always), and when and how it was taken. Nothing is copied: a
subscriber keeps references and must treat the arrays as read-only. A subscriber is called on
the event loop and must return at once (keep the latest, queue with a bound, never wait); one
that raises is logged and the others still get the frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.backends.base import Frame
from qhy42_indi.camera.fits import Card, EncodedFrame, FrameType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveredFrame:
    device: str
    frame: Frame  # as the camera gave it (both channels side by side for HDR)
    pixels: NDArray[Any]  # what the FITS holds: frame.pixels, or the merged image
    fits: EncodedFrame | None  # None when nobody took the FITS (no INDI client, no save)
    cards: tuple[Card, ...]  # its header's cards (fits.frame_header makes the header of them)
    start_utc: datetime  # row 0's start, from the frame's clock (GPS when locked)
    time_source: str  # TIMESRC: which clock start_utc comes from
    frame_type: FrameType


FrameSubscriber = Callable[[DeliveredFrame], None]


class FrameTap:
    def __init__(self) -> None:
        self._subscribers: list[FrameSubscriber] = []
        self.last: DeliveredFrame | None = None

    def subscribe(self, subscriber: FrameSubscriber) -> Callable[[], None]:
        """Call `subscriber` with every frame from now on; returns the way to stop."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def offer(self, delivered: DeliveredFrame) -> None:
        self.last = delivered
        for subscriber in list(self._subscribers):
            try:
                subscriber(delivered)
            except Exception:  # a front-end's bug must not cost the camera a frame
                log.exception("frame subscriber %r failed", subscriber)
