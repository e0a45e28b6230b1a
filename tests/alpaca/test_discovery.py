"""Discovery announces the port the server listens on, also when it was left to the system
(alpaca.port = 0). Datagrams go to 127.0.0.1 only."""

from __future__ import annotations

import re
import time

import requests

from tests.alpaca.support import HTTP_TIMEOUT_S, QUIET_ENV, TIME_SCALE, discover, free_udp_port
from tests.support.processes import HOST, daemon_argv, free_port, running

LOG_WAIT_S = 20.0


def test_a_free_port_chosen_by_the_system_is_the_one_announced() -> None:
    indi_port, discovery_port = free_port(), free_udp_port()
    argv = daemon_argv(indi_port, "--no-local-socket", "--alpaca", "--http-host", HOST,
                       "--alpaca-port", "0", "--alpaca-discovery-port", str(discovery_port),
                       "--time-scale", str(TIME_SCALE))
    with running(argv, indi_port, None, env_extra=QUIET_ENV) as process:
        deadline = time.monotonic() + LOG_WAIT_S
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(r"HTTP on 127\.0\.0\.1:(\d+): Alpaca", process.log())
            time.sleep(0.05)
        assert found is not None, process.log()
        port = int(found.group(1))
        assert port != 0
        assert discover(discovery_port) == {"AlpacaPort": port}
        reply = requests.get(f"http://{HOST}:{port}/management/apiversions",
                             timeout=HTTP_TIMEOUT_S)
        assert reply.json()["Value"] == [1]
