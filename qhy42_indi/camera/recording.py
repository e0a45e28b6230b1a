"""SER recording of the live stream on the server, as libindi's stream recorder does it.

RECORD_FILE names the file: in its directory and name, _D_ becomes the date (YYYY-MM-DD),
_H_ the time (hh-mm-ss), _T_ both (YYYY-MM-DD@hh-mm-ss), all UTC as libindi expands them, and
_HOME_ the server user's home; ".ser" is appended when missing. `SerRecording` writes one
file: frames are offered from the event loop, queued, and written in order by one task
through a worker thread (ser.py). The queue is bounded (LIMITS_BUFFER_MAX): past the bound a
frame is skipped and counted, as libindi skips frames when its buffer is full, instead of
memory growing without end.

The file is written under a temporary name beside the target, fsynced and renamed when the
recording ends, so a reader never sees half a file; a failure (disk full, no permission) is
an UploadError naming the reason, and leaves nothing behind (upload.py's rule).

Not here: INDI properties and the limits' bookkeeping (streaming.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from numpy.typing import NDArray

from qhy42_indi.camera.ser import SerWriter
from qhy42_indi.camera.upload import HOME_TOKEN, UploadError, describe_os_error
from qhy42_indi.tasks import cancel_and_wait

SER_EXTENSION = ".ser"
_TEMP_SUFFIX = ".part"


def expand_record_path(directory: str, name: str, now: datetime) -> Path:
    """RECORD_FILE_DIR / RECORD_FILE_NAME with libindi's patterns replaced, ending in .ser."""
    if not name.strip() or "/" in name or "\0" in name:
        raise UploadError("Cannot use the record file name", repr(name),
                          "it must be a plain file name")
    if not directory.strip():
        raise UploadError("Cannot use the record directory", repr(directory), "it is empty")
    stamp = now.astimezone(UTC)
    patterns = {
        "_D_": f"{stamp:%Y-%m-%d}",
        "_H_": f"{stamp:%H-%M-%S}",
        "_T_": f"{stamp:%Y-%m-%d@%H-%M-%S}",
        "_F_": "",  # the filter's name: the QHY42PRO device has no filter wheel
        HOME_TOKEN: str(Path.home()),
    }
    for token, value in patterns.items():
        directory = directory.replace(token, value)
        name = name.replace(token, value)
    if not name.endswith(SER_EXTENSION):
        name += SER_EXTENSION
    return Path(directory).expanduser() / name


class SerRecording:
    """One SER file being recorded. open(), offer() per frame, then finish() or abort()."""

    def __init__(self, path: Path, *, max_buffer_bytes: int, instrument: str = "",
                 telescope: str = "", observer: str = "") -> None:
        self.path = path
        self.max_buffer_bytes = max_buffer_bytes
        self.frames_offered = 0
        self.frames_skipped = 0
        self._labels = {"instrument": instrument, "telescope": telescope, "observer": observer}
        self._temp_path = path.with_name(f".{path.name}{_TEMP_SUFFIX}")
        self._file: BinaryIO | None = None
        self._writer: SerWriter | None = None
        self._shape: tuple[int, ...] | None = None
        self._queue: asyncio.Queue[tuple[NDArray[Any], datetime] | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._failure: UploadError | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def frames_written(self) -> int:
        return 0 if self._writer is None else self._writer.frame_count

    async def open(self) -> None:
        """Create the directory and the temporary file. Raises UploadError."""
        self._file = await asyncio.to_thread(self._create)
        self._task = asyncio.create_task(self._write_all(), name=f"record {self.path.name}")

    def offer(self, pixels: NDArray[Any], started: datetime) -> bool:
        """Queue one frame (kept by reference: it must not change afterwards). False if it was
        skipped: the buffer is full, the frame's shape differs from the first, or writing
        has failed."""
        self.frames_offered += 1
        shape = (*pixels.shape, pixels.dtype.itemsize)
        if self._shape is None:
            self._shape = shape
        too_full = self._queued_bytes + pixels.nbytes > self.max_buffer_bytes
        if self._failure is not None or shape != self._shape or too_full or self._task is None:
            self.frames_skipped += 1
            return False
        self._queued_bytes += pixels.nbytes
        self._queue.put_nowait((pixels, started))
        return True

    async def finish(self) -> Path:
        """Write what is queued, the trailer and the final header; rename into place.
        Raises UploadError (and leaves no file) if any of it failed."""
        await self._drain()
        try:
            if self._failure is not None:
                raise self._failure
            await asyncio.to_thread(self._close_and_publish)
        except BaseException:
            await self.abort()
            raise
        return self.path

    async def abort(self) -> None:
        """Stop and remove the temporary file."""
        if self._task is not None and not self._task.done():
            await cancel_and_wait(self._task)
        file, self._file = self._file, None
        await asyncio.to_thread(self._discard, file)

    # ---- worker side

    async def _drain(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task

    async def _write_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            pixels, started = item
            self._queued_bytes -= pixels.nbytes
            if self._failure is not None:
                continue
            try:
                await asyncio.to_thread(self._write, pixels, started)
            except (OSError, ValueError) as error:
                self._failure = _write_error(self.path, error)

    def _create(self) -> BinaryIO:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return open(self._temp_path, "wb")  # closed by finish() or abort()
        except OSError as error:
            raise UploadError("Cannot create the recording", self.path,
                              describe_os_error(error)) from error

    def _write(self, pixels: NDArray[Any], started: datetime) -> None:
        assert self._file is not None
        if self._writer is None:
            height, width = pixels.shape
            self._writer = SerWriter(self._file, width, height, 8 * pixels.dtype.itemsize,
                                     started=started, **self._labels)
        self._writer.write_frame(pixels, started)

    def _close_and_publish(self) -> None:
        file = self._file
        assert file is not None
        try:
            if self._writer is None:  # no frame at all: still a valid, empty SER file
                self._writer = SerWriter(file, 0, 0, 8, started=datetime.now(UTC),
                                         **self._labels)
            self._writer.finish()
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.replace(self._temp_path, self.path)
            _sync_directory(self.path.parent)
        except OSError as error:
            raise _write_error(self.path, error) from error
        self._file = None

    def _discard(self, file: BinaryIO | None) -> None:
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(FileNotFoundError, OSError):
            self._temp_path.unlink()


def _write_error(path: Path, error: OSError | ValueError) -> UploadError:
    reason = describe_os_error(error) if isinstance(error, OSError) else str(error)
    return UploadError("Cannot write the recording", path, reason)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
