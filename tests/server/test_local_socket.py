"""The local socket (server/local.py): frames as sealed memfds for clients on this host.

A Python client stands in for libindiclient here: it connects to the abstract socket, reads
with recvmsg and maps the descriptors that come with `attached="true"` members, as libindi
does. Frames are published straight onto a hub; tests/interop has the real client.
"""

from __future__ import annotations

import array
import asyncio
import base64
import fcntl
import logging
import mmap
import os
import re
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qhy42_indi import cli, memfd_buffers
from qhy42_indi.config import Config, ConfigError, validate
from qhy42_indi.indi import encoder
from qhy42_indi.indi.messages import BlobElement, PropertyState, SetVector, VectorKind
from qhy42_indi.memfd_buffers import F_SEAL_FUTURE_WRITE, FitsBuffers, MemfdBuffer
from qhy42_indi.server import connection as connection_module
from qhy42_indi.server import local
from qhy42_indi.server.connection import QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.tcp import start_tcp_server
from tests.support.client import IndiClient
from tests.support.local_client import LocalClient, mapped

DEVICE = "QHY CCD TEST"
FRAME = bytes(range(256)) * 40 + b"END"  # 10243 bytes: not a multiple of 3 or of a page


def frame_message(
    payload: bytes = FRAME, *, raw: bool = True, b64: bool = False, fmt: str = ".fits",
    size: int | None = None,
) -> SetVector:
    element = BlobElement(
        name="CCD1", format=fmt, size=len(payload) if size is None else size,
        data_b64=base64.b64encode(payload) if b64 else b"", data=payload if raw else None,
    )
    return SetVector(kind=VectorKind.BLOB, device=DEVICE, name="CCD1", state=PropertyState.OK,
                     elements=(element,))


def one_blob(xml: str) -> ET.Element:
    [member] = ET.fromstring(xml).findall("oneBLOB")
    return member


@pytest.fixture
def path() -> str:
    return f"/qhy42-test/{uuid.uuid4().hex}"


@pytest.fixture
async def served(path: str) -> AsyncIterator[Hub]:
    hub = Hub()
    listener = await local.start_local_server(hub, path)
    assert listener is not None
    try:
        yield hub
    finally:
        await listener.close()


async def connected(path: str, mode: str = "Also") -> LocalClient:
    client = await asyncio.to_thread(LocalClient.connect, path)
    await asyncio.to_thread(client.take_blobs, DEVICE, mode)
    return client


# ---- what travels -----------------------------------------------------------------------------


def assert_sealed_for_clients(fd: int, write_seal: int) -> None:
    """No client can change what the others read: not written, resized or mapped writable,
    through the descriptor it got or through the file reopened for writing."""
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    for seal in (write_seal, fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SEAL):
        assert seals & seal
    with pytest.raises(OSError):
        os.pwrite(fd, b"X", 0)
    with pytest.raises(PermissionError):
        mmap.mmap(fd, len(FRAME), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    reopened = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    try:
        with pytest.raises(PermissionError):
            os.pwrite(reopened, b"X", 0)
        with pytest.raises(PermissionError):
            mmap.mmap(reopened, len(FRAME), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        with pytest.raises(PermissionError):
            os.ftruncate(reopened, 1)
    finally:
        os.close(reopened)


async def test_a_local_client_gets_the_frame_as_a_sealed_memfd(served: Hub, path: str) -> None:
    client = await connected(path)
    try:
        served.publish(frame_message())
        got = await asyncio.to_thread(client.next_blob)

        member = one_blob(got.xml)
        assert member.attrib == {"name": "CCD1", "size": str(len(FRAME)), "format": ".fits",
                                 "len": str(len(FRAME)), "attached": "true"}
        assert (member.text or "") == ""  # no base64 at all
        [fd] = got.fds
        assert mapped(fd, len(FRAME)) == FRAME
        assert os.fstat(fd).st_size == len(FRAME)
        assert_sealed_for_clients(fd, fcntl.F_SEAL_WRITE)
    finally:
        client.close()


async def test_one_memfd_serves_every_local_client(
    served: Hub, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[object] = []
    real = local.build_attached

    def counting(message: object) -> local.AttachedForm | None:
        builds.append(message)
        return real(message)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "build_attached", counting)
    clients = [await connected(path) for _ in range(3)]
    try:
        served.publish(frame_message())
        got = [await asyncio.to_thread(c.next_blob) for c in clients]

        assert len(builds) == 1  # one memfd, written once
        inodes = {os.fstat(fd).st_ino for r in got for fd in r.fds}
        assert len(inodes) == 1 and all(len(r.fds) == 1 for r in got)
        for received in got:
            assert mapped(received.fds[0], len(FRAME)) == FRAME
    finally:
        for client in clients:
            client.close()


async def test_the_other_messages_go_as_plain_bytes_on_the_same_socket(
    served: Hub, path: str
) -> None:
    client = await connected(path)
    try:
        served.publish(frame_message())
        await asyncio.to_thread(client.next_blob)
        client.fds.clear()
        await asyncio.to_thread(client.send, '<pingRequest uid="after"/>')
        await asyncio.to_thread(client.read_until, b'<pingReply uid="after"/>')
        assert client.fds == []
    finally:
        client.close()


async def test_tcp_clients_still_get_base64_of_the_same_frame(served: Hub, path: str) -> None:
    tcp = await start_tcp_server(served, "127.0.0.1", 0)
    local_client = await connected(path)
    try:
        async with IndiClient.connect(*tcp.address) as remote:
            await remote.send(f'<getProperties version="1.7"/><enableBLOB device="{DEVICE}">'
                              'Also</enableBLOB><pingRequest uid="r"/>')
            await remote.wait_for(lambda m: type(m).__name__ == "PingReply")
            served.publish(frame_message(raw=True, b64=False))  # the base64 is ours to make

            message = await remote.wait_for(
                lambda m: isinstance(m, SetVector) and m.kind is VectorKind.BLOB)
            got = await asyncio.to_thread(local_client.next_blob)
        assert isinstance(message, SetVector)
        [element] = message.elements
        assert isinstance(element, BlobElement)
        assert base64.b64decode(bytes(element.data_b64)) == FRAME
        assert element.size == len(FRAME)
        assert mapped(got.fds[0], len(FRAME)) == FRAME
    finally:
        local_client.close()
        await tcp.close()


async def test_a_frame_given_only_as_base64_is_decoded_once_into_shared_memory(
    served: Hub, path: str
) -> None:
    # What indiserver does for a driver that sends base64: local clients still get a memfd.
    client = await connected(path)
    try:
        served.publish(frame_message(raw=False, b64=True))
        got = await asyncio.to_thread(client.next_blob)
        assert one_blob(got.xml).get("attached") == "true"
        assert mapped(got.fds[0], len(FRAME)) == FRAME
    finally:
        client.close()


async def test_no_base64_is_made_when_only_local_clients_want_the_frame(
    served: Hub, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes: list[object] = []
    real = connection_module._encode_with_base64

    def counting(message: object) -> tuple[bytes | memoryview, ...]:
        encodes.append(message)
        return real(message)  # type: ignore[arg-type]

    monkeypatch.setattr(connection_module, "_encode_with_base64", counting)
    client = await connected(path)
    try:
        served.publish(frame_message(raw=True, b64=False))
        got = await asyncio.to_thread(client.next_blob)
        assert mapped(got.fds[0], len(FRAME)) == FRAME
        assert encodes == []
    finally:
        client.close()


@pytest.mark.parametrize(
    ("fmt", "size"),
    [(".fits.z", 99_999), (".fits", 0)],  # a .z payload is not `size` bytes; size 0 is no data
)
async def test_what_libindi_could_not_map_goes_inline(
    served: Hub, path: str, fmt: str, size: int
) -> None:
    client = await connected(path)
    try:
        served.publish(frame_message(raw=True, b64=True, fmt=fmt, size=size))
        got = await asyncio.to_thread(client.next_blob)
        assert got.fds == [] and "attached" not in got.xml
        assert base64.b64decode(one_blob(got.xml).text or "") == FRAME
    finally:
        client.close()


def test_nothing_is_attached_when_the_base64_does_not_decode() -> None:
    broken = SetVector(kind=VectorKind.BLOB, device=DEVICE, name="CCD1", state=PropertyState.OK,
                       elements=(BlobElement(name="CCD1", format=".fits", size=3,
                                             data_b64=b"QU*D"),))
    assert local.build_attached(broken) is None  # so it goes inline, as it came


async def test_without_shared_memory_a_local_client_gets_base64(
    served: Hub, path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_memory(payload: bytes | memoryview) -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(local, "_sealed_memfd", no_memory)
    client = await connected(path)
    try:
        with caplog.at_level(logging.WARNING, logger=local.__name__):
            served.publish(frame_message(raw=True, b64=False))
            got = await asyncio.to_thread(client.next_blob)
        assert got.fds == []
        assert base64.b64decode(one_blob(got.xml).text or "") == FRAME
        assert "no shared memory" in caplog.text
    finally:
        client.close()


def open_memfds() -> set[int]:
    """Descriptors of this process that are frame memfds."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("/memfd:indi-blob"):
                found.add(int(name))
        except FileNotFoundError:  # listdir's own descriptor, already closed
            pass
    return found


async def test_the_memfd_is_closed_once_every_client_has_it(served: Hub, path: str) -> None:
    client = await connected(path)
    try:
        before = open_memfds()
        served.publish(frame_message())
        got = await asyncio.to_thread(client.next_blob)
        server_side = open_memfds() - before - set(got.fds)
        for _ in range(100):  # the writer lets go of the frame right after sending it
            if not server_side:
                break
            await asyncio.sleep(0.01)
            server_side = open_memfds() - before - set(got.fds)
        assert server_side == set()
        assert mapped(got.fds[0], len(FRAME)) == FRAME  # the client's copy outlives ours
    finally:
        client.close()


# ---- lag --------------------------------------------------------------------------------------


async def test_a_local_client_that_stops_reading_is_dropped_before_frames_pile_up(
    path: str,
) -> None:
    # Each message is small on the wire but pins a frame, so unread frames count as lag.
    hub = Hub()
    frame_bytes = len(base64.b64encode(FRAME))
    limits = QueueLimits(drop_stream_bytes=None, max_behind_bytes=5 * frame_bytes)
    listener = await local.start_local_server(hub, path, limits)
    assert listener is not None
    reader, stalled = await connected(path), await connected(path)
    try:
        for _ in range(12):
            hub.publish(frame_message())
            got = await asyncio.to_thread(reader.next_blob)
            assert len(got.fds) == 1
        await asyncio.sleep(0.1)
        assert len(hub.connections) == 1  # the one that reads is still served
        peers = [c.peer for c in hub.connections]
        assert peers and peers[0].startswith(f"@{path}#1 (pid {os.getpid()})")
    finally:
        reader.close()
        stalled.close()
        await listener.close()


# ---- the listener -----------------------------------------------------------------------------


async def test_a_taken_path_is_one_clear_log_line_not_a_crash(
    served: Hub, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=local.__name__):
        second = await local.start_local_server(Hub(), path)
    assert second is None
    [record] = [r for r in caplog.records if r.name == local.__name__]
    assert f"@{path}" in record.message and "--local-socket" in record.message
    assert "in use" in record.message


async def test_the_socket_is_abstract_and_gone_after_close(path: str) -> None:
    listener = await local.start_local_server(Hub(), path)
    assert listener is not None
    assert not Path(path).exists()
    assert f"@{path}" in Path("/proc/net/unix").read_text()
    await listener.close()
    with pytest.raises(ConnectionRefusedError):
        LocalClient.connect(path)


# ---- encoder, command line, configuration ------------------------------------------------------


def test_the_attached_form_is_indiservers() -> None:
    message = frame_message(b"12345", raw=True, b64=True)
    xml = encoder.encode(message).decode()
    attached = b"".join(encoder.encode_chunks(message, attach_blobs=True)).decode()
    assert "MTIzNDU=" in xml and "attached" not in xml  # TCP form unchanged
    assert re.search(r'<oneBLOB name="CCD1" size="5" format=".fits" len="5" attached="true"/>',
                     attached)
    assert "MTIzNDU=" not in attached


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], "/tmp/indiserver"), (["--local-socket", "/tmp/qhy42"], "/tmp/qhy42"),
     (["--no-local-socket"], "")],
)
def test_the_command_line_chooses_the_local_socket(argv: list[str], expected: str) -> None:
    args = cli._parser().parse_args(["serve", *argv])
    assert cli._config(args).server.local_socket == expected


def test_a_local_socket_path_too_long_for_sun_path_is_refused() -> None:
    config = Config()
    config.server.local_socket = "/" + "x" * 107
    with pytest.raises(ConfigError, match=r"server\.local_socket"):
        validate(config)


# ---- a FITS built in a memfd (memfd_buffers.py) ----------------------------------------------


def memfd_frame(source: FitsBuffers, payload: bytes = FRAME) -> bytearray:
    buffer = source(len(payload))
    buffer[:] = payload
    return buffer


async def test_a_fits_built_in_a_memfd_goes_as_that_memfd_sealed(served: Hub, path: str) -> None:
    source = FitsBuffers()
    client = await connected(path)
    try:
        built = memfd_frame(source)
        assert isinstance(built, MemfdBuffer)
        served.publish(frame_message(memoryview(built)))  # type: ignore[arg-type]
        got = await asyncio.to_thread(client.next_blob)
        [fd] = got.fds
        assert os.path.samestat(os.fstat(fd), os.fstat(built.fd))  # no copy
        assert mapped(fd, len(FRAME)) == FRAME
        assert_sealed_for_clients(fd, F_SEAL_FUTURE_WRITE)
    finally:
        client.close()


def test_a_sealed_buffer_is_written_again_only_once_no_client_holds_it() -> None:
    source = FitsBuffers()
    kept = memfd_frame(source)
    first_id = id(kept)
    del kept
    kept = source(len(FRAME))
    assert id(kept) == first_id  # nobody held it: reused
    assert isinstance(kept, MemfdBuffer)
    kept.seal()  # a local client takes it: its own read-only open, then a mapping
    fd = kept.reader()
    view = mmap.mmap(fd, len(FRAME), mmap.MAP_SHARED, mmap.PROT_READ)
    os.close(fd)  # as libindi does once it has mapped it
    assert kept.shared_elsewhere()
    del kept
    later = memfd_frame(source, bytes(len(FRAME)))
    assert id(later) != first_id  # still mapped by the client: not touched
    assert view[:] == FRAME  # what the client got never changes
    view.close()
    again = source(len(FRAME))  # `later` is held: the sealed one is the free one
    assert id(again) == first_id and isinstance(again, MemfdBuffer) and again.sealed
    assert not again.shared_elsewhere()


def test_a_sealed_buffer_held_by_another_process_is_not_touched_until_it_lets_go() -> None:
    source = FitsBuffers()
    built = memfd_frame(source)
    assert isinstance(built, MemfdBuffer)
    built.seal()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:  # the client: maps what it is sent, holds it until told, then lets go
        try:
            ours.close()
            _, ancillary, _, _ = theirs.recvmsg(1, socket.CMSG_SPACE(4))
            [received] = array.array("i", ancillary[0][2][:4])
            held = mmap.mmap(received, len(FRAME), mmap.MAP_SHARED, mmap.PROT_READ)
            os.close(received)
            theirs.sendall(b"m")
            theirs.recv(1)
            held.close()
            theirs.sendall(b"d")
        finally:
            os._exit(0)
    theirs.close()
    try:
        fd = built.reader()
        ours.sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        os.close(fd)
        assert ours.recv(1) == b"m"
        assert built.shared_elsewhere()  # mapped in the other process
        ours.sendall(b"g")
        assert ours.recv(1) == b"d"
        assert not built.shared_elsewhere()  # unmapped there, closed here: ours again
    finally:
        ours.close()
        os.waitpid(child, 0)


def test_where_the_file_cannot_be_reopened_a_sealed_buffer_is_never_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No /proc (or no descriptor left): the client gets a duplicate of our own open, which
    the lease test cannot see, so the buffer is retired as before rather than guessed free."""
    source = FitsBuffers()
    built = memfd_frame(source)
    assert isinstance(built, MemfdBuffer)
    first_id = id(built)
    built.seal()
    monkeypatch.setattr(memfd_buffers, "_read_only_open", lambda fd: None)
    fd = built.reader()
    assert os.path.samestat(os.fstat(fd), os.fstat(built.fd))
    assert built.shared_elsewhere()  # whatever the client does with it
    del built
    later = memfd_frame(source, bytes(len(FRAME)))
    assert id(later) != first_id
    assert mapped(fd, len(FRAME)) == FRAME
    os.close(fd)
    again = source(len(FRAME))  # the client let go, but that cannot be seen: still not reused
    assert id(again) != first_id
