"""A small asyncio INDI client for tests: raw bytes out, typed messages in.

`async with IndiClient.connect(host, port) as client:` then `await client.send(...)` and
`await client.wait_for(predicate)`. Every message received is kept in `client.received`, so a
test can assert on the order of what arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import (
    DefVector,
    IndiMessage,
    ParseProblem,
    SetVector,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser

DEFAULT_WAIT_S = 20.0


@dataclass
class IndiClient:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[IndiMessage] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)
    _parser: IndiParser = field(default_factory=lambda: IndiParser(max_message_bytes=1 << 30))
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _eof: bool = False

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, host: str, port: int) -> AsyncIterator[IndiClient]:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        client = cls(reader, writer)
        pump = asyncio.create_task(client._pump())
        try:
            yield client
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 20)
                if not data:
                    break
                items = self._parser.feed(data)
                async with self._arrived:
                    for item in items:
                        if isinstance(item, ParseProblem):
                            self.problems.append(item)
                        else:
                            self.received.append(item)
                    self._arrived.notify_all()
        finally:
            async with self._arrived:
                self._eof = True
                self._arrived.notify_all()

    @property
    def closed_by_server(self) -> bool:
        return self._eof

    async def send(self, data: bytes | str | IndiMessage) -> None:
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            data = encode(data)
        self.writer.write(data)
        await self.writer.drain()

    async def wait_for(
        self,
        predicate: Callable[[IndiMessage], bool],
        timeout_s: float = DEFAULT_WAIT_S,
        *,
        start: int = 0,
    ) -> IndiMessage:
        """The first message from index `start` on that satisfies predicate."""

        def find() -> IndiMessage | None:
            return next((m for m in self.received[start:] if predicate(m)), None)

        async with asyncio.timeout(timeout_s), self._arrived:
            while (found := find()) is None:
                if self._eof:
                    raise ConnectionError("server closed the connection")
                await self._arrived.wait()
            return found

    async def wait_quiet(self, quiet_s: float = 0.3) -> None:
        """Wait until nothing has arrived for quiet_s seconds."""
        count = -1
        while count != len(self.received):
            count = len(self.received)
            await asyncio.sleep(quiet_s)


def is_def(name: str) -> Callable[[IndiMessage], bool]:
    return lambda m: isinstance(m, DefVector) and m.name == name


def is_set(name: str, state: str | None = None) -> Callable[[IndiMessage], bool]:
    return lambda m: (
        isinstance(m, SetVector) and m.name == name and (state is None or m.state == state)
    )


def is_blob(m: IndiMessage) -> bool:
    return isinstance(m, SetVector) and m.kind is VectorKind.BLOB
