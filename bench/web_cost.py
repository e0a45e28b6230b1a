"""What the page costs the camera: INDI frame rate and ping round trip with the page open and
without it, in the same run against the same daemon.

```
.venv/bin/python -m bench.web_cost            # 10 s windows: per workload no page, page, x2
.venv/bin/python -m bench.web_cost --quick    # 3 s windows: per workload no page, page
```

One daemon (simulator, --sim-instant-readout, the page on), 16-bit STD dark frames exposed
back to back by this process: 1024x1024 in 0.01 s ("max", the daemon's own limit) and
2048x2048 in 0.1 s ("paced", about 9 frames/s, the camera sets the rate). In every window: one
downloader (`python -m bench.client listen`, BLOBs Also) and the ping probe of bench/ping.py
(`python -m bench.ping probe`, its own process, a ping every 10-30 ms). In the "page" windows
also a page (`python -m bench.web_cost page`, nice 10, as a browser on another machine takes
none of the Pi's CPU): the WebSocket feed, and each preview's JPEGs fetched as a browser
does. The daemon makes previews only while a page is open, so "no page" windows have none.

The figures: frames/s the downloader decoded in the probe's window, ping p50/p99/max, the
daemon's CPU ms per second, whether the server dropped the downloader for lagging (then the
window's fps says nothing: on 2 cores the downloader is the first to starve), what the page
received, and what a preview cost the daemon's worker thread. `run(quick)` returns the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from bench.client import BenchError, BlobClient, Setting, percentile
from bench.ping import JsonProcess
from bench.scenarios import READ_MODE_STD, switch_on
from bench.stream_rate import OURS_DEVICE, cpu_ms, free_port, stop_group, wait_listening

HOST: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parents[1]
SECONDS: Final = 10.0
QUICK_SECONDS: Final = 3.0
WARMUP_S: Final = 2.0
WAIT_S: Final = 20.0
# workload: (exposure s, frame side px). "max": 1024x1024 frames exposed 0.01 s back to
# back, as fast as the daemon goes (with full frames a Python downloader on 2 cores cannot
# keep up and is dropped); "paced": 2048x2048 0.1 s exposures, about 9 frames/s, where the
# camera sets the rate. A preview costs the same for both (it samples to 1024 pixels).
WORKLOADS: Final = {"max": (0.01, 1024), "paced": (0.1, 2048)}
LOAD_NICE: Final = 10
GO_FILE: Final = "go"
SETUP: Final = [
    Setting("READ_MODE", {"MODE": READ_MODE_STD}),
    Setting("CCD_CAPTURE_FORMAT", switch_on("INDI_MONO_16")),
    Setting("SIM_SCENE", switch_on("SCENE_DARK")),
    Setting("CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1}),
    Setting("CCD_FRAME_TYPE", switch_on("FRAME_DARK")),
]


@contextlib.contextmanager
def _daemon(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    port, web_port = free_port(), free_port()
    argv = [sys.executable, "-m", "qhy42_indi.cli", "serve", "--host", HOST, "--port",
            str(port), "--backend", "simulator", "--no-local-socket", "--sim-instant-readout",
            "--web", "--web-port", str(web_port), "--http-host", HOST]
    env = {**os.environ, "HOME": str(workdir), "QHY42_INDI_CONFIG": ""}
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_listening(process, [port, web_port], "the daemon")
        yield process, port, web_port
    finally:
        stop_group(process)


def _niced(argv: list[str]) -> list[str]:
    return ["nice", "-n", str(LOAD_NICE), *argv] if shutil.which("nice") else argv


def _downloader(port: int, workdir: Path, name: str) -> JsonProcess:
    return JsonProcess([
        sys.executable, "-m", "bench.client", "listen", "--host", HOST, "--port", str(port),
        "--device", OURS_DEVICE, "--blob-mode", "also", "--timeout", str(WAIT_S),
        "--max-seconds", "600"], workdir / f"{name}-downloader.jsonl")


def _probe(port: int, workdir: Path, name: str, seconds: float) -> JsonProcess:
    go = workdir / f"{name}-{GO_FILE}"
    return JsonProcess([sys.executable, "-m", "bench.ping", "probe", "--port", str(port),
                        "--device", OURS_DEVICE, "--seconds", str(seconds), "--go", str(go)],
                       workdir / f"{name}-probe.jsonl")


def _page(web_port: int, workdir: Path, name: str) -> JsonProcess:
    return JsonProcess(_niced([sys.executable, "-m", "bench.web_cost", "page", "--url",
                               f"http://{HOST}:{web_port}/"]), workdir / f"{name}-page.jsonl")


async def _keep_exposing(client: BlobClient, exposure_s: float) -> None:
    while True:
        await client.expose_once(exposure_s)


async def _window(name: str, with_page: bool, seconds: float, workdir: Path,
                  server: subprocess.Popen[bytes], port: int, web_port: int,
                  client: BlobClient, exposure_s: float) -> dict[str, Any]:
    """One window. Its clients connect before the frames flow (a downloader joining a
    stream at full rate starts behind, and the server rightly drops it)."""
    row: dict[str, Any] = {"window": name, "page_open": with_page, "seconds": seconds}
    processes: list[JsonProcess] = []
    exposing: asyncio.Task[None] | None = None
    try:
        probe = _probe(port, workdir, name, seconds)
        processes.append(probe)
        await probe.event("ready", WAIT_S)
        downloader = _downloader(port, workdir, name)
        processes.append(downloader)
        await downloader.event("ready", WAIT_S)
        page = None
        if with_page:
            page = _page(web_port, workdir, name)
            processes.append(page)
            await page.event("ready", WAIT_S)
        exposing = asyncio.create_task(_keep_exposing(client, exposure_s))
        await asyncio.sleep(WARMUP_S)
        cpu_before, began_wall = cpu_ms(server.pid), time.monotonic()
        (workdir / f"{name}-{GO_FILE}").touch()
        result = await probe.event("result", seconds + 2 * WAIT_S)
        cpu_after, ended_wall = cpu_ms(server.pid), time.monotonic()
        await _stop(exposing)
        downloader.terminate()
        if page is not None:
            page.terminate()
        loads = await downloader.event("result", WAIT_S)
        frames = [f for f in loads["record"]["frames"]
                  if result["began"] <= f["decoded_at"] <= result["ended"]]
        rtts = result["rtts_ms"]
        row |= {
            "fps": len(frames) / (result["ended"] - result["began"]),
            "pings": len(rtts), "ping_lost": result["lost"],
            "ping_p50_ms": statistics.median(rtts) if rtts else None,
            "ping_p99_ms": percentile(rtts, 99) if rtts else None,
            "ping_max_ms": max(rtts) if rtts else None,
            "server_cpu_ms_per_s": (cpu_after - cpu_before) / (ended_wall - began_wall),
            # a downloader the server dropped for lagging makes the window's fps meaningless
            "downloader_dropped": bool(loads["record"]["closed_by_server"]),
        }
        if page is not None:
            seen = await page.event("result", WAIT_S)
            costs = seen["preview_cost_ms"]
            row |= {"page_updates": seen["updates"], "page_previews": seen["previews"],
                    "page_kb": round(seen["bytes"] / 1024),
                    "preview_ms": statistics.mean(costs) if costs else None}
    finally:
        if exposing is not None:
            await _stop(exposing)
        for process in processes:
            process.kill()
    return row


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, BenchError):
        await task


async def run(quick: bool) -> list[dict[str, Any]]:
    """The rows of one run: per workload, alternating windows without and with the page."""
    seconds = QUICK_SECONDS if quick else SECONDS
    pair = [("no page", False), ("page", True)]
    plan = [(workload, name, with_page) for workload in WORKLOADS
            for name, with_page in (pair if quick else pair * 2)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qhy42-web-cost-") as tmp:
        workdir = Path(tmp)
        with _daemon(workdir) as (server, port, web_port):
            client = BlobClient(HOST, port, OURS_DEVICE, timeout_s=WAIT_S)
            await client.open()
            try:
                await client.connect_device()
                await client.configure(SETUP)
                for index, (workload, name, with_page) in enumerate(plan):
                    exposure_s, side = WORKLOADS[workload]
                    await client.apply(Setting("CCD_FRAME", {"X": 0, "Y": 0, "WIDTH": side,
                                                             "HEIGHT": side}))
                    label = f"{index + 1}-{workload}-{name.replace(' ', '-')}"
                    row = await _window(label, with_page, seconds, workdir, server, port,
                                        web_port, client, exposure_s)
                    rows.append({"workload": workload, **row})
                    await asyncio.sleep(0.5)  # the last exposure's frame drains
            finally:
                await client.close()
    return rows


# ---- the page's stand-in ---------------------------------------------------------------------


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def page_main(url: str) -> int:
    """Follow the feed as the page does (every preview's JPEGs fetched) until SIGTERM."""
    import aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    seen: dict[str, Any] = {"updates": 0, "previews": 0, "bytes": 0, "preview_cost_ms": []}

    async def follow(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url + "web/ws") as feed:
            _emit({"event": "ready"})
            async for message in feed:
                seen["updates"] += 1
                seen["bytes"] += len(message.data)
                update = json.loads(message.data)
                for preview in (update.get("previews") or {}).values():
                    seen["previews"] += 1
                    seen["preview_cost_ms"].append(preview["cost_ms"])
                    for channel in preview["channels"]:
                        async with session.get(url.rstrip("/") + channel["url"]) as image:
                            seen["bytes"] += len(await image.read())

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(follow(session))
        await asyncio.wait({task, asyncio.ensure_future(stop.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    _emit({"event": "result", **seen})
    return 0


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    columns = ["window", "fps", "ping_p50_ms", "ping_p99_ms", "ping_max_ms", "pings",
               "ping_lost", "server_cpu_ms_per_s", "downloader_dropped", "page_updates",
               "page_previews", "page_kb", "preview_ms"]
    print(" | ".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append("-" if value is None else f"{value:.1f}" if isinstance(value, float)
                         else str(value))
        print(" | ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    page = sub.add_parser("page", help="(internal) the page's stand-in")
    page.add_argument("--url", required=True)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s windows")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.command == "page":
        return asyncio.run(page_main(args.url))
    rows = asyncio.run(run(args.quick))
    print_table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
