"""The camera as Ekos drives it, over real TCP against the daemon on the simulator.

Two connections as KStars opens them (main with enableBLOB Never, a second with Only for CCD1),
the libindi wire order, and FITS files checked against the sensor model.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pybase64
import pytest
from astropy.io import fits

from qhy42_indi.backends import sensor_model
from qhy42_indi.backends.base import Channel
from qhy42_indi.indi.messages import Message, SetVector, TextElement
from tests.support.camera import (
    DEVICE,
    answered,
    blobs,
    connect_camera,
    decode_fits,
    expose,
    image,
    number,
    set_numbers,
    set_switch,
    set_texts,
)
from tests.support.client import IndiClient, is_blob, is_def, is_set
from tests.support.processes import HOST, Running, daemon


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with daemon() as proc:
        yield proc


@pytest.fixture
async def main(server: Running) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await connect_camera(client)
        await client.send(f"<enableBLOB device='{DEVICE}'>Never</enableBLOB>")
        yield client


@pytest.fixture
async def blob_link(server: Running, main: IndiClient) -> AsyncIterator[IndiClient]:
    async with IndiClient.connect(HOST, server.port) as client:
        await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
        await client.send(f"<enableBLOB device='{DEVICE}' name='CCD1'>Only</enableBLOB>")
        await client.send("<pingRequest uid='ready'/>")
        await client.wait_for(lambda m: type(m).__name__ == "PingReply")
        yield client


async def reset_camera(client: IndiClient) -> None:
    for name, member in (("CCD_FRAME_RESET", "RESET"), ("SIM_SCENE", "SCENE_DARK"),
                         ("UPLOAD_MODE", "UPLOAD_CLIENT"), ("CCD_FRAME_TYPE", "FRAME_LIGHT"),
                         ("CCD_CAPTURE_FORMAT", "INDI_MONO_16"),
                         ("CCD_COMPRESSION", "INDI_DISABLED")):
        if name.startswith("SIM_") and not any(is_def(name)(m) for m in client.received):
            continue  # not the simulator: tests/sdk runs these tests on the SDK backend
        await answered(client, name, await set_switch(client, name, member))
    await answered(client, "READ_MODE", await set_numbers(client, "READ_MODE", MODE=1))
    await answered(client, "CCD_GAIN", await set_numbers(client, "CCD_GAIN", GAIN=10))


async def test_dark_frame_as_ekos_takes_it(main: IndiClient, blob_link: IndiClient) -> None:
    await reset_camera(main)
    await answered(main, "CCD_BINNING", await set_numbers(main, "CCD_BINNING", HOR_BIN=2,
                                                          VER_BIN=2))
    frame = await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=512, Y=768, WIDTH=1024, HEIGHT=512))
    assert frame.state == "Ok"
    await answered(main, "CCD_GAIN", await set_numbers(main, "CCD_GAIN", GAIN=20))
    blob_start = len(blob_link.received)
    start = await expose(main, 1.5)

    # Main connection: Busy(1.5), Busy countdown, Ok(0); never the image.
    exposure = [m for m in main.received[start:] if is_set("CCD_EXPOSURE")(m)]
    values = [(m.state, number(m, "CCD_EXPOSURE_VALUE")) for m in exposure]
    assert values[0] == ("Busy", 1.5)
    assert all(state == "Busy" for state, _ in values[:-1]) and values[-1] == ("Ok", 0)
    countdown = [v for _, v in values[1:-1]]
    assert countdown and countdown == sorted(countdown, reverse=True)
    assert not blobs(main.received)

    # BLOB connection: the BLOB arrives between the last Busy and the Ok.
    await blob_link.wait_for(is_set("CCD_EXPOSURE", "Ok"), start=blob_start)
    order = [("BLOB" if is_blob(m) else m.state) for m in blob_link.received[blob_start:]
             if is_blob(m) or is_set("CCD_EXPOSURE")(m)]
    assert order[-2:] == ["BLOB", "Ok"] and order.count("BLOB") == 1
    (blob,) = blobs(blob_link.received[blob_start:])
    assert blob.format == ".fits"

    with decode_fits(blob) as hdus:
        header, pixels = hdus[0].header, image(hdus)
        assert pixels.shape == (256, 512)  # 512 rows x 1024 columns at 2x2
        for key, value in {"XBINNING": 2, "YBINNING": 2, "GAIN": 20, "OFFSET": 140,
                           "FRAME": "Light", "IMAGETYP": "Light Frame", "INSTRUME": DEVICE,
                           "PIXSIZE1": 11.0, "XPIXSZ": 22.0, "READMODE": "STD High Gain",
                           "ROWORDER": "TOP-DOWN", "BZERO": 32768, "BITPIX": 16}.items():
            assert header[key] == value, key
        assert math.isclose(header["EXPTIME"], 1.5, abs_tol=1e-4)
        assert len(header["DATE-OBS"].split(".")[1]) == 6  # microseconds
        check_dark_statistics(pixels, header, bin_count=4)


def check_dark_statistics(pixels: np.ndarray, header: dict, bin_count: int) -> None:
    """Pedestal, dark signal and noise of a dark frame against the sensor model."""
    gain = sensor_model.e_per_adu(Channel.HIGH_GAIN, int(header["GAIN"]))
    dark_e = sensor_model.dark_current_e_per_s(float(header["CCD-TEMP"])) * header["EXPTIME"]
    expected_adu12 = sensor_model.pedestal_adu(int(header["OFFSET"])) + dark_e / gain
    read_e = sensor_model.HIGH_GAIN.read_noise_e
    # Averaging n pixels divides the variance by n; rounding adds (n - 1) / 12 / n**2 per bin.
    noise_adu12 = math.sqrt((read_e**2 + dark_e) / gain**2 / bin_count)
    values = pixels.astype(np.float64) / 16.0
    clean = values[np.abs(values - np.median(values)) < 8 * noise_adu12]  # no hot pixels
    assert abs(np.median(values) - expected_adu12) < 0.05 * expected_adu12
    assert 0.8 * noise_adu12 < clean.std() < 1.25 * noise_adu12


async def test_unbinned_frame_holds_12_bit_data_in_16_bit_words(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=1024, WIDTH=512, HEIGHT=256))
    start = len(blob_link.received)
    await expose(main, 0.5)
    await blob_link.wait_for(is_blob, start=start)
    with decode_fits(blobs(blob_link.received[start:])[0]) as hdus:
        pixels = image(hdus)
        assert pixels.shape == (256, 512)
        assert not np.any(pixels.astype(np.uint16) & 0x000F)  # low 4 bits zero
        check_dark_statistics(pixels, hdus[0].header, bin_count=1)


async def test_8_bit_capture_format_gives_byte_images(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_CAPTURE_FORMAT", await set_switch(
        main, "CCD_CAPTURE_FORMAT", "INDI_MONO_8"))
    start = len(blob_link.received)
    await expose(main, 0.1)
    await blob_link.wait_for(is_blob, start=start)
    with decode_fits(blobs(blob_link.received[start:])[0]) as hdus:
        assert hdus[0].header["BITPIX"] == 8
        pixels = image(hdus)
        assert pixels.dtype == np.uint8 and pixels.shape == (2048, 2048)
        # 140 ADU12 pedestal is 8.75 in the top 8 bits of the 16-bit word
        assert 7 <= np.median(pixels) <= 11
    await answered(main, "CCD_CAPTURE_FORMAT", await set_switch(
        main, "CCD_CAPTURE_FORMAT", "INDI_MONO_16"))


async def test_abort_sets_exposure_idle_and_sends_no_blob(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    start = await set_numbers(main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=5)
    await main.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=start)
    blob_start = len(blob_link.received)
    abort = await set_switch(main, "CCD_ABORT_EXPOSURE", "ABORT")
    reply = await answered(main, "CCD_ABORT_EXPOSURE", abort)
    assert reply.state == "Ok"
    idle = await main.wait_for(is_set("CCD_EXPOSURE", "Idle"), start=abort)
    assert number(idle, "CCD_EXPOSURE_VALUE") == 0
    await main.wait_quiet(1.0)
    assert not blobs(blob_link.received[blob_start:])
    assert not any(is_set("CCD_EXPOSURE", "Ok")(m) for m in main.received[abort:])


async def test_out_of_range_exposure_is_alert_with_the_limits(main: IndiClient) -> None:
    start = await set_numbers(main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=400)
    reply = await answered(main, "CCD_EXPOSURE", start)
    assert reply.state == "Alert"
    assert reply.message is not None and "[2e-05, 300]" in reply.message


async def test_a_new_exposure_aborts_the_running_one(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=64))
    first = await set_numbers(main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=30)
    await main.wait_for(is_set("CCD_EXPOSURE", "Busy"), start=first)
    blob_start = len(blob_link.received)
    await expose(main, 0.2)
    await blob_link.wait_for(is_set("CCD_EXPOSURE", "Ok"), start=blob_start)
    (blob,) = blobs(blob_link.received[blob_start:])
    with decode_fits(blob) as hdus:
        assert math.isclose(hdus[0].header["EXPTIME"], 0.2, abs_tol=1e-4)


async def test_bias_forces_the_minimum_exposure(main: IndiClient, blob_link: IndiClient) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME_TYPE", await set_switch(main, "CCD_FRAME_TYPE", "FRAME_BIAS"))
    start = len(blob_link.received)
    await expose(main, 10)
    await blob_link.wait_for(is_blob, start=start)
    with decode_fits(blobs(blob_link.received[start:])[0]) as hdus:
        assert hdus[0].header["FRAME"] == "Bias"
        assert hdus[0].header["EXPTIME"] < 0.001


async def test_fast_exposure_chains_frames_without_new_commands(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=0, WIDTH=256, HEIGHT=256))
    await answered(main, "CCD_FAST_COUNT", await set_numbers(main, "CCD_FAST_COUNT", FRAMES=3))
    await answered(main, "CCD_FAST_TOGGLE", await set_switch(main, "CCD_FAST_TOGGLE",
                                                             "INDI_ENABLED"))
    start = len(blob_link.received)
    main_start = await expose(main, 0.05)
    await blob_link.wait_for(is_set("CCD_EXPOSURE", "Ok"), start=start)
    frames = blobs(blob_link.received[start:])
    assert len(frames) == 3
    starts = []
    for blob in frames:
        with decode_fits(blob) as hdus:
            starts.append(hdus[0].header["DATE-OBS"])
    assert starts == sorted(starts) and len(set(starts)) == 3
    counts = [number(m, "FRAMES") for m in main.received[main_start:]
              if is_set("CCD_FAST_COUNT")(m)]
    assert counts[:2] == [2, 1] and counts[-1] == 0
    await answered(main, "CCD_FAST_TOGGLE", await set_switch(main, "CCD_FAST_TOGGLE",
                                                             "INDI_DISABLED"))


async def test_hdr_mode_gives_4096_by_2048_low_gain_left(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "SIM_FLAT_LEVEL", await set_numbers(main, "SIM_FLAT_LEVEL", LEVEL=20000))
    await answered(main, "SIM_SCENE", await set_switch(main, "SIM_SCENE", "SCENE_FLAT"))
    start = await set_numbers(main, "READ_MODE", MODE=0)
    info = await main.wait_for(is_set("CCD_INFO"), start=start)
    assert (number(info, "CCD_MAX_X"), number(info, "CCD_MAX_Y")) == (4096, 2048)
    frame = await main.wait_for(is_set("CCD_FRAME"), start=start)
    assert number(frame, "WIDTH") == 4096
    blob_start = len(blob_link.received)
    await expose(main, 0.2)
    await blob_link.wait_for(is_blob, start=blob_start)
    with decode_fits(blobs(blob_link.received[blob_start:])[0]) as hdus:
        pixels = image(hdus).astype(np.float64)
        assert pixels.shape == (2048, 4096)
        low, high = np.median(pixels[:, :2048]), np.median(pixels[:, 2048:])
        assert high > 5 * (low - 140 * 16)  # the same light, many more high-gain ADU

    merged_start = await set_switch(main, "HDR_OUTPUT", "HDR_MERGED")
    info = await main.wait_for(is_set("CCD_INFO"), start=merged_start)
    assert number(info, "CCD_MAX_X") == 2048
    blob_start = len(blob_link.received)
    await expose(main, 0.2)
    await blob_link.wait_for(is_blob, start=blob_start)
    with decode_fits(blobs(blob_link.received[blob_start:])[0]) as hdus:
        header = hdus[0].header
        assert image(hdus).shape == (2048, 2048)
        assert header["HDRMERGE"] is True and 8 < header["HDR_K"] < 25
    await answered(main, "HDR_OUTPUT", await set_switch(main, "HDR_OUTPUT", "HDR_DUAL"))


async def test_local_upload_saves_the_file_and_sends_no_blob(
    main: IndiClient, blob_link: IndiClient, tmp_path: Path
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=0, WIDTH=128, HEIGHT=64))
    await answered(main, "UPLOAD_SETTINGS", await set_texts(
        main, "UPLOAD_SETTINGS", UPLOAD_DIR=str(tmp_path / "night"), UPLOAD_PREFIX="M31_XXX"))
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_LOCAL"))
    blob_start = len(blob_link.received)
    start = await expose(main, 0.1)
    path_update = await main.wait_for(is_set("CCD_FILE_PATH", "Ok"), start=start)
    assert isinstance(path_update, SetVector)
    element = path_update.elements[0]
    assert isinstance(element, TextElement)
    saved = Path(element.value)
    assert saved == tmp_path / "night" / "M31_001.fits"
    with fits.open(saved) as hdus:
        assert hdus[0].data.shape == (64, 128)
    await main.wait_quiet(0.5)
    assert not blobs(blob_link.received[blob_start:])


async def test_a_failing_upload_directory_is_alert_with_the_reason_and_no_file(
    main: IndiClient, tmp_path: Path
) -> None:
    await reset_camera(main)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    await answered(main, "UPLOAD_SETTINGS", await set_texts(
        main, "UPLOAD_SETTINGS", UPLOAD_DIR=str(blocker / "sub"), UPLOAD_PREFIX="IMG_XXX"))
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_LOCAL"))
    start = await set_numbers(main, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.05)
    failed = await main.wait_for(is_set("CCD_EXPOSURE", "Alert"), start=start)
    assert isinstance(failed, SetVector) and failed.message
    assert str(blocker) in failed.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_CLIENT"))


async def test_custom_fits_keywords_and_scope_info_reach_the_header(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "FITS_HEADER", await set_texts(
        main, "FITS_HEADER", KEYWORD_NAME="object", KEYWORD_VALUE="M 31",
        KEYWORD_COMMENT="target"))
    await answered(main, "SCOPE_INFO", await set_numbers(
        main, "SCOPE_INFO", FOCAL_LENGTH=1000, APERTURE=200))
    start = len(blob_link.received)
    await expose(main, 0.01)
    await blob_link.wait_for(is_blob, start=start)
    with decode_fits(blobs(blob_link.received[start:])[0]) as hdus:
        header = hdus[0].header
        assert header["OBJECT"] == "M 31"
        assert header["FOCALLEN"] == 1000 and header["APTDIA"] == 200
        assert math.isclose(header["SCALE"], 11 / 1000 * 206.265, rel_tol=1e-3)
    await answered(main, "FITS_HEADER", await set_texts(
        main, "FITS_HEADER", KEYWORD_NAME="INDI_CLEAR", KEYWORD_VALUE="", KEYWORD_COMMENT=""))


async def test_read_only_property_is_refused_with_a_message(main: IndiClient) -> None:
    start = await set_numbers(main, "CCD_INFO", CCD_MAX_X=100)
    note = await main.wait_for(lambda m: isinstance(m, Message) and "read-only" in
                               (m.message or ""), start=start)
    assert note is not None


async def test_compression_sends_a_tile_compressed_fits_fz(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await answered(main, "SIM_SCENE", await set_switch(main, "SIM_SCENE", "SCENE_STARS"))
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=0, WIDTH=2048, HEIGHT=2048))
    await answered(main, "CCD_COMPRESSION", await set_switch(main, "CCD_COMPRESSION",
                                                             "INDI_ENABLED"))
    start = len(blob_link.received)
    await expose(main, 0.2)
    await blob_link.wait_for(is_blob, start=start)
    (blob,) = blobs(blob_link.received[start:])
    assert blob.format == ".fits.fz"
    with decode_fits(blob) as hdus:
        assert image(hdus).shape == (2048, 2048)
        assert isinstance(hdus[1], fits.CompImageHDU)
    assert b"ZCMPTYPE= 'RICE_1" in pybase64.b64decode(bytes(blob.data_b64))
    assert blob.size < 2048 * 2048 * 2  # it is smaller than the plain image
    await answered(main, "CCD_COMPRESSION", await set_switch(main, "CCD_COMPRESSION",
                                                             "INDI_DISABLED"))


async def test_upload_both_saves_and_sends_the_same_bytes(
    main: IndiClient, blob_link: IndiClient, tmp_path: Path
) -> None:
    await reset_camera(main)
    await answered(main, "CCD_FRAME", await set_numbers(
        main, "CCD_FRAME", X=0, Y=0, WIDTH=96, HEIGHT=48))
    await answered(main, "UPLOAD_SETTINGS", await set_texts(
        main, "UPLOAD_SETTINGS", UPLOAD_DIR=str(tmp_path), UPLOAD_PREFIX="BOTH_XXX"))
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_BOTH"))
    start = len(blob_link.received)
    await expose(main, 0.05)
    await blob_link.wait_for(is_blob, start=start)
    (blob,) = blobs(blob_link.received[start:])
    assert (tmp_path / "BOTH_001.fits").read_bytes() == pybase64.b64decode(bytes(blob.data_b64))
    await answered(main, "UPLOAD_MODE", await set_switch(main, "UPLOAD_MODE", "UPLOAD_CLIENT"))


async def test_sensor_controls_reach_the_backend_and_the_header(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    for name, values in (("USB_SPEED", {"SPEED": 2}), ("USB_TRAFFIC", {"TRAFFIC": 12}),
                         ("CCD_OFFSET", {"OFFSET": 60})):
        reply = await answered(main, name, await set_numbers(main, name, **values))
        assert reply.state == "Ok", name
    amp = await answered(main, "CCD_AMP_GLOW", await set_switch(main, "CCD_AMP_GLOW", "AMP_OFF"))
    assert amp.state == "Ok"
    heater = await answered(main, "CCD_HEATER", await set_switch(main, "CCD_HEATER",
                                                                 "HEATER_MID"))
    assert heater.state == "Ok"
    start = len(blob_link.received)
    await expose(main, 0.05)
    await blob_link.wait_for(is_blob, start=start)
    with decode_fits(blobs(blob_link.received[start:])[0]) as hdus:
        assert hdus[0].header["OFFSET"] == 60
        assert abs(np.median(image(hdus)) / 16 - 60) < 10
    await answered(main, "CCD_OFFSET", await set_numbers(main, "CCD_OFFSET", OFFSET=140))
    await answered(main, "USB_SPEED", await set_numbers(main, "USB_SPEED", SPEED=1))
    await answered(main, "CCD_AMP_GLOW", await set_switch(main, "CCD_AMP_GLOW", "AMP_AUTO"))
