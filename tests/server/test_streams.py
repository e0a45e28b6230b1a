"""Socket streams: closing one while a read is pending must not break the next client that
gets the same descriptor number, and a large send is cut into pieces that let the event loop
run between them."""

from __future__ import annotations

import asyncio
import socket

from qhy42_indi.server.streams import SocketStream


async def test_a_stream_closed_during_a_read_leaves_its_descriptor_number_usable() -> None:
    for _ in range(5):  # the number comes back on most rounds; any round can show it
        ours, peer = socket.socketpair()
        first = SocketStream(ours)
        number = ours.fileno()
        pending = asyncio.create_task(first.recv(1024))
        await asyncio.sleep(0.01)
        first.close()
        assert await asyncio.wait_for(pending, 5) == b""
        peer.close()

        again, other = socket.socketpair()
        second = SocketStream(again)
        reading = asyncio.create_task(second.recv(1024))
        await asyncio.sleep(0.01)
        other.sendall(b"<getProperties version='1.7'/>")
        assert await asyncio.wait_for(reading, 5) == b"<getProperties version='1.7'/>"
        reused = again.fileno() == number
        second.close()
        other.close()
        if reused:
            return
    raise AssertionError("the descriptor number never came back: the test proves nothing")


async def test_a_large_send_lets_the_loop_run_between_its_pieces() -> None:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    stream = SocketStream(ours)
    payload = bytes(range(256)) * (4 * SocketStream.SEND_CHUNK_BYTES // 256 + 7)
    turns = 0
    received = bytearray()
    loop = asyncio.get_running_loop()

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def drain() -> None:
        while len(received) < len(payload):
            received.extend(await loop.sock_recv(peer, 1 << 20))

    counter = asyncio.create_task(count_turns())
    reader = asyncio.create_task(drain())
    await stream.send(payload)
    await asyncio.wait_for(reader, 10)
    counter.cancel()
    assert bytes(received) == payload
    assert turns >= 4  # the loop ran between the pieces, not only after the whole send
    stream.close()
    peer.close()
