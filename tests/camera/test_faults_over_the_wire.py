"""An observer's night under faults, replayed over TCP against the real daemon (simulator):
a disk that fills during a fast sequence, commands sent while the camera is unplugged, a
camera that returns with its settings (not the configuration file's defaults), and a
recording on a disk that fills up. Each ends with the camera usable and the client connected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from qhy42_indi.camera.ser import read_ser
from qhy42_indi.indi.messages import SetVector
from tests.support.camera import (
    DEVICE,
    answered,
    blobs,
    connect_camera,
    decode_fits,
    expose,
    messages_text,
    number,
    set_numbers,
    set_switch,
    set_texts,
)
from tests.support.client import IndiClient, is_blob, is_set
from tests.support.processes import HOST, Running, daemon
from tests.support.tmpfs import tmpfs


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    config = tmp_path / "config.toml"
    config.write_text("[camera.defaults]\nCCD_GAIN = { GAIN = 10 }\n")
    with daemon("--config", str(config), "--time-scale", "10", home=tmp_path) as proc:
        yield proc


@pytest.fixture
async def client(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await connect_camera(client)
        await client.wait_for(lambda m: is_set("CCD_GAIN")(m) and number(m, "GAIN") == 10)
        await client.send(f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>")
        yield client


async def small_frame(client: IndiClient, side: int = 128) -> None:
    await answered(client, "CCD_FRAME", await set_numbers(
        client, "CCD_FRAME", X=0, Y=0, WIDTH=side, HEIGHT=side))


async def still_connected(client: IndiClient) -> None:
    start = len(client.received)
    await client.send("<pingRequest uid='still-there'/>")
    await client.wait_for(lambda m: type(m).__name__ == "PingReply", start=start)
    assert not client.closed_by_server


async def unplug(client: IndiClient) -> None:
    start = await set_switch(client, "SIM_USB", "UNPLUGGED")
    await client.wait_for(is_set("CONNECTION", "Alert"), start=start)


async def test_a_fast_sequence_on_a_full_disk_ends_in_alert_and_the_camera_takes_the_next(
    client: IndiClient, tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "size=160k") as disk:
        await small_frame(client)  # 128x128x2: a few frames fill the disk
        await answered(client, "UPLOAD_SETTINGS", await set_texts(
            client, "UPLOAD_SETTINGS", UPLOAD_DIR=str(disk), UPLOAD_PREFIX="LIGHT_XXX"))
        await answered(client, "UPLOAD_MODE", await set_switch(client, "UPLOAD_MODE",
                                                               "UPLOAD_LOCAL"))
        await answered(client, "CCD_FAST_TOGGLE", await set_switch(client, "CCD_FAST_TOGGLE",
                                                                   "INDI_ENABLED"))
        await answered(client, "CCD_FAST_COUNT", await set_numbers(
            client, "CCD_FAST_COUNT", FRAMES=30))
        start = await set_numbers(client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)
        failed = await client.wait_for(is_set("CCD_EXPOSURE", "Alert"), 60, start=start)
        assert "disk is full" in (failed.message or ""), messages_text(client, start)

        # Nothing is left pending: abort answers Ok, and the next exposure is taken.
        aborted = await answered(client, "CCD_ABORT_EXPOSURE", await set_switch(
            client, "CCD_ABORT_EXPOSURE", "ABORT"))
        assert aborted.state == "Ok"
        await answered(client, "CCD_FAST_TOGGLE", await set_switch(client, "CCD_FAST_TOGGLE",
                                                                   "INDI_DISABLED"))
        await answered(client, "UPLOAD_MODE", await set_switch(client, "UPLOAD_MODE",
                                                               "UPLOAD_CLIENT"))
        start = await expose(client, 0.01)
        (blob,) = blobs(client.received[start:])
        with decode_fits(blob) as hdus:
            assert hdus[0].data.shape == (128, 128)
        assert not [p for p in disk.iterdir() if p.name.startswith(".")]  # no partial file


async def test_commands_while_the_camera_is_away_get_an_alert_and_the_client_stays(
    client: IndiClient, server: Running,
) -> None:
    await unplug(client)
    for name, values in (("CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": -10}),
                         ("CCD_GAIN", {"GAIN": 20}),
                         ("CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 1})):
        reply = await answered(client, name, await set_numbers(client, name, **values))
        assert reply.state == "Alert" and "away" in (reply.message or ""), name
    start = await set_switch(client, "CCD_VIDEO_STREAM", "STREAM_ON")
    reply = await answered(client, "CCD_VIDEO_STREAM", start)
    assert reply.state == "Alert" and "away" in (reply.message or "")
    await still_connected(client)
    assert "Traceback" not in server.log()


async def test_a_camera_that_returns_gets_the_clients_settings_not_the_files_defaults(
    client: IndiClient,
) -> None:
    await answered(client, "CCD_GAIN", await set_numbers(client, "CCD_GAIN", GAIN=33))
    await small_frame(client, 64)
    await unplug(client)
    back_from = await set_switch(client, "SIM_USB", "PLUGGED")
    back = await client.wait_for(is_set("CONNECTION", "Ok"), 30, start=back_from)
    assert "back" in (back.message or "")
    gains = [number(m, "GAIN") for m in client.received[back_from:] if is_set("CCD_GAIN")(m)]
    assert gains and set(gains) == {33}
    start = await expose(client, 0.01)
    (blob,) = blobs(client.received[start:])
    with decode_fits(blob) as hdus:
        assert hdus[0].header["GAIN"] == 33 and hdus[0].data.shape == (64, 64)
    # Later messages may still be in flight: nothing sets 10 again.
    await still_connected(client)
    late = [number(m, "GAIN") for m in client.received[back_from:] if is_set("CCD_GAIN")(m)]
    assert 10 not in late


async def test_a_recording_on_a_disk_that_fills_keeps_its_frames(
    client: IndiClient, tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "size=600k") as disk:
        await small_frame(client, 128)  # 32 KiB a frame: about 18 fit
        await answered(client, "STREAMING_EXPOSURE", await set_numbers(
            client, "STREAMING_EXPOSURE", STREAMING_EXPOSURE_VALUE=0.01))
        await answered(client, "RECORD_FILE", await set_texts(
            client, "RECORD_FILE", RECORD_FILE_DIR=str(disk), RECORD_FILE_NAME="occultation"))
        start = await set_switch(client, "RECORD_STREAM", "RECORD_ON")
        stopped = await client.wait_for(is_set("RECORD_STREAM", "Alert"), 60, start=start)
        text = stopped.message or "" if isinstance(stopped, SetVector) else ""
        assert "full" in text and "kept" in text, messages_text(client, start)
        ser = read_ser(disk / "occultation.ser")
        kept = int(text.split(" frames written before")[0].rsplit(" ", 1)[-1])
        assert kept > 0 and len(ser.frames) == kept
        assert ser.frames[0].shape == (128, 128)
        # Live mode ended with the recording; the camera takes exposures again.
        await small_frame(client, 32)
        assert is_blob(await client.wait_for(is_blob, 30, start=await set_numbers(
            client, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.01)))
