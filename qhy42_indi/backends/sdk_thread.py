"""The one thread that calls libqhyccd, and what happens when a call never returns.

What it is for: libqhyccd is not thread-safe (reference 1.15), so every SDK call of the
process runs here, one after another, in the order submitted. The event loop submits a job
(a plain function that makes one or more SDK calls) with `await sdk_thread.run(job, ...)` and
never blocks; start-up and shut-down code outside a loop use `run_sync`.

A call that hangs in the SDK (a USB link that stopped answering) cannot be interrupted, so
the thread limits what can pile up behind it:
- Every job has a kind (by default its function's name). At most one job of a kind waits
  (queued, not started) at a time. A second submission of that kind either shares the
  waiting job's result (`share=True`: reads whose answer is the same for every asker, such
  as the cooler reading) or is refused at once (SdkBusy, or CameraNotAnswering while the
  thread is stuck). The queue as a whole is bounded too (MAX_WAITING_JOBS).
- A caller that gives up (its timeout passed, or it was cancelled) withdraws its job: a job
  that has not started and that nobody else waits for never runs.
- Once the running job has outlived its timeout the thread is "not answering": the jobs
  waiting behind it fail with CameraNotAnswering, and every new submission fails the same way
  at once instead of waiting out its own timeout. When the stuck call returns, the thread
  answers again and jobs run as before.
- `defer` queues a clean-up job (closing a handle) that runs even behind a stuck call, and
  `wait_until_answering` lets a caller that would only queue behind the stuck call (an open)
  wait for it to return instead.

What it is not: no SDK knowledge. What the stuck job is doing is asked of an `activity`
callable (the library's current function name) only to name it in the error.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qhy42_indi.backends.base import BackendError, CameraBusy, CameraGone
from qhy42_indi.thread_names import name_this_thread

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
MAX_WAITING_JOBS = 32  # jobs of distinct kinds queued at once; more is a caller's bug
STOP_JOIN_S = 5.0


class CameraNotAnswering(CameraGone):
    """An SDK call did not return in time: the camera or its USB link stopped answering.
    Raised to every call made while that call is still stuck."""


class SdkTimeout(CameraNotAnswering):
    """This caller's own job did not finish within its timeout because an SDK call hung."""


class SdkBusy(CameraBusy):
    """The SDK thread cannot take this job now: one of its kind is already waiting (and the
    kind is not shared), or the queue is full. Nothing was queued."""


@dataclass(eq=False, slots=True)
class _Job:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    kind: str
    timeout_s: float
    deferred: bool = False  # clean-up: runs even behind a stuck call, never withdrawn
    waiters: int = 1
    started_s: float | None = None
    result: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class SdkThread:
    def __init__(self, name: str = "qhy42-sdk",
                 activity: Callable[[], str | None] | None = None,
                 max_waiting: int = MAX_WAITING_JOBS) -> None:
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._activity = activity or (lambda: None)
        self._max_waiting = max_waiting
        self._lock = threading.Condition()
        self._queue: collections.deque[_Job] = collections.deque()
        self._waiting: dict[str, _Job] = {}
        self._running: _Job | None = None
        self._stuck: _Job | None = None
        self._stuck_error: CameraNotAnswering | None = None
        self._answered: concurrent.futures.Future[None] | None = None
        self._stopping = False
        self.runs: collections.Counter[str] = collections.Counter()  # jobs run, by kind

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def answering(self) -> bool:
        """False while a call that outlived its timeout has not returned."""
        with self._lock:
            self._notice_overdue()
            return self._stuck is None

    @property
    def waiting(self) -> dict[str, int]:
        """How many jobs of each kind are queued (0 or 1 each)."""
        with self._lock:
            return dict(collections.Counter(job.kind for job in self._queue))

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    # ---- submitting

    def submit(self, function: Callable[..., T], *args: Any, kind: str | None = None,
               share: bool = False,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> concurrent.futures.Future[T]:
        """Queue a job (or join the waiting one of its kind, with `share`); its future."""
        return self._enqueue(function, args, _kind_of(function, kind), share, timeout_s,
                             False).result

    def defer(self, function: Callable[..., T], *args: Any, kind: str | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> concurrent.futures.Future[T]:
        """Queue a clean-up job that must run even if the camera is not answering now: it
        waits behind a stuck call and runs when that returns. A waiting one of its kind is
        shared. Nobody has to wait for it, and giving up on it does not withdraw it."""
        return self._enqueue(function, args, _kind_of(function, kind), True, timeout_s,
                             True).result

    async def run(self, function: Callable[..., T], *args: Any, kind: str | None = None,
                  share: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
        """Run `function(*args)` on the SDK thread and return its result (or raise what it
        raised). A caller that times out or is cancelled withdraws the job if it has not
        started; one that has begun cannot be stopped."""
        job = self._enqueue(function, args, _kind_of(function, kind), share, timeout_s, False)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the job finishes, and a cancelled poller would then run on.
            async with asyncio.timeout(timeout_s):
                # shielded: cancelling the wait must not cancel a job that others share
                result: T = await asyncio.shield(asyncio.wrap_future(job.result))
                return result
        except TimeoutError:
            if job.result.done() and not job.result.cancelled():
                late: T = job.result.result()  # it returned just as the wait ran out
                return late
            raise self._gave_up(job, timeout_s) from None
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    def run_sync(self, function: Callable[..., T], *args: Any, kind: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
        """The same, for code outside the event loop (start-up, shut-down). Never call this
        from the event loop: it blocks until the job is done."""
        if threading.current_thread() is self._thread:
            return function(*args)
        job = self._enqueue(function, args, _kind_of(function, kind), False, timeout_s, False)
        try:
            value: T = job.result.result(timeout_s)
            return value
        except concurrent.futures.TimeoutError:
            raise self._gave_up(job, timeout_s) from None

    async def wait_until_answering(self, timeout_s: float) -> None:
        """Return once no call is stuck (at once if none is). CameraNotAnswering if the stuck
        call has not returned within timeout_s; cancellable."""
        with self._lock:
            self._notice_overdue()
            answered, error = self._answered, self._stuck_error
        if answered is None:
            return
        log.info("waiting up to %g s for the stuck SDK call to return", timeout_s)
        # asyncio.wait neither cancels what it waits for nor swallows a cancellation
        done, _ = await asyncio.wait({asyncio.wrap_future(answered)}, timeout=timeout_s)
        if not done:
            raise CameraNotAnswering(f"{error}; it still had not returned after "
                                     f"{timeout_s:g} s more")

    def _enqueue(self, function: Callable[..., Any], args: tuple[Any, ...], kind: str,
                 share: bool, timeout_s: float, deferred: bool) -> _Job:
        with self._lock:
            if self._stopping or not self._thread.is_alive():
                raise BackendError("the SDK thread is not running")
            self._notice_overdue()
            if self._stuck is not None and not deferred:
                raise self._not_answering()
            waiting = self._waiting.get(kind)
            if waiting is not None:
                if share and waiting.args == args:
                    waiting.waiters += 1
                    return waiting
                raise SdkBusy(f"the SDK thread already has a {kind} job waiting")
            if len(self._queue) >= self._max_waiting:
                raise SdkBusy(f"the SDK thread has {len(self._queue)} jobs waiting")
            job = _Job(function, args, kind, timeout_s, deferred)
            self._queue.append(job)
            self._waiting[kind] = job
            self._lock.notify()
            return job

    # ---- giving up

    def _gave_up(self, job: _Job, timeout_s: float) -> BackendError:
        """What a caller whose wait timed out raises; its job is withdrawn if not started."""
        self._withdraw(job)
        with self._lock:
            if self._stuck is None and self._running is job:
                self._declare_stuck(job)  # its caller's patience is the job's timeout
            self._notice_overdue()
            if self._stuck is not None:
                return SdkTimeout(str(self._not_answering()))
            running = self._running
        # It waited behind a job that is slow but still within its own (longer) timeout.
        behind = f" behind {running.kind}" if running is not None else ""
        return SdkBusy(f"{job.kind} waited {timeout_s:g} s for the SDK thread{behind}")

    def _withdraw(self, job: _Job) -> None:
        """One caller less for the job; the last one cancels it if it has not started."""
        failed = None
        with self._lock:
            job.waiters -= 1
            if job.waiters > 0 or job.deferred or job.started_s is not None:
                return
            if job in self._queue:
                self._unqueue(job)
                failed = job
        if failed is not None:
            failed.result.cancel()

    def _unqueue(self, job: _Job) -> None:
        self._queue.remove(job)
        if self._waiting.get(job.kind) is job:
            del self._waiting[job.kind]

    # ---- not answering (lock held)

    def _notice_overdue(self) -> None:
        """Declare the thread stuck once the running job has outlived its timeout."""
        running = self._running
        if self._stuck is not None or running is None or running.started_s is None:
            return
        if time.monotonic() - running.started_s >= running.timeout_s:
            self._declare_stuck(running)

    def _declare_stuck(self, running: _Job) -> None:
        """From now on calls fail at once, and the jobs waiting behind fail now."""
        self._stuck = running
        call = self._activity() or running.kind
        self._stuck_error = CameraNotAnswering(self._message(call, running.timeout_s))
        self._answered = concurrent.futures.Future()
        log.warning("%s; later calls fail until it returns", self._stuck_error)
        for job in [job for job in self._queue if not job.deferred]:
            self._unqueue(job)
            job.result.set_exception(self._not_answering())

    def _not_answering(self) -> CameraNotAnswering:
        assert self._stuck_error is not None
        return CameraNotAnswering(str(self._stuck_error))

    @staticmethod
    def _message(call: str, timeout_s: float) -> str:
        return f"the camera stopped answering: {call} did not return within {timeout_s:g} s"

    # ---- stopping

    def stop(self, timeout_s: float = STOP_JOIN_S) -> None:
        """Finish the queued jobs, then end the thread. A stuck call is not waited for."""
        if not self._thread.is_alive():
            return
        with self._lock:
            self._stopping = True
            stuck = self._stuck is not None
            self._lock.notify()
        if threading.current_thread() is not self._thread and not stuck:
            self._thread.join(timeout_s)

    # ---- the thread

    def _serve(self) -> None:
        name_this_thread()
        while (job := self._take()) is not None:
            try:
                value = job.function(*job.args)
            except BaseException as error:  # handed to the caller, whatever it is
                self._finish(job)
                job.result.set_exception(error)
            else:
                self._finish(job)
                job.result.set_result(value)
        log.debug("SDK thread ended")

    def _take(self) -> _Job | None:
        with self._lock:
            while True:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if not self._queue:
                    return None
                job = self._queue.popleft()
                if self._waiting.get(job.kind) is job:
                    del self._waiting[job.kind]
                if job.result.set_running_or_notify_cancel():
                    job.started_s = time.monotonic()
                    self._running = job
                    self.runs[job.kind] += 1
                    return job

    def _finish(self, job: _Job) -> None:
        """The job returned: if it was the stuck one, the thread answers again. Done before
        its result is set, so that whoever wakes on it can submit at once."""
        answered = None
        with self._lock:
            self._running = None
            if self._stuck is job:
                assert job.started_s is not None
                log.warning("the stuck SDK call returned after %.1f s: the camera answers "
                            "again", time.monotonic() - job.started_s)
                answered, self._answered = self._answered, None
                self._stuck, self._stuck_error = None, None
        if answered is not None:
            answered.set_result(None)


def _kind_of(function: Callable[..., Any], kind: str | None) -> str:
    return kind or str(getattr(function, "__name__", repr(function)))
