"""Live-stream rate: sustained video frames per second from the server to one and to four clients.

```
.venv/bin/python -m bench.stream_rate                        # ours, std16, 1 and 4 clients, 5 s
.venv/bin/python -m bench.stream_rate --sides ours,cpp --modes std16,std8,hdr --seconds 10
.venv/bin/python -m bench.stream_rate --json bench/results/stream.json
```

For each side, mode and client count: a fresh server on 127.0.0.1 with a temporary HOME
(ours: `qhy42-indi serve`, simulator, no local socket; C++: `indiserver indi_simulator_ccd`),
a commanding client that sets the camera up and turns CCD_VIDEO_STREAM on, and N listener
processes (`python -m bench.stream_rate listen ...`) that each take CCD1 with
`enableBLOB ... Only` as KStars' video connection does, decode every frame's base64 with
pybase64 and count the frames that arrive inside one measurement window (CLOCK_MONOTONIC,
which processes on one machine share), after a warm-up.

Modes (ours; the camera's own rates, reference qhy-sdk-and-drivers.md 6.1):
  std16  STD 2048x2048, 16-bit, USB_SPEED 1: 24 frames/s, streamed as 8-bit (4 MiB a frame)
  std8   STD 2048x2048, 8-bit, USB_SPEED 2:  48 frames/s (4 MiB a frame)
  hdr    HDR 4096x2048, 16-bit, USB_SPEED 1: 12 frames/s (8 MiB a frame)
The C++ simulator gets the same frame size (SIMULATOR_SETTINGS), STREAMING_EXPOSURE at the
same target rate and LIMITS_PREVIEW_FPS 120 (its default 10 would cap it).

Figures per run: the camera's frames/s (the server's FPS.AVG_FPS), per-client frames/s (mean
and the slowest client), decoded MB/s per client, and the server's CPU per delivered frame
(utime + stime of the server and its children from /proc, over the window). Every wait is
bounded; servers and listeners are stopped at the end, on error and on Ctrl-C.

To put it in bench/run.py's table: `measure(side, mode, clients, seconds)` returns one record
(a dict of the figures above) and `ROW_FIGURES` names them with the direction that is better.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pybase64

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    IndiMessage,
    NumberElement,
    SetVector,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser

HOST = "127.0.0.1"
OURS_DEVICE = "QHY CCD QHY42PRO-SIM01"
CPP_DEVICE = "CCD Simulator"
WAIT_S = 30.0
WARMUP_S = 1.5
READ_CHUNK = 1 << 20

# (figure, higher is better): for a table beside bench/run.py's
ROW_FIGURES = (("camera_fps", True), ("client_fps_mean", True), ("client_fps_min", True),
               ("client_mb_s", True), ("server_cpu_ms_per_frame", False))


@dataclass(frozen=True)
class Mode:
    key: str
    title: str
    width: int
    height: int
    read_mode: int
    bits: int
    speed: int
    frames_per_s: float  # the camera's rate in this mode


MODES = {
    "std16": Mode("std16", "STD 2048x2048 16-bit", 2048, 2048, 1, 16, 1, 24.0),
    "std8": Mode("std8", "STD 2048x2048 8-bit", 2048, 2048, 1, 8, 2, 48.0),
    "hdr": Mode("hdr", "HDR 4096x2048 16-bit", 4096, 2048, 0, 16, 1, 12.0),
}


# ---- a small INDI connection ------------------------------------------------------------------


class Link:
    """One INDI connection: send XML text, keep what arrives (frames only counted)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = IndiParser(max_message_bytes=1 << 30)
        self.messages: list[IndiMessage] = []
        self.frames: list[tuple[float, int]] = []  # (arrival, decoded bytes)
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._pump())

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[Link]:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 24)
        link = cls(reader, writer)
        try:
            yield link
        finally:
            link.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.task
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def _pump(self) -> None:
        while data := await self.reader.read(READ_CHUNK):
            for item in self.parser.feed(data):
                if isinstance(item, SetVector) and item.kind is VectorKind.BLOB:
                    blob = item.elements[0]
                    if isinstance(blob, BlobElement) and blob.size:
                        decoded = pybase64.b64decode(bytes(blob.data_b64))
                        self.frames.append((time.monotonic(), len(decoded)))
                elif isinstance(item, IndiMessage):
                    self.messages.append(item)
            self.arrived.set()

    async def wait_for(self, name: str, *, kind: type = SetVector, start: int = 0) -> Any:
        async with asyncio.timeout(WAIT_S):
            while True:
                for message in self.messages[start:]:
                    if isinstance(message, kind) and getattr(message, "name", None) == name:
                        return message
                self.arrived.clear()
                await self.arrived.wait()


async def setting(link: Link, device: str, name: str, kind: str, values: dict[str, Any]) -> None:
    """Send a newXXXVector and wait for its answer (bounded)."""
    tag = {"Number": "Number", "Switch": "Switch", "Text": "Text"}[kind]
    members = "".join(
        f"<one{tag} name='{k}'>{'On' if v is True else v}</one{tag}>" for k, v in values.items())
    start = len(link.messages)
    await link.send(f"<new{tag}Vector device='{device}' name='{name}'>{members}</new{tag}Vector>")
    answer = await link.wait_for(name, start=start)
    if answer.state == "Alert":
        raise RuntimeError(f"{name}: {answer.message}")


# ---- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(side: str, *, module: str = "qhy42_indi.cli", log_path: Path | None = None,
           ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A fresh server with a temporary HOME. Ours runs as `python -m <module> serve ...` (a
    wrapper such as bench.loop_watch can stand in for the CLI); its log goes to `log_path`, or
    into the temporary HOME."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="qhy42-stream-bench-") as home:
        if side == "ours":
            argv = [sys.executable, "-m", module, "serve", "--host", HOST, "--port",
                    str(port), "--backend", "simulator", "--no-local-socket"]
        else:
            indiserver = shutil.which("indiserver")
            if indiserver is None:
                raise RuntimeError("indiserver is not installed (Debian package indi-bin)")
            argv = [indiserver, "-p", str(port), "-u", f"{home}/indiserver",
                    "indi_simulator_ccd"]
        env = {**os.environ, "HOME": home}
        # so that `-m bench.<wrapper>` is found from any working directory
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p)
        with open(log_path or Path(home) / "server.log", "wb") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_listening(process, [port], f"{side} server")
            yield process, port
        finally:
            stop_group(process)


def wait_listening(process: subprocess.Popen[bytes], ports: Sequence[int], what: str) -> None:
    """Until `process` accepts on every port (RuntimeError when it ends or WAIT_S passes)."""
    deadline = time.monotonic() + WAIT_S
    for port in ports:
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port}")
            time.sleep(0.05)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group started with start_new_session; SIGKILL after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def cpu_ms(root: int) -> float:
    """utime + stime of a process and its descendants, in ms."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [root]
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
                if int(stat[1]) == root:  # the parent pid
                    pids.append(int(entry.name))
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
            total += (int(fields[11]) + int(fields[12])) * 1000.0 / tick
    return total


# ---- the run ------------------------------------------------------------------------------------


async def setup(link: Link, side: str, device: str, mode: Mode) -> None:
    await link.send(f"<getProperties version='1.7' device='{device}'/>")
    await link.wait_for("CONNECTION", kind=DefVector)
    await setting(link, device, "CONNECTION", "Switch", {"CONNECT": True})
    await link.wait_for("CCD_VIDEO_STREAM", kind=DefVector)
    await link.send(f"<enableBLOB device='{device}'>Never</enableBLOB>")
    interval_s = 1.0 / mode.frames_per_s
    if side == "ours":
        await setting(link, device, "READ_MODE", "Number", {"MODE": mode.read_mode})
        await setting(link, device, "USB_SPEED", "Number", {"SPEED": mode.speed})
        await setting(link, device, "CCD_CAPTURE_FORMAT", "Switch",
                      {f"INDI_MONO_{mode.bits}": True})
        await setting(link, device, "SIM_SCENE", "Switch", {"SCENE_DARK": True})
        await setting(link, device, "STREAMING_EXPOSURE", "Number",
                      {"STREAMING_EXPOSURE_VALUE": 0.001})
    else:
        await setting(link, device, "SIMULATOR_SETTINGS", "Number",
                      {"SIM_XRES": mode.width, "SIM_YRES": mode.height, "SIM_NOISE": 0})
        await setting(link, device, "LIMITS", "Number", {"LIMITS_PREVIEW_FPS": 120})
        await setting(link, device, "STREAMING_EXPOSURE", "Number",
                      {"STREAMING_EXPOSURE_VALUE": interval_s})


@dataclass
class Record:
    side: str
    mode: str
    clients: int
    seconds: float
    camera_fps: float | None
    client_fps_mean: float | None
    client_fps_min: float | None
    client_mb_s: float | None
    server_cpu_ms_per_frame: float | None
    error: str | None = None


async def run_one(side: str, mode: Mode, clients: int, seconds: float) -> Record:
    device = OURS_DEVICE if side == "ours" else CPP_DEVICE
    with server(side) as (process, port), listeners(port, device, clients) as group:
        async with Link.open(port) as link:
            await setup(link, side, device, mode)
            await group.ready()
            began = time.monotonic() + WARMUP_S
            ends = began + seconds
            group.start(began, ends)
            await setting(link, device, "CCD_VIDEO_STREAM", "Switch", {"STREAM_ON": True})
            await asyncio.sleep(max(0.0, began - time.monotonic()))
            cpu_before = cpu_ms(process.pid)
            fps_start = len(link.messages)
            await asyncio.sleep(max(0.0, ends - time.monotonic()))
            cpu_after = cpu_ms(process.pid)
            rates = [m for m in link.messages[fps_start:]
                     if isinstance(m, SetVector) and m.name == "FPS"]
            await setting(link, device, "CCD_VIDEO_STREAM", "Switch", {"STREAM_OFF": True})
        results = await group.results()
    counts = [r["frames"] for r in results]
    camera_fps = _number(rates[-1], "AVG_FPS") if rates else None
    delivered = sum(counts)
    return Record(
        side=side, mode=mode.key, clients=clients, seconds=seconds, camera_fps=camera_fps,
        client_fps_mean=round(delivered / clients / seconds, 2),
        client_fps_min=round(min(counts) / seconds, 2),
        client_mb_s=round(sum(r["bytes"] for r in results) / clients / seconds / 1e6, 1),
        server_cpu_ms_per_frame=(round((cpu_after - cpu_before) / delivered, 2)
                                 if delivered else None),
    )


def _number(message: SetVector, name: str) -> float | None:
    for element in message.elements:
        if isinstance(element, NumberElement) and element.name == name:
            return round(element.value, 2)
    return None


class ListenerGroup:
    def __init__(self, processes: list[subprocess.Popen[bytes]]) -> None:
        self.processes = processes

    async def ready(self) -> None:
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT_S)
            if line.strip() != b"ready":
                raise RuntimeError(f"a listener did not start: {line!r}")

    def start(self, began: float, ends: float) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{began} {ends}\n".encode())
            process.stdin.flush()

    async def results(self) -> list[dict[str, Any]]:
        out = []
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT_S)
            out.append(json.loads(line))
        return out


@contextlib.contextmanager
def listeners(port: int, device: str, count: int) -> Iterator[ListenerGroup]:
    argv = [sys.executable, "-m", "bench.stream_rate", "listen", "--port", str(port),
            "--device", device]
    processes = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  cwd=Path(__file__).resolve().parent.parent)
                 for _ in range(count)]
    try:
        yield ListenerGroup(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


async def listen(port: int, device: str) -> None:
    """A listener process: connect, take CCD1 only, say ready, count frames in the window
    given on stdin, print one JSON line."""
    async with Link.open(port) as link:
        await link.send(f"<getProperties version='1.7' device='{device}'/>"
                        f"<enableBLOB device='{device}' name='CCD1'>Only</enableBLOB>"
                        "<pingRequest uid='ready'/>")
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        window = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), 600)
        began, ends = map(float, window.split())
        await asyncio.sleep(max(0.0, ends - time.monotonic()) + 0.05)
        inside = [size for arrival, size in link.frames if began <= arrival <= ends]
    print(json.dumps({"frames": len(inside), "bytes": sum(inside)}), flush=True)


# ---- command line -------------------------------------------------------------------------------


def print_table(records: Sequence[Record]) -> None:
    print(f"{'side':5} {'mode':6} {'clients':>7} {'camera f/s':>10} {'client f/s':>10} "
          f"{'slowest':>8} {'MB/s/client':>11} {'CPU ms/frame':>12}")
    for r in records:
        if r.error:
            print(f"{r.side:5} {r.mode:6} {r.clients:7d}  n/a: {r.error}")
            continue
        print(f"{r.side:5} {r.mode:6} {r.clients:7d} {_cell(r.camera_fps):>10} "
              f"{_cell(r.client_fps_mean):>10} {_cell(r.client_fps_min):>8} "
              f"{_cell(r.client_mb_s):>11} {_cell(r.server_cpu_ms_per_frame):>12}")


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def measure(side: str, mode: str, clients: int, seconds: float = 5.0) -> dict[str, Any]:
    """One run as a record of figures (for bench/run.py)."""
    try:
        record = asyncio.run(run_one(side, MODES[mode], clients, seconds))
    except (RuntimeError, OSError, TimeoutError) as error:
        record = Record(side, mode, clients, seconds, None, None, None, None, None, str(error))
    return asdict(record)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_rate", description=__doc__
                                     and __doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    listener = sub.add_parser("listen", help="(internal) one listening client")
    listener.add_argument("--port", type=int, required=True)
    listener.add_argument("--device", required=True)
    parser.add_argument("--sides", default="ours", help="ours,cpp")
    parser.add_argument("--modes", default="std16", help=",".join(MODES))
    parser.add_argument("--clients", default="1,4", help="client counts, e.g. 1,4")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window")
    parser.add_argument("--json", type=Path, help="also write the records here")
    args = parser.parse_args(argv)
    if args.command == "listen":
        asyncio.run(listen(args.port, args.device))
        return 0
    records = [
        Record(**measure(side, mode, int(clients), args.seconds))
        for side in args.sides.split(",") for mode in args.modes.split(",")
        for clients in args.clients.split(",")
    ]
    print_table(records)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in records], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
