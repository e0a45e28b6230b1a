"""What the SDK backend says when no camera answers the scan: a sentence a user can read."""

from __future__ import annotations

import pytest

from qhy42_indi.backends.base import CameraGone
from qhy42_indi.backends.qhysdk import SdkBackend, SdkRuntime
from tests.sdk.stub import StubHooks


async def test_no_camera_at_all_is_said_plainly(runtime: SdkRuntime, hooks: StubHooks) -> None:
    hooks.vanish()
    with pytest.raises(CameraGone) as gone:
        await SdkBackend(runtime).open()
    assert "no QHY42PRO is connected" in str(gone.value)
    assert "is not connected" not in str(gone.value)


async def test_a_named_camera_that_is_missing_is_named(runtime: SdkRuntime,
                                                       hooks: StubHooks) -> None:
    hooks.vanish()
    with pytest.raises(CameraGone, match="QHY42PRO-012345 is not connected"):
        await SdkBackend(runtime, "QHY42PRO-012345").open()
