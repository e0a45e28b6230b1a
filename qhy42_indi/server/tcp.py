"""The INDI TCP listener: one session per client, like indiserver on port 7624.

Each accepted client is judged by the access control (access.py) before a session starts:
refused, served read-only, or served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import Message
from qhy42_indi.indi.values import timestamp_now
from qhy42_indi.server.access import AccessControl, AccessPolicy, Verdict
from qhy42_indi.server.connection import DEFAULT_LIMITS, Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import SocketStream

log = logging.getLogger(__name__)

# A refused client gets this long to read why before its socket is closed.
REFUSAL_LINGER_S = 2.0


class Listener:
    """Accepts clients on one socket and runs a session for each until closed."""

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        limits: QueueLimits,
        access: AccessControl | None = None,
    ) -> None:
        self._hub = hub
        self._sock = sock
        self._limits = limits
        self._access = access or AccessControl(AccessPolicy.open())
        self._sessions: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.create_task(self._accept_forever(), name="accept")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def accepting(self) -> bool:
        """Whether the accept loop is alive (the watchdog's health check)."""
        return not self._accepting.done()

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
            verdict = self._access.admit(str(address[0]), peer)
            if verdict is Verdict.NOT_ALLOWED:
                client.close()
                continue
            if verdict is Verdict.TOO_MANY:
                job = _refuse(client, self._access.too_many_text())
            else:
                job = self._serve(client, peer, read_only=verdict is Verdict.READ_ONLY)
            session = asyncio.create_task(job, name=f"session {peer}")
            self._sessions.add(session)
            session.add_done_callback(self._sessions.discard)

    async def _serve(self, client: socket.socket, peer: str, *, read_only: bool) -> None:
        try:
            if read_only:
                log.info("client %s is read-only (server.read_only)", peer)
            stream = SocketStream(client)
            connection = Connection(peer, stream, self._limits, read_only=read_only)
            await run_session(self._hub, stream, connection)
        finally:
            self._access.release()

    async def close(self) -> None:
        self._accepting.cancel()
        self._sock.close()
        for task in [self._accepting, *self._sessions]:
            task.cancel()
        for task in [self._accepting, *self._sessions]:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _refuse(client: socket.socket, text: str) -> None:
    """Tell a client why in one INDI message and close, without losing the message to a
    reset: what it sent is read and dropped until it closes too (bounded)."""
    loop = asyncio.get_running_loop()
    client.setblocking(False)
    try:
        await loop.sock_sendall(client, encode(Message(message=text, timestamp=timestamp_now())))
        client.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(REFUSAL_LINGER_S):
            while await loop.sock_recv(client, 4096):
                pass
    except (OSError, TimeoutError):
        pass
    finally:
        client.close()


async def start_tcp_server(
    hub: Hub,
    host: str,
    port: int,
    limits: QueueLimits = DEFAULT_LIMITS,
    access: AccessControl | None = None,
) -> Listener:
    """Listen for INDI clients on host:port (port 0 picks a free one)."""
    sock = socket.create_server((host, port), backlog=16, reuse_port=False)
    sock.setblocking(False)
    listener = Listener(hub, sock, limits, access)
    log.info("serving INDI on %s:%d", *listener.address)
    return listener
