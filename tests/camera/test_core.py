"""The camera core's state machine, table-driven: every state with every request, the state
it leads to (or the refusal and its reason), and the backend calls the transition makes.

The expected table is written out here on its own, from what a camera may do (not read back
from core.py), so a change to the core's table shows up as a failing row.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from qhy42_indi.backends.base import (
    CaptureSettings,
    ExposureControl,
    ExposureStart,
    Frame,
    Lifecycle,
    LiveControl,
    LiveFrame,
    LiveStart,
    LiveState,
    NotOpen,
    ReadMode,
    SensorInfo,
)
from qhy42_indi.camera.core import (
    AWAY,
    CameraCore,
    CameraState,
    Refused,
    Request,
    Transition,
)

S, R = CameraState, Request

# How to reach each state from Disconnected.
PATHS: dict[CameraState, list[Request]] = {
    S.DISCONNECTED: [],
    S.IDLE: [R.CONNECT],
    S.EXPOSING: [R.CONNECT, R.EXPOSE],
    S.WAITING_FOR_TRIGGER: [R.CONNECT, R.EXPOSE, R.ARM],
    S.LIVE: [R.CONNECT, R.START_LIVE],
    S.BURST: [R.CONNECT, R.START_LIVE, R.BURST_ON],
    S.GONE: [R.CONNECT, R.LOST],
}

STAY = "stay"
# (state, request) -> the next state (STAY: the same one). Every pair not listed is refused.
ALLOWED: dict[tuple[CameraState, Request], CameraState | str] = {
    (S.DISCONNECTED, R.CONNECT): S.IDLE,
    (S.DISCONNECTED, R.DISCONNECT): STAY,
    **{(S.IDLE, r): STAY for r in (R.CONNECT, R.ABORT, R.STOP_LIVE, R.BURST_OFF,
                                    R.CONFIGURE, R.ADJUST)},
    (S.IDLE, R.DISCONNECT): S.DISCONNECTED,
    (S.IDLE, R.EXPOSE): S.EXPOSING,
    (S.IDLE, R.START_LIVE): S.LIVE,
    (S.IDLE, R.LOST): S.GONE,
    **{(state, r): target
       for state in (S.EXPOSING, S.WAITING_FOR_TRIGGER)
       for r, target in ((R.CONNECT, STAY), (R.EXPOSE, S.EXPOSING),
                         (R.ARM, S.WAITING_FOR_TRIGGER), (R.TRIGGERED, S.EXPOSING),
                         (R.EXPOSURE_ENDED, S.IDLE), (R.EXPOSURE_FAILED, S.IDLE),
                         (R.ABORT, S.IDLE), (R.ADJUST, STAY), (R.DISCONNECT, S.DISCONNECTED),
                         (R.LOST, S.GONE))},
    **{(state, r): target
       for state in (S.LIVE, S.BURST)
       for r, target in ((R.CONNECT, STAY), (R.START_LIVE, STAY), (R.STOP_LIVE, S.IDLE),
                         (R.ABORT, STAY), (R.ADJUST, STAY), (R.DISCONNECT, S.DISCONNECTED),
                         (R.LOST, S.GONE))},
    (S.LIVE, R.BURST_ON): S.BURST,
    (S.LIVE, R.BURST_OFF): STAY,
    (S.BURST, R.BURST_ON): STAY,
    (S.BURST, R.BURST_OFF): S.LIVE,
    **{(S.GONE, r): STAY for r in (R.CONNECT, R.LOST, R.ABORT)},
    (S.GONE, R.DISCONNECT): S.DISCONNECTED,
    (S.GONE, R.RETURNED): S.IDLE,
}


def expected_calls(old: CameraState, new: CameraState, request: Request) -> list[str]:
    """What leaves the backend consistent with the new state."""
    calls = []
    exposing = {S.EXPOSING, S.WAITING_FOR_TRIGGER}
    if old in exposing and (new not in exposing or request is R.EXPOSE):
        calls.append("abort_exposure")
    if old in (S.LIVE, S.BURST) and new not in (S.LIVE, S.BURST):
        calls.append("stop_live")
    if new in (S.GONE, S.DISCONNECTED) and old is not new:
        calls.append("close")
    return calls


class RecordingBackend(Lifecycle, ExposureControl, LiveControl):
    """Records the calls the core makes; a closed camera refuses them as a real one does."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _note(self, name: str) -> None:
        self.calls.append(name)

    async def open(self) -> None:
        self._note("open")

    async def close(self) -> None:
        self._note("close")

    @property
    def is_open(self) -> bool:
        return True

    async def sensor_info(self) -> SensorInfo:
        raise NotOpen("not used")

    async def read_modes(self) -> tuple[ReadMode, ...]:
        return ()

    async def settings(self) -> CaptureSettings:
        raise NotOpen("not used")

    async def start_exposure(self, exposure_s: float) -> ExposureStart:
        raise NotOpen("not used")

    async def abort_exposure(self) -> None:
        self._note("abort_exposure")

    async def read_frame(self) -> Frame:
        raise NotOpen("not used")

    async def begin_live(self, exposure_s: float) -> LiveStart:
        raise NotOpen("not used")

    async def set_live_exposure(self, exposure_s: float) -> LiveStart:
        raise NotOpen("not used")

    async def stop_live(self) -> None:
        self._note("stop_live")
        raise NotOpen("a reconciling call that fails is not the transition's failure")

    async def read_live_frame(self) -> LiveFrame:
        raise NotOpen("not used")

    async def live_state(self) -> LiveState:
        raise NotOpen("not used")


class Listener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, Transition]] = []

    async def leaving(self, change: Transition) -> None:
        self.heard.append(("leaving", change))

    def entered(self, change: Transition) -> None:
        self.heard.append(("entered", change))


async def core_in(state: CameraState) -> tuple[CameraCore, RecordingBackend, Listener]:
    backend = RecordingBackend()
    core = CameraCore("test camera", backend)
    for request in PATHS[state]:
        await core.transition(request)
    assert core.state is state
    backend.calls.clear()
    listener = Listener()
    core.subscribe(listener)
    return core, backend, listener


CASES = [(state, request) for state in CameraState for request in Request]


@pytest.mark.parametrize(("state", "request_"), CASES, ids=[f"{s}-{r}" for s, r in CASES])
async def test_every_state_with_every_request(state: CameraState, request_: Request) -> None:
    core, backend, listener = await core_in(state)
    allowed = ALLOWED.get((state, request_))
    if allowed is None:
        with pytest.raises(Refused) as refused:
            await core.transition(request_)
        assert refused.value.reason  # a reason for the user, always
        assert core.state is state and backend.calls == [] and listener.heard == []
        with pytest.raises(Refused):
            core.check(request_)
        return
    new = state if allowed == STAY else allowed
    assert core.check(request_) is new
    change = await core.transition(request_)
    assert change == Transition(state, new, request_)
    assert core.state is new
    assert backend.calls == expected_calls(state, new, request_)
    assert listener.heard == [("leaving", change), ("entered", change)]


async def test_the_table_has_no_row_the_test_does_not_know() -> None:
    for state, request in CASES:
        core, _, _ = await core_in(state)
        try:
            core.check(request)
        except Refused:
            continue
        assert (state, request) in ALLOWED, f"{state} + {request} is allowed by core.py"


async def test_refusals_say_why_in_the_users_words() -> None:
    core, _, _ = await core_in(S.LIVE)
    with pytest.raises(Refused, match="video stream or a recording"):
        await core.transition(R.EXPOSE)
    core, _, _ = await core_in(S.EXPOSING)
    with pytest.raises(Refused, match="An exposure is running"):
        await core.transition(R.START_LIVE)
    core, _, _ = await core_in(S.IDLE)
    with pytest.raises(Refused, match="live mode only"):
        await core.transition(R.BURST_ON)
    core, _, _ = await core_in(S.GONE)
    with pytest.raises(Refused) as away:
        await core.transition(R.ADJUST)
    assert away.value.reason == AWAY


async def test_work_that_fails_changes_nothing() -> None:
    core, backend, listener = await core_in(S.DISCONNECTED)

    async def failing_open() -> None:
        raise NotOpen("no camera")

    with pytest.raises(NotOpen):
        await core.transition(R.CONNECT, work=failing_open)
    assert core.state is S.DISCONNECTED and listener.heard == [] and backend.calls == []


async def test_the_state_changes_only_after_the_listeners_stopped_the_old_one() -> None:
    """A reader that sees Gone sees everything Gone means already done (and published)."""
    core, _, _ = await core_in(S.EXPOSING)
    seen: list[tuple[str, CameraState]] = []

    class Watcher:
        async def leaving(self, change: Transition) -> None:
            seen.append(("leaving", core.state))

        def entered(self, change: Transition) -> None:
            seen.append(("entered", core.state))

    core.subscribe(Watcher())
    await core.transition(R.LOST, reason="unplugged")
    assert seen == [("leaving", S.EXPOSING), ("entered", S.GONE)]
    assert core.history[-1].reason == "unplugged"


async def test_transitions_run_one_at_a_time() -> None:
    core, _, _ = await core_in(S.IDLE)
    order: list[str] = []
    gate = asyncio.Event()

    async def slow_work() -> None:
        order.append("work begins")
        await gate.wait()
        order.append("work ends")

    first = asyncio.create_task(core.transition(R.EXPOSE, work=slow_work))
    await asyncio.sleep(0)
    second = asyncio.create_task(core.transition(R.ABORT))
    await asyncio.sleep(0.01)
    assert core.state is S.IDLE and not second.done()
    gate.set()
    await first
    assert (await second).old is S.EXPOSING  # the abort saw the exposure the first began
    assert order == ["work begins", "work ends"]


async def test_a_frames_own_changes_are_logged_at_debug_the_rest_at_info(
        caplog: pytest.LogCaptureFixture) -> None:
    core, _, _ = await core_in(S.DISCONNECTED)
    with caplog.at_level(logging.DEBUG, logger="qhy42_indi.camera.core"):
        for request in (R.CONNECT, R.EXPOSE, R.EXPOSURE_ENDED, R.LOST):
            await core.transition(request)
    levels = {record.getMessage().rsplit("(", 1)[1].rstrip(")"): record.levelno
              for record in caplog.records if "->" in record.getMessage()}
    assert levels == {"connect": logging.INFO, "expose": logging.DEBUG,
                      "exposure ended": logging.DEBUG, "lost": logging.INFO}
