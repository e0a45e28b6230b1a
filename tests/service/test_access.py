"""Access control over real TCP from 127.0.0.x (all of 127.0.0.0/8 is loopback on Linux, so a
client can bind 127.0.0.2 as its source address), and on the local socket."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qhy42_indi.config import networks
from qhy42_indi.indi.messages import Message, PingReply
from qhy42_indi.server.access import AccessControl, AccessPolicy, Verdict
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.local import start_local_server
from tests.service.logs import logged
from tests.support.camera import DEVICE, answered, connect_camera, set_switch
from tests.support.client import IndiClient, is_def, is_set
from tests.support.local_client import LocalClient
from tests.support.processes import HOST, daemon

WAIT_S = 10.0


@contextlib.asynccontextmanager
async def client_from(source: str, port: int) -> AsyncIterator[IndiClient]:
    """An INDI client whose connection comes from the address `source`."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0),
                                                   limit=1 << 24)
    client = IndiClient(reader, writer)
    pump = asyncio.create_task(client._pump())
    try:
        yield client
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_without_a_word(source: str, port: int) -> bool:
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    try:
        writer.write(b"<getProperties version='1.7'/>")
        async with asyncio.timeout(WAIT_S):
            return await reader.read() == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text("[server]\n" + text)
    return str(path)


async def ping(client: IndiClient, uid: str) -> None:
    start = len(client.received)
    await client.send(f"<pingRequest uid='{uid}'/>")
    await client.wait_for(lambda m: isinstance(m, PingReply) and m.uid == uid, start=start)


async def test_an_address_outside_the_allow_list_is_closed_without_a_word(
    tmp_path: Path,
) -> None:
    allow = 'allow = ["127.0.0.1/32", "127.0.0.2"]\n'
    with daemon("--config", config(tmp_path, allow)) as proc:
        assert await closed_without_a_word("127.0.0.3", proc.port)
        async with client_from("127.0.0.2", proc.port) as allowed:
            await allowed.send("<getProperties version='1.7'/>")
            await allowed.wait_for(is_def("CONNECTION"))
        line = await logged(proc, "refused: its address is not in server.allow")
        assert "127.0.0.3:" in line


async def test_a_read_only_client_watches_but_every_change_it_asks_is_refused(
    tmp_path: Path,
) -> None:
    with daemon("--config", config(tmp_path, 'read_only = ["127.0.0.2/31"]\n')) as proc:
        async with client_from("127.0.0.2", proc.port) as watcher, \
                client_from("127.0.0.1", proc.port) as operator:
            await watcher.send("<getProperties version='1.7'/>")
            await watcher.wait_for(is_def("CONNECTION"))
            start = await set_switch(watcher, "CONNECTION", "CONNECT")
            refusal = await watcher.wait_for(
                lambda m: isinstance(m, Message) and "read-only" in (m.message or ""),
                start=start)
            assert "CONNECTION not changed" in (refusal.message or "")  # type: ignore[union-attr]
            await ping(watcher, "after-refusal")
            assert not any(is_set("CONNECTION")(m) for m in watcher.received[start:])
            # A read-write client may; the watcher sees it happen.
            await connect_camera(operator)
            await watcher.wait_for(lambda m: is_set("CONNECTION", "Ok")(m), start=start)
            start = await set_switch(watcher, "CCD_COOLER", "COOLER_ON")
            await watcher.wait_for(lambda m: isinstance(m, Message)
                                   and "CCD_COOLER not changed" in (m.message or ""),
                                   start=start)
            start = await set_switch(operator, "CCD_COOLER", "COOLER_ON")
            assert (await answered(operator, "CCD_COOLER", start)).state == "Ok"
        line = await logged(proc, "CONNECTION: not changed: client 127.0.0.2:")
        assert DEVICE in line and "read-only" in line
        assert "127.0.0.2" in (await logged(proc, "is read-only (server.read_only)"))


async def test_past_max_clients_a_client_is_told_why_and_a_freed_place_is_taken_again(
    tmp_path: Path,
) -> None:
    with daemon("--config", config(tmp_path, "max_clients = 2\n")) as proc:
        async with admitted("127.0.0.1", proc.port) as first, \
                admitted("127.0.0.2", proc.port):
            # Exactly two in now: the third is one too many.
            async with client_from("127.0.0.3", proc.port) as third:
                told = await third.wait_for(lambda m: isinstance(m, Message))
                assert "server.max_clients" in (told.message or "")  # type: ignore[union-attr]
                async with asyncio.timeout(WAIT_S):
                    while not third.closed_by_server:
                        await asyncio.sleep(0.05)
            await ping(first, "still served")
        # Both gone: the places are free again.
        async with admitted("127.0.0.3", proc.port) as again:
            await ping(again, "in")
        await logged(proc, "refused: 2 clients connected (server.max_clients)")


@contextlib.asynccontextmanager
async def admitted(source: str, port: int) -> AsyncIterator[IndiClient]:
    """A client the server has let in (answered its ping). Connecting again until then (bounded):
    a connection that just closed, such as the test harness's probe of the port, counts until
    the server has seen it close."""
    async with contextlib.AsyncExitStack() as stack:
        async with asyncio.timeout(WAIT_S):
            while True:
                client = await stack.enter_async_context(client_from(source, port))
                await client.send("<pingRequest uid='admitted'/>")
                with contextlib.suppress(ConnectionError):
                    found = await client.wait_for(lambda m: isinstance(m, PingReply | Message))
                    if isinstance(found, PingReply):
                        break
                await stack.aclose()
                await asyncio.sleep(0.05)
        yield client


async def test_local_socket_clients_are_judged_as_127_0_0_1() -> None:
    path = f"/qhy42-test/{uuid.uuid4().hex}"
    hub = Hub()
    policy = AccessPolicy(allow=networks("allow", ["127.0.0.0/8"]),
                          read_only=networks("read_only", ["127.0.0.1"]), max_clients=1)
    access = AccessControl(policy)
    listener = await start_local_server(hub, path, access=access)
    assert listener is not None
    try:
        client = await asyncio.to_thread(LocalClient.connect, path)
        await asyncio.to_thread(client.send, "<pingRequest uid='a'/>")
        await asyncio.to_thread(client.read_until, b'uid="a"')
        assert access.clients == 1
        connection = next(iter(hub.connections))
        assert connection.read_only
        # The one place is taken: a second local client is closed.
        second = await asyncio.to_thread(LocalClient.connect, path)
        with pytest.raises((EOFError, ConnectionResetError)):
            await asyncio.to_thread(second.read_until, b"never")
        second.close()
        client.close()
    finally:
        await listener.close()
    assert access.clients == 0


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("192.168.1.20", Verdict.READ_ONLY),
        ("::ffff:192.168.1.20", Verdict.READ_ONLY),  # IPv4 on a dual-stack socket
        ("192.168.2.20", Verdict.ALLOWED),
        ("10.0.0.1", Verdict.NOT_ALLOWED),
        ("fd00::5", Verdict.ALLOWED),
        ("fe80::1%eth0", Verdict.NOT_ALLOWED),
        ("not an address", Verdict.NOT_ALLOWED),
    ],
)
def test_the_verdict_by_address(address: str, verdict: Verdict) -> None:
    policy = AccessPolicy(allow=networks("allow", ["192.168.0.0/16", "fd00::/8"]),
                          read_only=networks("read_only", ["192.168.1.0/24"]))
    assert AccessControl(policy).judge(address) is verdict


def test_the_limit_counts_admitted_clients_only_and_zero_means_none() -> None:
    access = AccessControl(AccessPolicy(allow=networks("allow", ["127.0.0.0/8"]),
                                        max_clients=1))
    assert access.admit("10.0.0.1", "x") is Verdict.NOT_ALLOWED
    assert access.admit("127.0.0.1", "a") is Verdict.ALLOWED
    assert access.admit("127.0.0.1", "b") is Verdict.TOO_MANY
    access.release()
    assert access.admit("127.0.0.1", "c") is Verdict.ALLOWED
    unlimited = AccessControl(AccessPolicy.open())
    assert all(unlimited.admit("203.0.113.9", str(n)) is Verdict.ALLOWED for n in range(500))
