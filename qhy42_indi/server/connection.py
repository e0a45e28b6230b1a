"""One client connection: what it asked to see, its BLOB policy and its bounded outbound queue.

Messages reach a connection already encoded (`Outgoing`), once for all connections; the
connection only decides whether this client gets it and queues references to the same
buffers. A writer task hands them to the stream, which sends straight from those buffers, so
a slow client fills its own queue and nobody else's. Past `drop_stream_bytes` behind, stream
frames are dropped for this client; past `max_behind_bytes` it is disconnected, as indiserver
does with -d and -m (reference indi-protocol.md 2.5). Science frames are never dropped for a
client that stays connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from qhy42_indi.indi.blobpolicy import BlobPolicy
from qhy42_indi.indi.encoder import encode_chunks
from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    IndiMessage,
    Message,
    SetVector,
    VectorKind,
)
from qhy42_indi.server.streams import ByteStream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueLimits:
    drop_stream_bytes: int | None = 5 * 1024 * 1024
    max_behind_bytes: int | None = 128 * 1024 * 1024


DEFAULT_LIMITS = QueueLimits()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message encoded once; the same chunks are queued to every connection that wants it."""

    chunks: tuple[bytes | memoryview, ...]
    nbytes: int
    device: str | None
    name: str | None
    is_blob: bool  # a setBLOBVector: subject to the BLOB policy
    is_stream: bool  # a video frame: may be dropped for a client that lags

    @classmethod
    def of(cls, message: IndiMessage) -> Outgoing:
        chunks = tuple(encode_chunks(message))
        device, name = _address(message)
        is_blob = isinstance(message, SetVector) and message.kind is VectorKind.BLOB
        is_stream = is_blob and any(
            isinstance(e, BlobElement) and "stream" in e.format
            for e in message.elements  # type: ignore[union-attr]
        )
        return cls(
            chunks=chunks,
            nbytes=sum(len(c) for c in chunks),
            device=device,
            name=name,
            is_blob=is_blob,
            is_stream=is_stream,
        )


def _address(message: IndiMessage) -> tuple[str | None, str | None]:
    if isinstance(message, DefVector | SetVector | DelProperty):
        return message.device, message.name
    if isinstance(message, Message):
        return message.device, None
    return None, None


@dataclass
class Interest:
    """Which devices and properties this client asked about (indiserver's findDevice)."""

    everything: bool = False
    devices: set[str] = field(default_factory=set)
    properties: set[tuple[str, str]] = field(default_factory=set)

    def add(self, device: str | None, name: str | None) -> None:
        if device is None or device == "*":
            self.everything = True
        elif name is None:
            self.devices.add(device)
        else:
            self.properties.add((device, name))

    def covers(self, device: str | None, name: str | None) -> bool:
        if device is None or self.everything or device in self.devices:
            return True
        return name is not None and (device, name) in self.properties


class Connection:
    """A client as the hub sees it. Create it, start `run_writer()`, call `offer()`."""

    def __init__(
        self,
        peer: str,
        stream: ByteStream,
        limits: QueueLimits = DEFAULT_LIMITS,
        *,
        read_only: bool = False,
    ) -> None:
        self.peer = peer
        self.read_only = read_only
        self.blob_policy = BlobPolicy()
        self.interest = Interest()
        self.frames_dropped = 0
        self._stream = stream
        self._limits = limits
        self._queue: deque[Outgoing] = deque()
        self._queued_bytes = 0
        self._in_flight_bytes = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._writing = True

    @property
    def closed(self) -> bool:
        return self._closed

    def bytes_behind(self) -> int:
        """What this client has yet to take: the queue and the message being sent."""
        return self._queued_bytes + self._in_flight_bytes

    def wants(self, out: Outgoing) -> bool:
        if not self.interest.covers(out.device, out.name):
            return False
        if out.is_blob:
            return out.device is not None and out.name is not None and (
                self.blob_policy.wants_blob(out.device, out.name)
            )
        return self.blob_policy.wants_other()

    def offer(self, out: Outgoing) -> None:
        """Queue a message if this client wants it, applying the lag bounds."""
        if self._closed or not self.wants(out):
            return
        self.send(out)

    def send(self, out: Outgoing) -> None:
        """Queue a message for this client regardless of interest (replies, its own defs)."""
        if self._closed or not self._writing:
            return
        behind = self.bytes_behind()
        limit = self._limits.max_behind_bytes
        if limit is not None and behind > 0 and behind + out.nbytes > limit:
            log.warning("client %s is %d bytes behind: disconnecting it", self.peer, behind)
            self.close()
            return
        drop_at = self._limits.drop_stream_bytes
        if out.is_stream and drop_at and behind > drop_at:
            self.frames_dropped += 1
            return
        self._queue.append(out)
        self._queued_bytes += out.nbytes
        self._drained.clear()
        self._wakeup.set()

    def send_messages(self, messages: Sequence[IndiMessage]) -> None:
        for message in messages:
            self.send(Outgoing.of(message))

    async def run_writer(self) -> None:
        """Send queued messages until the connection closes or the client stops taking them."""
        try:
            while not self._closed:
                if not self._queue:
                    self._drained.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                out = self._queue.popleft()
                self._queued_bytes -= out.nbytes
                self._in_flight_bytes = out.nbytes
                for chunk in out.chunks:
                    await self._stream.send(chunk)
                self._in_flight_bytes = 0
        except OSError as error:
            # Stop writing but keep the read side: what the client sent before it left
            # (indi_setprop sends and hangs up) is still read and acted on.
            log.info("client %s: write failed: %s", self.peer, error)
            self._writing = False
            self._queue.clear()
            self._queued_bytes = self._in_flight_bytes = 0
            self._drained.set()

    async def flush(self, timeout_s: float) -> None:
        """Wait (bounded) until everything queued has been handed to the client."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._queued_bytes = self._in_flight_bytes = 0
        self._wakeup.set()
        self._drained.set()
        self._stream.close()
