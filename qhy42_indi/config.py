"""Daemon configuration: one TOML file, then command-line flags on top.

Every section and key is declared here with its type and default; an unknown key or a value
of the wrong type is an error at start that names the key. Not for INDI property values:
those are the device's own configuration (CONFIG_PROCESS).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/qhy42-indi/config.toml")


class ConfigError(ValueError):
    """A configuration file or flag that cannot be used; the message names the key."""


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 7624
    # indiserver's -d and -m: drop stream frames / disconnect a client this far behind.
    drop_stream_mb: float = 5.0
    max_behind_mb: float = 128.0
    # indiserver's -u: the abstract Unix socket where local libindi clients (KStars given
    # "localhost:/tmp/indiserver") get frames as shared memory. Empty: no local socket.
    local_socket: str = "/tmp/indiserver"


@dataclass
class CameraConfig:
    backend: str = "auto"
    device_name: str = ""
    simulators: int = 1
    # Simulator only: model seconds per wall second (tests run exposures and cooling faster).
    time_scale: float = 1.0


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)


BACKENDS = ("auto", "simulator")


def load_config(path: Path | None) -> Config:
    """Read a TOML file (or the defaults when path is None) and validate every key."""
    config = Config()
    if path is None:
        return config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    for section_name, section_value in data.items():
        section = getattr(config, section_name, None)
        if section is None or not isinstance(section_value, dict):
            raise ConfigError(f"{path}: unknown section [{section_name}]")
        _apply_section(section, section_name, section_value, path)
    validate(config)
    return config


def _apply_section(section: Any, section_name: str, values: dict[str, Any], path: Path) -> None:
    types = {f.name: type(getattr(section, f.name)) for f in fields(section)}
    for key, value in values.items():
        expected = types.get(key)
        if expected is None:
            raise ConfigError(f"{path}: unknown key {section_name}.{key}")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise ConfigError(
                f"{path}: {section_name}.{key} must be {expected.__name__}, "
                f"not {type(value).__name__} ({value!r})"
            )
        setattr(section, key, value)


def validate(config: Config) -> None:
    """Range checks that apply however a value was given (file or flag)."""
    if not 0 < config.server.port < 65536:
        raise ConfigError(f"server.port must be 1-65535, not {config.server.port}")
    if config.camera.backend not in BACKENDS:
        raise ConfigError(
            f"camera.backend must be one of {', '.join(BACKENDS)}, not {config.camera.backend!r}"
        )
    if config.camera.simulators < 1:
        raise ConfigError(f"camera.simulators must be at least 1, not {config.camera.simulators}")
    if config.camera.time_scale <= 0:
        raise ConfigError(f"camera.time_scale must be positive, not {config.camera.time_scale}")
    if config.server.drop_stream_mb < 0 or config.server.max_behind_mb <= 0:
        raise ConfigError("server.drop_stream_mb must be >= 0 and server.max_behind_mb > 0")
    # An abstract name fits in sun_path (108 bytes) after its leading NUL.
    local_socket = config.server.local_socket
    if len(local_socket.encode()) > 107 or "\0" in local_socket:
        raise ConfigError(
            f"server.local_socket must be at most 107 bytes, without NUL: {local_socket!r}"
        )
