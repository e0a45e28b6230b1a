"""The INDI TCP listener: one session per client, like indiserver on port 7624.

Each accepted client is judged by the access control (access.py) before a session starts:
refused, served read-only, or served (listener.py).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from qhy42_indi.server.access import AccessControl
from qhy42_indi.server.connection import DEFAULT_LIMITS, Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.listener import Listener
from qhy42_indi.server.streams import ByteStream, SocketStream

log = logging.getLogger(__name__)


class TcpListener(Listener):
    """TCP clients, judged by their address."""

    def __init__(
        self, hub: Hub, sock: socket.socket, limits: QueueLimits,
        access: AccessControl | None = None,
    ) -> None:
        super().__init__(hub, sock, limits, access, "tcp")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def _identify(self, client: socket.socket, address: Any) -> tuple[str, str]:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return str(address[0]), f"{address[0]}:{address[1]}"

    def _open(
        self, client: socket.socket, peer: str, read_only: bool
    ) -> tuple[ByteStream, Connection]:
        stream = SocketStream(client)
        return stream, Connection(peer, stream, self._limits, read_only=read_only)


async def start_tcp_server(
    hub: Hub,
    host: str,
    port: int,
    limits: QueueLimits = DEFAULT_LIMITS,
    access: AccessControl | None = None,
) -> TcpListener:
    """Listen for INDI clients on host:port (port 0 picks a free one)."""
    sock = socket.create_server((host, port), backlog=16, reuse_port=False)
    sock.setblocking(False)
    listener = TcpListener(hub, sock, limits, access)
    log.info("serving INDI on %s:%d", *listener.address)
    return listener
