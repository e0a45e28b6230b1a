"""Where the daemon's event loop stalls: a watchdog around `qhy42-indi`, for diagnosis only.

```
python -m bench.loop_watch serve --backend simulator ...        # the CLI's own arguments
QHY42_LOOP_WATCH_MS=5 python -m bench.loop_watch serve ...       # stall threshold (default 10)
```

It runs the CLI unchanged, with two additions to every event loop the process creates: a
heartbeat callback every millisecond, and a watchdog thread that notices when the heartbeat
is late by more than the threshold. While the loop is stalled it samples, every millisecond,
the stack of the loop's thread and of every other thread that is running Python code (a
worker that holds the GIL stalls the loop as surely as a slow callback does). When the
process ends it logs, on stderr (the server log), the stalls (count, total, p50/p99/max) and
the places they were seen, innermost frame of this repository first, most time first, and
how the loop thread spent the stalls (from its /proc schedstat): on a CPU (its own slow work),
runnable without a CPU (the cores were taken), or asleep (waiting for the GIL).

Sampling from a Python thread needs the GIL: a C call that holds the GIL for 30 ms is seen
right after it returns, at the next line of the same function, which still names it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = str(Path(__file__).resolve().parents[1])
HEARTBEAT_S = 0.001
SAMPLE_S = 0.001
DEFAULT_THRESHOLD_MS = 10.0
TOP_PLACES = 12
# Frames of threads that are waiting, not running: their stacks end in these functions.
IDLE_FUNCTIONS = frozenset({"wait", "_worker", "select", "poll", "get", "_wait_for_tstate_lock",
                            "run_forever", "sleep", "accept", "recv", "read", "readline"})

log = logging.getLogger("bench.loop_watch")


@dataclass
class Stall:
    began: float
    samples: collections.Counter[str] = field(default_factory=collections.Counter)
    ended: float = 0.0
    sched_start: tuple[float, float] | None = None  # the loop thread's (on CPU, runnable) ms
    sched_end: tuple[float, float] | None = None

    @property
    def ms(self) -> float:
        return (self.ended - self.began) * 1e3

    def split(self) -> tuple[float, float]:
        """(ms on a CPU, ms runnable but waiting for one) of the loop thread while the stall
        was watched (from its detection, a threshold after it began)."""
        if self.sched_start is None or self.sched_end is None:
            return 0.0, 0.0
        return (self.sched_end[0] - self.sched_start[0], self.sched_end[1] - self.sched_start[1])


class LoopWatch(threading.Thread):
    """Heartbeat on the loop, watchdog in this thread, stacks sampled while the loop is late."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float) -> None:
        super().__init__(name="loop-watch", daemon=True)
        self.loop = loop
        self.threshold_s = threshold_s
        self.loop_thread_id: int | None = None
        self.loop_native_id: int | None = None
        self.last_beat = time.monotonic()
        self.stalls: list[Stall] = []
        self._halt = threading.Event()

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        self.loop_thread_id = threading.get_ident()
        self.loop_native_id = threading.get_native_id()
        if not self._halt.is_set() and not self.loop.is_closed():
            self.loop.call_later(HEARTBEAT_S, self.beat)

    def run(self) -> None:
        stall: Stall | None = None
        while not self._halt.wait(SAMPLE_S):
            late = time.monotonic() - self.last_beat - HEARTBEAT_S
            if late > self.threshold_s and self.loop.is_running():
                if stall is None:
                    stall = Stall(self.last_beat, sched_start=self._schedstat())
                self._sample(stall)
            elif stall is not None:
                stall.ended = self.last_beat
                stall.sched_end = self._schedstat()
                self.stalls.append(stall)
                stall = None

    def _schedstat(self) -> tuple[float, float] | None:
        """The loop thread's time on a CPU and waiting in a run queue, ms (schedstat)."""
        try:
            path = f"/proc/self/task/{self.loop_native_id}/schedstat"
            on_cpu_ns, runnable_ns, _ = Path(path).read_text().split()
        except (OSError, ValueError):
            return None
        return int(on_cpu_ns) / 1e6, int(runnable_ns) / 1e6

    def _sample(self, stall: Stall) -> None:
        for thread_id, frame in sys._current_frames().items():
            if thread_id == threading.get_ident():
                continue
            if thread_id != self.loop_thread_id and _idle(frame):
                continue
            who = "loop" if thread_id == self.loop_thread_id else "worker"
            stall.samples[f"{who}: {_place(frame)}"] += 1

    def stop(self) -> None:
        self._halt.set()

    def report(self) -> str:
        if not self.stalls:
            return f"loop watch: no stall over {self.threshold_s * 1e3:g} ms"
        durations = sorted(s.ms for s in self.stalls)
        watched = sum(max(0.0, s.ms - self.threshold_s * 1e3) for s in self.stalls)
        on_cpu = sum(s.split()[0] for s in self.stalls)
        runnable = sum(s.split()[1] for s in self.stalls)
        places: dict[str, float] = collections.defaultdict(float)
        worst: dict[str, float] = {}
        for stall in self.stalls:
            total = sum(stall.samples.values()) or 1
            for place, count in stall.samples.items():
                # a stall's time is shared among the places seen in it, by samples
                places[place] += (stall.ended - stall.began) * 1e3 * count / total
                worst[place] = max(worst.get(place, 0.0), (stall.ended - stall.began) * 1e3)
        lines = [f"loop watch: {len(durations)} stalls over {self.threshold_s * 1e3:g} ms, "
                 f"{sum(durations):.0f} ms in all; p50 {_pct(durations, 50):.1f} ms, "
                 f"p99 {_pct(durations, 99):.1f} ms, max {durations[-1]:.1f} ms",
                 f"  of the {watched:.0f} ms watched, the loop thread was on a CPU "
                 f"{on_cpu:.0f} ms (its own work: a slow callback or syscall), runnable but "
                 f"without a CPU {runnable:.0f} ms (the cores were busy), asleep "
                 f"{max(0.0, watched - on_cpu - runnable):.0f} ms (waiting for the GIL or in a "
                 "blocking call)"]
        for place, ms in sorted(places.items(), key=lambda item: -item[1])[:TOP_PLACES]:
            lines.append(f"  {ms:8.1f} ms (worst stall {worst[place]:6.1f} ms)  {place}")
        return "\n".join(lines)


def _pct(ordered: Sequence[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * pct / 100))]


def _idle(frame: FrameType) -> bool:
    return frame.f_code.co_name in IDLE_FUNCTIONS


def _place(frame: FrameType) -> str:
    """The innermost frame of this repository and, when that is not the innermost frame,
    the innermost one too (numpy, the standard library): `file:function:line < ...`."""
    stack = traceback.extract_stack(frame)
    inner = stack[-1]
    ours = next((f for f in reversed(stack) if f.filename.startswith(REPO)), None)
    text = _frame_text(ours or inner)
    if ours is not None and ours is not inner:
        text += f" < {_frame_text(inner)}"
    return text


def _frame_text(frame: traceback.FrameSummary) -> str:
    name = frame.filename
    name = os.path.relpath(name, REPO) if name.startswith(REPO) else os.path.basename(name)
    return f"{name}:{frame.name}:{frame.lineno}"


class _WatchedPolicy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, threshold_s: float) -> None:
        super().__init__()
        self.threshold_s = threshold_s
        self.watches: list[LoopWatch] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        watch = LoopWatch(loop, self.threshold_s)
        loop.call_soon(watch.beat)
        watch.start()
        self.watches.append(watch)
        return loop

    def report(self) -> None:
        for watch in self.watches:
            watch.stop()
            print(watch.report(), file=sys.stderr, flush=True)
        self.watches.clear()


def main(argv: Sequence[str] | None = None) -> Any:
    threshold_ms = float(os.environ.get("QHY42_LOOP_WATCH_MS", DEFAULT_THRESHOLD_MS))
    policy = _WatchedPolicy(threshold_ms / 1e3)
    asyncio.set_event_loop_policy(policy)
    atexit.register(policy.report)  # also when the CLI exits through SystemExit
    from qhy42_indi.cli import main as cli_main

    try:
        return cli_main(argv)
    finally:
        policy.report()


if __name__ == "__main__":
    sys.exit(main())
