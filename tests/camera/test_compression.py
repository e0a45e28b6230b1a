"""The tile-compressed .fits.fz: the pixels of every scene come back identical through astropy
and through cfitsio (fitsio), and the file is the one astropy's own CompImageHDU writes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from numpy.typing import NDArray

from qhy42_indi.backends import sensor_model
from qhy42_indi.backends.base import Roi
from qhy42_indi.backends.renderer import FrameRenderer, RenderRequest
from qhy42_indi.backends.scenes import DarkScene, FlatScene, Scene, StarFieldScene
from qhy42_indi.camera import fits
from qhy42_indi.camera.fits import Card, FrameMetadata, build_fits_fz, encode_frame, standard_cards

fitsio = pytest.importorskip("fitsio")

START = datetime(2026, 11, 25, 18, 59, 33, 399512, tzinfo=UTC)
SCENES: dict[str, Scene] = {
    "dark": DarkScene(),
    "stars": StarFieldScene(),
    "flat": FlatScene(),
    "bright flat": FlatScene(level_e_per_s=5.0e6),  # saturated: long runs of one value
}


def header_cards() -> list[Card]:
    meta = FrameMetadata(
        device_name="QHY CCD QHY42PRO-SIM01", exposure_s=0.01, start_time=START,
        pixel_size_x_um=11.0, pixel_size_y_um=11.0, ccd_temperature_c=-10.0, gain=30,
        offset=20, read_mode="STD High Gain",
        custom_cards=(Card("OBSERVER", "someone"), Card("COMMENT", "a custom comment")),
    )
    return standard_cards(meta)


@pytest.fixture(scope="module")
def renderer() -> FrameRenderer:
    return FrameRenderer("SIM01", seed=3)


def rendered(renderer: FrameRenderer, scene: Scene, *, read_mode: int = 1, bits: int = 16,
             bin_xy: int = 1) -> NDArray[Any]:
    mode = sensor_model.READ_MODES[read_mode]
    request = RenderRequest(
        read_mode=mode, roi=Roi(0, 0, mode.width, mode.height), bin_x=bin_xy, bin_y=bin_xy,
        bit_depth=bits, gain=30, offset=20, exposure_s=0.5, temperature_c=-10.0,
        amp_glow_suppression=False, scene=scene)
    return renderer.render(request)


def astropy_pixels(data: bytes | bytearray) -> NDArray[Any]:
    with afits.open(io.BytesIO(bytes(data))) as hdus:
        assert hdus[0].data is None
        return np.array(hdus[1].data)


def fitsio_pixels(data: bytes | bytearray, tmp_path: Path) -> NDArray[Any]:
    path = tmp_path / "frame.fits.fz"
    path.write_bytes(data)
    return np.asarray(fitsio.read(str(path), ext=1))


def astropy_writer(frame: NDArray[Any], cards: list[Card]) -> bytes:
    """What the encoder wrote before it compressed tiles itself: astropy's CompImageHDU."""
    header = afits.Header()
    for card in cards:
        if card.keyword == "COMMENT":
            header.append(("COMMENT", str(card.value)), end=True)
        else:
            header.append((card.keyword, card.value, card.comment), end=True)
    compressed = afits.CompImageHDU(
        data=np.ascontiguousarray(frame), header=header, compression_type="RICE_1",
        tile_shape=(min(fits.FZ_TILE_ROWS, frame.shape[0]), frame.shape[1]))
    buffer = io.BytesIO()
    afits.HDUList([afits.PrimaryHDU(), compressed]).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("scene", list(SCENES))
def test_every_scene_decompresses_to_the_same_pixels_in_astropy_and_cfitsio(
    renderer: FrameRenderer, scene: str, tmp_path: Path
) -> None:
    frame = rendered(renderer, SCENES[scene])
    encoded = encode_frame(frame, header_cards(), compress=True)
    assert encoded.format == ".fits.fz"
    assert len(encoded.data) < frame.nbytes  # it did compress
    for pixels in (astropy_pixels(encoded.data), fitsio_pixels(encoded.data, tmp_path)):
        assert pixels.dtype == np.uint16
        np.testing.assert_array_equal(pixels, frame)


def test_hdr_and_8_bit_and_binned_frames_come_back_identical(
    renderer: FrameRenderer, tmp_path: Path
) -> None:
    frames = [
        rendered(renderer, SCENES["stars"], read_mode=0),
        rendered(renderer, SCENES["stars"], bits=8),
        rendered(renderer, SCENES["flat"], bin_xy=2),
    ]
    for frame in frames:
        data = build_fits_fz(frame, header_cards())
        np.testing.assert_array_equal(astropy_pixels(data), frame)
        np.testing.assert_array_equal(fitsio_pixels(data, tmp_path), frame)


@pytest.mark.parametrize(("rows", "columns", "dtype"), [
    (1, 1, np.uint16), (17, 5, np.uint16), (33, 64, np.uint8), (2048, 2048, np.uint16),
])
def test_the_file_is_byte_for_byte_what_astropy_writes(rows: int, columns: int,
                                                       dtype: type) -> None:
    rng = np.random.default_rng(rows)
    top = 4096 if dtype is np.uint16 else 256
    frame = rng.integers(0, top, size=(rows, columns)).astype(dtype)
    if dtype is np.uint16:
        frame <<= 4
    cards = header_cards()
    assert build_fits_fz(frame, cards) == astropy_writer(frame, cards)


def test_the_result_does_not_depend_on_how_many_threads_compress(
    renderer: FrameRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = rendered(renderer, SCENES["stars"])
    threaded = build_fits_fz(frame, header_cards())
    monkeypatch.setattr(fits.TILE_WORK, "most_threads", 1)
    assert build_fits_fz(frame, header_cards()) == threaded


def test_the_compressed_header_keeps_the_cards_and_the_unsigned_offset() -> None:
    frame = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 16).astype(np.uint16)
    with afits.open(io.BytesIO(build_fits_fz(frame, header_cards()))) as hdus:
        header = hdus[1].header
        assert header["DATE-OBS"] == "2026-11-25T18:59:33.399512"
        assert header["OBSERVER"] == "someone"
        assert "a custom comment" in list(header["COMMENT"])
    with afits.open(io.BytesIO(build_fits_fz(frame, [])),
                    disable_image_compression=True) as raw:
        table = raw[1].header
        assert (table["ZTILE1"], table["ZTILE2"]) == (30, fits.FZ_TILE_ROWS)
        assert table["NAXIS2"] == 3  # tiles: 40 rows in 16-row tiles
        assert table["BZERO"] == 32768


def test_without_astropys_private_coder_the_public_writer_gives_the_same_file(
    renderer: FrameRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = rendered(renderer, SCENES["flat"])
    ours = build_fits_fz(frame, header_cards())
    monkeypatch.setattr(fits, "compress_rice_1_c", None)
    assert build_fits_fz(frame, header_cards()) == ours


def test_big_endian_and_strided_frames_are_compressed_by_value(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    frame = (rng.integers(0, 4096, size=(40, 64)) << 4).astype(np.uint16)
    for variant in (frame.astype(">u2"), np.repeat(frame, 2, axis=1)[:, ::2]):
        data = build_fits_fz(variant, [])
        np.testing.assert_array_equal(astropy_pixels(data), frame)
        np.testing.assert_array_equal(fitsio_pixels(data, tmp_path), frame)
    eight = rng.integers(0, 256, size=(40, 128)).astype(np.uint8)
    np.testing.assert_array_equal(astropy_pixels(build_fits_fz(eight[:, ::2], [])), eight[:, ::2])
