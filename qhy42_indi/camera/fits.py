"""FITS encoding of one camera frame: header cards in, the bytes of a FITS file out.

Each frame is encoded once, in a worker thread, and the same bytes then go to every client
and to the local save. The header cards are formatted by astropy, once per distinct card (a
frame's header differs from the last one's in a few values only), so the header is astropy's
byte for byte; the pixel data are written by numpy straight into the final buffer in one
vectorised pass, big-endian, so a 2048x2048 16-bit frame costs about a millisecond. The
compressed variant is an fpack-style tile-compressed `.fits.fz` (RICE_1), laid out here as
astropy's CompImageHDU lays it out, its tiles coded by the cfitsio RICE coder that astropy
ships, on several threads.

`standard_cards` builds the header that INDI::CCD writes (order and keywords of
`addFITSKeywords`, plus the driver cards that the QHY driver adds) from a small typed
`FrameMetadata`; `custom_card` types a FITS_HEADER keyword as INDI does.

Not here: base64 (the BLOB layer), file names and saving (upload.py), mount or WCS keywords
(nothing snoops a mount yet), and anything asyncio: every function here is blocking and pure.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits as afits
from numpy.typing import NDArray

from qhy42_indi import __version__
from qhy42_indi.row_work import RowWork

try:  # astropy's private binding of cfitsio's RICE coder (astropy 6-8); else its public writer
    from astropy.io.fits.hdu.compressed._compression import compress_rice_1_c
except ImportError:  # pragma: no cover - only with an astropy that moved it
    compress_rice_1_c = None

FITS_FORMAT = ".fits"
FITS_FZ_FORMAT = ".fits.fz"

FITS_BLOCK_BYTES = 2880

# Arc seconds per radian / 1000: pixel um / focal length mm * this = arcsec per pixel.
# (libindi rounds it to 206.3; the exact value costs nothing.)
ARCSEC_PER_UM_PER_MM = 206.264806

# Rows per RICE tile. fpack tiles row by row; 16 rows compress the same with a sixteenth of
# the per-tile calls, and every cfitsio reader (KStars, funpack) honours ZTILE2.
FZ_TILE_ROWS = 16

CardValue = bool | int | float | str
# Where a plain FITS is written: a bytearray of the size asked, its contents any.
BufferSource = Callable[[int], bytearray]



class Card(NamedTuple):
    """One header card. For COMMENT and HISTORY, `value` holds the text (astropy's rule)."""

    keyword: str
    value: CardValue
    comment: str = ""


class FrameType(StrEnum):
    """CCD_FRAME_TYPE, spelled as the FITS FRAME keyword."""

    LIGHT = "Light"
    BIAS = "Bias"
    DARK = "Dark"
    FLAT = "Flat"


@dataclass(frozen=True, slots=True)
class FrameMetadata:
    """What the header says about one frame. `start_time` must be timezone-aware."""

    device_name: str
    exposure_s: float
    start_time: datetime
    pixel_size_x_um: float
    pixel_size_y_um: float
    frame_type: FrameType = FrameType.LIGHT
    telescope_name: str = ""
    bin_x: int = 1
    bin_y: int = 1
    ccd_temperature_c: float | None = None
    set_temperature_c: float | None = None
    gain: float | None = None
    offset: float | None = None
    read_mode: str = ""
    focal_length_mm: float = 0.0
    aperture_mm: float = 0.0
    driver_name: str = "qhy42-indi"
    driver_version: str = __version__
    custom_cards: tuple[Card, ...] = ()

    def __post_init__(self) -> None:
        if self.start_time.tzinfo is None or self.start_time.utcoffset() is None:
            raise ValueError("start_time must be timezone-aware (DATE-OBS is UTC)")
        if self.bin_x < 1 or self.bin_y < 1:
            raise ValueError(f"binning must be at least 1, got {self.bin_x}x{self.bin_y}")
        if self.exposure_s < 0:
            raise ValueError(f"exposure_s must not be negative, got {self.exposure_s}")


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame ready for a BLOB and for the local save."""

    data: bytes | bytearray
    format: str

    @property
    def blob_size(self) -> int:
        """The `size` attribute of oneBLOB.

        INDI defines size as the length after base64 decoding and after *transport*
        decompression, which libindi applies to `.z` formats only. A `.fits.fz` is a file
        format, not a transport compression: libindi hands it to KStars as is, and KStars
        reads `size` bytes of the BLOB (`QByteArray::fromRawData(getBlob(), getSize())`)
        before unpacking it. So for both formats the size is the byte length we send.
        """
        return len(self.data)


# ---- cards ----------------------------------------------------------------------------------

# Keywords that describe the HDU's structure: astropy or this module writes them, a caller
# that set them would produce a file that lies about its data.
_RESERVED_KEYWORD = re.compile(
    r"(SIMPLE|BITPIX|NAXIS\d*|EXTEND|BZERO|BSCALE|BLANK|END|XTENSION|PCOUNT|GCOUNT|GROUPS"
    r"|CHECKSUM|DATASUM|TFIELDS|THEAP|T(TYPE|FORM|UNIT|SCAL|ZERO|NULL|DISP|DIM)\d+"
    r"|Z(IMAGE|SIMPLE|BITPIX|NAXIS\d*|TILE\d+|CMPTYPE|NAME\d+|VAL\d+|MASKCMP|QUANTIZ"
    r"|DITHER0|EXTEND|BLOCKED|TENSION|PCOUNT|GCOUNT|HECKSUM|DATASUM|THEAP|BLANK|SCALE|ZERO))"
)
_COMMENTARY_KEYWORDS = frozenset({"COMMENT", "HISTORY", ""})
_KEYWORD_SHAPE = re.compile(r"[A-Z0-9_-]{1,8}")
# The two patterns libindi's FITS_HEADER handler uses to type a value (comma as decimal mark
# included; libindi then parses "1,5" as 1, we read it as the 1.5 the user meant).
_INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[-+]?([0-9]*[.,][0-9]+|[0-9]+)")


def is_reserved_keyword(keyword: str) -> bool:
    """True for keywords that only the encoder may write (BITPIX, NAXISn, BZERO, Z* ...)."""
    return _RESERVED_KEYWORD.fullmatch(keyword.strip().upper()) is not None


def custom_card(name: str, value: str, comment: str = "") -> Card:
    """Type one FITS_HEADER keyword as INDI::CCD does; raise ValueError if it cannot be used.

    The name is upper-cased; the value becomes an int, a float or a string by the same
    patterns as libindi (so "1e-3" stays a string). An empty name and value with a comment
    is a COMMENT card. INDI_CLEAR is the caller's business (it clears, it is not a card).
    """
    keyword = name.strip().upper()
    text = value.strip()
    if not keyword and not text:
        if not comment:
            raise ValueError("an empty FITS keyword needs at least a comment")
        return _checked(Card("COMMENT", comment))
    if not _KEYWORD_SHAPE.fullmatch(keyword):
        raise ValueError(
            f"FITS keyword {name!r} must be 1 to 8 characters among A-Z, 0-9, '-' and '_'"
        )
    if is_reserved_keyword(keyword):
        raise ValueError(f"FITS keyword {keyword} describes the file structure and is reserved")
    if not text:
        raise ValueError(f"FITS keyword {keyword} needs a value")
    return _checked(Card(keyword, _typed_value(text), comment))


def _typed_value(text: str) -> CardValue:
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if _DECIMAL_TEXT.fullmatch(text):
        return float(text.replace(",", "."))
    return text


def _checked(card: Card) -> Card:
    """Let astropy refuse what FITS cannot hold (non-ASCII text, NaN), as a ValueError."""
    try:
        afits.Card(card.keyword, card.value, card.comment)
    except ValueError as error:
        raise ValueError(f"FITS keyword {card.keyword}: {error}") from error
    return card


def standard_cards(meta: FrameMetadata) -> list[Card]:
    """The header of INDI::CCD for this frame, in its order, then driver and custom cards.

    Order as libindi's addFITSKeywords (ROWORDER ... SCALE, DATE-OBS, COMMENT), then what the
    QHY driver appends (GAIN, OFFSET, READMODE), then SWCREATE, then the custom keywords last,
    so that a custom keyword replaces a standard one, as cfitsio's update does in libindi.
    """
    return [
        *_identity_cards(meta),
        *_exposure_cards(meta),
        *_pixel_cards(meta),
        *_frame_type_cards(meta.frame_type),
        *_optics_cards(meta),
        Card("DATE-OBS", _date_obs(meta.start_time), "UTC start date of observation"),
        Card("COMMENT", "Generated by INDI"),
        *_sensor_setting_cards(meta),
        Card("SWCREATE", f"{meta.driver_name} {meta.driver_version}", "Software that created file"),
        *meta.custom_cards,
    ]


def _identity_cards(meta: FrameMetadata) -> list[Card]:
    cards = [
        Card("ROWORDER", "TOP-DOWN", "Row Order"),
        Card("INSTRUME", meta.device_name, "Camera Name"),
    ]
    # Like libindi: no TELESCOP without a telescope, and a custom TELESCOP wins.
    custom_keywords = {card.keyword for card in meta.custom_cards}
    if meta.telescope_name and "TELESCOP" not in custom_keywords:
        cards.append(Card("TELESCOP", meta.telescope_name, "Telescope name"))
    return cards


def _exposure_cards(meta: FrameMetadata) -> list[Card]:
    cards = [Card("EXPTIME", float(meta.exposure_s), "Total Exposure Time (s)")]
    if meta.frame_type is FrameType.DARK:
        cards.append(Card("DARKTIME", float(meta.exposure_s), "Total Dark Exposure Time (s)"))
    if meta.ccd_temperature_c is not None:
        cards.append(Card("CCD-TEMP", float(meta.ccd_temperature_c), "CCD Temperature (Celsius)"))
    if meta.set_temperature_c is not None:
        cards.append(
            Card("SET-TEMP", float(meta.set_temperature_c), "CCD temperature setpoint (Celsius)")
        )
    return cards


def _pixel_cards(meta: FrameMetadata) -> list[Card]:
    return [
        Card("PIXSIZE1", float(meta.pixel_size_x_um), "Pixel Size 1 (microns)"),
        Card("PIXSIZE2", float(meta.pixel_size_y_um), "Pixel Size 2 (microns)"),
        Card("XBINNING", meta.bin_x, "Binning factor in width"),
        Card("YBINNING", meta.bin_y, "Binning factor in height"),
        Card("XPIXSZ", float(meta.pixel_size_x_um * meta.bin_x), "X binned pixel size in microns"),
        Card("YPIXSZ", float(meta.pixel_size_y_um * meta.bin_y), "Y binned pixel size in microns"),
    ]


def _frame_type_cards(frame_type: FrameType) -> list[Card]:
    return [
        Card("FRAME", frame_type.value, "Frame Type"),
        Card("IMAGETYP", f"{frame_type.value} Frame", "Frame Type"),
    ]


def _optics_cards(meta: FrameMetadata) -> list[Card]:
    # SCOPE_INFO values of 0 mean "not set": libindi writes nothing then, and neither do we.
    cards = []
    if meta.focal_length_mm > 0:
        cards.append(Card("FOCALLEN", float(meta.focal_length_mm), "Focal Length (mm)"))
    if meta.aperture_mm > 0:
        cards.append(Card("APTDIA", float(meta.aperture_mm), "Telescope diameter (mm)"))
    if meta.focal_length_mm > 0:
        cards.append(Card("SCALE", pixel_scale_arcsec(meta), "arcsecs per pixel"))
    return cards


def pixel_scale_arcsec(meta: FrameMetadata) -> float:
    """Arc seconds per binned pixel along X (square pixels assumed, as libindi does)."""
    if meta.focal_length_mm <= 0:
        raise ValueError("the pixel scale needs a focal length")
    scale = meta.pixel_size_x_um / meta.focal_length_mm * ARCSEC_PER_UM_PER_MM * meta.bin_x
    return round(scale, 6)  # micro-arcsecond digits are noise in a header


def _sensor_setting_cards(meta: FrameMetadata) -> list[Card]:
    cards = []
    if meta.gain is not None:
        cards.append(Card("GAIN", meta.gain, "Gain"))
    if meta.offset is not None:
        cards.append(Card("OFFSET", meta.offset, "Offset"))
    if meta.read_mode:
        cards.append(Card("READMODE", meta.read_mode, "Read Mode"))
    return cards


def _date_obs(start_time: datetime) -> str:
    return start_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# ---- encoding -------------------------------------------------------------------------------


def build_fits(frame: NDArray[Any], cards: Sequence[Card],
               buffer: BufferSource | None = None) -> bytearray:
    """The bytes of a plain FITS file holding `frame`, as one bytearray of its final size:
    a new one, or `buffer(size)`'s (whatever it held is overwritten).

    uint16 frames are written as BITPIX 16 with BZERO 32768 (unsigned, as cfitsio writes
    USHORT_IMG); uint8 frames as BITPIX 8. Raises ValueError for another shape or dtype, or
    a card astropy refuses.
    """
    header_bytes = frame_header(frame, cards)
    data_end = len(header_bytes) + _data_length(frame)
    size = len(header_bytes) + _padded(_data_length(frame))
    if buffer is None:
        fits_bytes = bytearray(size)  # zero-filled: the padding FITS wants after the data
    else:
        fits_bytes = buffer(size)
        fits_bytes[data_end:] = bytes(size - data_end)
    _fill_plain(fits_bytes, header_bytes, frame)
    return fits_bytes


def build_fits_fz(frame: NDArray[Any], cards: Sequence[Card]) -> bytes:
    """The bytes of a tile-compressed `.fits.fz` (RICE_1, lossless for integers).

    Laid out as fpack writes it: an empty primary HDU, the image in a compressed extension.
    """
    return bytes(_build_fz(frame, cards))


def frame_header(frame: NDArray[Any], cards: Sequence[Card]) -> bytes:
    """The header alone of the FITS build_fits makes of `frame` and `cards`."""
    _check_frame(frame)
    return _header_bytes([*_primary_cards(frame), *_merged(cards)])


def encode_frame(
    frame: NDArray[Any], cards: Sequence[Card], *, compress: bool = False,
    buffer: BufferSource | None = None,
) -> EncodedFrame:
    """The frame as `.fits` (in `buffer`'s bytearray, if given), or as `.fits.fz` when
    CCD_COMPRESSION is enabled."""
    if compress:
        return EncodedFrame(_build_fz(frame, cards), FITS_FZ_FORMAT)
    return EncodedFrame(build_fits(frame, cards, buffer), FITS_FORMAT)


def _check_frame(frame: NDArray[Any]) -> None:
    if frame.ndim != 2 or frame.size == 0:
        raise ValueError(f"a frame is a non-empty 2-D array, got shape {frame.shape}")
    if frame.dtype.kind != "u" or frame.dtype.itemsize not in (1, 2):
        raise ValueError(f"a frame holds uint8 or uint16 pixels, got {frame.dtype}")


def _data_length(frame: NDArray[Any]) -> int:
    return int(frame.size) * frame.dtype.itemsize


def _fill_plain(target: bytearray, header_bytes: bytes, frame: NDArray[Any]) -> None:
    target[: len(header_bytes)] = header_bytes
    _write_data(frame, target, len(header_bytes))


def _write_data(frame: NDArray[Any], fits_bytes: bytearray, offset: int) -> None:
    count = frame.size
    if frame.dtype.itemsize == 1:
        target = np.frombuffer(fits_bytes, dtype=np.uint8, count=count, offset=offset)
        np.copyto(target.reshape(frame.shape), frame)
        return
    # value - 32768 as int16 has the same bits as value ^ 0x8000, and writing the XOR into a
    # big-endian view swaps the bytes on the way: one pass, no temporary frame.
    target = np.frombuffer(fits_bytes, dtype=">u2", count=count, offset=offset)
    np.bitwise_xor(frame, np.uint16(0x8000), out=target.reshape(frame.shape))


def _padded(length: int) -> int:
    return -(-length // FITS_BLOCK_BYTES) * FITS_BLOCK_BYTES


# ---- header cards as bytes, cached -----------------------------------------------------------

# Formatting a card through astropy costs ~20 us and a frame has ~30, nearly all the same from
# one frame to the next (only DATE-OBS, temperatures, timing change): each distinct card is
# formatted once and its 80-byte image reused, so the header is astropy's, byte for byte.
_CARD_CACHE_LIMIT = 4096
_card_images: dict[tuple[str, type, str, str], bytes] = {}
_END_CARD = b"END".ljust(80)


def _card_image(keyword: str, value: CardValue, comment: str) -> bytes:
    # The type and repr are in the key: True == 1 and 0.0 == -0.0, but they print apart.
    key = (keyword, type(value), repr(value), comment)
    image = _card_images.get(key)
    if image is None:
        if keyword in _COMMENTARY_KEYWORDS:
            text = afits.Card(keyword, str(value)).image
        else:
            text = afits.Card(keyword, value, comment).image
        image = text.encode("ascii")
        if len(_card_images) >= _CARD_CACHE_LIMIT:
            _card_images.clear()  # a header whose values never repeat: cheap to rebuild
        _card_images[key] = image
    return image


def _merged(cards: Sequence[Card]) -> list[Card]:
    """The cards in order; a keyword already present is updated in place (cfitsio's
    fits_update_key semantics, which is how libindi lets a custom keyword win)."""
    merged: list[Card] = []
    position: dict[str, int] = {}
    for card in cards:
        keyword = card.keyword.strip().upper()
        if is_reserved_keyword(keyword):
            raise ValueError(f"FITS keyword {keyword} is reserved for the encoder")
        if isinstance(card.value, float) and not math.isfinite(card.value):
            raise ValueError(f"FITS keyword {keyword} cannot hold {card.value}")
        if keyword in _COMMENTARY_KEYWORDS:
            merged.append(Card(keyword, str(card.value)))
        elif keyword in position:
            merged[position[keyword]] = Card(keyword, card.value, card.comment)
        else:
            position[keyword] = len(merged)
            merged.append(Card(keyword, card.value, card.comment))
    return merged


def _header_bytes(cards: Sequence[Card]) -> bytes:
    images = [_card_image(card.keyword, card.value, card.comment) for card in cards]
    images.append(_END_CARD)
    header = b"".join(images)
    return header.ljust(_padded(len(header)), b" ")


def _primary_cards(frame: NDArray[Any]) -> list[Card]:
    rows, columns = frame.shape
    cards = [
        Card("SIMPLE", True, "file does conform to FITS standard"),
        Card("BITPIX", 8 * frame.dtype.itemsize, "number of bits per data pixel"),
        Card("NAXIS", 2, "number of data axes"),
        Card("NAXIS1", columns, "length of data axis 1"),
        Card("NAXIS2", rows, "length of data axis 2"),
        Card("EXTEND", True, "FITS dataset may contain extensions"),
    ]
    if frame.dtype.itemsize == 2:
        cards += [
            Card("BZERO", 32768, "offset data range to that of unsigned short"),
            Card("BSCALE", 1, "default scaling factor"),
        ]
    return cards


# ---- the compressed variant ---------------------------------------------------------------------

# fpack's RICE_1 parameters; BYTEPIX is the pixel size.
RICE_BLOCK_PIXELS = 32
_TILE_DESCRIPTOR = np.dtype([("count", ">i4"), ("offset", ">i4")])
# Tiles are compressed in parallel (both coders run without the GIL).
TILE_WORK = RowWork("fits-rice", most_threads=4)


def _build_fz(frame: NDArray[Any], cards: Sequence[Card]) -> bytes | bytearray:
    _check_frame(frame)
    user_cards = _merged(cards)
    if compress_rice_1_c is None and _own_coder() is None:
        return _astropy_fz(frame, user_cards)
    tiles = _compressed_tiles(frame)
    heap_length = sum(len(tile) for tile in tiles)
    primary = _header_bytes([Card("SIMPLE", True, "conforms to FITS standard"),
                             Card("BITPIX", 8, "array data type"),
                             Card("NAXIS", 0, "number of array dimensions"),
                             Card("EXTEND", True)])
    table = _header_bytes([*_table_cards(frame, len(tiles), heap_length,
                                         max(len(tile) for tile in tiles)), *user_cards])
    table_length = _TILE_DESCRIPTOR.itemsize * len(tiles)
    length = len(primary) + len(table) + _padded(table_length + heap_length)

    # One buffer of the final size (zero-filled: the padding), the heap copied in tile by tile.
    fits_bytes = bytearray(length)
    offset = len(primary) + len(table)
    fits_bytes[: len(primary)] = primary
    fits_bytes[len(primary) : offset] = table
    lengths = [len(tile) for tile in tiles]
    descriptors = np.frombuffer(fits_bytes, _TILE_DESCRIPTOR, len(tiles), offset)
    descriptors["count"] = lengths
    descriptors["offset"] = np.cumsum([0, *lengths[:-1]])
    del descriptors  # a live view would pin the buffer's size
    offset += table_length
    for tile in tiles:
        fits_bytes[offset : offset + len(tile)] = tile
        offset += len(tile)
    return fits_bytes


def _astropy_fz(frame: NDArray[Any], cards: Sequence[Card]) -> bytes:
    """The same file through astropy's CompImageHDU: one thread, about 55 ms a frame."""
    header = afits.Header()
    for card in cards:
        if card.keyword in _COMMENTARY_KEYWORDS:
            header.append((card.keyword, str(card.value)), end=True)
        else:
            header.append((card.keyword, card.value, card.comment), end=True)
    compressed = afits.CompImageHDU(
        data=np.ascontiguousarray(frame), header=header, compression_type="RICE_1",
        tile_shape=(min(FZ_TILE_ROWS, frame.shape[0]), frame.shape[1]))
    buffer = io.BytesIO()
    afits.HDUList([afits.PrimaryHDU(), compressed]).writeto(buffer)
    return buffer.getvalue()


def _table_cards(frame: NDArray[Any], tile_count: int, heap_length: int,
                 longest_tile: int) -> list[Card]:
    """The compressed extension's structure, as astropy's CompImageHDU writes it."""
    rows, columns = frame.shape
    bytepix = frame.dtype.itemsize
    cards = [
        Card("XTENSION", "BINTABLE", "binary table extension"),
        Card("BITPIX", 8, "array data type"),
        Card("NAXIS", 2, "number of array dimensions"),
        Card("NAXIS1", _TILE_DESCRIPTOR.itemsize, "width of table in bytes"),
        Card("NAXIS2", tile_count, "number of rows in table"),
        Card("PCOUNT", heap_length, "number of group parameters"),
        Card("GCOUNT", 1, "number of groups"),
        Card("TFIELDS", 1, "number of fields in each row"),
        Card("TTYPE1", "COMPRESSED_DATA"),
        Card("TFORM1", f"1PB({longest_tile})"),
        Card("ZIMAGE", True, "extension contains compressed image"),
        Card("ZTENSION", "IMAGE", "Image extension"),
        Card("ZBITPIX", 8 * bytepix, "array data type"),
        Card("ZNAXIS", 2, "number of array dimensions"),
        Card("ZNAXIS1", columns),
        Card("ZNAXIS2", rows),
        Card("ZPCOUNT", 0, "number of parameters"),
        Card("ZGCOUNT", 1, "number of groups"),
        Card("ZTILE1", columns, "size of tiles to be compressed"),
        Card("ZTILE2", min(FZ_TILE_ROWS, rows), "size of tiles to be compressed"),
        Card("ZCMPTYPE", "RICE_1", "compression algorithm"),
        Card("ZNAME1", "BLOCKSIZE", "compression block size"),
        Card("ZVAL1", RICE_BLOCK_PIXELS, "pixels per block"),
        Card("ZNAME2", "BYTEPIX", "bytes per pixel (1, 2, 4, or 8)"),
        Card("ZVAL2", bytepix, "bytes per pixel (1, 2, 4, or 8)"),
        Card("EXTNAME", "COMPRESSED_IMAGE", "name of this binary table extension"),
    ]
    if bytepix == 2:
        cards += [Card("BZERO", 32768), Card("BSCALE", 1)]
    return cards


def _compressed_tiles(frame: NDArray[Any]) -> Sequence[bytes | memoryview]:
    """RICE_1 of each FZ_TILE_ROWS-row tile, in order, groups of tiles on several threads."""
    rows = frame.shape[0]
    starts = list(range(0, rows, FZ_TILE_ROWS))
    groups = TILE_WORK.groups(len(starts))
    bounds = [starts[len(starts) * g // groups] for g in range(groups)] + [rows]
    parts = TILE_WORK.run(lambda start, stop: _compress_rows(frame, start, stop), bounds)
    return list(itertools.chain.from_iterable(parts))


def _own_coder() -> ModuleType | None:
    """qhy42_indi.rice (numba, a third of cfitsio's cost) where numba is installed."""
    from qhy42_indi import rice  # numba loads with the first compressed frame, not at start-up

    return rice if rice.available() else None


def _compress_rows(frame: NDArray[Any], start: int, stop: int) -> Sequence[bytes | memoryview]:
    coder = _own_coder()
    if coder is not None:
        tiles: list[memoryview] = coder.encode_tiles(frame[start:stop], FZ_TILE_ROWS,
                                                     RICE_BLOCK_PIXELS)
        return tiles
    return cfitsio_tiles(frame[start:stop])


def cfitsio_tiles(frame: NDArray[Any]) -> list[bytes]:
    """Each FZ_TILE_ROWS-row tile of `frame` by cfitsio's own RICE_1 coder (astropy's binding)."""
    bytepix = frame.dtype.itemsize
    if bytepix == 2:
        # The stored integers are value - BZERO: the same bits as value ^ 0x8000, as int16.
        words = np.bitwise_xor(frame, np.uint16(0x8000)).view(np.int16)
    else:
        words = np.ascontiguousarray(frame)
    assert compress_rice_1_c is not None
    return [
        compress_rice_1_c(words[row : row + FZ_TILE_ROWS], RICE_BLOCK_PIXELS, bytepix)
        for row in range(0, frame.shape[0], FZ_TILE_ROWS)
    ]
