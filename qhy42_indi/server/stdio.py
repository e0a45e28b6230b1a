"""Driver mode: INDI over stdin/stdout, so that `indiserver indi_qhy42_ccd` can run us.

indiserver talks to a local driver through its stdin and stdout (pipes or a socketpair) and
never sends it enableBLOB, so this connection takes every message, BLOBs included. It is never
dropped for lagging: indiserver does its own per-client bounding. End of stdin ends the session.
"""

from __future__ import annotations

import asyncio
import os
import sys

from qhy42_indi.indi.messages import BlobEnable
from qhy42_indi.server.connection import Connection, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.session import run_session


async def run_stdio_session(hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # A duplicate of stdout so closing the transport does not close the interpreter's stdout.
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(), stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    connection = Connection("indiserver", writer, QueueLimits(max_behind_bytes=None))
    connection.interest.add(None, None)
    connection.blob_policy.connection_mode = BlobEnable.ALSO
    await run_session(hub, reader, connection)
