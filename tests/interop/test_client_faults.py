"""Faults around clients, against the real daemon: a socket reset in the middle of a BLOB
costs nobody else a frame, and a device handler that raises costs the client only its
command; the daemon keeps serving either way.

A dead client is seldom a polite close: a laptop that sleeps, a Wi-Fi link that drops, a
KStars that crashes leave a half-read frame behind and, at best, a reset. SO_LINGER 0 then
close makes the kernel send exactly that RST. A handler that raises is a bug nobody has found
yet; the daemon here gets one on purpose, wrapped around the device where the hub calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from qhy42_indi.indi.messages import Message, PingReply, SetVector
from tests.support.camera import (
    DEVICE,
    answered,
    blobs,
    connect_camera,
    set_numbers,
    set_switch,
)
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, Running, daemon, free_port, running

FRAMES = 6
WAIT_S = 60.0
FAULTY = "POLLING_PERIOD"
# The daemon, with every device's handler for FAULTY made to raise: the hub's view of a bug.
FAULTY_DAEMON = f"""
import sys
from qhy42_indi import cli
from qhy42_indi.server.hub import Hub

add_device = Hub.add_device

def add_faulty_device(hub, device):
    handle_new = device.handle_new

    async def handle_new_or_fail(message):
        if message.name == {FAULTY!r}:
            raise RuntimeError("injected fault in the {FAULTY} handler")
        await handle_new(message)

    device.handle_new = handle_new_or_fail
    add_device(hub, device)

Hub.add_device = add_faulty_device
sys.exit(cli.main(sys.argv[1:]))
"""
# Small receive buffers, so that the daemon is still writing the frame when the reset comes.
SMALL_RCVBUF = 32 * 1024


def tracebacks(log: str) -> list[str]:
    markers = ("Traceback (most recent call last)", "exception was never retrieved",
               "Exception in callback")
    return [line for line in log.splitlines() if any(m in line for m in markers)]


async def ping(client: IndiClient, uid: str) -> None:
    start = len(client.received)
    await client.send(f"<pingRequest uid='{uid}'/>")
    await client.wait_for(lambda m: isinstance(m, PingReply) and m.uid == uid, start=start)


@contextlib.asynccontextmanager
async def blob_client(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
        await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
        await ping(client, "ready")
        yield client


def open_raw_blob_client(port: int) -> socket.socket:
    """A client that asks for BLOBs over a plain socket it will reset."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.connect((HOST, port))
    sock.sendall(
        f"<getProperties version='1.7' device='{DEVICE}'/>"
        f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>".encode()
    )
    sock.setblocking(False)
    return sock


async def read_into_a_blob(sock: socket.socket) -> int:
    """Read until well inside a BLOB's payload (not to its end); returns the bytes read."""
    loop = asyncio.get_running_loop()
    seen = bytearray()
    async with asyncio.timeout(WAIT_S):
        while True:
            data = await loop.sock_recv(sock, 4096)
            assert data, "the daemon closed the connection before any BLOB"
            seen += data
            begin = seen.find(b"<oneBLOB")
            if begin >= 0 and len(seen) - begin > 64 * 1024:
                assert b"</oneBLOB>" not in seen[begin:]
                return len(seen)


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST and drops what is unread."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def start_fast_sequence(commander: IndiClient, frames: int) -> int:
    """Full 2048x2048 frames chained by the camera itself (CCD_FAST_TOGGLE), as Ekos takes a
    sequence of short exposures; returns where its traffic starts."""
    await answered(commander, "CCD_FAST_COUNT",
                   await set_numbers(commander, "CCD_FAST_COUNT", FRAMES=frames))
    await answered(commander, "CCD_FAST_TOGGLE",
                   await set_switch(commander, "CCD_FAST_TOGGLE", "INDI_ENABLED"))
    return await set_numbers(commander, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)


async def test_a_client_reset_in_the_middle_of_a_blob_costs_the_others_nothing() -> None:
    with daemon("--backend", "simulator", "--time-scale", "10") as server:
        async with IndiClient.connect(HOST, server.port) as commander, \
                blob_client(server) as survivor:
            await connect_camera(commander)
            victim = open_raw_blob_client(server.port)
            try:
                start = len(survivor.received)
                sequence = await start_fast_sequence(commander, FRAMES)
                await read_into_a_blob(victim)
            finally:
                reset(victim)
            await ping(commander, "after-reset")  # while the sequence goes on
            await survivor.wait_for(
                lambda _: len(blobs(survivor.received[start:])) >= FRAMES, WAIT_S, start=start)
            await commander.wait_for(is_set("CCD_EXPOSURE", "Ok"), WAIT_S, start=sequence)
            await ping(survivor, "still-here")
            frames = blobs(survivor.received[start:])
            assert len(frames) == FRAMES
            assert {f.size for f in frames} == {frames[0].size} and frames[0].size > 8 << 20
        log = server.log()
    # It was a reset, not a polite close, and the daemon saw it as one.
    assert "Connection reset by peer" in log or "Broken pipe" in log
    assert tracebacks(log) == [], log


async def test_resets_at_different_points_of_a_frame_leave_the_daemon_serving() -> None:
    with daemon("--backend", "simulator", "--time-scale", "10") as server:
        async with IndiClient.connect(HOST, server.port) as commander, \
                blob_client(server) as survivor:
            await connect_camera(commander)
            start = len(survivor.received)
            victims = [open_raw_blob_client(server.port) for _ in range(4)]
            try:
                await start_fast_sequence(commander, FRAMES)
                for index, victim in enumerate(victims):
                    # Each one dies at another point of the stream, some of them while the
                    # daemon is still making the frame's base64 for the others.
                    await read_into_a_blob(victim)
                    if index % 2:
                        await asyncio.sleep(0.05 * index)
                    reset(victim)
            finally:
                for victim in victims:
                    victim.close()
            await survivor.wait_for(
                lambda _: len(blobs(survivor.received[start:])) >= FRAMES, WAIT_S, start=start)
            await ping(survivor, "survived")
            await ping(commander, "survived")
        log = server.log()
    assert tracebacks(log) == [], log


@contextlib.contextmanager
def faulty_daemon() -> Iterator[Running]:
    port = free_port()
    argv = [sys.executable, "-c", FAULTY_DAEMON, "serve", "--host", HOST, "--port", str(port),
            "--no-local-socket", "--backend", "simulator", "--time-scale", "10"]
    with running(argv, port) as server:
        yield server


async def test_a_handler_that_raises_costs_the_client_its_command_not_its_connection() -> None:
    with faulty_daemon() as server:
        async with IndiClient.connect(HOST, server.port) as client, \
                blob_client(server) as bystander:
            await connect_camera(client)
            start = await set_numbers(client, FAULTY, PERIOD_MS=500)
            told = await client.wait_for(
                lambda m: isinstance(m, Message) and "injected fault" in (m.message or ""),
                WAIT_S, start=start)
            alert = await client.wait_for(is_set(FAULTY, "Alert"), WAIT_S, start=start)
            assert isinstance(told, Message) and told.device == DEVICE
            assert isinstance(alert, SetVector) and "RuntimeError" in (alert.message or "")
            # Still connected, and the camera still does what it is asked.
            await ping(client, "after-fault")
            frame = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)
            await client.wait_for(is_set("CCD_EXPOSURE", "Ok"), WAIT_S, start=frame)
            await ping(bystander, "bystander")
            assert not client.closed_by_server
        log = server.log()
    # One traceback, the hub's, naming the failure; no task left with an unseen exception.
    assert log.count("Traceback (most recent call last)") == 1, log
    assert "RuntimeError: injected fault" in log
    assert "never retrieved" not in log


async def test_clients_that_come_after_dropped_ones_are_served(tmp_path: Path) -> None:
    """Stalled clients dropped for lagging free their descriptors while reads are pending;
    the clients that connect next get those numbers and must be answered all the same."""
    config = tmp_path / "config.toml"
    config.write_text("[server]\nmax_behind_mb = 16.0\n")
    with daemon("--config", str(config), "--backend", "simulator",
                "--time-scale", "10") as server:
        async with IndiClient.connect(HOST, server.port) as commander:
            await connect_camera(commander)
            stalled = [open_raw_blob_client(server.port) for _ in range(3)]
            try:
                sequence = await start_fast_sequence(commander, FRAMES)
                await commander.wait_for(is_set("CCD_EXPOSURE", "Ok"), WAIT_S, start=sequence)
                async with asyncio.timeout(WAIT_S):
                    while server.log().count("disconnecting it") < len(stalled):
                        await asyncio.sleep(0.05)
            finally:
                for sock in stalled:
                    sock.close()
            for index in range(len(stalled) + 2):
                async with blob_client(server) as newcomer:
                    await ping(newcomer, f"newcomer-{index}")
            await ping(commander, "commander")
        log = server.log()
    assert tracebacks(log) == [], log
