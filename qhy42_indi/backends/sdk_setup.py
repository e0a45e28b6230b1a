"""Choosing the SDK backend at start-up: `--backend sdk`, and `auto` when a camera answers.

What it is for: app.py asks `sdk_cameras_async(choice)` which cameras the SDK backend serves.
- `sdk`: libqhyccd must load (else SdkLibraryMissing, whose message says what to install);
  the QHY42PROs the SDK sees, maybe none (roster.py serves them and those that come later).
- `auto`: the same when libqhyccd loads and a QHY42PRO answers; otherwise None (the simulator
  serves) and a log line says why.
- `simulator`: None.

The SDK is initialised here, before the daemon serves, and released when the process exits
(on the SDK thread, as every call), without blocking the event loop.

$QHY42_SDK_CALL_TIMEOUT_S, when set, is how long an ordinary SDK job may take before the
camera counts as not answering (default 30 s; tests shorten it).

What it is not: the backend (qhysdk.py) or the USB view of the bus (usb.py).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
from dataclasses import dataclass

from qhy42_indi.backends.base import BackendError
from qhy42_indi.backends.qhysdk import MODEL, SdkBackend, SdkRuntime
from qhy42_indi.backends.sdk_bindings import SdkLibraryMissing
from qhy42_indi.backends.sdk_thread import DEFAULT_TIMEOUT_S

CALL_TIMEOUT_ENV = "QHY42_SDK_CALL_TIMEOUT_S"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SdkCameras:
    """The started SDK and the QHY42PROs its start-up scan found."""

    runtime: SdkRuntime
    camera_ids: tuple[str, ...]

    def make_backend(self, camera_id: str | None) -> SdkBackend:
        return SdkBackend(self.runtime, camera_id, call_timeout_s=call_timeout_s())


async def sdk_cameras_async(choice: str,
                            library_path: str | None = None) -> SdkCameras | None:
    """The SDK cameras to serve for a --backend choice, or None for the simulator. Loading
    libqhyccd, InitQHYCCDResource and the scan run off the event loop (the scan and init on
    the SDK thread), so signals and everything else on the loop go on meanwhile, and a hung
    init fails after its timeout."""
    if choice not in ("auto", "sdk"):
        return None
    runtime = await asyncio.to_thread(_load, choice, library_path)
    if runtime is None:
        return None
    try:
        await runtime.start_async()
        ids = await runtime.camera_ids_async()
    except BackendError as error:
        await asyncio.to_thread(runtime.stop)
        _not_started(choice, runtime, error)
        return None
    cameras = _cameras(choice, runtime, ids)
    if cameras is None:
        await asyncio.to_thread(runtime.stop)
    return cameras


def _load(choice: str, library_path: str | None) -> SdkRuntime | None:
    try:
        return SdkRuntime.load(library_path)
    except SdkLibraryMissing as error:
        if choice == "sdk":
            raise SdkLibraryMissing(f"--backend sdk: {error}") from error
        log.info("libqhyccd is not available (%s): using the simulator", error)
        return None


def _not_started(choice: str, runtime: SdkRuntime, error: BackendError) -> None:
    """The SDK did not start (the runtime is stopped): an error for `sdk`, else a log line
    (the simulator serves)."""
    if choice == "sdk":
        raise BackendError(f"--backend sdk: libqhyccd ({runtime.library.path}) did not "
                           f"start: {error}") from error
    log.warning("libqhyccd (%s) did not start (%s): using the simulator",
                runtime.library.path, error)


def _cameras(choice: str, runtime: SdkRuntime, ids: list[str]) -> SdkCameras | None:
    """What to serve once the SDK started and scanned; None: stop it, use the simulator."""
    if not ids and choice == "auto":
        log.info("no %s answers through libqhyccd (%s): using the simulator", MODEL,
                 runtime.library.path)
        return None
    atexit.register(runtime.stop)
    if not ids:
        log.warning("no %s answers through libqhyccd (%s) yet: waiting for one to be "
                    "plugged in (see `qhy42-indi list`)", MODEL, runtime.library.path)
    else:
        log.info("serving %s through libqhyccd (%s), SDK %s", ", ".join(ids),
                 runtime.library.path, runtime.sdk_version)
    return SdkCameras(runtime, tuple(ids))


def call_timeout_s() -> float:
    """$QHY42_SDK_CALL_TIMEOUT_S if it is a positive number, else the default."""
    text = os.environ.get(CALL_TIMEOUT_ENV, "")
    try:
        value = float(text)
    except ValueError:
        if text:
            log.warning("ignoring %s=%r: not a number of seconds", CALL_TIMEOUT_ENV, text)
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S
