"""MQTT telemetry against a real mosquitto: retained state, last will, frame events, outages,
commands, Home Assistant discovery, credentials.

Each test starts its own broker and daemon on 127.0.0.1 and free ports, drives the camera
over INDI as a client would, and watches the broker as a subscriber would. Every wait is
bounded; everything started is stopped.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

from tests.service.logs import logged
from tests.support.camera import (
    answered,
    connect_camera,
    expose,
    number,
    set_numbers,
)
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, daemon
from tests.telemetry.broker import Broker, mosquitto, publish, subscribed

PREFIX = "obs/qhy42"
DEVICE_TOPIC = f"{PREFIX}/qhy_ccd_qhy42pro-sim01"
STATUS = f"{PREFIX}/status"


def topic(leaf: str) -> str:
    return f"{DEVICE_TOPIC}/{leaf}"


def write_config(tmp_path: Path, broker: Broker, mqtt: str = "", extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        "[mqtt]\n"
        "enabled = true\n"
        f'host = "{HOST}"\n'
        f"port = {broker.port}\n"
        f'topic_prefix = "{PREFIX}"\n'
        "keepalive_s = 5\n"
        "reconnect_max_s = 1.0\n"
        f"{mqtt}\n{extra}\n"
    )
    return path


async def test_retained_state_reaches_a_subscriber_that_comes_later(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker, \
            daemon("--config", str(write_config(tmp_path, broker))) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            start = await set_numbers(client, "CCD_GAIN", GAIN=12)
            await answered(client, "CCD_GAIN", start)
            start = await set_numbers(client, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-5)
            await client.wait_for(is_set("CCD_TEMPERATURE"), start=start)
            async with subscribed(broker, f"{PREFIX}/#") as first:
                await first.wait_for(topic("gain"), lambda r: r.json()["value"] == 12)
                await first.wait_for(topic("setpoint"), lambda r: r.json()["value"] == -5)
            # Everything is on the broker now: a newcomer gets it all, retained.
            async with subscribed(broker, f"{PREFIX}/#") as late:
                status = await late.wait_for(STATUS)
                assert (status.payload, status.retain) == (b"online", True)
                expected = {
                    "connection": lambda p: p["value"] == "connected",
                    "gain": lambda p: p["value"] == 12,
                    "setpoint": lambda p: p["value"] == -5 and p["unit"] == "C",
                    "temperature": lambda p: isinstance(p["value"], float) and p["unit"] == "C",
                    "cooler": lambda p: p["value"] == "on" and p["mode"] == "automatic",
                    "cooler_power": lambda p: 0 <= p["value"] <= 100 and p["unit"] == "%",
                    "supply_voltage": lambda p: 11 < p["value"] < 14 and p["unit"] == "V",
                    "read_mode": lambda p: p["value"] == 1 and "High Gain" in p["name"],
                    "offset": lambda p: isinstance(p["value"], float),
                    "exposure": lambda p: p["state"] == "idle",
                }
                for leaf, check in expected.items():
                    received = await late.wait_for(topic(leaf))
                    assert received.retain, leaf
                    payload = received.json()
                    assert check(payload), (leaf, payload)
                    assert datetime.fromisoformat(payload["time"])


async def test_the_last_will_says_offline_when_the_daemon_is_killed(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker)
        async with subscribed(broker, STATUS) as watcher:
            with daemon("--config", str(config)) as proc:
                await watcher.wait_for(STATUS, lambda r: r.payload == b"online")
                seen = len(watcher.received)
                proc.process.kill()
                proc.process.wait(10)
                await watcher.wait_for(STATUS, lambda r: r.payload == b"offline", start=seen)
            # The offline status stays for whoever asks later.
            async with subscribed(broker, STATUS) as late:
                assert (await late.wait_for(STATUS)).payload == b"offline"
            # A clean stop says offline too (the daemon says it; no will is sent then).
            with daemon("--config", str(config)) as proc:
                seen = len(watcher.received)
                await watcher.wait_for(STATUS, lambda r: r.payload == b"online", start=seen)
                seen = len(watcher.received)
                proc.process.terminate()
                assert proc.process.wait(15) == 0
                await watcher.wait_for(STATUS, lambda r: r.payload == b"offline", start=seen)


async def test_one_frame_event_per_exposure_with_path_size_exposure_and_start(
    tmp_path: Path,
) -> None:
    frames_dir = tmp_path / "frames"
    upload = f'[upload]\ndir = "{frames_dir}"\nprefix = "F_XXX"\nmode = "both"\n'
    with mosquitto(tmp_path / "broker") as broker, \
            daemon("--config", str(write_config(tmp_path, broker, extra=upload))) as proc:
        async with subscribed(broker, topic("frame"), topic("exposure")) as watcher, \
                IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            await client.wait_for(lambda m: is_set("UPLOAD_SETTINGS")(m)
                                  and str(frames_dir) in repr(m))
            for exposure_s in (0.05, 0.1, 0.02):
                await expose(client, exposure_s)
            events = [await watcher.wait_for(topic("frame"), lambda r, n=n: r.json()[
                "sequence"] == n) for n in (1, 2, 3)]
            for event, exposure_s in zip(events, (0.05, 0.1, 0.02), strict=True):
                payload = event.json()
                assert not event.retain
                path = Path(payload["path"])
                assert path.parent == frames_dir and path.name.startswith("F_")
                assert payload["size"] == path.stat().st_size
                assert payload["format"] == ".fits"
                assert abs(payload["exposure_s"] - exposure_s) < 1e-3  # whole line periods
                assert payload["frame_type"] == "Light Frame"
                # DATE-OBS has microseconds; INDI timestamps whole seconds.
                started = datetime.fromisoformat(payload["start"])
                assert started <= datetime.fromisoformat(payload["time"]) + timedelta(seconds=1)
            assert len(watcher.on(topic("frame"))) == 3
            # State topics carry the latest state (updates waiting together are merged): the
            # last exposure's end is there.
            last = await watcher.wait_for(
                topic("exposure"),
                lambda r: r.json()["state"] == "complete" and r.json()["requested_s"] == 0.02)
            assert last.json()["progress"] == 1.0 and last.json()["left_s"] == 0


async def test_a_frame_saved_only_locally_gets_its_event_from_the_file(tmp_path: Path) -> None:
    upload = f'[upload]\ndir = "{tmp_path / "frames"}"\nmode = "local"\n'
    with mosquitto(tmp_path / "broker") as broker, \
            daemon("--config", str(write_config(tmp_path, broker, extra=upload))) as proc:
        async with subscribed(broker, topic("frame")) as watcher, \
                IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            await client.wait_for(is_set("UPLOAD_MODE"))
            await expose(client, 0.2)
            payload = (await watcher.wait_for(topic("frame"))).json()
            assert payload["size"] == Path(payload["path"]).stat().st_size
            assert abs(payload["exposure_s"] - 0.2) < 1e-3
            assert payload["start"] is not None


async def test_capturing_goes_on_while_the_broker_is_down_and_state_is_republished(
    tmp_path: Path,
) -> None:
    with mosquitto(tmp_path / "broker") as broker, \
            daemon("--config", str(write_config(tmp_path, broker))) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            # A persistent subscriber: the broker keeps what it misses while away.
            async with subscribed(broker, f"{PREFIX}/#", identifier="watcher",
                                  clean=False) as watcher:
                await watcher.wait_for(topic("connection"),
                                       lambda r: r.json()["value"] == "connected")
            broker.stop()
            for exposure_s in (0.05, 0.05):
                await expose(client, exposure_s)  # asserts CCD_EXPOSURE Ok: the camera went on
            start = await set_numbers(client, "CCD_GAIN", GAIN=33)
            reply = await answered(client, "CCD_GAIN", start)
            assert number(reply, "GAIN") == 33
            broker.start()
            async with subscribed(broker, f"{PREFIX}/#", identifier="watcher",
                                  clean=False) as watcher:
                await watcher.wait_for(STATUS, lambda r: r.payload == b"online")
                await watcher.wait_for(topic("gain"), lambda r: r.json()["value"] == 33)
                # The two frames taken during the outage were kept and sent on reconnection.
                await watcher.wait_for(topic("frame"), lambda r: r.json()["sequence"] == 2)
                assert {r.json()["sequence"] for r in watcher.on(topic("frame"))} == {1, 2}
            assert "MQTT: connected" in proc.log()
            await logged(proc, "the camera goes on")


async def test_the_daemon_serves_without_a_broker_and_connects_when_one_appears(
    tmp_path: Path,
) -> None:
    broker_dir = tmp_path / "broker"
    with mosquitto(broker_dir) as broker:
        config = write_config(tmp_path, broker)
        broker.stop()
        with daemon("--config", str(config)) as proc:
            async with IndiClient.connect(HOST, proc.port) as client:
                await connect_camera(client)
                await expose(client, 0.05)
            broker.start()
            async with subscribed(broker, f"{PREFIX}/#") as watcher:
                await watcher.wait_for(STATUS, lambda r: r.payload == b"online")
                await watcher.wait_for(topic("connection"),
                                       lambda r: r.json()["value"] == "connected")


async def test_commands_only_for_listed_properties_and_through_the_device_checks(
    tmp_path: Path,
) -> None:
    commands = 'commands = ["CONNECTION", "CCD_GAIN", "CCD_EXPOSURE"]'
    with mosquitto(tmp_path / "broker") as broker, \
            daemon("--config", str(write_config(tmp_path, broker, commands))) as proc:
        async with subscribed(broker, f"{PREFIX}/#") as watcher:
            await watcher.wait_for(STATUS, lambda r: r.payload == b"online")
            result = topic("set_result")

            async def command(name: str, payload: str) -> dict[str, object]:
                seen = len(watcher.received)
                await publish(broker, topic(f"set/{name}"), payload)
                answer = await watcher.wait_for(
                    result, lambda r: r.json()["property"] == name, start=seen)
                return dict(answer.json())

            assert await command("CONNECTION", "CONNECT") == {
                "property": "CONNECTION", "accepted": True, "state": "Ok"}
            await watcher.wait_for(topic("connection"),
                                   lambda r: r.json()["value"] == "connected")
            answer = await command("CCD_GAIN", json.dumps({"GAIN": 40}))
            assert answer["accepted"] and answer["state"] == "Ok"
            await watcher.wait_for(topic("gain"), lambda r: r.json()["value"] == 40)
            # The device's own limits apply, as to an INDI client.
            answer = await command("CCD_GAIN", json.dumps({"GAIN": 100000}))
            assert answer["state"] == "Alert" and "out of range" in str(answer["message"])
            # Not in mqtt.commands: refused, nothing changes.
            answer = await command("CCD_OFFSET", json.dumps({"OFFSET": 3}))
            assert answer == {"property": "CCD_OFFSET", "accepted": False,
                              "reason": "CCD_OFFSET is not in mqtt.commands"}
            answer = await command("CCD_GAIN", json.dumps({"NOPE": 1}))
            assert answer["accepted"] is False and "no member NOPE" in str(answer["reason"])
            # A bare number for a one-number property: an exposure, and its frame event.
            answer = await command("CCD_EXPOSURE", "0.05")
            assert answer["accepted"]
            await watcher.wait_for(topic("frame"), lambda r: r.json()["sequence"] == 1)
        async with IndiClient.connect(HOST, proc.port) as client:
            await client.send("<getProperties version='1.7'/>")
            gain = await client.wait_for(lambda m: getattr(m, "name", "") == "CCD_GAIN")
            assert number(gain, "GAIN") == 40
        assert "CCD_OFFSET: MQTT command refused: CCD_OFFSET is not in mqtt.commands" in (
            proc.log())


async def test_home_assistant_discovery_describes_the_state_topics(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, "homeassistant = true")
        with daemon("--config", str(config)):
            node = "qhy42-indi_qhy_ccd_qhy42pro-sim01"
            async with subscribed(broker, "homeassistant/#") as first:
                await first.wait_for(f"homeassistant/sensor/{node}/last_frame/config")
            # All sent: a newcomer (Home Assistant starting later) gets them retained.
            async with subscribed(broker, "homeassistant/#", f"{PREFIX}/#") as watcher:
                temperature = await watcher.wait_for(
                    f"homeassistant/sensor/{node}/temperature/config")
                config_payload = temperature.json()
                assert temperature.retain
                assert config_payload["state_topic"] == topic("temperature")
                assert config_payload["availability_topic"] == STATUS
                assert config_payload["unit_of_measurement"] == "°C"
                assert config_payload["device"]["identifiers"] == [node]
                connected = await watcher.wait_for(
                    f"homeassistant/binary_sensor/{node}/connection/config")
                assert connected.json()["device_class"] == "connectivity"
                # What the discovery points at exists.
                await watcher.wait_for(connected.json()["state_topic"])


async def test_credentials_are_used_and_a_refusal_does_not_stop_the_camera(
    tmp_path: Path,
) -> None:
    with mosquitto(tmp_path / "broker", users={"dome": "s3cret"}) as broker:
        good = write_config(tmp_path, broker, 'username = "dome"\npassword = "s3cret"')
        with daemon("--config", str(good)):
            async with subscribed(broker, STATUS, username="dome", password="s3cret") as watcher:
                await watcher.wait_for(STATUS, lambda r: r.payload == b"online")
        bad = tmp_path / "bad.toml"
        bad.write_text(good.read_text().replace("s3cret", "wrong"))
        with daemon("--config", str(bad)) as proc:
            async with IndiClient.connect(HOST, proc.port) as client:
                await connect_camera(client)
                await expose(client, 0.05)
            line = await logged(proc, "the camera goes on")
            assert "not authori" in line.lower(), line



async def test_a_broker_that_accepts_but_never_answers_does_not_hold_the_camera(
    tmp_path: Path,
) -> None:
    """A hung broker: TCP connects, MQTT never answers. Exposures go on meanwhile."""
    accepted = asyncio.Event()

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(black_hole, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    config = write_config(tmp_path, Broker(port, tmp_path))
    try:
        with daemon("--config", str(config)) as proc:
            async with IndiClient.connect(HOST, proc.port) as client:
                async with asyncio.timeout(20):
                    await accepted.wait()
                await connect_camera(client)
                for _ in range(3):
                    await expose(client, 0.05)
            assert "MQTT: connected" not in proc.log()
    finally:
        server.close()
        await server.wait_closed()
