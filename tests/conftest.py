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
    yield
