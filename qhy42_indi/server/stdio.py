"""Driver mode: INDI over stdin/stdout, so that `indiserver indi_qhy42_ccd` can run us.

indiserver talks to a local driver through its stdin and stdout: one socketpair when it is
built with shared-memory BLOBs (Debian's is: stdin and stdout are the same socket), two pipes
otherwise. It never sends a driver enableBLOB, so this connection takes every message, BLOBs
included. End of stdin ends the session.

How far behind indiserver may fall. indiserver keeps reading its drivers whatever its clients
do (its event loop always watches a driver's output; a slow client is its own problem, dropped
past -d and -m), so our output backs up only when indiserver itself stops: stopped, swapping,
stuck. Our queue must still have a bound then, and it is indiserver's own: -d and -m, read from
its command line when it is our parent (defaults 5 and 128 MiB, as in its usage), so the
memory a user budgeted for one lagging client is what a lagging indiserver can cost us.
- Past -d behind, stream frames (`.stream` BLOBs) are dropped, as indiserver drops them for a
  client that far behind: a live frame that old is stale anyway (-d 0: never, as there).
- Past -m, where indiserver would disconnect a client, we drop every BLOB, science frames too,
  and say so at ERROR (once a minute while it lasts, and when indiserver reads again), but stay
  connected: a driver whose link closes quits, and quitting ends the cooling, the running
  sequence and the night; a frame lost is the smaller loss. Other messages (property updates,
  small) queue on for OTHER_HEADROOM_MIB more, so the clients' picture of each property stays
  right; past that they are dropped too, so the bound holds whatever happens.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from qhy42_indi.indi.messages import BlobEnable
from qhy42_indi.server.connection import MIB, Connection, Overflow, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import ByteStream, PipeStream, SocketStream

log = logging.getLogger(__name__)

# indiserver's defaults (Constants.hpp, `indiserver -h`): -d 5, -m 128, in MiB.
INDISERVER_DROP_STREAM_MIB = 5
INDISERVER_MAX_BEHIND_MIB = 128
OTHER_HEADROOM_MIB = 16
# indiserver's options that take a value (its main(): l m p d u f r); -v takes none.
_OPTIONS_WITH_VALUE = frozenset("lmpdufr")
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


async def run_stdio_session(hub: Hub) -> None:
    stream = _open_stdio()
    limits = stdio_limits(_parent_argv())
    log.info("output to indiserver bounded: stream frames dropped past %s, every frame past "
             "%d MiB behind (indiserver -d, -m)", _mib(limits.drop_stream_bytes),
             limits.max_behind_bytes // MIB)
    connection = Connection("indiserver", stream, limits, upstream=True)
    connection.interest.add(None, None)
    connection.blob_policy.connection_mode = BlobEnable.ALSO
    await run_session(hub, stream, connection)


def stdio_limits(parent_argv: Sequence[str] | None) -> QueueLimits:
    """The bounds of our output queue: those of the indiserver whose command line this is
    (None, or another program: indiserver's defaults)."""
    drop_mib, max_mib = INDISERVER_DROP_STREAM_MIB, INDISERVER_MAX_BEHIND_MIB
    if parent_argv and Path(parent_argv[0]).name == "indiserver":
        drop_mib, max_mib = indiserver_limits_mib(parent_argv[1:])
    return QueueLimits(
        drop_stream_bytes=drop_mib * MIB or None,
        max_behind_bytes=max_mib * MIB,
        overflow=Overflow.DROP_BLOBS,
        other_headroom_bytes=OTHER_HEADROOM_MIB * MIB,
    )


def indiserver_limits_mib(args: Sequence[str]) -> tuple[int, int]:
    """(-d, -m) as indiserver reads its arguments: options up to the first driver, letters
    may be grouped (`-vvm 64`), values are atoi'd. A -m that is not a positive number keeps
    the default (indiserver would drop every client that has anything queued)."""
    drop_mib, max_mib = INDISERVER_DROP_STREAM_MIB, INDISERVER_MAX_BEHIND_MIB
    index = 0
    while index < len(args) and args[index].startswith("-"):
        letters = args[index][1:]
        index += 1
        for letter in letters:
            if letter not in _OPTIONS_WITH_VALUE:
                continue
            value = _atoi(args[index]) if index < len(args) else 0
            index += 1
            if letter == "d":
                drop_mib = max(0, value)
            elif letter == "m" and value > 0:
                max_mib = value
    return drop_mib, max_mib


def _atoi(text: str) -> int:
    match = _LEADING_INT.match(text)
    return int(match.group(1)) if match else 0


def _parent_argv() -> list[str] | None:
    """The command line of the process that started us (Linux /proc), if it can be read."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg] or None


def _mib(limit: int | None) -> str:
    return "never" if limit is None else f"{limit // MIB} MiB behind"


def _open_stdio() -> ByteStream:
    # Duplicates, so closing the stream leaves the interpreter's own stdin/stdout alone.
    stdin_fd = sys.stdin.fileno()
    if stat.S_ISSOCK(os.fstat(stdin_fd).st_mode):
        return SocketStream(socket.socket(fileno=os.dup(stdin_fd)))
    return PipeStream(os.dup(stdin_fd), os.dup(sys.stdout.fileno()))
