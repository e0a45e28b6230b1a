"""Byte streams over sockets and pipes, with independent read and write sides.

Why not asyncio's transports: a transport that fails to write closes both directions, so a
client that sends a command and hangs up at once (indi_setprop does) would lose that command
whenever a reply was still being written. Here a failed write only ends writing; what the
client sent before leaving is still read. Sending hands the caller's buffer to the kernel
piece by piece (no copy into a transport buffer), so one encoded frame serves every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Protocol


class ByteStream(Protocol):
    async def recv(self, max_bytes: int) -> bytes: ...

    async def send(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...


class SocketStream:
    """A connected non-blocking socket (TCP, Unix, or indiserver's socketpair).

    close() shuts the socket down at once (a pending recv returns b"", a pending send fails)
    but frees the descriptor only when no recv or send is in flight any more: asyncio keeps a
    selector registration for a pending call, and a descriptor number freed under it would be
    handed to the next client, whose reads the stale registration then breaks.

    A large send goes in SEND_CHUNK_BYTES pieces with a turn of the event loop between them:
    on loopback one send() can copy a whole 11 MB frame into the kernel in one call, and
    everything else on the loop (pings, other clients, the camera) would wait for it. A piece
    is a fraction of a millisecond of copying; smaller ones cost more turns of the loop per
    frame than they save."""

    SEND_CHUNK_BYTES = 1024 * 1024

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._in_flight = 0
        self._released = False

    async def recv(self, max_bytes: int) -> bytes:
        if self._closed:
            return b""
        self._in_flight += 1
        try:
            return await self._loop.sock_recv(self._sock, max_bytes)
        finally:
            self._done()

    async def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        chunk = self.SEND_CHUNK_BYTES
        self._in_flight += 1
        try:
            for start in range(0, len(view), chunk):
                if self._closed:
                    raise BrokenPipeError("stream closed")
                if start:
                    await asyncio.sleep(0)
                await self._loop.sock_sendall(self._sock, view[start:start + chunk])
        finally:
            self._done()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._release()

    def _done(self) -> None:
        self._in_flight -= 1
        if self._closed:
            self._release()

    def _release(self) -> None:
        if self._in_flight == 0 and not self._released:
            self._released = True
            self._sock.close()


class FdReadiness:
    """Waiting until a non-blocking descriptor can be read or written, for streams that do
    their own I/O (pipes, or sendmsg with descriptors). `close()` wakes every waiter, so a
    pending read returns and a pending write fails instead of hanging."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiting: set[asyncio.Future[None]] = set()
        self._watched: set[int] = set()
        self.closed = False

    async def wait(self, fd: int, *, for_write: bool) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        (self._loop.add_writer if for_write else self._loop.add_reader)(fd, wake)
        self._watched.add(fd)
        self._waiting.add(ready)
        try:
            await ready
        finally:
            self._waiting.discard(ready)
            if not self.closed:
                (self._loop.remove_writer if for_write else self._loop.remove_reader)(fd)

    def close(self) -> None:
        self.closed = True
        for fd in self._watched:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)


class PipeStream:
    """A pair of non-blocking file descriptors (driver mode when indiserver uses pipes)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._ready = FdReadiness()

    async def recv(self, max_bytes: int) -> bytes:
        while not self._ready.closed:
            try:
                return os.read(self._read_fd, max_bytes)
            except BlockingIOError:
                await self._ready.wait(self._read_fd, for_write=False)
        return b""

    async def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._ready.closed:
                raise BrokenPipeError("stream closed")
            try:
                view = view[os.write(self._write_fd, view) :]
            except BlockingIOError:
                await self._ready.wait(self._write_fd, for_write=True)

    def close(self) -> None:
        if self._ready.closed:
            return
        self._ready.close()
        for fd in {self._read_fd, self._write_fd}:
            with contextlib.suppress(OSError):
                os.close(fd)
