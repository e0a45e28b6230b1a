"""DEBUG and libindi's logger properties: what the device tells its clients, and its log file.

As INDI::Logger: DEBUG (ENABLE/DISABLE) defines DEBUG_LEVEL, LOGGING_LEVEL and LOG_OUTPUT
while enabled (xml/qhy42_debug_sk.xml). Without DEBUG the clients get errors, warnings and
session messages, as today. With it:

* DEBUG_LEVEL picks which of them reach the clients, and DBG_DEBUG adds the driver's debug
  log (every `log.debug` of the daemon, as "[DEBUG] ..." messages of this device);
* LOG_OUTPUT: CLIENT_DEBUG sends them to the clients, FILE_DEBUG writes the levels chosen in
  LOGGING_LEVEL to ~/.indi/logs/<UTC date>/<driver>/<driver>_<UTC time>.log, where libindi
  drivers put theirs, one line per record as libindi writes it ("DEBUG<TAB>12.345678 sec<TAB>:
  text").

The daemon's own log (stderr, journald) keeps its --log-level whatever the clients ask for.
Records come from any thread; the file is written by a thread of its own through a bounded
queue (a full queue drops records and counts them), and messages to the clients are handed to
the event loop, so logging never blocks the camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.indi.messages import NewVector, PropertyState
from qhy42_indi.indi.properties import PropertyVector, Value

PROPERTIES = ("DEBUG_LEVEL", "LOGGING_LEVEL", "LOG_OUTPUT")
PACKAGE_LOGGER = "qhy42_indi"
FILE_QUEUE_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Level:
    tag: str  # what libindi prints: [ERROR], [WARNING], [INFO], [DEBUG]
    python: int
    client_switch: str  # in DEBUG_LEVEL
    file_switch: str  # in LOGGING_LEVEL


LEVELS = (
    Level("ERROR", logging.ERROR, "DBG_ERROR", "LOG_ERROR"),
    Level("WARNING", logging.WARNING, "DBG_WARNING", "LOG_WARNING"),
    Level("INFO", logging.INFO, "DBG_SESSION", "LOG_SESSION"),
    Level("DEBUG", logging.DEBUG, "DBG_DEBUG", "LOG_DEBUG"),
)
BY_TAG = {level.tag: level for level in LEVELS}


def level_of(record: logging.LogRecord) -> Level:
    for level in LEVELS:
        if record.levelno >= level.python:
            return level
    return LEVELS[-1]


def log_file_path(home: Path, driver: str, now: datetime) -> Path:
    """libindi's: ~/.indi/logs/YYYY-MM-DD/<driver>/<driver>_HH:MM:SS.log, in UTC."""
    stamp = now.astimezone(UTC)
    return (home / ".indi" / "logs" / f"{stamp:%Y-%m-%d}" / driver
            / f"{driver}_{stamp:%H:%M:%S}.log")


class _LibindiFormat(logging.Formatter):
    def __init__(self, started_s: float) -> None:
        super().__init__()
        self._started_s = started_s

    def format(self, record: logging.LogRecord) -> str:
        elapsed = max(0.0, record.created - self._started_s)
        return f"{level_of(record).tag}\t{elapsed:.6f} sec\t: {record.getMessage()}"


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """A full queue loses the record (counted), never blocks or raises in the caller."""

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class DeviceLog(logging.Handler):
    def __init__(self, device: PropertyDevice, driver: str,
                 home: Callable[[], Path] = Path.home) -> None:
        super().__init__(logging.DEBUG)
        self._device = device
        self._driver = driver
        self._home = home
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_s = time.time()
        self._file: logging.handlers.QueueListener | None = None
        self._file_queue: _DroppingQueueHandler | None = None
        self.file_path: Path | None = None

    def handlers(self) -> dict[str, Handler]:
        return {"DEBUG": self._on_debug, "DEBUG_LEVEL": self._on_levels,
                "LOGGING_LEVEL": self._on_levels, "LOG_OUTPUT": self._on_output}

    # ---- what the device says

    @property
    def enabled(self) -> bool:
        return self._device.props["DEBUG"].is_on("ENABLE")

    def to_clients(self, tag: str) -> bool:
        """Whether a message of this level goes to the clients (say() asks)."""
        if not self.enabled:
            return tag != "DEBUG"
        props = self._device.props
        level = BY_TAG.get(tag, BY_TAG["INFO"])
        return props["LOG_OUTPUT"].is_on("CLIENT_DEBUG") and props["DEBUG_LEVEL"].is_on(
            level.client_switch)

    # ---- the properties

    async def _on_debug(self, vector: PropertyVector, proposed: dict[str, Value],
                        message: NewVector) -> None:
        vector.set_values(proposed)
        # As libindi: the logger's properties are defined or deleted before DEBUG's reply.
        if self.enabled:
            self._device.define(PROPERTIES)
            self._loop = asyncio.get_running_loop()
            if self not in logging.getLogger(PACKAGE_LOGGER).handlers:
                logging.getLogger(PACKAGE_LOGGER).addHandler(self)
        else:
            self._device.delete(PROPERTIES)
            logging.getLogger(PACKAGE_LOGGER).removeHandler(self)
            self._close_file()
        self._follow()
        self._device.update(vector.name, PropertyState.OK)

    async def _on_levels(self, vector: PropertyVector, proposed: dict[str, Value],
                         message: NewVector) -> None:
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)
        self._follow()

    async def _on_output(self, vector: PropertyVector, proposed: dict[str, Value],
                         message: NewVector) -> None:
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)
        self._follow()
        if self.file_path is not None and vector.is_on("FILE_DEBUG"):
            self._device.say(f"Logging to {self.file_path}")

    def _follow(self) -> None:
        """The package logger lets debug records through only while someone wants them; the
        file is open only while FILE_DEBUG is on."""
        props = self._device.props
        wants_debug = self.enabled and (props["DEBUG_LEVEL"].is_on("DBG_DEBUG")
                                        or props["LOGGING_LEVEL"].is_on("LOG_DEBUG"))
        logging.getLogger(PACKAGE_LOGGER).setLevel(logging.DEBUG if wants_debug
                                                   else logging.NOTSET)
        if self.enabled and props["LOG_OUTPUT"].is_on("FILE_DEBUG"):
            self._open_file()
        else:
            self._close_file()

    def _open_file(self) -> None:
        if self._file is not None:
            return
        path = log_file_path(self._home(), self._driver, datetime.now(UTC))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = logging.FileHandler(path, encoding="utf-8", delay=True)
        except OSError as error:
            self._device.alert("LOG_OUTPUT", f"Cannot write the log file {path}: {error}")
            return
        target.setFormatter(_LibindiFormat(self._started_s))
        records: queue.Queue[logging.LogRecord] = queue.Queue(FILE_QUEUE_RECORDS)
        self._file_queue = _DroppingQueueHandler(records)
        self._file = logging.handlers.QueueListener(records, target)
        self._file.start()
        self.file_path = path

    def _close_file(self) -> None:
        listener, self._file = self._file, None
        if listener is not None:
            listener.stop()  # writes what is queued, in its thread, then joins it
            for handler in listener.handlers:
                handler.close()
        self._file_queue = None

    def close(self) -> None:
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self)
        self._close_file()
        super().close()

    # ---- records (any thread)

    def emit(self, record: logging.LogRecord) -> None:
        level = level_of(record)
        props = self._device.props
        file_queue = self._file_queue
        if file_queue is not None and props["LOGGING_LEVEL"].is_on(level.file_switch):
            file_queue.enqueue(record)
        # Errors, warnings and session messages reach the clients as the device says them
        # (say, alert); the log adds the debug records.
        loop = self._loop
        if level.tag == "DEBUG" and loop is not None and self.to_clients("DEBUG"):
            text = record.getMessage()
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                loop.call_soon_threadsafe(self._device.say_to_clients, text, "DEBUG")

