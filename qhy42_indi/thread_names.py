"""The daemon's threads under their own names in the operating system, so that `top -H`,
`htop`, `ps -L` and /proc show which part of the daemon spends the CPU: the event loop (the
process's own name), `qhy42-sim_0` (the simulator's frames), `qhy42-work_N` (FITS, base64,
saves), `fits-rice_N`, `hdr-merge_N`, `fits-memfd_0`, `qhy42-sdk` (the vendor SDK's calls).

Python 3.11 names a thread for itself only; the kernel's name (15 bytes, Linux) is set here.
`named_executor` makes a thread pool whose threads take their Python names at start.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_PR_SET_NAME = 15
_TASK_COMM_BYTES = 15  # the kernel's limit, without the terminating zero


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_prctl = _libc_prctl()


def name_this_thread(name: str | None = None) -> None:
    """Give the calling thread `name` (its Python name by default) in the OS, cut to what the
    kernel keeps. Does nothing where that cannot be done, and never raises: a pool whose
    initializer raises is broken for good."""
    if _prctl is None:
        return
    text = (name or threading.current_thread().name).encode(errors="replace")
    with contextlib.suppress(ctypes.ArgumentError, OSError):
        _prctl(_PR_SET_NAME, ctypes.c_char_p(text[:_TASK_COMM_BYTES]), 0, 0, 0)


def named_executor(prefix: str, max_workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads are `<prefix>_<n>` in Python and in the OS."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=prefix,
                              initializer=name_this_thread)
