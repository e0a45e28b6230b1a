"""A page that stops reading costs nobody anything: it is closed, the others go on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from qhy42_indi.config import Config
from qhy42_indi.front.context import FrontContext
from qhy42_indi.front.http import HttpClients, HttpServer, start_http
from qhy42_indi.server.access import AccessControl, AccessPolicy
from qhy42_indi.server.hub import Hub
from qhy42_indi.web import front
from qhy42_indi.web.front import WebFront

HOST = "127.0.0.1"
flood = logging.getLogger("tests.web.flood")


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[WebFront, int]]:
    monkeypatch.setattr(front, "SEND_TIMEOUT_S", 0.5)
    config = Config()
    context = FrontContext(Hub(), config, AccessControl(AccessPolicy.from_config(config.server)))
    clients = HttpClients()
    page = WebFront(context, clients)
    server: HttpServer = await start_http(HOST, 0, [page], context.access, clients)
    try:
        yield page, server.address[1]
    finally:
        await server.close()


def stalled_page(port: int) -> socket.socket:
    """A WebSocket client that upgrades and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /web/ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


async def test_a_stalled_page_is_closed_while_the_loop_and_a_reading_page_go_on(
    served: tuple[WebFront, int],
) -> None:
    page, port = served
    stalled = await asyncio.to_thread(stalled_page, port)  # blocking: off the loop
    received = 0
    with contextlib.closing(stalled):
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{port}/web/ws") as reader:

            async def read() -> None:
                nonlocal received
                async for message in reader:
                    json.loads(message.data)
                    received += 1

            reading = asyncio.create_task(read())
            worst_gap_s, last = 0.0, time.monotonic()
            async with asyncio.timeout(10):
                while len(page._pages) > 1:  # until the stalled one is closed
                    for _ in range(20):  # 160 KB of log lines per burst
                        flood.warning("x" * 8000)
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    worst_gap_s, last = max(worst_gap_s, now - last), now
            before = received
            flood.warning("after the stalled page went")
            async with asyncio.timeout(5):
                while received == before:
                    await asyncio.sleep(0.01)
            reading.cancel()
    assert len(page._pages) == 1
    assert worst_gap_s < 0.25  # the loop never waited on the stalled page
