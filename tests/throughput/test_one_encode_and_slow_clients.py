"""Issue 4's guarantees, not timed: one base64 per frame for any number of TCP clients, the
same bytes to each, and a client that stops reading dropped while another keeps receiving."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pybase64
import pytest

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi.messages import BlobEnable, EnableBlob, GetProperties
from qhy42_indi.server import connection as connection_module
from qhy42_indi.server.connection import Connection
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.streams import SocketStream
from tests.support.camera import DEVICE, blobs, connect_camera, expose
from tests.support.client import IndiClient, is_blob
from tests.support.processes import HOST, daemon

FRAMES = 3


async def test_one_base64_per_frame_however_many_tcp_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodes: list[int] = []
    real = pybase64.b64encode

    def counting(data: bytes) -> bytes:
        encodes.append(len(data))
        return real(data)

    monkeypatch.setattr(connection_module.pybase64, "b64encode", counting)
    hub = Hub()
    device = Qhy42Device(DEVICE, SimulatorBackend(SimulatorOptions(seed=2, time_scale=50)))
    hub.add_device(device)
    readers, tasks = [], []
    for _ in range(4):
        ours, theirs = socket.socketpair()
        stream = SocketStream(ours)
        connection = Connection("pair", stream)
        hub.attach(connection)
        tasks.append(asyncio.create_task(connection.run_writer()))
        await hub.handle(connection, GetProperties())
        await hub.handle(connection, EnableBlob(device=DEVICE, mode=BlobEnable.ALSO))
        theirs.setblocking(False)
        readers.append(theirs)
    received = [bytearray() for _ in readers]

    async def drain(index: int) -> None:
        loop = asyncio.get_running_loop()
        while b"</setBLOBVector>" not in received[index]:
            received[index] += await loop.sock_recv(readers[index], 1 << 20)

    await device.connect()
    await device.capture.exposures.start(0.01, 1)
    await device.capture.exposures.wait()
    async with asyncio.timeout(30):
        await asyncio.gather(*(drain(i) for i in range(len(readers))))
    assert len(encodes) == 1 and encodes[0] > 2048 * 2048 * 2
    payloads = {bytes(r[r.index(b"<setBLOBVector"):]) for r in received}
    assert len(payloads) == 1  # byte-identical for every client
    await device.close()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for reader in readers:
        reader.close()


async def test_a_client_that_stops_reading_is_dropped_and_another_keeps_receiving(
    tmp_path: Path,
) -> None:
    config = tmp_path / "limits.toml"
    config.write_text("[server]\nmax_behind_mb = 24.0\n")
    with daemon("--config", str(config)) as server:
        async with IndiClient.connect(HOST, server.port) as active:
            await connect_camera(active)
            await active.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
            stalled = socket.create_connection((HOST, server.port))
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            stalled.sendall(
                f"<getProperties version='1.7'/><enableBLOB device='{DEVICE}'>Also"
                "</enableBLOB>".encode()
            )
            try:
                await asyncio.sleep(0.5)
                for _ in range(10):  # 80 MiB of frames: far past the stalled client's bound
                    start = await expose(active, 0.01)
                    await active.wait_for(is_blob, start=start)
                got = blobs(active.received)
                sizes = {b.size for b in got}  # whole 2048x2048 16-bit frames, all alike
                assert len(got) == 10 and len(sizes) == 1 and min(sizes) > 2048 * 2048 * 2
            finally:
                stalled.close()
        assert "bytes behind: disconnecting" in server.log()
