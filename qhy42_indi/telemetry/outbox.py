"""What waits to go to the broker: bounded whatever the broker does.

The camera puts publications in and never waits. A retained state topic keeps only its latest
payload (an update replaces the one not yet sent, so a slow or absent broker costs one entry
per topic, and what arrives is current). Events (frames, messages) are kept in order up to a
bound; past it the oldest are dropped and counted. The sender takes everything waiting at
once, in the order it was last put.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

from qhy42_indi.telemetry.state import Publication

MAX_EVENTS = 256


class Outbox:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._waiting: dict[str | int, Publication] = {}  # topic, or a number for an event
        self._event_keys: deque[int] = deque()
        self._numbers = itertools.count()
        self._max_events = max_events
        self._ready = asyncio.Event()
        self.events_dropped = 0
        self.states_merged = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, publication: Publication) -> None:
        if publication.retain:
            if self._waiting.pop(publication.topic, None) is not None:
                self.states_merged += 1
            self._waiting[publication.topic] = publication
        else:
            if len(self._event_keys) >= self._max_events:
                del self._waiting[self._event_keys.popleft()]
                self.events_dropped += 1
            key = next(self._numbers)
            self._event_keys.append(key)
            self._waiting[key] = publication
        self._ready.set()

    def take(self) -> list[Publication]:
        """Everything waiting, oldest first; the outbox is empty afterwards."""
        taken = list(self._waiting.values())
        self._waiting.clear()
        self._event_keys.clear()
        self._ready.clear()
        return taken

    def drop_states(self) -> None:
        """Forget the waiting state updates (a full snapshot is about to be sent)."""
        for key in [k for k in self._waiting if isinstance(k, str)]:
            del self._waiting[key]
        if not self._waiting:
            self._ready.clear()

    async def wait(self) -> None:
        """Until something is waiting."""
        await self._ready.wait()
