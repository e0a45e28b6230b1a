"""The recent log lines and device messages the page shows, each in a bounded ring.

`LogRing` is a logging.Handler: records come from any thread, so it keeps them under the
handler's lock and tells the loop through call_soon_threadsafe. Each line has a sequence
number, so a page receives only the lines it has not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_LINES = 200


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    time_s: float  # epoch
    level: str
    source: str  # logger name, or the device for a device message
    text: str


class Ring:
    """Lines with increasing sequence numbers; the oldest go past the bound."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: deque[Line] = deque(maxlen=max_lines)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, time_s: float, level: str, source: str, text: str) -> None:
        with self._lock:
            self._seq += 1
            self._lines.append(Line(self._seq, time_s, level, source, text))

    def since(self, seq: int) -> list[Line]:
        with self._lock:
            if not self._lines or self._lines[-1].seq <= seq:
                return []
            return [line for line in self._lines if line.seq > seq]


class LogRing(logging.Handler):
    """The daemon's log records at `level` and above, with a wake-up for the page feed."""

    def __init__(self, on_line: Callable[[], None], level: int = logging.INFO) -> None:
        super().__init__(level)
        self.ring = Ring()
        self._on_line = on_line
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break logging elsewhere
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}: {record.exc_info[1]!r}"
        self.ring.add(record.created, record.levelname, record.name, text)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._on_line()
        else:
            loop.call_soon_threadsafe(self._on_line)
