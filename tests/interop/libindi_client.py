"""Build and run tests/clients/indi_capture_client, a capture client built on libindiclient.

libindiclient (INDI::BaseClient) is the client library KStars uses, so a capture through it
shows how KStars would see a server. The client prints one line per event (see the comment at
the top of indi_capture_client.cpp); this module parses them into a CaptureResult.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients"
BINARY = CLIENT_DIR / "build" / "indi_capture_client"

# Exit statuses of indi_capture_client.
EXIT_TIMEOUT = 3
EXIT_DISCONNECTED = 4
EXIT_ALERT = 5


class CaptureClientBuildError(RuntimeError):
    """The client could not be built; the message names the Debian packages to install."""


@dataclass(frozen=True)
class Frame:
    index: int
    size: int
    format: str
    bloblen: int
    file: Path


@dataclass(frozen=True)
class ExposureUpdate:
    state: str
    value: float


@dataclass
class CaptureResult:
    """What one run printed. `events` keeps stdout order: with --blob-mode also that is the
    wire order; with the default two-connection mode FRAMEs come from another socket."""

    returncode: int
    frames: list[Frame] = field(default_factory=list)
    exposures: list[ExposureUpdate] = field(default_factory=list)
    events: list[Frame | ExposureUpdate] = field(default_factory=list)
    done_frames: int | None = None
    stdout: str = ""
    stderr: str = ""

    def exposure_states(self) -> list[str]:
        """CCD_EXPOSURE states with repeats collapsed, e.g. ['Busy', 'Ok', 'Busy', 'Ok']."""
        states: list[str] = []
        for update in self.exposures:
            if not states or states[-1] != update.state:
                states.append(update.state)
        return states


def _missing_packages() -> list[str]:
    missing = [pkg for tool, pkg in (("make", "make"), ("g++", "g++"), ("pkg-config", "pkg-config"))
               if shutil.which(tool) is None]
    has_libindi = shutil.which("pkg-config") is not None and subprocess.run(
        ["pkg-config", "--exists", "libindi"], check=False
    ).returncode == 0
    if not has_libindi or not Path("/usr/include/libindi/baseclient.h").exists():
        missing.append("libindi-dev")
    return missing


@functools.cache
def build_capture_client() -> Path:
    """Run make once per session (make itself skips an up-to-date binary); return the binary."""
    if shutil.which("make") is None:
        raise CaptureClientBuildError(
            "cannot build the libindiclient test client: install the Debian package make")
    try:
        build = subprocess.run(["make", "-C", str(CLIENT_DIR)], capture_output=True, text=True,
                               timeout=300, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CaptureClientBuildError(f"make -C {CLIENT_DIR} took more than 300 s") from exc
    if build.returncode != 0 or not os.access(BINARY, os.X_OK):
        missing = _missing_packages()
        advice = (f"install the Debian package(s) {' '.join(missing)}" if missing else
                  "make, g++, pkg-config and libindi-dev look installed; see the output")
        raise CaptureClientBuildError(
            f"building the libindiclient test client failed; {advice}\n"
            f"{build.stdout}{build.stderr}")
    return BINARY


def run_capture_client(
    binary: Path,
    host: str,
    port: int,
    device: str,
    exposure_s: float,
    count: int = 1,
    *,
    out_dir: Path,
    extra_args: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> CaptureResult:
    """Run one capture session. timeout_s bounds the client's whole run (its --timeout); the
    process gets a few more seconds to report it before we kill it and raise TimeoutError."""
    argv = [str(binary), "--host", host, "--port", str(port), "--device", device,
            "--exposure", repr(exposure_s), "--count", str(count), "--out", str(out_dir),
            "--timeout", repr(timeout_s), *extra_args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 15,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(
            f"indi_capture_client did not exit within {timeout_s + 15} s: "
            f"stdout={exc.stdout!r} stderr={exc.stderr!r}") from exc
    return parse_output(proc.returncode, proc.stdout, proc.stderr)


def parse_output(returncode: int, stdout: str, stderr: str) -> CaptureResult:
    result = CaptureResult(returncode=returncode, stdout=stdout, stderr=stderr)
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "FRAME":
            # file= is last and may contain spaces.
            head, _, file = rest.partition(" file=")
            fields = dict(item.split("=", 1) for item in head.split())
            frame = Frame(int(fields["index"]), int(fields["size"]), fields["format"],
                          int(fields["bloblen"]), Path(file))
            result.frames.append(frame)
            result.events.append(frame)
        elif kind == "EXPOSURE":
            fields = dict(item.split("=", 1) for item in rest.split())
            update = ExposureUpdate(fields["state"], float(fields["value"]))
            result.exposures.append(update)
            result.events.append(update)
        elif kind == "DONE":
            result.done_frames = int(rest.removeprefix("frames="))
    return result
