"""The simulated QHY42PRO's live mode: when frames are read out, their numbers, which come out.

What it is for: `LiveTimeline` models live (continuous) mode and its burst sub-mode in camera
time, without I/O, so its rules can be tested as plain function calls; `SimulatedLive` adds
the waiting for the next frame (asyncio); `stamp_frame_head` and `burn_osd` mark the pixels as
the camera does. The simulator (simulator.py) renders each frame that comes out.

What it is not: no pixels of its own, no settings, no INDI.

The model (reference qhy-sdk-and-drivers.md 1.8 and 1.10, QHY's burst notes):

* Once begun, the sensor reads out a frame every `interval_s`, the longer of the exposure and
  the readout (a rolling shutter exposes the next frame while the last one is read).
  Readout k (1, 2, ...) happens at epoch_s + (k - epoch_k) * interval_s.
* Every readout takes the next frame number, k - base. reset_counter() and release() move the
  base so that the next readout is number 1. A change of exposure re-times the sensor (a new
  epoch) and skips one number, as MIT saw on a QHY42PRO ("exactly one sequence skip").
* A readout comes out unless the camera is IDLE and, in burst mode, only if its number lies
  strictly between start and end. Continuous output waits in a camera buffer of
  BUFFER_FRAMES frames: a host that reads too slowly loses the oldest (a gap in the numbers).
  Burst frames stay in the camera until read.
* IDLE halts the sensor (no readouts); release restarts it at once, numbering from 1. In
  burst mode a release therefore outputs one burst: start 1, end 6 gives 2, 3, 4, 5.
* The burst window applies to the free-running number, so a camera that is not idle when
  start/end are set (or burst mode is enabled) at once outputs the frames whose numbers are
  still inside the window: QHY's note 3 ("a freshly connected camera may start emitting"),
  the reason to enter IDLE first.
* Anti-RBI: frames with even numbers are flush frames, exposed for one line period, so the
  output alternates dark and bright frames.

Not modelled: the stale frames the DDR drains after BeginQHYCCDLive, the 2-3 hybrid frames
after an exposure change, the fibre link's short first burst and the QHY2020/4040 numbering
quirks (not the QHY42PRO's).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qhy42_indi.backends.base import FRAME_HEAD_BYTES, CameraBusy, NotLive

# [model] frames of continuous output the camera holds for a slow host; the SDK and the
# camera's DDR hold a few frames, and MIT saw them drain after BeginQHYCCDLive.
BUFFER_FRAMES = 4
# Float slack when a waiter wakes exactly at a readout time.
_TIME_SLACK = 1e-9
COUNTER_MODULO = 1 << (8 * FRAME_HEAD_BYTES)


@dataclass(frozen=True, slots=True)
class Readout:
    """One frame the camera output: when it was read out and how it was exposed."""

    index: int  # readouts since begin (1, 2, ...), never reset
    counter: int  # the frame number in its head
    time_s: float  # camera time when its readout ended
    exposure_s: float
    burst: bool

    def start_s(self, readout_s: float) -> float:
        """Camera time when row 0 began to integrate."""
        return self.time_s - readout_s - self.exposure_s


class LiveTimeline:
    """Live mode and burst as the camera runs them, in camera time. See the module docstring.

    Every control takes `now_s`: what the sensor read out before it follows the old state.
    """

    def __init__(self, buffer_frames: int = BUFFER_FRAMES) -> None:
        self.buffer_frames = buffer_frames
        self.live = False
        self.exposure_s: float | None = None
        self.interval_s = 1.0
        self.readout_s = 0.0
        self.line_period_s = 0.0
        self.idle = False
        self.burst_enabled = False
        self.burst_start = 0
        self.burst_end = 0
        self.patch_number = 0
        self.anti_rbi = False
        self.osd = False
        self.dropped = 0  # continuous frames lost because the host read too slowly
        self._epoch_s = 0.0
        self._epoch_k = 0
        self._base = 0
        self._settled_k = 0
        self._pending: deque[Readout] = deque()

    # ---- controls

    def begin(
        self, now_s: float, exposure_s: float, interval_s: float, readout_s: float,
        line_period_s: float,
    ) -> None:
        self.live = True
        self.idle = False
        self.exposure_s, self.interval_s = exposure_s, interval_s
        self.readout_s, self.line_period_s = readout_s, line_period_s
        self._epoch_s, self._epoch_k, self._base, self._settled_k = now_s, 0, 0, 0
        self._pending.clear()

    def retime(self, now_s: float, exposure_s: float, interval_s: float, readout_s: float) -> None:
        self.settle(now_s)
        self._epoch_k = self.last_index(now_s)
        self._epoch_s = now_s
        self._base -= 1  # one number skipped
        self.exposure_s, self.interval_s, self.readout_s = exposure_s, interval_s, readout_s

    def stop(self) -> None:
        self.live = False
        self.idle = False
        self.burst_enabled = False
        self._pending.clear()

    def reset_counter(self, now_s: float) -> None:
        self.settle(now_s)
        self._base = self.last_index(now_s)

    def enter_idle(self, now_s: float) -> None:
        self.settle(now_s)
        self._epoch_k = self.last_index(now_s)
        self.idle = True

    def release(self, now_s: float) -> None:
        self.settle(now_s)
        self._epoch_k = self.last_index(now_s)
        self._epoch_s = now_s
        self._base = self._epoch_k
        self.idle = False

    def set_burst(self, now_s: float, enabled: bool) -> None:
        self.settle(now_s)
        self.burst_enabled = enabled

    def set_burst_range(self, now_s: float, start: int, end: int) -> None:
        self.settle(now_s)
        self.burst_start, self.burst_end = start, end

    def set_anti_rbi(self, now_s: float, enabled: bool) -> None:
        self.settle(now_s)
        self.anti_rbi = enabled

    # ---- the frame sequence

    def last_index(self, now_s: float) -> int:
        """The index of the last readout at or before now_s."""
        if not self.live or self.idle:
            return self._epoch_k
        periods = math.floor((now_s - self._epoch_s) / self.interval_s + _TIME_SLACK)
        return self._epoch_k + max(0, periods)

    def readout_time(self, index: int) -> float:
        return self._epoch_s + (index - self._epoch_k) * self.interval_s

    def frame_counter(self, now_s: float) -> int:
        """The number of the last frame read out (0 if none since the last reset)."""
        return max(0, self.last_index(now_s) - self._base) % COUNTER_MODULO

    def settle(self, now_s: float) -> None:
        """Put every readout up to now_s that comes out into the camera's buffer."""
        if not self.live:
            return
        last = self.last_index(now_s)
        first = self._settled_k + 1
        self._settled_k = max(self._settled_k, last)
        if last < first or self.idle:
            return
        if self.burst_enabled:
            low = max(first, self._base + self.burst_start + 1)
            high = min(last, self._base + self.burst_end - 1)
            self._pending.extend(self._readout(k, burst=True) for k in range(low, high + 1))
            return
        low = max(first, last - self.buffer_frames + 1)
        self.dropped += low - first
        self._pending.extend(self._readout(k, burst=False) for k in range(low, last + 1))
        continuous = sum(1 for r in self._pending if not r.burst)
        while continuous > self.buffer_frames:
            oldest = next(r for r in self._pending if not r.burst)
            self._pending.remove(oldest)
            self.dropped += 1
            continuous -= 1

    def take(self, now_s: float) -> Readout | None:
        """The oldest frame waiting in the camera, if any."""
        self.settle(now_s)
        return self._pending.popleft() if self._pending else None

    def next_output_s(self, now_s: float) -> float | None:
        """When the next frame will come out, or None if none will until a control changes
        something (not live, IDLE, or a burst window already passed)."""
        if not self.live or self.idle:
            return None
        following = self.last_index(now_s) + 1
        if not self.burst_enabled:
            return self.readout_time(following)
        index = max(following, self._base + self.burst_start + 1)
        if index > self._base + self.burst_end - 1:
            return None
        return self.readout_time(index)

    def _readout(self, index: int, *, burst: bool) -> Readout:
        counter = (index - self._base) % COUNTER_MODULO
        assert self.exposure_s is not None
        exposure_s = self.exposure_s
        if self.anti_rbi and counter % 2 == 0:
            exposure_s = self.line_period_s  # the flush frame
        return Readout(index, counter, self.readout_time(index), exposure_s, burst)


class SimulatedLive:
    """The timeline plus the waiting: next_readout() sleeps until a frame comes out, and wakes
    early when a control changes the timeline (changed())."""

    def __init__(self, model_time_s: Callable[[], float], time_scale: float) -> None:
        self.timeline = LiveTimeline()
        self._model_time_s = model_time_s
        self._time_scale = time_scale
        self._changed = asyncio.Event()
        self._reading = False

    def changed(self) -> None:
        self._changed.set()

    async def next_readout(self) -> Readout:
        if self._reading:
            raise CameraBusy("a read_live_frame is already waiting")
        self._reading = True
        try:
            while True:
                self._changed.clear()
                if not self.timeline.live:
                    raise NotLive("live mode is not running")
                now_s = self._model_time_s()
                readout = self.timeline.take(now_s)
                if readout is not None:
                    return readout
                due_s = self.timeline.next_output_s(now_s)
                timeout = None if due_s is None else max(0.0, (due_s - now_s) / self._time_scale)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            self._reading = False


# ---- marks the camera puts on a live frame ---------------------------------------------------

# A 3x5 pixel font for the OSD digits, one string of 15 cells per digit, row by row.
_DIGITS = (
    "111101101101111", "010110010010111", "111001111100111", "111001111001111",
    "101101111001001", "111100111001111", "111100111101111", "111001001001001",
    "111101111101111", "111101111001111",
)
OSD_SCALE = 3  # screen pixels per font cell
OSD_ROWS = 7 * OSD_SCALE  # the band the OSD covers: one cell of margin above and below

Pixels = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]


def stamp_frame_head(pixels: Pixels, counter: int) -> None:
    """Write the frame number into the first FRAME_HEAD_BYTES bytes, big-endian, in place."""
    head = pixels.reshape(-1).view(np.uint8)
    if head.size >= FRAME_HEAD_BYTES:
        head[:FRAME_HEAD_BYTES] = np.frombuffer(
            (counter % COUNTER_MODULO).to_bytes(FRAME_HEAD_BYTES, "big"), dtype=np.uint8
        )


def burn_osd(pixels: Pixels, text: str) -> None:
    """Burn `text` (digits) into the top OSD_ROWS rows, in place: white digits on black, as far
    as the image is wide and tall."""
    rows = min(OSD_ROWS, pixels.shape[0])
    pixels[:rows] = 0
    white = np.iinfo(pixels.dtype).max
    for position, character in enumerate(text):
        if not character.isdigit():
            continue
        cells = np.array([c == "1" for c in _DIGITS[int(character)]]).reshape(5, 3)
        glyph = np.kron(cells, np.ones((OSD_SCALE, OSD_SCALE), dtype=bool))
        top = OSD_SCALE
        left = OSD_SCALE + position * 4 * OSD_SCALE
        height = min(glyph.shape[0], rows - top)
        width = min(glyph.shape[1], pixels.shape[1] - left)
        if height <= 0 or width <= 0:
            return
        region = pixels[top:top + height, left:left + width]
        region[glyph[:height, :width]] = white
