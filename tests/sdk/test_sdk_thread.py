"""The SDK thread when a job hangs: at most one job of a kind waits behind it, shared or
refused; callers that give up withdraw their jobs; once the hung job outlives its timeout
every call fails at once; clean-up jobs wait behind it; and it answers again once the job
returns. Plain Python jobs that block on an event stand in for a hung SDK call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from qhy42_indi.backends.base import CameraBusy, CameraGone
from qhy42_indi.backends.sdk_thread import CameraNotAnswering, SdkBusy, SdkThread, SdkTimeout

LONG_S = 3600.0  # a timeout no test waits out: a call that returns did not wait for it
GUARD_S = 60.0  # generous bound on waits that must end long before LONG_S


class Gate:
    """A job that blocks until opened, as a hung SDK call does."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def job(self) -> str:
        self.entered.set()
        self._open.wait(GUARD_S)
        return "returned"

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    blocker = Gate()
    yield blocker
    blocker.open()


@pytest.fixture
def thread(gate: Gate) -> Iterator[SdkThread]:
    sdk = SdkThread("test-sdk", activity=lambda: "GetQHYCCDParam")
    sdk.start()
    yield sdk
    gate.open()
    sdk.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(GUARD_S):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def reading() -> int:
    return 42


def writing(value: int) -> int:
    return value


async def hang(thread: SdkThread, gate: Gate, timeout_s: float = LONG_S) -> asyncio.Task[str]:
    """The gate's job, running on the thread."""
    task = asyncio.create_task(thread.run(gate.job, kind="hung", timeout_s=timeout_s))
    await until(gate.entered.is_set, "the hung job started")
    return task


async def stuck(thread: SdkThread, gate: Gate) -> None:
    """The gate's job, running past its timeout: the thread does not answer."""
    with pytest.raises(SdkTimeout) as timed_out:
        await (await hang(thread, gate, timeout_s=0.2))
    assert isinstance(timed_out.value, CameraGone)
    assert str(timed_out.value) == ("the camera stopped answering: GetQHYCCDParam did not "
                                    "return within 0.2 s")
    assert not thread.answering


async def test_reads_of_one_kind_share_the_one_job_waiting_behind_a_hung_call(
    thread: SdkThread, gate: Gate
) -> None:
    hung = await hang(thread, gate)
    readers = [asyncio.create_task(thread.run(reading, kind="read", share=True))
               for _ in range(20)]
    await asyncio.sleep(0)
    assert thread.waiting == {"read": 1}
    gate.open()
    assert await hung == "returned"
    assert await asyncio.gather(*readers) == [42] * 20
    assert thread.runs["read"] == 1


async def test_a_second_job_of_an_unshared_kind_is_refused_at_once(
    thread: SdkThread, gate: Gate
) -> None:
    hung = await hang(thread, gate)
    first = asyncio.create_task(thread.run(writing, 1, kind="write"))
    await asyncio.sleep(0)
    for value in range(2, 21):
        with pytest.raises(SdkBusy) as refused:
            await thread.run(writing, value, kind="write")
        assert isinstance(refused.value, CameraBusy)  # busy, not a lost camera
    assert thread.waiting == {"write": 1}
    gate.open()
    await hung
    assert await first == 1
    assert thread.runs["write"] == 1


async def test_shared_jobs_need_the_same_arguments(thread: SdkThread, gate: Gate) -> None:
    hung = await hang(thread, gate)
    first = asyncio.create_task(thread.run(writing, 1, kind="echo", share=True))
    await asyncio.sleep(0)
    with pytest.raises(SdkBusy):
        await thread.run(writing, 2, kind="echo", share=True)
    gate.open()
    await hung
    assert await first == 1


async def test_a_caller_that_gives_up_withdraws_its_job(thread: SdkThread, gate: Gate) -> None:
    hung = await hang(thread, gate)
    cancelled = asyncio.create_task(thread.run(reading, kind="cancelled"))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # one that waited out its own timeout behind a slow (not yet overdue) job: busy
    with pytest.raises(SdkBusy):
        await thread.run(reading, kind="timed out", timeout_s=0.1)
    assert thread.answering and thread.waiting == {}
    gate.open()
    await hung
    assert await thread.run(reading, kind="after") == 42  # the thread went past both
    assert thread.runs["cancelled"] == 0 and thread.runs["timed out"] == 0


async def test_a_shared_job_runs_while_one_of_its_callers_is_left(
    thread: SdkThread, gate: Gate
) -> None:
    hung = await hang(thread, gate)
    leaving = asyncio.create_task(thread.run(reading, kind="read", share=True))
    staying = asyncio.create_task(thread.run(reading, kind="read", share=True))
    await asyncio.sleep(0)
    leaving.cancel()
    gate.open()
    await hung
    assert await staying == 42
    assert leaving.cancelled() and thread.runs["read"] == 1


async def test_once_a_call_timed_out_every_call_fails_at_once_until_it_returns(
    thread: SdkThread, gate: Gate
) -> None:
    hung = await hang(thread, gate, timeout_s=0.2)
    waiting = asyncio.create_task(thread.run(reading, kind="queued", timeout_s=LONG_S))
    with pytest.raises(SdkTimeout):
        await hung
    with pytest.raises(CameraNotAnswering):
        await waiting  # failed when the thread was found stuck, not after LONG_S
    async with asyncio.timeout(GUARD_S):
        for _ in range(20):
            with pytest.raises(CameraNotAnswering, match="GetQHYCCDParam did not return"):
                await thread.run(reading, kind="read", share=True, timeout_s=LONG_S)
            with pytest.raises(CameraNotAnswering):
                thread.run_sync(reading, timeout_s=LONG_S)
    assert thread.waiting == {}
    gate.open()
    await until(lambda: thread.answering, "the thread answers again")
    assert await thread.run(reading, kind="read") == 42
    assert thread.runs["read"] == 1 and thread.runs["queued"] == 0


async def test_a_clean_up_job_waits_behind_the_stuck_call_and_runs_once(
    thread: SdkThread, gate: Gate
) -> None:
    await stuck(thread, gate)
    cleanups = [thread.defer(reading, kind="close") for _ in range(5)]
    assert thread.waiting == {"close": 1} and len({id(f) for f in cleanups}) == 1
    gate.open()
    async with asyncio.timeout(GUARD_S):
        assert await asyncio.wrap_future(cleanups[0]) == 42
    assert thread.runs["close"] == 1


async def test_waiting_until_answering_ends_when_the_stuck_call_returns(
    thread: SdkThread, gate: Gate
) -> None:
    await thread.wait_until_answering(0.0)  # nothing stuck: at once
    await stuck(thread, gate)
    with pytest.raises(CameraNotAnswering, match="still had not returned"):
        await thread.wait_until_answering(0.05)
    waiter = asyncio.create_task(thread.wait_until_answering(GUARD_S))
    for _ in range(10):
        await asyncio.sleep(0.01)
    assert not waiter.done() and thread.waiting == {}  # waits, queues nothing
    gate.open()
    await waiter
    assert await thread.run(reading) == 42


async def test_waiting_until_answering_can_be_cancelled(thread: SdkThread, gate: Gate) -> None:
    await stuck(thread, gate)
    waiter = asyncio.create_task(thread.wait_until_answering(GUARD_S))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.open()
    await until(lambda: thread.answering, "the thread answers again")


async def test_the_queue_is_bounded(gate: Gate) -> None:
    sdk = SdkThread("small-sdk", max_waiting=3)
    sdk.start()
    try:
        hung = await hang(sdk, gate)
        queued = [asyncio.create_task(sdk.run(writing, n, kind=f"job {n}")) for n in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(SdkBusy, match="3 jobs waiting"):
            await sdk.run(reading, kind="one too many")
        gate.open()
        await hung
        assert await asyncio.gather(*queued) == [0, 1, 2]
    finally:
        sdk.stop()
