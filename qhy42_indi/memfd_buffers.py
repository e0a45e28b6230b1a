"""Frame-sized buffers in memfds, so that a FITS built once reaches local clients as it is.

A plain FITS is written into one of these (camera/delivery.py); when a local client takes the
frame, server/local.py seals the buffer's memfd against writing and resizing and passes the
descriptor, with no copy: a read-only descriptor of its own (`reader`), never ours. Our mapping
stays writable (the kernel allows that with F_SEAL_FUTURE_WRITE), so a sealed buffer is
written again only once no other process has the file open or mapped: the kernel says so by
granting a write lease on our own read-only descriptor (`shared_elsewhere`), which it refuses
while any other open of the file lives, a client's mapping included. Until then it is not
touched; a buffer that no local client took is reused, like any pooled buffer, once nothing
here refers to it. When no sealed buffer has come back, the next frame's memfd is allocated
ahead, in a thread of its own, while the camera exposes (`prepare_spare`): allocating a
frame's pages is not done between a frame and its clients. Where memfds cannot be sealed so
(not Linux, or before 5.1) the buffers are bytearrays, and local clients get a sealed copy.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import mmap
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import cast

from qhy42_indi.buffer_pool import DEFAULT_CAPACITY, unheld
from qhy42_indi.thread_names import named_executor

log = logging.getLogger(__name__)

# Linux 5.1: no write() and no new writable mapping; ours, made before, stays.
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | F_SEAL_FUTURE_WRITE
F_SETSIG = getattr(fcntl, "F_SETSIG", 10)  # the signal a lease break sends (Linux)


def _can_seal_in_place() -> bool:
    """Whether memfds can be sealed while we keep our writable mapping (Linux 5.1)."""
    if not (sys.platform.startswith("linux") and hasattr(os, "memfd_create")):
        return False
    try:
        fd = os.memfd_create("indi-probe", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


HAVE_MEMFD = _can_seal_in_place()


class MemfdBuffer(mmap.mmap):
    """A shared, writable mapping of a whole memfd, its pages present from the start."""

    fd: int
    _probe: int | None  # our read-only open of the file, for the lease test; None: none made
    _sealed: bool
    _seal_lock: threading.Lock
    _on_sealed: weakref.WeakMethod[Callable[[int], None]] | None  # its pool's note

    @classmethod
    def create(cls, size: int) -> MemfdBuffer:
        fd = os.memfd_create("indi-blob", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            # MAP_POPULATE would hold the GIL for milliseconds (CPython's mmap keeps it): the
            # pages are faulted in by madvise, through ctypes, which lets it go.
            buffer = cls(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        try:
            _populate(buffer, fd)
        except BaseException:
            buffer.close()
            os.close(fd)
            raise
        buffer.fd = fd
        buffer._probe = _read_only_open(fd)
        if buffer._probe is not None:
            # A lease break would signal us with SIGIO, whose default ends the process: make
            # it a signal that is ignored unless handled.
            with contextlib.suppress(OSError):
                fcntl.fcntl(buffer._probe, F_SETSIG, signal.SIGURG)
        buffer._sealed = False
        buffer._seal_lock = threading.Lock()
        buffer._on_sealed = None
        weakref.finalize(buffer, _close, fd, buffer._probe)
        return buffer

    @property
    def sealed(self) -> bool:
        return self._sealed

    def seal(self) -> int:
        """Seal the memfd (once; from any thread) and return it, still ours: dup it to keep
        it. OSError when the kernel cannot seal it (then it is left as it was)."""
        with self._seal_lock:
            if not self._sealed:
                fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, SEALS)
                self._sealed = True
                on_sealed = self._on_sealed
                note_sealed = None if on_sealed is None else on_sealed()
                if note_sealed is not None:
                    note_sealed(len(self))
        return self.fd

    def reader(self) -> int:
        """A new read-only descriptor of the file, for a client (the caller closes it). Its
        own open, so `shared_elsewhere` sees it while it or a mapping made through it lives.
        Where /proc cannot reopen it, a duplicate of ours, and the buffer is never written
        again."""
        fd = _read_only_open(self.fd)
        if fd is None:
            self._probe = None  # a client holding our own open cannot be seen: not reused
            return os.dup(self.fd)
        return fd

    def shared_elsewhere(self) -> bool:
        """Whether anything but this object may still have the file open or mapped. The
        kernel grants a write lease on a read-only open only while it is the file's only
        one (and nothing has it open for writing); taken, the lease is let go at once.
        True when that cannot be asked."""
        probe = self._probe
        if probe is None:
            return True
        try:
            fcntl.fcntl(probe, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError:
            return True
        fcntl.fcntl(probe, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False


def _read_only_open(fd: int) -> int | None:
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _populate(buffer: mmap.mmap, fd: int) -> None:
    """Have every page of the mapping present and writable, so that the encode does not fault."""
    anchor = ctypes.c_char.from_buffer(buffer)
    address = ctypes.addressof(anchor)
    del anchor  # its export of the buffer would keep the mapping from being closed
    if _madvise is not None and _madvise(address, len(buffer), MADV_POPULATE_WRITE) == 0:
        return
    os.posix_fallocate(fd, 0, len(buffer))  # before Linux 5.14: the pages, not yet mapped


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int], int], function)


MADV_POPULATE_WRITE = 23  # Linux 5.14
_madvise = _libc_madvise()


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class FitsBuffers:
    """Buffers of a given size for plain FITS files (`source(size)`), each used again once
    nothing refers to it and, if it was sealed for a client, nobody else has it open or
    mapped. Thread-safe: the encodes of several cameras run in parallel threads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, memfd: bool = HAVE_MEMFD) -> None:
        self._capacity = capacity
        self._memfd = memfd
        self._lock = threading.Lock()
        # Pooled as buffer_pool.py's BufferPool pools, a sealed buffer only once it is back.
        self._buffers: list[MemfdBuffer | bytearray] = []
        self._spare: MemfdBuffer | None = None
        self._preparing = False
        self._successor_size: int | None = None  # of the last buffer sealed, not yet replaced
        self._preparer: concurrent.futures.ThreadPoolExecutor | None = None
        self._background_lock = threading.Lock()

    def __call__(self, size: int) -> bytearray:
        buffer = self._take(size)
        # An mmap is what build_fits needs of a bytearray: slices assigned, a writable buffer.
        return buffer  # type: ignore[return-value]

    def _take(self, size: int) -> MemfdBuffer | bytearray:
        with self._lock:
            free = unheld(self._buffers)
            index = self._writable_index(free, size)
            if index is not None:
                return self._buffers[index]
            spare, self._spare = self._spare, None
            retired: list[MemfdBuffer | bytearray] = []
            # Room for the new one: one of another size nobody holds, else, in a full pool,
            # the oldest nobody here holds (a sealed one a client still maps may come back
            # until then; the client keeps its pages either way). Out of the pool now:
            # nobody else can take it.
            other_size = [index for index in free if len(self._buffers[index]) != size]
            if other_size or (free and len(self._buffers) >= self._capacity):
                retired.append(self._buffers.pop((other_size or free)[0]))
        # Made outside the lock: the loop takes it too (prepare_spare), and this can take ms.
        fresh = self._fresh(size, spare)
        with self._lock:
            if len(self._buffers) < self._capacity:
                self._buffers.append(fresh)
        if retired:
            # Unmapping a frame and freeing its pages takes a millisecond: not in the encode.
            self._background().submit(_release, retired)
        return fresh

    def _writable_index(self, free: list[int], size: int) -> int | None:
        """The first of the unheld buffers `free` that has `size` and may be written."""
        for index in free:
            if len(self._buffers[index]) == size and _writable_again(self._buffers[index]):
                return index
        return None

    def _fresh(self, size: int, spare: MemfdBuffer | None) -> MemfdBuffer | bytearray:
        if not self._memfd:
            return bytearray(size)
        if spare is None or len(spare) != size:
            try:
                spare = MemfdBuffer.create(size)
            except OSError as error:  # out of memory or descriptors: local clients get a copy
                log.debug("no memfd for a frame: %s", error)
                return bytearray(size)
        spare._on_sealed = weakref.WeakMethod(self._note_sealed)
        return spare

    def _note_sealed(self, size: int) -> None:
        # No lock: the loop seals, and an encode may hold the lock while it makes a buffer.
        self._successor_size = size

    def prepare_spare(self) -> None:
        """If a buffer was sealed since and none of that size has come back, make its
        successor now, in the background. Called while the camera exposes: allocating a
        frame's pages (milliseconds of the kernel's time) then competes with nothing that a
        client waits for."""
        with self._lock:
            size = self._successor_size
            if size is None or self._preparing or self._spare is not None:
                return
            self._successor_size = None
            if self._writable_index(unheld(self._buffers), size) is not None:
                return  # a client let go of one: the next frame goes there
            self._preparing = True
        self._background().submit(self._prepare, size)

    def _background(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._background_lock:
            if self._preparer is None:
                self._preparer = named_executor("fits-memfd", 1)
            return self._preparer

    def _prepare(self, size: int) -> None:
        spare: MemfdBuffer | None = None
        try:
            spare = MemfdBuffer.create(size)
        except OSError as error:
            log.debug("no spare memfd: %s", error)
        with self._lock:
            self._preparing = False
            if self._spare is None:
                self._spare = spare


def _release(buffers: list[MemfdBuffer | bytearray]) -> None:
    for buffer in buffers:
        if isinstance(buffer, MemfdBuffer):
            buffer.close()
    buffers.clear()


def _writable_again(buffer: MemfdBuffer | bytearray) -> bool:
    """Not sealed, or sealed and no longer open or mapped anywhere else."""
    return not (isinstance(buffer, MemfdBuffer) and buffer.sealed and buffer.shared_elsewhere())


def memfd_of(payload: object) -> MemfdBuffer | None:
    """The memfd buffer `payload` is, whole (itself or a memoryview of all of it), else None."""
    if isinstance(payload, MemfdBuffer):
        return payload
    if isinstance(payload, memoryview) and isinstance(payload.obj, MemfdBuffer):
        whole = payload.obj
        # A contiguous view as long as the whole mapping is all of it.
        if payload.contiguous and payload.nbytes == len(whole):
            return whole
    return None
