"""FITS encoding: pixels, header cards and the .fits.fz variant, read back by astropy and,
where the library is installed, by cfitsio itself (what KStars reads FITS with)."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from astropy.io import fits as afits
from numpy.typing import NDArray

from qhy42_indi.camera.fits import (
    FITS_BLOCK_BYTES,
    FITS_FORMAT,
    FITS_FZ_FORMAT,
    Card,
    CardValue,
    FrameMetadata,
    FrameType,
    build_fits,
    build_fits_fz,
    custom_card,
    encode_frame,
    is_reserved_keyword,
    pixel_scale_arcsec,
    standard_cards,
)

START = datetime(2026, 11, 25, 18, 59, 33, 399512, tzinfo=UTC)


def metadata(**changes: Any) -> FrameMetadata:
    values: dict[str, Any] = {
        "device_name": "QHY CCD QHY42PRO-0001",
        "exposure_s": 2.5,
        "start_time": START,
        "pixel_size_x_um": 11.0,
        "pixel_size_y_um": 11.0,
        "telescope_name": "Telescope Simulator",
        "ccd_temperature_c": -10.0,
        "set_temperature_c": -10.0,
        "gain": 30,
        "offset": 20,
        "read_mode": "STD High Gain",
        "focal_length_mm": 800.0,
        "aperture_mm": 200.0,
    }
    values.update(changes)
    return FrameMetadata(**values)


def frame_12bit(rows: int, columns: int, seed: int = 1) -> NDArray[np.uint16]:
    """12-bit values left-shifted by 4, with the extremes included."""
    rng = np.random.default_rng(seed)
    frame = (rng.integers(0, 4096, size=(rows, columns), dtype=np.uint16) << 4).astype(np.uint16)
    frame.flat[0] = 0
    frame.flat[-1] = 0xFFF0
    return frame


def frame_8bit(rows: int, columns: int, seed: int = 2) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, size=(rows, columns), dtype=np.uint8)
    frame.flat[0] = 0
    frame.flat[-1] = 255
    return frame


def read_primary(data: bytes | bytearray) -> tuple[afits.Header, NDArray[Any]]:
    with afits.open(io.BytesIO(bytes(data))) as hdus:
        return hdus[0].header.copy(), np.array(hdus[0].data)


def read_compressed(data: bytes | bytearray) -> tuple[afits.Header, NDArray[Any]]:
    with afits.open(io.BytesIO(bytes(data))) as hdus:
        assert hdus[0].data is None, "fpack layout: the primary HDU holds no image"
        return hdus[1].header.copy(), np.array(hdus[1].data)


def card_list(cards: list[Card]) -> list[str]:
    return [card.keyword for card in cards]


# ---- pixels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "columns"), [(5, 7), (1, 1), (2048, 2048), (2048, 4096)])
def test_uint16_frame_reads_back_pixel_for_pixel(rows: int, columns: int) -> None:
    frame = frame_12bit(rows, columns)
    data = build_fits(frame, standard_cards(metadata()))
    header, pixels = read_primary(data)
    assert isinstance(data, bytearray)
    assert len(data) % FITS_BLOCK_BYTES == 0
    assert (header["NAXIS1"], header["NAXIS2"]) == (columns, rows)
    assert header["BITPIX"] == 16
    assert header["BZERO"] == 32768
    assert header["BSCALE"] == 1
    assert pixels.dtype == np.uint16
    assert pixels.shape == (rows, columns)
    np.testing.assert_array_equal(pixels, frame)


@pytest.mark.parametrize(("rows", "columns"), [(5, 7), (2048, 2048)])
def test_uint8_frame_is_bitpix_8_without_bzero(rows: int, columns: int) -> None:
    frame = frame_8bit(rows, columns)
    header, pixels = read_primary(build_fits(frame, standard_cards(metadata())))
    assert header["BITPIX"] == 8
    assert "BZERO" not in header
    assert "BSCALE" not in header
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, frame)


def test_file_length_is_header_blocks_plus_padded_data() -> None:
    frame = frame_12bit(5, 7)
    data = build_fits(frame, [])
    header_bytes = len(afits.Header.fromstring(bytes(data[:FITS_BLOCK_BYTES])).tostring())
    assert len(data) == header_bytes + FITS_BLOCK_BYTES  # 70 bytes of data pad to one block
    assert data[header_bytes + 70 :] == bytes(FITS_BLOCK_BYTES - 70)


def test_data_is_big_endian_with_the_unsigned_offset() -> None:
    frame = np.array([[0x0000, 0x0010, 0x8000, 0xFFF0]], dtype=np.uint16)
    data = build_fits(frame, [])
    header_bytes = len(data) - FITS_BLOCK_BYTES
    assert data[header_bytes : header_bytes + 8] == bytes.fromhex("8000 8010 0000 7ff0")


def test_big_endian_and_strided_frames_are_encoded_by_value() -> None:
    frame = frame_12bit(64, 96)
    big_endian = frame.astype(">u2")
    _, pixels = read_primary(build_fits(big_endian, []))
    np.testing.assert_array_equal(pixels, frame)
    strided = frame[::2, ::3]
    _, pixels = read_primary(build_fits(strided, []))
    np.testing.assert_array_equal(pixels, strided)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((2, 3, 4), dtype=np.uint16),
        np.zeros((0, 4), dtype=np.uint16),
        np.zeros((4, 4), dtype=np.int16),
        np.zeros((4, 4), dtype=np.float32),
        np.zeros((4, 4), dtype=np.uint32),
    ],
)
def test_frames_of_other_shapes_or_types_are_refused(frame: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="frame"):
        build_fits(frame, [])


# ---- header -----------------------------------------------------------------------------------


def test_standard_cards_follow_the_indi_ccd_order() -> None:
    cards = standard_cards(metadata(custom_cards=(custom_card("OBSERVER", "Ada"),)))
    assert card_list(cards) == [
        "ROWORDER", "INSTRUME", "TELESCOP", "EXPTIME", "CCD-TEMP", "SET-TEMP",
        "PIXSIZE1", "PIXSIZE2", "XBINNING", "YBINNING", "XPIXSZ", "YPIXSZ",
        "FRAME", "IMAGETYP", "FOCALLEN", "APTDIA", "SCALE", "DATE-OBS", "COMMENT",
        "GAIN", "OFFSET", "READMODE", "SWCREATE", "OBSERVER",
    ]  # fmt: skip


def test_header_keywords_have_their_types_and_values_in_the_file() -> None:
    meta = metadata(bin_x=2, bin_y=2)
    header, _ = read_primary(build_fits(frame_12bit(4, 4), standard_cards(meta)))
    expected: dict[str, tuple[type, Any]] = {
        "ROWORDER": (str, "TOP-DOWN"),
        "INSTRUME": (str, "QHY CCD QHY42PRO-0001"),
        "TELESCOP": (str, "Telescope Simulator"),
        "EXPTIME": (float, 2.5),
        "CCD-TEMP": (float, -10.0),
        "SET-TEMP": (float, -10.0),
        "PIXSIZE1": (float, 11.0),
        "PIXSIZE2": (float, 11.0),
        "XBINNING": (int, 2),
        "YBINNING": (int, 2),
        "XPIXSZ": (float, 22.0),
        "YPIXSZ": (float, 22.0),
        "FRAME": (str, "Light"),
        "IMAGETYP": (str, "Light Frame"),
        "FOCALLEN": (float, 800.0),
        "APTDIA": (float, 200.0),
        "GAIN": (int, 30),
        "OFFSET": (int, 20),
        "READMODE": (str, "STD High Gain"),
        "SWCREATE": (str, "qhy42-indi 0.1.0"),
    }
    for keyword, (kind, value) in expected.items():
        assert type(header[keyword]) is kind, keyword
        assert header[keyword] == value, keyword
    assert list(header["COMMENT"]) == ["Generated by INDI"]
    assert "DARKTIME" not in header


def test_date_obs_is_utc_with_microseconds() -> None:
    local = START.astimezone(timezone(timedelta(hours=-5)))
    header, _ = read_primary(
        build_fits(frame_8bit(2, 2), standard_cards(metadata(start_time=local)))
    )
    assert header["DATE-OBS"] == "2026-11-25T18:59:33.399512"


def test_a_naive_start_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        metadata(start_time=datetime(2026, 1, 1, 12, 0, 0))


@pytest.mark.parametrize(
    ("frame_type", "imagetyp"),
    [
        (FrameType.LIGHT, "Light Frame"),
        (FrameType.BIAS, "Bias Frame"),
        (FrameType.DARK, "Dark Frame"),
        (FrameType.FLAT, "Flat Frame"),
    ],
)
def test_frame_type_sets_frame_and_imagetyp(frame_type: FrameType, imagetyp: str) -> None:
    cards = {card.keyword: card.value for card in standard_cards(metadata(frame_type=frame_type))}
    assert cards["FRAME"] == frame_type.value
    assert cards["IMAGETYP"] == imagetyp
    assert ("DARKTIME" in cards) == (frame_type is FrameType.DARK)


def test_dark_frames_carry_darktime_equal_to_exptime() -> None:
    cards = {c.keyword: c.value for c in standard_cards(metadata(frame_type=FrameType.DARK))}
    assert cards["DARKTIME"] == cards["EXPTIME"] == 2.5


def test_scale_is_arcsec_per_binned_pixel() -> None:
    meta = metadata(focal_length_mm=800.0, bin_x=2, bin_y=2)
    expected = 11.0 / 800.0 * 206.264806 * 2
    assert pixel_scale_arcsec(meta) == pytest.approx(expected, abs=1e-6)
    cards = {card.keyword: card.value for card in standard_cards(meta)}
    assert cards["SCALE"] == pytest.approx(5.672282, abs=1e-6)


def test_without_focal_length_there_is_no_focallen_or_scale() -> None:
    cards = card_list(standard_cards(metadata(focal_length_mm=0.0, aperture_mm=80.0)))
    assert "FOCALLEN" not in cards
    assert "SCALE" not in cards
    assert "APTDIA" in cards
    with pytest.raises(ValueError, match="focal length"):
        pixel_scale_arcsec(metadata(focal_length_mm=0.0))


def test_optional_cards_are_left_out_when_unknown() -> None:
    meta = metadata(
        telescope_name="",
        ccd_temperature_c=None,
        set_temperature_c=None,
        gain=None,
        offset=None,
        read_mode="",
        aperture_mm=0.0,
    )
    cards = card_list(standard_cards(meta))
    for keyword in ("TELESCOP", "CCD-TEMP", "SET-TEMP", "GAIN", "OFFSET", "READMODE", "APTDIA"):
        assert keyword not in cards


def test_a_custom_telescop_replaces_the_active_telescope() -> None:
    meta = metadata(custom_cards=(custom_card("telescop", "RC8"),))
    header, _ = read_primary(build_fits(frame_8bit(2, 2), standard_cards(meta)))
    assert header["TELESCOP"] == "RC8"
    assert sum(1 for keyword in header if keyword == "TELESCOP") == 1


def test_a_custom_keyword_updates_a_standard_one_in_place() -> None:
    meta = metadata(custom_cards=(custom_card("EXPTIME", "3", "as logged"),))
    header, _ = read_primary(build_fits(frame_8bit(2, 2), standard_cards(meta)))
    assert sum(1 for keyword in header if keyword == "EXPTIME") == 1
    assert header["EXPTIME"] == 3
    assert header.comments["EXPTIME"] == "as logged"
    assert list(header).index("EXPTIME") < list(header).index("DATE-OBS")


def test_custom_cards_land_after_the_standard_ones_in_order() -> None:
    customs = (
        custom_card("OBJECT", "M 31"),
        custom_card("", "", "flat from the panel"),
        custom_card("SEQ", "7"),
    )
    header, _ = read_primary(
        build_fits(frame_8bit(2, 2), standard_cards(metadata(custom_cards=customs)))
    )
    keywords = list(header)
    assert keywords[-4:] == ["SWCREATE", "OBJECT", "COMMENT", "SEQ"]
    assert list(header["COMMENT"]) == ["Generated by INDI", "flat from the panel"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("2.5", 2.5),
        ("-.5", -0.5),
        ("1,5", 1.5),
        ("1e-3", "1e-3"),
        ("M 31", "M 31"),
        ("2026-11-25", "2026-11-25"),
        ("Light/Ha", "Light/Ha"),
    ],
)
def test_custom_values_are_typed_as_indi_types_them(text: str, value: CardValue) -> None:
    card = custom_card("key", text, "why")
    assert card == Card("KEY", value, "why")
    assert type(card.value) is type(value)


def test_custom_value_types_survive_the_file() -> None:
    customs = (custom_card("N", "42"), custom_card("X", "2.5"), custom_card("S", "abc"))
    header, _ = read_primary(build_fits(frame_8bit(2, 2), customs))
    assert (type(header["N"]), type(header["X"]), type(header["S"])) == (int, float, str)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BITPIX", "8", "reserved"),
        ("naxis1", "3", "reserved"),
        ("ZCMPTYPE", "GZIP_1", "reserved"),
        ("TOOLONGNAME", "1", "1 to 8 characters"),
        ("BAD KEY", "1", "1 to 8 characters"),
        ("OBSERVER", "", "needs a value"),
        ("OBSERVER", "Zoë", "ASCII"),
        ("", "", "at least a comment"),
    ],
)
def test_unusable_custom_keywords_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        custom_card(name, value)


def test_structural_keywords_are_reserved_for_the_encoder() -> None:
    assert is_reserved_keyword("BZERO")
    assert is_reserved_keyword("naxis2")
    assert not is_reserved_keyword("ZENITH")
    with pytest.raises(ValueError, match="reserved"):
        build_fits(frame_8bit(2, 2), [Card("BZERO", 0)])


def test_a_card_astropy_refuses_fails_the_build() -> None:
    with pytest.raises(ValueError, match="nan"):
        build_fits(frame_8bit(2, 2), [Card("CCD-TEMP", float("nan"))])
    with pytest.raises(ValueError, match="ASCII"):
        build_fits(frame_8bit(2, 2), [Card("OBSERVER", "Zoë")])


def test_invalid_metadata_is_refused() -> None:
    with pytest.raises(ValueError, match="binning"):
        metadata(bin_x=0)
    with pytest.raises(ValueError, match="exposure"):
        metadata(exposure_s=-1.0)


# ---- compressed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "columns", "bits"),
    [(5, 7, 16), (2048, 2048, 16), (2048, 4096, 16), (5, 7, 8), (2048, 2048, 8)],
)
def test_fits_fz_round_trip_is_exact(rows: int, columns: int, bits: int) -> None:
    frame = frame_12bit(rows, columns) if bits == 16 else frame_8bit(rows, columns)
    data = build_fits_fz(frame, standard_cards(metadata()))
    header, pixels = read_compressed(data)
    assert len(data) % FITS_BLOCK_BYTES == 0
    assert pixels.dtype == frame.dtype
    np.testing.assert_array_equal(pixels, frame)
    assert header["DATE-OBS"] == "2026-11-25T18:59:33.399512"
    assert header["EXPTIME"] == 2.5
    assert list(header["COMMENT"]) == ["Generated by INDI"]


def test_fits_fz_is_rice_tile_compressed() -> None:
    frame = frame_12bit(64, 48)
    data = build_fits_fz(frame, [])
    with afits.open(io.BytesIO(data), disable_image_compression=True) as hdus:
        table = hdus[1].header
        assert table["ZIMAGE"] is True
        assert table["ZCMPTYPE"] == "RICE_1"
        assert (table["ZNAXIS1"], table["ZNAXIS2"]) == (48, 64)
        assert table["ZTILE1"] == 48


def test_encode_frame_names_the_format_and_the_blob_size() -> None:
    frame = frame_12bit(32, 32)
    plain = encode_frame(frame, [])
    packed = encode_frame(frame, [], compress=True)
    assert plain.format == FITS_FORMAT == ".fits"
    assert packed.format == FITS_FZ_FORMAT == ".fits.fz"
    # libindi does not unpack .fz and KStars reads `size` bytes of the BLOB: both are the
    # length of the bytes sent.
    assert plain.blob_size == len(plain.data)
    assert packed.blob_size == len(packed.data)
    assert packed.data[:6] == b"SIMPLE"


# ---- cfitsio, the reader behind KStars --------------------------------------------------------

_TBYTE = 11
_TUSHORT = 20
_USHORT_IMG = 20  # cfitsio's name for BITPIX 16 + BZERO 32768, what INDI::CCD writes
_BYTE_IMG = 8


class CfitsioReader:
    """Just enough of cfitsio through ctypes to open a FITS in memory and read an image."""

    def __init__(self, library: ctypes.CDLL, data: bytes | bytearray) -> None:
        self.library = library
        self.buffer = ctypes.create_string_buffer(bytes(data), len(data))
        self.buffer_address = ctypes.c_void_p(ctypes.addressof(self.buffer))
        self.buffer_size = ctypes.c_size_t(len(data))
        self.file = ctypes.c_void_p()
        self.status = ctypes.c_int(0)
        library.ffomem(
            ctypes.byref(self.file), b"frame.fits", 0, ctypes.byref(self.buffer_address),
            ctypes.byref(self.buffer_size), ctypes.c_size_t(0), None, ctypes.byref(self.status),
        )  # fmt: skip
        self.check("ffomem")

    def check(self, call: str) -> None:
        assert self.status.value == 0, f"cfitsio {call} failed with status {self.status.value}"

    def move_to(self, hdu_number: int) -> None:
        hdu_type = ctypes.c_int()
        self.library.ffmahd(
            self.file, hdu_number, ctypes.byref(hdu_type), ctypes.byref(self.status)
        )
        self.check("ffmahd")

    def equivalent_image_type(self) -> int:
        image_type = ctypes.c_int()
        self.library.ffgiet(self.file, ctypes.byref(image_type), ctypes.byref(self.status))
        self.check("ffgiet")
        return image_type.value

    def image(self, dtype: type[np.unsignedinteger[Any]]) -> NDArray[Any]:
        sizes = (ctypes.c_long * 2)()
        self.library.ffgisz(self.file, 2, sizes, ctypes.byref(self.status))
        self.check("ffgisz")
        pixels = np.empty((sizes[1], sizes[0]), dtype=dtype)
        any_null = ctypes.c_int()
        self.library.ffgpv(
            self.file, _TUSHORT if dtype is np.uint16 else _TBYTE, ctypes.c_longlong(1),
            ctypes.c_longlong(pixels.size), None, pixels.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(any_null), ctypes.byref(self.status),
        )  # fmt: skip
        self.check("ffgpv")
        return pixels

    def text(self, keyword: bytes) -> str:
        value = ctypes.create_string_buffer(81)
        self.library.ffgkys(self.file, keyword, value, None, ctypes.byref(self.status))
        self.check("ffgkys")
        return value.value.decode("ascii")

    def number(self, keyword: bytes) -> float:
        value = ctypes.c_double()
        self.library.ffgkyd(
            self.file, keyword, ctypes.byref(value), None, ctypes.byref(self.status)
        )
        self.check("ffgkyd")
        return value.value

    def close(self) -> None:
        self.library.ffclos(self.file, ctypes.byref(self.status))
        self.check("ffclos")


@pytest.fixture(scope="module")
def cfitsio() -> ctypes.CDLL:
    name = ctypes.util.find_library("cfitsio")
    if name is None:
        pytest.skip("libcfitsio is not installed (Debian package libcfitsio10, pulled by indi-bin)")
    return ctypes.CDLL(name)


@pytest.mark.parametrize(("compress", "bits"), [(False, 16), (True, 16), (False, 8), (True, 8)])
def test_cfitsio_reads_the_same_pixels_and_keywords(
    cfitsio: ctypes.CDLL, compress: bool, bits: int
) -> None:
    frame = frame_12bit(37, 53) if bits == 16 else frame_8bit(37, 53)
    encoded = encode_frame(frame, standard_cards(metadata()), compress=compress)
    reader = CfitsioReader(cfitsio, encoded.data)
    try:
        reader.move_to(2 if compress else 1)
        assert reader.equivalent_image_type() == (_USHORT_IMG if bits == 16 else _BYTE_IMG)
        np.testing.assert_array_equal(reader.image(np.uint16 if bits == 16 else np.uint8), frame)
        assert reader.text(b"DATE-OBS") == "2026-11-25T18:59:33.399512"
        assert reader.number(b"EXPTIME") == 2.5
    finally:
        reader.close()


# ---- the cached header against astropy's own -------------------------------------------------


def astropy_plain_fits(frame: NDArray[Any], cards: list[Card]) -> bytes:
    """The plain file as the encoder built it with an astropy Header for every frame."""
    header = afits.Header([
        ("SIMPLE", True, "file does conform to FITS standard"),
        ("BITPIX", 8 * frame.dtype.itemsize, "number of bits per data pixel"),
        ("NAXIS", 2, "number of data axes"),
        ("NAXIS1", frame.shape[1], "length of data axis 1"),
        ("NAXIS2", frame.shape[0], "length of data axis 2"),
        ("EXTEND", True, "FITS dataset may contain extensions"),
    ])
    if frame.dtype.itemsize == 2:
        header["BZERO"] = (32768, "offset data range to that of unsigned short")
        header["BSCALE"] = (1, "default scaling factor")
    for card in cards:
        keyword = card.keyword.strip().upper()
        if keyword in ("COMMENT", "HISTORY", ""):
            header.append((keyword, str(card.value)), end=True)
        elif keyword in header:
            header[keyword] = (card.value, card.comment)
        else:
            header.append((keyword, card.value, card.comment), end=True)
    head = header.tostring().encode("ascii")
    data = (frame ^ 0x8000).astype(">u2") if frame.dtype.itemsize == 2 else frame
    body = np.ascontiguousarray(data).tobytes()
    return head + body + bytes(-len(body) % FITS_BLOCK_BYTES)


AWKWARD_CARDS = [
    Card("OBSERVER", "O'Brien & co", "quotes and ampersands"),
    Card("LONGSTR", "x" * 100, "a string that needs CONTINUE cards"),
    Card("FLAG", True, "a bool"),
    Card("ONE", 1, "an int equal to True"),
    Card("ZERO", -0.0, "negative zero"),
    Card("TINY", 1.5e-12),
    Card("HISTORY", "h" * 90),
    Card("COMMENT", ""),
    Card("OBSERVER", "replaced in place", "the second one wins"),
]


@pytest.mark.parametrize("cards", [[], AWKWARD_CARDS, "standard"])
def test_the_cached_header_is_byte_for_byte_astropys(cards: Any) -> None:
    chosen = (standard_cards(metadata(custom_cards=tuple(AWKWARD_CARDS)))
              if cards == "standard" else cards)
    for frame in (frame_12bit(9, 11), frame_8bit(3, 2)):
        # Twice: the second build takes every card image from the cache.
        assert bytes(build_fits(frame, chosen)) == astropy_plain_fits(frame, chosen)
        assert bytes(build_fits(frame, chosen)) == astropy_plain_fits(frame, chosen)


def test_values_that_compare_equal_but_print_apart_are_not_confused() -> None:
    frame = frame_8bit(2, 2)
    for first, second in ((True, 1), (0.0, -0.0), (1, 1.0)):
        header_a, _ = read_primary(build_fits(frame, [Card("KEY", first)]))
        header_b, _ = read_primary(build_fits(frame, [Card("KEY", second)]))
        assert type(header_a["KEY"]) is type(first)
        assert type(header_b["KEY"]) is type(second)
        assert str(header_b.cards["KEY"]) == str(afits.Card("KEY", second))


def test_only_changed_cards_are_formatted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    formatted: list[str] = []
    original = afits.Card

    class CountingCard(original):  # type: ignore[misc, valid-type]
        def __init__(self, keyword: str, *args: Any) -> None:
            formatted.append(keyword)
            super().__init__(keyword, *args)

    frame = frame_8bit(2, 2)
    build_fits(frame, standard_cards(metadata()))
    monkeypatch.setattr("qhy42_indi.camera.fits.afits.Card", CountingCard)
    later = START + timedelta(seconds=1)
    build_fits(frame, standard_cards(metadata(start_time=later)))
    assert formatted == ["DATE-OBS"]


def test_plain_fits_in_reused_buffers_is_build_fits_and_never_overwrites_a_held_one() -> None:
    from qhy42_indi.camera.delivery import FitsBuffers

    buffers = FitsBuffers()
    rng = np.random.default_rng(3)
    cards = [Card("OBJECT", "test", "")]
    held = []
    for index in range(8):
        dtype = np.uint16 if index % 3 else np.uint8
        shape = (64, 48) if index < 5 else (16, 16)
        frame = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        encoded = build_fits(frame, cards, buffers)  # a reused buffer's old bytes never show
        assert bytes(encoded) == bytes(build_fits(frame, cards))
        if index % 2:
            held.append((encoded, bytes(encoded)))
    for encoded, original in held:
        assert bytes(encoded) == original


def test_a_given_buffer_is_overwritten_whole_padding_included() -> None:
    frame = np.arange(37 * 41, dtype=np.uint16).reshape(37, 41)  # data ends mid-block
    cards = [Card("OBJECT", "test", "")]
    dirty = build_fits(frame, cards, lambda size: bytearray(b"\xa5" * size))
    assert dirty == build_fits(frame, cards)
