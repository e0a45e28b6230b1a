"""Start and stop the real peers of the interop tests: our daemon, indiserver, the INDI tools.

Everything listens on 127.0.0.1 and on free ports, is bounded in time, and is stopped by the
context managers even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {HOST}:{port} within {timeout_s} s")


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("INDIDEV", None)
    return env


def require(tool: str) -> str:
    path = shutil.which(tool, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        raise RuntimeError(f"{tool} is not installed (Debian package indi-bin): run `make test`")
    return path


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    home: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    return process.returncode


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    port: int,
    home: Path | None = None,
    env_extra: dict[str, str] | None = None,
) -> Iterator[Running]:
    with contextlib.ExitStack() as stack:
        if home is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qhy42-home-")))
        log_path = home / f"process-{port}.log"
        log_file = stack.enter_context(open(log_path, "wb"))
        env = child_env(home) | (env_extra or {})
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_for_port(port, process)
            yield Running(process, port, home, log_path)
        finally:
            stop(process)


def daemon_argv(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qhy42_indi.cli", "serve", "--host", HOST, "--port",
            str(port), *extra]


@contextlib.contextmanager
def daemon(*extra: str, home: Path | None = None) -> Iterator[Running]:
    """Our daemon on a free port. It serves no local socket unless the test names one, so
    daemons of concurrent tests do not compete for @/tmp/indiserver."""
    if not any(arg.startswith("--local-socket") for arg in extra):
        extra = (*extra, "--no-local-socket")
    port = free_port()
    with running(daemon_argv(port, *extra), port, home) as proc:
        yield proc


@contextlib.contextmanager
def indiserver(*drivers: str, home: Path | None = None) -> Iterator[Running]:
    port = free_port()
    with contextlib.ExitStack() as stack:
        sockdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qhy42-sock-")))
        argv = [require("indiserver"), "-v", "-p", str(port), "-u", str(sockdir / "indiserver"),
                *drivers]
        with running(argv, port, home) as proc:
            yield proc


def indi_tool(tool: str, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require(tool), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
