"""The GPS frame head: the timestamp block a QHYCCD GPS-BOX writes into the start of row 0.

What it is for: turning the first 44 bytes of a frame, as the camera delivers it, into typed
times (and back, for the simulator). Every backend shares it: the SDK backend decodes real
frames with it, the simulator writes its heads with it, the device reads DATE-OBS from it.

The layout is the QHY174GPS one that QHYCCD documents for every GPS camera, the external
GPS-BOX ones (QHY42PRO) included (reference qhy-sdk-and-drivers.md section 1.12), all fields
big-endian:

    0-3 sequence (u32)   4 temporary sequence   5-6 width, 7-8 height (u16)
    9-12 latitude "SDDMMMMMMM", 13-16 longitude "SDDDMMMMMM" (u32, S = 1 south / west)
    17 start flag, 18-21 start seconds (u32), 22-24 start ticks (u24)
    25 end flag,   26-29 end seconds,         30-32 end ticks
    33 now flag,   34-37 now seconds,         38-40 now ticks
    41-43 PPS counter (u24)

Seconds count from 1995-10-10 00:00 UTC (JD 2450000.5); ticks are 0.1 us (10 MHz). A flag's
bits 5:4 are the receiver status (0 just powered on, 1 not locked, 2 not locked but data
valid, 3 locked); bit 0 marks PPS, bit 1 second lock (0x33: locked with PPS). "Now" is the
sensor's vertical sync. On GPS-BOX cameras only the start is measured: the end is the start
plus a fixed 400 ns.

The bytes are the frame buffer's bytes as the camera sends them over USB: one byte per pixel
in 8-bit frames, little-endian 16-bit words in 16-bit frames.

What it is not: no FITS (camera/timing.py makes cards), no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

import numpy as np
import numpy.typing as npt

GPS_EPOCH = datetime(1995, 10, 10, tzinfo=UTC)  # JD 2450000.5
TICKS_PER_SECOND = 10_000_000  # 0.1 us
HEAD_BYTES = 44
END_MINUS_START_TICKS = 4  # GPS-BOX cameras: end = start + 400 ns (not measured)
TICKS_MAX = (1 << 24) - 1

FLAG_PPS = 0x01
FLAG_SECOND_LOCK = 0x02
STATUS_SHIFT = 4

_LAYOUT = struct.Struct(">IBHHII" + "BI3s" * 3 + "3s")
assert _LAYOUT.size == HEAD_BYTES


class ReceiverStatus(IntEnum):
    """Bits 5:4 of a GPS flag byte (NINA's ReceiverStatus)."""

    POWERED_ON = 0
    NOT_LOCKED = 1
    DATA_VALID = 2  # not locked, but the time is usable
    LOCKED = 3

    @property
    def label(self) -> str:
        return {0: "powered on", 1: "not locked", 2: "not locked, data valid",
                3: "locked"}[self.value]


def status_flag(status: ReceiverStatus) -> int:
    """The flag byte a GPS-BOX writes for a receiver status (0x33 when locked)."""
    bits = FLAG_PPS | FLAG_SECOND_LOCK if status is ReceiverStatus.LOCKED else 0
    return (int(status) << STATUS_SHIFT) | bits


@dataclass(frozen=True, slots=True)
class GpsTime:
    """One of the head's three time stamps."""

    flag: int
    seconds: int  # since GPS_EPOCH
    ticks: int  # 0.1 us, 0 .. TICKS_PER_SECOND - 1

    @property
    def status(self) -> ReceiverStatus:
        return ReceiverStatus((self.flag >> STATUS_SHIFT) & 3)

    @property
    def microseconds(self) -> float:
        return self.ticks / 10.0

    @property
    def utc(self) -> datetime:
        """UTC, rounded to the microsecond (datetime's resolution)."""
        return GPS_EPOCH + timedelta(seconds=self.seconds, microseconds=round(self.ticks / 10))

    @classmethod
    def at(cls, moment: datetime, status: ReceiverStatus) -> GpsTime:
        """The stamp of a UTC moment, truncated to the 0.1 us tick."""
        since = moment.astimezone(UTC) - GPS_EPOCH
        seconds = since.days * 86_400 + since.seconds
        return cls(status_flag(status), seconds, since.microseconds * 10)

    def plus_ticks(self, ticks: int) -> GpsTime:
        total = self.ticks + ticks
        return GpsTime(self.flag, self.seconds + total // TICKS_PER_SECOND,
                       total % TICKS_PER_SECOND)


@dataclass(frozen=True, slots=True)
class GpsHeader:
    """A decoded frame head."""

    sequence: int
    temporary_sequence: int
    width: int
    height: int
    latitude_deg: float  # north positive
    longitude_deg: float  # east positive
    start: GpsTime
    end: GpsTime
    now: GpsTime
    pps_counter: int

    @property
    def status(self) -> ReceiverStatus:
        return self.start.status

    @property
    def locked(self) -> bool:
        return self.status is ReceiverStatus.LOCKED

    @property
    def time_valid(self) -> bool:
        """The start time can be trusted: the receiver says so and the three stamps agree
        (NINA rejects a head whose statuses differ)."""
        statuses = {self.start.status, self.end.status, self.now.status}
        return len(statuses) == 1 and self.status >= ReceiverStatus.DATA_VALID


# ---- coordinates ---------------------------------------------------------------------------


def encode_latitude(degrees: float) -> int:
    """"SDDMMMMMMM": S 1 for south, DD degrees, MMMMMMM minutes x 1e5."""
    return _encode_angle(degrees, 10**7, 10**5)


def encode_longitude(degrees: float) -> int:
    """"SDDDMMMMMM": S 1 for west, DDD degrees, MMMMMM minutes x 1e4."""
    return _encode_angle(degrees, 10**6, 10**4)


def decode_latitude(value: int) -> float:
    return _decode_angle(value, 10**7, 10**5)


def decode_longitude(value: int) -> float:
    return _decode_angle(value, 10**6, 10**4)


def _encode_angle(degrees: float, degree_unit: int, minute_unit: int) -> int:
    sign = 10**9 if degrees < 0 else 0
    whole = int(abs(degrees))
    minutes = round((abs(degrees) - whole) * 60 * minute_unit)
    if minutes >= 60 * minute_unit:  # rounding reached the next degree
        whole, minutes = whole + 1, 0
    return sign + whole * degree_unit + minutes


def _decode_angle(value: int, degree_unit: int, minute_unit: int) -> float:
    sign = -1.0 if value > 10**9 else 1.0
    rest = value % 10**9
    degrees = rest // degree_unit + (rest % degree_unit) / minute_unit / 60
    return sign * degrees


# ---- bytes ---------------------------------------------------------------------------------


def decode_gps_header(head: bytes) -> GpsHeader:
    """Decode the first HEAD_BYTES bytes; ValueError if there are fewer."""
    if len(head) < HEAD_BYTES:
        raise ValueError(f"a GPS head is {HEAD_BYTES} bytes, got {len(head)}")
    (sequence, temporary, width, height, latitude, longitude,
     start_flag, start_s, start_t, end_flag, end_s, end_t, now_flag, now_s, now_t,
     pps) = _LAYOUT.unpack_from(head)
    return GpsHeader(
        sequence=sequence,
        temporary_sequence=temporary,
        width=width,
        height=height,
        latitude_deg=decode_latitude(latitude),
        longitude_deg=decode_longitude(longitude),
        start=GpsTime(start_flag, start_s, _u24(start_t)),
        end=GpsTime(end_flag, end_s, _u24(end_t)),
        now=GpsTime(now_flag, now_s, _u24(now_t)),
        pps_counter=_u24(pps),
    )


def encode_gps_header(header: GpsHeader) -> bytes:
    """The HEAD_BYTES bytes a GPS-BOX camera writes for `header`."""
    stamps: list[int | bytes] = []
    for stamp in (header.start, header.end, header.now):
        stamps += [stamp.flag, stamp.seconds, _b24(stamp.ticks)]
    return _LAYOUT.pack(
        header.sequence & 0xFFFF_FFFF, header.temporary_sequence & 0xFF,
        header.width & 0xFFFF, header.height & 0xFFFF,
        encode_latitude(header.latitude_deg), encode_longitude(header.longitude_deg),
        *stamps, _b24(min(header.pps_counter, TICKS_MAX)),
    )


def _u24(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _b24(value: int) -> bytes:
    return value.to_bytes(3, "big")


# ---- frames --------------------------------------------------------------------------------

Pixels = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]


def frame_head_bytes(pixels: Pixels, count: int = HEAD_BYTES) -> bytes:
    """The first `count` bytes of row 0 as the camera sent them (16-bit words little-endian);
    fewer if the row is shorter."""
    row = pixels[0]
    wire = row if row.dtype.itemsize == 1 else row.astype("<u2", copy=False)
    return bytes(wire.tobytes()[:count])


def read_frame_head(pixels: Pixels) -> GpsHeader | None:
    """The frame's GPS head, or None if row 0 is too short to hold one."""
    head = frame_head_bytes(pixels)
    return decode_gps_header(head) if len(head) == HEAD_BYTES else None


def write_frame_head(pixels: Pixels, head: bytes) -> bool:
    """Overwrite the start of row 0 with `head`, as the camera does. False (and nothing
    written) if row 0 is too short."""
    row = pixels[0]
    if row.size * row.dtype.itemsize < len(head):
        return False
    if row.dtype.itemsize == 1:
        row[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    else:
        if len(head) % 2:
            raise ValueError("a head written into 16-bit words needs an even length")
        words = np.frombuffer(head, dtype="<u2")
        row[: words.size] = words
    return True
