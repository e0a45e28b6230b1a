"""server.allow and server.read_only apply to Alpaca clients as to INDI clients: a read-only
address may read everything and its PUTs are 0x40B with the reason; an address outside
`allow` gets HTTP 403."""

from __future__ import annotations

import asyncio
import http.client
import json

import requests

from tests.alpaca.support import HTTP_TIMEOUT_S, alpaca_daemon, get, put
from tests.support.camera import connect_camera, set_numbers
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST

INVALID_OPERATION = 0x40B


def test_a_read_only_address_may_get_and_its_puts_change_nothing() -> None:
    with alpaca_daemon("--read-only", "127.0.0.1/32") as server:
        reply = put(server, "connected", Connected="True").json()
        assert reply["ErrorNumber"] == INVALID_OPERATION
        assert "read-only" in reply["ErrorMessage"]
        assert get(server, "connected").json()["Value"] is False
        assert get(server, "name").json()["ErrorNumber"] == 0
        assert get(server, "gain").json()["ErrorNumber"] == 0x407  # still not connected
        devices = requests.get(server.url("/management/v1/configureddevices"),
                               timeout=HTTP_TIMEOUT_S).json()
        assert len(devices["Value"]) == 1
        for member, form in (("gain", {"Gain": "30"}), ("cooleron", {"CoolerOn": "True"}),
                             ("startexposure", {"Duration": "1", "Light": "True"}),
                             ("action", {"Action": "TrigOut", "Parameters": "off"}),
                             ("disconnect", {})):
            body = put(server, member, **form).json()
            assert body["ErrorNumber"] == INVALID_OPERATION, member
            assert "server.read_only" in body["ErrorMessage"]


def test_an_address_outside_allow_gets_403() -> None:
    with alpaca_daemon("--allow", "10.0.0.0/8") as server:
        for response in (get(server, "name"), put(server, "connected", Connected="True"),
                         requests.get(server.url("/management/apiversions"),
                                      timeout=HTTP_TIMEOUT_S)):
            assert response.status_code == 403
            assert "server.allow" in response.text


async def test_a_read_only_address_reads_the_camera_an_indi_client_connected() -> None:
    """127.0.0.2 is read-only, 127.0.0.1 is not: the INDI client connects and sets the gain,
    the read-only Alpaca client reads it and cannot change it."""
    with alpaca_daemon("--read-only", "127.0.0.2/32") as server:
        async with IndiClient.connect(HOST, server.indi_port) as indi:
            await connect_camera(indi)
            start = await set_numbers(indi, "CCD_GAIN", GAIN=37)
            await indi.wait_for(is_set("CCD_GAIN"), start=start)
            reader = ReadOnlyClient(server.alpaca_port)
            # Connected is a PUT: refused; the camera's values are read all the same once
            # connected from a writable address.
            assert (await asyncio.to_thread(reader.put, "connected", "Connected=True")
                    )["ErrorNumber"] == INVALID_OPERATION
            assert put(server, "connected", Connected="True").json()["ErrorNumber"] == 0
            assert (await asyncio.to_thread(reader.get, "gain"))["Value"] == 37
            refused = await asyncio.to_thread(reader.put, "gain", "Gain=50")
            assert refused["ErrorNumber"] == INVALID_OPERATION
            assert "127.0.0.2" in refused["ErrorMessage"]
            assert get(server, "gain").json()["Value"] == 37


class ReadOnlyClient:
    """HTTP from 127.0.0.2 (Linux routes all of 127/8 to the loopback)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _request(self, method: str, member: str, body: str | None) -> dict[str, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S,
                                                source_address=("127.0.0.2", 0))
        try:
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
            connection.request(method, f"/api/v1/camera/0/{member}", body=body,
                               headers=headers)
            response = connection.getresponse()
            assert response.status == 200
            answer = json.loads(response.read())
            assert isinstance(answer, dict)
            return answer
        finally:
            connection.close()

    def get(self, member: str) -> dict[str, object]:
        return self._request("GET", member, None)

    def put(self, member: str, form: str) -> dict[str, object]:
        return self._request("PUT", member, form)
