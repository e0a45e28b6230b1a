"""The benchmark runner: our daemon and the C++ stack, same client, one table side by side.

`python -m bench.run` (or `make bench`; `make bench ARGS=--quick` for one short run) starts,
for every scenario and run, a fresh server: ours (`qhy42-indi serve`, simulator backend) and
`indiserver indi_simulator_ccd`, each with a temporary HOME, on a free port, reached over
127.0.0.1. It drives both with bench.client (the commanding client in this process, listeners
as `python -m bench.client listen` processes), samples the server processes from /proc
(CPU time of the server and its children, VmRSS every 50 ms), prints the machine and one table
with medians and ratios, then the live-video rows (bench/stream_rate.py) and the ping
round trip of a second client under load (bench/ping.py), the HTTP front-ends' rows (Alpaca
against INDI, bench/alpaca_rate.py; an open web page, bench/web_cost.py), and writes everything to
bench/results/<timestamp>.json.

Every wait is bounded, and servers, listeners and sockets are stopped at the end, error or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pybase64

from bench import alpaca_rate, ping, stages, stream_rate, targets, web_cost
from bench.client import (
    BLOB_MODES,
    DEFAULT_TIMEOUT_S,
    MB,
    BenchError,
    BlobClient,
    BlobMode,
    ClientRecord,
    Frame,
    Unsupported,
    open_stalled_client,
)
from bench.scenarios import (
    BASELINE_KEY,
    EXPOSURE_S,
    SCENARIOS,
    SIDE_LABELS,
    SIDES,
    Scenario,
    Side,
    by_key,
)

HOST: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parents[1]
VENV_BIN: Final = Path(sys.executable).parent
RESULTS_DIR: Final = REPO / "bench" / "results"
CPP_DEVICE: Final = "CCD Simulator"
OURS_DEVICE: Final = "QHY CCD QHY42PRO-SIM01"
SAMPLE_S: Final = 0.05
TREE_REFRESH_S: Final = 1.0
THREAD_SHOWN_MS: Final = 0.1  # per frame: threads below this are left out of the breakdown
START_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 5.0
LISTENER_GRACE_S: Final = 5.0  # for listeners to take in the last frame
MIB: Final = 1024 * 1024
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


# ---- /proc ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime
    start_ticks: int  # with pid, identifies the process (pids are reused)


def read_stat(pid: int) -> ProcStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 of proc(5)
    return ProcStat(pid, int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))


def process_tree(root: int) -> list[int]:
    """root and all its descendants (scans /proc: this kernel may lack task/*/children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def process_name(pid: int) -> str:
    """argv[0]'s file name, or the script's for an interpreter (python .../qhy42-indi)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    names = [os.path.basename(arg.decode(errors="replace")) for arg in argv if arg]
    if not names:
        return str(pid)
    if names[0].startswith("python") and len(names) > 1:
        return names[1]
    return names[0]


def vmrss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def cpu_ms_by_name(pids: Sequence[int], names: Mapping[int, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid in pids:
        stat = read_stat(pid)
        if stat is not None:
            name = names.get(pid, str(pid))
            out[name] = out.get(name, 0.0) + stat.cpu_ticks * 1000 / CLOCK_TICKS
    return out


def thread_cpu_ms(pids: Sequence[int], names: Mapping[int, str]) -> dict[str, float]:
    """CPU ms of the live threads of pids by thread name (schedstat, nanoseconds): a
    process's main thread under the process's name, the others under their kernel names
    without the pool's `_<n>` (the daemon names its threads: qhy42-sim, qhy42-work, ...)."""
    out: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    ns = int(Path(task.path, "schedstat").read_text().split()[0])
                    if int(task.name) == pid:
                        name = names.get(pid, str(pid))
                    else:
                        name = re.sub(r"_\d+$", "", Path(task.path, "comm").read_text().strip())
                    out[name] = out.get(name, 0.0) + ns / 1e6
    return out


def cpu_ms_threads(pids: Sequence[int]) -> float:
    """CPU time of the live threads of pids, from /proc/PID/task/TID/schedstat (nanoseconds,
    where /proc/PID/stat counts 10 ms ticks): for short, nearly idle windows."""
    total_ns = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total_ns += int(Path(task.path, "schedstat").read_text().split()[0])
    return total_ns / 1e6


def server_side_socket(server_port: int, client_port: int) -> tuple[bool, int]:
    """Whether a server process still holds the socket of the connection from client_port
    (an orphaned socket, closed by its process, shows inode 0), and its send queue bytes."""
    held, queued = False, 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port):
                queued = max(queued, int(fields[4].split(":")[0], 16))
                held = held or fields[9] != "0"
    return held, queued


# ---- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ours_argv(port: int, workdir: Path, extra: Sequence[str] = ()) -> list[str]:
    # Like indiserver's -u below: its own local socket, not the shared default.
    script = VENV_BIN / "qhy42-indi"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "qhy42_indi.cli"]
    return [*command, "serve", "--host", HOST, "--port", str(port), "--local-socket",
            str(workdir / "qhy42.sock"), "--backend", "simulator", "--device-name", OURS_DEVICE,
            *extra]


def cpp_argv(port: int, workdir: Path, extra: Sequence[str] = ()) -> list[str]:
    # -u: its own local socket (abstract namespace), so concurrent indiservers do not clash.
    # indiserver 1.9.9 has no option to bind one address: it listens on all of them.
    indiserver = shutil.which("indiserver") or "indiserver"
    return [indiserver, "-p", str(port), "-u", str(workdir / "indiserver.sock"),
            "indi_simulator_ccd"]


def ours_driver_argv(port: int, workdir: Path, extra: Sequence[str] = ()) -> list[str]:
    """indiserver running our driver. indiserver passes a driver no options, so what the
    daemon gets as flags (`extra`: --sim-instant-readout) goes in a configuration file
    (QHY42_INDI_CONFIG, DRIVER_ENV), and the device name in INDIDEV."""
    instant = "true" if "--sim-instant-readout" in extra else "false"
    (workdir / "driver.toml").write_text(
        f'[camera]\nbackend = "simulator"\ninstant_readout = {instant}\n')
    indiserver = shutil.which("indiserver") or "indiserver"
    return [indiserver, "-p", str(port), "-u", str(workdir / "indiserver.sock"),
            "indi_qhy42_ccd"]


def ours_driver_env(workdir: Path) -> dict[str, str]:
    return {"QHY42_INDI_CONFIG": str(workdir / "driver.toml"), "INDIDEV": OURS_DEVICE}


@dataclass(frozen=True)
class SideSpec:
    side: Side
    device: str
    argv: Callable[[int, Path, Sequence[str]], list[str]]
    env: Callable[[Path], dict[str, str]] | None = None


SIDE_SPECS: Final[dict[Side, SideSpec]] = {
    "cpp": SideSpec("cpp", CPP_DEVICE, cpp_argv),
    "ours": SideSpec("ours", OURS_DEVICE, ours_argv),
}
# Ours in a scenario with ours_under_indiserver.
OURS_UNDER_INDISERVER: Final = SideSpec("ours", OURS_DEVICE, ours_driver_argv, ours_driver_env)


class ServerProcess:
    """One server with a temporary HOME and a log; stop() ends it and its children."""

    def __init__(self, spec: SideSpec, workdir: Path, extra: Sequence[str] = ()) -> None:
        self.spec = spec
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "server.log"
        home = workdir / "home"
        home.mkdir()
        env = dict(os.environ, HOME=str(home))
        env.pop("INDIDEV", None)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        argv = spec.argv(self.port, workdir, extra)
        if spec.env is not None:
            env.update(spec.env(workdir))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=home)
        self.known: dict[int, ProcStat] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"server exited ({self.process.returncode}) before listening")
            try:
                async with asyncio.timeout(0.5):
                    _, writer = await asyncio.open_connection(HOST, self.port)
                writer.close()
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
        raise BenchError(f"nothing listened on {HOST}:{self.port} in {START_TIMEOUT_S:g} s")

    def remember_tree(self) -> list[int]:
        pids = process_tree(self.pid)
        for pid in pids:
            stat = read_stat(pid)
            if stat is not None:
                self.known.setdefault(pid, stat)
        return pids

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.remember_tree()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        # Children (indi_simulator_ccd) leave when their pipes close; end any that stays.
        for pid, stat in self.known.items():
            if pid != self.pid:
                _end_process(pid, stat)


def _same_process(pid: int, stat: ProcStat) -> bool:
    now = read_stat(pid)
    return now is not None and now.start_ticks == stat.start_ticks


def _end_process(pid: int, stat: ProcStat) -> None:
    for sig, grace_s in ((None, 2.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if not _same_process(pid, stat):
            return
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _same_process(pid, stat):
            time.sleep(0.05)


# ---- sampling ---------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """VmRSS of the server's processes every 50 ms (total and per process name, last and
    peak), and, when told to watch a connection, the moment the server lets go of it."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.server = server
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.pids = server.remember_tree()
        self.names = {pid: process_name(pid) for pid in self.pids}
        self.samples = 0
        self.last_kib: dict[str, int] = {}
        self.peak_total_kib = 0
        self.peak_kib: dict[str, int] = {}
        self._watch: tuple[int, int] | None = None
        self.dropped_at: float | None = None
        self.max_queued_bytes = 0
        self._seen_held = False

    def run(self) -> None:
        refresh_at = time.monotonic() + TREE_REFRESH_S
        while not self._halt.is_set():
            now = time.monotonic()
            if now >= refresh_at:
                self._refresh_tree()
                refresh_at = now + TREE_REFRESH_S
            self._sample(now)
            self._halt.wait(SAMPLE_S)

    def _refresh_tree(self) -> None:
        pids = self.server.remember_tree()
        names = {pid: self.names.get(pid) or process_name(pid) for pid in pids}
        with self._lock:
            self.pids, self.names = pids, names

    def _sample(self, now: float) -> None:
        with self._lock:
            pids, names = list(self.pids), dict(self.names)
        by_name: dict[str, int] = {}
        for pid in pids:
            kib = vmrss_kib(pid)
            if kib is not None:
                by_name[names[pid]] = by_name.get(names[pid], 0) + kib
        with self._lock:
            self.samples += 1
            self.last_kib = by_name
            self.peak_total_kib = max(self.peak_total_kib, sum(by_name.values()))
            for name, kib in by_name.items():
                self.peak_kib[name] = max(self.peak_kib.get(name, 0), kib)
            watch = self._watch if self.dropped_at is None else None
        if watch is not None:
            held, queued = server_side_socket(*watch)
            with self._lock:
                self.max_queued_bytes = max(self.max_queued_bytes, queued)
                if held:
                    self._seen_held = True
                elif self._seen_held:
                    self.dropped_at = now

    def watch_connection(self, server_port: int, client_port: int) -> None:
        with self._lock:
            self._watch = (server_port, client_port)

    def cpu_ms(self) -> dict[str, float]:
        with self._lock:
            pids, names = list(self.pids), dict(self.names)
        return cpu_ms_by_name(pids, names)

    def cpu_ms_threads(self) -> float:
        with self._lock:
            pids = list(self.pids)
        return cpu_ms_threads(pids)

    def cpu_ms_by_thread(self) -> dict[str, float]:
        with self._lock:
            pids, names = list(self.pids), dict(self.names)
        return thread_cpu_ms(pids, names)

    def rss_now(self) -> dict[str, int]:
        with self._lock:
            return dict(self.last_kib)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(2.0)


# ---- listeners --------------------------------------------------------------------------------


class Listener:
    """A `python -m bench.client listen` process. It writes JSON lines (ready, then result) to
    a file, read by polling: a plain Popen, so asyncio's child watcher and subprocess never
    race to reap the same child."""

    POLL_S: Final = 0.02

    def __init__(self, process: subprocess.Popen[bytes], out_path: Path) -> None:
        self.process = process
        self.out_path = out_path
        self.result: dict[str, Any] | None = None

    @classmethod
    def start(cls, port: int, device: str, blob_mode: BlobMode, frames: int,
              timeout_s: float, max_seconds: float, workdir: Path, index: int) -> Listener:
        out_path = workdir / f"listener-{index}.jsonl"
        with open(out_path, "wb") as out, open(workdir / f"listener-{index}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.client", "listen", "--host", HOST,
                 "--port", str(port), "--device", device, "--blob-mode", blob_mode,
                 "--frames", str(frames), "--timeout", str(timeout_s),
                 "--max-seconds", str(max_seconds)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        return cls(process, out_path)

    def _events(self) -> list[str]:
        """The events written so far (complete lines only); keeps the result."""
        try:
            lines = self.out_path.read_text().splitlines(keepends=True)
        except OSError:
            return []
        events = []
        for line in lines:
            if not line.endswith("\n"):
                break
            payload = json.loads(line)
            events.append(str(payload.get("event")))
            if payload.get("event") == "result":
                self.result = payload["record"]
        return events

    async def ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while "ready" not in self._events():
            if self.result is not None:
                raise BenchError(f"a listener failed: {self.result.get('error')}")
            if self.process.poll() is not None:
                raise BenchError(f"a listener exited ({self.process.returncode}) before ready")
            if time.monotonic() > deadline:
                raise BenchError(f"a listener was not ready within {timeout_s:g} s")
            await asyncio.sleep(self.POLL_S)

    async def _ended(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(self.POLL_S)
        return True

    async def finish(self, timeout_s: float) -> dict[str, Any] | None:
        """Wait up to timeout_s for it to end by itself (all frames in), then stop it."""
        if not await self._ended(timeout_s):
            self.process.terminate()  # it prints what it got, then exits
            await self._ended(STOP_TIMEOUT_S)
        self.kill()
        with contextlib.suppress(ValueError):
            self._events()
        return self.result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT_S)


# ---- one run ----------------------------------------------------------------------------------


@dataclass
class Options:
    runs: int
    quick: bool
    blob_mode: BlobMode
    timeout_s: float
    idle_s: float
    budget_s: float


@dataclass
class RunResult:
    status: str = "ok"  # ok | n/a | error
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def _mib(kib: Mapping[str, int]) -> dict[str, float]:
    return {name: value / 1024 for name, value in kib.items()}


def _frames_before(frames: Sequence[Frame], moment: float) -> int:
    return sum(1 for frame in frames if frame.decoded_at <= moment)


async def run_once(spec: SideSpec, scenario: Scenario, opts: Options) -> RunResult:
    frames = scenario.quick_frames if opts.quick else scenario.frames
    settings = scenario.settings[spec.side]()
    if spec.side == "ours" and scenario.ours_under_indiserver:
        spec = OURS_UNDER_INDISERVER
    with tempfile.TemporaryDirectory(prefix=f"qhy42-bench-{spec.side}-") as tmp:
        workdir = Path(tmp)
        server = ServerProcess(spec, workdir,
                               scenario.ours_args if spec.side == "ours" else ())
        sampler: Sampler | None = None
        local_path = None
        if scenario.local:
            # the -u / --local-socket path each server was started with (abstract socket)
            local_path = str(workdir / ("qhy42.sock" if spec.side == "ours"
                                        else "indiserver.sock"))
        client = BlobClient(HOST, server.port, spec.device, blob_mode=opts.blob_mode,
                            timeout_s=opts.timeout_s, local_path=local_path)
        listeners: list[Listener] = []
        stalled: socket.socket | None = None
        figures: dict[str, Any] = {}
        try:
            await server.wait_ready()
            sampler = live = Sampler(server)
            live.start()
            await client.open()
            await client.connect_device()
            if scenario.measure_idle:
                await asyncio.sleep(0.5)  # let the CONNECT work finish
                cpu0, t0 = live.cpu_ms_threads(), time.monotonic()
                await asyncio.sleep(opts.idle_s)
                cpu1, t1 = live.cpu_ms_threads(), time.monotonic()
                figures["idle_cpu_ms_per_s"] = (cpu1 - cpu0) / (t1 - t0)
                idle = sampler.rss_now()
                figures["rss_idle_mib"] = sum(idle.values()) / 1024
                figures["rss_idle_mib_by_process"] = _mib(idle)
            await client.configure(settings)
            await client.enable_blobs()
            for index in range(scenario.listeners):
                listeners.append(Listener.start(
                    server.port, spec.device, opts.blob_mode, 1 + frames, opts.timeout_s,
                    opts.budget_s + 4 * opts.timeout_s, workdir, index))
            for listener in listeners:
                await listener.ready(opts.timeout_s)
            if scenario.stalled:
                stalled = open_stalled_client(HOST, server.port, spec.device, opts.timeout_s)
                sampler.watch_connection(server.port, stalled.getsockname()[1])
                await asyncio.sleep(0.3)  # its getProperties and enableBLOB are taken in
            marks: dict[str, dict[str, float]] = {}
            record = await client.expose(
                EXPOSURE_S, frames, warmup=1, budget_s=opts.budget_s,
                on_started=lambda: marks.update(cpu=live.cpu_ms(),
                                                threads=live.cpu_ms_by_thread()))
            listener_records = [await listener.finish(LISTENER_GRACE_S)
                                for listener in listeners]
            cpu_end = sampler.cpu_ms()
            threads_end = sampler.cpu_ms_by_thread()
            sampler.stop()
            _commander_figures(figures, record)
            if record.error is not None and not record.frames:
                raise BenchError(record.error)
            timed = len(record.frames)
            cpu_start = marks.get("cpu", {})
            by_process = {name: (cpu_end.get(name, 0.0) - cpu_start.get(name, 0.0)) / timed
                          for name in cpu_end}
            figures["cpu_ms_per_frame"] = sum(by_process.values())
            figures["cpu_ms_per_frame_by_process"] = by_process
            threads_start = marks.get("threads", {})
            by_thread = {name: (ms - threads_start.get(name, 0.0)) / timed
                         for name, ms in threads_end.items()}
            figures["cpu_ms_per_frame_by_thread"] = {
                name: ms for name, ms in by_thread.items() if ms >= THREAD_SHOWN_MS}
            figures["rss_peak_mib"] = sampler.peak_total_kib / 1024
            figures["rss_peak_mib_by_process"] = _mib(sampler.peak_kib)
            figures["rss_samples"] = sampler.samples
            if listeners:
                _listener_figures(figures, record, listener_records)
            if scenario.stalled:
                _stall_figures(figures, record, sampler)
            return RunResult(figures=figures)
        except Unsupported as error:
            return RunResult("n/a", str(error), figures)
        except (BenchError, OSError, TimeoutError, ValueError) as error:
            # ValueError: a listener wrote something that is not JSON
            tail = server.log_tail()
            return RunResult("error", f"{error}" + (f" [server log: {tail}]" if tail else ""),
                             figures)
        finally:
            if stalled is not None:
                stalled.close()
            for listener in listeners:
                listener.kill()
            await client.close()
            if sampler is not None:
                sampler.stop()
            server.stop()


def _commander_figures(figures: dict[str, Any], record: ClientRecord) -> None:
    summary = record.summary()
    figures.update(fps=summary["fps"], mb_per_s=summary["mb_per_s"],
                   latency_median_ms=summary["latency_median_ms"],
                   latency_p95_ms=summary["latency_p95_ms"], frames=summary["frames"],
                   truncated=record.truncated, commander_error=record.error,
                   notes=record.notes)
    if record.frames:
        figures["blob_format"] = record.frames[0].format
        figures["blob_bytes"] = statistics.median(frame.nbytes for frame in record.frames)
    figures["commander"] = record.to_dict()


def _listener_figures(figures: dict[str, Any], record: ClientRecord,
                      listener_records: Sequence[dict[str, Any] | None]) -> None:
    summaries = []
    everyone = True
    for raw in listener_records:
        if raw is None:
            everyone = False
            summaries.append({"error": "no result"})
            continue
        listener = ClientRecord(
            "listen", raw["device"], raw["blob_mode"], raw["warmup"],
            frames=[Frame(**frame) for frame in raw["frames"]],
            command_times=list(record.command_times), error=raw["error"])
        summary = listener.summary(record.started_at)
        summary["error"] = raw["error"]
        everyone = everyone and summary["frames"] == len(record.frames)
        summaries.append(summary)
    rates = [figures["mb_per_s"]] + [s.get("mb_per_s") for s in summaries]
    known = [rate for rate in rates if rate is not None]
    figures["mb_per_s_all_clients"] = sum(known)
    figures["mb_per_s"] = statistics.mean(known) if known else None
    figures["every_client_got_every_frame"] = everyone
    figures["listeners"] = summaries


def _stall_figures(figures: dict[str, Any], record: ClientRecord, sampler: Sampler) -> None:
    stall: dict[str, Any] = {"dropped": sampler.dropped_at is not None,
                             "max_kernel_queue_bytes": sampler.max_queued_bytes}
    if sampler.dropped_at is not None and record.started_at is not None:
        stall["dropped_after_s"] = sampler.dropped_at - record.started_at
        stall["dropped_after_frames"] = _frames_before(record.frames, sampler.dropped_at)
    figures["stall"] = stall


# ---- all runs, medians ------------------------------------------------------------------------


MEDIAN_FIGURES: Final = ("fps", "mb_per_s", "mb_per_s_all_clients", "latency_median_ms",
                         "latency_p95_ms", "cpu_ms_per_frame", "rss_peak_mib", "rss_idle_mib",
                         "idle_cpu_ms_per_s", "blob_bytes")
MEDIAN_BREAKDOWNS: Final = ("cpu_ms_per_frame_by_process", "cpu_ms_per_frame_by_thread",
                            "rss_peak_mib_by_process", "rss_idle_mib_by_process")


def median_figures(runs: Sequence[RunResult]) -> dict[str, Any]:
    ok = [run.figures for run in runs if run.status == "ok"]
    out: dict[str, Any] = {"runs_ok": len(ok)}
    if not ok:
        return out
    for key in MEDIAN_FIGURES:
        values = [fig[key] for fig in ok if fig.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    for key in MEDIAN_BREAKDOWNS:
        names = list(dict.fromkeys(name for fig in ok for name in fig.get(key, {})))
        if names:
            out[key] = {name: statistics.median(fig[key][name] for fig in ok
                                                if name in fig.get(key, {}))
                        for name in names}
    out["blob_format"] = ok[0].get("blob_format")
    out["truncated_runs"] = sum(1 for fig in ok if fig.get("truncated"))
    if any("every_client_got_every_frame" in fig for fig in ok):
        out["every_client_got_every_frame"] = all(
            fig.get("every_client_got_every_frame") for fig in ok)
    stalls = [fig["stall"] for fig in ok if "stall" in fig]
    if stalls:
        dropped = [stall for stall in stalls if stall["dropped"]]
        out["stall"] = {"dropped_runs": len(dropped), "runs": len(stalls),
                        "max_kernel_queue_bytes": max(s["max_kernel_queue_bytes"]
                                                      for s in stalls)}
        if dropped:
            out["stall"]["dropped_after_s"] = statistics.median(
                s["dropped_after_s"] for s in dropped if "dropped_after_s" in s)
            out["stall"]["dropped_after_frames"] = statistics.median(
                s["dropped_after_frames"] for s in dropped if "dropped_after_frames" in s)
    return out


@dataclass
class SideOutcome:
    runs: list[RunResult] = field(default_factory=list)
    median: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if any(run.status == "ok" for run in self.runs):
            return "ok"
        return self.runs[-1].status if self.runs else "skipped"

    @property
    def reason(self) -> str | None:
        failed = [run for run in self.runs if run.status != "ok"]
        return failed[-1].reason if failed else None


async def run_all(scenarios: Sequence[Scenario], sides: Sequence[Side], opts: Options,
                  log: Callable[[str], None]) -> dict[str, dict[Side, SideOutcome]]:
    results: dict[str, dict[Side, SideOutcome]] = {}
    for scenario in scenarios:
        outcomes = {side: SideOutcome() for side in sides}
        results[scenario.key] = outcomes
        if scenario.placeholder:
            continue
        for run in range(opts.runs):
            for side in sides:  # alternate, so drift hits both sides alike
                outcome = outcomes[side]
                if outcome.runs and outcome.runs[-1].status != "ok":
                    continue  # n/a or broken: more runs would say the same
                started = time.monotonic()
                result = await run_once(SIDE_SPECS[side], scenario, opts)
                outcome.runs.append(result)
                fps = result.figures.get("fps")
                what = f"{fps:.1f} frames/s" if fps else (result.reason or "")
                log(f"  {scenario.key:7} run {run + 1}/{opts.runs} {SIDE_LABELS[side]:4} "
                    f"{result.status:5} {what[:150]} ({time.monotonic() - started:.1f} s)")
        for outcome in outcomes.values():
            outcome.median = median_figures(outcome.runs)
    return results


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str
    key: str
    higher_is_better: bool | None  # None: no ratio
    fmt: str = "{:.1f}"
    breakdown: str | None = None


COMMON_FIGURES: Final = (
    Figure("frames/s", "fps", True),
    Figure("decoded MB/s per client", "mb_per_s", True),
    Figure("latency median, ms (command -> decoded)", "latency_median_ms", False, "{:.0f}"),
    Figure("latency p95, ms", "latency_p95_ms", False, "{:.0f}"),
    Figure("server CPU per frame, ms", "cpu_ms_per_frame", False,
           breakdown="cpu_ms_per_frame_by_process"),
    Figure("server RSS peak, MiB", "rss_peak_mib", False, "{:.0f}",
           breakdown="rss_peak_mib_by_process"),
    Figure("image per frame, MB (format)", "blob_bytes", None),
)
IDLE_FIGURES: Final = (
    Figure("idle CPU, connected, default polling, ms/s", "idle_cpu_ms_per_s", False, "{:.2f}"),
    Figure("server RSS idle, MiB", "rss_idle_mib", False, "{:.1f}",
           breakdown="rss_idle_mib_by_process"),
)


def _cell(median: Mapping[str, Any], figure: Figure) -> str:
    value = median.get(figure.key)
    if value is None:
        return "n/a"
    if figure.key == "blob_bytes":
        return f"{value / MB:.2f} ({median.get('blob_format')})"
    text = figure.fmt.format(value)
    parts = median.get(figure.breakdown or "", {})
    if len(parts) > 1:
        text += " (" + "+".join(figure.fmt.format(parts[name]) for name in parts) + ")"
    return text


def _ratio(cpp: Any, ours: Any, higher_is_better: bool | None) -> str:
    if higher_is_better is None or not cpp or not ours:
        return "-"
    return f"{(ours / cpp) if higher_is_better else (cpp / ours):.2f}"


def _better(higher_is_better: bool | None) -> str:
    return {True: "higher", False: "lower", None: ""}[higher_is_better]


def table_rows(scenarios: Sequence[Scenario], results: Mapping[str, Mapping[Side, SideOutcome]],
               opts: Options) -> list[list[str]]:
    rows: list[list[str]] = []
    baseline = results.get(BASELINE_KEY, {})
    for scenario in scenarios:
        outcomes = results[scenario.key]
        cpp = outcomes.get("cpp", SideOutcome())
        ours = outcomes.get("ours", SideOutcome())
        frames = scenario.quick_frames if opts.quick else scenario.frames
        if scenario.placeholder:
            rows.append([f"{scenario.title}", "", "", "", "", ""])
            rows.append(["  (all figures)", "n/a", "n/a", "-", "", ""])
            rows.append([f"  {scenario.placeholder}", "", "", "", "", ""])
            continue
        rows.append([f"{scenario.title} ({frames} frames, median of runs: "
                     f"C++ {cpp.median.get('runs_ok', 0)}, ours {ours.median.get('runs_ok', 0)})",
                     "", "", "", "", ""])
        if cpp.status != "ok" and ours.status != "ok":
            rows.append(["  (all figures)", "n/a", "n/a", "-", "", ""])
            continue
        figures = list(COMMON_FIGURES)
        if scenario.measure_idle:
            figures += IDLE_FIGURES
        for figure in figures:
            label = figure.label
            if scenario.listeners and figure.key == "mb_per_s":
                label += " (mean of all)"
            rows.append([f"  {label}", _side_cell(cpp, figure), _side_cell(ours, figure),
                         _ratio(cpp.median.get(figure.key), ours.median.get(figure.key),
                                figure.higher_is_better), _better(figure.higher_is_better)])
        threads = ours.median.get("cpu_ms_per_frame_by_thread") if ours.status == "ok" else None
        if threads:
            rows.append(["  ours, server CPU per frame by thread, ms: "
                         f"{targets.thread_text(threads)}",
                         "", "", "", ""])
        if scenario.listeners:
            figure = Figure("decoded MB/s, all clients together", "mb_per_s_all_clients", True)
            rows.append([f"  {figure.label}", _side_cell(cpp, figure), _side_cell(ours, figure),
                         _ratio(cpp.median.get(figure.key), ours.median.get(figure.key), True),
                         "higher"])
            rows.append(["  every client got every frame",
                         _yes_no(cpp, "every_client_got_every_frame"),
                         _yes_no(ours, "every_client_got_every_frame"), "-", ""])
        if scenario.stalled:
            rows += _stall_rows(cpp, ours, baseline)
    return rows


def _side_cell(outcome: SideOutcome, figure: Figure) -> str:
    if outcome.status != "ok":
        return outcome.status
    return _cell(outcome.median, figure)


def _yes_no(outcome: SideOutcome, key: str) -> str:
    if outcome.status != "ok" or key not in outcome.median:
        return outcome.status if outcome.status != "ok" else "n/a"
    return "yes" if outcome.median[key] else "no"


def _stall_fraction(outcome: SideOutcome, baseline: SideOutcome | None) -> float | None:
    fps = outcome.median.get("fps")
    base = baseline.median.get("fps") if baseline else None
    return fps / base if fps and base else None


def _stall_cell(outcome: SideOutcome) -> str:
    stall = outcome.median.get("stall")
    if outcome.status != "ok" or stall is None:
        return outcome.status
    if not stall["dropped_runs"]:
        return f"no (0/{stall['runs']} runs)"
    return (f"after {stall.get('dropped_after_s', float('nan')):.1f} s, "
            f"{stall.get('dropped_after_frames', 0):.0f} frames ({stall['dropped_runs']}/"
            f"{stall['runs']} runs)")


def _stall_rows(cpp: SideOutcome, ours: SideOutcome,
                baseline: Mapping[Side, SideOutcome]) -> list[list[str]]:
    fractions = [_stall_fraction(cpp, baseline.get("cpp")),
                 _stall_fraction(ours, baseline.get("ours"))]
    cells = [f"{value:.2f}" if value is not None else "n/a" for value in fractions]
    return [
        ["  normal client frames/s / its 1-client rate", *cells,
         _ratio(fractions[0], fractions[1], True), "higher"],
        ["  stalled client dropped", _stall_cell(cpp), _stall_cell(ours), "-", ""],
    ]


def render_table(rows: Sequence[Sequence[str]]) -> str:
    header = ["scenario / figure", "C++", "ours", "ratio", "better"]
    body = [[row[0], row[1], row[2], row[3], row[4]] for row in rows]
    data = [line for line in body if line[1] or line[2]]
    widths = [max(len(line[i]) for line in [header, *data]) for i in range(5)]
    widths[0] = max(widths[0], 44)
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                       for i, cell in enumerate(header))]
    lines.append("-" * len(lines[0]))
    for line in body:
        if not (line[1] or line[2]):
            lines.append(line[0])
            continue
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(line)))
    return "\n".join(lines)


def footnotes(scenarios: Sequence[Scenario],
              results: Mapping[str, Mapping[Side, SideOutcome]]) -> list[str]:
    notes = []
    if any(s.stalled for s in scenarios) and BASELINE_KEY not in results:
        notes.append(f"the stalled-client fraction needs scenario {BASELINE_KEY} in the same run")
    for scenario in scenarios:
        for side, outcome in results[scenario.key].items():
            if outcome.reason:
                kind = "n/a" if outcome.status == "n/a" else "error"
                notes.append(f"{scenario.key} {SIDE_LABELS[side]} {kind}: {outcome.reason}")
            for run in outcome.runs:
                error = run.figures.get("commander_error")
                if run.status == "ok" and error:
                    notes.append(f"{scenario.key} {SIDE_LABELS[side]}: a run ended early "
                                 f"({run.figures.get('frames')} frames): {error}")
            if outcome.median.get("truncated_runs"):
                notes.append(f"{scenario.key} {SIDE_LABELS[side]}: time budget cut "
                             f"{outcome.median['truncated_runs']} run(s) short")
    return notes


# ---- the machine ------------------------------------------------------------------------------


def _command_output(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip() or None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    indi = _command_output(["dpkg-query", "-W", "-f", "${Version}", "indi-bin"])
    commit = _command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(REPO), "status", "--porcelain"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / MIB, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "pybase64": getattr(pybase64, "__version__", "?"),
        "indi_bin": indi,
        "commit": f"{commit}{'+dirty' if dirty else ''}" if commit else None,
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def machine_line(info: Mapping[str, Any]) -> str:
    return (f"machine: {info['cpu']}, {info['cores_usable']} of {info['cores']} cores, "
            f"{info['memory_gib']} GiB, {info['os']} (kernel {info['kernel']}); Python "
            f"{info['python']}, pybase64 {info['pybase64']}; indi-bin {info['indi_bin']}; "
            f"qhy42-indi {info['commit']}")


# ---- main -------------------------------------------------------------------------------------


def _jsonable(results: Mapping[str, Mapping[Side, SideOutcome]],
              scenarios: Sequence[Scenario], opts: Options) -> list[dict[str, Any]]:
    out = []
    for scenario in scenarios:
        frames = scenario.quick_frames if opts.quick else scenario.frames
        entry: dict[str, Any] = {"key": scenario.key, "title": scenario.title,
                                 "frames": frames, "listeners": scenario.listeners,
                                 "stalled": scenario.stalled,
                                 "placeholder": scenario.placeholder, "sides": {}}
        for side, outcome in results[scenario.key].items():
            entry["sides"][side] = {
                "status": outcome.status, "reason": outcome.reason, "median": outcome.median,
                "runs": [{"status": run.status, "reason": run.reason, **run.figures}
                         for run in outcome.runs]}
        out.append(entry)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one run per scenario, fewer frames")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 3, quick 1)")
    parser.add_argument("--no-stream", action="store_true",
                        help="skip the live-video rows (bench/stream_rate.py)")
    parser.add_argument("--no-ping", action="store_true",
                        help="skip the ping-under-load rows (bench/ping.py)")
    parser.add_argument("--no-fronts", action="store_true",
                        help="skip the Alpaca and web page rows (bench/alpaca_rate.py, "
                             "bench/web_cost.py)")
    parser.add_argument("--no-stages", action="store_true",
                        help="skip the per-stage CPU, the Pi budget and the targets "
                             "(bench/stages.py, bench/targets.py)")
    parser.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS),
                        help="comma-separated keys (default all: %(default)s)")
    parser.add_argument("--sides", default=",".join(SIDES), help="cpp,ours (default both)")
    parser.add_argument("--blob-mode", choices=BLOB_MODES, default="also",
                        help="also: enableBLOB Also; kstars: main Never + a second "
                             "connection Only for CCD1")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="bound on each wait, s (default %(default)s)")
    parser.add_argument("--budget", type=float,
                        help="time budget of the timed frames of one run, s (default 40, "
                             "quick 15)")
    parser.add_argument("--idle-seconds", type=float,
                        help="idle CPU window (default 3, quick 1)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    scenarios = by_key([key for key in args.scenarios.split(",") if key])
    sides: list[Side] = [side for side in SIDES if side in args.sides.split(",")]
    if not sides:
        raise SystemExit(f"--sides: choose among {', '.join(SIDES)}")
    opts = Options(
        runs=args.runs or (1 if args.quick else 3), quick=args.quick, blob_mode=args.blob_mode,
        timeout_s=args.timeout, idle_s=args.idle_seconds or (1.0 if args.quick else 3.0),
        budget_s=args.budget or (15.0 if args.quick else 40.0))
    if "cpp" in sides and shutil.which("indiserver") is None:
        raise SystemExit("indiserver is not installed (Debian package indi-bin): run "
                         "`make system-deps`, or pass --sides ours")
    info = machine()
    print(machine_line(info), flush=True)
    print(f"workload: dark frames, exposure {EXPOSURE_S} s, polling 10 ms, 1 warm-up frame, "
          f"back-to-back; BLOBs {opts.blob_mode}; {opts.runs} run(s) per scenario, each on a "
          f"fresh server", flush=True)
    started = time.monotonic()
    results = await run_all(scenarios, sides, opts, lambda line: print(line, flush=True))
    elapsed = time.monotonic() - started
    print()
    print(render_table(table_rows(scenarios, results, opts)))
    print("ratio > 1: ours is better (ours/C++ where higher is better, C++/ours where lower "
          "is better). Breakdowns in brackets: indiserver + indi_simulator_ccd.")
    for note in footnotes(scenarios, results):
        print(f"note: {note}")
    stream_records = await live_stream_rows(sides, opts) if not args.no_stream else []
    ping_records = await ping_rows(sides, opts) if not args.no_ping else []
    alpaca_records, web_records = await front_rows(opts) if not args.no_fronts else ([], [])
    stage_record = await stage_rows(results, opts) if not args.no_stages else None
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.results_dir / f"{stamp}.json"
    payload = {"timestamp": dt.datetime.now().astimezone().isoformat(), "machine": info,
               "options": {**vars(opts)}, "sides": {side: {
                   "device": SIDE_SPECS[side].device,
                   "argv": SIDE_SPECS[side].argv(0, Path("<tmp>"), ())} for side in sides},
               "elapsed_s": elapsed, "scenarios": _jsonable(results, scenarios, opts),
               "live_stream": [asdict(record) for record in stream_records],
               "ping": [asdict(record) for record in ping_records],
               "alpaca": alpaca_records, "web_page": web_records,
               "stages": stage_record}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"results: {path} ({elapsed:.0f} s)")
    return 0


async def front_rows(opts: Options) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Our HTTP front-ends, on our daemon only (the C++ stack has neither): a frame by Alpaca
    ImageBytes and JSON against the FITS over INDI, and what an open web page costs."""
    print()
    alpaca = await alpaca_rate.run(opts.quick)
    alpaca_rate.print_rows(alpaca)
    print()
    web = await web_cost.run(opts.quick)
    web_cost.print_table(web)
    return alpaca, web


async def live_stream_rows(sides: Sequence[Side], opts: Options) -> list[stream_rate.Record]:
    """Issue 6's row: sustained live-video frames/s (2048x2048 16-bit) to one and to four
    clients, both sides, measured by bench/stream_rate.py."""
    seconds = 3.0 if opts.quick else 5.0
    records = []
    for side in sides:
        for clients in (1, 4):
            try:
                records.append(await stream_rate.run_one(side, stream_rate.MODES["std16"],
                                                         clients, seconds))
            except (RuntimeError, OSError, TimeoutError) as error:
                records.append(stream_rate.Record(side, "std16", clients, seconds, None, None,
                                                  None, None, None, str(error)))
    print()
    print("live video, 2048x2048 16-bit (python -m bench.stream_rate):")
    stream_rate.print_table(records)
    return records


async def ping_rows(sides: Sequence[Side], opts: Options) -> list[ping.Record]:
    """The ping round trip of a second client while the server works (bench/ping.py)."""
    seconds = ping.QUICK_SECONDS if opts.quick else ping.SECONDS
    print()
    print(f"ping round trip of a second client under load, {seconds:g} s each "
          f"(python -m bench.ping):", flush=True)
    records = await ping.run_all(sides, ping.WORKLOADS, ping.RunOptions(seconds),
                                 lambda line: print(line, flush=True))
    print(ping.table(records))
    return records


async def stage_rows(results: Mapping[str, Mapping[Side, SideOutcome]],
                     opts: Options) -> dict[str, Any] | None:
    """CPU per stage of the frame path (bench/stages.py, in a process of its own, with the
    servers stopped), the Pi budget from it, and the targets judged on this run."""
    argv = [sys.executable, "-m", "bench.stages", "--json", *(["--quick"] if opts.quick else [])]
    process = await asyncio.create_subprocess_exec(*argv, cwd=REPO,
                                                   stdout=asyncio.subprocess.PIPE)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    except TimeoutError:
        process.kill()
        await process.wait()
        print("stages: bench.stages did not finish in 300 s")
        return None
    if process.returncode != 0:
        print(f"stages: bench.stages failed (exit {process.returncode})")
        return None
    record: dict[str, Any] = json.loads(output)
    found = [stages.Stage(**stage) for stage in record["stages"]]
    print()
    print("CPU per stage of one frame, and the budget per mode (python -m bench.stages):")
    stages.print_tables(found, float(record["pi_factor"]))
    figures: dict[str, dict[str, dict[str, Any]]] = {
        key: {str(side): outcome.median for side, outcome in sides.items()}
        for key, sides in results.items()}
    print()
    print("targets (this run):")
    print(targets.render(targets.rows(figures, {s.key: s.cpu_ms for s in found})))
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(_guarded(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every server and client it started is stopped",
              file=sys.stderr)
        return 130


async def _guarded(args: argparse.Namespace) -> int:
    """SIGTERM cancels the run like Ctrl-C, so the finally blocks stop every server."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    return await _main(args)


if __name__ == "__main__":
    sys.exit(main())
