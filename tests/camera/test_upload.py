"""Local saving: directory and file names as INDI makes them, atomic writes, clean failures."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from qhy42_indi.camera import upload
from qhy42_indi.camera.upload import (
    BytesLike,
    NameTakenError,
    UploadError,
    describe_os_error,
    file_name,
    next_index,
    resolve_upload_dir,
    save_frame,
    timestamp_text,
    write_atomically,
)

FRAME: list[BytesLike] = [
    b"SIMPLE  =                    T",
    bytes(range(256)) * 40,
    bytearray(b"END"),
]
FRAME_BYTES = b"".join(FRAME)
TAKEN_AT = datetime(2026, 11, 25, 18, 59, 33, 399512, tzinfo=UTC)


def names_in(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def save(directory: Path, prefix: str = "IMAGE_XXX", extension: str = ".fits") -> Path:
    return save_frame(str(directory), prefix, extension, FRAME, now=TAKEN_AT)


# ---- names ------------------------------------------------------------------------------------


def test_index_counts_up_from_001(tmp_path: Path) -> None:
    saved = [save(tmp_path) for _ in range(3)]
    assert [path.name for path in saved] == ["IMAGE_001.fits", "IMAGE_002.fits", "IMAGE_003.fits"]
    assert all(path.read_bytes() == FRAME_BYTES for path in saved)
    assert names_in(tmp_path) == ["IMAGE_001.fits", "IMAGE_002.fits", "IMAGE_003.fits"]


def test_index_follows_the_highest_existing_file_of_that_prefix_and_extension(
    tmp_path: Path,
) -> None:
    for name in (
        "IMAGE_002.fits",
        "IMAGE_007.fits",  # the highest: the gap at 003..006 is not refilled
        "IMAGE_050.fits.fz",  # another extension
        "DARK_IMAGE_090.fits",  # another prefix that contains this one
        "IMAGE_080.fits.part",  # not a frame
        "IMAGE_12.fits",  # not three digits
    ):
        (tmp_path / name).write_bytes(b"x")
    assert next_index(tmp_path, "IMAGE_XXX", ".fits") == 8
    assert save(tmp_path).name == "IMAGE_008.fits"
    assert save(tmp_path, extension=".fits.fz").name == "IMAGE_051.fits.fz"
    assert (tmp_path / "IMAGE_007.fits").read_bytes() == b"x"


def test_index_goes_past_999(tmp_path: Path) -> None:
    (tmp_path / "IMAGE_999.fits").write_bytes(b"x")
    assert save(tmp_path).name == "IMAGE_1000.fits"
    assert save(tmp_path).name == "IMAGE_1001.fits"


def test_iso8601_is_a_utc_timestamp_without_colons(tmp_path: Path) -> None:
    new_york = TAKEN_AT.astimezone(timezone(timedelta(hours=-5)))
    path = save_frame(str(tmp_path), "LIGHT_ISO8601", ".fits", FRAME, now=new_york)
    assert path.name == "LIGHT_2026-11-25T18-59-33.399.fits"
    assert ":" not in path.name
    assert timestamp_text(TAKEN_AT) == "2026-11-25T18-59-33.399"


def test_iso8601_without_a_given_time_uses_now(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    path = save_frame(str(tmp_path), "ISO8601", ".fits", FRAME)
    stamp = datetime.strptime(path.name, "%Y-%m-%dT%H-%M-%S.%f.fits").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)


def test_timestamp_and_index_combine(tmp_path: Path) -> None:
    (tmp_path / "M31_2026-11-24T01-02-03.004_041.fits").write_bytes(b"x")
    path = save(tmp_path, prefix="M31_ISO8601_XXX")
    assert path.name == "M31_2026-11-25T18-59-33.399_042.fits"


def test_file_name_replaces_every_token() -> None:
    name = file_name("XXX_ISO8601_XXX", ".fits.fz", index=5, now=TAKEN_AT)
    assert name == "005_2026-11-25T18-59-33.399_005.fits.fz"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        timestamp_text(datetime(2026, 1, 1))


@pytest.mark.parametrize("prefix", ["", "sub/IMAGE_XXX", "..", "."])
def test_a_prefix_that_is_not_a_file_name_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(UploadError, match="plain file name"):
        save(tmp_path, prefix=prefix)
    assert names_in(tmp_path) == []


# ---- directory --------------------------------------------------------------------------------


def test_home_token_is_the_server_users_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "observer"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    path = save_frame("_HOME_/astro/2026-11-25", "IMAGE_XXX", ".fits", FRAME, now=TAKEN_AT)
    assert path == home / "astro" / "2026-11-25" / "IMAGE_001.fits"
    assert path.read_bytes() == FRAME_BYTES


def test_missing_directories_are_created(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "c"
    assert resolve_upload_dir(str(directory)) == directory
    assert directory.is_dir()
    assert save(directory).parent == directory


def test_an_empty_directory_setting_is_refused() -> None:
    with pytest.raises(UploadError, match="it is empty"):
        resolve_upload_dir("  ")


def test_a_directory_under_a_regular_file_fails_with_a_reason(tmp_path: Path) -> None:
    # An honest failure that holds even for root, unlike file modes.
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"x")
    with pytest.raises(UploadError) as caught:
        save(blocker / "frames")
    message = str(caught.value)
    assert "Cannot create the upload directory" in message
    assert str(blocker / "frames") in message
    assert "a part of the path is a file, not a directory" in message
    assert names_in(tmp_path) == ["not-a-dir"]


def test_an_upload_directory_that_is_a_file_fails_with_a_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "frames"
    blocker.write_bytes(b"x")
    with pytest.raises(UploadError, match="a file with that name already exists"):
        save(blocker)


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        probe = directory / "probe"
        try:
            probe.write_bytes(b"")
        except PermissionError:
            yield directory
            return
        probe.unlink()
        pytest.skip(
            "file modes do not stop this user (root or CAP_DAC_OVERRIDE); "
            "test_a_directory_under_a_regular_file_fails_with_a_reason covers a refused write"
        )
    finally:
        directory.chmod(0o700)


def test_a_read_only_directory_fails_with_permission_denied(read_only_directory: Path) -> None:
    with pytest.raises(UploadError) as caught:
        save(read_only_directory)
    assert str(read_only_directory / "IMAGE_001.fits") in str(caught.value)
    assert caught.value.reason == "permission denied"
    assert names_in(read_only_directory) == []


# ---- atomic write and failures ----------------------------------------------------------------


def test_disk_full_leaves_neither_the_file_nor_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = 0

    def fill_disk(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, data[: len(data) // 2])  # a short write first
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", fill_disk)
    with pytest.raises(UploadError) as caught:
        save(tmp_path)
    assert calls >= 2
    final_path = tmp_path / "IMAGE_001.fits"
    assert str(caught.value) == f"Cannot save the image {final_path}: the disk is full"
    assert isinstance(caught.value.__cause__, OSError)
    assert not final_path.exists()
    assert names_in(tmp_path) == []


def test_a_failed_fsync_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(UploadError, match="input/output error"):
        save(tmp_path)
    assert names_in(tmp_path) == []


def test_an_error_from_the_chunks_themselves_leaves_nothing(tmp_path: Path) -> None:
    def broken_chunks() -> Iterator[bytes]:
        yield b"first half"
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        save_frame(str(tmp_path), "IMAGE_XXX", ".fits", broken_chunks(), now=TAKEN_AT)
    assert names_in(tmp_path) == []


def test_a_name_taken_during_the_write_moves_to_the_next_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "IMAGE_001.fits").write_bytes(b"someone else's frame")
    real_next_index = upload.next_index
    stale = iter([1])  # the first scan misses the file, as if it appeared just after

    def racing_next_index(directory: Path, prefix: str, extension: str) -> int:
        return next(stale, None) or real_next_index(directory, prefix, extension)

    monkeypatch.setattr(upload, "next_index", racing_next_index)
    assert save(tmp_path).name == "IMAGE_002.fits"
    assert (tmp_path / "IMAGE_001.fits").read_bytes() == b"someone else's frame"
    assert names_in(tmp_path) == ["IMAGE_001.fits", "IMAGE_002.fits"]


def test_a_name_that_stays_taken_fails_without_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "IMAGE_001.fits").write_bytes(b"someone else's frame")
    monkeypatch.setattr(upload, "next_index", lambda directory, prefix, extension: 1)
    with pytest.raises(NameTakenError, match="a file with that name already exists"):
        save(tmp_path)
    assert (tmp_path / "IMAGE_001.fits").read_bytes() == b"someone else's frame"
    assert names_in(tmp_path) == ["IMAGE_001.fits"]


def test_a_timestamp_name_is_never_overwritten(tmp_path: Path) -> None:
    taken = tmp_path / "LIGHT_2026-11-25T18-59-33.399.fits"
    taken.write_bytes(b"earlier frame")
    with pytest.raises(UploadError, match="already exists"):
        save(tmp_path, prefix="LIGHT_ISO8601")
    assert taken.read_bytes() == b"earlier frame"
    assert names_in(tmp_path) == [taken.name]


def test_without_hard_links_a_new_name_is_still_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: Path, target: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # as on FAT and exFAT

    monkeypatch.setattr(os, "link", no_links)
    assert save(tmp_path).name == "IMAGE_001.fits"
    assert save(tmp_path).name == "IMAGE_002.fits"
    assert (tmp_path / "IMAGE_001.fits").read_bytes() == FRAME_BYTES
    assert names_in(tmp_path) == ["IMAGE_001.fits", "IMAGE_002.fits"]


def test_a_fixed_prefix_replaces_its_file_as_indi_does(tmp_path: Path) -> None:
    (tmp_path / "latest.fits").write_bytes(b"previous frame")
    path = save(tmp_path, prefix="latest")
    assert path == tmp_path / "latest.fits"
    assert path.read_bytes() == FRAME_BYTES
    assert names_in(tmp_path) == ["latest.fits"]


def test_write_atomically_can_refuse_to_replace(tmp_path: Path) -> None:
    target = tmp_path / "frame.fits"
    write_atomically(target, [b"one"])
    write_atomically(target, [b"two"])
    assert target.read_bytes() == b"two"
    with pytest.raises(NameTakenError):
        write_atomically(target, [b"three"], replace=False)
    assert target.read_bytes() == b"two"
    assert names_in(tmp_path) == ["frame.fits"]


def test_saved_files_get_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = save(tmp_path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_large_memoryview_chunks_are_written_whole(tmp_path: Path) -> None:
    payload = bytearray(os.urandom(3 * 1024 * 1024 + 17))
    path = save_frame(str(tmp_path), "BIG", ".fits", [memoryview(payload)], now=TAKEN_AT)
    assert path.read_bytes() == payload


def test_os_errors_are_described_in_plain_words() -> None:
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"
    assert describe_os_error(OSError(errno.EROFS, "x")) == "the file system is read-only"
    assert describe_os_error(OSError(errno.ELOOP, "Too many levels")) == "too many levels"
