"""Where a frame's CPU goes: each stage of the daemon's frame path timed alone, in one process.

`python -m bench.stages` (and the last table of `make bench`) times, on this machine, the
stages a frame passes through: the simulator's render (a real camera's SDK delivers the frame
instead), the HDR fit and merge, the FITS (cached header, pixels written big-endian into the
buffer that is sent), RICE_1 tile compression on several threads, base64, the shared-memory
copy for local clients and indiserver, the loopback TCP send, and the live-video encodings.
Each figure is the CPU time of the process per frame (threads included), the median of a few
repetitions; for the threaded stages the wall time is given beside it.

From those it writes the budget per mode at the camera's full rate: CPU per second (ms/s, so
1000 is one core) with a real camera, i.e. without the simulator's render, which is what an
operator sizing a Raspberry Pi wants; `--pi-factor` scales it (default 3: what costs 11 ms on
these cores took 30-40 ms on a Pi 4 in our earlier measurements; a Pi 5 is about half that).
It is an estimate built from the stages, not a measurement of a Pi: the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pybase64

from qhy42_indi import rice
from qhy42_indi.backends import sensor_model
from qhy42_indi.backends.base import Frame, Roi, channel_spans
from qhy42_indi.backends.renderer import FrameRenderer, RenderRequest
from qhy42_indi.backends.scenes import DarkScene, FlatScene, Scene, StarFieldScene
from qhy42_indi.camera import fits, hdr, stream_frames
from qhy42_indi.server.local import SharedBuffers

REPEATS: Final = 7
QUICK_REPEATS: Final = 3
PI_FACTOR: Final = 3.0
HDR_FLAT_E_PER_S: Final = 300_000.0  # bench/scenarios.py's merged-HDR flat
EXPOSURE_S: Final = 0.01
SCENES: Final[dict[str, Scene]] = {
    "dark": DarkScene(), "stars": StarFieldScene(), "flat": FlatScene(),
}


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    cpu_ms: float
    wall_ms: float


def _timed(work: Callable[[], object], repeats: int,
           cpu_clock: Callable[[], float] = time.process_time) -> tuple[float, float]:
    """Median CPU and wall ms of `work`, after one warm-up run (caches, pools, lazy tables)."""
    work()
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = cpu_clock(), time.perf_counter()
        work()
        cpu.append((cpu_clock() - cpu_start) * 1e3)
        wall.append((time.perf_counter() - wall_start) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def _render(renderer: FrameRenderer, scene: Scene, *, read_mode: int = 1, bits: int = 16,
            exposure_s: float = EXPOSURE_S) -> Callable[[], Any]:
    mode = sensor_model.READ_MODES[read_mode]
    request = RenderRequest(read_mode=mode, roi=Roi(0, 0, mode.width, mode.height), bin_x=1,
                            bin_y=1, bit_depth=bits, gain=30, offset=20, exposure_s=exposure_s,
                            temperature_c=-10.0, amp_glow_suppression=True, scene=scene)
    return lambda: renderer.render(request)


def _hdr_frame(renderer: FrameRenderer) -> Frame:
    mode = sensor_model.READ_MODES[0]
    roi = Roi(0, 0, mode.width, mode.height)
    pixels = _render(renderer, FlatScene(HDR_FLAT_E_PER_S), read_mode=0)()
    return Frame(pixels=pixels, sequence=1, start_utc=datetime.now(UTC), exposure_s=EXPOSURE_S,
                 read_mode=mode, roi=roi, bin_x=1, bin_y=1, bit_depth=16, gain=30, offset=20,
                 sensor_temperature_c=-10.0, line_period_us=10.0,
                 channels=channel_spans(mode, roi, 1))


def _cards() -> list[fits.Card]:
    meta = fits.FrameMetadata(
        device_name="QHY CCD QHY42PRO-SIM01", exposure_s=EXPOSURE_S, start_time=datetime.now(UTC),
        pixel_size_x_um=11.0, pixel_size_y_um=11.0, ccd_temperature_c=-10.0,
        set_temperature_c=-10.0, gain=30, offset=20, read_mode="STD High Gain")
    return fits.standard_cards(meta)


def _tcp_send(payload: bytes) -> Callable[[], None]:
    """Send `payload` over loopback TCP to a reader thread; the reader's CPU is the client's,
    so only the sending thread's CPU is what this stage returns (see measure_send)."""
    def send() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        reader = threading.Thread(target=_drain, args=(listener,))
        reader.start()
        with socket.create_connection(listener.getsockname()) as sock:
            sock.sendall(payload)
        reader.join()
        listener.close()
    return send


def _drain(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        buffer = bytearray(1 << 20)
        while connection.recv_into(buffer):
            pass


def measure_send(payload: bytes, repeats: int) -> tuple[float, float]:
    # the sending thread's CPU only: the receiver drains in a thread of its own
    return _timed(_tcp_send(payload), repeats, cpu_clock=time.thread_time)


def measure(repeats: int) -> list[Stage]:
    renderer = FrameRenderer("SIM01", seed=5)
    cards = _cards()
    frames = {name: _render(renderer, scene)() for name, scene in SCENES.items()}
    frame8 = _render(renderer, DarkScene(), bits=8)()
    hdr_frame = _hdr_frame(renderer)
    plain = bytes(fits.build_fits(frames["dark"], cards))
    plain8 = bytes(fits.build_fits(frame8, cards))
    b64 = pybase64.b64encode(plain)
    merged, splice = hdr.merge_hdr(hdr_frame, None)
    low, high = hdr._channel_views(hdr_frame)
    stages: list[tuple[str, str, Callable[[], object]]] = [
        *[(f"render_{name}", f"render 2048x2048 16-bit {name} (simulator)",
           _render(renderer, scene)) for name, scene in SCENES.items()],
        ("render_8bit", "render 2048x2048 8-bit dark (simulator)",
         _render(renderer, DarkScene(), bits=8)),
        ("render_hdr", "render 4096x2048 HDR bright flat (simulator)",
         _render(renderer, FlatScene(HDR_FLAT_E_PER_S), read_mode=0)),
        ("hdr_fit", "HDR splice fit (k, b)",
         lambda: hdr.fit_splice(*hdr._fit_sample(low, high), hdr_frame.offset, splice)),
        ("hdr_merge", "HDR merge 4096x2048 -> 2048x2048 (fit + splice)",
         lambda: hdr.merge_hdr(hdr_frame, None, splice)),
        ("fits_header", "FITS header (cached cards)",
         lambda: fits.build_fits(frame8[:1, :1], cards)),
        ("fits_16", "FITS 2048x2048 16-bit (header + big-endian pixels)",
         lambda: fits.build_fits(frames["dark"], cards)),
        ("fits_8", "FITS 2048x2048 8-bit", lambda: fits.build_fits(frame8, cards)),
        *[(f"rice_{name}", f"RICE_1 .fits.fz 2048x2048 16-bit {name}",
           (lambda f=frame: fits.encode_frame(f, cards, compress=True)))
          for name, frame in frames.items()],
        ("rice_hdr", "RICE_1 .fits.fz merged HDR 2048x2048",
         lambda: fits.encode_frame(merged, cards, compress=True)),
        ("coder_ours", "RICE_1 coder alone, one thread, dark: ours (numba)",
         lambda: rice.encode_tiles(frames["dark"], fits.FZ_TILE_ROWS, fits.RICE_BLOCK_PIXELS)),
        ("coder_cfitsio", "RICE_1 coder alone, one thread, dark: cfitsio's (the fallback)",
         lambda: fits.cfitsio_tiles(frames["dark"])),
        ("base64_16", "base64 of the 16-bit FITS (pybase64)", lambda: pybase64.b64encode(plain)),
        ("base64_8", "base64 of the 8-bit FITS", lambda: pybase64.b64encode(plain8)),
        ("memfd_16", "shared-memory copy of a 16-bit FITS not built in a memfd (old kernels)",
         lambda: SharedBuffers([plain]).close()),
        ("stream_8bit", "live: 16-bit frame to its top byte (.stream)",
         lambda: stream_frames.to_8bit(frames["dark"])),
        ("stream_mjpeg", "live: MJPEG of the 8-bit frame (.stream_jpg)",
         lambda: stream_frames.encode_mjpeg(frame8)),
    ]
    results = []
    for key, label, work in stages:
        cpu_ms, wall_ms = _timed(work, repeats)
        results.append(Stage(key, label, cpu_ms, wall_ms))
    cpu_ms, wall_ms = measure_send(b64, repeats)
    results.append(Stage("tcp_16", "loopback TCP send of the 16-bit base64 (sender only)",
                         cpu_ms, wall_ms))
    cpu_ms, wall_ms = measure_send(pybase64.b64encode(plain8), repeats)
    results.append(Stage("tcp_8", "loopback TCP send of the 8-bit base64", cpu_ms, wall_ms))
    return results


# ---- the budget per mode ------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    label: str
    fps: float
    per_frame: tuple[str, ...]  # stage keys, summed per frame (no render: a real camera)
    clients: int = 1  # the send is per client


MODES: Final[tuple[Mode, ...]] = (
    Mode("single frames 16-bit .fits, 1 client, 24/s", 24,
         ("fits_16", "base64_16", "tcp_16")),
    Mode("single frames 16-bit .fits, 4 clients, 24/s", 24,
         ("fits_16", "base64_16", "tcp_16"), clients=4),
    Mode("single frames 16-bit .fits.fz (RICE), 1 client, 24/s", 24,
         ("rice_dark", "tcp_8")),  # compressed dark ~ the size of an 8-bit frame
    Mode("single frames 8-bit .fits, 1 client, 48/s", 48, ("fits_8", "base64_8", "tcp_8")),
    Mode("HDR merged 2048x2048 .fits, 1 client, 12/s", 12,
         ("hdr_merge", "fits_16", "base64_16", "tcp_16")),
    Mode("live 16-bit as .stream (8-bit), 1 client, 24/s", 24,
         ("stream_8bit", "base64_8", "tcp_8")),
    Mode("live 8-bit MJPEG preview, 1 client, 24/s", 24,
         ("stream_mjpeg",)),  # a JPEG is ~1/10 of the frame: its base64 and send are small
    Mode("local saving only, 16-bit .fits, 24/s", 24, ("fits_16",)),
    # the FITS is built in the memfd the client is given, which comes back once it lets go
    Mode("local client (shared memory), 16-bit .fits, 24/s", 24, ("fits_16",)),
)


def budget(stages: Sequence[Stage], pi_factor: float) -> list[tuple[str, float, float]]:
    cpu = {stage.key: stage.cpu_ms for stage in stages}
    rows = []
    for mode in MODES:
        per_frame = sum(cpu[key] for key in mode.per_frame)
        if mode.clients > 1:  # base64 made once; the send is per client
            per_frame += (mode.clients - 1) * cpu["tcp_16"]
        per_second = per_frame * mode.fps
        rows.append((mode.label, per_second, per_second * pi_factor))
    return rows


def print_tables(stages: Sequence[Stage], pi_factor: float) -> None:
    width = max(len(stage.label) for stage in stages)
    print(f"{'stage (one frame)':<{width}}  CPU ms  wall ms")
    for stage in stages:
        print(f"{stage.label:<{width}}  {stage.cpu_ms:6.1f}  {stage.wall_ms:7.1f}")
    print()
    rows = budget(stages, pi_factor)
    width = max(len(label) for label, _, _ in rows)
    print(f"{'mode at full rate, real camera (no render)':<{width}}  CPU ms/s here  "
          f"Pi estimate (x{pi_factor:g})")
    for label, here, pi in rows:
        print(f"{label:<{width}}  {here:13.0f}  {pi:20.0f}")
    print("1000 ms/s is one core. The Pi column is an estimate from these stages, not a "
          "measurement on a Pi.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--pi-factor", type=float, default=PI_FACTOR)
    parser.add_argument("--json", action="store_true", help="one JSON record instead")
    args = parser.parse_args(argv)
    stages = measure(QUICK_REPEATS if args.quick else REPEATS)
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "pi_factor": args.pi_factor,
                          "stages": [asdict(stage) for stage in stages],
                          "budget": budget(stages, args.pi_factor)}))
    else:
        print_tables(stages, args.pi_factor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
