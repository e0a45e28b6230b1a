"""Driver mode when indiserver stops reading us: memory stays bounded, nothing tears, and the
driver serves on once it reads again.

indiserver always reads its drivers, unless it is itself stopped (swapping, a debugger, a
SIGSTOP). Then our stdout backs up while the camera goes on taking frames. The driver drops
frames past indiserver's -m (default 128 MiB) rather than grow, or quit.

How the tests see progress while nobody reads the driver: every frame is also saved
(UPLOAD_BOTH), so the files in the upload directory count the frames the camera took. Memory
is the driver's resident set from /proc, sampled while the frames pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qhy42_indi.indi.messages import (
    DefVector,
    IndiMessage,
    ParseProblem,
    PingReply,
    SetVector,
)
from qhy42_indi.indi.parser import IndiParser
from tests.support.camera import (
    DEVICE,
    answered,
    blobs,
    connect_camera,
    number,
    set_numbers,
    set_switch,
    set_texts,
)
from tests.support.client import IndiClient, is_blob, is_set
from tests.support.processes import HOST, child_env, free_port, require, running

MIB = 1024 * 1024
WAIT_S = 120.0
FRAME_BYTES = 2048 * 2048 * 2  # the full 16-bit frame the sequences take
# What a stalled driver may hold beyond its queue bound: the frame in flight with its base64,
# one being made, and the allocator's slack.
WORKING_SLACK_BYTES = 64 * MIB
DRIVER_ARGS = ("--backend", "simulator", "--time-scale", "10", "--sim-instant-readout")


@pytest.fixture
def frames_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the camera saves the frames; emptied afterwards (they are hundreds of MiB)."""
    directory = tmp_path / "frames"
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def saved_frames(directory: Path) -> int:
    return len(list(directory.glob("SEQ_*.fits")))


def peak_rss_until_saved(pid: int, directory: Path, frames: int,
                         alive: Callable[[], bool]) -> int:
    """Sample the driver's memory until the camera has saved `frames` frames (bounded)."""
    deadline = time.monotonic() + WAIT_S
    peak = 0
    while saved_frames(directory) < frames:
        assert alive(), "the driver ended while its output was not read"
        assert time.monotonic() < deadline, f"only {saved_frames(directory)} frames saved"
        peak = max(peak, rss_bytes(pid))
        time.sleep(0.05)
    return max(peak, rss_bytes(pid))


def is_ping_reply(uid: str) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, PingReply) and m.uid == uid


# ---- the driver on a socketpair, as Debian's indiserver runs it ---------------------------


class DriverLink:
    """Our end of the socketpair indiserver would hold: commands go in, and what the driver
    says is read only when the test asks for it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[IndiMessage] = []
        self.problems: list[ParseProblem] = []
        self._parser = IndiParser(max_message_bytes=1 << 30)

    def send(self, text: str) -> int:
        self.sock.sendall(text.encode())
        return len(self.received)

    def read_until(self, predicate: Callable[[IndiMessage], bool], start: int = 0,
                   timeout_s: float = WAIT_S) -> IndiMessage:
        deadline = time.monotonic() + timeout_s
        while True:
            found = next((m for m in self.received[start:] if predicate(m)), None)
            if found is not None:
                return found
            left_s = deadline - time.monotonic()
            assert left_s > 0, "the driver did not answer in time"
            self.sock.settimeout(left_s)
            data = self.sock.recv(1 << 20)
            assert data, "the driver closed its stdout"
            for item in self._parser.feed(data):
                (self.problems if isinstance(item, ParseProblem) else self.received).append(item)

    def command(self, kind: str, name: str, **members: object) -> SetVector:
        """Send a newXXXVector and read (now) until the device's answer to it."""
        ones = "".join(f"<one{kind} name='{k}'>{v}</one{kind}>" for k, v in members.items())
        start = self.send(f"<new{kind}Vector device='{DEVICE}' name='{name}'>{ones}"
                          f"</new{kind}Vector>")
        reply = self.read_until(lambda m: isinstance(m, SetVector) and m.name == name
                                and m.state != "Busy", start)
        assert isinstance(reply, SetVector) and reply.state == "Ok", reply
        return reply


@contextlib.contextmanager
def driver_on_socketpair(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], DriverLink,
                                                          Path]]:
    ours, theirs = socket.socketpair()
    # Small kernel buffers: what the driver cannot hand over stays in its own queue.
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    log_path = home / "driver.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "qhy42_indi.cli", "driver", *DRIVER_ARGS],
            stdin=theirs, stdout=theirs, stderr=log_file, env=child_env(home),
        )
    theirs.close()
    try:
        yield process, DriverLink(ours), log_path
    finally:
        ours.close()  # end of input: the driver ends
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connect_and_prepare(link: DriverLink, frames_dir: Path) -> None:
    """CONNECT, one frame read normally (so the model's buffers exist before the baseline),
    then every frame saved as well as sent."""
    link.send("<getProperties version='1.7'/>")
    link.read_until(lambda m: isinstance(m, DefVector) and m.name == "CONNECTION")
    link.command("Switch", "CONNECTION", CONNECT="On")
    link.read_until(lambda m: isinstance(m, DefVector) and m.name == "CCD_EXPOSURE")
    start = link.send(f"<newNumberVector device='{DEVICE}' name='CCD_EXPOSURE'>"
                      "<oneNumber name='CCD_EXPOSURE_VALUE'>0.01</oneNumber></newNumberVector>")
    link.read_until(is_blob, start)
    link.command("Text", "UPLOAD_SETTINGS", UPLOAD_DIR=frames_dir, UPLOAD_PREFIX="SEQ_XXX")
    link.command("Switch", "UPLOAD_MODE", UPLOAD_BOTH="On")


def test_a_driver_whose_stdout_is_not_read_holds_bounded_memory_and_serves_on(
    tmp_path: Path, frames_dir: Path,
) -> None:
    frames = 48  # 384 MiB of frames: three times the default bound
    with driver_on_socketpair(tmp_path) as (process, link, log_path):
        connect_and_prepare(link, frames_dir)
        link.command("Number", "CCD_FAST_COUNT", FRAMES=frames)
        link.command("Switch", "CCD_FAST_TOGGLE", INDI_ENABLED="On")
        baseline = rss_bytes(process.pid)
        # From here on nobody reads the driver, as when indiserver is stopped.
        mark = link.send(f"<newNumberVector device='{DEVICE}' name='CCD_EXPOSURE'>"
                         "<oneNumber name='CCD_EXPOSURE_VALUE'>0.01</oneNumber>"
                         "</newNumberVector>")
        peak = peak_rss_until_saved(process.pid, frames_dir, frames,
                                    lambda: process.poll() is None)
        assert peak - baseline < 128 * MIB + WORKING_SLACK_BYTES, (peak - baseline) / MIB
        assert "dropping every frame" in log_path.read_text()

        # Reading again: the backlog arrives whole, then the driver answers as before.
        link.send("<pingRequest uid='back'/>")
        link.read_until(is_ping_reply("back"), mark)
        link.read_until(is_set("CCD_EXPOSURE", "Ok"), mark)
        sent = blobs(link.received[mark:])
        assert 0 < len(sent) < frames  # some frames were dropped, none torn
        assert all(b.size > FRAME_BYTES for b in sent)
        assert link.problems == []
        link.command("Switch", "CCD_FAST_TOGGLE", INDI_DISABLED="On")
        again = link.send(f"<newNumberVector device='{DEVICE}' name='CCD_EXPOSURE'>"
                          "<oneNumber name='CCD_EXPOSURE_VALUE'>0.01</oneNumber>"
                          "</newNumberVector>")
        link.read_until(is_blob, again)
        assert process.poll() is None
    assert "reads again: " in log_path.read_text()


# ---- the same through the real indiserver, stopped with SIGSTOP ---------------------------


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def driver_pid(indiserver_pid: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for child in child_pids(indiserver_pid):
            with contextlib.suppress(OSError):
                if b"indi_qhy42_ccd" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
        time.sleep(0.05)
    raise AssertionError("indiserver started no indi_qhy42_ccd")


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_under_a_stopped_indiserver_the_driver_follows_its_m_bound_and_recovers(
    tmp_path: Path, frames_dir: Path,
) -> None:
    max_mib, frames = 24, 24  # 192 MiB of frames, eight times -m 24
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="qhy42-sock-") as sockdir:
        argv = [require("indiserver"), "-v", "-m", str(max_mib), "-d", "2", "-p", str(port),
                "-u", str(Path(sockdir) / "indiserver"), "indi_qhy42_ccd"]
        with running(argv, port, tmp_path) as server:
            pid = driver_pid(server.process.pid)
            async with IndiClient.connect(HOST, port) as client:
                await connect_camera(client)
                await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
                await answered(client, "UPLOAD_SETTINGS", await set_texts(
                    client, "UPLOAD_SETTINGS", UPLOAD_DIR=str(frames_dir),
                    UPLOAD_PREFIX="SEQ_XXX"))
                await answered(client, "UPLOAD_MODE",
                               await set_switch(client, "UPLOAD_MODE", "UPLOAD_BOTH"))
                await answered(client, "CCD_FAST_COUNT",
                               await set_numbers(client, "CCD_FAST_COUNT", FRAMES=frames))
                await answered(client, "CCD_FAST_TOGGLE",
                               await set_switch(client, "CCD_FAST_TOGGLE", "INDI_ENABLED"))
                start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)
                await client.wait_for(is_blob, WAIT_S, start=start)
                baseline = rss_bytes(pid)
                with stopped(server.process.pid):
                    peak = await asyncio.to_thread(
                        peak_rss_until_saved, pid, frames_dir, frames,
                        lambda: Path(f"/proc/{pid}").exists())
                assert peak - baseline < max_mib * MIB + WORKING_SLACK_BYTES, (
                    (peak - baseline) / MIB)
                # indiserver reads again: the sequence's end still reaches the client (only
                # frames were dropped), and the same driver takes the next exposure.
                await client.wait_for(lambda m: is_set("CCD_FAST_COUNT")(m)
                                      and number(m, "FRAMES") == 0, WAIT_S, start=start)
                await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), WAIT_S, start=start)
                assert 0 < len(blobs(client.received[start:])) < frames
                await answered(client, "CCD_FAST_TOGGLE",
                               await set_switch(client, "CCD_FAST_TOGGLE", "INDI_DISABLED"))
                again = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)
                await client.wait_for(is_blob, WAIT_S, start=again)
                assert driver_pid(server.process.pid) == pid  # never restarted
            log = server.log()
    assert f"past the {max_mib * MIB}-byte bound" in log, log[-4000:]
    assert "reads again: " in log
