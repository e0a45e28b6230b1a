"""Choosing the SDK backend at start-up: `--backend sdk`, and `auto` when a camera answers.

What it is for: app.py asks `sdk_cameras(choice)` which cameras the SDK backend serves.
- `sdk`: libqhyccd must load (else SdkLibraryMissing, whose message says what to install);
  one SdkBackend per QHY42PRO the SDK sees, or, with none plugged in, one for the first
  QHY42PRO to appear (its CONNECT fails with a message until then).
- `auto`: the same when libqhyccd loads and a QHY42PRO answers; otherwise None (the simulator
  serves) and a log line says why.
- `simulator`: None.

The SDK is initialised here, before the daemon serves (a short blocking start-up step), and
released when the process exits (on the SDK thread, as every call).

What it is not: the backend (qhysdk.py) or the USB view of the bus (usb.py).
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass

from qhy42_indi.backends.base import BackendError
from qhy42_indi.backends.qhysdk import MODEL, SdkBackend, SdkRuntime
from qhy42_indi.backends.sdk_bindings import SdkLibraryMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SdkCameras:
    runtime: SdkRuntime
    backends: tuple[SdkBackend, ...]

    def names(self, device_name: str, default_name: str) -> list[str]:
        """INDI device names: --device-name (numbered from the second camera on), else
        indi_qhy_ccd's `QHY CCD <id>` (`default_name` while no camera was seen yet)."""
        names = []
        for index, backend in enumerate(self.backends):
            if device_name:
                names.append(device_name if index == 0 else f"{device_name} {index + 1}")
            elif backend.camera_id:
                names.append(f"QHY CCD {backend.camera_id[:15]}")
            else:
                names.append(default_name)
        return names


def sdk_cameras(choice: str, library_path: str | None = None) -> SdkCameras | None:
    """The SDK cameras to serve for a --backend choice, or None for the simulator."""
    if choice not in ("auto", "sdk"):
        return None
    try:
        runtime = SdkRuntime.load(library_path)
    except SdkLibraryMissing as error:
        if choice == "sdk":
            raise SdkLibraryMissing(f"--backend sdk: {error}") from error
        log.info("libqhyccd is not available (%s): using the simulator", error)
        return None
    try:
        runtime.start()
        ids = runtime.camera_ids()
    except BackendError as error:
        runtime.stop()
        if choice == "sdk":
            raise BackendError(f"--backend sdk: libqhyccd ({runtime.library.path}) did not "
                               f"start: {error}") from error
        log.warning("libqhyccd (%s) did not start (%s): using the simulator",
                    runtime.library.path, error)
        return None
    if not ids and choice == "auto":
        runtime.stop()
        log.info("no %s answers through libqhyccd (%s): using the simulator", MODEL,
                 runtime.library.path)
        return None
    atexit.register(runtime.stop)
    if not ids:
        log.warning("no %s answers through libqhyccd (%s) yet: CONNECT finds it once it is "
                    "plugged in (see `qhy42-indi list`)", MODEL, runtime.library.path)
        return SdkCameras(runtime, (SdkBackend(runtime),))
    log.info("serving %s through libqhyccd (%s), SDK %s", ", ".join(ids),
             runtime.library.path, runtime.sdk_version)
    return SdkCameras(runtime, tuple(SdkBackend(runtime, camera_id) for camera_id in ids))
