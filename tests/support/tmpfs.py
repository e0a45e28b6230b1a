"""A small disk of a test's own: a tmpfs mounted for the test, so "disk full" is real.

Mounting needs root (CI runs as root); without it, or where mount fails, the test skips
with the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str = "size=2m") -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a real full disk needs root")
    mount_point.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                              capture_output=True, text=True, timeout=30)
    except OSError as error:
        pytest.skip(f"cannot run mount: {error}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        # A process of the test may still hold a file there (a daemon that failed the
        # test): detach lazily then, so no mount outlives the test.
        done = subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True, timeout=30)
