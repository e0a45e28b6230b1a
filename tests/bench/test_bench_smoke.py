"""Smoke test of the benchmark harness against the C++ stack (indiserver + indi_simulator_ccd)
and of the ping-under-load rows against our daemon.

Tiny frames, two of them: the client commands, receives and decodes them, and its result
record is complete and JSON-ready; the runner's one-run path gives every figure it prints.
The ping bench runs each workload for a fraction of a second and prints a row of numbers.
Nothing here is timed: speed is bench/run.py's business, never a test's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench import ping
from bench.client import BlobClient, ClientRecord
from bench.run import HOST, REPO, SIDE_SPECS, Options, ServerProcess, run_once
from bench.scenarios import EXPOSURE_S, READ_MODE_STD, Scenario, cpp_settings, ours_settings

needs_cpp = pytest.mark.skipif(
    shutil.which("indiserver") is None or shutil.which("indi_simulator_ccd") is None,
    reason="needs Debian indi-bin (indiserver, indi_simulator_ccd): run `make test`",
)

WIDTH, HEIGHT = 64, 48  # a subframe: the simulator's sensor is at least 512x512
SENSOR = (512, 512)
FITS_BLOCK = 2880


@pytest.fixture
async def cpp_server() -> AsyncIterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="qhy42-bench-test-") as tmp:
        server = ServerProcess(SIDE_SPECS["cpp"], Path(tmp))
        try:
            await server.wait_ready()
            yield server
        finally:
            server.stop()
        assert server.process.poll() is not None


@needs_cpp
@pytest.mark.parametrize("blob_mode", ["also", "kstars"])
async def test_client_receives_and_decodes_two_frames(cpp_server: ServerProcess,
                                                      blob_mode: str) -> None:
    client = BlobClient(HOST, cpp_server.port, SIDE_SPECS["cpp"].device,
                        blob_mode="kstars" if blob_mode == "kstars" else "also")
    try:
        await client.open()
        await client.connect_device()
        await client.configure(cpp_settings(WIDTH, HEIGHT, sensor=SENSOR))
        await client.enable_blobs()
        record = await client.expose(EXPOSURE_S, 2, warmup=1)
        head = client.blobs.first_frame_head
    finally:
        await client.close()

    assert record.error is None
    assert len(record.frames) == len(record.command_times) == 2
    assert head.startswith(b"SIMPLE  =")
    cards = {head[at:at + 8].strip(): head[at + 10:at + 80].split(b"/")[0].strip()
             for at in range(0, len(head), 80)}
    assert (cards[b"NAXIS1"], cards[b"NAXIS2"], cards[b"BITPIX"]) == (b"64", b"48", b"16")
    fits_bytes = FITS_BLOCK + -(-WIDTH * HEIGHT * 2 // FITS_BLOCK) * FITS_BLOCK
    for frame, sent in zip(record.frames, record.command_times, strict=True):
        assert frame.format == ".fits"
        assert frame.nbytes == frame.size
        assert frame.nbytes % FITS_BLOCK == 0 and frame.nbytes >= fits_bytes
        assert frame.b64_len == 4 * -(-frame.nbytes // 3)
        assert frame.decoded_at > sent

    data = json.loads(json.dumps(record.to_dict()))
    assert data["role"] == "command" and data["blob_mode"] == blob_mode
    assert data["started_at"] == record.command_times[0]
    summary = data["summary"]
    assert summary["frames"] == 2
    for key in ("fps", "mb_per_s", "latency_median_ms", "latency_p95_ms"):
        assert isinstance(summary[key], float) and summary[key] > 0
    assert summary["latency_p95_ms"] >= summary["latency_median_ms"]
    assert ClientRecord("listen", "x", "also").summary()["fps"] is None


@needs_cpp
async def test_one_runner_run_reports_every_figure() -> None:
    scenario = Scenario("tiny", "tiny", 2, 2,
                        {"cpp": lambda: cpp_settings(WIDTH, HEIGHT, sensor=SENSOR)},
                        listeners=1, measure_idle=True)
    opts = Options(runs=1, quick=True, blob_mode="also", timeout_s=15, idle_s=0.2, budget_s=30)

    result = await run_once(SIDE_SPECS["cpp"], scenario, opts)

    assert result.status == "ok", result.reason
    figures = result.figures
    assert figures["frames"] == 2 and figures["every_client_got_every_frame"]
    assert figures["listeners"][0]["frames"] == 2
    assert set(figures["cpu_ms_per_frame_by_process"]) == {"indiserver", "indi_simulator_ccd"}
    # each process's main thread under its own name
    assert {"indiserver", "indi_simulator_ccd"} <= set(figures["cpu_ms_per_frame_by_thread"])
    assert figures["rss_peak_mib"] >= figures["rss_idle_mib"] > 0
    assert figures["idle_cpu_ms_per_s"] >= 0 and figures["cpu_ms_per_frame"] >= 0
    json.dumps(figures)


async def test_a_run_of_our_daemon_breaks_its_cpu_down_by_thread() -> None:
    scenario = Scenario("tiny", "tiny", 3, 3,
                        {"ours": lambda: ours_settings(READ_MODE_STD, 512, 512)})
    opts = Options(runs=1, quick=True, blob_mode="also", timeout_s=15, idle_s=0.2, budget_s=30)

    result = await run_once(SIDE_SPECS["ours"], scenario, opts)

    assert result.status == "ok", result.reason
    threads = result.figures["cpu_ms_per_frame_by_thread"]
    # the event loop under the daemon's name, the simulator's frames in their own thread
    assert {"qhy42-indi", "qhy42-sim"} <= set(threads), threads
    assert all(ms >= 0.1 for ms in threads.values())  # the idle ones are left out


PING_ROW = re.compile(r"^(\w+): .* ours +(\d+) +([\d.]+) +([\d.]+) +([\d.]+) +(\d+)  (.*)$")


def test_ping_bench_prints_a_row_of_numbers_per_workload(tmp_path: Path) -> None:
    records_path = tmp_path / "ping.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.ping", "--sides", "ours", "--seconds", "0.5",
         "--warmup", "0.3", "--json", str(records_path)],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    rows = {m[1]: m for m in map(PING_ROW.match, done.stdout.splitlines()) if m}
    assert set(rows) == {w.key for w in ping.WORKLOADS}, done.stdout
    for row in rows.values():
        pings, p50, p99, top = int(row[2]), float(row[3]), float(row[4]), float(row[5])
        assert pings > 0 and 0 <= p50 <= p99 <= top
        assert re.match(r"[\d.]+", row[7])  # the downloaders' frames/s
    records = {r["workload"]: r for r in json.loads(records_path.read_text())}
    assert records["ser"]["recorded_mb"] > 0
    assert all(len(r["client_fps"]) == w.downloaders
               for w in ping.WORKLOADS for r in [records[w.key]])
