"""Our driver under a real indiserver: frames go to it as shared memory, not base64.

indiserver runs `indi_qhy42_ccd` through a relay of the same name, first on PATH: the relay
gives our driver a socketpair of its own (so the driver takes the shared-memory path, as under
indiserver directly), copies every byte and descriptor between it and indiserver's socket,
and counts what passes: the bytes our driver wrote and the descriptors that came with them.
A 1024x1024 16-bit frame is 2 MB, 2.8 MB as base64; with shared memory the driver writes a
few kilobytes of XML per frame and one descriptor.

Noise is not seeded from the command line (a fresh noise draw per frame), so a frame through
indiserver cannot be compared byte for byte with one from the standalone daemon. What is
compared: through indiserver, the TCP client's FITS (base64 from indiserver) and the local
libindiclient client's FITS (indiserver's -u socket, the descriptor passed on) are the same
bytes; against the standalone daemon with the same settings, the same length, shape, type
and header cards, times excepted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from qhy42_indi.indi.messages import BlobElement, SetVector
from tests.interop.libindi_client import build_capture_client, run_capture_client
from tests.support.camera import DEVICE, connect_camera, set_numbers
from tests.support.client import IndiClient, is_blob
from tests.support.processes import HOST, VENV_BIN, Running, daemon, free_port, require, running

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="socketpairs with memfds are Linux"
)

BINNED = ["--set", "CCD_BINNING.HOR_BIN=2", "--set", "CCD_BINNING.VER_BIN=2"]
FRAME_BYTES = 1024 * 1024 * 2
# Header cards that change from one exposure to the next.
TIMED_PREFIXES = ("DATE", "MJD")


def untimed(header: fits.Header) -> dict[str, object]:
    return {k: v for k, v in header.items() if not k.startswith(TIMED_PREFIXES)}

RELAY = textwrap.dedent('''\
    #!{python}
    """indiserver -> this -> the real indi_qhy42_ccd, counting what the driver sends."""
    import array, json, os, socket, subprocess, sys, threading

    stats_path = os.environ["QHY42_RELAY_STATS"]
    upstream = socket.socket(fileno=os.dup(0))
    ours, theirs = socket.socketpair()
    driver = subprocess.Popen([{driver!r}, *sys.argv[1:]], stdin=theirs, stdout=theirs)
    theirs.close()
    counts = {{"bytes": 0, "fds": 0}}

    def down():
        while data := upstream.recv(65536):
            ours.sendall(data)
        ours.shutdown(socket.SHUT_WR)

    threading.Thread(target=down, daemon=True).start()
    space = socket.CMSG_SPACE(16 * 4)
    while True:
        data, ancillary, _, _ = ours.recvmsg(1 << 20, space)
        if not data:
            break
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if fds else []
        view = memoryview(data)
        while view:
            view = view[upstream.sendmsg([view], rights):]
            rights = []
        for fd in fds:
            os.close(fd)
        counts["bytes"] += len(data)
        counts["fds"] += len(fds)
        with open(stats_path + ".tmp", "w") as out:
            json.dump(counts, out)
        os.replace(stats_path + ".tmp", stats_path)
    driver.terminate()
''')


@pytest.fixture(scope="module")
def client_binary() -> Path:
    return build_capture_client()


@contextlib.contextmanager
def indiserver_with_relay() -> Iterator[tuple[Running, str, Path]]:
    """indiserver running our driver through the relay: (it, its -u path, the stats file)."""
    with tempfile.TemporaryDirectory(prefix="qhy42-relay-") as tmp:
        workdir = Path(tmp)
        relay = workdir / "bin" / "indi_qhy42_ccd"
        relay.parent.mkdir()
        relay.write_text(RELAY.format(python=sys.executable,
                                      driver=str(VENV_BIN / "indi_qhy42_ccd")))
        relay.chmod(0o755)
        stats = workdir / "relay.json"
        socket_path = str(workdir / "indiserver")
        port = free_port()
        argv = [require("indiserver"), "-v", "-p", str(port), "-u", socket_path,
                "indi_qhy42_ccd"]
        env = {
            "PATH": f"{relay.parent}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "QHY42_RELAY_STATS": str(stats),
            "INDIDEV": DEVICE,
        }
        with running(argv, port, env_extra=env) as server:
            yield server, socket_path, stats


def relayed(stats: Path) -> dict[str, int]:
    counts: dict[str, int] = json.loads(stats.read_text())
    return counts


async def watch_over_tcp(client: IndiClient) -> int:
    await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>"
                      f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>"
                      "<pingRequest uid='watching'/>")
    await client.wait_for(lambda m: type(m).__name__ == "PingReply")
    return len(client.received)


def fits_of(message: object) -> bytes:
    assert isinstance(message, SetVector)
    [element] = message.elements
    assert isinstance(element, BlobElement)
    return base64.b64decode(bytes(element.data_b64))


async def test_frames_reach_tcp_and_local_clients_of_indiserver_as_shared_memory(
    client_binary: Path, tmp_path: Path
) -> None:
    with indiserver_with_relay() as (server, socket_path, stats):
        async with IndiClient.connect(HOST, server.port) as tcp:
            start = await watch_over_tcp(tcp)
            # Three exposures, asked for by libindiclient on indiserver's local socket.
            result = await asyncio.to_thread(
                run_capture_client, client_binary, f"localhost:{socket_path}", 1, DEVICE, 0.1,
                count=3, out_dir=tmp_path, extra_args=["--blob-mode", "also", *BINNED],
                timeout_s=60,
            )
            assert result.returncode == 0, result.stderr + server.log()[-3000:]
            assert result.done_frames == 3
            over_tcp = []
            for _ in range(3):
                message = await tcp.wait_for(is_blob, start=start)
                start = tcp.received.index(message) + 1
                over_tcp.append(fits_of(message))
        counts = relayed(stats)
        log = server.log()
    from_libindi = [frame.file.read_bytes() for frame in result.frames]
    assert from_libindi == over_tcp  # the same FITS, byte for byte, both ways out
    for data in from_libindi:
        assert len(data) > FRAME_BYTES
        with fits.open(io.BytesIO(data)) as hdus:
            assert hdus[0].data.shape == (1024, 1024)
            assert hdus[0].header["INSTRUME"] == DEVICE
    # One descriptor per frame, and no base64: three frames as base64 would be 8.4 MB.
    assert counts["fds"] == 3, counts
    assert counts["bytes"] < FRAME_BYTES // 4, counts
    assert "frames go to indiserver as shared memory" in log


async def take_frame(port: int) -> bytes:
    async with IndiClient.connect(HOST, port) as client:
        await connect_camera(client)
        await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
        await set_numbers(client, "CCD_BINNING", HOR_BIN=2, VER_BIN=2)
        start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1)
        return fits_of(await client.wait_for(is_blob, start=start))


async def test_a_frame_through_indiserver_is_the_standalone_daemons_frame() -> None:
    with indiserver_with_relay() as (server, _, stats):
        through_indiserver = await take_frame(server.port)
        counts = relayed(stats)
    with daemon() as standalone:
        direct = await take_frame(standalone.port)
    assert counts["fds"] == 1, counts
    assert counts["bytes"] < FRAME_BYTES // 4, counts
    assert len(through_indiserver) == len(direct)
    with fits.open(io.BytesIO(through_indiserver)) as ours, fits.open(io.BytesIO(direct)) as ref:
        assert ours[0].data.shape == ref[0].data.shape == (1024, 1024)
        assert ours[0].data.dtype == ref[0].data.dtype
        assert untimed(ours[0].header) == untimed(ref[0].header)
        assert len(ours[0].header) == len(ref[0].header)
