"""A client session over any byte stream: read, parse, hand to the hub; write from the queue.

TCP, Unix sockets and stdio all end up here, so every transport behaves the same: garbage is
logged and skipped without closing the connection (as indiserver does), and end of input
closes it. A failure in a device is the hub's to report (hub.py); anything else that goes
wrong here ends this session alone, logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging

from qhy42_indi.indi.messages import ParseProblem
from qhy42_indi.indi.parser import IndiParser
from qhy42_indi.server.connection import Connection
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.streams import ByteStream
from qhy42_indi.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# What one read may return; indiserver reads 48 KiB at a time.
READ_BYTES = 64 * 1024
FLUSH_AT_EOF_S = 5.0


async def run_session(hub: Hub, stream: ByteStream, connection: Connection) -> None:
    """Serve one client until it disconnects or is dropped."""
    parser = IndiParser()
    hub.attach(connection)
    writer_task = asyncio.create_task(connection.run_writer(), name=f"writer {connection.peer}")
    log.info("client %s connected", connection.peer)
    try:
        while not connection.closed:
            data = await stream.recv(READ_BYTES)
            if not data:
                # End of input: the replies already queued still go out (bounded), so
                # `echo '<getProperties .../>' | indi_qhy42_ccd` prints the definitions.
                await connection.flush(FLUSH_AT_EOF_S)
                break
            for item in parser.feed(data):
                if isinstance(item, ParseProblem):
                    log.warning("client %s: skipped input: %s %r", connection.peer,
                                item.reason, item.excerpt)
                    continue
                await hub.handle(connection, item)
    except OSError as error:
        log.info("client %s: read failed: %s", connection.peer, error)
    except Exception:
        log.exception("client %s: session failed: closing it", connection.peer)
    finally:
        hub.detach(connection)
        await cancel_and_wait(writer_task)
        log.info("client %s disconnected", connection.peer)
