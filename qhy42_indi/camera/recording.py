"""SER recording of the live stream on the server, as libindi's stream recorder does it.

RECORD_FILE names the file: in its directory and name, _D_ becomes the date (YYYY-MM-DD),
_H_ the time (hh-mm-ss), _T_ both (YYYY-MM-DD@hh-mm-ss), all UTC as libindi expands them, and
_HOME_ the server user's home; ".ser" is appended when missing. `SerRecording` writes one
file: frames are offered from the event loop, queued, and written in order by one task
through a worker thread (ser.py). The queue is bounded (LIMITS_BUFFER_MAX): past the bound a
frame is skipped and counted, as libindi skips frames when its buffer is full, instead of
memory growing without end.

The file is written under a temporary name beside the target (`.<name>.ser.part`), locked
(flock) while it is written, and renamed when the recording ends, so a reader never sees a
file that is still growing. What was recorded is kept whatever happens:

* a write error (disk full, disk removed, I/O error) stops the recording at once: `failure`
  says why, later frames are skipped, and finish() ends the file after the last whole frame
  (with the timestamp trailer of exactly those frames if it still fits, else without one),
  gives it its final name and returns a `RecordingResult` with the reason and the count;
* while it records, the header's frame count is brought up to date on disk about once a
  second, after the frames it counts have been synced, so a file cut off by a crash or a
  power cut opens in SER readers with the frames counted so far;
* `recover_recordings` finishes the temporary files such a crash leaves: it counts the whole
  frames from the file's size, cuts off a partial last frame, fixes the header's count and
  gives the file its final name (`<stem>-recovered.ser` when that is taken).
  `SerRecording.open()` runs it for its own directory, so an interrupted recording is finished
  when the next recording starts there.

Only a recording whose file cannot be created at all is an UploadError (from open()).

Not here: INDI properties and the limits' bookkeeping (streaming.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import os
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from qhy42_indi.camera.ser import HEADER_BYTES, SerWriter, repair_ser
from qhy42_indi.camera.upload import HOME_TOKEN, UploadError, describe_os_error

SER_EXTENSION = ".ser"
_TEMP_SUFFIX = ".part"
_RECOVERED_MARK = "-recovered"
# How often (wall time) the header's frame count on disk is brought up to date. Each update
# syncs the frames first; once a second keeps a crash's loss small without stalling the disk.
CHECKPOINT_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """How a recording ended. `path` is the finished file, None only when nothing at all
    could be kept; `frames_kept` counts the whole frames in it; `frames_skipped` the frames
    offered but not written (buffer full, after a failure); `failure` is why the recording
    stopped early, as a message for the user (None if it did not)."""

    path: Path | None
    frames_kept: int
    frames_skipped: int
    failure: str | None


def expand_record_path(directory: str, name: str, now: datetime, *,
                       filter_name: str = "") -> Path:
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
        "_F_": filter_name.replace("/", "-"),  # the snooped filter wheel's current filter
        HOME_TOKEN: str(Path.home()),
    }
    for token, value in patterns.items():
        directory = directory.replace(token, value)
        name = name.replace(token, value)
    if not name.endswith(SER_EXTENSION):
        name += SER_EXTENSION
    return Path(directory).expanduser() / name


def temp_path_for(path: Path) -> Path:
    """The temporary name a recording to `path` is written under."""
    return path.with_name(f".{path.name}{_TEMP_SUFFIX}")


class SerRecording:
    """One SER file being recorded. open(), offer() per frame, then finish() or abort()."""

    def __init__(self, path: Path, *, max_buffer_bytes: int, instrument: str = "",
                 telescope: str = "", observer: str = "",
                 checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path = path
        self.max_buffer_bytes = max_buffer_bytes
        self.checkpoint_interval_s = checkpoint_interval_s
        self.frames_offered = 0
        self.frames_skipped = 0
        # What open() found and finished of earlier, interrupted recordings in the directory.
        self.recovered: tuple[RecordingResult, ...] = ()
        self._labels = {"instrument": instrument, "telescope": telescope, "observer": observer}
        self._temp_path = temp_path_for(path)
        self._file: FileIO | None = None
        self._writer: SerWriter | None = None
        self._shape: tuple[int, ...] | None = None
        self._queue: asyncio.Queue[tuple[NDArray[Any], datetime] | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._failure: str | None = None
        self._stopping = False
        self._last_checkpoint_s = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._ended: RecordingResult | None = None

    @property
    def frames_written(self) -> int:
        """Whole frames in the file so far."""
        return 0 if self._writer is None else self._writer.frame_count

    @property
    def failure(self) -> str | None:
        """Why the recording cannot go on (set as soon as a write failed), or None."""
        return self._failure

    async def open(self) -> None:
        """Finish interrupted recordings in the directory (see `recovered`), then create the
        temporary file. Raises UploadError if it cannot be created."""
        try:
            self._file = await asyncio.to_thread(self._prepare)
        except UploadError as error:
            self._failure = str(error)
            raise
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

    async def finish(self) -> RecordingResult:
        """Write what is queued (unless writing has failed), end the file after the last whole
        frame and give it its final name. Write errors do not raise: they are the result's
        failure, and the frames written before them are kept. A second call returns the same
        result."""
        if self._ended is None:
            await self._drain()
            self._ended = await asyncio.to_thread(self._end)
        return self._ended

    async def abort(self) -> None:
        """Stop (after the frame being written, if any) and remove the temporary file."""
        self._stopping = True
        await self._drain()
        file, self._file = self._file, None
        if file is not None:
            await asyncio.to_thread(self._discard, file)

    # ---- event-loop side of the writer

    async def _drain(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task

    async def _write_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            pixels, started = item
            self._queued_bytes -= pixels.nbytes
            if self._failure is not None or self._stopping:
                self.frames_skipped += 1
                continue
            try:
                await asyncio.to_thread(self._write, pixels, started)
            except (OSError, ValueError) as error:
                self.frames_skipped += 1
                self._failure = _write_error(self.path, error)

    # ---- worker-thread side

    def _prepare(self) -> FileIO:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _create_error(self.path, error) from error
        # One lock over recovery and creation: recovery (ours or another daemon's) must
        # never see our new file before we hold its lock.
        with _directory_lock(directory):
            self.recovered = tuple(_recover_all(directory, avoid={self.path}))
            return self._create()

    def _create(self) -> FileIO:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            # O_EXCL: a temporary file still there is another recording being written or
            # one recovery could not finish; neither may be overwritten.
            fd = os.open(self._temp_path, flags, 0o666)
        except FileExistsError as error:
            raise UploadError(
                "Cannot create the recording", self.path,
                f"{self._temp_path.name} exists already (another recording is writing it, "
                "or an interrupted one could not be recovered)",
            ) from error
        except OSError as error:
            raise _create_error(self.path, error) from error
        file = FileIO(fd, "r+")  # unbuffered: a failed write leaves a known file length
        try:
            _try_lock(file)  # new under the directory lock: nobody else holds it
        except OSError as error:
            self._discard(file)
            raise _create_error(self.path, error) from error
        return file

    def _write(self, pixels: NDArray[Any], started: datetime) -> None:
        assert self._file is not None
        if self._writer is None:
            height, width = pixels.shape
            self._writer = SerWriter(self._file, width, height, 8 * pixels.dtype.itemsize,
                                     started=started, **self._labels)
        self._writer.write_frame(pixels, started)
        self._checkpoint_if_due(self._file, self._writer)

    def _checkpoint_if_due(self, file: FileIO, writer: SerWriter) -> None:
        now = time.monotonic()
        if now - self._last_checkpoint_s < self.checkpoint_interval_s:
            return
        self._last_checkpoint_s = now
        # The frames reach the disk before the count that covers them, so after a power cut
        # the header never counts frames that are not there.
        os.fdatasync(file.fileno())
        writer.write_header()

    def _end(self) -> RecordingResult:
        file, self._file = self._file, None
        if file is None:  # never opened, or open() failed
            return self._result(None)
        if self._failure is not None and self.frames_written == 0:
            self._discard(file)  # nothing worth a file
            return self._result(None)
        try:
            self._complete(file)
        except OSError as error:
            return self._give_up(file, error)
        try:
            self._publish(file)
        except OSError as error:
            return self._give_up(file, error)
        return self._result(self.path)

    def _complete(self, file: FileIO) -> None:
        if self._writer is None:  # no frame at all: still a valid, empty SER file
            self._writer = SerWriter(file, 0, 0, 8, started=datetime.now(UTC), **self._labels)
        try:
            self._writer.finish()
        except OSError as error:
            self._note_failure(error)
            # A readable file without timestamps is better than none.
            self._writer.finish(trailer=False)

    def _publish(self, file: FileIO) -> None:
        try:
            os.fsync(file.fileno())
        except OSError as error:
            self._note_failure(error)  # renaming what there is still beats losing it
        # Renamed while still locked, so no recovery takes the file between close and rename.
        os.replace(self._temp_path, self.path)
        file.close()
        _sync_directory(self.path.parent)

    def _give_up(self, file: FileIO, error: OSError) -> RecordingResult:
        self._note_failure(error)
        with contextlib.suppress(OSError):
            file.close()
        if self.frames_written == 0:
            _remove_quietly(self._temp_path)
        elif self._temp_path.exists():
            # Left for recover_recordings: the next recording here finishes it.
            self._failure = (f"{self._failure}; the {self.frames_written} frames written stay "
                             f"in {self._temp_path} until the next recording starts there")
        return self._result(None)

    def _note_failure(self, error: OSError) -> None:
        if self._failure is None:
            self._failure = _write_error(self.path, error)

    def _result(self, path: Path | None) -> RecordingResult:
        kept = self.frames_written if path is not None else 0
        return RecordingResult(path, kept, self.frames_skipped, self._failure)

    def _discard(self, file: FileIO) -> None:
        with contextlib.suppress(OSError):
            file.close()
        _remove_quietly(self._temp_path)


# ---- recovery of interrupted recordings ----------------------------------------------------


def recover_recordings(directory: Path, *,
                       avoid: Collection[Path] = ()) -> list[RecordingResult]:
    """Finish the temporary files that interrupted recordings (a crash, a power cut) left in
    `directory`: whole frames only, the header's count fixed, renamed to the final name, or to
    `<stem>-recovered.ser` (then -recovered-2 ...) when that exists or is in `avoid`. Files
    being written right now are left alone. One result per file found, in name order: the
    failure says what was interrupted, or why a file could not be recovered. Blocking."""
    with _directory_lock(directory):
        return _recover_all(directory, avoid)


def _recover_all(directory: Path, avoid: Collection[Path]) -> list[RecordingResult]:
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        return []  # no directory, no leftovers
    results = []
    for name in names:
        final = _final_name(name)
        if final is not None:
            result = _recover_one(directory / name, directory / final, avoid)
            if result is not None:
                results.append(result)
    return results


def _final_name(temp_name: str) -> str | None:
    suffix = SER_EXTENSION + _TEMP_SUFFIX
    if temp_name.startswith(".") and temp_name.endswith(suffix) and len(temp_name) > len(suffix):
        return temp_name[1:-len(_TEMP_SUFFIX)]
    return None


def _recover_one(temp: Path, final: Path, avoid: Collection[Path]) -> RecordingResult | None:
    try:
        fd = os.open(temp, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None  # finished by its writer meanwhile
    except OSError as error:
        return RecordingResult(None, 0, 0, _recovery_error(final, describe_os_error(error)))
    with FileIO(fd, "r+") as file:
        if not _try_lock(file) or not _names_this_file(temp, file):
            return None  # being written right now, or renamed by its writer meanwhile
        try:
            return _repair_and_rename(temp, final, file, avoid)
        except OSError as error:
            return RecordingResult(None, 0, 0, _recovery_error(final, describe_os_error(error)))
        except ValueError as error:  # not a SER file: not ours to delete
            return RecordingResult(None, 0, 0, _recovery_error(final, str(error)))


def _repair_and_rename(temp: Path, final: Path, file: FileIO,
                       avoid: Collection[Path]) -> RecordingResult:
    if os.fstat(file.fileno()).st_size < HEADER_BYTES:
        temp.unlink()
        return RecordingResult(None, 0, 0, _recovery_error(final, "it holds no frame"))
    header, complete = repair_ser(file)
    if header.frame_count == 0:
        temp.unlink()
        return RecordingResult(None, 0, 0, _recovery_error(final, "it holds no whole frame"))
    os.fsync(file.fileno())
    target = _free_name(final, avoid)
    os.rename(temp, target)  # still locked: no other recovery renames it too
    _sync_directory(target.parent)
    # A complete file was only not renamed yet; anything else ended without its trailer.
    why = None if complete else (f"Recording {final} was interrupted: {header.frame_count} "
                                 "whole frames kept, without their timestamps")
    return RecordingResult(target, header.frame_count, 0, why)


def _free_name(final: Path, avoid: Collection[Path]) -> Path:
    # A narrow race remains between this check and the rename (another program creating
    # the same name in between); recording names carry the time, so it is left at that.
    candidate, number = final, 1
    while candidate in avoid or candidate.exists():
        mark = _RECOVERED_MARK if number == 1 else f"{_RECOVERED_MARK}-{number}"
        candidate = final.with_name(f"{final.stem}{mark}{final.suffix}")
        number += 1
    return candidate


def _names_this_file(path: Path, file: FileIO) -> bool:
    try:
        named = path.stat(follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(file.fileno())
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _recovery_error(final: Path, reason: str) -> str:
    return f"Cannot recover the interrupted recording {final}: {reason}"


# ---- locks and small file helpers ---------------------------------------------------------


def _try_lock(file: FileIO) -> bool:
    """Take the file's exclusive lock; False if another open file holds it. Where the file
    system has no locks, go on without (nothing better is possible there)."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in {errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}:
            raise
    return True


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    # Short-lived (a recovery, a file creation). Without a directory, or a file system that
    # cannot lock one, there is nothing to guard.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = -1
    try:
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _create_error(path: Path, error: OSError) -> UploadError:
    return UploadError("Cannot create the recording", path, describe_os_error(error))


def _write_error(path: Path, error: OSError | ValueError) -> str:
    reason = describe_os_error(error) if isinstance(error, OSError) else str(error)
    return str(UploadError("Cannot write the recording", path, reason))


def _remove_quietly(path: Path) -> None:
    # The error that brought us here is the one worth reporting, not this one.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
