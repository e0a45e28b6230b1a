"""The cooling history the page plots: sensor temperature, set-point and cooler power.

Kept in memory, bounded (six hours at the densest), so it survives a page reload but not a
restart. Per SAMPLE_PERIOD_S at most two readings are kept: the first of the period, and the
last one before the next period starts (the camera publishes a temperature only when it
changes, so the value it settled at before a quiet spell must not be lost; until the next
reading comes the page shows it as the current value). Each sample has a sequence number,
so a page asks only for what it has not seen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SAMPLE_PERIOD_S = 10.0
MAX_SAMPLES = 4320  # 6 h at two per 10 s


@dataclass(frozen=True, slots=True)
class CoolingSample:
    seq: int
    time_s: float  # epoch
    temperature_c: float
    setpoint_c: float | None  # None: not regulating
    power_percent: float | None


@dataclass(frozen=True, slots=True)
class _Reading:
    time_s: float
    temperature_c: float
    setpoint_c: float | None
    power_percent: float | None


class CoolingHistory:
    def __init__(self, max_samples: int = MAX_SAMPLES,
                 period_s: float = SAMPLE_PERIOD_S) -> None:
        self._samples: deque[CoolingSample] = deque(maxlen=max_samples)
        self._period_s = period_s
        self._period_start_s: float | None = None
        self._latest: _Reading | None = None  # the period's last reading, not yet kept
        self._seq = 0

    def record(self, time_s: float, temperature_c: float, setpoint_c: float | None,
               power_percent: float | None) -> bool:
        """Take a reading; True if it (or the one it follows) became a sample."""
        reading = _Reading(time_s, temperature_c, setpoint_c, power_percent)
        if self._period_start_s is not None and time_s < self._period_start_s + self._period_s:
            self._latest = reading
            return False
        if self._latest is not None:
            self._keep(self._latest)
            self._latest = None
        self._period_start_s = time_s
        self._keep(reading)
        return True

    def _keep(self, reading: _Reading) -> None:
        self._seq += 1
        self._samples.append(CoolingSample(self._seq, reading.time_s, reading.temperature_c,
                                           reading.setpoint_c, reading.power_percent))

    def since(self, seq: int) -> list[CoolingSample]:
        """Samples newer than `seq` (0: all kept)."""
        if not self._samples or self._samples[-1].seq <= seq:
            return []
        return [s for s in self._samples if s.seq > seq]

    @property
    def pending(self) -> CoolingSample | None:
        """The period's last reading, not a sample yet (seq 0): the plot draws it too."""
        r = self._latest
        return None if r is None else CoolingSample(0, r.time_s, r.temperature_c,
                                                    r.setpoint_c, r.power_percent)

    @property
    def last_seq(self) -> int:
        return self._seq

    def __len__(self) -> int:
        return len(self._samples)
