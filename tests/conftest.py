"""Test-wide settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qhy42_indi.config import CONFIG_ENV


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The daemons and command lines under test read no /etc/qhy42-indi/config.toml of the
    machine running the tests (a Pi with the service installed has one): $QHY42_INDI_CONFIG
    empty means no file. Tests that want a file pass --config."""
    monkeypatch.setenv(CONFIG_ENV, "")
    # Nor the vendor's libqhyccd that `make test` installs (the qhyccd wheel): a daemon on
    # `--backend auto` would init and scan it at every start. The tests of the SDK backend
    # name their library (the stub, or the real one) themselves.
    monkeypatch.setenv("QHY42_LIBQHYCCD", "/nonexistent/libqhyccd.so")
    yield
