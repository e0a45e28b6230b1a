"""The INDI TCP listener: one session per client, like indiserver on port 7624."""

from __future__ import annotations

import asyncio
import logging

from qhy42_indi.server.connection import Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session

log = logging.getLogger(__name__)


async def start_tcp_server(
    hub: Hub, host: str, port: int, limits: QueueLimits = QueueLimits()
) -> asyncio.Server:
    """Listen for INDI clients; returns the started server (close it to stop listening)."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "tcp client"
        await run_session(hub, reader, Connection(peer, writer, limits))

    server = await asyncio.start_server(on_client, host, port, reuse_address=True, backlog=16)
    for sock in server.sockets:
        log.info("serving INDI on %s:%d", *sock.getsockname()[:2])
    return server
