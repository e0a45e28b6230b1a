"""The local socket: clients on the same host get frames as shared memory, with no base64.

libindiclient (KStars, pyindi-client) given the host `localhost:/tmp/indiserver` connects to
the abstract Unix socket `@/tmp/indiserver`, as indiserver serves it with -u. On that socket a
BLOB member arrives as `<oneBLOB name size format len attached="true"/>` with its bytes in a
memfd passed beside the message (SCM_RIGHTS, one descriptor per attached member, in member
order, sent with the first bytes of the message). The client maps `size` bytes of it
read-only, copies them (or keeps the mapping, with enableDirectBlobAccess), unmaps and closes
the descriptor, and sends nothing back. Everything else goes as ordinary bytes.

Each frame gets one memfd, sealed against writing and resizing, because the same descriptor
goes to every local client and none may change what the others read. Our own FITS is built in a
memfd already (memfd_buffers.py): it is sealed and passed as it is, on the loop, when the frame
is queued (microseconds: no copy). Any other payload is written into a new memfd once, in a
worker thread, as soon as a local client has the frame queued. Ours is closed when no
connection holds the frame any more; the kernel keeps the memory while a client still has it. A
client that stops reading would pin a frame per message waiting in its socket, so those frames
count towards its lag bounds until it has read them.
Linux only (abstract sockets, memfd sealing).
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import sys
import termios
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pybase64

from qhy42_indi.indi.encoder import Chunk, encode_chunks
from qhy42_indi.indi.messages import BlobElement, Element, IndiMessage, SetVector, VectorKind
from qhy42_indi.memfd_buffers import memfd_of
from qhy42_indi.server.access import LOCAL_ADDRESS, AccessControl
from qhy42_indi.server.connection import (
    DEFAULT_LIMITS,
    Connection,
    FormFailed,
    Outgoing,
    QueueLimits,
)
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.listener import Listener
from qhy42_indi.server.streams import ByteStream, FdReadiness

log = logging.getLogger(__name__)

DEFAULT_LOCAL_SOCKET = "/tmp/indiserver"  # libindi's INDIUNIXSOCK: what "localhost:" means
# libindi receives at most this many descriptors with one message (MAXFD_PER_MESSAGE).
MAX_ATTACHMENTS = 16
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


# ---- the shared-memory form of a frame --------------------------------------------------------


class SharedBuffers:
    """Sealed memfds holding payloads, in order; closed when this object is collected."""

    def __init__(self, payloads: Iterable[bytes | memoryview]) -> None:
        fds: list[int] = []
        try:
            for payload in payloads:
                fds.append(_sealed_memfd(payload))
        except BaseException:
            _close_all(fds)
            raise
        self.fds = tuple(fds)
        self._finalizer = weakref.finalize(self, _close_all, self.fds)

    def close(self) -> None:
        self._finalizer()


def _sealed_memfd(payload: bytes | memoryview) -> int:
    built = memfd_of(payload)
    if built is not None:
        # The FITS was built in a memfd (memfd_buffers.py): sealed, it goes as it is, through
        # a read-only open of its own (the pool sees when every client has let go of it).
        # This may run on the loop (_attaches_as_is), so a failure is not met with a copy
        # here: the connection sends that frame as base64 instead.
        built.seal()
        return built.reader()
    fd = os.memfd_create("indi-blob", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(payload).cast("B")
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass(frozen=True, slots=True)
class AttachedForm:
    """A message as local clients get it: XML without the attached payloads, and those."""

    chunks: tuple[Chunk, ...]
    buffers: SharedBuffers


def build_attached(message: IndiMessage) -> AttachedForm | None:
    """Blocking (run it through Outgoing.shared, in a worker thread). None when the message has
    nothing to attach; the connection then sends it inline as base64."""
    if not isinstance(message, SetVector) or message.kind is not VectorKind.BLOB:
        return None
    elements = tuple(_with_payload(e) for e in message.elements)
    attached = [e for e in elements if isinstance(e, BlobElement) and e.attachable]
    if not attached or len(attached) > MAX_ATTACHMENTS:
        return None
    if any(_lacks_base64(e) for e in elements):
        return None  # a raw .z payload beside them: rare, so the whole message goes inline
    message = replace(message, elements=elements)
    payloads = [e.data for e in attached if e.data is not None]
    return AttachedForm(tuple(encode_chunks(message, attach_blobs=True)), SharedBuffers(payloads))


def _attaches_as_is(message: IndiMessage) -> bool:
    """Whether every payload of this BLOB message is a FITS built in a memfd: its attached
    form is then made in microseconds (seals and the XML, no copy)."""
    if not isinstance(message, SetVector):
        return False
    payloads = [e.data for e in message.elements if isinstance(e, BlobElement) and e.size > 0]
    return bool(payloads) and all(memfd_of(data) is not None for data in payloads)


def _with_payload(element: Element) -> Element:
    """The member with its raw bytes, decoding the base64 when the producer gave only that (as
    indiserver does for a driver that sends base64)."""
    if (
        not isinstance(element, BlobElement)
        or element.data is not None
        or element.size <= 0
        or element.format.endswith(".z")  # size is the inflated length: not what we hold
        or not len(element.data_b64)
    ):
        return element
    try:
        # data_b64 is whitespace-free by contract, so the strict (fast) decoder applies.
        data = pybase64.b64decode(element.data_b64, validate=True)
    except ValueError:  # binascii.Error: not base64 after all; it goes inline as it is
        return element
    return replace(element, data=data)


def _lacks_base64(element: Element) -> bool:
    return (
        isinstance(element, BlobElement)
        and not element.attachable
        and element.data is not None
        and not len(element.data_b64)
    )


# ---- the stream -------------------------------------------------------------------------------


class LocalStream:
    """A connected Unix socket that can pass descriptors with what it sends.

    Reads and writes are independent, as in streams.py: a failed write only ends writing."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._ready = FdReadiness()

    async def recv(self, max_bytes: int) -> bytes:
        while not self._ready.closed:
            try:
                # Descriptors a client might send are not asked for, so the kernel closes them.
                return self._sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                await self._wait(for_write=False)
        return b""

    async def send(self, data: bytes | memoryview) -> None:
        await self.send_with_fds((data,), ())

    async def send_with_fds(self, chunks: Sequence[Chunk], fds: Sequence[int]) -> None:
        """Send the chunks in order; the descriptors go with the first bytes that leave."""
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                if self._ready.closed:
                    raise BrokenPipeError("stream closed")
                try:
                    sent = self._sock.sendmsg([view], ancillary, socket.MSG_NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    # Nothing left, descriptors included: they go with the next try.
                    await self._wait(for_write=True)
                    continue
                ancillary = []
                view = view[sent:]

    def unread_bytes(self) -> int:
        """What the client has not read yet of what we sent (kernel accounting, not payload
        bytes); 0 means it has read everything."""
        if self._ready.closed:
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, termios.TIOCOUTQ, count)
        except OSError:
            return 0
        return count[0]

    async def _wait(self, *, for_write: bool) -> None:
        await self._ready.wait(self._fd, for_write=for_write)

    def close(self) -> None:
        if self._ready.closed:
            return
        self._ready.close()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


# ---- the connection ---------------------------------------------------------------------------


class LocalConnection(Connection):
    """A client on the local socket: BLOBs as shared memory, the rest as usual."""

    def __init__(
        self, peer: str, stream: LocalStream, limits: QueueLimits = DEFAULT_LIMITS
    ) -> None:
        super().__init__(peer, stream, limits)
        self._local = stream
        self._unread_frame_bytes = 0
        self._attach_failed = False

    def send(self, out: Outgoing) -> None:
        super().send(out)
        if out.is_blob and self._queue and self._queue[-1] is out:
            # Its shared memory is made now, while the rest of the frame's work goes on,
            # rather than when the writer reaches it; here, if that is only sealing memfds.
            out.start_form(build_attached, in_thread=not _attaches_as_is(out.message))

    def bytes_behind(self) -> int:
        # Frames sent as descriptors stay pinned in the socket until the client reads them;
        # counted (all of them, conservatively) until its socket is read empty.
        if self._unread_frame_bytes and self._local.unread_bytes() == 0:
            self._unread_frame_bytes = 0
        return super().bytes_behind() + self._unread_frame_bytes

    async def _write(self, out: Outgoing) -> None:
        form = await self._attached_form(out) if out.is_blob else None
        if form is None:
            await super()._write(out)
            return
        await self._local.send_with_fds(form.chunks, form.buffers.fds)
        self._unread_frame_bytes += out.nbytes

    async def _attached_form(self, out: Outgoing) -> AttachedForm | None:
        try:
            return await out.shared(build_attached)
        except FormFailed as failure:  # e.g. out of memory or descriptors: base64 still works
            if not self._attach_failed:
                # Out of memory or descriptors is a condition; anything else is a bug to see.
                log.warning("client %s: frames go as base64: no shared memory: %s",
                            self.peer, failure.__cause__ or failure,
                            exc_info=not isinstance(failure.__cause__, OSError))
                self._attach_failed = True
            return None


# ---- the listener -----------------------------------------------------------------------------


class LocalListener(Listener):
    """Accepts local clients on an abstract Unix socket, one session each.

    Access control (access.py) judges them as the address 127.0.0.1: they are on this host."""

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        path: str,
        limits: QueueLimits,
        access: AccessControl | None = None,
    ) -> None:
        self.path = path
        self._accepted = 0
        super().__init__(hub, sock, limits, access, f"@{path}")

    def _identify(self, client: socket.socket, address: object) -> tuple[str, str]:
        self._accepted += 1
        return LOCAL_ADDRESS, f"@{self.path}#{self._accepted}{_peer_process(client)}"

    def _open(
        self, client: socket.socket, peer: str, read_only: bool
    ) -> tuple[ByteStream, Connection]:
        stream = LocalStream(client)
        connection = LocalConnection(peer, stream, self._limits)
        connection.read_only = read_only
        return stream, connection


def _peer_process(client: socket.socket) -> str:
    ucred = struct.Struct("3i")  # pid, uid, gid
    try:
        pid, _, _ = ucred.unpack(client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   ucred.size))
    except OSError:
        return ""
    return f" (pid {pid})"


async def start_local_server(
    hub: Hub,
    path: str = DEFAULT_LOCAL_SOCKET,
    limits: QueueLimits = DEFAULT_LIMITS,
    access: AccessControl | None = None,
) -> LocalListener | None:
    """Listen on the abstract socket @path. When that cannot be done (another server has it,
    not Linux) say why in one log line and return None: the TCP server goes on without it."""
    if not sys.platform.startswith("linux"):
        log.warning("local socket @%s not served: it needs Linux (abstract sockets, memfd)", path)
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # A leading NUL names an abstract socket: no file, gone when we close it. The address
        # length is libindi's (the name without a trailing NUL), so its clients find it.
        sock.bind("\0" + path)
        sock.listen(16)
    except OSError as error:
        sock.close()
        hint = ""
        if error.errno == errno.EADDRINUSE:
            hint = (" (another indiserver or qhy42-indi has it: give this one another"
                    " --local-socket PATH, or --no-local-socket)")
        log.error("local socket @%s not served: %s%s", path, error.strerror or error, hint)
        return None
    sock.setblocking(False)
    listener = LocalListener(hub, sock, path, limits, access)
    log.info("serving INDI to local clients (shared-memory BLOBs) on @%s", path)
    return listener
