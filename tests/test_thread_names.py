"""The daemon's threads carry their names in the OS (what top -H and /proc show)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from qhy42_indi.thread_names import name_this_thread, named_executor
from tests.support.camera import DEVICE, connect_camera, expose, set_numbers
from tests.support.client import IndiClient
from tests.support.processes import HOST, daemon


def own_os_name() -> str:
    """The calling thread's name as the kernel has it."""
    return Path(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/comm").read_text().strip()


def thread_names(pid: int) -> list[str]:
    return sorted(path.read_text().strip() for path in Path(f"/proc/{pid}/task").glob("*/comm"))


def test_a_named_pools_threads_have_their_names_in_the_os() -> None:
    with named_executor("qhy42-test", 2) as pool:
        names = {pool.submit(own_os_name).result() for _ in range(4)}
    assert names and names <= {"qhy42-test_0", "qhy42-test_1"}, names


def test_a_long_name_is_cut_to_what_the_kernel_keeps() -> None:
    seen: list[str] = []

    def run() -> None:
        name_this_thread("a-name-longer-than-fifteen-bytes")
        seen.append(own_os_name())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == ["a-name-longer-t"]


async def test_the_daemons_frame_threads_are_named() -> None:
    with daemon() as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await connect_camera(client)
            await set_numbers(client, "CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=64)
            await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
            await expose(client, 0.01)
            names = thread_names(server.process.pid)
    assert "qhy42-sim_0" in names, names  # the simulator's frames
    assert any(name.startswith("qhy42-work_") for name in names), names  # FITS, base64
