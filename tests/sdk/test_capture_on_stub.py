"""The capture-flow tests of tests/camera, run against the daemon on the SDK backend
(`--backend sdk` over the stub libqhyccd): the same test functions, another server.

Only tests that do not depend on the simulator's physics are taken (wire order, geometry,
abort, limits, uploads, FITS header); the rest stay simulator-only. A few SDK-specific
checks of the same flows follow.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.camera.test_capture_over_the_wire import (  # noqa: F401 (the tests taken)
    reset_camera,
    test_8_bit_capture_format_gives_byte_images,
    test_a_failing_upload_directory_is_alert_with_the_reason_and_no_file,
    test_a_new_exposure_aborts_the_running_one,
    test_abort_sets_exposure_idle_and_sends_no_blob,
    test_bias_forces_the_minimum_exposure,
    test_custom_fits_keywords_and_scope_info_reach_the_header,
    test_fast_exposure_chains_frames_without_new_commands,
    test_local_upload_saves_the_file_and_sends_no_blob,
    test_out_of_range_exposure_is_alert_with_the_limits,
    test_read_only_property_is_refused_with_a_message,
    test_sensor_controls_reach_the_backend_and_the_header,
    test_upload_both_saves_and_sends_the_same_bytes,
)
from tests.sdk.daemon import sdk_daemon
from tests.support.camera import (
    DEVICE,
    blobs,
    decode_fits,
    expose,
    image,
    number,
    set_numbers,
)
from tests.support.client import IndiClient, is_blob, is_def, is_set
from tests.support.processes import Running

# The fixtures `main` and `blob_link` come from tests/camera through tests/sdk/conftest.py;
# they connect to this module's `server`.


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with sdk_daemon("--device-name", DEVICE) as proc:
        yield proc


async def test_the_sdk_device_has_no_simulator_controls(main: IndiClient) -> None:
    sdk = await main.wait_for(is_def("SDK_VERSION"))
    assert sdk.elements[0].value == "V20240102_3"  # type: ignore[union-attr]
    # Everything the device defines has arrived once a ping sent after it is answered.
    start = len(main.received)
    await main.send("<pingRequest uid='all-defined'/>")
    await main.wait_for(lambda m: type(m).__name__ == "PingReply", start=start)
    assert not any(is_def("SIM_SCENE")(m) for m in main.received)


async def test_binned_roi_frame_in_libindi_order_from_the_sdk(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    await set_numbers(main, "CCD_BINNING", HOR_BIN=2, VER_BIN=2)
    start = await set_numbers(main, "CCD_FRAME", X=512, Y=768, WIDTH=1024, HEIGHT=512)
    await main.wait_for(is_set("CCD_FRAME", "Ok"), start=start)
    blob_start = len(blob_link.received)
    start = await expose(main, 1.2)
    values = [(m.state, number(m, "CCD_EXPOSURE_VALUE")) for m in main.received[start:]
              if is_set("CCD_EXPOSURE")(m)]
    assert values[0] == ("Busy", 1.2) and values[-1] == ("Ok", 0)
    assert all(state == "Busy" for state, _ in values[:-1]) and len(values) >= 3
    await blob_link.wait_for(is_set("CCD_EXPOSURE", "Ok"), start=blob_start)
    order = [("BLOB" if is_blob(m) else m.state) for m in blob_link.received[blob_start:]
             if is_blob(m) or is_set("CCD_EXPOSURE")(m)]
    assert order[-2:] == ["BLOB", "Ok"] and order.count("BLOB") == 1
    with decode_fits(blobs(blob_link.received[blob_start:])[0]) as hdus:
        header, pixels = hdus[0].header, image(hdus)
        assert pixels.shape == (256, 512)
        assert (header["XBINNING"], header["READMODE"], header["OFFSET"]) == (
            2, "STD High Gain", 140)
        assert not np.any(pixels.astype(np.uint16) & 0x000F)
    await set_numbers(main, "CCD_BINNING", HOR_BIN=1, VER_BIN=1)


async def test_hdr_read_mode_from_the_sdk_is_4096_wide(
    main: IndiClient, blob_link: IndiClient
) -> None:
    await reset_camera(main)
    start = await set_numbers(main, "READ_MODE", MODE=0)
    info = await main.wait_for(is_set("CCD_INFO"), start=start)
    assert (number(info, "CCD_MAX_X"), number(info, "CCD_MAX_Y")) == (4096, 2048)
    blob_start = len(blob_link.received)
    await expose(main, 0.05)
    await blob_link.wait_for(is_blob, start=blob_start)
    with decode_fits(blobs(blob_link.received[blob_start:])[0]) as hdus:
        assert image(hdus).shape == (2048, 4096)
        assert hdus[0].header["READMODE"] == "HDR"
