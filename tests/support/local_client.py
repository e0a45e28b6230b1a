"""A client on the local socket (server/local.py) for tests, reading as libindiclient does.

It connects to the abstract socket, reads with recvmsg, keeps the descriptors that come with
the bytes, and hands each setBLOBVector over with the descriptors of its `attached="true"`
members. Blocking: async tests call it through asyncio.to_thread.
"""

from __future__ import annotations

import array
import mmap
import os
import socket
from dataclasses import dataclass, field

WAIT_S = 10.0


@dataclass
class Received:
    xml: str
    fds: list[int]


@dataclass
class LocalClient:
    """A blocking client on the abstract socket; run its calls through asyncio.to_thread."""

    sock: socket.socket
    buffer: bytes = b""
    fds: list[int] = field(default_factory=list)  # received, not yet matched to a message
    owned: list[int] = field(default_factory=list)  # every descriptor received: closed at close

    @classmethod
    def connect(cls, path: str, timeout_s: float = WAIT_S) -> LocalClient:
        """Connect to the abstract socket @path; each read waits at most timeout_s."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect("\0" + path)
        return cls(sock)

    def send(self, xml: str) -> None:
        self.sock.sendall(xml.encode())

    def take_blobs(self, device: str, mode: str = "Also") -> None:
        """Ask for everything and the device's BLOBs; return once the server has acted on it."""
        self.send(f'<getProperties version="1.7"/><enableBLOB device="{device}">{mode}'
                  '</enableBLOB><pingRequest uid="ready"/>')
        self.read_until(b'<pingReply uid="ready"/>')

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            room = socket.CMSG_SPACE(16 * array.array("i").itemsize)
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, room)
            if not data:
                raise EOFError(f"server closed before {marker!r}")
            for level, kind, payload in ancillary:
                assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
                self.owned.extend(fds)
            self.buffer += data
        end = self.buffer.index(marker) + len(marker)
        head, self.buffer = self.buffer[:end], self.buffer[end:]
        return head

    def next_blob(self) -> Received:
        head = self.read_until(b"</setBLOBVector>\n")
        start = head.rindex(b"<setBLOBVector")
        xml = head[start:].decode()
        count = xml.count('attached="true"')
        taken, self.fds = self.fds[:count], self.fds[count:]
        return Received(xml, taken)

    def close(self) -> None:
        for fd in self.owned:
            os.close(fd)
        self.sock.close()


def mapped(fd: int, size: int) -> bytes:
    """What libindi does with an attachment: map `size` bytes read-only, copy, unmap."""
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as view:
        return bytes(view)
