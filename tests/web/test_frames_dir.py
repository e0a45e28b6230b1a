"""The upload directory's listing, and names that must not reach outside it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qhy42_indi.web.frames_dir import FramesDirectory, UnsafeName, safe_path, upload_directory


def write_fits(path: Path, frame: str, exposure_s: float, mtime: float,
               compressed: bool = False) -> None:
    header = fits.Header()
    header["EXPTIME"] = exposure_s
    header["FRAME"] = frame
    data = np.zeros((16, 16), np.uint16)
    if compressed:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(path)
    else:
        fits.PrimaryHDU(data, header).writeto(path)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    directory = tmp_path / "frames"
    directory.mkdir()
    write_fits(directory / "IMAGE_001.fits", "Light", 30.0, 1_000_000)
    write_fits(directory / "IMAGE_002.fits.fz", "Dark", 60.0, 1_000_100, compressed=True)
    write_fits(directory / "IMAGE_000.fits", "Flat", 0.5, 999_000)
    (directory / "notes.txt").write_text("not a frame")
    (directory / ".IMAGE_003.fits.part").write_bytes(b"half")
    (tmp_path / "secret.fits").write_bytes(b"outside")
    return directory


def test_listing_is_newest_first_with_type_and_exposure_from_the_header(frames: Path) -> None:
    listed = FramesDirectory().listing(frames)
    assert [f.name for f in listed] == ["IMAGE_002.fits.fz", "IMAGE_001.fits", "IMAGE_000.fits"]
    assert [(f.frame_type, f.exposure_s) for f in listed] == [
        ("Dark", 60.0), ("Light", 30.0), ("Flat", 0.5)]
    assert listed[1].size_bytes == (frames / "IMAGE_001.fits").stat().st_size


def test_listing_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert FramesDirectory().listing(tmp_path / "nowhere") == []


@pytest.mark.parametrize("name", [
    "../secret.fits", "..%2Fsecret.fits", "/etc/passwd", "sub/IMAGE_001.fits",
    "..\\secret.fits", ".IMAGE_003.fits.part", "notes.txt", "", "..", "IMAGE_001.fits\0",
])
def test_names_outside_the_directory_or_not_frames_are_refused(frames: Path, name: str) -> None:
    with pytest.raises(UnsafeName):
        safe_path(frames, name)


def test_a_link_leading_outside_is_refused(frames: Path) -> None:
    (frames / "link.fits").symlink_to(frames.parent / "secret.fits")
    with pytest.raises(UnsafeName):
        safe_path(frames, "link.fits")


def test_a_frame_inside_is_found_and_a_missing_one_is_not(frames: Path) -> None:
    assert safe_path(frames, "IMAGE_001.fits") == (frames / "IMAGE_001.fits").resolve()
    with pytest.raises(FileNotFoundError):
        safe_path(frames, "IMAGE_999.fits")


def test_home_token_is_the_server_users_home() -> None:
    assert upload_directory("_HOME_/frames") == Path.home() / "frames"
