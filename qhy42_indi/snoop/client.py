"""The snoop client: an asyncio INDI client that feeds SnoopedValues from another INDI server.

When the daemon runs standalone there is no indiserver to route the mount's, focuser's and
filter wheel's messages to the camera, so this client connects to the server that has those
devices and asks for exactly what INDI::CCD snoops: one
`<getProperties version="1.7" device="D" name="P"/>` per wanted pair, and
`<enableBLOB device="D">Never</enableBLOB>` per device so no image ever comes our way. It
asks again after every (re)connection and whenever the wanted pairs change, and feeds every
def, set and delProperty it receives to the SnoopedValues. Pings are answered.

It never raises into its owner and never blocks the loop: reads are chunked through the
sans-IO parser, a message over `max_message_bytes` (a BLOB we did not ask for) is skipped
by the parser without being held, writes are a few hundred bytes. When the server is absent
or goes away, the values it gave are forgotten (so no stale cards) and the client retries
with exponential back-off (1 s doubling up to 30 s by default), logging each change of
state once, not each retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import (
    BlobEnable,
    DefVector,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    ParseProblem,
    PingReply,
    PingRequest,
    SetVector,
)
from qhy42_indi.indi.parser import IndiParser, ParseResult
from qhy42_indi.snoop.state import SnoopedValues

log = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 64 * 1024
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024
_CLOSE_TIMEOUT_S: Final = 2.0


class SnoopClient:
    """Keeps `values` fed from the INDI server at host:port until stopped.

    `start()` needs a running event loop; `stop()` ends the client and closes the
    connection. Both are safe to call more than once."""

    def __init__(self, host: str, port: int, values: SnoopedValues, *,
                 min_retry_s: float = 1.0, max_retry_s: float = 30.0,
                 connect_timeout_s: float = 10.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if min_retry_s <= 0 or max_retry_s < min_retry_s:
            raise ValueError("need 0 < min_retry_s <= max_retry_s")
        self._host = host
        self._port = port
        self._values = values
        self._min_retry_s = min_retry_s
        self._max_retry_s = max_retry_s
        self._connect_timeout_s = connect_timeout_s
        self._max_message_bytes = max_message_bytes
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._connections = 0
        self._answered = False
        # The pause between attempts; tests put a recorder here.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def connected(self) -> bool:
        """True while a connection to the server is open."""
        return self._writer is not None

    @property
    def connections(self) -> int:
        """How many times a connection was made (a reconnection shows as an increase)."""
        return self._connections

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        if self._remove_listener is None:
            self._remove_listener = self._values.add_wanted_listener(self._wanted_changed)
        self._task = loop.create_task(self._run(), name=f"snoop client {self.address}")

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---- the connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._min_retry_s
        # Each kind of trouble is logged when it starts, not at every retry; an answering
        # server ends the trouble.
        unreachable_logged = hang_up_logged = False
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self._host, self._port, limit=READ_CHUNK_BYTES),
                    self._connect_timeout_s)
            except Exception as error:  # refused, unresolvable, timed out: all mean "not now"
                if not unreachable_logged:
                    log.warning("snoop: cannot reach INDI server %s (%s); retrying with "
                                "back-off up to %g s", self.address,
                                _describe(error), self._max_retry_s)
                    unreachable_logged = True
                await self._sleep(delay)
                delay = min(delay * 2, self._max_retry_s)
                continue
            self._connections += 1
            self._answered = False
            try:
                await self._session(reader, writer)
                reason = "the server closed the connection"
            except (OSError, EOFError) as error:
                reason = _describe(error)
            except Exception as error:  # a bug here must not end snooping for good
                log.exception("snoop: unexpected failure on the connection to %s", self.address)
                reason = _describe(error)
            finally:
                self._writer = None
                self._values.clear()
                await _close(writer)
            if self._answered:
                unreachable_logged = hang_up_logged = False
                log.warning("snoop: lost INDI server %s (%s); reconnecting", self.address,
                            reason)
                delay = self._min_retry_s
            else:
                # Accepted and dropped without a word (a dying or overloaded server): keep
                # backing off.
                if not hang_up_logged:
                    log.warning("snoop: INDI server %s hangs up without answering (%s); "
                                "retrying with back-off up to %g s", self.address, reason,
                                self._max_retry_s)
                    hang_up_logged = True
                delay = min(delay * 2, self._max_retry_s)
            await self._sleep(delay)

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        """Ask, then read until the server goes away."""
        parser = IndiParser(max_message_bytes=self._max_message_bytes)
        self._writer = writer
        self._send_requests(writer)
        await writer.drain()
        while data := await reader.read(READ_CHUNK_BYTES):
            if not self._answered:
                self._answered = True
                log.info("snoop: connected to INDI server %s", self.address)
            for item in parser.feed(data):
                self._dispatch(item, writer)

    def _dispatch(self, item: ParseResult, writer: asyncio.StreamWriter) -> None:
        match item:
            case DefVector() | SetVector() | DelProperty():
                self._values.feed(item)
            case PingRequest():
                writer.write(encode(PingReply(item.uid)))
            case ParseProblem():
                log.debug("snoop: skipped input from %s: %s", self.address, item.reason)
            case _:
                pass

    # ---- requests ---------------------------------------------------------------------------

    def _wanted_changed(self) -> None:
        writer = self._writer
        if writer is None:
            return  # asked for on the next connection
        try:
            self._send_requests(writer)
        except Exception:  # called from set_devices: never raise into it
            log.exception("snoop: could not ask %s for the new devices", self.address)

    def _send_requests(self, writer: asyncio.StreamWriter) -> None:
        if writer.is_closing():
            return
        wanted = self._values.wanted()
        devices = list(dict.fromkeys(device for device, _ in wanted))
        messages: list[IndiMessage] = [GetProperties(device=device, name=name)
                                       for device, name in wanted]
        messages += [EnableBlob(device=device, mode=BlobEnable.NEVER) for device in devices]
        if messages:
            writer.write(b"".join(encode(message) for message in messages))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT_S)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
