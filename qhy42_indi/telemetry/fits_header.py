"""A few keyword values from the start of a FITS file, without astropy and without a copy.

The frame event tells what a frame is (exposure, start time, frame type), and the truth about
that is the frame's own header, which the camera already wrote. Reading it back costs a scan
of 80-byte cards in the first 2880-byte blocks: microseconds. Tile-compressed files
(.fits.fz) carry the image keywords in the second header, so a few blocks are scanned, not
only the first header. Zlib-compressed payloads (.z) are not FITS until inflated: nothing is
found in them, and the event goes without those fields.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

BLOCK_BYTES = 2880
CARD_BYTES = 80
MAX_BLOCKS = 8  # two headers of up to 100 cards each, with room to spare

HeaderValue = str | int | float | bool


def header_values(
    data: bytes | memoryview, keywords: Collection[str], max_blocks: int = MAX_BLOCKS
) -> dict[str, HeaderValue]:
    """The first value of each wanted keyword found in the first max_blocks blocks."""
    head = bytes(memoryview(data)[: max_blocks * BLOCK_BYTES])
    if not head.startswith(b"SIMPLE  ="):
        return {}
    wanted = set(keywords)
    found: dict[str, HeaderValue] = {}
    for start in range(0, len(head) - CARD_BYTES + 1, CARD_BYTES):
        card = head[start : start + CARD_BYTES].decode("ascii", errors="replace")
        keyword = card[:8].rstrip()
        if keyword in wanted and keyword not in found and card[8:10] == "= ":
            value = _parse_value(card[10:])
            if value is not None:
                found[keyword] = value
                if len(found) == len(wanted):
                    break
    return found


def file_header_values(
    path: Path, keywords: Collection[str]
) -> tuple[dict[str, HeaderValue], int]:
    """Blocking: the wanted keywords of a saved FITS file, and its size in bytes."""
    with path.open("rb") as file:
        head = file.read(MAX_BLOCKS * BLOCK_BYTES)
        size = file.seek(0, 2)
    return header_values(head, keywords), size


def _parse_value(field: str) -> HeaderValue | None:
    text = field.strip()
    if text.startswith("'"):
        # A string: '' inside is a quote; trailing blanks are not significant.
        chars, index = [], 1
        while index < len(text):
            if text[index] == "'":
                if text[index + 1 : index + 2] == "'":
                    chars.append("'")
                    index += 2
                    continue
                return "".join(chars).rstrip()
            chars.append(text[index])
            index += 1
        return None
    text = text.split("/", 1)[0].strip()
    if text in ("T", "F"):
        return text == "T"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text.replace("D", "E"))
    except ValueError:
        return None
