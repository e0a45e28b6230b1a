"""The page's HTTP API and feed against the simulator daemon, from plain HTTP clients."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.camera import connect_camera
from tests.support.client import IndiClient
from tests.support.processes import HOST
from tests.web.browser import WebDaemon, get, post, state, web_daemon


async def command(daemon: WebDaemon, prop: str, values: dict[str, Any]) -> dict[str, Any]:
    status, reply = await asyncio.to_thread(post, daemon.url + "web/api/command",
                                            {"camera": 0, "property": prop, "values": values})
    assert status == 200 and reply["ok"], (prop, status, reply)
    return reply


async def test_saved_frames_are_listed_downloadable_and_nothing_outside_is(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    (tmp_path / "secret.fits").write_bytes(b"SIMPLE  = outside the upload directory")
    with web_daemon(home=tmp_path) as daemon:
        status, reply = await asyncio.to_thread(post, daemon.url + "web/api/command", b"{")
        assert status == 400 and not reply["ok"]
        await command(daemon, "CONNECTION", {"CONNECT": "On"})
        await command(daemon, "UPLOAD_SETTINGS", {"UPLOAD_DIR": str(frames),
                                                  "UPLOAD_PREFIX": "WEB_XXX"})
        await command(daemon, "UPLOAD_MODE", {"UPLOAD_LOCAL": "On"})
        await command(daemon, "CCD_FRAME_TYPE", {"FRAME_DARK": "On"})
        await command(daemon, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 2.0})
        listing: dict[str, Any] = {}
        async with asyncio.timeout(20):
            while not listing.get("frames"):
                await asyncio.sleep(0.1)
                listing = json.loads((await asyncio.to_thread(
                    get, daemon.url + "web/api/frames/0"))[1])
        [saved] = listing["frames"]
        assert saved["name"] == "WEB_001.fits"
        assert saved["frame_type"] == "Dark"
        assert abs(saved["exposure_s"] - 2.0) < 1e-3  # whole line periods
        status, body = await asyncio.to_thread(get, daemon.url.rstrip("/") + saved["url"])
        assert status == 200 and body == (frames / "WEB_001.fits").read_bytes()

        for name in ("..%2Fsecret.fits", "%2E%2E%2Fsecret.fits", "..%5Csecret.fits",
                     "%2Fetc%2Fpasswd", ".%2E%2F.%2E%2Fsecret.fits"):
            status, body = await asyncio.to_thread(
                get, daemon.url + f"web/api/frames/0/{name}")
            assert status in (403, 404), name
            assert b"SIMPLE" not in body

        async with asyncio.timeout(20):  # the preview is made after the frame is saved
            while (found := await asyncio.to_thread(get, daemon.url + "web/api/header/0")
                   )[0] == 404:
                await asyncio.sleep(0.1)
        status, header = found
        assert status == 200 and b"EXPTIME" in header and b"FRAME   = 'Dark" in header
        assert state(daemon)["cameras"][0]["gain"] is not None


async def test_feed_pushes_changes_an_indi_client_makes(tmp_path: Path) -> None:
    with web_daemon(home=tmp_path) as daemon:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(daemon.url + "web/ws") as feed:
            first = json.loads((await feed.receive(timeout=10)).data)
            assert first["cameras"][0]["state"] == "Disconnected"
            assert {"history", "log", "messages", "clients"} <= set(first)
            async with IndiClient.connect(HOST, daemon.running.port) as client:
                await connect_camera(client)
                async with asyncio.timeout(20):
                    while True:
                        update = json.loads((await feed.receive()).data)
                        cameras = update.get("cameras")
                        if cameras and cameras[0]["state"] == "Idle":
                            break
                assert any(c["kind"] == "INDI" for c in update["clients"])
                assert any(c["kind"] == "web" for c in update["clients"])


async def test_page_and_alpaca_share_one_port_and_both_clients_are_listed(
    tmp_path: Path,
) -> None:
    from tests.support.processes import free_port

    port = free_port()
    with web_daemon("--alpaca", "--alpaca-port", str(port), "--no-alpaca-discovery",
                    home=tmp_path, web_port=port) as daemon:
        status, page = await asyncio.to_thread(get, daemon.url)
        assert status == 200 and b"/web/static/app.js" in page
        status, versions = await asyncio.to_thread(get, daemon.url + "management/apiversions")
        assert status == 200 and json.loads(versions)["Value"] == [1]
        kinds = {client["kind"] for client in state(daemon)["clients"]}
        assert kinds == {"web", "Alpaca"}


async def test_the_mqtt_broker_connection_is_listed_among_the_clients(tmp_path: Path) -> None:
    from tests.telemetry.broker import mosquitto

    with mosquitto(tmp_path / "broker") as broker:
        config = tmp_path / "config.toml"
        config.write_text(f'[mqtt]\nenabled = true\nhost = "{HOST}"\nport = {broker.port}\n')
        with web_daemon("--config", str(config), home=tmp_path) as daemon:
            async with asyncio.timeout(15):
                while True:
                    mqtt = [c for c in state(daemon)["clients"] if c["kind"] == "MQTT"]
                    if mqtt and mqtt[0]["connected"]:
                        break
                    await asyncio.sleep(0.1)
            assert mqtt[0]["address"] == f"{HOST}:{broker.port}"
            assert mqtt[0]["read_only"]  # no mqtt.commands: it only publishes
            assert abs(mqtt[0]["since"] - time.time()) < 60  # when its session began


async def test_an_address_outside_allow_gets_nothing_of_the_page(tmp_path: Path) -> None:
    with web_daemon("--allow", "10.0.0.0/8", home=tmp_path) as daemon:
        for path in ("", "web/static/app.js", "web/api/state", "web/api/frames/0"):
            status, body = await asyncio.to_thread(get, daemon.url + path)
            assert status == 403, path
            assert b"QHY" not in body
        status, _ = await asyncio.to_thread(
            post, daemon.url + "web/api/command",
            {"camera": 0, "property": "CONNECTION", "values": {"CONNECT": "On"}})
        assert status == 403


async def test_each_camera_is_its_own_and_commands_reach_only_the_one_named(
    tmp_path: Path,
) -> None:
    with web_daemon("--simulators", "2", home=tmp_path) as daemon:
        names = [camera["name"] for camera in state(daemon)["cameras"]]
        assert len(names) == 2 and len(set(names)) == 2
        status, reply = await asyncio.to_thread(
            post, daemon.url + "web/api/command",
            {"camera": 1, "property": "CONNECTION", "values": {"CONNECT": "On"}})
        assert status == 200 and reply["ok"], reply
        cameras = state(daemon)["cameras"]
        assert [c["connected"] for c in cameras] == [False, True]
        status, reply = await asyncio.to_thread(
            post, daemon.url + "web/api/command",
            {"camera": 2, "property": "CONNECTION", "values": {"CONNECT": "On"}})
        assert status == 400 and "no camera 2" in reply["message"]


async def test_the_clients_list_is_pushed_when_a_client_comes_and_goes(tmp_path: Path) -> None:
    """With the camera idle nothing else changes: the push comes from the connection itself."""
    def indi_clients(update: dict[str, object]) -> int:
        listed = update.get("clients")
        assert isinstance(listed, list)
        return sum(1 for c in listed if c["kind"] == "INDI")

    async def next_clients(feed: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
        while True:
            update = json.loads((await feed.receive()).data)
            if "clients" in update:
                return dict(update)

    with web_daemon(home=tmp_path) as daemon:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(daemon.url + "web/ws") as feed:
            first = json.loads((await feed.receive(timeout=10)).data)
            assert indi_clients(first) == 0
            async with asyncio.timeout(10):
                async with IndiClient.connect(HOST, daemon.running.port):  # says nothing
                    while indi_clients(await next_clients(feed)) != 1:
                        pass
                while indi_clients(await next_clients(feed)) != 0:
                    pass
