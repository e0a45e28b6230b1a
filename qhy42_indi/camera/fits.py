"""FITS encoding of one camera frame: header cards in, the bytes of a FITS file out.

Each frame is encoded once, in a worker thread, and the same bytes then go to every client
and to the local save. The header is built and validated by astropy; the pixel data are
written by numpy straight into the final buffer in one vectorised pass, so a 2048x2048
16-bit frame costs a couple of milliseconds. The compressed variant is an fpack-style
tile-compressed `.fits.fz` (RICE_1) made with astropy's CompImageHDU.

`standard_cards` builds the header that INDI::CCD writes (order and keywords of
`addFITSKeywords`, plus the driver cards that the QHY driver adds) from a small typed
`FrameMetadata`; `custom_card` types a FITS_HEADER keyword as INDI does.

Not here: base64 (the BLOB layer), file names and saving (upload.py), mount or WCS keywords
(nothing snoops a mount yet), and anything asyncio: every function here is blocking and pure.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits as afits
from numpy.typing import NDArray

from qhy42_indi import __version__

FITS_FORMAT = ".fits"
FITS_FZ_FORMAT = ".fits.fz"

FITS_BLOCK_BYTES = 2880

# Arc seconds per radian / 1000: pixel um / focal length mm * this = arcsec per pixel.
# (libindi rounds it to 206.3; the exact value costs nothing.)
ARCSEC_PER_UM_PER_MM = 206.264806

# Rows per RICE tile. fpack tiles row by row, but astropy's per-tile Python overhead then
# doubles the cost (about 95 ms instead of 50 ms for 2048x2048); 16 rows compress the same
# and every cfitsio reader (KStars, funpack) honours ZTILE2.
FZ_TILE_ROWS = 16

CardValue = bool | int | float | str


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


def build_fits(frame: NDArray[Any], cards: Sequence[Card]) -> bytearray:
    """The bytes of a plain FITS file holding `frame`, as one bytearray of its final size.

    uint16 frames are written as BITPIX 16 with BZERO 32768 (unsigned, as cfitsio writes
    USHORT_IMG); uint8 frames as BITPIX 8. Raises ValueError for another shape or dtype, or
    a card astropy refuses.
    """
    _check_frame(frame)
    header = _primary_header(frame)
    _apply_cards(header, cards)
    header_bytes = header.tostring().encode("ascii")
    data_bytes = frame.size * frame.dtype.itemsize
    # bytearray() is zero-filled, which is exactly the padding FITS wants after the data.
    fits_bytes = bytearray(len(header_bytes) + _padded(data_bytes))
    fits_bytes[: len(header_bytes)] = header_bytes
    _write_data(frame, fits_bytes, len(header_bytes))
    return fits_bytes


def build_fits_fz(frame: NDArray[Any], cards: Sequence[Card]) -> bytes:
    """The bytes of a tile-compressed `.fits.fz` (RICE_1, lossless for integers).

    Laid out as fpack writes it: an empty primary HDU, the image in a compressed extension.
    """
    _check_frame(frame)
    header = afits.Header()
    _apply_cards(header, cards)
    rows, columns = frame.shape
    compressed = afits.CompImageHDU(
        data=np.ascontiguousarray(frame),
        header=header,
        compression_type="RICE_1",
        tile_shape=(min(FZ_TILE_ROWS, rows), columns),
    )
    buffer = io.BytesIO()
    afits.HDUList([afits.PrimaryHDU(), compressed]).writeto(buffer)
    return buffer.getvalue()


def encode_frame(
    frame: NDArray[Any], cards: Sequence[Card], *, compress: bool = False
) -> EncodedFrame:
    """The frame as `.fits`, or as `.fits.fz` when CCD_COMPRESSION is enabled."""
    if compress:
        return EncodedFrame(build_fits_fz(frame, cards), FITS_FZ_FORMAT)
    return EncodedFrame(build_fits(frame, cards), FITS_FORMAT)


def _check_frame(frame: NDArray[Any]) -> None:
    if frame.ndim != 2 or frame.size == 0:
        raise ValueError(f"a frame is a non-empty 2-D array, got shape {frame.shape}")
    if frame.dtype.kind != "u" or frame.dtype.itemsize not in (1, 2):
        raise ValueError(f"a frame holds uint8 or uint16 pixels, got {frame.dtype}")


def _primary_header(frame: NDArray[Any]) -> afits.Header:
    rows, columns = frame.shape
    header = afits.Header(
        [
            ("SIMPLE", True, "file does conform to FITS standard"),
            ("BITPIX", 8 * frame.dtype.itemsize, "number of bits per data pixel"),
            ("NAXIS", 2, "number of data axes"),
            ("NAXIS1", columns, "length of data axis 1"),
            ("NAXIS2", rows, "length of data axis 2"),
            ("EXTEND", True, "FITS dataset may contain extensions"),
        ]
    )
    if frame.dtype.itemsize == 2:
        header["BZERO"] = (32768, "offset data range to that of unsigned short")
        header["BSCALE"] = (1, "default scaling factor")
    return header


def _apply_cards(header: afits.Header, cards: Sequence[Card]) -> None:
    """Add the cards in order; a keyword already present is updated in place (cfitsio's
    fits_update_key semantics, which is how libindi lets a custom keyword win)."""
    for card in cards:
        keyword = card.keyword.strip().upper()
        if is_reserved_keyword(keyword):
            raise ValueError(f"FITS keyword {keyword} is reserved for the encoder")
        if isinstance(card.value, float) and not math.isfinite(card.value):
            raise ValueError(f"FITS keyword {keyword} cannot hold {card.value}")
        if keyword in _COMMENTARY_KEYWORDS:
            header.append((keyword, str(card.value)), end=True)
        elif keyword in header:
            header[keyword] = (card.value, card.comment)
        else:
            # end=True: astropy otherwise slips a new card above trailing COMMENT cards.
            header.append((keyword, card.value, card.comment), end=True)


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
