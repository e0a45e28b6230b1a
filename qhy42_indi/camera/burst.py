"""Burst mode as INDI properties (group Burst): a chosen run of live frames, as science frames.

Properties (xml/qhy42_burst_sk.xml): BURST_MODE, BURST_RANGE (START, END), BURST_IDLE (IDLE,
RELEASE), BURST_PATCH (PATCH_NUMBER), BURST_CAPTURE (CAPTURE), FRAME_COUNTER (COUNT,
read-only), FRAME_COUNTER_RESET (RESET), LIVE_ANTI_RBI and IMAGE_OSD.

Burst is a sub-mode of live mode (reference qhy-sdk-and-drivers.md 1.10): BURST_MODE goes on
only while live video runs (CCD_VIDEO_STREAM or a recording) and goes off with it. Turning
it on puts the camera in IDLE first, then sets burst mode, start/end and the patch number; a
later BURST_RANGE also enters IDLE before it sets start/end, because a camera that is not
idle may start output at once when they change (QHY's note 3). BURST_CAPTURE outputs one
burst, the frames numbered strictly between START and END (1 and 6 give 2, 3, 4, 5): Busy
until each has been delivered, then Ok; Alert naming the missing numbers if the camera did
not output them in time.

Burst frames are science frames: each goes through capture.py's delivery (FITS, upload mode,
compression, HDR merge and the timing cards of timing.py, as an exposure's frame: DATE-OBS
to the microsecond, DATE-END, LINEPER ...), with FRAMENUM (the number in the frame head),
BURSTNUM, BURSTSTA/BURSTEND and FRAMEPER (the live cadence) added, and goes on CCD1 as
`.fits`, which the connections never drop. One task delivers them in order, so the camera's
reader never waits for a FITS to be built. What waits for delivery is bounded
(BURST_QUEUE_FRAMES): when the disk or the clients are slower than the burst, the reader stops
taking frames from the camera, which keeps burst frames in its own buffer until read, instead
of queueing without end; frames lost anyway are counted in BURST_CAPTURE's Alert.

Burst mode is a state of the camera's core (core.py): BURST_MODE asks for BURST_ON and
BURST_OFF, with the camera calls as the work of the transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from qhy42_indi.backends.base import (
    BackendError,
    BurstControl,
    Frame,
    LiveFrame,
    check_burst_range,
)
from qhy42_indi.camera.core import CameraCore, CameraState, Request
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.fits import Card
from qhy42_indi.camera.live import LiveSession
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.tasks import TaskGroup, cancel_and_wait, start_task

log = logging.getLogger(__name__)

Deliver = Callable[[Frame, Sequence[Card]], Awaitable[None]]

COUNTER_PERIOD_S = 0.5  # FRAME_COUNTER updates from the live stream, at most this often
# How long a burst may take before it is declared incomplete: this, plus a few frame periods
# per frame (a FITS per frame has to be built and sent, too).
BURST_GRACE_S = 10.0
BURST_PERIODS_PER_FRAME = 4.0
# Burst frames waiting for delivery (8-16 MiB each); past this the reader waits, and the frames
# wait in the camera.
BURST_QUEUE_FRAMES = 4


@dataclass(slots=True)
class BurstRun:
    """One BURST_CAPTURE: the numbers expected and those delivered so far."""

    index: int
    numbers: range
    delivered: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def missing(self) -> list[int]:
        return [n for n in self.numbers if n not in self.delivered]


def burst_cards(live: LiveFrame, run: BurstRun | None, frame_period_s: float | None) -> list[Card]:
    """The header cards that place a burst frame in its burst and in the live sequence (the
    exposure's own times come from capture.py's timing cards)."""
    cards = [Card("FRAMENUM", live.counter, "Frame number in the camera's frame head")]
    if run is not None:
        cards += [
            Card("BURSTNUM", run.index, "Burst number since connect"),
            Card("BURSTSTA", run.numbers.start - 1, "Burst start: frames after it are output"),
            Card("BURSTEND", run.numbers.stop, "Burst end: frames before it are output"),
        ]
    if frame_period_s is not None:
        cards.append(Card("FRAMEPER", round(frame_period_s, 9), "Live frame period (s)"))
    return cards


def _on(proposed: dict[str, Value], name: str) -> bool:
    return proposed[name] is SwitchState.ON


class Burst:
    def __init__(
        self, device: PropertyDevice, core: CameraCore, backend: BurstControl,
        session: LiveSession, deliver: Deliver,
    ) -> None:
        self._device = device
        self._core = core
        self._backend = backend
        self._session = session
        self._deliver = deliver
        session.listeners.append(self)
        self._queue: asyncio.Queue[LiveFrame] = asyncio.Queue(BURST_QUEUE_FRAMES)
        self._deliverer: asyncio.Task[None] | None = None
        self._watchdogs = TaskGroup("burst")
        self._run: BurstRun | None = None
        self._burst_count = 0
        self._next_counter_s = 0.0
        self.frames_delivered = 0

    def handlers(self) -> dict[str, Handler]:
        return {
            "BURST_MODE": self._on_burst_mode,
            "BURST_RANGE": self._on_burst_range,
            "BURST_IDLE": self._on_burst_idle,
            "BURST_PATCH": self._on_burst_patch,
            "BURST_CAPTURE": self._on_burst_capture,
            "FRAME_COUNTER_RESET": self._on_frame_counter_reset,
            "LIVE_ANTI_RBI": self._on_anti_rbi,
            "IMAGE_OSD": self._on_osd,
        }

    @property
    def enabled(self) -> bool:
        return self._core.state is CameraState.BURST

    # ---- commands ------------------------------------------------------------------------

    async def _on_burst_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        on = _on(proposed, "INDI_ENABLED")
        if on == self.enabled:
            self._device.update(vector.name)
            return
        start, end = self._range()
        patch = round(float(self._device.props["BURST_PATCH"].value("PATCH_NUMBER")))

        async def switch_on() -> None:
            await self._backend.burst_idle()  # before start/end: QHY's note 3
            await self._backend.enable_burst(True)
            await self._backend.set_burst_range(start, end)
            await self._backend.set_burst_patch_number(patch)

        async def switch_off() -> None:
            await self._backend.enable_burst(False)
            await self._backend.burst_release()

        try:
            await self._core.transition(Request.BURST_ON if on else Request.BURST_OFF,
                                        work=switch_on if on else switch_off)
        except BackendError as error:
            self._device.alert(vector.name, f"Cannot switch burst mode: {error}")
            return
        vector.set_values(proposed)
        # IDLE is reported before BURST_MODE's reply: the camera idled before start/end.
        self._show_idle(on)
        self._device.update(vector.name, PropertyState.OK if on else PropertyState.IDLE)
        if on:
            self._device.say(f"Burst mode on: each burst outputs frames {start + 1} to "
                             f"{end - 1}; the camera waits in IDLE")

    async def _on_burst_range(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        start, end = round(float(proposed["START"])), round(float(proposed["END"]))
        try:
            check_burst_range(start, end)
            if self.enabled:
                await self._backend.burst_idle()  # before start/end: QHY's note 3
                await self._backend.set_burst_range(start, end)
        except BackendError as error:
            self._device.alert(vector.name, str(error))
            return
        if self.enabled:
            self._show_idle(True)
        vector.set_values({"START": start, "END": end})
        self._device.update(vector.name, PropertyState.OK)

    async def _on_burst_idle(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        idle = _on(proposed, "IDLE")
        try:
            await (self._backend.burst_idle() if idle else self._backend.burst_release())
        except BackendError as error:
            self._device.alert(vector.name, f"Works in live mode only: {error}")
            return
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_burst_patch(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        patch = round(float(proposed["PATCH_NUMBER"]))
        try:
            await self._backend.set_burst_patch_number(patch)
        except BackendError as error:
            self._device.alert(vector.name, str(error))
            return
        vector.set_values({"PATCH_NUMBER": patch})
        self._device.update(vector.name, PropertyState.OK)

    async def _on_burst_capture(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values({"CAPTURE": SwitchState.OFF})
        if not self.enabled:
            self._device.alert(vector.name, "Burst mode is off: switch BURST_MODE on (in live "
                               "mode) first")
            return
        if self._run is not None and not self._run.done.is_set():
            self._device.update(vector.name, message="[WARNING] A burst is still running")
            return
        start, end = self._range()
        self._burst_count += 1
        run = self._run = BurstRun(self._burst_count, range(start + 1, end))
        self._device.update(vector.name, PropertyState.BUSY)
        try:
            run.numbers = await self._backend.capture_burst()
        except BackendError as error:
            run.done.set()
            self._device.alert(vector.name, f"Burst failed: {error}")
            return
        self._show_idle(False)
        if not run.numbers:
            run.done.set()
            self._device.update(vector.name, PropertyState.OK)
            return
        self._watchdogs.start(self._watch(run), f"burst {run.index}")

    async def _on_frame_counter_reset(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values({"RESET": SwitchState.OFF})
        try:
            await self._backend.reset_frame_counter()
        except BackendError as error:
            self._device.alert(vector.name, f"Works in live mode only: {error}")
            return
        self._device.update(vector.name, PropertyState.OK)
        self._publish_counter(0)

    async def _on_anti_rbi(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        await self._switch(vector, proposed, self._backend.set_live_anti_rbi)

    async def _on_osd(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        await self._switch(vector, proposed, self._backend.set_image_osd)

    async def _switch(
        self, vector: PropertyVector, proposed: dict[str, Value],
        setter: Callable[[bool], Awaitable[None]],
    ) -> None:
        try:
            await setter(_on(proposed, "INDI_ENABLED"))
        except BackendError as error:
            self._device.alert(vector.name, str(error))
            return
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)

    # ---- frames --------------------------------------------------------------------------

    def live_frame(self, live: LiveFrame) -> Awaitable[None] | None:
        now_s = time.monotonic()
        if live.burst:
            if self._deliverer is None or self._deliverer.done():
                self._deliverer = start_task(self._deliver_frames(), "burst")
            if self._queue.full():
                return self._queue.put(live)  # the reader waits; the camera keeps the rest
            self._queue.put_nowait(live)
        elif now_s >= self._next_counter_s:
            self._next_counter_s = now_s + COUNTER_PERIOD_S
            self._publish_counter(live.counter)
        return None

    def live_stopped(self, failure: str | None) -> None:
        if self._device.props["BURST_MODE"].is_on("INDI_ENABLED"):
            self._device.props["BURST_MODE"].set_values(
                {"INDI_ENABLED": SwitchState.OFF, "INDI_DISABLED": SwitchState.ON})
            self._device.update("BURST_MODE", PropertyState.IDLE)
            self._show_idle(False)

    async def _deliver_frames(self) -> None:
        while True:
            live = await self._queue.get()
            run = self._run
            if run is None or run.done.is_set() or live.counter not in run.numbers:
                run = None  # output by a release outside BURST_CAPTURE
            start = self._session.start_info
            cards = burst_cards(live, run, start.frame_interval_s if start else None)
            try:
                await self._deliver(live.frame, cards)
            except Exception as error:  # DeliveryError (the save) or a bug: say it, go on
                log.warning("burst frame %d: %s", live.counter, error)
                if run is not None:
                    run.failures.append(f"frame {live.counter}: {error}")
            self.frames_delivered += 1
            self._publish_counter(live.counter)
            if run is not None:
                run.delivered.add(live.counter)
                if not run.missing():
                    run.done.set()
            self._queue.task_done()

    async def _watch(self, run: BurstRun) -> None:
        start = self._session.start_info
        period_s = start.frame_interval_s if start is not None else 1.0
        timeout_s = BURST_GRACE_S + BURST_PERIODS_PER_FRAME * period_s * len(run.numbers)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.done.wait(), timeout_s)
        run.done.set()
        if run is not self._run or "BURST_CAPTURE" not in self._device.defined:
            return
        missing = run.missing()
        if missing or run.failures:
            problems = ([f"{len(missing)} of {len(run.numbers)} frames not received "
                         f"({_numbers(missing)})"] if missing else [])
            self._device.alert("BURST_CAPTURE", f"Burst {run.index}: "
                               + "; ".join(problems + run.failures))
        else:
            self._device.update("BURST_CAPTURE", PropertyState.OK,
                                f"[INFO] Burst {run.index}: frames {run.numbers.start} to "
                                f"{run.numbers.stop - 1} delivered")

    # ---- helpers -------------------------------------------------------------------------

    def _range(self) -> tuple[int, int]:
        vector = self._device.props["BURST_RANGE"]
        return round(float(vector.value("START"))), round(float(vector.value("END")))

    def _show_idle(self, idle: bool) -> None:
        self._device.props["BURST_IDLE"].set_values(
            {"IDLE": SwitchState.ON if idle else SwitchState.OFF,
             "RELEASE": SwitchState.OFF if idle else SwitchState.ON})
        self._device.update("BURST_IDLE", PropertyState.OK)

    def _publish_counter(self, counter: int) -> None:
        self._device.props["FRAME_COUNTER"].set_values({"COUNT": counter})
        self._device.update("FRAME_COUNTER", PropertyState.OK)

    async def close(self) -> None:
        """At disconnect: deliver what the camera already sent (bounded), then stop."""
        if self._deliverer is not None and not self._deliverer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), BURST_GRACE_S)
        await cancel_and_wait(self._deliverer)
        await self._watchdogs.cancel()
        self._deliverer = None
        self._run = None
        props = self._device.props
        props["BURST_MODE"].set_values({"INDI_ENABLED": SwitchState.OFF,
                                        "INDI_DISABLED": SwitchState.ON})
        props["BURST_IDLE"].set_values({"IDLE": SwitchState.OFF, "RELEASE": SwitchState.ON})
        for name in ("BURST_MODE", "BURST_IDLE", "BURST_CAPTURE"):
            props[name].state = PropertyState.IDLE


def _numbers(numbers: list[int], shown: int = 10) -> str:
    """A list of frame numbers for a message, cut after `shown`."""
    text = ", ".join(str(n) for n in numbers[:shown])
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")
