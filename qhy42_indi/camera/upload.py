"""Local saving of frames, as INDI's UPLOAD_LOCAL and UPLOAD_BOTH do.

UPLOAD_SETTINGS gives a directory (a literal `_HOME_` stands for the server user's home, which
is what Ekos sends) and a prefix (`XXX` becomes the next free 3-digit index, `ISO8601` a UTC
timestamp). A frame is written to a temporary file in the target directory, flushed, fsynced
and then renamed into place, so a reader never sees half a frame and a failure (disk full, no
permission) leaves nothing behind. Every failure is one UploadError whose message names the
path and the reason in plain words, ready for the Alert message.

Not here: encoding (fits.py), CCD_FILE_PATH and property states (the camera layer), and
asyncio: these functions block on purpose; the caller runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

HOME_TOKEN = "_HOME_"
INDEX_TOKEN = "XXX"
TIMESTAMP_TOKEN = "ISO8601"

# A generated name can be taken between our scan and our link (another camera saving into
# the same directory with the same prefix): then we scan again, a few times.
MAX_NAME_ATTEMPTS = 5

_TEMP_SUFFIX = ".part"
_TIMESTAMP_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}"
# Where a file system has no hard links (FAT, exFAT, some network shares), link() fails
# with one of these and we fall back to an exists-check and rename.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.ENOENT: "the directory does not exist",
    errno.EEXIST: "a file with that name already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EIO: "input/output error (is the disk failing or unplugged?)",
    errno.EISDIR: "a directory with that name already exists",
}


BytesLike = bytes | bytearray | memoryview


class UploadError(Exception):
    """A frame could not be saved. str() is the message for the user."""

    def __init__(self, action: str, path: Path | str, reason: str) -> None:
        super().__init__(f"{action} {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class NameTakenError(UploadError):
    """The chosen file name exists already (or was taken while we were writing)."""


def describe_os_error(error: OSError) -> str:
    """A reason in words a user understands, for an OSError from a file operation."""
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    if error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return str(error)


# ---- directory and name ---------------------------------------------------------------------


def resolve_upload_dir(upload_dir: str) -> Path:
    """UPLOAD_DIR as a directory that exists: `_HOME_` expanded, missing parents created."""
    if not upload_dir.strip():
        raise UploadError("Cannot use the upload directory", repr(upload_dir), "it is empty")
    directory = Path(upload_dir.replace(HOME_TOKEN, str(Path.home())))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UploadError(
            "Cannot create the upload directory", directory, describe_os_error(error)
        ) from error
    return directory


def timestamp_text(now: datetime) -> str:
    """'YYYY-MM-DDTHH-MM-SS.mmm' in UTC: sortable, and no colons, which FAT and SMB refuse."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the timestamp must be timezone-aware")
    utc = now.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H-%M-%S}.{utc.microsecond // 1000:03d}"


def next_index(directory: Path, prefix: str, extension: str) -> int:
    """One more than the highest index already used by `prefix` + `extension` here.

    The highest, not the first gap: a deleted frame does not get its number reused, so
    numbers keep the order in which frames were taken (libindi does the same).
    """
    pattern = _name_pattern(prefix, extension)
    highest = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match:
                    highest = max(highest, int(match.group("index")))
    except OSError as error:
        raise UploadError(
            "Cannot read the directory", directory, describe_os_error(error)
        ) from error
    return highest + 1


def _name_pattern(prefix: str, extension: str) -> re.Pattern[str]:
    """The names this prefix has produced: index captured, timestamps matched loosely."""
    pieces: list[str] = []
    index_seen = False
    for piece in re.split(f"({INDEX_TOKEN}|{TIMESTAMP_TOKEN})", prefix):
        if piece == INDEX_TOKEN:
            # the first XXX is the index (3 digits, more past 999); a later XXX repeats it
            pieces.append(r"(?P=index)" if index_seen else r"(?P<index>\d{3,})")
            index_seen = True
        elif piece == TIMESTAMP_TOKEN:
            pieces.append(_TIMESTAMP_PATTERN)
        else:
            pieces.append(re.escape(piece))
    return re.compile("".join(pieces) + re.escape(extension))


def file_name(prefix: str, extension: str, *, index: int, now: datetime) -> str:
    """UPLOAD_PREFIX with its tokens replaced, plus the extension ('.fits', '.fits.fz')."""
    name = prefix.replace(TIMESTAMP_TOKEN, timestamp_text(now))
    return name.replace(INDEX_TOKEN, f"{index:03d}") + extension


def _check_prefix_and_extension(prefix: str, extension: str) -> None:
    if not prefix or "/" in prefix or "\0" in prefix or prefix in {".", ".."}:
        raise UploadError(
            "Cannot use the upload prefix", repr(prefix), "it must be a plain file name"
        )
    if not extension.startswith(".") or "/" in extension:
        raise ValueError(f"an extension starts with a dot, got {extension!r}")


# ---- saving ---------------------------------------------------------------------------------


def save_frame(
    upload_dir: str,
    prefix: str,
    extension: str,
    chunks: Iterable[BytesLike],
    *,
    now: datetime | None = None,
) -> Path:
    """Save one frame as UPLOAD_LOCAL does and return its path (for CCD_FILE_PATH).

    A generated name (XXX or ISO8601) never replaces an existing file: when another writer
    takes the name first, the index is scanned again. A fixed prefix replaces its file
    atomically, as libindi overwrites it. Raises UploadError; nothing partial is left.
    """
    _check_prefix_and_extension(prefix, extension)
    directory = resolve_upload_dir(upload_dir)
    taken_at = now if now is not None else datetime.now(UTC)
    final_path = _candidate_path(directory, prefix, extension, taken_at)
    temp_path = _write_temp_file(final_path, chunks)
    try:
        if INDEX_TOKEN in prefix or TIMESTAMP_TOKEN in prefix:
            final_path = _publish_with_retries(temp_path, final_path, prefix, extension, taken_at)
        else:
            _publish_replacing(temp_path, final_path)
    finally:
        _remove_quietly(temp_path)
    _sync_directory(directory)
    return final_path


def write_atomically(path: Path, chunks: Iterable[BytesLike], *, replace: bool = True) -> None:
    """Write `chunks` to `path` through a temporary file in the same directory.

    With replace=False an existing file is left alone and NameTakenError raised.
    """
    temp_path = _write_temp_file(path, chunks)
    try:
        if replace:
            _publish_replacing(temp_path, path)
        else:
            _publish_new(temp_path, path)
    finally:
        _remove_quietly(temp_path)
    _sync_directory(path.parent)


def _candidate_path(directory: Path, prefix: str, extension: str, taken_at: datetime) -> Path:
    index = next_index(directory, prefix, extension) if INDEX_TOKEN in prefix else 0
    return directory / file_name(prefix, extension, index=index, now=taken_at)


def _publish_with_retries(
    temp_path: Path, final_path: Path, prefix: str, extension: str, taken_at: datetime
) -> Path:
    # Only an index can move on; a taken timestamp name stays taken.
    attempts = MAX_NAME_ATTEMPTS if INDEX_TOKEN in prefix else 1
    for attempt in range(1, attempts + 1):
        try:
            _publish_new(temp_path, final_path)
            return final_path
        except NameTakenError:
            if attempt == attempts:
                raise
        final_path = _candidate_path(final_path.parent, prefix, extension, taken_at)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _write_temp_file(final_path: Path, chunks: Iterable[BytesLike]) -> Path:
    # A hidden name that no prefix pattern matches. O_EXCL with mode 0o666 lets the umask
    # decide the permissions, as fopen() does in libindi (mkstemp would force 0o600).
    temp_path = final_path.parent / f".{final_path.name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"
    try:
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise _save_error(final_path, error) from error
    try:
        _write_chunks_and_sync(fd, chunks)
    except OSError as error:
        _remove_quietly(temp_path)
        raise _save_error(final_path, error) from error
    except BaseException:
        _remove_quietly(temp_path)
        raise
    return temp_path


def _write_chunks_and_sync(fd: int, chunks: Iterable[BytesLike]) -> None:
    try:
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:  # os.write may write less than asked
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)  # before the rename: the name must never point at unwritten data
    finally:
        os.close(fd)


def _publish_new(temp_path: Path, final_path: Path) -> None:
    """Give the complete temp file its final name, refusing to replace an existing file."""
    try:
        os.link(temp_path, final_path)  # atomic, and EEXIST instead of replacing
        return
    except FileExistsError as error:
        raise NameTakenError("Cannot save the image", final_path, _REASONS[errno.EEXIST]) from error
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise _save_error(final_path, error) from error
    # No hard links on this file system: a narrow race remains between check and rename.
    if final_path.exists():
        raise NameTakenError("Cannot save the image", final_path, _REASONS[errno.EEXIST])
    _publish_replacing(temp_path, final_path)


def _publish_replacing(temp_path: Path, final_path: Path) -> None:
    try:
        os.replace(temp_path, final_path)
    except OSError as error:
        raise _save_error(final_path, error) from error


def _sync_directory(directory: Path) -> None:
    """Make the new name durable; file systems that cannot fsync a directory are let be."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise UploadError(
            "Cannot sync the directory", directory, describe_os_error(error)
        ) from error
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}:
            reason = describe_os_error(error)
            raise UploadError("Cannot sync the directory", directory, reason) from error
    finally:
        os.close(fd)


def _save_error(final_path: Path, error: OSError) -> UploadError:
    return UploadError("Cannot save the image", final_path, describe_os_error(error))


def _remove_quietly(path: Path) -> None:
    # The error that brought us here is the one worth reporting, not this one.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
