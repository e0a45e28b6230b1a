"""Accepting clients: one listening socket, access control, one session task per client.

TCP (tcp.py) and the local abstract socket (local.py) accept the same way; they differ only in
how they name a client, which address access control judges, and which stream and connection
serve it. A client over the limit is told why in one INDI message and closed; one not allowed
is closed without a word. Every session task is owned by the listener (ended on close) and
its failure logged; a client that cannot even be set up is closed and the loop goes on.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import Message
from qhy42_indi.indi.values import timestamp_now
from qhy42_indi.server.access import AccessControl, AccessPolicy, Verdict
from qhy42_indi.server.connection import Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import ByteStream
from qhy42_indi.tasks import TaskGroup, cancel_and_wait, start_task

log = logging.getLogger(__name__)

# A refused client gets this long to read why before its socket is closed.
REFUSAL_LINGER_S = 2.0


class Listener(abc.ABC):
    """Accepts clients on one socket and runs a session for each until closed."""

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        limits: QueueLimits,
        access: AccessControl | None,
        name: str,
    ) -> None:
        self._hub = hub
        self._sock = sock
        self._limits = limits
        self._access = access or AccessControl(AccessPolicy.open())
        self._sessions = TaskGroup(f"{name} sessions")
        self._accepting = start_task(self._accept_forever(), f"accept {name}")

    @property
    def accepting(self) -> bool:
        """Whether the accept loop is alive (the watchdog's health check)."""
        return not self._accepting.done()

    @abc.abstractmethod
    def _identify(self, client: socket.socket, address: Any) -> tuple[str, str]:
        """(the address access control judges, the client's name in logs)."""

    @abc.abstractmethod
    def _open(
        self, client: socket.socket, peer: str, read_only: bool
    ) -> tuple[ByteStream, Connection]:
        """The stream and connection that serve an admitted client."""

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, address = await loop.sock_accept(self._sock)
            except OSError as error:  # e.g. out of descriptors: keep serving the others
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            try:
                self._admit(client, address)
            except Exception:  # this client is lost, not the listener
                log.exception("client at %s could not be served", address)
                client.close()

    def _admit(self, client: socket.socket, address: Any) -> None:
        source, peer = self._identify(client, address)
        verdict = self._access.admit(source, peer)
        job: Coroutine[Any, Any, None]
        if verdict is Verdict.NOT_ALLOWED:
            client.close()
            return
        if verdict is Verdict.TOO_MANY:
            job = _refuse(client, self._access.too_many_text())
        else:
            job = self._serve(client, peer, read_only=verdict is Verdict.READ_ONLY)
        self._sessions.start(job, name=peer)

    async def _serve(self, client: socket.socket, peer: str, *, read_only: bool) -> None:
        try:
            if read_only:
                log.info("client %s is read-only (server.read_only)", peer)
            stream, connection = self._open(client, peer, read_only)
            await run_session(self._hub, stream, connection)
        finally:
            self._access.release()
            client.close()  # the stream has closed it, unless it failed before it had one

    async def close(self) -> None:
        self._sock.close()
        await cancel_and_wait(self._accepting)
        await self._sessions.cancel()


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
