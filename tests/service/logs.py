"""Waiting (bounded) for a line in a daemon's log."""

from __future__ import annotations

import asyncio

from tests.support.processes import Running


async def logged(proc: Running, text: str, timeout_s: float = 20) -> str:
    """The daemon's first log line containing text."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                for line in proc.log().splitlines():
                    if text in line:
                        return line
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{text!r} not logged within {timeout_s} s:\n{proc.log()}") from None
