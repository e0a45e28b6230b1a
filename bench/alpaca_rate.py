"""Full 2048x2048 16-bit frames to one client: FITS over INDI against Alpaca's ImageBytes and
JSON ImageArray, from the same daemon in the same run.

One daemon (simulator, instant readout, time sped up so that the exposure itself costs
nothing) serves the three paths in turn, each as a client would use it:

* INDI: back-to-back CCD_EXPOSURE commands, each waiting for the CCD1 BLOB (base64 decoded),
  as bench/client.py does for every INDI benchmark;
* Alpaca ImageBytes: StartExposure, poll ImageReady (every 5 ms), GET imagearray with
  `Accept: application/imagebytes`, and make a numpy array of it;
* Alpaca JSON: the same with the JSON ImageArray, parsed into a numpy array.

For each path: frames/s and ms per frame as the client sees them (command to decoded
image), the daemon's CPU per frame (utime+stime from /proc), the client's (this process,
which does nothing else meanwhile), and their sum: what the path costs end to end (base64
decoding on the INDI client's side, HTTP and no decoding on Alpaca's). The ratios are
against the INDI path. Not a test: it prints numbers.

    .venv/bin/python -m bench.alpaca_rate [--quick] [--json] [--loop-watch LOG]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.client import BlobClient
from bench.stream_rate import cpu_ms, free_port, stop_group, wait_listening

HOST = "127.0.0.1"
DEVICE = "QHY CCD QHY42PRO-SIM01"
EXPOSURE_S = 0.001
TIME_SCALE = 1000.0
POLL_S = 0.005
WAIT_S = 30.0
HEADER_BYTES = 44
UINT16 = 8


@contextlib.contextmanager
def daemon(module: str = "qhy42_indi.cli", log_path: Path | None = None
           ) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """Our daemon with Alpaca on: (process, INDI port, Alpaca port). `module` may be a
    wrapper of the CLI (bench.loop_watch); the log goes to `log_path` or is thrown away."""
    indi_port, alpaca_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="qhy42-alpaca-bench-") as home:
        argv = [sys.executable, "-m", module, "serve", "--host", HOST, "--port",
                str(indi_port), "--backend", "simulator", "--no-local-socket", "--alpaca",
                "--http-host", HOST, "--alpaca-port", str(alpaca_port),
                "--no-alpaca-discovery", "--time-scale", str(TIME_SCALE),
                "--sim-instant-readout"]
        env = {**os.environ, "HOME": home, "QHY42_INDI_CONFIG": ""}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p)
        with open(log_path or Path(home) / "server.log", "wb") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        try:
            wait_listening(process, [indi_port, alpaca_port], "the daemon")
            yield process, indi_port, alpaca_port
        finally:
            stop_group(process)


def _row(path: str, frames: int, elapsed_s: float, cpu_ms_total: float,
         client_cpu_s: float, nbytes: int) -> dict[str, Any]:
    daemon_ms = cpu_ms_total / frames
    client_ms = 1e3 * client_cpu_s / frames
    return {"path": path, "frames": frames, "fps": frames / elapsed_s,
            "ms_per_frame": 1e3 * elapsed_s / frames,
            "daemon_cpu_ms_per_frame": daemon_ms,
            "client_cpu_ms_per_frame": client_ms,
            "path_cpu_ms_per_frame": daemon_ms + client_ms,
            "bytes_per_frame": nbytes}


async def indi_path(pid: int, port: int, frames: int) -> dict[str, Any]:
    client = BlobClient(HOST, port, DEVICE, blob_mode="also")
    await client.open()
    try:
        await client.connect_device()
        await client.enable_blobs()
        await client.expose(EXPOSURE_S, 1, warmup=0)  # warm-up: first-frame costs
        cpu_before, client_before = cpu_ms(pid), time.process_time()
        record = await client.expose(EXPOSURE_S, frames, warmup=0)
        cpu_used = cpu_ms(pid) - cpu_before
        client_used = time.process_time() - client_before
    finally:
        await client.close()
    if record.error or not record.frames or record.started_at is None:
        raise RuntimeError(f"INDI path failed: {record.error}")
    elapsed = record.frames[-1].decoded_at - record.started_at
    return _row("INDI FITS (base64 BLOB)", len(record.frames), elapsed, cpu_used,
                client_used, record.frames[-1].nbytes)


class AlpacaClient:
    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self._session = session
        self._base = f"http://{HOST}:{port}/api/v1/camera/0/"
        self._transaction = 0
        self.polls = 0

    def _params(self) -> dict[str, str]:
        self._transaction += 1
        return {"ClientID": "4242", "ClientTransactionID": str(self._transaction)}

    async def get(self, member: str) -> Any:
        async with self._session.get(self._base + member, params=self._params()) as reply:
            body = await reply.json()
        if body["ErrorNumber"]:
            raise RuntimeError(f"{member}: {body['ErrorMessage']}")
        return body["Value"]

    async def put(self, member: str, **form: str) -> None:
        async with self._session.put(self._base + member,
                                     data={**form, **self._params()}) as reply:
            body = await reply.json()
        if body["ErrorNumber"]:
            raise RuntimeError(f"{member}: {body['ErrorMessage']}")

    async def expose(self) -> None:
        await self.put("startexposure", Duration=str(EXPOSURE_S), Light="True")
        deadline = time.monotonic() + WAIT_S
        while not await self.get("imageready"):
            self.polls += 1
            if time.monotonic() > deadline:
                raise RuntimeError("ImageReady never came")
            await asyncio.sleep(POLL_S)

    async def imagebytes(self) -> np.ndarray[Any, Any]:
        async with self._session.get(self._base + "imagearray", params=self._params(),
                                     headers={"Accept": "application/imagebytes"}) as reply:
            data = await reply.read()
        header = np.frombuffer(data[:HEADER_BYTES], dtype="<i4")
        if header[1] != 0 or header[6] != UINT16:
            raise RuntimeError(f"ImageBytes header {header.tolist()}")
        start, columns, rows = int(header[4]), int(header[8]), int(header[9])
        return np.frombuffer(data, dtype="<u2", offset=start).reshape(columns, rows)

    async def json_image(self) -> np.ndarray[Any, Any]:
        async with self._session.get(self._base + "imagearray", params=self._params()) as reply:
            data = await reply.read()
        # A client parses what it receives: on its own loop, as N.I.N.A. would on its thread.
        return np.array(json.loads(data)["Value"], dtype=np.int32)


async def alpaca_path(pid: int, port: int, frames: int, kind: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = AlpacaClient(session, port)
        await client.put("connected", Connected="True")
        download = client.imagebytes if kind == "imagebytes" else client.json_image
        await client.expose()  # warm-up
        await download()
        client.polls = 0
        cpu_before, client_before = cpu_ms(pid), time.process_time()
        started = time.monotonic()
        nbytes = 0
        downloads_ms = []
        for _ in range(frames):
            await client.expose()
            ready = time.monotonic()
            pixels = await download()
            downloads_ms.append(1e3 * (time.monotonic() - ready))
            nbytes = int(pixels.nbytes)
        elapsed = time.monotonic() - started
        cpu_used = cpu_ms(pid) - cpu_before
        client_used = time.process_time() - client_before
    label = "Alpaca ImageBytes (UInt16)" if kind == "imagebytes" else "Alpaca JSON ImageArray"
    row = _row(label, frames, elapsed, cpu_used, client_used, nbytes)
    # From ImageReady to the decoded array: the transfer itself, with the client's decoding.
    row["download_ms_median"] = statistics.median(downloads_ms)
    row["imageready_polls_per_frame"] = client.polls / frames
    return row


async def run(quick: bool, *, module: str = "qhy42_indi.cli",
              log_path: Path | None = None) -> list[dict[str, Any]]:
    """Rows: one per path, with ratios to the INDI path."""
    frames = 3 if quick else 20
    json_frames = 2 if quick else 5
    with daemon(module, log_path) as (process, indi_port, alpaca_port):
        rows = [await indi_path(process.pid, indi_port, frames)]
        rows.append(await alpaca_path(process.pid, alpaca_port, frames, "imagebytes"))
        rows.append(await alpaca_path(process.pid, alpaca_port, json_frames, "json"))
    indi = rows[0]
    for row in rows:
        row["ms_ratio_to_indi"] = row["ms_per_frame"] / indi["ms_per_frame"]
        row["cpu_ratio_to_indi"] = (row["daemon_cpu_ms_per_frame"]
                                    / indi["daemon_cpu_ms_per_frame"])
        row["path_cpu_ratio_to_indi"] = (row["path_cpu_ms_per_frame"]
                                         / indi["path_cpu_ms_per_frame"])
    return rows


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    print("2048x2048 16-bit frames, one client, same daemon (simulator, instant readout)")
    print(f"{'path':<28}{'frames':>7}{'fps':>8}{'ms/frame':>10}{'daemon CPU ms':>15}"
          f"{'client CPU ms':>15}{'ms vs INDI':>12}{'CPU vs INDI':>13}{'path CPU vs INDI':>18}"
          f"{'download ms':>13}{'polls':>7}")
    for row in rows:
        download = row.get("download_ms_median")
        polls = row.get("imageready_polls_per_frame")
        print(f"{row['path']:<28}{row['frames']:>7}{row['fps']:>8.1f}"
              f"{row['ms_per_frame']:>10.1f}{row['daemon_cpu_ms_per_frame']:>15.1f}"
              f"{row['client_cpu_ms_per_frame']:>15.1f}"
              f"{row['ms_ratio_to_indi']:>12.2f}{row['cpu_ratio_to_indi']:>13.2f}"
              f"{row['path_cpu_ratio_to_indi']:>18.2f}"
              f"{'' if download is None else f'{download:.1f}':>13}"
              f"{'' if polls is None else f'{polls:.1f}':>7}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--loop-watch", metavar="LOG", type=Path,
                        help="run the daemon under bench.loop_watch, its report into LOG")
    args = parser.parse_args(argv)
    module = "bench.loop_watch" if args.loop_watch else "qhy42_indi.cli"
    rows = asyncio.run(run(args.quick, module=module, log_path=args.loop_watch))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
