"""FITS header cards read from the start of a file or of the bytes of a frame, without astropy.

A FITS header is 80-character cards in 2880-byte blocks up to an END card; the image header
of a tile-compressed .fits.fz is the first extension's. Only what the page shows is read:
the text of the headers and a few values (EXPTIME, FRAME, DATE-OBS). Blocking file reads are
for a worker thread; parsing is pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CARD = 80
BLOCK = 2880
MAX_HEADER_BLOCKS = 16  # 576 cards per header are plenty; a longer one is cut there
MAX_HEADERS = 2  # the primary and, for .fits.fz, the compressed image's


@dataclass(frozen=True, slots=True)
class Header:
    cards: tuple[str, ...]  # as written, trailing blanks stripped, END excluded

    def value(self, key: str) -> str | None:
        """The value of `key` as text (quotes removed), None when absent."""
        for card in self.cards:
            if card[:8].rstrip() == key and card[8:10] == "= ":
                return _card_value(card[10:])
        return None


def _card_value(text: str) -> str:
    text = text.strip()
    if text.startswith("'"):
        end = text.find("'", 1)
        while end != -1 and text[end + 1:end + 2] == "'":  # '' is a quote inside the string
            end = text.find("'", end + 2)
        inner = text[1:end] if end != -1 else text[1:]
        return inner.replace("''", "'").rstrip()
    return text.split("/", 1)[0].strip()


def headers(data: bytes) -> list[Header]:
    """The headers at the start of `data` (up to MAX_HEADERS), skipping each HDU's data."""
    found: list[Header] = []
    offset = 0
    while len(found) < MAX_HEADERS and offset + BLOCK <= len(data):
        parsed = _one_header(data, offset)
        if parsed is None:
            break
        header, data_start = parsed
        found.append(header)
        offset = data_start + _data_bytes(header)
    return found


def _one_header(data: bytes, offset: int) -> tuple[Header, int] | None:
    cards: list[str] = []
    for block in range(MAX_HEADER_BLOCKS):
        start = offset + block * BLOCK
        chunk = data[start:start + BLOCK]
        if len(chunk) < BLOCK:
            return None
        for card in _cards(chunk):
            if card[:8].rstrip() == "END":
                return Header(tuple(cards)), start + BLOCK
            cards.append(card.rstrip())
    return None


def _cards(block: bytes) -> Iterator[str]:
    for i in range(0, BLOCK, CARD):
        yield block[i:i + CARD].decode("ascii", errors="replace")


def _data_bytes(header: Header) -> int:
    def number(key: str, default: int) -> int:
        value = header.value(key)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    naxis = number("NAXIS", 0)
    if naxis == 0:
        return 0
    size = abs(number("BITPIX", 8)) // 8
    for axis in range(1, naxis + 1):
        size *= number(f"NAXIS{axis}", 0)
    size = number("GCOUNT", 1) * (number("PCOUNT", 0) + size)
    return -(-size // BLOCK) * BLOCK


def read_headers(path: Path) -> list[Header]:
    """The headers of a FITS file: the primary's, and the first extension's found by seeking
    past the primary data (blocking: call it from a worker thread)."""
    with path.open("rb") as file:
        parsed = _one_header(file.read(MAX_HEADER_BLOCKS * BLOCK), 0)
        if parsed is None:
            return []
        primary, data_start = parsed
        file.seek(data_start + _data_bytes(primary))
        rest = headers(file.read(MAX_HEADER_BLOCKS * BLOCK))[:1]
    return [primary, *rest]


def image_header_value(found: list[Header], key: str) -> str | None:
    """`key` from the image header: the compressed image's when there is one, else primary."""
    for header in reversed(found):
        value = header.value(key)
        if value is not None:
            return value
    return None


def header_text(found: list[Header]) -> str:
    parts = []
    for index, header in enumerate(found):
        if index:
            parts.append(f"--- extension {index} ---")
        parts.extend(header.cards)
    return "\n".join(parts) + "\n"
