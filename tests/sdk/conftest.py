"""Fixtures for the SDK backend on the stub library: in this process, and the over-the-wire
clients of tests/camera (`main`, `blob_link`, `client`), which connect to the `server` of
the module that uses them (a daemon on the SDK backend there)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from qhy42_indi.backends.qhysdk import SdkBackend, SdkRuntime
from tests.camera.test_capture_over_the_wire import blob_link, main  # noqa: F401
from tests.camera.test_cooling_and_config import client  # noqa: F401
from tests.sdk.stub import StubHooks, build_stub


@pytest.fixture(scope="session")
def stub_path() -> Path:
    return build_stub()


@pytest.fixture
def runtime(stub_path: Path) -> Iterator[SdkRuntime]:
    sdk = SdkRuntime.load(str(stub_path))
    sdk.start()
    try:
        yield sdk
    finally:
        sdk.stop()


@pytest.fixture
def hooks(runtime: SdkRuntime) -> Iterator[StubHooks]:
    stub = StubHooks(runtime.library.cdll)
    stub.come_back()
    yield stub
    stub.come_back()


@pytest.fixture
async def backend(runtime: SdkRuntime, hooks: StubHooks) -> AsyncIterator[SdkBackend]:
    camera = SdkBackend(runtime)
    await camera.open()
    try:
        yield camera
    finally:
        await camera.close()
