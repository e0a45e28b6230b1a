"""Stopping background tasks: cancel_and_wait ends what it is given, waits for its clean-up,
logs its failure, and never swallows the cancellation of the task that called it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from qhy42_indi.tasks import TaskGroup, cancel_and_wait


async def test_a_cancelled_caller_stays_cancelled() -> None:
    cleaning = asyncio.Event()
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaning.set()
            await release.wait()  # a clean-up that takes its time

    worker = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    after_stop: list[str] = []

    async def stopper() -> None:
        await cancel_and_wait(worker)
        after_stop.append("went on after being cancelled")

    outer = asyncio.create_task(stopper())
    await cleaning.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled() and after_stop == []
    release.set()
    await asyncio.wait([worker])
    assert worker.cancelled()


async def test_it_waits_for_the_clean_up_and_logs_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned: list[str] = []

    async def fails_on_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)
            cleaned.append("done")
            raise RuntimeError("the clean-up broke")

    task = asyncio.create_task(fails_on_stop(), name="fragile")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="qhy42_indi.tasks"):
        await cancel_and_wait(task, None)
    assert cleaned == ["done"]
    assert "fragile" in caplog.text and "the clean-up broke" in caplog.text


async def test_a_task_group_keeps_its_tasks_and_their_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = TaskGroup("part")

    async def broken() -> None:
        raise ValueError("bad frame")

    with caplog.at_level(logging.ERROR, logger="qhy42_indi.tasks"):
        group.start(broken(), "one")
        sleeper = group.start(asyncio.sleep(3600), "two")
        await asyncio.sleep(0.01)
    assert "bad frame" in caplog.text and group.running == 1
    await group.cancel()
    assert sleeper.cancelled() and group.running == 0
