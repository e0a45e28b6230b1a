"""SER video files (Grischa Hahn's format, version 3): write them frame by frame, read them back.

What it is for: the stream recorder (recording.py) writes live frames with `SerWriter`, which
can bring the header's frame count up to date in place while it writes and, when a write
fails, end the file after the last whole frame; `repair_ser` makes a file cut off by a crash
readable again; tests and tools read a file with `read_ser` (or only its header with
`read_ser_header`). Blocking and pure: run it in a worker thread.

The layout written:

* a 178-byte header, integers little-endian: FileID "LUCAM-RECORDER" (14 ASCII bytes), LuID 0,
  ColorID 0 (MONO), LittleEndian, ImageWidth, ImageHeight, PixelDepthPerPlane (8, or 16 for
  the camera's 12-bit data left-shifted into 16-bit words), FrameCount, Observer, Instrument
  and Telescope (40 ASCII bytes each, NUL padded), DateTime (local) and DateTime_UTC of the
  recording's start, each a 64-bit count of 100 ns ticks since 0001-01-01 00:00 (the .NET
  epoch the format uses);
* the frames, raw pixels, top row first, each ImageWidth x ImageHeight x (1 or 2) bytes;
* a trailer of one 64-bit UTC tick count per frame: when that frame's exposure began. It is
  optional in the format: a file ended by a write error that left no room for it has none.

16-bit pixels are written little-endian with LittleEndian = 0. The first SER programs read
that flag the wrong way round and the readers since (Siril, libindi's own SER recorder)
follow them, so 0 is what tells today's software "little-endian".

Not here: file names, temporary files, queues (recording.py).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

FILE_ID = b"LUCAM-RECORDER"
HEADER_BYTES = 178
COLOR_MONO = 0
# The value meaning "16-bit data little-endian" in practice (see the module docstring).
LITTLE_ENDIAN_FLAG = 0
TEXT_FIELD_BYTES = 40
_HEADER = struct.Struct("<14s7i40s40s40sqq")
_EPOCH = datetime(1, 1, 1)
_TICKS_PER_MICROSECOND = 10

assert _HEADER.size == HEADER_BYTES


def ser_ticks(moment: datetime) -> int:
    """100 ns ticks since 0001-01-01 00:00: of UTC for an aware datetime, of the wall clock
    reading for a naive one (the header's local DateTime)."""
    wall = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    delta = wall - _EPOCH
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return microseconds * _TICKS_PER_MICROSECOND


@dataclass(frozen=True, slots=True)
class SerHeader:
    width: int
    height: int
    pixel_depth: int  # bits per pixel: 1..8 are stored in one byte, 9..16 in two
    frame_count: int
    observer: str = ""
    instrument: str = ""
    telescope: str = ""
    date_time_ticks: int = 0  # local time of the recording's start
    date_time_utc_ticks: int = 0
    color_id: int = COLOR_MONO
    little_endian_flag: int = LITTLE_ENDIAN_FLAG

    @property
    def bytes_per_pixel(self) -> int:
        return 1 if self.pixel_depth <= 8 else 2

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.bytes_per_pixel

    def pack(self) -> bytes:
        return _HEADER.pack(
            FILE_ID, 0, self.color_id, self.little_endian_flag, self.width, self.height,
            self.pixel_depth, self.frame_count, _text(self.observer), _text(self.instrument),
            _text(self.telescope), self.date_time_ticks, self.date_time_utc_ticks,
        )

    @classmethod
    def unpack(cls, data: bytes) -> SerHeader:
        fields = _HEADER.unpack(data[:HEADER_BYTES])
        if fields[0] != FILE_ID:
            raise ValueError(f"not a SER file: file id {fields[0]!r}")
        (_, _, color_id, little_endian_flag, width, height, depth, count, observer, instrument,
         telescope, local_ticks, utc_ticks) = fields
        return cls(
            width=width, height=height, pixel_depth=depth, frame_count=count,
            observer=_untext(observer), instrument=_untext(instrument),
            telescope=_untext(telescope), date_time_ticks=local_ticks,
            date_time_utc_ticks=utc_ticks, color_id=color_id,
            little_endian_flag=little_endian_flag,
        )


def _text(value: str) -> bytes:
    return value.encode("ascii", "replace")[:TEXT_FIELD_BYTES].ljust(TEXT_FIELD_BYTES, b"\0")


def _untext(value: bytes) -> str:
    return value.rstrip(b"\0").decode("ascii", "replace")


class SerWriter:
    """Writes one SER file to an open, seekable binary file: the header now (frame count 0),
    frames as they come, and at finish() the trailer and the final header. Every frame must
    have the shape and dtype of the first (uint8 for depth 8, uint16 for depth 16).

    A write that raises OSError leaves the frame uncounted; the frames before it stay good and
    finish() still ends the file after them."""

    def __init__(
        self, file: BinaryIO, width: int, height: int, pixel_depth: int, *, started: datetime,
        observer: str = "", instrument: str = "", telescope: str = "",
    ) -> None:
        if pixel_depth not in (8, 16):
            raise ValueError(f"pixel depth {pixel_depth}: 8 or 16 only")
        if started.tzinfo is None:
            raise ValueError("the start time must be timezone-aware")
        self._file = file
        self._dtype = np.dtype(np.uint8) if pixel_depth == 8 else np.dtype("<u2")
        self._shape = (height, width)
        self._timestamps: list[int] = []
        # True while the file position may not be frames_end (a write failed half-way).
        self._torn = False
        self.header = SerHeader(
            width=width, height=height, pixel_depth=pixel_depth, frame_count=0,
            observer=observer, instrument=instrument, telescope=telescope,
            date_time_ticks=ser_ticks(started.astimezone().replace(tzinfo=None)),
            date_time_utc_ticks=ser_ticks(started),
        )
        _write_fully(file, self.header.pack())

    @property
    def frame_count(self) -> int:
        return len(self._timestamps)

    @property
    def frames_end(self) -> int:
        """Where the last whole frame ends in the file."""
        return HEADER_BYTES + self.frame_count * self.header.frame_bytes

    def write_frame(self, pixels: NDArray[Any], started: datetime) -> None:
        """Append one frame; `started` (aware) is when its exposure began."""
        if pixels.shape != self._shape or pixels.dtype.itemsize != self._dtype.itemsize:
            raise ValueError(
                f"frame {pixels.shape} {pixels.dtype} does not match the recording's "
                f"{self._shape} {self._dtype}"
            )
        data = np.ascontiguousarray(pixels, dtype=self._dtype)
        if self._torn:  # write over whatever part of a frame a failed write left
            self._file.seek(self.frames_end)
        self._torn = True
        _write_fully(self._file, data.data)
        self._torn = False
        self._timestamps.append(ser_ticks(started))

    def write_header(self) -> SerHeader:
        """Rewrite the header in place with the count of the frames written so far, so that a
        file cut off later (a crash) opens with those. Leaves the position after them."""
        self.header = replace(self.header, frame_count=self.frame_count)
        self._torn = True
        self._file.seek(0)
        _write_fully(self._file, self.header.pack())
        self._file.seek(self.frames_end)
        self._torn = False
        return self.header

    def finish(self, *, trailer: bool = True) -> SerHeader:
        """End the file after the last whole frame (cutting off part of a frame a failed write
        left), write the trailer (unless trailer=False: when it does not fit) and the header
        with the final frame count; return that header."""
        self._file.truncate(self.frames_end)
        self._file.seek(self.frames_end)
        if trailer:
            self._torn = True
            _write_fully(self._file, np.asarray(self._timestamps, dtype="<u8").tobytes())
        header = self.write_header()
        self._file.seek(0, os.SEEK_END)
        return header


def _write_fully(file: BinaryIO, data: bytes | memoryview) -> None:
    # An unbuffered file may take less than asked (a disk filling up): write the rest, and
    # let the next write raise the reason.
    view = memoryview(data).cast("B")
    while view:
        written = file.write(view)
        if not written:
            raise OSError(f"the file took no data ({written!r} bytes written)")
        view = view[written:]


def repair_ser(file: BinaryIO) -> tuple[SerHeader, bool]:
    """Make a SER file cut off while it was written (a crash, a power cut) readable: count the
    whole frames from the file's size, cut off what follows them (part of a frame, part of a
    trailer) and write that count into the header. A complete file (the header's count of
    frames followed by their whole trailer) is left as it is. Returns the header and whether
    the trailer is there. ValueError if the file is not a SER file of known layout."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    data = file.read(HEADER_BYTES)
    if len(data) < HEADER_BYTES:
        raise ValueError(f"{size} bytes: shorter than a SER header")
    header = SerHeader.unpack(data)
    if header.width < 0 or header.height < 0 or not 1 <= header.pixel_depth <= 16:
        raise ValueError(f"not a SER layout this reads: {header.width}x{header.height}, "
                         f"depth {header.pixel_depth}")
    if size == _complete_size(header):
        return header, True
    whole = (size - HEADER_BYTES) // header.frame_bytes if header.frame_bytes else 0
    header = replace(header, frame_count=whole)
    file.truncate(HEADER_BYTES + whole * header.frame_bytes)
    file.seek(0)
    _write_fully(file, header.pack())
    return header, False


def _complete_size(header: SerHeader) -> int:
    return HEADER_BYTES + header.frame_count * (header.frame_bytes + 8)


@dataclass(frozen=True, slots=True, eq=False)
class SerFile:
    header: SerHeader
    frames: NDArray[Any]  # (count, height, width), uint8 or uint16 in native order
    # UTC ticks per frame; empty if the file has no trailer, or if what follows the counted
    # frames is not exactly one (a file cut off by a crash before repair_ser)
    timestamps: tuple[int, ...]

    def timestamp(self, index: int) -> datetime:
        """Frame `index`'s UTC start time."""
        microseconds = self.timestamps[index] // _TICKS_PER_MICROSECOND
        return _EPOCH.replace(tzinfo=UTC) + timedelta(microseconds=microseconds)


def read_ser_header(path: Path) -> SerHeader:
    """Only the header of a SER file (the frame count a reader would see)."""
    with path.open("rb") as file:
        return SerHeader.unpack(file.read(HEADER_BYTES))


def read_ser(path: Path) -> SerFile:
    """A whole SER file in memory (for checks and small files)."""
    data = path.read_bytes()
    if len(data) < HEADER_BYTES:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than a SER header")
    header = SerHeader.unpack(data)
    frames_end = HEADER_BYTES + header.frame_count * header.frame_bytes
    if len(data) < frames_end:
        raise ValueError(f"{path}: {header.frame_count} frames announced, file too short")
    dtype: np.dtype[Any] = np.dtype(np.uint8)
    if header.bytes_per_pixel == 2:
        little = header.little_endian_flag == LITTLE_ENDIAN_FLAG
        dtype = np.dtype("<u2" if little else ">u2")
    count = header.frame_count * header.width * header.height
    frames = np.frombuffer(data, dtype=dtype, count=count, offset=HEADER_BYTES)
    frames = frames.reshape(header.frame_count, header.height, header.width)
    if header.bytes_per_pixel == 2:
        frames = frames.astype(np.uint16)  # native byte order
    timestamps: tuple[int, ...] = ()
    if len(data) == _complete_size(header):
        trailer = np.frombuffer(data, dtype="<u8", offset=frames_end, count=header.frame_count)
        timestamps = tuple(int(t) for t in trailer)
    return SerFile(header, frames, timestamps)
