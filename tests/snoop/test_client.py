"""SnoopClient against an in-process INDI server on 127.0.0.1: what it asks for, what it
keeps, how it reconnects, and that it never raises into its owner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    NumberElement,
    ParseProblem,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser
from qhy42_indi.snoop.client import SnoopClient
from qhy42_indi.snoop.state import ActiveDevices, SnoopedValues

HOST = "127.0.0.1"
WAIT_S = 20.0
RECORDED = (Path(__file__).parent / "data" / "simulator_defs_1_9_9.xml").read_bytes()
MOUNT_AND_FOCUSER = ActiveDevices(telescope="Telescope Simulator", focuser="Focuser Simulator")


@dataclass
class Peer:
    """One connection the fake server accepted: what the client sent, and a way to answer."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[IndiMessage] = field(default_factory=list)
    parser: IndiParser = field(default_factory=IndiParser)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self) -> None:
        while data := await self.reader.read(65536):
            self.received.extend(m for m in self.parser.feed(data)
                                 if not isinstance(m, ParseProblem))
            self.arrived.set()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_for(self, predicate: Callable[[list[IndiMessage]], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate(self.received):
                self.arrived.clear()
                await self.arrived.wait()


class FakeServer:
    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, HOST, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.append(task)
        await self.peers.put(peer)
        with contextlib.suppress(ConnectionError):
            await peer.pump()

    async def next_peer(self) -> Peer:
        async with asyncio.timeout(WAIT_S):
            return await self.peers.get()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in self._tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


@contextlib.asynccontextmanager
async def fake_server(port: int = 0) -> AsyncIterator[tuple[FakeServer, int]]:
    server = FakeServer()
    bound = await server.start(port)
    try:
        yield server, bound
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def client(port: int, values: SnoopedValues, **options: float,
                 ) -> AsyncIterator[SnoopClient]:
    snoop = SnoopClient(HOST, port, values, **options)
    snoop.start()
    try:
        yield snoop
    finally:
        await snoop.stop()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


def requests(messages: list[IndiMessage]) -> list[tuple[str | None, str | None]]:
    return [(m.device, m.name) for m in messages if isinstance(m, GetProperties)]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def test_it_asks_for_each_wanted_pair_and_refuses_blobs() -> None:
    values = SnoopedValues(MOUNT_AND_FOCUSER)
    async with fake_server() as (server, port), client(port, values) as snoop:
        peer = await server.next_peer()
        await peer.wait_for(lambda got: len(got) >= 9)
        assert peer.received == [
            *(GetProperties("1.7", device, name) for device, name in values.wanted()),
            EnableBlob("Telescope Simulator", BlobEnable.NEVER),
            EnableBlob("Focuser Simulator", BlobEnable.NEVER),
        ]
        assert snoop.connected and snoop.connections == 1
    assert encode(GetProperties("1.7", "D", "P")) == (
        b'<getProperties version="1.7" device="D" name="P"/>\n')


async def test_what_the_server_sends_reaches_the_values_and_blobs_do_not() -> None:
    values = SnoopedValues(MOUNT_AND_FOCUSER)
    async with fake_server() as (server, port), client(port, values, max_message_bytes=65536):
        peer = await server.next_peer()
        await peer.send(RECORDED)
        await until(lambda: values.snapshot().focus_position == 42000)
        snap = values.snapshot()
        assert snap.ra_jnow_h == pytest.approx(5.49995823685908)
        assert snap.latitude_deg == 48.5
        assert snap.filter_names == ()  # the wheel was recorded, but not wanted
        # A BLOB nobody asked for, bigger than the client holds, is skipped on the way...
        blob = SetVector(VectorKind.BLOB, "Telescope Simulator", "CCD1", PropertyState.OK,
                         (BlobElement("CCD1", format=".fits", size=750_000,
                                      data_b64=b"A" * 1_000_000),))
        move = SetVector(VectorKind.NUMBER, "Focuser Simulator", "ABS_FOCUS_POSITION",
                         PropertyState.OK, (NumberElement("FOCUS_ABSOLUTE_POSITION", 41000),))
        await peer.send(encode(blob) + encode(move))
        # ... and what follows it still arrives.
        await until(lambda: values.snapshot().focus_position == 41000)
        await peer.send(encode(PingRequest("abc")))
        await peer.wait_for(lambda got: PingReply("abc") in got)
        await peer.send(encode(DelProperty("Telescope Simulator")))
        await until(lambda: values.snapshot().latitude_deg is None)
        assert values.snapshot().focus_position == 41000


async def test_it_asks_again_when_the_wanted_pairs_change() -> None:
    values = SnoopedValues(ActiveDevices(focuser="Focuser Simulator"))
    async with fake_server() as (server, port), client(port, values):
        peer = await server.next_peer()
        await peer.wait_for(lambda got: len(got) >= 3)
        count = len(peer.received)
        values.set_devices(ActiveDevices(filter_wheel="Filter Simulator"))
        await peer.wait_for(lambda got: len(got) >= count + 3)
        assert peer.received[count:] == [
            GetProperties("1.7", "Filter Simulator", "FILTER_SLOT"),
            GetProperties("1.7", "Filter Simulator", "FILTER_NAME"),
            EnableBlob("Filter Simulator", BlobEnable.NEVER),
        ]
        await peer.send(RECORDED)
        await until(lambda: values.snapshot().filter_name == "Blue")
        assert values.snapshot().focus_position is None


async def test_a_lost_server_takes_its_values_and_the_client_comes_back(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qhy42_indi.snoop.client")
    values = SnoopedValues(MOUNT_AND_FOCUSER)
    async with fake_server() as (server, port), client(port, values, min_retry_s=0.01,
                                                       max_retry_s=0.05) as snoop:
        peer = await server.next_peer()
        await peer.send(RECORDED)
        await until(lambda: values.snapshot().focus_position == 42000)
        peer.writer.close()
        await until(lambda: values.snapshot().is_empty())
        second = await server.next_peer()
        await second.wait_for(lambda got: requests(got) == requests(peer.received))
        assert snoop.connections == 2
        await second.send(RECORDED)
        await until(lambda: values.snapshot().focus_position == 42000)
        messages = [r.getMessage() for r in caplog.records]
        assert sum(m.startswith("snoop: lost INDI server") for m in messages) == 1
        assert sum(m.startswith("snoop: connected to") for m in messages) == 2


async def test_an_absent_server_is_retried_with_back_off_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qhy42_indi.snoop.client")
    port = unused_port()
    values = SnoopedValues(MOUNT_AND_FOCUSER)
    snoop = SnoopClient(HOST, port, values)  # the real 1 s .. 30 s back-off
    pauses: list[float] = []

    async def record(delay: float) -> None:
        pauses.append(delay)
        await asyncio.sleep(0.005)

    snoop._sleep = record
    snoop.start()
    snoop.start()  # a second start does not start a second client
    try:
        await until(lambda: len(pauses) >= 8)
        assert pauses[:8] == [1, 2, 4, 8, 16, 30, 30, 30]
        assert not snoop.connected and snoop.connections == 0
        unreachable = [r for r in caplog.records if "cannot reach" in r.getMessage()]
        assert len(unreachable) == 1
        # The server appears: the client connects on its next try, and logs it once the
        # server answers.
        async with fake_server(port) as (server, _):
            peer = await server.next_peer()
            await peer.wait_for(lambda got: len(requests(got)) == 7)
            await until(lambda: snoop.connected)
            await peer.send(RECORDED)
            await until(lambda: values.snapshot().focus_position == 42000)
            assert [r.getMessage() for r in caplog.records].count(
                f"snoop: connected to INDI server {HOST}:{port}") == 1
    finally:
        await snoop.stop()
        await snoop.stop()
    assert not snoop.connected


async def test_a_server_that_hangs_up_at_once_grows_the_back_off(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qhy42_indi.snoop.client")
    port = unused_port()
    refused: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refused.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, HOST, port)
    snoop = SnoopClient(HOST, port, SnoopedValues(MOUNT_AND_FOCUSER))
    pauses: list[float] = []

    async def record(delay: float) -> None:
        pauses.append(delay)
        await asyncio.sleep(0.005)

    snoop._sleep = record
    snoop.start()
    try:
        await until(lambda: len(pauses) >= 4)
        assert pauses[:4] == [2, 4, 8, 16]
        assert len(refused) >= 4
        messages = [r.getMessage() for r in caplog.records]
        assert sum("hangs up without answering" in m for m in messages) == 1
        assert not any("connected to" in m for m in messages)
    finally:
        await snoop.stop()
        server.close()
        await server.wait_closed()


async def test_nothing_raises_into_the_owner() -> None:
    values = SnoopedValues(MOUNT_AND_FOCUSER)
    # Not even an address that cannot be resolved.
    snoop = SnoopClient("no-such-host.invalid", 7624, values, min_retry_s=0.01,
                        max_retry_s=0.02, connect_timeout_s=1.0)
    snoop.start()
    await asyncio.sleep(0.05)
    values.set_devices(ActiveDevices(telescope="Other"))  # while disconnected
    await snoop.stop()
    await SnoopClient(HOST, 1, values).stop()  # never started
    with pytest.raises(ValueError):
        SnoopClient(HOST, 1, values, min_retry_s=0)
