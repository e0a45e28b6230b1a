"""Garbage and XML bombs over real TCP: skipped, logged, and everyone else keeps being served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qhy42_indi.indi.messages import DefVector, PingReply
from tests.support.client import IndiClient, is_def
from tests.support.processes import HOST, Running, daemon

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><getProperties version="1.7" device="&lol9;"/>'
)


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:
        yield proc


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def ping(client: IndiClient, uid: str) -> None:
    await client.send(f"<pingRequest uid='{uid}'/>")
    await client.wait_for(lambda m: isinstance(m, PingReply) and m.uid == uid)


async def test_garbage_is_skipped_and_the_connection_stays_open(server: Running) -> None:
    async with IndiClient.connect(HOST, server.port) as client:
        await client.send("<foo></bar><<<>>> garbage & stuff<oneNumber>1</oneNumber>\x00")
        await client.send("<getProperties version='1.7'/>")
        found = await client.wait_for(is_def("CONNECTION"))
        assert isinstance(found, DefVector)
        assert not client.closed_by_server


async def test_xml_bombs_cost_bounded_memory_and_others_keep_being_served(
    server: Running,
) -> None:
    async with IndiClient.connect(HOST, server.port) as bystander:
        await bystander.send("<getProperties version='1.7'/>")
        await bystander.wait_for(is_def("DRIVER_INFO"))
        before = rss_kib(server.process.pid)
        async with IndiClient.connect(HOST, server.port) as attacker:
            await attacker.send(BILLION_LAUGHS)
            # Quadratic blowup without a DTD: one huge attribute, then deep nesting.
            await attacker.send("<getProperties version='" + "A" * 4_000_000 + "'/>")
            await attacker.send("<newTextVector device='x' name='y'>" + "<a>" * 100_000)
            await ping(bystander, "still-served")
            await attacker.send("</a>" * 10 + "<pingRequest uid='attacker-back'/>")
            await ping(attacker, "after-bombs")
        grown_mib = (rss_kib(server.process.pid) - before) / 1024
        assert grown_mib < 100, f"the daemon grew by {grown_mib:.0f} MiB"
        await ping(bystander, "still-served-after")
    assert "skipped input" in server.log()
