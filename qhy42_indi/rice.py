"""RICE_1 tile coding, the format of fpack and cfitsio's tile-compressed images, compiled by numba.

The bytes are the ones cfitsio's coder writes (tests compare them), at 11-14 ms a 2048x2048 frame
where cfitsio's takes 35-40: bits go out through a 64-bit accumulator a 32-bit word at a time,
stored whether the word is full or not (no branch to mispredict), and a pixel's unary run and
low bits, or two pixels' (four in a quiet block) when they fit, go in as one code instead of
bit by bit. Pixels are the
frame's unsigned words: the signed words a 16-bit tile stores (value - BZERO) differ from them
only in the top bit, which cancels in every difference, so only a tile's first pixel is flipped.

numba compiles on first use (about 2 s for both pixel sizes, then kept in __pycache__ or
numba's user cache) and loads LLVM (about 120 MB more resident memory), so the daemon imports
this module only with its first compressed frame. Without numba (no wheel for 32-bit ARM),
`available()` is False and callers use cfitsio's coder.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qhy42_indi.buffer_pool import BufferPool

try:
    import numba
except ImportError:  # pragma: no cover - where numba has no wheel (32-bit ARM): cfitsio codes
    numba = None  # type: ignore[assignment]


def _compiled(function: Any, inline: bool = False) -> Any:
    """The function compiled on its first call, without the GIL (tiles code on several
    threads); the machine code is cached beside the module."""
    if numba is None:
        return function
    return numba.njit(nogil=True, cache=True, inline="always" if inline else "never")(function)

class _Format:
    """cfitsio's coding constants for one pixel size."""

    def __init__(self, fsbits: int, fsmax: int, first_bias: int) -> None:
        self.fsbits = fsbits  # bits of a block's split code
        self.fsmax = fsmax  # at or past this split a block is stored raw
        self.bbits = 1 << fsbits  # bits of a raw difference
        self.first_bias = first_bias  # what turns the unsigned first pixel into the stored one


_FORMATS = {
    2: _Format(fsbits=4, fsmax=14, first_bias=0x8000),  # int16 stored with BZERO 32768
    1: _Format(fsbits=3, fsmax=6, first_bias=0),  # uint8 stored as is
}


# Up to this split, a block's codes are taken four at a time (they fit in a word); past it
# four rarely fit, and trying costs more than it saves.
QUAD_SPLIT_MAX = 4


def available() -> bool:
    return numba is not None


# The coded words of recent calls, reused once no tile of theirs is held: a fresh array per
# frame would cost a megabyte or two of page faults each time. Several threads code at once.
_WORDS = BufferPool[NDArray[np.uint32]](capacity=8)
_WORDS_LOCK = threading.Lock()


def _words(count: int) -> NDArray[np.uint32]:
    with _WORDS_LOCK:
        return _WORDS.take(count, lambda: np.empty(count, np.uint32))


def encode_tiles(frame: NDArray[Any], tile_rows: int, block_pixels: int) -> list[memoryview]:
    """Each tile of `tile_rows` rows (the last may be shorter) coded in blocks of
    `block_pixels` (fpack's BLOCKSIZE), in order. The tiles are views of one buffer, which
    is used again once none of them is held."""
    if frame.dtype.kind != "u" or frame.dtype.itemsize not in _FORMATS or frame.ndim != 2:
        raise ValueError(f"RICE_1 takes 2-D 8- or 16-bit unsigned frames, not {frame.dtype}")
    if numba is None:
        raise RuntimeError("RICE_1 here needs numba; cfitsio's coder is the fallback")
    fmt = _FORMATS[frame.dtype.itemsize]
    rows, columns = frame.shape
    native = np.uint16 if frame.dtype.itemsize == 2 else np.uint8
    pixels = np.ascontiguousarray(frame, dtype=native).reshape(-1)
    tile_pixels = tile_rows * columns
    tile_count = -(-rows // tile_rows)
    # The worst case is every block raw (a split code and bbits per pixel) plus the first pixel,
    # and each tile starts on a word and may leave one unfinished.
    worst_bits = pixels.size * (fmt.bbits + 1) + tile_count * (fmt.bbits + 64)
    words = _words(worst_bits // 32 + 2 * tile_count + 2)
    starts = np.empty(tile_count, np.int64)
    ends = np.empty(tile_count, np.int64)
    _encode(pixels, tile_pixels, block_pixels, fmt.fsbits, fmt.fsmax, fmt.bbits,
            fmt.first_bias, words, starts, ends)
    stream = memoryview(words.view(np.uint8))  # type: ignore[arg-type]
    return [stream[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]


@functools.partial(_compiled, inline=True)
def _put(acc: Any, pending: Any, word: Any, words: Any, code: Any,
         length: Any) -> tuple[Any, Any, Any]:  # pragma: no cover - runs compiled
    """Append a code of up to 32 bits; a full word goes out. Stored whether full or not (the
    next store overwrites a partial one), so the unpredictable "is it full" is no branch."""
    acc = (acc << np.uint64(length)) | np.uint64(code)
    pending += length
    full = np.int64(pending >= 32)
    shift = (pending - 32) * full
    words[word] = _big_endian((acc >> np.uint64(shift)) & np.uint64(0xFFFFFFFF))
    return acc, pending - 32 * full, word + full


@functools.partial(_compiled, inline=True)
def _big_endian(value: Any) -> Any:  # pragma: no cover - runs compiled
    """A 32-bit value with its bytes reversed (one bswap once compiled): words are stored
    little-endian, the stream is big-endian."""
    return (((value >> np.uint64(24)) & np.uint64(0xFF))
            | ((value >> np.uint64(8)) & np.uint64(0xFF00))
            | ((value << np.uint64(8)) & np.uint64(0xFF0000))
            | ((value << np.uint64(24)) & np.uint64(0xFF000000)))


@_compiled
def _encode(pixels: Any, tile_pixels: int, block: int, fsbits: int, fsmax: int, bbits: int,
            first_bias: int, words: Any, starts: Any, ends: Any) -> None:  # pragma: no cover
    """Code each tile into `words` from a word boundary; its byte range into starts/ends."""
    diffs = np.empty(block, np.int64)
    total = pixels.size
    word: Any = 0
    for tile, tile_start in enumerate(range(0, total, tile_pixels)):
        tile_stop = min(tile_start + tile_pixels, total)
        starts[tile] = 4 * word
        acc = np.uint64(0)  # pending bits, the newest lowest
        pending = np.int64(0)  # how many of acc's bits are pending: under 32 between codes
        last = np.int64(pixels[tile_start])
        first = (last ^ first_bias) & ((1 << bbits) - 1)  # the first pixel as stored
        acc, pending, word = _put(acc, pending, word, words, first, bbits)
        wrap = 1 << bbits
        half = wrap >> 1
        for block_start in range(tile_start, tile_stop, block):
            count = min(block_start + block, tile_stop) - block_start
            pixel_sum: Any = 0
            for j in range(count):
                value = np.int64(pixels[block_start + j])
                # The difference as a signed word, folded to unsigned (0, -1, 1, -2, ... as 0, 1,
                # 2, 3, ...), without branches: noise makes the sign a coin toss.
                diff = ((value - last + half) & (wrap - 1)) - half
                last = value
                folded = (diff << 1) ^ (diff >> 63)
                diffs[j] = folded
                pixel_sum += folded
            # cfitsio's choice of split, in its arithmetic (a double, truncated)
            mean = (pixel_sum - count // 2 - 1) / count
            split_sum = int(mean) >> 1 if mean > 0 else 0
            fs = 0
            while split_sum > 0:
                split_sum >>= 1
                fs += 1
            if fs >= fsmax:  # noise too high to gain: the differences as they are
                acc, pending, word = _put(acc, pending, word, words, fsmax + 1, fsbits)
                for j in range(count):
                    acc, pending, word = _put(acc, pending, word, words, diffs[j], bbits)
            elif fs == 0 and pixel_sum == 0:  # a flat block: only its code
                acc, pending, word = _put(acc, pending, word, words, 0, fsbits)
            else:
                acc, pending, word = _put(acc, pending, word, words, fs + 1, fsbits)
                low_mask = (1 << fs) - 1
                one = 1 << fs
                j = 0
                if fs <= QUAD_SPLIT_MAX:
                    # Quiet blocks: four pixels' codes nearly always fit in 32 bits, as one
                    # (until the first four that do not; the rest go as below).
                    while j + 3 < count:
                        d0 = diffs[j]
                        d1 = diffs[j + 1]
                        d2 = diffs[j + 2]
                        d3 = diffs[j + 3]
                        l1 = (d1 >> fs) + 1 + fs
                        l2 = (d2 >> fs) + 1 + fs
                        l3 = (d3 >> fs) + 1 + fs
                        length = (d0 >> fs) + 1 + fs + l1 + l2 + l3
                        if length > 32:
                            break
                        code = (one | (d0 & low_mask)) << l1 | one | (d1 & low_mask)
                        code = (code << l2 | one | (d2 & low_mask)) << l3 | one | (d3 & low_mask)
                        acc, pending, word = _put(acc, pending, word, words, code, length)
                        j += 4
                while j < count:
                    # `top` zeros, a one and the low fs bits: one code; two when they fit in 32
                    folded = diffs[j]
                    code = one | (folded & low_mask)
                    length = (folded >> fs) + 1 + fs
                    if j + 1 < count:
                        after = diffs[j + 1]
                        after_length = (after >> fs) + 1 + fs
                        if length + after_length <= 32:
                            acc, pending, word = _put(
                                acc, pending, word, words,
                                (code << after_length) | one | (after & low_mask),
                                length + after_length)
                            j += 2
                            continue
                    while length > 32:  # a long run of zeros first (rare)
                        acc, pending, word = _put(acc, pending, word, words, 0, 16)
                        length -= 16
                    acc, pending, word = _put(acc, pending, word, words, code, length)
                    j += 1
        # the last bits, left-aligned in a word: the bytes past them are zero, as cfitsio pads
        if pending > 0:
            words[word] = _big_endian((acc << np.uint64(32 - pending)) & np.uint64(0xFFFFFFFF))
        ends[tile] = 4 * word + (pending + 7) // 8
        word += 1
