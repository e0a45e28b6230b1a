"""Background tasks: start them owned, end them waited for, and never lose their errors.

`cancel_and_wait` is the one stop path every part of the daemon uses (pollers, writers,
readers, exposures): it cancels, then waits until each task has run its own clean-up. The
caller's own cancellation is never swallowed: a stop that is itself cancelled (DISCONNECT
while the daemon shuts down) ends at once, its tasks already told to stop.

`start_task` starts a long-lived task (a poller, a reader) whose failure is logged the moment
it happens, not when someone stops it. `TaskGroup` keeps the tasks a part starts in the
background (a recording being finished, a
burst watchdog): each one is referenced until it ends, its exception is retrieved and logged
(never "Task exception was never retrieved"), and the part can end them all on stop.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Tasks whose failure a done-callback logs already (start_task, TaskGroup).
_watched: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()


def start_task(coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A task whose failure is logged as soon as it ends with one. Keep a reference."""
    task = asyncio.create_task(coroutine, name=name)
    _watched.add(task)
    task.add_done_callback(log_failure)
    return task


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel each task (None and finished ones are fine) and wait until each has ended.

    A task's own failure is logged, not raised: the caller is stopping it. If the caller is
    cancelled while it waits, that cancellation propagates."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    if not pending:
        return
    await asyncio.wait(pending)
    for task in pending:
        if task not in _watched:
            log_failure(task)


def log_failure(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's exception and log it (cancellation is not a failure)."""
    if task.done() and not task.cancelled():
        error = task.exception()
        if error is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("task %s failed", name, exc_info=error)


class TaskGroup:
    """Tasks a part runs in the background, kept until they end, their errors logged."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, coroutine: Coroutine[Any, Any, T], name: str = "") -> asyncio.Task[T]:
        task = asyncio.create_task(coroutine, name=f"{self._name}: {name}" if name else None)
        self._tasks.add(task)
        _watched.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        log_failure(task)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every task started so far has ended (their errors are logged)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def cancel(self) -> None:
        await cancel_and_wait(*self._tasks)
