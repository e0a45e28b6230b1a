"""The SDK backend when a libqhyccd call hangs (the stub's QHY42_STUB_HANG_FILE): the caller
gets CameraNotAnswering after the timeout, calls made meanwhile leave at most one job of a
kind behind the hung one, calls fail at once while it hangs, open() waits for it instead of
queueing, and once it returns close() + open() leave exactly one handle open. Over the wire:
a daemon whose cooler poll hangs reports the camera gone and picks it up again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from qhy42_indi.backends.base import CameraGone, CoolerState
from qhy42_indi.backends.qhysdk import SdkBackend, SdkRuntime
from qhy42_indi.backends.sdk_setup import CALL_TIMEOUT_ENV, sdk_cameras_async
from qhy42_indi.backends.sdk_thread import CameraNotAnswering, SdkTimeout
from tests.sdk.daemon import sdk_daemon
from tests.sdk.stub import HangFile, StubHooks
from tests.support.camera import answered, connect_camera, set_numbers
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST

CALL_TIMEOUT_S = 1.0  # short, for the tests; the daemon waits 30 s
LONG_S = 3600.0  # a timeout no test waits out: a call that returns did not wait for it
GUARD_S = 60.0  # generous bound on waits that must end long before LONG_S
STUB_ID = "QHY42PRO-0123456789abcdef"
STUB_DEVICE = "QHY CCD QHY42PRO-012345"
COOLER = "cooler reading"


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(GUARD_S):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def settle(runtime: SdkRuntime) -> None:
    """Wait (blocking) until no call is stuck and the queue is empty."""
    deadline = time.monotonic() + GUARD_S
    while (not runtime.thread.answering or runtime.thread.waiting) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    runtime.thread.run_sync(lambda: None)  # and whatever ran before it has finished


@pytest.fixture
def hang_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              runtime: SdkRuntime) -> Iterator[HangFile]:
    """GetQHYCCDParam hangs while the file exists; released (and settled) at the end."""
    hang = HangFile(tmp_path / "hang")
    monkeypatch.setenv(HangFile.env_name, str(hang.path))
    yield hang
    hang.release()
    settle(runtime)


@pytest.fixture
async def camera(runtime: SdkRuntime, hooks: StubHooks,
                 hang_file: HangFile) -> AsyncIterator[SdkBackend]:
    backend = SdkBackend(runtime, call_timeout_s=CALL_TIMEOUT_S, answer_wait_s=GUARD_S)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def hung_reading(camera: SdkBackend, hooks: StubHooks,
                       hang: HangFile) -> asyncio.Task[CoolerState]:
    """A cooler reading stuck in GetQHYCCDParam."""
    hung_before = hooks.hung_calls()
    hang.hang()
    reading = asyncio.create_task(camera.cooler_state())
    await until(lambda: hooks.hung_calls() == hung_before + 1, "the reading hangs")
    return reading


async def not_answering(camera: SdkBackend, hooks: StubHooks, hang: HangFile) -> None:
    """A cooler reading that hung past the call timeout."""
    with pytest.raises(CameraNotAnswering):
        await (await hung_reading(camera, hooks, hang))


async def test_a_hung_call_is_camera_not_answering_after_the_timeout(
    camera: SdkBackend, hooks: StubHooks, hang_file: HangFile
) -> None:
    reading = await hung_reading(camera, hooks, hang_file)
    with pytest.raises(SdkTimeout) as timed_out:
        await reading
    assert isinstance(timed_out.value, CameraGone)  # the camera layer's "it vanished"
    assert str(timed_out.value) == ("the camera stopped answering: GetQHYCCDParam did not "
                                    f"return within {CALL_TIMEOUT_S:g} s")
    with pytest.raises(CameraNotAnswering, match="stopped answering"):
        await camera.settings()  # what the hotplug watcher's presence check sees
    assert hang_file.hanging  # it is still stuck: the error did not wait for it


async def test_polls_made_while_a_call_hangs_leave_one_job_behind_it(
    camera: SdkBackend, hooks: StubHooks, hang_file: HangFile, runtime: SdkRuntime
) -> None:
    camera.call_timeout_s = LONG_S  # no timeout: only the queue is looked at
    runs = runtime.thread.runs[COOLER]
    reading = await hung_reading(camera, hooks, hang_file)
    polls = [asyncio.create_task(camera.cooler_state()) for _ in range(20)]
    await asyncio.sleep(0)
    assert runtime.thread.waiting == {COOLER: 1}
    hang_file.release()
    async with asyncio.timeout(GUARD_S):
        readings = await asyncio.gather(reading, *polls)
    assert len({r.sensor_temperature_c for r in readings[1:]}) == 1  # one reading, shared
    assert runtime.thread.runs[COOLER] == runs + 2  # the hung one and one behind it


async def test_calls_fail_at_once_while_the_call_hangs_and_none_runs_later(
    camera: SdkBackend, hooks: StubHooks, hang_file: HangFile, runtime: SdkRuntime
) -> None:
    reading = await hung_reading(camera, hooks, hang_file)
    behind = [asyncio.create_task(camera.cooler_state())] + [
        asyncio.create_task(runtime.camera_ids_async()) for _ in range(5)]
    await asyncio.sleep(0)
    assert runtime.thread.waiting == {COOLER: 1, "scan": 1}
    with pytest.raises(SdkTimeout):
        await reading
    for waited in await asyncio.gather(*behind, return_exceptions=True):
        assert isinstance(waited, CameraNotAnswering)  # failed now, not after their timeout
    runs, scans, reads = runtime.thread.runs[COOLER], runtime.thread.runs["scan"], \
        hooks.param_reads()
    camera.call_timeout_s = LONG_S
    async with asyncio.timeout(GUARD_S):
        for _ in range(20):
            with pytest.raises(CameraGone):
                await camera.cooler_state()
            with pytest.raises(CameraNotAnswering, match="GetQHYCCDParam did not return"):
                await runtime.camera_ids_async()  # the SDK thread itself refuses at once
            with pytest.raises(CameraNotAnswering):
                await runtime.thread.run(runtime.sdk_scan, timeout_s=LONG_S)
    assert runtime.thread.waiting == {} and hang_file.hanging
    hang_file.release()
    await until(lambda: runtime.thread.answering, "the SDK answers again")
    settle(runtime)
    assert runtime.thread.runs[COOLER] == runs and runtime.thread.runs["scan"] == scans
    assert hooks.param_reads() == reads + 1  # only the hung reading went on (CURPWM)


async def test_open_waits_for_the_hung_call_and_reopening_leaves_one_handle(
    camera: SdkBackend, hooks: StubHooks, hang_file: HangFile, runtime: SdkRuntime
) -> None:
    await not_answering(camera, hooks, hang_file)
    opens = hooks.counts()["opens"]
    await camera.close()  # returns at once: its close job waits behind the hung call
    opening = asyncio.create_task(camera.open())
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not opening.done() and "open" not in runtime.thread.waiting  # waits, not queued
    assert hooks.counts()["opens"] == opens and hooks.open_handles() == 1
    hang_file.release()
    async with asyncio.timeout(GUARD_S):
        await opening
    assert hooks.counts()["opens"] == opens + 1
    assert hooks.open_handles() == 1
    assert (await camera.cooler_state()).pwm == 0  # usable again
    await camera.close()
    assert hooks.open_handles() == 0


async def test_a_hotplug_style_retry_loop_during_a_hang_opens_one_handle_in_the_end(
    camera: SdkBackend, hooks: StubHooks, hang_file: HangFile, runtime: SdkRuntime
) -> None:
    await not_answering(camera, hooks, hang_file)
    opens = hooks.counts()["opens"]
    camera.answer_wait_s = 0.01  # each attempt gives up soon, as a watcher's retry would
    for _ in range(20):  # the watcher: close, open, every second (here: at once)
        await camera.close()
        with pytest.raises(CameraNotAnswering, match="still had not returned"):
            await camera.open()
    assert runtime.thread.waiting == {"close": 1}
    hang_file.release()
    camera.answer_wait_s = GUARD_S
    await camera.close()
    await camera.open()
    assert hooks.counts()["opens"] == opens + 1
    assert hooks.open_handles() == 1
    assert runtime.thread.runs["open"] >= 1 and runtime.thread.waiting == {}


async def test_a_hung_open_leaves_no_handle_once_it_returns(
    runtime: SdkRuntime, hooks: StubHooks, hang_file: HangFile
) -> None:
    camera = SdkBackend(runtime, call_timeout_s=CALL_TIMEOUT_S, open_timeout_s=CALL_TIMEOUT_S,
                        answer_wait_s=GUARD_S)
    hang_file.functions = ("InitQHYCCD",)  # OpenQHYCCD has returned a handle by then
    hang_file.hang()
    with pytest.raises(CameraNotAnswering, match="InitQHYCCD did not return"):
        await camera.open()
    await camera.close()
    assert hooks.open_handles() == 1  # the hung open holds it
    hang_file.release()
    await camera.open()
    try:
        assert hooks.open_handles() == 1  # the hung open's handle was closed behind it
    finally:
        await camera.close()
    assert hooks.open_handles() == 0


async def test_sdk_start_up_runs_off_the_event_loop(
    stub_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = HangFile(tmp_path / "hang", "InitQHYCCDResource")
    monkeypatch.setenv(HangFile.env_name, str(hang.path))
    hang.hang()
    starting = asyncio.create_task(sdk_cameras_async("sdk", str(stub_path)))
    ticks = 0
    try:
        while ticks < 20:  # the loop goes on while InitQHYCCDResource hangs
            await asyncio.sleep(0.01)
            ticks += 1
        assert not starting.done()
    finally:
        hang.release()
    async with asyncio.timeout(GUARD_S):
        cameras = await starting
    assert cameras is not None
    try:
        assert cameras.camera_ids == (STUB_ID,)
    finally:
        await asyncio.to_thread(cameras.runtime.stop)


# ---- over the wire ---------------------------------------------------------------------


async def test_a_hang_during_cooler_polling_is_a_lost_camera_that_comes_back(
    tmp_path: Path
) -> None:
    hang = HangFile(tmp_path / "hang")
    handles = tmp_path / "handles"
    env = {hang.env_name: str(hang.path), CALL_TIMEOUT_ENV: "1",
           "QHY42_STUB_HANDLES_FILE": str(handles)}
    try:
        with sdk_daemon(env=env) as server:
            async with IndiClient.connect(HOST, server.port) as client:
                await connect_camera(client, STUB_DEVICE)
                await client.wait_for(is_set("CCD_TEMPERATURE"), timeout_s=GUARD_S)
                start = len(client.received)
                hang.hang()
                lost = await client.wait_for(is_set("CONNECTION", "Alert"), timeout_s=GUARD_S,
                                             start=start)
                assert "stopped answering" in (lost.message or "")  # type: ignore[union-attr]
                back_from = len(client.received)
                hang.release()
                await client.wait_for(is_set("CONNECTION", "Ok"), timeout_s=GUARD_S,
                                      start=back_from)
                gain = await answered(client, "CCD_GAIN", await set_numbers(
                    client, "CCD_GAIN", STUB_DEVICE, GAIN=33))
                assert gain.state == "Ok"  # the SDK answers the camera's commands again
                assert handles.read_text().strip() == "1"
    finally:
        hang.release()
