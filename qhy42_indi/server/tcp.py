"""The INDI TCP listener: one session per client, like indiserver on port 7624."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from qhy42_indi.server.connection import DEFAULT_LIMITS, Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import SocketStream

log = logging.getLogger(__name__)


class Listener:
    """Accepts clients on one socket and runs a session for each until closed."""

    def __init__(self, hub: Hub, sock: socket.socket, limits: QueueLimits) -> None:
        self._hub = hub
        self._sock = sock
        self._limits = limits
        self._sessions: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.create_task(self._accept_forever(), name="accept")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, address = await loop.sock_accept(self._sock)
            except OSError as error:  # e.g. out of descriptors: keep serving the others
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            if client.family in (socket.AF_INET, socket.AF_INET6):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"{address[0]}:{address[1]}"
            session = asyncio.create_task(self._serve(client, peer), name=f"session {peer}")
            self._sessions.add(session)
            session.add_done_callback(self._sessions.discard)

    async def _serve(self, client: socket.socket, peer: str) -> None:
        stream = SocketStream(client)
        await run_session(self._hub, stream, Connection(peer, stream, self._limits))

    async def close(self) -> None:
        self._accepting.cancel()
        self._sock.close()
        for task in [self._accepting, *self._sessions]:
            task.cancel()
        for task in [self._accepting, *self._sessions]:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start_tcp_server(
    hub: Hub, host: str, port: int, limits: QueueLimits = DEFAULT_LIMITS
) -> Listener:
    """Listen for INDI clients on host:port (port 0 picks a free one)."""
    sock = socket.create_server((host, port), backlog=16, reuse_port=False)
    sock.setblocking(False)
    listener = Listener(hub, sock, limits)
    log.info("serving INDI on %s:%d", *listener.address)
    return listener
