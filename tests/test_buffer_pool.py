"""The frame-buffer pool: a buffer comes back only once nothing else refers to it."""

from __future__ import annotations

import numpy as np

from qhy42_indi.buffer_pool import BufferPool, PixelPool


def test_a_released_buffer_is_reused() -> None:
    pool = PixelPool(capacity=2)
    first = pool.take((4, 5), 16)
    first_id = id(first)
    del first
    again = pool.take((4, 5), 16)
    assert id(again) == first_id
    assert again.shape == (4, 5) and again.dtype == np.uint16


def test_a_held_buffer_is_never_handed_out_again() -> None:
    pool = PixelPool(capacity=4)
    held = pool.take((8, 8), 16)
    held[...] = 7
    view = pool.take((8, 8), 16)[2:4]  # only a view of this one is kept
    exported = memoryview(pool.take((8, 8), 16))  # and of this one a memoryview
    later = [pool.take((8, 8), 16) for _ in range(3)]
    owners = {id(held), id(view.base), id(exported.obj)}
    assert len(owners) == 3
    assert not owners & {id(buffer) for buffer in later}
    assert len({id(buffer) for buffer in later}) == 3
    assert (held == 7).all()


def test_another_shape_or_depth_gets_its_own_buffer() -> None:
    pool = PixelPool(capacity=1)
    wide = pool.take((2, 6), 16)
    narrow = pool.take((2, 6), 8)
    assert narrow.dtype == np.uint8 and wide.dtype == np.uint16
    del wide
    assert pool.take((3, 3), 16).shape == (3, 3)  # the unheld buffer makes room


def test_past_capacity_buffers_are_not_pooled() -> None:
    pool: BufferPool[bytearray] = BufferPool(capacity=1)
    kept = pool.take(4, lambda: bytearray(4))
    extra = pool.take(4, lambda: bytearray(4))
    assert extra is not kept
    made: list[bytearray] = []
    # the pooled one is held: a new buffer each time
    assert pool.take(4, lambda: made.append(bytearray(4)) or made[-1]) is made[-1]
    kept_id = id(kept)
    del kept
    assert id(pool.take(4, lambda: bytearray(4))) == kept_id
