"""One client connection: what it asked to see, its BLOB policy and its bounded outbound queue.

Messages reach a connection already encoded (`Outgoing`), once for all connections; the
connection only decides whether this client gets it and queues references to the same
buffers. A frame given only as raw bytes gets its base64 once, in a worker thread, when the
first connection that needs it is about to send it (local clients take shared memory
instead, see local.py). A writer task hands them to the stream, which sends straight from
those buffers, so a slow client fills its own queue and nobody else's. Past
`drop_stream_bytes` behind, stream frames are dropped for this client; past
`max_behind_bytes` it is disconnected, as indiserver does with -d and -m (reference
indi-protocol.md 2.5). Science frames are never dropped for a client that stays connected.

A link that must never be dropped (ours to indiserver in driver mode, stdio.py) takes
`Overflow.DROP_BLOBS` instead: past `max_behind_bytes` every BLOB is dropped, other messages
queue on within `other_headroom_bytes` more, then they are dropped too; each episode is
logged loudly when it starts (and once a minute while it lasts) and when the reader is back.
So every queue has a bound, whichever way its reader fails.

A failure while writing never leaves a silent connection: a message that cannot be encoded is
skipped (nothing of it was sent yet), anything else ends the connection, both logged with
the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import pybase64

from qhy42_indi.indi.blobpolicy import BlobPolicy
from qhy42_indi.indi.encoder import Chunk, encode_chunks
from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    Element,
    IndiMessage,
    Message,
    SetVector,
    VectorKind,
)
from qhy42_indi.server.streams import ByteStream

log = logging.getLogger(__name__)


MIB = 1024 * 1024
# While a must-stay link is past its bound, the loud log line comes again this often, so a
# reader that never comes back does not fill our own stderr (indiserver reads it, or not).
SHORTFALL_REPORT_S = 60.0


class Overflow(enum.Enum):
    """What a connection does once it is `max_behind_bytes` behind."""

    DISCONNECT = "disconnect"  # a client, as indiserver treats its clients (-m)
    DROP_BLOBS = "drop BLOBs"  # our link to indiserver: a driver that quits loses the night


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The bounds of one connection's queue (bytes counted as `Outgoing.nbytes`)."""

    drop_stream_bytes: int | None = 5 * MIB  # stream frames dropped past this; None/0: never
    max_behind_bytes: int = 128 * MIB
    overflow: Overflow = Overflow.DISCONNECT
    # DROP_BLOBS only: how much further non-BLOB messages may still queue.
    other_headroom_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        if self.max_behind_bytes <= 0 or self.other_headroom_bytes < 0:
            raise ValueError(f"queue bounds must be positive: {self}")


DEFAULT_LIMITS = QueueLimits()


class FormFailed(Exception):
    """A form of a message (its base64, its shared memory) could not be made; the cause is
    chained. Nothing of the message has been sent when this is raised."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Outgoing:
    """A message encoded once; the same chunks are queued to every connection that wants it.

    `chunks` is the XML with base64 payloads, or None for a frame given only as raw bytes
    (BlobElement.data): `inline_chunks()` then makes it on first need. Any other form of the
    message (the shared-memory one for local clients) is made once through `shared()`.
    `nbytes` is what the lag bounds count: the base64 form (made or not) and, for a frame
    given as raw bytes, those bytes too, since a queued frame keeps both alive."""

    message: IndiMessage
    chunks: tuple[Chunk, ...] | None
    nbytes: int
    device: str | None
    name: str | None
    is_blob: bool  # a setBLOBVector: subject to the BLOB policy
    is_stream: bool  # a video frame: may be dropped for a client that lags
    _forms: dict[Callable[..., Any], asyncio.Future[Any]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def of(cls, message: IndiMessage) -> Outgoing:
        device, name = _address(message)
        is_blob = isinstance(message, SetVector) and message.kind is VectorKind.BLOB
        members = message.elements if isinstance(message, SetVector) and is_blob else ()
        is_stream = any(isinstance(e, BlobElement) and "stream" in e.format for e in members)
        chunks: tuple[Chunk, ...] | None = tuple(encode_chunks(message))
        nbytes = sum(len(c) for c in chunks or ())
        if any(_needs_base64(e) for e in members):
            # What was encoded has empty payloads; the base64 waits for a client wanting it.
            # A queued frame pins its raw bytes and its base64: the lag bounds count both,
            # so they bound the memory a lagging client can hold, not just the wire bytes.
            nbytes += sum(
                _base64_length(e) + _raw_length(e) for e in members if _needs_base64(e)
            )
            chunks = None
        return cls(
            message=message,
            chunks=chunks,
            nbytes=nbytes,
            device=device,
            name=name,
            is_blob=is_blob,
            is_stream=is_stream,
        )

    async def inline_chunks(self) -> tuple[Chunk, ...]:
        """The XML with base64 payloads (made now, once for everyone, if it was deferred)."""
        if self.chunks is not None:
            return self.chunks
        return await self.shared(_encode_with_base64)

    async def shared(self, build: Callable[[IndiMessage], T]) -> T:
        """`build(message)`, run once in a worker thread by whichever connection asks first;
        every connection gets that same result (or FormFailed, the build's exception as its
        cause). `build` is the key, so pass a module-level function. A caller that is
        cancelled does not cancel it for the rest."""
        job = self.start_form(build)
        try:
            return cast(T, await asyncio.shield(job))
        except Exception as error:
            raise FormFailed(f"{build.__name__} failed for {self.device} {self.name}") from error

    def start_form(self, build: Callable[[IndiMessage], T], *,
                   in_thread: bool = True) -> asyncio.Future[T]:
        """Start `build(message)` now, if nobody has (see `shared`): in a worker thread, or
        (in_thread False, for a build that takes microseconds) here."""
        job = self._forms.get(build)
        if job is None:
            if in_thread:
                job = asyncio.ensure_future(asyncio.to_thread(build, self.message))
            else:
                job = asyncio.get_running_loop().create_future()
                try:
                    job.set_result(build(self.message))
                except Exception as error:
                    job.set_exception(error)
            job.add_done_callback(_retrieve_outcome)
            self._forms[build] = job
        return job


def _retrieve_outcome(job: asyncio.Future[Any]) -> None:
    # Marks the exception as seen when every caller was cancelled before it came.
    if not job.cancelled():
        job.exception()


def _byte_length(data: bytes | memoryview) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


def _needs_base64(element: Element) -> bool:
    return (
        isinstance(element, BlobElement)
        and element.data is not None
        and _byte_length(element.data) > 0
        and _byte_length(element.data_b64) == 0
    )


def _raw_length(element: Element) -> int:
    data = element.data if isinstance(element, BlobElement) else None
    return 0 if data is None else _byte_length(data)


def _base64_length(element: Element) -> int:
    data = element.data if isinstance(element, BlobElement) else None
    return 0 if data is None else 4 * ((_byte_length(data) + 2) // 3)


def _with_base64(element: Element) -> Element:
    if isinstance(element, BlobElement) and element.data is not None and _needs_base64(element):
        return replace(element, data_b64=pybase64.b64encode(element.data))
    return element


def _encode_with_base64(message: IndiMessage) -> tuple[Chunk, ...]:
    """Blocking (run in a worker thread): the inline form of a frame whose base64 was left
    to the server."""
    if isinstance(message, SetVector):
        message = replace(message, elements=tuple(_with_base64(e) for e in message.elements))
    return tuple(encode_chunks(message))


def _address(message: IndiMessage) -> tuple[str | None, str | None]:
    if isinstance(message, DefVector | SetVector | DelProperty):
        return message.device, message.name
    if isinstance(message, Message):
        return message.device, None
    return None, None


@dataclass
class _Shortfall:
    """What a must-stay link has lost since it last kept up."""

    frames: int = 0
    others: int = 0
    reported_at: float = -math.inf


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
        upstream: bool = False,
    ) -> None:
        self.peer = peer
        self.read_only = read_only
        self.since = time.time()  # when it connected (the web page lists the clients)
        # indiserver, when we run as its driver: it forwards other drivers' properties that
        # we ask for (snooping), and takes our getProperties requests for them.
        self.upstream = upstream
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
        self._shortfall = _Shortfall()

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

    def ping_replied(self, uid: str) -> bool:
        """A pingReply from the peer; True if it answered a ping this connection sent (the
        link to indiserver paces its BLOBs by them)."""
        return False

    def offer(self, out: Outgoing) -> None:
        """Queue a message if this client wants it, applying the lag bounds."""
        if self._closed or not self.wants(out):
            return
        self.send(out)

    def send(self, out: Outgoing) -> None:
        """Queue a message for this client regardless of interest (replies, its own defs)."""
        if self._closed or not self._writing:
            return
        if not self._admit(out):
            return
        self._queue.append(out)
        self._queued_bytes += out.nbytes
        self._drained.clear()
        self._wakeup.set()

    def _admit(self, out: Outgoing) -> bool:
        """Whether the lag bounds let this message into the queue (indiserver's q2Clients:
        the stream bound first, then the hard one)."""
        behind = self.bytes_behind()
        limits = self._limits
        drop_at = limits.drop_stream_bytes
        if out.is_stream and drop_at and behind > drop_at:
            self.frames_dropped += 1
            return False
        if behind == 0 or behind + out.nbytes <= limits.max_behind_bytes:
            self._caught_up()
            return True
        if limits.overflow is Overflow.DISCONNECT:
            log.warning("client %s is %d bytes behind: disconnecting it", self.peer, behind)
            self.close()
            return False
        return self._admit_past_bound(out, behind)

    def _admit_past_bound(self, out: Outgoing, behind: int) -> bool:
        """Past the hard bound on a link that must stay up: BLOBs are dropped; the rest is
        small and is what keeps the clients' picture of every property right, so it queues
        on until the headroom is used up too."""
        ceiling = self._limits.max_behind_bytes + self._limits.other_headroom_bytes
        if not out.is_blob and behind + out.nbytes <= ceiling:
            return True
        if out.is_blob:
            self.frames_dropped += 1
            self._shortfall.frames += 1
        else:
            self._shortfall.others += 1
        self._report_shortfall(behind)
        return False

    def _report_shortfall(self, behind: int) -> None:
        shortfall = self._shortfall
        now = time.monotonic()
        if now - shortfall.reported_at < SHORTFALL_REPORT_S:
            return
        log.error(
            "%s has not read %d bytes of our output, past the %d-byte bound: dropping every "
            "frame (science frames too) until it reads again (dropped so far: %d frames, %d "
            "other messages). Not disconnecting: it runs this driver.",
            self.peer, behind, self._limits.max_behind_bytes, shortfall.frames,
            shortfall.others,
        )
        shortfall.reported_at = now

    def _caught_up(self) -> None:
        shortfall = self._shortfall
        if shortfall.frames or shortfall.others:
            log.warning("%s reads again: %d frames and %d other messages were dropped while "
                        "it did not", self.peer, shortfall.frames, shortfall.others)
            self._shortfall = _Shortfall()

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
                await self._write_or_skip(out)
                # Let go of it now, not at the next message: the last holder frees the frame.
                del out
                self._in_flight_bytes = 0
        except OSError as error:
            # Stop writing but keep the read side: what the client sent before it left
            # (indi_setprop sends and hangs up) is still read and acted on.
            log.info("client %s: write failed: %s", self.peer, error)
            self._writing = False
            self._queue.clear()
            self._queued_bytes = self._in_flight_bytes = 0
            self._drained.set()
        except Exception:
            # A bug below us, and the stream may hold half a message: end it, loudly, rather
            # than leave a client that hears nothing.
            log.exception("client %s: writing failed: closing the connection", self.peer)
            self.close()

    async def _write_or_skip(self, out: Outgoing) -> None:
        try:
            await self._write(out)
        except FormFailed:
            # Forms are made before the first byte goes, so the stream is intact: this one
            # message is lost (for every client, they share the form), the connection is not.
            log.exception("client %s: %s %s not sent", self.peer, out.device, out.name)

    async def _write(self, out: Outgoing) -> None:
        """Hand one message to the stream, base64 payloads inline (local.py overrides it)."""
        for chunk in await out.inline_chunks():
            await self._stream.send(chunk)

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
