"""A frame's work split into row ranges that run at once: the HDR splice and the tile
compression, whose numpy and cfitsio loops run without the GIL.

One range runs in the calling thread (a worker already: the event loop never waits here), the
others on a small pool made on first use and shared by every frame of that kind. The number of
ranges is bounded by the cores and by `most_threads`.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from qhy42_indi.thread_names import named_executor

T = TypeVar("T")


class RowWork:
    def __init__(self, name: str, most_threads: int) -> None:
        self.name = name
        self.most_threads = most_threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def groups(self, at_most: int) -> int:
        """How many ranges to split into, given the work has `at_most` natural pieces."""
        return max(1, min(self.most_threads, os.cpu_count() or 1, at_most))

    def run(self, work: Callable[[int, int], T], bounds: Sequence[int]) -> list[T]:
        """work(start, stop) for each pair of neighbouring bounds, the results in order."""
        spans = list(itertools.pairwise(bounds))
        if len(spans) == 1:
            return [work(*spans[0])]
        pool = self._shared_pool()
        futures = [pool.submit(work, start, stop) for start, stop in spans[1:]]
        first = work(*spans[0])
        return [first, *(future.result() for future in futures)]

    def _shared_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = named_executor(self.name, max(1, self.most_threads - 1))
            return self._pool
