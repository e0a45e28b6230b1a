"""The frames saved in a camera's upload directory: a listing and safe names for download.

A name from the page is a file name only: no separator, no leading dot, nothing that
resolves outside the directory (a symbolic link that leaves it is refused too), and only
FITS files. The listing reads each file's header once (kept by name, size and mtime, with a
bound) for its frame type and exposure. Everything here blocks: the front runs it in a
worker thread.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from qhy42_indi.camera.upload import HOME_TOKEN
from qhy42_indi.web.fits_cards import image_header_value, read_headers

FRAME_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz")
MAX_LISTED = 200  # the newest; a directory of a thousand nights is not sent to a phone
MAX_CACHED_HEADERS = 1024


class UnsafeName(ValueError):
    """A name that is not a frame file directly inside the upload directory."""


@dataclass(frozen=True, slots=True)
class SavedFrame:
    name: str
    size_bytes: int
    modified_s: float  # epoch
    frame_type: str | None
    exposure_s: float | None


def upload_directory(upload_dir: str) -> Path:
    """UPLOAD_DIR as the camera reads it (`_HOME_` is the server user's home), without
    creating it as a save would."""
    return Path(upload_dir.replace(HOME_TOKEN, str(Path.home())))


def is_frame_name(name: str) -> bool:
    return name.lower().endswith(FRAME_SUFFIXES)


def safe_path(directory: Path, name: str) -> Path:
    """The file `name` directly inside `directory`; UnsafeName for anything else."""
    if (not name or name != os.path.basename(name) or "/" in name or "\\" in name
            or "\0" in name or name.startswith(".") or not is_frame_name(name)):
        raise UnsafeName(f"not a frame file name: {name!r}")
    root = directory.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise UnsafeName(f"{name!r} is not inside the upload directory")
    if not path.is_file():
        raise FileNotFoundError(f"no frame {name!r} in the upload directory")
    return path


class FramesDirectory:
    """Listing with a bounded cache of what each file's header says."""

    def __init__(self) -> None:
        self._headers: OrderedDict[tuple[str, int, int], tuple[str | None, float | None]] = \
            OrderedDict()

    def listing(self, directory: Path) -> list[SavedFrame]:
        """Newest first, at most MAX_LISTED; an absent directory lists nothing."""
        try:
            entries = [e for e in os.scandir(directory)
                       if not e.name.startswith(".") and is_frame_name(e.name)
                       and e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        stats = [(entry, entry.stat(follow_symlinks=False)) for entry in entries]
        stats.sort(key=lambda item: item[1].st_mtime_ns, reverse=True)
        frames = []
        for entry, stat in stats[:MAX_LISTED]:
            frame_type, exposure_s = self._header_of(Path(entry.path), stat.st_size,
                                                     stat.st_mtime_ns)
            frames.append(SavedFrame(entry.name, stat.st_size, stat.st_mtime_ns / 1e9,
                                     frame_type, exposure_s))
        return frames

    def _header_of(self, path: Path, size: int, mtime_ns: int) -> tuple[str | None, float | None]:
        key = (path.name, size, mtime_ns)
        cached = self._headers.get(key)
        if cached is not None:
            self._headers.move_to_end(key)
            return cached
        try:
            found = read_headers(path)
        except OSError:
            found = []
        frame_type = image_header_value(found, "FRAME") or image_header_value(found, "IMAGETYP")
        exposure = image_header_value(found, "EXPTIME")
        try:
            exposure_s = float(exposure) if exposure is not None else None
        except ValueError:
            exposure_s = None
        self._headers[key] = (frame_type, exposure_s)
        if len(self._headers) > MAX_CACHED_HEADERS:
            self._headers.popitem(last=False)
        return frame_type, exposure_s
