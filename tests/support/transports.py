"""A byte stream for Connection objects in tests that need no socket."""

from __future__ import annotations

import asyncio


class FakeTransport:
    """A byte stream that records what it is given."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    async def recv(self, max_bytes: int) -> bytes:
        return b""

    async def send(self, data: bytes | memoryview) -> None:
        self.written.append(bytes(data))
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True
