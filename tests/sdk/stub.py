"""Build and load tests/sdk_stub, the libqhyccd stand-in (see qhyccd_stub.c for what it models).

`build_stub()` runs make once per test session (make skips an up-to-date library) and returns
the library's path; daemons under test get it as $QHY42_LIBQHYCCD. `StubHooks` reaches the
stub's test hooks (stub_vanish, the call checks, the handle count) in this process.
`HangFile` makes SDK calls hang (in this process or a daemon's) until it is released.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
from pathlib import Path

STUB_DIR = Path(__file__).resolve().parents[1] / "sdk_stub"
LIBRARY = STUB_DIR / "build" / "libqhyccd.so"


class StubBuildError(RuntimeError):
    """The stub could not be built; the message names what to install."""


@functools.cache
def build_stub() -> Path:
    missing = [tool for tool in ("make", "cc") if shutil.which(tool) is None]
    if missing:
        raise StubBuildError(f"cannot build the libqhyccd stub: install {' and '.join(missing)}"
                             " (Debian packages make and gcc)")
    try:
        build = subprocess.run(["make", "-C", str(STUB_DIR)], capture_output=True, text=True,
                               timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StubBuildError(f"make -C {STUB_DIR} took more than 120 s") from exc
    if build.returncode != 0 or not LIBRARY.exists():
        raise StubBuildError(f"building the libqhyccd stub failed:\n{build.stdout}{build.stderr}")
    return LIBRARY


class StubHooks:
    """The stub's test-only exports, in this process."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        self._cdll = cdll
        for name in ("stub_foreign_thread_calls", "stub_delay_violations",
                     "stub_order_violations", "stub_opens", "stub_open_handles",
                     "stub_hung_calls", "stub_param_reads"):
            getattr(cdll, name).restype = ctypes.c_ulong
        for name in ("stub_heater_level", "stub_param_ddr", "stub_param_gps"):
            getattr(cdll, name).restype = ctypes.c_double

    def vanish(self) -> None:
        self._cdll.stub_vanish()

    def come_back(self) -> None:
        self._cdll.stub_return()

    def counts(self) -> dict[str, int]:
        """The caller checks: calls from a second thread, calls within 200 ms of
        QHYCCD_DELAY_200MS, exposures without InitQHYCCD after a mode change; and opens."""
        return {name: int(getattr(self._cdll, f"stub_{name}")()) for name in
                ("foreign_thread_calls", "delay_violations", "order_violations", "opens")}

    def open_handles(self) -> int:
        """Handles OpenQHYCCD gave out that CloseQHYCCD (or ReleaseQHYCCDResource) has not
        taken back."""
        return int(self._cdll.stub_open_handles())

    def hung_calls(self) -> int:
        """Calls that hung on the QHY42_STUB_HANG_FILE (see HangFile)."""
        return int(self._cdll.stub_hung_calls())

    def param_reads(self) -> int:
        """Calls of GetQHYCCDParam so far."""
        return int(self._cdll.stub_param_reads())

    def heater_level(self) -> float:
        return float(self._cdll.stub_heater_level())

    def ddr(self) -> float:
        return float(self._cdll.stub_param_ddr())

    def gps(self) -> float:
        return float(self._cdll.stub_param_gps())

    def trigger_on(self) -> bool:
        return bool(self._cdll.stub_trigger_on())

    def roi(self) -> tuple[int, int, int, int, int]:
        """(x, y, width, height) in binned pixels and the bin, as the camera holds them."""
        out = (ctypes.c_uint32 * 5)()
        self._cdll.stub_roi(out)
        return (out[0], out[1], out[2], out[3], out[4])


class HangFile:
    """The stub's QHY42_STUB_HANG_FILE: while the file exists, calls of the functions written
    in it do not return. Give `env_name` and `path` to the process (the environment), then
    `hang()` and `release()`."""

    env_name = "QHY42_STUB_HANG_FILE"

    def __init__(self, path: Path, *functions: str) -> None:
        self.path = path
        self.functions = functions or ("GetQHYCCDParam",)

    def hang(self) -> None:
        self.path.write_text("\n".join(self.functions) + "\n")

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    @property
    def hanging(self) -> bool:
        return self.path.exists()
