"""The one thread that calls libqhyccd.

What it is for: libqhyccd is not thread-safe (reference 1.15), so every SDK call of the
process runs here, one after another, in the order submitted. The event loop submits a job
(a plain function that makes one or more SDK calls) with `await sdk_thread.run(job, ...)` and
never blocks; start-up and shut-down code outside a loop use `run_sync`.

What it is not: no SDK knowledge. A job that hangs in the SDK cannot be interrupted: `run`
stops waiting after `timeout_s` and raises `SdkTimeout`, and every later job waits behind the
hung one (and times out too), which the backend reports as a camera that stopped answering.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from qhy42_indi.backends.base import BackendError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0


class SdkTimeout(BackendError):
    """An SDK call did not return in time: the camera or its USB link stopped answering."""


@dataclass(slots=True)
class _Job:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    result: concurrent.futures.Future[Any]


class SdkThread:
    def __init__(self, name: str = "qhy42-sdk") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._stopping = False

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def submit(self, function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        if self._stopping or not self._thread.is_alive():
            raise BackendError("the SDK thread is not running")
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put(_Job(function, args, result))
        return result

    async def run(self, function: Callable[..., T], *args: Any,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
        """Run `function(*args)` on the SDK thread and return its result (or raise what it
        raised). Cancelling the caller does not stop a job that has begun."""
        future = asyncio.wrap_future(self.submit(function, *args))
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the job finishes, and a cancelled poller would then run on.
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            name = getattr(function, "__name__", repr(function))
            raise SdkTimeout(f"the SDK did not return from {name} within {timeout_s:g} s") \
                from None

    def run_sync(self, function: Callable[..., T], *args: Any,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
        """The same, for code outside the event loop (start-up, shut-down). Never call this
        from the event loop: it blocks until the job is done."""
        if threading.current_thread() is self._thread:
            return function(*args)
        try:
            return self.submit(function, *args).result(timeout_s)
        except concurrent.futures.TimeoutError:
            name = getattr(function, "__name__", repr(function))
            raise SdkTimeout(f"the SDK did not return from {name} within {timeout_s:g} s") \
                from None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the queued jobs, then end the thread."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.result.set_running_or_notify_cancel():
                continue
            try:
                value = job.function(*job.args)
            except BaseException as error:  # handed to the caller, whatever it is
                job.result.set_exception(error)
            else:
                job.result.set_result(value)
        log.debug("SDK thread ended")
