"""Frame-sized buffers in memfds, so that a FITS built once reaches local clients as it is.

A plain FITS is written into one of these (camera/delivery.py); when a local client takes the
frame, server/local.py seals the buffer's memfd against writing and resizing and passes the
descriptor, with no copy. A sealed buffer is never used again (our mapping of it stays
writable, which the kernel allows with F_SEAL_FUTURE_WRITE, but nothing writes through it
once it was handed on); one that no local client took is reused, like any pooled buffer,
once nothing refers to it. The memfd of the next frame is allocated ahead, in a thread of its
own, while the camera exposes (`prepare_spare`): allocating a frame's pages is not done
between a frame and its clients. Where memfds cannot be sealed so (not Linux, or before 5.1)
the buffers are bytearrays, and local clients get a sealed copy.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import mmap
import os
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
        buffer._sealed = False
        buffer._seal_lock = threading.Lock()
        buffer._on_sealed = None
        weakref.finalize(buffer, _close, fd)
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


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class FitsBuffers:
    """Buffers of a given size for plain FITS files (`source(size)`), each used again once
    nothing refers to it and it was not sealed. Thread-safe: the encodes of several cameras
    run in parallel threads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, memfd: bool = HAVE_MEMFD) -> None:
        self._capacity = capacity
        self._memfd = memfd
        self._lock = threading.Lock()
        # Pooled as buffer_pool.py's BufferPool pools, but a sealed buffer is retired.
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
            room: int | None = None
            for index in unheld(self._buffers):
                if len(self._buffers[index]) == size and not _is_sealed(self._buffers[index]):
                    return self._buffers[index]
                room = index
            spare, self._spare = self._spare, None
            retired: list[MemfdBuffer | bytearray] = []
            if room is not None:  # out of the pool now: nobody else can take it
                retired.append(self._buffers.pop(room))
        # Made outside the lock: the loop takes it too (prepare_spare), and this can take ms.
        fresh = self._fresh(size, spare)
        with self._lock:
            if len(self._buffers) < self._capacity:
                self._buffers.append(fresh)
        if retired:
            # Unmapping a frame and freeing its pages takes a millisecond: not in the encode.
            self._background().submit(_release, retired)
        return fresh

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
        """If a buffer was sealed since, make its successor now, in the background. Called
        while the camera exposes: allocating a frame's pages (milliseconds of the kernel's
        time) then competes with nothing that a client waits for."""
        with self._lock:
            size = self._successor_size
            if size is None or self._preparing or self._spare is not None:
                return
            self._preparing = True
            self._successor_size = None
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


def _is_sealed(buffer: MemfdBuffer | bytearray) -> bool:
    return isinstance(buffer, MemfdBuffer) and buffer.sealed


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
