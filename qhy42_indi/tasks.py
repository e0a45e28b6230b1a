"""Ending background tasks: cancel them and wait until they have stopped.

One place for the pattern every part of the daemon uses on stop (pollers, writers, readers,
exposures), so a stop always waits for the task's own clean-up before going on.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel each task (None and finished ones are fine) and wait until each has ended."""
    for task in tasks:
        if task is not None:
            task.cancel()
    for task in tasks:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
