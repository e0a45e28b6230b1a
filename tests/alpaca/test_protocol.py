"""The Alpaca protocol in the manner of ConformU's protocol checks: parameter casing,
transaction numbers, malformed paths, methods and parameters (HTTP 400, plain text), ASCOM
error numbers, and what a camera answers before its first exposure. Bad input changes
nothing."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
import requests

from tests.alpaca.support import (
    HTTP_TIMEOUT_S,
    AlpacaDaemon,
    alpaca_daemon,
    discover,
    get,
    put,
)

NOT_IMPLEMENTED, INVALID_VALUE, VALUE_NOT_SET = 0x400, 0x401, 0x402
NOT_CONNECTED, INVALID_OPERATION, ACTION_NOT_IMPLEMENTED = 0x407, 0x40B, 0x40C


@pytest.fixture(scope="module")
def server() -> Iterator[AlpacaDaemon]:
    """One connected camera for the checks that leave it as they found it."""
    with alpaca_daemon() as running:
        reply = put(running, "connected", Connected="True").json()
        assert reply["ErrorNumber"] == 0, reply
        yield running


def value(response: requests.Response) -> object:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ErrorNumber"] == 0, body
    return body["Value"]


def error_number(response: requests.Response) -> int:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Value" not in body or body["ErrorNumber"] == 0
    assert (body["ErrorMessage"] != "") == (body["ErrorNumber"] != 0)
    return int(body["ErrorNumber"])


def test_get_parameter_names_match_in_any_case(server: AlpacaDaemon) -> None:
    for spelling in ("ClientTransactionID", "clienttransactionid", "CLIENTTRANSACTIONID"):
        body = get(server, "name", **{spelling: "4242", "clientid": "7"}).json()
        assert body["ClientTransactionID"] == 4242, spelling


def test_put_field_names_must_be_spelled_as_the_api_spells_them(server: AlpacaDaemon) -> None:
    before = value(get(server, "gain"))
    response = put(server, "gain", gain="33")
    assert response.status_code == 400 and "Gain" in response.text
    assert value(get(server, "gain")) == before


def test_client_transaction_id_is_echoed_and_server_ids_increase(server: AlpacaDaemon) -> None:
    first = get(server, "name", ClientTransactionID="11").json()
    second = put(server, "gain", Gain="10", ClientTransactionID="12").json()
    assert (first["ClientTransactionID"], second["ClientTransactionID"]) == (11, 12)
    assert second["ServerTransactionID"] > first["ServerTransactionID"] >= 1
    assert get(server, "name").json()["ClientTransactionID"] == 0  # absent: 0


@pytest.mark.parametrize("bad", ["abc", "-1", "4294967296", "1.5"])
def test_a_malformed_transaction_id_is_a_bad_request(server: AlpacaDaemon, bad: str) -> None:
    response = get(server, "name", ClientTransactionID=bad)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "ClientTransactionID" in response.text


@pytest.mark.parametrize("path", [
    "/api/v1/Camera/0/name",  # the device type is lowercase
    "/api/v1/telescope/0/name",
    "/api/v1/camera/1/name",  # no such device number
    "/api/v1/camera/-1/name",
    "/api/v1/camera/x/name",
    "/api/v1/camera/0/Name",  # member names are lowercase
    "/api/v1/camera/0/nosuchmember",
    "/api/v1/camera/0/startexposure",  # PUT only
])
def test_bad_paths_are_bad_requests(server: AlpacaDaemon, path: str) -> None:
    response = requests.get(server.url(path), timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 400, (path, response.text)
    assert response.text.strip()


def test_bad_methods_are_refused(server: AlpacaDaemon) -> None:
    assert put(server, "name", Name="x").status_code == 400  # read only
    assert put(server, "imagearray").status_code == 400
    response = requests.post(server.camera_url("gain"), data={"Gain": "5"},
                             timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 405
    assert requests.get(server.url("/api/v2/camera/0/name"),
                        timeout=HTTP_TIMEOUT_S).status_code == 404


@pytest.mark.parametrize("member,form", [
    ("gain", {}),
    ("gain", {"Gain": "ten"}),
    ("binx", {"BinX": "1.5"}),
    ("cooleron", {"CoolerOn": "yes"}),
    ("startexposure", {"Duration": "1"}),  # Light is missing
    ("startexposure", {"Duration": "one", "Light": "True"}),
])
def test_missing_or_unparsable_parameters_are_bad_requests(server: AlpacaDaemon, member: str,
                                                           form: dict[str, str]) -> None:
    response = put(server, member, **form)
    assert response.status_code == 400, response.text
    assert value(get(server, "camerastate")) == 0


@pytest.mark.parametrize("member,form", [
    ("gain", {"Gain": "1000"}),
    ("offset", {"Offset": "-1"}),
    ("binx", {"BinX": "-1"}),
    ("biny", {"BinY": "0"}),
    ("binx", {"BinX": "5"}),
    ("readoutmode", {"ReadoutMode": "3"}),
    ("setccdtemperature", {"SetCCDTemperature": "-273"}),
    ("setccdtemperature", {"SetCCDTemperature": "nan"}),
    ("numx", {"NumX": "0"}),
    ("startx", {"StartX": "-5"}),
    ("startexposure", {"Duration": "nan", "Light": "True"}),
    ("startexposure", {"Duration": "1e309", "Light": "True"}),
    ("startexposure", {"Duration": "-1", "Light": "True"}),
    ("startexposure", {"Duration": "301", "Light": "True"}),
])
def test_invalid_values_are_0x401_and_change_nothing(server: AlpacaDaemon, member: str,
                                                     form: dict[str, str]) -> None:
    members = ("gain", "offset", "binx", "biny", "readoutmode", "numx", "startx",
               "camerastate", "imageready")
    before = {m: value(get(server, m)) for m in members}
    assert error_number(put(server, member, **form)) == INVALID_VALUE
    assert {m: value(get(server, m)) for m in members} == before


def test_a_subframe_that_does_not_fit_is_refused_at_startexposure(server: AlpacaDaemon) -> None:
    assert error_number(put(server, "startx", StartX="2000")) == 0  # checked as a whole later
    assert error_number(put(server, "numx", NumX="100")) == 0
    reply = put(server, "startexposure", Duration="0.1", Light="True")
    assert error_number(reply) == INVALID_VALUE and "NumX" in reply.json()["ErrorMessage"]
    assert value(get(server, "camerastate")) == 0
    put(server, "startx", StartX="0")
    put(server, "numx", NumX="2048")


def test_a_huge_form_is_refused_and_changes_nothing(server: AlpacaDaemon) -> None:
    before = value(get(server, "gain"))
    body = b"Gain=20&Padding=" + b"x" * (50 * 1024 * 1024)
    response = requests.put(server.camera_url("gain"), data=body, timeout=30,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert value(get(server, "gain")) == before


def test_unimplemented_members_are_0x400(server: AlpacaDaemon) -> None:
    for member in ("gains", "offsets", "bayeroffsetx", "heatsinktemperature", "fastreadout"):
        assert error_number(get(server, member)) == NOT_IMPLEMENTED, member
    assert error_number(put(server, "stopexposure")) == NOT_IMPLEMENTED
    assert error_number(put(server, "pulseguide", Direction="0", Duration="10")) == NOT_IMPLEMENTED
    assert error_number(put(server, "commandstring", Command="X", Raw="True")) == NOT_IMPLEMENTED
    assert value(get(server, "canstopexposure")) is False
    assert value(get(server, "canpulseguide")) is False


def test_actions_are_listed_and_answer_json(server: AlpacaDaemon) -> None:
    actions = value(get(server, "supportedactions"))
    assert isinstance(actions, list)
    for name in ("GpioMode", "SmaOutput", "TrigOut", "TriggerMode", "TriggerTimeout",
                 "FrameTiming", "BurstConfigure", "BurstCapture", "HdrOutput"):
        assert name in actions
    reply = put(server, "action", Action="TriggerTimeout", Parameters="42")
    assert value(reply) == '{"seconds": 42.0}'
    assert value(put(server, "action", Action="triggertimeout", Parameters="")) == \
        '{"seconds": 42.0}'
    assert error_number(put(server, "action", Action="TriggerTimeout",
                            Parameters="1e309")) == INVALID_VALUE
    assert error_number(put(server, "action", Action="Nope", Parameters="")) == \
        ACTION_NOT_IMPLEMENTED
    refused = put(server, "action", Action="BurstCapture", Parameters="").json()
    assert refused["ErrorNumber"] == INVALID_OPERATION  # burst mode is off: the device says so
    assert "burst" in refused["ErrorMessage"].lower()
    assert not refused["ErrorMessage"].startswith("[")  # the reason, without INDI's level tag
    burst = put(server, "action", Action="BurstConfigure", Parameters='{"start": 2, "end": 9}')
    assert '"start": 2, "end": 9' in str(value(burst))


def test_discovery_answers_only_the_discovery_message(server: AlpacaDaemon) -> None:
    assert discover(server.discovery_port) == {"AlpacaPort": server.alpaca_port}
    assert discover(server.discovery_port, b"alpacadiscovery2", timeout_s=0.5) is None


def test_management_api_and_stable_unique_ids() -> None:
    ids = []
    for _ in range(2):
        with alpaca_daemon() as running:
            versions = requests.get(running.url("/management/apiversions"),
                                    params={"ClientTransactionID": "3"}, timeout=HTTP_TIMEOUT_S)
            assert versions.json()["Value"] == [1]
            assert versions.json()["ClientTransactionID"] == 3
            devices = requests.get(running.url("/management/v1/configureddevices"),
                                   timeout=HTTP_TIMEOUT_S).json()["Value"]
            ids.append(devices[0]["UniqueID"])
    assert ids[0] == ids[1] and len(ids[0]) == 36


def test_before_connecting_and_before_the_first_exposure() -> None:
    with alpaca_daemon() as fresh:
        first = get(fresh, "connected").json()
        assert first["ServerTransactionID"] == 1 and first["Value"] is False
        assert error_number(get(fresh, "gain")) == NOT_CONNECTED
        assert error_number(put(fresh, "startexposure", Duration="1", Light="True")) == \
            NOT_CONNECTED
        assert value(get(fresh, "interfaceversion")) == 4
        assert error_number(put(fresh, "connected", Connected="True")) == 0
        assert value(get(fresh, "imageready")) is False
        assert error_number(get(fresh, "imagearray")) == INVALID_OPERATION
        assert error_number(get(fresh, "lastexposureduration")) == VALUE_NOT_SET
        assert error_number(get(fresh, "lastexposurestarttime")) == VALUE_NOT_SET
        assert error_number(put(fresh, "action", Action="FrameTiming",
                                Parameters="")) == INVALID_OPERATION
        assert value(get(fresh, "camerastate")) == 0
        assert error_number(put(fresh, "abortexposure")) == 0  # nothing to abort: no error
        assert error_number(put(fresh, "connected", Connected="False")) == 0
        assert value(get(fresh, "connected")) is False
        assert error_number(get(fresh, "gain")) == NOT_CONNECTED


def test_connect_runs_in_the_background_and_connecting_says_when_it_is_done() -> None:
    with alpaca_daemon() as fresh:
        assert error_number(put(fresh, "connect")) == 0
        deadline = time.monotonic() + 15
        while value(get(fresh, "connecting")) is True:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert value(get(fresh, "connected")) is True
        assert value(get(fresh, "cameraxsize")) == 2048
        assert error_number(put(fresh, "disconnect")) == 0
        assert value(get(fresh, "connected")) is False


def test_each_camera_is_a_device_number_with_its_own_unique_id() -> None:
    with alpaca_daemon("--simulators", "2") as two:
        devices = requests.get(two.url("/management/v1/configureddevices"),
                               timeout=HTTP_TIMEOUT_S).json()["Value"]
        assert [d["DeviceNumber"] for d in devices] == [0, 1]
        assert len({d["UniqueID"] for d in devices}) == 2
        for device in devices:
            name = requests.get(two.camera_url("name", device["DeviceNumber"]),
                                timeout=HTTP_TIMEOUT_S).json()["Value"]
            assert name == device["DeviceName"]
        second = put(two, "connected", Connected="True")  # device 0 only
        assert error_number(second) == 0
        reply = requests.get(two.camera_url("gain", 1), timeout=HTTP_TIMEOUT_S).json()
        assert reply["ErrorNumber"] == NOT_CONNECTED  # device 1 was not connected
        assert requests.get(two.camera_url("name", 2), timeout=HTTP_TIMEOUT_S).status_code == 400


def test_a_download_abandoned_midway_costs_nothing(server: AlpacaDaemon) -> None:
    assert error_number(put(server, "startexposure", Duration="0.2", Light="True")) == 0
    deadline = time.monotonic() + 15
    while value(get(server, "imageready")) is not True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for accept in ("application/imagebytes", "application/json"):
        with socket.create_connection(("127.0.0.1", server.alpaca_port), timeout=5) as sock:
            sock.sendall(f"GET /api/v1/camera/0/imagearray HTTP/1.1\r\nHost: x\r\n"
                         f"Accept: {accept}\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            # Closed with a reset, as a client that is killed or cancels does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    whole = requests.get(server.camera_url("imagearray"), timeout=HTTP_TIMEOUT_S,
                         headers={"Accept": "application/imagebytes"})
    assert len(whole.content) == 44 + 2048 * 2048 * 2
    time.sleep(0.3)
    assert "Traceback" not in server.process.log()
