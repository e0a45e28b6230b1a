"""Failures inside the server's own tasks (writers, sessions, the accept loop): each is logged
with its traceback, none is left for asyncio to find ("Task exception was never retrieved"),
and none costs more than the one client it happened to."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qhy42_indi.indi.messages import BlobElement, PingReply, PropertyState, SetVector, VectorKind
from qhy42_indi.server import connection as connection_module
from qhy42_indi.server import listener as listener_module
from qhy42_indi.server.connection import Connection, Outgoing
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.tcp import TcpListener, start_tcp_server
from tests.support.transports import FakeTransport

HOST = "127.0.0.1"
WAIT_S = 10.0


def raw_frame() -> Outgoing:
    """A frame given as raw bytes: its base64 is made by the first writer that sends it."""
    return Outgoing.of(SetVector(
        kind=VectorKind.BLOB, device="D", name="CCD1", state=PropertyState.OK,
        elements=(BlobElement(name="CCD1", format=".fits", size=3, data=b"abc"),),
    ))


def tracebacks(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> list[str]:
    return [r.name for r in caplog.records
            if r.exc_info and r.exc_info[1] is not None and _caused_by(r.exc_info[1], kind)]


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__  # type: ignore[assignment]
    return False


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop's exception handler sees: a lost task exception lands here at collection."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: seen.append(context))
    yield seen
    gc.collect()
    loop.set_exception_handler(None)


async def test_a_frame_that_cannot_be_encoded_is_skipped_and_the_connection_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_base64(data: bytes) -> bytes:
        raise ValueError("no base64 today")

    monkeypatch.setattr(connection_module.pybase64, "b64encode", broken_base64)
    transport = FakeTransport()
    connection = Connection("client", transport)
    writer = asyncio.create_task(connection.run_writer())
    connection.send(raw_frame())
    connection.send(Outgoing.of(PingReply(uid="after")))
    await connection.flush(WAIT_S)
    sent = b"".join(transport.written)
    assert b"setBLOBVector" not in sent and b'<pingReply uid="after"' in sent
    assert not connection.closed
    assert tracebacks(caplog, ValueError) == ["qhy42_indi.server.connection"]
    connection.close()
    await writer


class BuggyTransport(FakeTransport):
    async def send(self, data: bytes | memoryview) -> None:
        raise RuntimeError("a bug in the stream")


async def test_a_bug_in_the_stream_closes_that_connection_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = BuggyTransport()
    connection = Connection("client", transport)
    writer = asyncio.create_task(connection.run_writer())
    connection.send(Outgoing.of(PingReply(uid="x")))
    await asyncio.wait({writer}, timeout=WAIT_S)
    assert writer.done() and writer.exception() is None  # it ends, with nothing to lose
    assert connection.closed and transport.closed
    assert tracebacks(caplog, RuntimeError) == ["qhy42_indi.server.connection"]


# ---- the listener ---------------------------------------------------------------------------


@pytest.fixture
async def listener() -> AsyncIterator[TcpListener]:
    served = await start_tcp_server(Hub(), HOST, 0)
    yield served
    await served.close()


async def closed_by_server(listener: TcpListener) -> bool:
    """Connect, send nothing, and read until the server closes (True) or WAIT_S passes."""
    reader, writer = await asyncio.open_connection(*listener.address)

    async def read_to_end() -> None:
        while await reader.read(4096):
            pass

    reading = asyncio.ensure_future(read_to_end())
    done, _ = await asyncio.wait({reading}, timeout=WAIT_S)
    reading.cancel()
    writer.close()
    return reading in done


async def test_a_session_that_fails_is_logged_and_the_listener_keeps_accepting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    unretrieved: list[dict[str, Any]], listener: TcpListener,
) -> None:
    async def failing_session(*args: object) -> None:
        raise LookupError("a bug in the session")

    monkeypatch.setattr(listener_module, "run_session", failing_session)
    for _ in range(2):
        assert await closed_by_server(listener)  # its session ended, and closed it
    await asyncio.sleep(0)
    gc.collect()
    assert len(tracebacks(caplog, LookupError)) == 2
    assert listener.accepting
    assert unretrieved == []


async def test_a_client_that_cannot_be_set_up_does_not_stop_the_accept_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    listener: TcpListener,
) -> None:
    identify = TcpListener._identify
    calls: list[int] = []

    def identify_once_broken(self: TcpListener, client: socket.socket,
                             address: Any) -> tuple[str, str]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the client is gone before it is named")
        return identify(self, client, address)

    monkeypatch.setattr(TcpListener, "_identify", identify_once_broken)
    caplog.set_level(logging.INFO)
    assert await closed_by_server(listener)  # at once: it could not be served
    reader, writer = await asyncio.open_connection(*listener.address)
    writer.write(b"<pingRequest uid='second'/>")
    reply = await asyncio.wait_for(reader.read(4096), WAIT_S)
    assert b'uid="second"' in reply
    assert listener.accepting
    assert tracebacks(caplog, OSError)
    writer.close()
