"""`--backend sdk` without libqhyccd stops with what to install; `auto` falls back to the
simulator and says so; `auto` with a camera answering serves it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sdk.stub import build_stub
from tests.support.processes import HOST, child_env, daemon_argv, free_port, running


def test_backend_sdk_without_the_library_exits_with_install_advice(tmp_path: Path) -> None:
    env = child_env(tmp_path) | {"QHY42_LIBQHYCCD": str(tmp_path / "missing.so")}
    done = subprocess.run(
        [sys.executable, "-m", "qhy42_indi.cli", "serve", "--host", HOST, "--port",
         str(free_port()), "--no-local-socket", "--backend", "sdk"],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 1
    assert "--backend sdk" in done.stderr and "install QHYCCD's SDK" in done.stderr


def test_backend_auto_without_the_library_serves_the_simulator(tmp_path: Path) -> None:
    port = free_port()
    argv = daemon_argv(port, "--no-local-socket", "--backend", "auto")
    with running(argv, port, tmp_path, {"QHY42_LIBQHYCCD": str(tmp_path / "missing.so")}) as proc:
        log = proc.log()
    assert "libqhyccd is not available" in log and "using the simulator" in log


def test_backend_auto_with_a_camera_answering_serves_it(tmp_path: Path) -> None:
    port = free_port()
    argv = daemon_argv(port, "--no-local-socket", "--backend", "auto")
    with running(argv, port, tmp_path, {"QHY42_LIBQHYCCD": str(build_stub())}) as proc:
        log = proc.log()
    assert "serving QHY42PRO-0123456789abcdef through libqhyccd" in log
