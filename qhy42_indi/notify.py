"""systemd's notify protocol, without a systemd library: readiness, watchdog, stopping.

Under `Type=notify` systemd passes $NOTIFY_SOCKET, a Unix datagram socket (a path, or an
abstract name when it starts with "@"), and reads newline-separated `KEY=VALUE` lines from
it: READY=1 once the service serves, WATCHDOG=1 at least every $WATCHDOG_USEC microseconds
(we send at half that) while it is healthy, STOPPING=1 when it begins to stop, STATUS= for
`systemctl status`. Without $NOTIFY_SOCKET every call does nothing, so the daemon runs the
same by hand, under indiserver or in tests. A failed send is logged once, never raised: the
camera does not stop because the service manager is not listening.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines to the service manager (or nowhere, when there is none)."""

    def __init__(self, address: str | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        self._failed = False
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        raw = environ.get("NOTIFY_SOCKET", "")
        if not raw or raw[0] not in "/@":
            return cls(None)
        return cls("\0" + raw[1:] if raw[0] == "@" else raw)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """One datagram with these KEY=VALUE lines; True if the manager got it."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as error:
            if not self._failed:
                log.warning("cannot notify the service manager at %r: %s",
                            self._address.replace("\0", "@"), error)
                self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_period_s(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to send WATCHDOG=1 (half the manager's timeout), or None without a watchdog.
    $WATCHDOG_PID, when set, must be this process (as sd_watchdog_enabled checks)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


async def feed_watchdog(
    notifier: Notifier,
    period_s: float,
    healthy: Callable[[], bool],
    status: Callable[[], str] | None = None,
) -> None:
    """Send WATCHDOG=1 every period while `healthy()` says so. Runs on the event loop, so a
    blocked loop misses its pings and the manager restarts the service, as it should."""
    while True:
        await asyncio.sleep(period_s)
        if healthy():
            lines = ["WATCHDOG=1"]
            if status is not None:
                lines.append(f"STATUS={status()}")
            notifier.send(*lines)
        else:
            log.error("unhealthy: not feeding the watchdog")
