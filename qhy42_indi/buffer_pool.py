"""Frame-sized buffers that are used again once nobody holds them any more.

What it is for: a fresh 8-16 MB buffer per frame costs the kernel's page faults and zeroing on
every frame (the allocator gives such sizes back to the system when they are freed); a buffer
that is reused has its pages already. A buffer handed out is never handed out again while
anything still refers to it: the frame handed on to clients, the FITS, the frame tap, and any
view of it (a numpy view or a memoryview keeps the buffer itself referenced), so a frame is
never overwritten under its readers. Holders must keep a strong reference (nothing in the
daemon keeps frames through weak references). `take` is for one thread at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]
T = TypeVar("T")

DEFAULT_CAPACITY = 4  # the one being filled, the one being delivered, the frame tap's, spare


def unheld(buffers: list[Any]) -> list[int]:
    """The indices of the buffers that nothing but the list refers to (the caller must hold
    none of them in a variable). An object nobody else refers to is looked at exactly as the
    buffers are, and its count is the one to match: the interpreter's own references differ
    between Python versions, and a guessed count could take a held buffer for a free one."""
    probes = [object()]
    probe = probes[0]
    free_count = sys.getrefcount(probe)
    del probe
    found = []
    for index in range(len(buffers)):  # enumerate's tuple would hold a reference
        buffer = buffers[index]
        if sys.getrefcount(buffer) == free_count:
            found.append(index)
    return found


class BufferPool(Generic[T]):
    """Up to `capacity` buffers, each reused once nothing but the pool refers to it."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._buffers: list[T] = []
        self._keys: list[Hashable] = []

    def take(self, key: Hashable, make: Callable[[], T]) -> T:
        """A buffer made by `make` for `key` (its shape, size ...) that nobody else holds:
        a pooled one, or a new one. Its contents are whatever it held last."""
        spare: int | None = None  # an unheld buffer of another key, to make room
        for index in unheld(self._buffers):
            if self._keys[index] == key:
                return self._buffers[index]
            spare = index
        fresh = make()
        if spare is not None:
            self._buffers[spare], self._keys[spare] = fresh, key
        elif len(self._buffers) < self._capacity:
            self._buffers.append(fresh)
            self._keys.append(key)
        return fresh

    def clear(self) -> None:
        """Forget every buffer (those still held live on with their holders)."""
        self._buffers.clear()
        self._keys.clear()


class PixelPool:
    """Frame arrays, C-ordered (rows, columns), uint16 for 16 bits, else uint8."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._pool: BufferPool[Pixels] = BufferPool(capacity)

    def take(self, shape: tuple[int, int], bit_depth: int) -> Pixels:
        dtype = np.dtype(np.uint16 if bit_depth == 16 else np.uint8)
        return self._pool.take((shape, dtype), lambda: np.empty(shape, dtype=dtype))
