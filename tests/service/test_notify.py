"""sd_notify as systemd sees it: a datagram socket the test listens on stands in for systemd."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhy42_indi.notify import Notifier, feed_watchdog, watchdog_period_s
from tests.support.processes import HOST, child_env, daemon_argv, free_port, stop

WAIT_S = 20.0


@contextlib.contextmanager
def listening(abstract: bool = True) -> Iterator[tuple[socket.socket, str]]:
    """A notify socket, and the $NOTIFY_SOCKET value that names it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(WAIT_S)
    with contextlib.ExitStack() as stack:
        if abstract:
            name = f"qhy42-notify-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            value = "@" + name
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="qhy42-n-"))
            value = os.path.join(directory, "notify")
            sock.bind(value)
        try:
            yield sock, value
        finally:
            sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_comes_once_the_port_listens_then_watchdog_pings_then_stopping(
    tmp_path: Path,
) -> None:
    port = free_port()
    with listening() as (sock, address), open(tmp_path / "daemon.log", "wb") as log:
        env = child_env(tmp_path) | {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "300000",
                                     "WATCHDOG_PID": ""}
        process = subprocess.Popen(daemon_argv(port, "--no-local-socket"), env=env,
                                   stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            ready = receive(sock)
            assert ready == ["READY=1", f"STATUS=serving INDI on {HOST}:{port}"]
            # READY means listening: the first connection attempt succeeds.
            socket.create_connection((HOST, port), timeout=5).close()
            for _ in range(2):
                ping = receive(sock)
                assert ping[0] == "WATCHDOG=1"
                assert ping[1].startswith(f"STATUS=serving INDI on {HOST}:{port}, ")
            process.send_signal(signal.SIGTERM)
            while (lines := receive(sock))[0] == "WATCHDOG=1":
                pass
            assert lines == ["STOPPING=1"]
            assert process.wait(15) == 0
        finally:
            stop(process)


def test_a_path_socket_works_too_and_nothing_is_sent_without_one() -> None:
    with listening(abstract=False) as (sock, address):
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": address})
        assert notifier.enabled and notifier.send("READY=1", "STATUS=x")
        assert receive(sock) == ["READY=1", "STATUS=x"]
        notifier.close()
    for environ in ({}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative/path"}):
        quiet = Notifier.from_environment(environ)
        assert not quiet.enabled and not quiet.send("READY=1")


def test_a_manager_that_is_not_listening_is_logged_once_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": f"@nobody-{uuid.uuid4().hex}"})
    with caplog.at_level(logging.WARNING):
        assert not notifier.send("READY=1")
        assert not notifier.send("WATCHDOG=1")
    assert len([r for r in caplog.records if "cannot notify" in r.message]) == 1
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "period_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),  # WatchdogSec=30
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_period_is_half_the_managers_timeout_for_this_process_only(
    environ: dict[str, str], period_s: float | None
) -> None:
    assert watchdog_period_s(environ) == period_s


async def test_an_unhealthy_daemon_does_not_feed_the_watchdog() -> None:
    with listening() as (sock, address):
        sock.setblocking(False)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": address})
        checked = asyncio.Event()
        checks = 0

        def unhealthy() -> bool:
            nonlocal checks
            checks += 1
            if checks == 3:
                checked.set()
            return False

        task = asyncio.create_task(feed_watchdog(notifier, 0.01, unhealthy))
        async with asyncio.timeout(WAIT_S):
            await checked.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
        # Healthy again: fed, with the status.
        task = asyncio.create_task(feed_watchdog(notifier, 0.01, lambda: True, lambda: "ok"))
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(WAIT_S):
                data = await loop.sock_recv(sock, 4096)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert data == b"WATCHDOG=1\nSTATUS=ok"
        notifier.close()
