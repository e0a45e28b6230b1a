"""The daemon with Alpaca on, for the Alpaca tests: free ports on 127.0.0.1, the simulator
sped up, and the few raw HTTP and UDP helpers that alpyca does not offer."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from qhy42_indi.config import CONFIG_ENV
from tests.support.processes import HOST, Running, daemon_argv, free_port, running, wait_for_port

TIME_SCALE = 20.0  # model seconds per wall second: a 2 s exposure takes 0.1 s
HTTP_TIMEOUT_S = 10.0
# What tests/conftest.py sets for every test, set here for daemons that outlive one test.
QUIET_ENV = {CONFIG_ENV: "", "QHY42_LIBQHYCCD": "/nonexistent/libqhyccd.so"}


@dataclass
class AlpacaDaemon:
    process: Running
    alpaca_port: int
    discovery_port: int

    @property
    def indi_port(self) -> int:
        return self.process.port

    @property
    def address(self) -> str:
        return f"{HOST}:{self.alpaca_port}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def camera_url(self, member: str, number: int = 0) -> str:
        return self.url(f"/api/v1/camera/{number}/{member}")


@contextlib.contextmanager
def alpaca_daemon(*extra: str, home: Path | None = None) -> Iterator[AlpacaDaemon]:
    indi_port, alpaca_port, discovery_port = free_port(), free_port(), free_udp_port()
    argv = daemon_argv(indi_port, "--no-local-socket", "--alpaca", "--http-host", HOST,
                       "--alpaca-port", str(alpaca_port),
                       "--alpaca-discovery-port", str(discovery_port),
                       "--time-scale", str(TIME_SCALE), "--sim-instant-readout", *extra)
    with running(argv, indi_port, home, env_extra=QUIET_ENV) as process:
        wait_for_port(alpaca_port, process.process)
        yield AlpacaDaemon(process, alpaca_port, discovery_port)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def discover(port: int, message: bytes = b"alpacadiscovery1", timeout_s: float = 2.0
             ) -> dict[str, int] | None:
    """Send one discovery datagram to 127.0.0.1 (never a broadcast); the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(message, (HOST, port))
        try:
            data, _ = sock.recvfrom(1024)
        except TimeoutError:
            return None
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


def get(server: AlpacaDaemon, member: str, **params: str) -> requests.Response:
    return requests.get(server.camera_url(member), params=params, timeout=HTTP_TIMEOUT_S)


def put(server: AlpacaDaemon, member: str, **form: str) -> requests.Response:
    return requests.put(server.camera_url(member), data=form, timeout=HTTP_TIMEOUT_S)
