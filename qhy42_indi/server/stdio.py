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

Frames as shared memory. When stdin is indiserver's socketpair, a frame goes as libindi's
drivers send it (indidriverio.c; observed with strace on indi-bin 1.9.9): the setBLOBVector
with `<oneBLOB name size format len attached="true"/>` and no payload, the frame's bytes in a
memfd passed with the message's first bytes (SCM_RIGHTS), so indiserver maps it instead of
decoding 11 MB of base64 per frame. It maps the whole descriptor read-only, hands the same
descriptor on to its local (-u) clients, base64-encodes it for TCP clients, and closes it
when every client has had the frame. Ours is the sealed memfd local.py makes (libindi's is
not sealed; indiserver only reads it, so sealing changes nothing for it). Each such message
is followed by `<pingRequest uid="SetBLOB/N"/>`, and, as libindi's IDSetBLOBVA does, the next
BLOB waits for indiserver's `<pingReply uid="SetBLOB/N"/>` (indiserver answers as soon as it
has taken in the message), so at most one frame is in flight towards it; what queues behind
the wait is bounded as above. An indiserver that never answers is waited for
BLOB_ACK_TIMEOUT_S once, then not any more. Over pipes (an indiserver built without shared
memory) frames go as base64, unpaced, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from qhy42_indi.indi.encoder import encode_chunks
from qhy42_indi.indi.messages import BlobEnable, PingRequest
from qhy42_indi.server.connection import MIB, Connection, Outgoing, Overflow, QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.local import LocalConnection, LocalStream
from qhy42_indi.server.session import run_session
from qhy42_indi.server.streams import PipeStream

log = logging.getLogger(__name__)

# indiserver's defaults (Constants.hpp, `indiserver -h`): -d 5, -m 128, in MiB.
INDISERVER_DROP_STREAM_MIB = 5
INDISERVER_MAX_BEHIND_MIB = 128
OTHER_HEADROOM_MIB = 16
# indiserver's options that take a value (its main(): l m p d u f r); -v takes none.
_OPTIONS_WITH_VALUE = frozenset("lmpdufr")
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")
# libindi's BLOB_PING_PATTERN (indidriver.c): the uid of the ping that follows each BLOB.
BLOB_PING_PREFIX = "SetBLOB/"
# How long one BLOB waits for indiserver to answer the previous one's ping before we take it
# that this indiserver does not answer (libindi would wait for ever).
BLOB_ACK_TIMEOUT_S = 10.0


async def run_stdio_session(hub: Hub) -> None:
    limits = stdio_limits(_parent_argv())
    log.info("output to indiserver bounded: stream frames dropped past %s, every frame past "
             "%d MiB behind (indiserver -d, -m)", _mib(limits.drop_stream_bytes),
             limits.max_behind_bytes // MIB)
    stdin_fd = sys.stdin.fileno()
    # Duplicates, so closing the stream leaves the interpreter's own stdin/stdout alone.
    if stat.S_ISSOCK(os.fstat(stdin_fd).st_mode):
        stream = LocalStream(socket.socket(fileno=os.dup(stdin_fd)))
        link = IndiserverLink(stream, limits)
        _take_everything(link)
        await run_session(hub, stream, link)
        return
    pipes = PipeStream(os.dup(stdin_fd), os.dup(sys.stdout.fileno()))
    connection = Connection("indiserver", pipes, limits, upstream=True)
    _take_everything(connection)
    await run_session(hub, pipes, connection)


def _take_everything(connection: Connection) -> None:
    # indiserver never sends a driver enableBLOB: this link takes every message.
    connection.interest.add(None, None)
    connection.blob_policy.connection_mode = BlobEnable.ALSO


class IndiserverLink(LocalConnection):
    """Our link to indiserver over its socketpair: BLOBs as shared memory, paced by pings."""

    def __init__(self, stream: LocalStream, limits: QueueLimits) -> None:
        super().__init__("indiserver", stream, limits)
        self.upstream = True
        self.frames_attached = 0
        self.frames_inline = 0
        self._socket = stream
        self._pings_sent = 0
        self._awaited: str | None = None
        self._acknowledged = asyncio.Event()
        self._acknowledged.set()
        self._pacing = True

    def bytes_behind(self) -> int:
        # indiserver takes a frame off the socket before it answers its ping, so the frames
        # this link has sent are never pinned in the socket for long: only the queue counts.
        return Connection.bytes_behind(self)

    def ping_replied(self, uid: str) -> bool:
        """Whether this pingReply was an answer to one of our BLOB pings (then it is ours)."""
        if not uid.startswith(BLOB_PING_PREFIX):
            return False
        if uid == self._awaited:
            self._acknowledged.set()
        return True

    async def _write(self, out: Outgoing) -> None:
        if not out.is_blob:
            await super()._write(out)
            return
        await self._previous_blob_taken()
        form = await self._attached_form(out)
        chunks = form.chunks if form is not None else await out.inline_chunks()
        self._pings_sent += 1
        uid = f"{BLOB_PING_PREFIX}{self._pings_sent}"
        ping = encode_chunks(PingRequest(uid=uid))
        self._awaited = uid
        self._acknowledged.clear()
        fds = form.buffers.fds if form is not None else ()
        await self._socket.send_with_fds((*chunks, *ping), fds)
        if form is None:
            self.frames_inline += 1
            return
        if not self.frames_attached:
            log.info("frames go to indiserver as shared memory (memfd attachments, the next "
                     "one sent when indiserver has answered the ping after the last)")
        self.frames_attached += 1

    async def _previous_blob_taken(self) -> None:
        if not self._pacing or self._acknowledged.is_set():
            return
        try:
            async with asyncio.timeout(BLOB_ACK_TIMEOUT_S):
                await self._acknowledged.wait()
        except TimeoutError:
            log.warning("indiserver has not answered <pingRequest uid=%r/> in %g s: frames "
                        "go on without waiting for it", self._awaited, BLOB_ACK_TIMEOUT_S)
            self._pacing = False


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
