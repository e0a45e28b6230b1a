"""Driver mode: INDI over stdin/stdout, so that `indiserver indi_qhy42_ccd` can run us.

indiserver talks to a local driver through its stdin and stdout: one socketpair when it is
built with shared-memory BLOBs (Debian's is: stdin and stdout are the same socket), two pipes
otherwise. It never sends a driver enableBLOB, so this connection takes every message, BLOBs
included. It is never dropped for lagging: indiserver bounds its own clients. End of stdin
ends the session.
"""

from __future__ import annotations

import os
import socket
import stat
import sys

from qhy42_indi.indi.messages import BlobEnable
from qhy42_indi.server.connection import Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import ByteStream, PipeStream, SocketStream


async def run_stdio_session(hub: Hub) -> None:
    stream = _open_stdio()
    connection = Connection("indiserver", stream, QueueLimits(max_behind_bytes=None))
    connection.interest.add(None, None)
    connection.blob_policy.connection_mode = BlobEnable.ALSO
    await run_session(hub, stream, connection)


def _open_stdio() -> ByteStream:
    # Duplicates, so closing the stream leaves the interpreter's own stdin/stdout alone.
    stdin_fd = sys.stdin.fileno()
    if stat.S_ISSOCK(os.fstat(stdin_fd).st_mode):
        return SocketStream(socket.socket(fileno=os.dup(stdin_fd)))
    return PipeStream(os.dup(stdin_fd), os.dup(sys.stdout.fileno()))
