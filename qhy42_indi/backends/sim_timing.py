"""The simulated QHY42PRO's clocks, GPIO block, GPS-BOX and sync cable, as timestamped events.

What it is for: the parts of the datasheet's "Advanced Shutter Measurement" that the simulator
(simulator.py) models, kept out of the backend so they read as one model:

* `SimClock`: camera (model) time and how it maps to UTC. Model time runs `time_scale` times
  faster than the host's monotonic clock. `true_utc` is the simulated world's UTC (what a GPS
  receiver reports); `host_utc` is what the host's clock reads at that moment. At time scale 1
  they are the same instant; faster, the simulated world runs ahead of the host clock.
* `GpioBlock`: the FPGA's GPIO logic driven by REG39/REG142. Every waveform edge it emits is
  an `Event` in a bounded log: the shutter-measure waveform (rising edge = row 0 starts to
  integrate, falling edge = its end), the TrigOut pulse (falling edge at row 0's end, gated by
  REG142), the line-period pulse train (one pulse per row start), Trig In edges, sync edges,
  register writes and mode changes. `ports` says where an edge appeared: 5PIN.1 / 5PIN.3 /
  5PIN.4 in 5-pin mode, SMA_OUT as REG39[7:6] selects, GPS_BOX in GPS-BOX mode, SYNC_OUT for a
  sync master; an empty tuple is the sensor's own timing that no port shows. A mode change
  while REG142 is 1 emits a stray TrigOut pulse (why hosts clear REG142 around them).
* `GpsBox`: powered when REG39 selects GPS-BOX; not locked (status 1, times counted from its
  power-on) for `lock_after_s` of camera time, then locked (status 3, 0x33 flags, true UTC).
  Its PPS counter is the 10 MHz oscillator ticks counted between the last two PPS edges
  (VCOX calibration: 10 000 000 plus a small per-camera offset when locked; 10 000 500 when
  PPS is lost, the figure QHY's manual gives).
* `CameraSync`: the sync cable between the simulated cameras of one daemon and the clock they
  share. A master's (GPIO mode 4) exposure start is an edge every slave (mode 5) sees.

Triggered starts (Trig In, sync) wait for the camera's next line-clock edge, so a start lags
its trigger by less than one line period; each camera's line clock has its own phase.

What it is not: no exposure bookkeeping (simulator.py), no frame pixels beyond the GPS head,
no asyncio.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qhy42_indi.backends import sensor_model as sm
from qhy42_indi.backends.base import (
    REG_GPIO,
    REG_TRIGOUT_ENABLE,
    ExposureStart,
    GpioConfig,
    GpioMode,
    SmaOutput,
)
from qhy42_indi.backends.gps_header import (
    END_MINUS_START_TICKS,
    GPS_EPOCH,
    GpsHeader,
    GpsTime,
    Pixels,
    ReceiverStatus,
    encode_gps_header,
    write_frame_head,
)

# [model] where the simulated GPS-BOX stands: Mauna Kea, north and west, so the head's
# sign digits are exercised.
SITE_LATITUDE_DEG = 19.8207
SITE_LONGITUDE_DEG = -155.4681
TRIGOUT_PULSE_S = 2e-6  # [model] "a short pulse (the pulse is low level)"
VCOX_TICKS = 10_000_000
VCOX_OFFSET_MAX_TICKS = 20  # [model] a 2 ppm oscillator
PPS_LOST_TICKS = 10_000_500  # QHY's manual: the counter's value when PPS is lost
DEFAULT_GPS_LOCK_AFTER_S = 5.0  # [model] camera seconds from GPS-BOX power-on to lock
EVENT_LOG_SIZE = 2000

SHUTTER_MEASURE = "SHUTTER_MEASURE"
TRIG_OUT = "TRIG_OUT"
LINE_PERIOD = "LINE_PERIOD"
TRIG_IN = "TRIG_IN"
SYNC = "SYNC"
REGISTER = "REGISTER"
MODE_CHANGE = "MODE_CHANGE"


# ---- time ----------------------------------------------------------------------------------


class SimClock:
    """Camera time and UTC for simulated cameras. See the module docstring."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0.0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        before = time.monotonic()
        self.epoch_utc = datetime.now(UTC)
        self.epoch_monotonic_s = (before + time.monotonic()) / 2.0

    def model_s(self, monotonic_s: float | None = None) -> float:
        if monotonic_s is None:
            monotonic_s = time.monotonic()
        return (monotonic_s - self.epoch_monotonic_s) * self.time_scale

    def monotonic_at(self, model_s: float) -> float:
        return self.epoch_monotonic_s + model_s / self.time_scale

    def true_utc(self, model_s: float) -> datetime:
        """The simulated world's UTC at a camera time (what a locked GPS reports)."""
        return self.epoch_utc + timedelta(seconds=model_s)

    def host_utc(self, model_s: float) -> datetime:
        """What the host's clock reads when the camera's clock reads model_s."""
        return self.epoch_utc + timedelta(seconds=model_s / self.time_scale)


# ---- the event log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One edge (or pulse train, register write, mode change) the camera made."""

    model_s: float
    utc: datetime  # SimClock.true_utc(model_s)
    signal: str
    edge: str  # RISING, FALLING, PULSES, WRITE, CHANGE
    sequence: int = 0  # the exposure it belongs to (0: none)
    ports: tuple[str, ...] = ()
    pulses: int = 1
    period_us: float = 0.0
    value: int = 0
    note: str = ""  # one word: stray, ignored, aborted, read_mode ...

    def to_text(self) -> str:
        """One line of space-separated key=value pairs; from_text reads it back."""
        return " ".join((
            f"model_s={self.model_s:.9f}",
            f"utc={self.utc.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')}",
            f"signal={self.signal}",
            f"edge={self.edge}",
            f"seq={self.sequence}",
            f"ports={','.join(self.ports) or '-'}",
            f"pulses={self.pulses}",
            f"period_us={self.period_us:g}",
            f"value={self.value}",
            f"note={self.note or '-'}",
        ))

    @classmethod
    def from_text(cls, line: str) -> Event:
        fields = dict(item.split("=", 1) for item in line.split())
        return cls(
            model_s=float(fields["model_s"]),
            utc=datetime.fromisoformat(fields["utc"]).replace(tzinfo=UTC),
            signal=fields["signal"],
            edge=fields["edge"],
            sequence=int(fields["seq"]),
            ports=() if fields["ports"] == "-" else tuple(fields["ports"].split(",")),
            pulses=int(fields["pulses"]),
            period_us=float(fields["period_us"]),
            value=int(fields["value"]),
            note="" if fields["note"] == "-" else fields["note"],
        )


class EventLog:
    """The last EVENT_LOG_SIZE events, in the order the camera made them."""

    def __init__(self, size: int = EVENT_LOG_SIZE) -> None:
        self._events: deque[Event] = deque(maxlen=size)

    def record(self, event: Event) -> None:
        self._events.append(event)

    def clear(self) -> None:
        self._events.clear()

    def __iter__(self) -> Iterator[Event]:
        return iter(tuple(self._events))

    def __len__(self) -> int:
        return len(self._events)


# ---- the sync cable ------------------------------------------------------------------------

SyncListener = Callable[[float], None]


class CameraSync:
    """The multi-camera sync cable of one daemon's simulated cameras, and their shared clock.

    Each camera attaches a listener when it opens; a master's exposure start (camera time)
    reaches every other listener at once.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self.clock = SimClock(time_scale)
        self._listeners: list[SyncListener] = []

    def attach(self, listener: SyncListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def detach(self, listener: SyncListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def master_started(self, master: SyncListener, model_s: float) -> None:
        for listener in list(self._listeners):
            if listener != master:
                listener(model_s)


# ---- the GPS-BOX ---------------------------------------------------------------------------


class GpsBox:
    """A QHYCCD GPS-BOX on the 6-pin port. See the module docstring."""

    def __init__(self, clock: SimClock, lock_after_s: float, vcox_offset_ticks: int) -> None:
        self._clock = clock
        self.lock_after_s = lock_after_s
        self._vcox_ticks = VCOX_TICKS + vcox_offset_ticks
        self.powered_on_s: float | None = None

    def power(self, on: bool, model_s: float) -> None:
        if on and self.powered_on_s is None:
            self.powered_on_s = model_s
        elif not on:
            self.powered_on_s = None

    def status(self, model_s: float) -> ReceiverStatus:
        if self.powered_on_s is None or model_s < self.powered_on_s:
            return ReceiverStatus.POWERED_ON
        if model_s - self.powered_on_s < self.lock_after_s:
            return ReceiverStatus.NOT_LOCKED
        return ReceiverStatus.LOCKED

    def stamp(self, model_s: float) -> GpsTime:
        """The time the box gives a moment: true UTC once locked; before, its free-running
        count from power-on (a date in 1995)."""
        status = self.status(model_s)
        if status is ReceiverStatus.LOCKED:
            return GpsTime.at(self._clock.true_utc(model_s), status)
        since_on_s = max(0.0, model_s - (self.powered_on_s or model_s))
        return GpsTime.at(GPS_EPOCH + timedelta(seconds=since_on_s), status)

    def pps_counter(self, model_s: float) -> int:
        locked = self.status(model_s) is ReceiverStatus.LOCKED
        return self._vcox_ticks if locked else PPS_LOST_TICKS

    def head(self, sequence: int, width: int, height: int, start_s: float,
             end_s: float) -> bytes:
        start = self.stamp(start_s)
        return encode_gps_header(GpsHeader(
            sequence=sequence,
            temporary_sequence=0,
            width=width,
            height=height,
            latitude_deg=SITE_LATITUDE_DEG,
            longitude_deg=SITE_LONGITUDE_DEG,
            start=start,
            end=start.plus_ticks(END_MINUS_START_TICKS),  # GPS-BOX cameras do not measure it
            now=self.stamp(end_s),  # vertical sync: row 0's exposure ends
            pps_counter=self.pps_counter(end_s),
        ))


# ---- the GPIO block ------------------------------------------------------------------------


class GpioBlock:
    """REG39/REG142 and what they make the camera emit. See the module docstring.

    `registers` is the backend's register file (shared, not copied). `supported` is False
    with FPGA firmware older than the datasheet's: the registers are then plain storage.
    """

    def __init__(self, camera_id: str, clock: SimClock, registers: bytearray,
                 gps_lock_after_s: float = DEFAULT_GPS_LOCK_AFTER_S) -> None:
        self._clock = clock
        self._registers = registers
        self.supported = True
        self.log = EventLog()
        seed = sm.camera_seed(camera_id, "line clock")
        self._line_phase = (seed % 1000) / 1000.0  # of a line period
        offset = seed // 1000 % (2 * VCOX_OFFSET_MAX_TICKS + 1) - VCOX_OFFSET_MAX_TICKS
        self.gps = GpsBox(clock, gps_lock_after_s, offset)

    # ---- state

    @property
    def config(self) -> GpioConfig:
        return GpioConfig(self._registers[REG_GPIO], self._registers[REG_TRIGOUT_ENABLE])

    @property
    def mode(self) -> GpioMode | None:
        """The GPIO port mode in force (None if undefined or the firmware lacks it)."""
        return self.config.gpio_mode if self.supported else None

    def power_on(self, supported: bool) -> None:
        """The camera's power-on state: GPIO mode 0, SMA shows the shutter measure, TrigOut
        pulse enabled (REG142 = 1)."""
        self.supported = supported
        self._registers[REG_GPIO] = 0
        self._registers[REG_TRIGOUT_ENABLE] = 1 if supported else 0
        self.gps.power(False, 0.0)

    # ---- what the host does

    def register_written(self, address: int, value: int) -> None:
        model_s = self._clock.model_s()
        self._record(model_s, REGISTER, "WRITE", value=value, note=f"REG{address}")
        if address == REG_GPIO:
            self.gps.power(self.mode is GpioMode.GPS_BOX, model_s)

    def mode_changed(self, what: str) -> None:
        """A read mode, speed, binning, ROI or bit depth change re-times the sensor."""
        model_s = self._clock.model_s()
        self._record(model_s, MODE_CHANGE, "CHANGE", note=what)
        if self.supported and self.config.trigout_enabled:
            self._record(model_s, TRIG_OUT, "FALLING", ports=self._trigout_ports(), note="stray")
            self._record(model_s + TRIGOUT_PULSE_S, TRIG_OUT, "RISING",
                         ports=self._trigout_ports(), note="stray")

    # ---- triggers

    def next_line_start(self, model_s: float, line_period_us: float) -> float:
        """The camera's first line-clock edge at or after model_s."""
        period_s = line_period_us * 1e-6
        phase_s = self._line_phase * period_s
        return math.ceil((model_s - phase_s) / period_s) * period_s + phase_s

    def trigger_in(self, model_s: float, accepted: bool) -> None:
        self._record(model_s, TRIG_IN, "FALLING", ports=("SMA_IN",),
                     note="" if accepted else "ignored")

    def sync_in(self, model_s: float, accepted: bool) -> None:
        if self.mode is GpioMode.SYNC_SLAVE:
            self._record(model_s, SYNC, "RISING", ports=("SYNC_IN",),
                         note="" if accepted else "ignored")

    def is_sync_master(self) -> bool:
        return self.mode is GpioMode.SYNC_MASTER

    def sync_out(self, model_s: float, sequence: int) -> None:
        self._record(model_s, SYNC, "RISING", sequence, ports=("SYNC_OUT",))

    # ---- exposures

    def frame_read(self, start: ExposureStart, start_s: float, rows: int, pixels: Pixels) -> None:
        """An exposure ended and was read out: its edges, and the GPS head into its pixels."""
        end_s = start_s + start.exposure_s
        self._shutter_edges(start, start_s, end_s, rows)
        if self.supported and self.config.trigout_enabled:
            ports = self._trigout_ports()
            self._record(end_s, TRIG_OUT, "FALLING", start.sequence, ports)
            self._record(end_s + TRIGOUT_PULSE_S, TRIG_OUT, "RISING", start.sequence, ports)
        if self.mode is GpioMode.GPS_BOX:
            height, width = pixels.shape
            write_frame_head(pixels, self.gps.head(start.sequence, width, height, start_s, end_s))

    def aborted(self, start: ExposureStart, start_s: float, rows: int) -> None:
        end_s = min(start_s + start.exposure_s, self._clock.model_s())
        self._shutter_edges(start, start_s, max(start_s, end_s), rows, note="aborted")

    def _shutter_edges(self, start: ExposureStart, start_s: float, end_s: float, rows: int,
                       note: str = "") -> None:
        ports = self._shutter_ports()
        self._record(start_s, SHUTTER_MEASURE, "RISING", start.sequence, ports, note=note)
        self._record(start_s, LINE_PERIOD, "PULSES", start.sequence,
                     ("5PIN.3",) if self.mode is GpioMode.FIVE_PIN else (),
                     pulses=rows, period_us=start.line_period_us)
        self._record(end_s, SHUTTER_MEASURE, "FALLING", start.sequence, ports, note=note)

    # ---- routing

    def _shutter_ports(self) -> tuple[str, ...]:
        if not self.supported:
            return ()
        ports = []
        if self.mode is GpioMode.FIVE_PIN:
            ports.append("5PIN.1")
        if self.mode is GpioMode.GPS_BOX:
            ports.append("GPS_BOX")
        if self.config.sma_output is SmaOutput.SHUTTER_MEASURE:
            ports.append("SMA_OUT")
        return tuple(ports)

    def _trigout_ports(self) -> tuple[str, ...]:
        ports = []
        if self.mode is GpioMode.FIVE_PIN:
            ports.append("5PIN.4")
        if self.config.sma_output is SmaOutput.TRIG_OUT:
            ports.append("SMA_OUT")
        return tuple(ports)

    def _record(self, model_s: float, signal: str, edge: str, sequence: int = 0,
                ports: tuple[str, ...] = (), *, pulses: int = 1, period_us: float = 0.0,
                value: int = 0, note: str = "") -> None:
        self.log.record(Event(model_s, self._clock.true_utc(model_s), signal, edge, sequence,
                              ports, pulses, period_us, value, note))
