"""Alpaca discovery: answer an "alpacadiscovery1" datagram with {"AlpacaPort": N}.

IPv4 only, on the configured address and the discovery port (32227 unless configured). A
datagram that is not the discovery message gets no answer, and answers are rate-limited per
sender, so the responder cannot be used to flood a third party. Not here: the HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import cast

log = logging.getLogger(__name__)

DISCOVERY_MESSAGE = b"alpacadiscovery1"
MAX_ANSWERS_PER_S = 20  # to one sender; N.I.N.A. sends a few per search


class DiscoveryResponder(asyncio.DatagramProtocol):
    def __init__(self, alpaca_port: int) -> None:
        self.answer = json.dumps({"AlpacaPort": alpaca_port}).encode()
        self._transport: asyncio.DatagramTransport | None = None
        self._recent: dict[str, tuple[float, int]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if data.strip() != DISCOVERY_MESSAGE or self._transport is None:
            return
        host = str(addr[0])
        if not self._admit(host):
            return
        self._transport.sendto(self.answer, addr)

    def _admit(self, host: str) -> bool:
        now = time.monotonic()
        second, count = self._recent.get(host, (now, 0))
        if now - second >= 1.0:
            second, count = now, 0
        if count >= MAX_ANSWERS_PER_S:
            return False
        if len(self._recent) > 1024:
            self._recent.clear()
        self._recent[host] = (second, count + 1)
        return True


class Discovery:
    """The running responder; close() stops it."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport

    @property
    def port(self) -> int:
        return int(self._transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        self._transport.close()


async def start_discovery(host: str, port: int, alpaca_port: int) -> Discovery:
    """Answer discovery on host:port (host "" or "0.0.0.0": every IPv4 address, broadcasts
    included); OSError if the port cannot be had."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Other Alpaca servers on this machine may listen on the same port (not
        # SO_REUSEPORT, which would share out the unicast datagrams between them).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host if host not in ("", "::") else "0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DiscoveryResponder(alpaca_port), sock=sock)
    log.info("Alpaca discovery on %s:%d (AlpacaPort %d)", host, port, alpaca_port)
    return Discovery(transport)
