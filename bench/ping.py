"""Responsiveness under load: the ping round trip a second INDI client sees while the server
streams images.

```
.venv/bin/python -m bench.ping                          # both sides, every workload, 10 s each
.venv/bin/python -m bench.ping --quick --sides ours     # 3 s windows
.venv/bin/python -m bench.ping --workloads x4 --diagnose    # ours under bench.loop_watch
```

For each side and workload: a fresh server on 127.0.0.1 with a temporary HOME (the one
bench/stream_rate.py starts), a commanding client (this process) that sets the camera up and
starts the work, the probe, and the downloading clients (`python -m bench.client listen`,
BLOBs `Also`), each a process of its own. The probe connects first, as a KStars main
connection would be there before the images start: it asks for the device's properties (BLOBs
Never) and, once frames have flowed for a warm-up, sends `<pingRequest uid='...'/>` every
10-30 ms (random, so it does not lock onto the frame cadence), timing each `<pingReply>`. The
figures: pings, p50, p99 and max round trip in ms, pings without a reply within 5 s, and the
frames per second each downloader decoded in the probe's window, how many of them the server
dropped for lagging, and for SER the MB recorded.

Workloads (ours; the C++ stack, `indiserver indi_simulator_ccd`, gets 2048x2048 16-bit frames
to the same clients, its exposures back to back from the commanding client):
  hdr  READ_MODE 0 (HDR) merged into 2048x2048 16-bit (HDR_MERGED), a bright flat (LG ~ 270,
       HG ~ 2000 ADU12: the splice is fitted on every frame), 0.01 s fast exposures
       (CCD_FAST_COUNT) at the camera's own rate, 1 client downloads
  x4   STD 2048x2048 16-bit dark, 0.1 s fast exposures (about 7 frames/s), 4 clients download
  ser  STD 2048x2048 16-bit live video at the camera's 24 frames/s, recorded to SER in the
       run's temporary directory, 1 client watches the stream

The downloaders run at nice 10: on a 2-core machine they are the load, not the thing under
test (at the telescope the clients are on other machines), so the probe and the server get
the CPU first when they wake up. `--no-nice` keeps them at normal priority.

`--diagnose` starts ours through bench.loop_watch, which logs where the loop stalled (file,
function, line, and whether the loop thread was working, short of a CPU or waiting for the
GIL); the report is printed after the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import stream_rate
from bench.client import (
    BenchError,
    BlobClient,
    Link,
    Setting,
    percentile,
    wait,
)
from bench.scenarios import (
    EXPOSURE_S,
    READ_MODE_HDR,
    READ_MODE_STD,
    SIDES,
    Side,
    cpp_settings,
    switch_on,
)
from qhy42_indi.indi.messages import GetProperties, IndiMessage, PingReply, PingRequest

HOST: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parents[1]
DEVICES: Final[dict[Side, str]] = {"cpp": stream_rate.CPP_DEVICE, "ours": stream_rate.OURS_DEVICE}
SECONDS: Final = 10.0
QUICK_SECONDS: Final = 3.0
WARMUP_S: Final = 2.0  # frames flowing to every downloader before the probe starts
PING_GAP_S: Final = (0.010, 0.030)
PING_TIMEOUT_S: Final = 5.0
WAIT_S: Final = 20.0
GO_FILE: Final = "go"  # created in the run's directory when the probe is to start timing
FAST_COUNT: Final = 100_000  # more frames than any window takes: the run aborts the rest
BRIGHT_FLAT_E_PER_S: Final = 300_000.0  # 3000 e- in 0.01 s: inside both channels' fit range
STREAM_FPS: Final = 24.0
X4_EXPOSURE_S: Final = 0.1
LOAD_NICE: Final = 10
MB: Final = 1e6


def _fast(count: int = FAST_COUNT) -> list[Setting]:
    return [Setting("CCD_FAST_TOGGLE", switch_on("INDI_ENABLED")),
            Setting("CCD_FAST_COUNT", {"FRAMES": count})]


def _ours_frames(read_mode: int, scene: str, extra: Sequence[Setting] = ()) -> list[Setting]:
    return [Setting("READ_MODE", {"MODE": read_mode}), *extra,
            Setting("CCD_CAPTURE_FORMAT", switch_on("INDI_MONO_16")),
            Setting("SIM_SCENE", switch_on(scene)),
            Setting("CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1}),
            Setting("CCD_FRAME", {"X": 0, "Y": 0, "WIDTH": 2048, "HEIGHT": 2048})]


def _ours_hdr(_: Path) -> list[Setting]:
    merged = Setting("HDR_OUTPUT", switch_on("HDR_MERGED"))
    return [*_ours_frames(READ_MODE_HDR, "SCENE_FLAT", [merged]),
            Setting("SIM_FLAT_LEVEL", {"LEVEL": BRIGHT_FLAT_E_PER_S}),
            Setting("CCD_FRAME_TYPE", switch_on("FRAME_FLAT")), *_fast()]


def _ours_std(_: Path) -> list[Setting]:
    return [*_ours_frames(READ_MODE_STD, "SCENE_DARK"),
            Setting("CCD_FRAME_TYPE", switch_on("FRAME_DARK")), *_fast()]


def _record_file(workdir: Path) -> Setting:
    return Setting("RECORD_FILE", {"RECORD_FILE_DIR": str(workdir / "ser"),
                                   "RECORD_FILE_NAME": "ping_bench"})


def _ours_ser(workdir: Path) -> list[Setting]:
    return [*_ours_frames(READ_MODE_STD, "SCENE_DARK"),
            Setting("USB_SPEED", {"SPEED": 1}),  # the 24 frames/s line period
            Setting("STREAMING_EXPOSURE", {"STREAMING_EXPOSURE_VALUE": 0.001}),
            _record_file(workdir)]


def _cpp_frames(_: Path) -> list[Setting]:
    return cpp_settings(2048, 2048)


def _cpp_ser(workdir: Path) -> list[Setting]:
    return [*cpp_settings(2048, 2048),
            Setting("LIMITS", {"LIMITS_PREVIEW_FPS": 120}),
            Setting("STREAMING_EXPOSURE", {"STREAMING_EXPOSURE_VALUE": 1 / STREAM_FPS}),
            _record_file(workdir)]


RECORD: Final = (Setting("CCD_VIDEO_STREAM", switch_on("STREAM_ON")),
                 Setting("RECORD_STREAM", switch_on("RECORD_ON")))
STOP_RECORD: Final = (Setting("RECORD_STREAM", switch_on("RECORD_OFF")),
                      Setting("CCD_VIDEO_STREAM", switch_on("STREAM_OFF")))
ABORT: Final = (Setting("CCD_ABORT_EXPOSURE", switch_on("ABORT")),)


@dataclass(frozen=True)
class Workload:
    """Exposures (`exposure_s`: ours takes them as fast exposures, CCD_FAST_COUNT, at the
    camera's own rate; the C++ simulator's fast exposure stalls after a frame or two, so it
    gets back-to-back CCD_EXPOSURE commands from this process), or, with `records`, live
    video recorded to SER under <workdir>/ser."""

    key: str
    title: str
    downloaders: int
    setup: Mapping[Side, Callable[[Path], list[Setting]]]  # each applied and answered
    exposure_s: float | None = None
    records: bool = False

    def start(self, side: Side) -> Sequence[Setting]:
        """Sent in order; the first answer of each, Busy or not, will do."""
        if self.records:
            return RECORD
        if side == "ours" and self.exposure_s is not None:
            return (Setting("CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": self.exposure_s}),)
        return ()

    def stop(self, side: Side) -> Sequence[Setting]:
        if self.records:
            return STOP_RECORD
        return ABORT if side == "ours" and self.exposure_s is not None else ()

    def commands_exposures(self, side: Side) -> bool:
        return side != "ours" and self.exposure_s is not None


WORKLOADS: Final[tuple[Workload, ...]] = (
    Workload("hdr", "HDR merged 2048x2048, bright flat, 0.01 s fast exposures, 1 client",
             1, {"ours": _ours_hdr, "cpp": _cpp_frames}, exposure_s=EXPOSURE_S),
    # 0.1 s: about 7 frames/s, which four Python clients on these two cores can take in; at
    # the camera's 24 frames/s they fall 128 MiB behind and the server drops them.
    Workload("x4", "STD 2048x2048 16-bit, 0.1 s fast exposures, 4 clients download",
             4, {"ours": _ours_std, "cpp": _cpp_frames}, exposure_s=X4_EXPOSURE_S),
    Workload("ser", "STD 2048x2048 video 24 frames/s, SER recording, 1 client watches",
             1, {"ours": _ours_ser, "cpp": _cpp_ser}, records=True),
)


@dataclass
class Record:
    side: str
    workload: str
    seconds: float
    pings: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lost: int = 0
    client_fps: list[float] = field(default_factory=list)  # per downloader, in the window
    dropped: int = 0  # downloaders the server disconnected (too far behind)
    recorded_mb: float | None = None
    error: str | None = None
    diagnosis: str | None = None


# ---- the probe (its own process) ---------------------------------------------------------------


async def probe(port: int, device: str, seconds: float, go: Path | None = None,
                ready: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Connect, take the device's definitions, call `ready`, wait for the file `go` (if
    given), then ping for `seconds`; the round trips in ms and the window (monotonic s)."""
    link = await Link.open(HOST, port, device, WAIT_S)
    rtts: list[float] = []
    lost = 0
    try:
        link.send(GetProperties(device=device))
        await link.ping(WAIT_S)  # its definitions are in
        ready()
        if go is not None:
            await _wait_for_file(go, 4 * WAIT_S)
        began = time.monotonic()
        ends = began + seconds
        while time.monotonic() < ends:
            rtt = await _one_ping(link, f"probe-{len(rtts) + lost}")
            if rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
            await asyncio.sleep(random.uniform(*PING_GAP_S))
        return {"began": began, "ended": time.monotonic(), "rtts_ms": rtts, "lost": lost}
    finally:
        await link.close()


async def _wait_for_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"no {path.name} within {timeout_s:g} s")
        await asyncio.sleep(0.01)


async def _one_ping(link: Link, uid: str) -> float | None:
    def answers(message: IndiMessage) -> bool:
        return isinstance(message, PingReply) and message.uid == uid

    reply = link.expect(answers)
    sent = time.perf_counter()
    link.send(PingRequest(uid))
    try:
        await wait(reply, PING_TIMEOUT_S, "pingReply")
    except BenchError:
        if link.closed.done():
            raise
        return None
    return (time.perf_counter() - sent) * 1e3


# ---- processes -------------------------------------------------------------------------------


class JsonProcess:
    """A child that prints JSON lines to a file (polled: no pipe to fill, no reaping race)."""

    def __init__(self, argv: Sequence[str], out_path: Path) -> None:
        self.out_path = out_path
        with open(out_path, "wb") as out, open(out_path.with_suffix(".log"), "wb") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=log)

    def events(self) -> list[dict[str, Any]]:
        with contextlib.suppress(OSError):
            lines = self.out_path.read_text().splitlines(keepends=True)
            return [json.loads(line) for line in lines if line.endswith("\n")]
        return []

    async def event(self, name: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events() if e.get("event") == name]
            if found:
                return found[-1]
            if self.process.poll() is not None:
                raise BenchError(f"{self.out_path.stem} exited ({self.process.returncode}) "
                                 f"without {name}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"no {name} from {self.out_path.stem} within {timeout_s:g} s")
            await asyncio.sleep(0.02)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.out_path.with_suffix(".log").read_text().splitlines()[-3:])
        return ""

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def _downloader(port: int, device: str, workdir: Path, index: int, nice: bool,
                max_seconds: float) -> JsonProcess:
    argv = [sys.executable, "-m", "bench.client", "listen", "--host", HOST, "--port", str(port),
            "--device", device, "--blob-mode", "also", "--timeout", str(WAIT_S),
            "--max-seconds", str(max_seconds)]
    if nice and shutil.which("nice"):
        argv = ["nice", "-n", str(LOAD_NICE), *argv]
    return JsonProcess(argv, workdir / f"downloader-{index}.jsonl")


def _probe(port: int, device: str, workdir: Path, seconds: float) -> JsonProcess:
    argv = [sys.executable, "-m", "bench.ping", "probe", "--port", str(port),
            "--device", device, "--seconds", str(seconds), "--go", str(workdir / GO_FILE)]
    return JsonProcess(argv, workdir / "probe.jsonl")


# ---- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    seconds: float
    warmup_s: float = WARMUP_S
    nice: bool = True
    diagnose: bool = False


async def run_one(side: Side, workload: Workload, opts: RunOptions) -> Record:
    record = Record(side, workload.key, opts.seconds)
    with tempfile.TemporaryDirectory(prefix=f"qhy42-ping-{side}-") as tmp:
        workdir = Path(tmp)
        log_path = workdir / "server.log"
        watched = opts.diagnose and side == "ours"
        module = "bench.loop_watch" if watched else "qhy42_indi.cli"
        try:
            with stream_rate.server(side, module=module, log_path=log_path) as (_, port):
                await _measure(record, side, workload, opts, workdir, port)
        except (BenchError, OSError, RuntimeError, TimeoutError, ValueError) as error:
            record.error = str(error)  # ValueError: a child wrote something that is not JSON
        if watched:
            record.diagnosis = _loop_watch_report(log_path)
        if workload.records:
            record.recorded_mb = sum(p.stat().st_size for p in workdir.rglob("*.ser*")) / MB
    return record


async def _measure(record: Record, side: Side, workload: Workload, opts: RunOptions,
                   workdir: Path, port: int) -> None:
    device = DEVICES[side]
    (workdir / "ser").mkdir()
    client = BlobClient(HOST, port, device, timeout_s=WAIT_S)
    processes: list[JsonProcess] = []
    exposing: asyncio.Task[None] | None = None
    try:
        await client.open()
        await client.connect_device()
        await client.configure(workload.setup[side](workdir))
        probe_process, loads = await _start_clients(port, device, workload, opts, workdir,
                                                    processes)
        for setting in workload.start(side):
            await client.command(setting)
        if workload.commands_exposures(side):
            assert workload.exposure_s is not None
            exposing = asyncio.create_task(_keep_exposing(client, workload.exposure_s))
        await asyncio.sleep(opts.warmup_s)
        (workdir / GO_FILE).touch()
        result = await probe_process.event("result", opts.seconds + 2 * WAIT_S)
        if exposing is not None:
            await _cancel_and_wait(exposing)
        for setting in workload.stop(side):
            with contextlib.suppress(BenchError):
                await client.command(setting)
        _ping_figures(record, result)
        await _download_figures(record, loads, result["began"], result["ended"])
    finally:
        if exposing is not None:
            await _cancel_and_wait(exposing)
        for process in processes:
            process.kill()
        await client.close()


async def _start_clients(port: int, device: str, workload: Workload, opts: RunOptions,
                         workdir: Path, started: list[JsonProcess],
                         ) -> tuple[JsonProcess, list[JsonProcess]]:
    """The probe, connected and holding the definitions, then the downloaders, each ready;
    every process goes into `started` as soon as it exists, for the caller to stop."""
    probe_process = _probe(port, device, workdir, opts.seconds)
    started.append(probe_process)
    await probe_process.event("ready", WAIT_S)
    budget_s = opts.warmup_s + opts.seconds + 4 * WAIT_S
    loads = []
    for index in range(workload.downloaders):
        loads.append(_downloader(port, device, workdir, index, opts.nice, budget_s))
        started.append(loads[-1])
    for load in loads:
        await load.event("ready", WAIT_S)
    return probe_process, loads


async def _keep_exposing(client: BlobClient, exposure_s: float) -> None:
    """Back-to-back exposures: the next as soon as CCD_EXPOSURE leaves Busy (image sent)."""
    while True:
        await client.expose_once(exposure_s)


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _ping_figures(record: Record, result: Mapping[str, Any]) -> None:
    if result.get("error"):
        raise BenchError(f"probe: {result['error']}")
    rtts = [float(value) for value in result["rtts_ms"]]
    record.pings, record.lost = len(rtts), int(result["lost"])
    if rtts:
        record.p50_ms = statistics.median(rtts)
        record.p99_ms = percentile(rtts, 99)
        record.max_ms = max(rtts)


async def _download_figures(record: Record, loads: Sequence[JsonProcess], began: float,
                            ended: float) -> None:
    """Each downloader's frames/s inside the probe's window, and how many the server
    dropped."""
    for load in loads:
        load.terminate()  # it prints what it got, then exits
    for load in loads:
        result = (await load.event("result", WAIT_S))["record"]
        inside = sum(1 for frame in result["frames"] if began <= frame["decoded_at"] <= ended)
        record.client_fps.append(inside / (ended - began))
        record.dropped += bool(result["closed_by_server"])


def _loop_watch_report(log_path: Path) -> str | None:
    with contextlib.suppress(OSError):
        lines = log_path.read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("loop watch:")]
        if starts:
            report = lines[starts[0]:]
            return "\n".join(line for line in report if line.startswith(("loop watch", "  ")))
    return None


# ---- all of them, the table ------------------------------------------------------------------


async def run_all(sides: Sequence[Side], workloads: Sequence[Workload], opts: RunOptions,
                  log: Callable[[str], None] = print) -> list[Record]:
    records = []
    for workload in workloads:
        for side in sides:
            started = time.monotonic()
            record = await run_one(side, workload, opts)
            records.append(record)
            what = (record.error or "")[:150] if record.error else (
                f"p99 {record.p99_ms:.1f} ms" if record.p99_ms is not None else "no pings")
            log(f"  ping {workload.key:4} {side:4} {what} ({time.monotonic() - started:.1f} s)")
    return records


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def table(records: Sequence[Record]) -> str:
    """One row per run: the round trips, and what the downloaders got meanwhile."""
    titles = {w.key: w.title for w in WORKLOADS}
    header = (f"{'workload':66} {'side':4} {'pings':>5} {'p50 ms':>6} {'p99 ms':>6} "
              f"{'max ms':>6} {'lost':>4}  clients f/s [dropped] (SER MB)")
    lines = [header, "-" * len(header)]
    for r in records:
        title = f"{r.workload}: {titles.get(r.workload, '')}"
        if r.error:
            lines.append(f"{title:66} {r.side:4}  n/a: {r.error[:200]}")
            continue
        lines.append(f"{title:66} {r.side:4} {r.pings:5d} {_ms(r.p50_ms):>6} "
                     f"{_ms(r.p99_ms):>6} {_ms(r.max_ms):>6} {r.lost:4d}  {_load_cell(r)}")
    if any(r.side == "cpp" for r in records):
        lines.append("C++: indi_simulator_ccd's 2048x2048 16-bit frames (no HDR merge), "
                     "exposures back to back from the commanding client (its fast exposure "
                     "stalls)")
    if any(r.dropped for r in records):
        lines.append("[dropped]: downloaders the server disconnected for lagging past its "
                     "bound (the probe connected before them)")
    for r in records:
        if r.diagnosis:
            lines += ["", f"{r.workload} {r.side}:", r.diagnosis]
    return "\n".join(lines)


def _load_cell(r: Record) -> str:
    text = " ".join(f"{rate:.1f}" for rate in r.client_fps) or "-"
    if r.dropped:
        text += f" [{r.dropped} dropped]"
    if r.recorded_mb is not None:
        text += f" ({r.recorded_mb:.0f} MB)"
    return text


def by_key(keys: Sequence[str]) -> list[Workload]:
    known = {w.key: w for w in WORKLOADS}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise SystemExit(f"unknown workload {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[key] for key in keys]


# ---- command line ------------------------------------------------------------------------------


def _emit(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _probe_main(args: argparse.Namespace) -> int:
    try:
        result = await probe(args.port, args.device, args.seconds, args.go,
                             lambda: _emit({"event": "ready"}))
    except BenchError as error:
        result = {"error": str(error)}
    _emit({"event": "result", **result})
    return 0 if "error" not in result else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ping", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("probe", help="(internal) the pinging client")
    one.add_argument("--port", type=int, required=True)
    one.add_argument("--device", required=True)
    one.add_argument("--seconds", type=float, required=True)
    one.add_argument("--go", type=Path, help="start timing when this file exists")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s windows")
    parser.add_argument("--seconds", type=float, help=f"probe window (default {SECONDS:g})")
    parser.add_argument("--warmup", type=float, default=WARMUP_S,
                        help="seconds of frames before the probe starts (default %(default)s)")
    parser.add_argument("--sides", default=",".join(SIDES), help="cpp,ours (default both)")
    parser.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS))
    parser.add_argument("--no-nice", action="store_true",
                        help="downloaders at normal priority, not nice 10")
    parser.add_argument("--diagnose", action="store_true",
                        help="ours under bench.loop_watch: where the loop stalled")
    parser.add_argument("--json", type=Path, help="also write the records here")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> RunOptions:
    seconds = args.seconds or (QUICK_SECONDS if args.quick else SECONDS)
    return RunOptions(seconds=seconds, warmup_s=args.warmup, nice=not args.no_nice,
                      diagnose=args.diagnose)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "probe":
        return asyncio.run(_probe_main(args))
    sides: list[Side] = [side for side in SIDES if side in args.sides.split(",")]
    if "cpp" in sides and shutil.which("indiserver") is None:
        print("ping: indiserver is not installed: the C++ side is skipped", file=sys.stderr)
        sides.remove("cpp")
    records = asyncio.run(run_all(sides, by_key(args.workloads.split(",")), options(args)))
    print(table(records))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    return 0 if all(r.error is None for r in records) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sys.exit(main())
