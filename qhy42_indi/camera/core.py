"""What the camera is doing, held in one place: the state machine every command goes through.

One `CameraCore` per camera. Its state is one `CameraState`; what may happen next from each
state is the `TRANSITIONS` table below, and nowhere else. A part of the device (capture,
streaming, burst, timing, cooling, the hotplug watcher) that wants the camera to do something
asks for a `Request`; the core looks up (state, request), refuses it with a reason (`Refused`,
which the device turns into an Alert on the property) or runs the transition:

1. the work that makes the new state true, if the caller gives any (opening the camera for
   CONNECT and RETURNED); if it fails, nothing changes;
2. every listener hears `leaving`: the parts stop what the old state ran (the exposure part
   cancels its sequence, the streaming part ends live video and keeps its recording);
3. the backend is reconciled with the new state (`_reconcile`): an exposure that is left is
   aborted in the backend, live mode that is left is stopped, a camera that is gone or
   disconnected is closed, so nothing is ever left pending behind the state's back;
4. the state changes, and every listener hears `entered` (the parts publish).

Transitions run one at a time (a lock), so a reader never sees half of one. Settings that
do not change the state are checked against the table too (`check`): CONFIGURE (read mode,
geometry, bit depth, GPIO and trigger modes) only while idle, ADJUST (gain, cooler, ...) while
the camera is there.

Not here: INDI names and properties (device.py and the parts), the camera itself (backends/).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from qhy42_indi.backends.base import BackendError, ExposureControl, Lifecycle, LiveControl

log = logging.getLogger(__name__)


class CameraState(StrEnum):
    DISCONNECTED = "Disconnected"
    IDLE = "Idle"
    EXPOSING = "Exposing"  # an exposure sequence integrates, reads out or delivers
    WAITING_FOR_TRIGGER = "WaitingForTrigger"  # its exposure is armed, waiting for the edge
    LIVE = "Live"  # live video: the stream, a recording, or both
    BURST = "Burst"  # burst mode, inside live mode
    GONE = "Gone"  # the camera vanished; waiting for it to come back


class Request(StrEnum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    EXPOSE = "expose"  # start an exposure sequence (a running one is replaced)
    ARM = "arm"  # the sequence's next exposure waits for its trigger
    TRIGGERED = "triggered"  # the trigger came: it integrates
    EXPOSURE_ENDED = "exposure ended"  # the sequence delivered its last frame
    EXPOSURE_FAILED = "exposure failed"
    ABORT = "abort"
    START_LIVE = "start live"
    STOP_LIVE = "stop live"
    BURST_ON = "burst on"
    BURST_OFF = "burst off"
    CONFIGURE = "configure"  # a setting that re-times the sensor: only while idle
    ADJUST = "adjust"  # a setting the camera takes at any time while it is there
    LOST = "lost"  # the camera vanished (unplugged, not answering)
    RETURNED = "returned"  # it answers again, and was set up as it was


S, R = CameraState, Request

# The changes every frame makes go to the daemon's log at DEBUG: at INFO a run of short
# frames would write two lines a frame (long exposures are logged at INFO by
# telemetry/exposure_log.py).
ROUTINE_REQUESTS = frozenset({R.EXPOSE, R.ARM, R.TRIGGERED, R.EXPOSURE_ENDED})

# What each request leads to from each state. A (state, request) that is not here is refused.
_EXPOSING = {
    R.EXPOSE: S.EXPOSING, R.ARM: S.WAITING_FOR_TRIGGER, R.TRIGGERED: S.EXPOSING,
    R.EXPOSURE_ENDED: S.IDLE, R.EXPOSURE_FAILED: S.IDLE, R.ABORT: S.IDLE,
    R.ADJUST: None, R.DISCONNECT: S.DISCONNECTED, R.LOST: S.GONE,
}
_LIVE = {
    R.START_LIVE: None, R.STOP_LIVE: S.IDLE, R.ABORT: None, R.ADJUST: None,
    R.DISCONNECT: S.DISCONNECTED, R.LOST: S.GONE,
}
_TABLE: dict[CameraState, dict[Request, CameraState | None]] = {  # None: stays where it is
    S.DISCONNECTED: {R.CONNECT: S.IDLE, R.DISCONNECT: None},
    S.IDLE: {
        R.CONNECT: None, R.DISCONNECT: S.DISCONNECTED, R.EXPOSE: S.EXPOSING, R.ABORT: None,
        R.START_LIVE: S.LIVE, R.STOP_LIVE: None, R.BURST_OFF: None, R.CONFIGURE: None,
        R.ADJUST: None, R.LOST: S.GONE,
    },
    S.EXPOSING: dict(_EXPOSING, **{R.CONNECT: None}),
    S.WAITING_FOR_TRIGGER: dict(_EXPOSING, **{R.CONNECT: None}),
    S.LIVE: dict(_LIVE, **{R.CONNECT: None, R.BURST_ON: S.BURST, R.BURST_OFF: None}),
    S.BURST: dict(_LIVE, **{R.CONNECT: None, R.BURST_ON: None, R.BURST_OFF: S.LIVE}),
    S.GONE: {
        R.CONNECT: None, R.DISCONNECT: S.DISCONNECTED, R.LOST: None, R.RETURNED: S.IDLE,
        R.ABORT: None,
    },
}
TRANSITIONS: Mapping[CameraState, Mapping[Request, CameraState]] = MappingProxyType({
    state: MappingProxyType({request: state if target is None else target
                             for request, target in row.items()})
    for state, row in _TABLE.items()
})

AWAY = ("The camera is away (unplugged, or it stopped answering): nothing was changed. It "
        "gets its settings back when it returns; DISCONNECT gives up on it")
# Why a request is refused, by state; a more precise reason by (state, request) first.
_REFUSED_IN: Mapping[CameraState, str] = MappingProxyType({
    S.DISCONNECTED: "The camera is not connected: CONNECT first",
    S.IDLE: "Nothing to do: the camera is idle",
    S.EXPOSING: "Not while an exposure runs: abort it or let it end first",
    S.WAITING_FOR_TRIGGER: "Not while an exposure waits for its trigger: abort it first",
    S.LIVE: "Not while the camera is in live mode (video stream or recording): stop it first",
    S.BURST: "Not while burst mode runs: switch burst mode and live video off first",
    S.GONE: AWAY,
})
_REFUSED: Mapping[tuple[CameraState, Request], str] = MappingProxyType({
    (S.IDLE, R.BURST_ON): "Burst mode works in live mode only: start the video stream "
                          "(CCD_VIDEO_STREAM) first",
    (S.EXPOSING, R.START_LIVE): "An exposure is running: abort it or let it end before "
                                "starting the video stream",
    (S.WAITING_FOR_TRIGGER, R.START_LIVE): "An exposure waits for its trigger: abort it "
                                           "before starting the video stream",
    (S.LIVE, R.EXPOSE): "Cannot start an exposure while the video stream or a recording "
                        "runs: stop it first",
    (S.BURST, R.EXPOSE): "Cannot start an exposure while burst mode runs: stop live video "
                         "first",
})
EXPOSURE_STATES = frozenset({S.EXPOSING, S.WAITING_FOR_TRIGGER})
LIVE_STATES = frozenset({S.LIVE, S.BURST})
CONNECTED_STATES = frozenset(CameraState) - {S.DISCONNECTED}


class Refused(Exception):
    """The request is not allowed in the camera's state; `reason` says why, for the user."""

    def __init__(self, state: CameraState, request: Request, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.request = request
        self.reason = reason


def next_state(state: CameraState, request: Request) -> CameraState:
    """The state `request` leads to from `state`; Refused with the reason if none."""
    target = TRANSITIONS[state].get(request)
    if target is None:
        reason = _REFUSED.get((state, request), _REFUSED_IN[state])
        raise Refused(state, request, reason)
    return target


@dataclass(frozen=True, slots=True)
class Transition:
    old: CameraState
    new: CameraState
    request: Request
    reason: str | None = None  # why, when something happened to the camera (LOST)


class StateListener(Protocol):
    async def leaving(self, change: Transition) -> None:
        """Before the state changes: stop what the old state ran (bounded, quick)."""

    def entered(self, change: Transition) -> None:
        """After it changed: publish. Must not block."""


class CameraCore:
    def __init__(self, name: str, backend: Lifecycle) -> None:
        self._name = name
        self._backend = backend
        self._state = CameraState.DISCONNECTED
        self._lock = asyncio.Lock()
        self._listeners: list[StateListener] = []
        self.history: list[Transition] = []  # the last transitions, newest last (bounded)

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state in CONNECTED_STATES

    @property
    def present(self) -> bool:
        """Connected and answering."""
        return self._state in CONNECTED_STATES and self._state is not CameraState.GONE

    def subscribe(self, listener: StateListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def check(self, request: Request) -> CameraState:
        """The state `request` would lead to now; Refused if it is not allowed."""
        return next_state(self._state, request)

    async def transition(
        self, request: Request, *, work: Callable[[], Awaitable[None]] | None = None,
        reason: str | None = None,
    ) -> Transition:
        """Run the transition for `request` (see the module docstring). Refused if the
        table has none; whatever `work` raises leaves the state as it was."""
        async with self._lock:
            new = next_state(self._state, request)
            if work is not None:
                await work()
            change = Transition(self._state, new, request, reason)
            for listener in list(self._listeners):
                await listener.leaving(change)
            await self._reconcile(change)
            self._state = new
            self.history = [*self.history[-31:], change]
            if change.old is not new:
                level = logging.DEBUG if request in ROUTINE_REQUESTS else logging.INFO
                log.log(level, "%s: %s -> %s (%s)", self._name, change.old, new, request)
            for listener in list(self._listeners):
                try:
                    listener.entered(change)
                except Exception:  # a publisher's bug must not undo the transition
                    log.exception("%s: a listener failed on %s", self._name, change)
            return change

    async def _reconcile(self, change: Transition) -> None:
        """Leave the backend consistent with the new state."""
        backend = self._backend
        left_exposure = change.old in EXPOSURE_STATES and (
            change.new not in EXPOSURE_STATES or change.request is Request.EXPOSE)
        if left_exposure and isinstance(backend, ExposureControl):
            await _quietly(backend.abort_exposure(), "abort the exposure")
        left_live = change.old in LIVE_STATES and change.new not in LIVE_STATES
        if left_live and isinstance(backend, LiveControl):
            await _quietly(backend.stop_live(), "stop live mode")
        if change.new in (CameraState.GONE, CameraState.DISCONNECTED) and (
                change.old is not change.new):
            await _quietly(backend.close(), "close the camera")


async def _quietly(call: Awaitable[None], what: str) -> None:
    """A reconciling call on a camera that may be gone: its failure is logged, not raised."""
    try:
        await call
    except BackendError as error:
        log.debug("could not %s: %s", what, error)

