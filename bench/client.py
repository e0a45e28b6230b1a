"""A generic INDI BLOB client for benchmarks: commands exposures, receives and decodes images.

For: measuring any INDI server that serves a CCD (our daemon, indiserver + a libindi driver)
the way a fast client sees it. Over TCP it sends getProperties, CONNECTs the device, sets the
properties a scenario needs, enables BLOBs (`Also` on one connection, or the KStars style: the
main connection `Never` and a second connection `Only` for CCD1), then sends back-to-back
CCD_EXPOSURE commands, each waiting for the CCD1 setBLOBVector (decoded with pybase64) and for
CCD_EXPOSURE to leave Busy. It records when each command went out and when each image was
decoded (time.monotonic, which is CLOCK_MONOTONIC and so comparable across processes).
Listeners only receive; a stalled client enables BLOBs and never reads its socket.

Bytes in go through our sans-IO parser (qhy42_indi.indi.parser); nothing here is specific to
our daemon. Every wait is bounded.

Command line (prints one JSON record on stdout):
  python -m bench.client expose --port 7624 --device 'CCD Simulator' --frames 5 \
      --set SIMULATOR_SETTINGS.SIM_NOISE=0 --set CCD_FRAME_TYPE.FRAME_DARK=On
  python -m bench.client expose --local-socket qhy42.sock --device 'QHY CCD QHY42PRO-SIM01'
  python -m bench.client listen --port 7624 --device 'CCD Simulator'
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import mmap
import os
import select
import signal
import socket
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, Protocol

import pybase64

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
    DefVector,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    LightElement,
    Message,
    NewVector,
    NumberElement,
    ParseProblem,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser

BlobMode = Literal["also", "kstars"]
BLOB_MODES: Final = ("also", "kstars")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_TIMEOUT_S: Final = 15.0  # one reply, one property change, one frame
SETTLE_S: Final = 0.3  # defs still arriving after a CONNECT
MAX_MESSAGE_BYTES: Final = 1 << 30
MB: Final = 1e6

Value = float | int | str | bool


class BenchError(RuntimeError):
    """The server did not do what the benchmark needs (refused, closed, timed out)."""


class Unsupported(BenchError):
    """The device lacks a property or element the scenario requires: the figure is n/a."""


# ---- what the client keeps of the device ----------------------------------------------------


@dataclass(slots=True)
class Vector:
    """The latest known state of one property of the device."""

    kind: VectorKind
    state: PropertyState | None
    rule: SwitchRule | None
    values: dict[str, Value]  # in def order: float, str, or bool (switch On)


def _element_value(element: Any) -> Value:
    if isinstance(element, NumberElement):
        return element.value
    if isinstance(element, SwitchElement):
        return element.value is SwitchState.ON
    if isinstance(element, TextElement):
        return element.value
    if isinstance(element, LightElement):
        return str(element.value)
    return ""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded image. `decoded_at` is time.monotonic() right after base64 decoding."""

    decoded_at: float
    nbytes: int  # length after base64 decoding
    size: int  # the size attribute (decompressed size for .z formats)
    format: str
    b64_len: int  # base64 characters on the wire, whitespace excluded


@dataclass(frozen=True, slots=True)
class Setting:
    """Set elements of one property. Numbers and texts: the other elements keep their current
    values (libindi drivers ignore some vectors unless every element is sent). Switches: a
    value of True/'On' turns the element on; in a OneOfMany vector the others go Off.
    `required=False`: skipped, with a note, when the device lacks the property."""

    name: str
    values: Mapping[str, Value]
    required: bool = True


# ---- one TCP connection -----------------------------------------------------------------------

Predicate = Callable[[IndiMessage], bool]


class Writer(Protocol):
    """What a Link writes through: an asyncio transport, or the local socket's writer."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


def _take_attachment(fd: int, size: int) -> bytes:
    """What libindiclient does with an attached BLOB: map `size` bytes, copy, unmap, close."""
    try:
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as view:
            return bytes(view)
    finally:
        os.close(fd)


class Link(asyncio.Protocol):
    """One connection: bytes in through IndiParser, device state kept, CCD1 images decoded as
    they arrive, futures resolved by the first message that satisfies their predicate."""

    def __init__(self, device: str, blob_name: str = "CCD1") -> None:
        self.device = device
        self.blob_name = blob_name
        self.vectors: dict[str, Vector] = {}
        self.frames: list[Frame] = []
        self.first_frame_head = b""  # the first 2880 bytes of the first image (a FITS header)
        self.messages: deque[str] = deque(maxlen=20)  # the device's last <message>s
        self.problems: list[str] = []
        self.bytes_received = 0
        self.transport: Writer | None = None
        self._attachments: deque[int] = deque()  # descriptors received, not yet used
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parser = IndiParser(max_message_bytes=MAX_MESSAGE_BYTES)
        self._waiters: list[tuple[Predicate, asyncio.Future[IndiMessage]]] = []

    @classmethod
    async def open(cls, host: str, port: int, device: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                   blob_name: str = "CCD1") -> Link:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, link = await loop.create_connection(lambda: cls(device, blob_name), host,
                                                       port)
        except (OSError, TimeoutError) as error:
            raise BenchError(f"cannot connect to {host}:{port}: {error or 'timed out'}") from None
        return link

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        for item in self._parser.feed(data):
            if isinstance(item, ParseProblem):
                self.problems.append(item.reason)
            else:
                self._handle(item)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(BenchError("the server closed the connection"))
        self._waiters.clear()

    # messages

    def _handle(self, msg: IndiMessage) -> None:
        if isinstance(msg, DefVector) and msg.device == self.device:
            self.vectors[msg.name] = Vector(
                msg.kind, msg.state, msg.rule,
                {element.name: _element_value(element) for element in msg.elements})
        elif isinstance(msg, SetVector) and msg.device == self.device:
            if msg.kind is VectorKind.BLOB and msg.name == self.blob_name:
                self._decode(msg)
            vector = self.vectors.get(msg.name)
            if vector is not None:
                if msg.state is not None:
                    vector.state = msg.state
                if msg.kind is not VectorKind.BLOB:
                    for element in msg.elements:
                        vector.values[element.name] = _element_value(element)
        elif isinstance(msg, DelProperty) and msg.device == self.device:
            if msg.name is None:
                self.vectors.clear()
            else:
                self.vectors.pop(msg.name, None)
        elif isinstance(msg, Message) and msg.device in (self.device, None) and msg.message:
            self.messages.append(msg.message)
        if self._waiters:
            self._notify(msg)

    def _decode(self, msg: SetVector) -> None:
        for element in msg.elements:
            if not isinstance(element, BlobElement) or element.size <= 0:
                continue
            if not element.data_b64 and self._attachments:
                # attached="true": the image is in shared memory, as libindiclient takes it
                data = _take_attachment(self._attachments.popleft(), element.size)
            elif element.data_b64:
                try:
                    data = pybase64.b64decode(element.data_b64, validate=True)
                except ValueError as error:  # binascii.Error
                    self.problems.append(f"{self.blob_name}: bad base64: {error}")
                    return
            else:
                continue
            decoded_at = time.monotonic()
            if not self.frames:
                self.first_frame_head = bytes(data[:2880])
            self.frames.append(Frame(decoded_at, len(data), element.size, element.format,
                                     len(element.data_b64)))
            return  # one image per setBLOBVector

    def _notify(self, msg: IndiMessage) -> None:
        pending = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(msg):
                future.set_result(msg)
            else:
                pending.append((predicate, future))
        self._waiters = pending

    # API

    def expect(self, predicate: Predicate) -> asyncio.Future[IndiMessage]:
        """A future for the first message from now on that satisfies predicate."""
        future: asyncio.Future[IndiMessage] = asyncio.get_running_loop().create_future()
        if self.closed.done():
            future.set_exception(BenchError("the server closed the connection"))
        else:
            self._waiters.append((predicate, future))
        return future

    def send(self, msg: IndiMessage) -> None:
        if self.transport is None or self.transport.is_closing():
            raise BenchError("the connection is closed")
        self.transport.write(encode(msg))

    async def ping(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """A pingRequest round trip: everything sent before it has been handled."""
        uid = f"bench-{id(self):x}-{time.monotonic_ns()}"
        reply = self.expect(lambda m: isinstance(m, PingReply) and m.uid == uid)
        self.send(PingRequest(uid))
        await wait(reply, timeout_s, "pingReply")

    def last_messages(self) -> str:
        return " | ".join(list(self.messages)[-3:])

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.closed


async def wait(future: asyncio.Future[IndiMessage], timeout_s: float, what: str) -> IndiMessage:
    try:
        async with asyncio.timeout(timeout_s):
            return await future
    except TimeoutError:
        future.cancel()
        raise BenchError(f"no {what} within {timeout_s:g} s") from None


def _is_vector(msg: IndiMessage, device: str, name: str) -> bool:
    return isinstance(msg, DefVector | SetVector) and msg.device == device and msg.name == name


# ---- the client -------------------------------------------------------------------------------


@dataclass
class ClientRecord:
    """What one client saw: the result record of a run (JSON-ready through to_dict)."""

    role: Literal["command", "listen"]
    device: str
    blob_mode: BlobMode
    warmup: int = 0
    exposure_s: float = 0.0
    requested_frames: int = 0
    command_times: list[float] = field(default_factory=list)  # timed frames only
    frames: list[Frame] = field(default_factory=list)  # commander: timed only; listener: all
    started_at: float | None = None  # first timed command
    truncated: bool = False  # stopped early by the time budget
    error: str | None = None
    closed_by_server: bool = False
    parse_problems: int = 0
    notes: list[str] = field(default_factory=list)

    def timed_frames(self) -> list[Frame]:
        return self.frames if self.role == "command" else self.frames[self.warmup:]

    def summary(self, started_at: float | None = None) -> dict[str, Any]:
        """frames/s, decoded MB/s and latencies over the timed frames, from `started_at` (the
        commander's first timed command; a listener needs the commander's)."""
        start = self.started_at if started_at is None else started_at
        frames = self.timed_frames()
        out: dict[str, Any] = {"frames": len(frames), "fps": None, "mb_per_s": None,
                               "latency_median_ms": None, "latency_p95_ms": None}
        if start is None or not frames:
            return out
        elapsed = frames[-1].decoded_at - start
        if elapsed > 0:
            out["fps"] = len(frames) / elapsed
            out["mb_per_s"] = sum(frame.nbytes for frame in frames) / MB / elapsed
        if self.command_times:
            latencies = [(frame.decoded_at - sent) * 1e3
                         for frame, sent in zip(frames, self.command_times, strict=False)]
            out["latency_median_ms"] = statistics.median(latencies)
            out["latency_p95_ms"] = percentile(latencies, 95)
        return out

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["summary"] = self.summary()
        return record


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _LocalWriter:
    """Writes a Link's (small) commands to a non-blocking Unix socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view):]
            except BlockingIOError:
                select.select([], [self._sock], [], 1.0)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()


class LocalLink(Link):
    """A connection on the server's abstract Unix socket (indiserver -u, our --local-socket),
    read as libindiclient reads it: recvmsg, descriptors kept, attached images mapped."""

    @classmethod
    async def open_local(cls, path: str, device: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                         blob_name: str = "CCD1") -> LocalLink:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, "\0" + path)
        except (OSError, TimeoutError) as error:
            sock.close()
            raise BenchError(f"cannot connect to @{path}: {error or 'timed out'}") from None
        link = cls(device, blob_name)
        link.transport = _LocalWriter(sock)
        loop.add_reader(sock.fileno(), link._readable, sock)
        return link

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.connection_lost(None)
        while self._attachments:  # descriptors of frames never decoded
            os.close(self._attachments.popleft())

    def _readable(self, sock: socket.socket) -> None:
        room = socket.CMSG_SPACE(16 * array.array("i").itemsize)
        try:
            data, ancillary, _, _ = sock.recvmsg(1 << 20, room)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        for level, kind, payload in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self._attachments.extend(fds)
        if not data:
            if self.transport is not None:
                self.transport.close()
            self.connection_lost(None)
            return
        self.data_received(data)


class BlobClient:
    """The commanding client (and, with `listen`, a receive-only one).

    Use: `await open()`, `await connect_device()`, `await configure(settings)`,
    `await enable_blobs()`, then `await expose(...)` or `await listen(...)`; `await close()`."""

    def __init__(self, host: str, port: int, device: str, *, blob_mode: BlobMode = "also",
                 blob_name: str = "CCD1", timeout_s: float = DEFAULT_TIMEOUT_S,
                 local_path: str | None = None) -> None:
        self.host, self.port, self.device = host, port, device
        self.local_path = local_path  # the server's abstract Unix socket instead of TCP
        self.blob_mode: BlobMode = blob_mode
        self.blob_name = blob_name
        self.timeout_s = timeout_s
        self._main: Link | None = None
        self._blobs: Link | None = None
        self.notes: list[str] = []

    @property
    def main(self) -> Link:
        if self._main is None:
            raise BenchError("not open")
        return self._main

    @property
    def blobs(self) -> Link:
        """The connection the images arrive on."""
        if self._blobs is None:
            raise BenchError("BLOBs not enabled")
        return self._blobs

    async def open(self) -> None:
        """Connect and wait until the device has defined CONNECTION."""
        self._main = await self._open_link()
        defined = self.main.expect(lambda m: _is_vector(m, self.device, "CONNECTION"))
        self.main.send(GetProperties())
        await wait(defined, self.timeout_s, f"CONNECTION of {self.device!r}")

    async def connect_device(self) -> None:
        """CONNECT the device (if it is not already) and wait for its CCD properties."""
        link = self.main
        if link.vectors["CONNECTION"].values.get("CONNECT") is not True:
            connected = link.expect(lambda m: _is_vector(m, self.device, "CONNECTION") and (
                isinstance(m, SetVector) and m.state in (PropertyState.OK, PropertyState.ALERT)))
            link.send(NewVector(VectorKind.SWITCH, self.device, "CONNECTION", (
                SwitchElement("CONNECT", SwitchState.ON),
                SwitchElement("DISCONNECT", SwitchState.OFF))))
            reply = await wait(connected, self.timeout_s, "CONNECTION reply")
            if isinstance(reply, SetVector) and reply.state is PropertyState.ALERT:
                raise BenchError(f"CONNECT refused: {link.last_messages()}")
        deadline = time.monotonic() + self.timeout_s
        for name in ("CCD_EXPOSURE", self.blob_name):
            while name not in link.vectors:
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} not defined after CONNECT")
                await asyncio.sleep(0.02)
        await asyncio.sleep(SETTLE_S)

    async def configure(self, settings: Sequence[Setting]) -> None:
        for setting in settings:
            await self.apply(setting)

    async def apply(self, setting: Setting) -> None:
        """Send one property change and wait until the device reports those values in a
        state other than Busy (Alert is a refusal)."""
        link = self.main
        vector = link.vectors.get(setting.name)
        if vector is None:
            if setting.required:
                raise Unsupported(f"{setting.name} is not defined")
            self.notes.append(f"{setting.name} not defined: skipped")
            return
        missing = [name for name in setting.values if name not in vector.values]
        if missing:
            available = ", ".join(vector.values)
            raise Unsupported(f"{setting.name} has no {', '.join(missing)} (it has {available})")
        wanted = _wanted_values(vector, setting.values)
        elements = tuple(_new_element(vector.kind, name, value) for name, value in wanted.items())

        def answered(m: IndiMessage) -> bool:
            if not (isinstance(m, SetVector) and m.device == self.device
                    and m.name == setting.name):
                return False
            return m.state is PropertyState.ALERT or (
                m.state is not PropertyState.BUSY and _matches(link.vectors[setting.name], wanted))

        reply = link.expect(answered)
        link.send(NewVector(vector.kind, self.device, setting.name, elements))
        try:
            message = await wait(reply, self.timeout_s, f"{setting.name} reply")
        except BenchError as error:
            now = link.vectors.get(setting.name)
            raise BenchError(f"{error} (asked {wanted}, it reports "
                             f"{now.values if now else None})") from None
        if isinstance(message, SetVector) and message.state is PropertyState.ALERT:
            raise BenchError(f"{setting.name} refused (Alert): {link.last_messages()}")

    async def command(self, setting: Setting) -> None:
        """Send one property change that starts something (an exposure, the stream, a
        recording) and wait for the device's first answer, whatever its state: the action
        runs on after it, Busy. Alert is a refusal."""
        link = self.main
        vector = link.vectors.get(setting.name)
        if vector is None:
            raise Unsupported(f"{setting.name} is not defined")
        wanted = _wanted_values(vector, setting.values)
        elements = tuple(_new_element(vector.kind, name, value) for name, value in wanted.items())
        reply = link.expect(lambda m: isinstance(m, SetVector) and m.device == self.device
                            and m.name == setting.name)
        link.send(NewVector(vector.kind, self.device, setting.name, elements))
        message = await wait(reply, self.timeout_s, f"{setting.name} reply")
        if isinstance(message, SetVector) and message.state is PropertyState.ALERT:
            raise BenchError(f"{setting.name} refused (Alert): {link.last_messages()}")

    async def expose_once(self, exposure_s: float) -> None:
        """One exposure, waited for until CCD_EXPOSURE leaves Busy (the image has gone out to
        the clients that take it); for a commander that does not take images itself."""
        link = self.main
        ended = link.expect(lambda m: isinstance(m, SetVector) and m.device == self.device
                            and m.name == "CCD_EXPOSURE" and m.state is not PropertyState.BUSY)
        link.send(NewVector(VectorKind.NUMBER, self.device, "CCD_EXPOSURE",
                            (NumberElement("CCD_EXPOSURE_VALUE", exposure_s),)))
        end = await wait(ended, self.timeout_s + exposure_s, "end of CCD_EXPOSURE")
        if isinstance(end, SetVector) and end.state is PropertyState.ALERT:
            raise BenchError(f"exposure failed: {link.last_messages()}")

    async def _open_link(self) -> Link:
        if self.local_path is not None:
            return await LocalLink.open_local(self.local_path, self.device, self.timeout_s,
                                              self.blob_name)
        return await Link.open(self.host, self.port, self.device, self.timeout_s,
                               self.blob_name)

    async def enable_blobs(self) -> None:
        """`also`: enableBLOB Also on the main connection. `kstars`: the main connection Never,
        a second connection Only for CCD1. Returns once the server has taken it in."""
        if self.blob_mode == "also":
            self.main.send(EnableBlob(self.device, BlobEnable.ALSO))
            await self.main.ping(self.timeout_s)
            self._blobs = self.main
            return
        self.main.send(EnableBlob(self.device, BlobEnable.NEVER))
        await self.main.ping(self.timeout_s)
        link = await self._open_link()
        self._blobs = link
        defined = link.expect(lambda m: _is_vector(m, self.device, self.blob_name))
        link.send(GetProperties(device=self.device))
        await wait(defined, self.timeout_s, f"{self.blob_name} on the BLOB connection")
        link.send(EnableBlob(self.device, BlobEnable.ONLY, self.blob_name))
        await link.ping(self.timeout_s)

    async def expose(self, exposure_s: float, frames: int, *, warmup: int = 1,
                     budget_s: float | None = None,
                     on_started: Callable[[], None] | None = None) -> ClientRecord:
        """Back-to-back exposures: `warmup` untimed, then up to `frames` timed ones (fewer if
        `budget_s` runs out). Errors end the run and are kept in the record."""
        record = ClientRecord("command", self.device, self.blob_mode, warmup, exposure_s, frames)
        deadline = None
        try:
            for index in range(warmup + frames):
                timed = index >= warmup
                if timed and deadline is not None and time.monotonic() > deadline:
                    record.truncated = True
                    break
                if index == warmup and on_started is not None:
                    on_started()  # e.g. a CPU snapshot, just before the first timed command
                sent, frame = await self._one_exposure(exposure_s)
                if timed:
                    if record.started_at is None:
                        record.started_at = sent
                        deadline = None if budget_s is None else sent + budget_s
                    record.command_times.append(sent)
                    record.frames.append(frame)
        except BenchError as error:
            record.error = str(error)
        self._finish(record)
        return record

    async def _one_exposure(self, exposure_s: float) -> tuple[float, Frame]:
        main, blobs = self.main, self.blobs
        want = len(blobs.frames) + 1
        got_frame = blobs.expect(lambda m: len(blobs.frames) >= want)
        ended = main.expect(lambda m: isinstance(m, SetVector) and m.device == self.device
                            and m.name == "CCD_EXPOSURE" and m.state is not PropertyState.BUSY)
        sent = time.monotonic()
        main.send(NewVector(VectorKind.NUMBER, self.device, "CCD_EXPOSURE",
                            (NumberElement("CCD_EXPOSURE_VALUE", exposure_s),)))
        try:
            async with asyncio.timeout(self.timeout_s + exposure_s):
                done, _ = await asyncio.wait({got_frame, ended},
                                             return_when=asyncio.FIRST_COMPLETED)
                if got_frame not in done:
                    end = ended.result()
                    if isinstance(end, SetVector) and end.state is not PropertyState.OK:
                        raise BenchError(f"exposure ended {end.state} without an image: "
                                         f"{main.last_messages()}")
                await got_frame  # after Ok, or already there
                await ended  # CCD_EXPOSURE leaves Busy after the image, as libindi does it
        except TimeoutError:
            raise BenchError(f"no {self.blob_name} image within {self.timeout_s:g} s "
                             f"(CCD_EXPOSURE {main.vectors['CCD_EXPOSURE'].state}): "
                             f"{main.last_messages()}") from None
        finally:
            got_frame.cancel()
            ended.cancel()
        return sent, blobs.frames[want - 1]

    async def listen(self, frames: int | None, stop: asyncio.Event, *, warmup: int = 1,
                     timeout_s: float = 300.0) -> ClientRecord:
        """Receive until `frames` images (all of them, warm-up included), `stop`, the server
        closing, or timeout_s."""
        record = ClientRecord("listen", self.device, self.blob_mode, warmup,
                              requested_frames=frames or 0)
        blobs = self.blobs
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()),
                                              asyncio.shield(blobs.closed)]
        if frames is not None:
            waiters.append(blobs.expect(lambda m: len(blobs.frames) >= frames))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        record.frames = list(blobs.frames)
        self._finish(record)
        return record

    def _finish(self, record: ClientRecord) -> None:
        links = [link for link in (self._main, self._blobs) if link is not None]
        record.closed_by_server = any(link.closed.done() for link in links)
        record.parse_problems = sum(len(link.problems) for link in set(links))
        record.notes = list(self.notes)

    async def close(self) -> None:
        for link in (self._blobs, self._main):
            if link is not None:
                await link.close()


def _wanted_values(vector: Vector, changes: Mapping[str, Value]) -> dict[str, Value]:
    if vector.kind is VectorKind.SWITCH:
        on = {name for name, value in changes.items() if value in (True, "On", "on")}
        if vector.rule is SwitchRule.ONE_OF_MANY:
            return {name: name in on for name in vector.values}
        return {**vector.values, **{name: name in on for name in changes}}
    if vector.kind is VectorKind.NUMBER:
        return {**vector.values, **{name: float(value) for name, value in changes.items()}}
    return {**vector.values, **{name: str(value) for name, value in changes.items()}}


def _new_element(kind: VectorKind, name: str, value: Value) -> Any:
    if kind is VectorKind.SWITCH:
        return SwitchElement(name, SwitchState.ON if value is True else SwitchState.OFF)
    if kind is VectorKind.NUMBER:
        return NumberElement(name, float(value))
    if kind is VectorKind.TEXT:
        return TextElement(name, str(value))
    raise Unsupported(f"cannot set a {kind} vector")


def _matches(vector: Vector, wanted: Mapping[str, Value]) -> bool:
    for name, value in wanted.items():
        have = vector.values.get(name)
        if isinstance(value, float) and isinstance(have, float):
            if abs(have - value) > 1e-6 * max(1.0, abs(value)):
                return False
        elif have != value:
            return False
    return True


# ---- the stalled client -----------------------------------------------------------------------


def open_stalled_client(host: str, port: int, device: str,
                        timeout_s: float = DEFAULT_TIMEOUT_S) -> socket.socket:
    """A client that asks for everything, BLOBs included, and never reads its socket. The
    caller closes it. Its local port identifies the connection on the server side."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.sendall(encode(GetProperties()) + encode(EnableBlob(device, BlobEnable.ALSO)))
    return sock


# ---- command line -----------------------------------------------------------------------------


def parse_setting(text: str) -> Setting:
    """PROP.ELEMENT=VALUE, e.g. CCD_FRAME.WIDTH=2048 or CCD_FRAME_TYPE.FRAME_DARK=On."""
    key, sep, value = text.partition("=")
    prop, dot, element = key.rpartition(".")
    if not (sep and dot and prop and element):
        raise argparse.ArgumentTypeError(f"expected PROP.ELEMENT=VALUE, not {text!r}")
    return Setting(prop, {element: value})


def merge_settings(settings: Sequence[Setting]) -> list[Setting]:
    """One Setting per property, in first-mentioned order."""
    merged: dict[str, dict[str, Value]] = {}
    for setting in settings:
        merged.setdefault(setting.name, {}).update(setting.values)
    return [Setting(name, values) for name, values in merged.items()]


def _emit(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _listen_main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = BlobClient(args.host, args.port, args.device, blob_mode=args.blob_mode,
                        timeout_s=args.timeout)
    try:
        await client.open()
        await client.enable_blobs()
        _emit({"event": "ready"})
        record = await client.listen(args.frames, stop, warmup=args.warmup,
                                     timeout_s=args.max_seconds)
    except BenchError as error:
        record = ClientRecord("listen", args.device, args.blob_mode, error=str(error))
    finally:
        await client.close()
    _emit({"event": "result", "record": record.to_dict()})
    return 0 if record.error is None else 1


async def _expose_main(args: argparse.Namespace) -> int:
    client = BlobClient(args.host, args.port, args.device, blob_mode=args.blob_mode,
                        timeout_s=args.timeout, local_path=args.local_socket)
    try:
        await client.open()
        await client.connect_device()
        await client.configure(merge_settings(args.set))
        await client.enable_blobs()
        record = await client.expose(args.exposure, args.frames, warmup=args.warmup)
    except BenchError as error:
        record = ClientRecord("command", args.device, args.blob_mode, error=str(error))
    finally:
        await client.close()
    _emit({"event": "result", "record": record.to_dict()})
    return 0 if record.error is None else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    expose = commands.add_parser("expose", help="command exposures and time them")
    listen = commands.add_parser("listen", help="only receive images")
    for sub in (expose, listen):
        sub.add_argument("--host", default=DEFAULT_HOST)
        sub.add_argument("--port", type=int, default=7624)
        sub.add_argument("--device", required=True)
        sub.add_argument("--blob-mode", choices=BLOB_MODES, default="also")
        sub.add_argument("--warmup", type=int, default=1, help="untimed first frames")
        sub.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                         help="bound on each wait (s)")
    expose.add_argument("--frames", type=int, default=10, help="timed frames")
    expose.add_argument("--exposure", type=float, default=0.01, help="seconds")
    expose.add_argument("--local-socket", default=None, metavar="NAME",
                        help="the server's abstract Unix socket (shared-memory images) "
                             "instead of TCP")
    expose.add_argument("--set", type=parse_setting, action="append", default=[],
                        metavar="PROP.ELEMENT=VALUE")
    listen.add_argument("--frames", type=int, default=None,
                        help="stop after this many images, warm-up included")
    listen.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    runner = _expose_main if args.command == "expose" else _listen_main
    return asyncio.run(runner(args))


if __name__ == "__main__":
    sys.exit(main())
