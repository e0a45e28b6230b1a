"""Daemon configuration: one TOML file, then command-line flags on top.

Every section and key is declared here with its type and default; an unknown key or a value
of the wrong type or range is an error at start that names the key (`server.prot`,
`server.allow[1]`, `camera.defaults.CCD_GAIN.GAIN`). Property values for the camera
([camera.defaults], [upload]) are checked against the INDI skeletons by property_values.py.
Not for INDI property values a client sets: those are the device's own configuration
(CONFIG_PROCESS, in ~/.indi). [site] is optional: without it `Config.site` is None (and the
headers get no barycentric times); with it, latitude and longitude are required.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from qhy42_indi.property_values import (
    PresetCommand,
    PropertyValueError,
    preset_command,
    upload_commands,
)

DEFAULT_CONFIG_PATH = Path("/etc/qhy42-indi/config.toml")
# Names another file (or, when empty, none at all) instead of the default path.
CONFIG_ENV = "QHY42_INDI_CONFIG"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The properties MQTT may command when listed in mqtt.commands: the ones an observatory
# controller needs, and none that writes files or the device's saved configuration.
MQTT_COMMANDABLE = (
    "CONNECTION", "CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CCD_TEMPERATURE", "CCD_COOLER",
    "CCD_COOLER_MODE", "CCD_COOLER_POWER", "CCD_HEATER", "CCD_GAIN", "CCD_OFFSET",
    "READ_MODE", "CCD_FRAME_TYPE", "CCD_BINNING", "CCD_FRAME", "CCD_FAST_TOGGLE",
    "CCD_FAST_COUNT", "UPLOAD_MODE",
)


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
    # Access control (INDI has none). Clients on the local socket count as 127.0.0.1.
    max_clients: int = 64  # 0: no limit
    allow: list[str] = field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    read_only: list[str] = field(default_factory=list)


@dataclass
class CameraConfig:
    backend: str = "auto"
    device_name: str = ""
    simulators: int = 1
    # Simulator only: model seconds per wall second (tests run exposures and cooling faster).
    time_scale: float = 1.0
    # Simulator only: no readout/USB time (as indi_simulator_ccd); for benchmarks.
    instant_readout: bool = False
    # Property values applied on CONNECT where the device's saved configuration has none:
    # { PROPERTY = { MEMBER = value, ... }, ... }.
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadConfig:
    dir: str = ""  # empty: the device's own default (_HOME_) or saved value
    prefix: str = ""  # empty: likewise (IMAGE_XXX)
    mode: str = ""  # client | local | both; empty: likewise (client)


@dataclass
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "qhy42"
    username: str = ""
    password: str = ""
    client_id: str = ""  # empty: a random one
    keepalive_s: int = 30
    reconnect_max_s: float = 60.0
    # Properties that may be set through <prefix>/<device>/set/<PROPERTY>; empty: none.
    commands: list[str] = field(default_factory=list)
    homeassistant: bool = False
    homeassistant_prefix: str = "homeassistant"


@dataclass
class SnoopConfig:
    # An INDI server whose mount, focuser, filter wheel, rotator and sky-quality meter (as
    # named in ACTIVE_DEVICES) the camera reads for its FITS headers, when it runs standalone
    # (`serve`); "host:port", empty for none. Under indiserver it snoops through indiserver.
    server: str = ""


@dataclass
class AlpacaConfig:
    """[alpaca]: ASCOM Alpaca for N.I.N.A., SharpCap, MaxIm DL (off: an indiserver drop-in)."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = 11111  # the ASCOM default; the page shares it when [web] names the same
    discovery: bool = True  # answer "alpacadiscovery1" datagrams
    discovery_port: int = 32227  # the Alpaca discovery port


@dataclass
class WebConfig:
    """[web]: the camera's page. Its host and port are [alpaca]'s unless given, and on the
    same host and port one server serves both."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = 11111


@dataclass
class SiteConfig:
    """[site]: where the telescope is, for the BJD_TDB of each frame (camera/timecards.py)."""

    latitude: float  # degrees, WGS84, north positive, -90..90
    longitude: float  # degrees, WGS84, EAST positive, -180..360 (-110 and 250 are one place)
    elevation: float = 0.0  # metres above the ellipsoid; a 100 m error moves BJD by < 0.4 us

    def describe(self) -> str:
        """As a person reads it: 47.3769 N, 110.25 W, 408 m."""
        east = (self.longitude + 180.0) % 360.0 - 180.0
        return (f"{abs(self.latitude):.8g} {'S' if self.latitude < 0 else 'N'}, "
                f"{abs(east):.8g} {'W' if east < 0 else 'E'}, {self.elevation:.8g} m")


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    snoop: SnoopConfig = field(default_factory=SnoopConfig)
    alpaca: AlpacaConfig = field(default_factory=AlpacaConfig)
    web: WebConfig = field(default_factory=WebConfig)
    site: SiteConfig | None = None  # no [site]: unknown
    source: Path | None = None  # the file it was read from, if any
    given: set[str] = field(default_factory=set)  # "section.key" the file set

    def describe_site(self) -> str:
        """One line for check-config."""
        if self.site is None:
            return "not set (headers get no BJD_TDB)"
        return f"{self.site.describe()} (headers get BJD_TDB when the target is known)"

    def connect_commands(self) -> list[PresetCommand]:
        """What to apply on CONNECT, in order: [upload], then [camera.defaults] as written."""
        try:
            commands = upload_commands(self.upload.dir, self.upload.prefix, self.upload.mode)
            for name, values in self.camera.defaults.items():
                commands.append(preset_command(f"camera.defaults.{name}", name, values))
        except PropertyValueError as error:
            raise ConfigError(str(error)) from error
        return commands


BACKENDS = ("auto", "simulator", "sdk")
SECTIONS = ("server", "camera", "upload", "mqtt", "snoop", "alpaca", "web", "site")
SITE_REQUIRED = ("latitude", "longitude")
# Validated ranges, inclusive, and what the numbers are.
SITE_RANGES = {"latitude": (-90.0, 90.0, "degrees north"),
               "longitude": (-180.0, 360.0, "degrees east"),
               "elevation": (-1000.0, 10_000.0, "m")}


def config_path(explicit: Path | None) -> Path | None:
    """The file to read: --config, else $QHY42_INDI_CONFIG (empty: none), else the default
    path when it exists, else none (built-in defaults)."""
    if explicit is not None:
        return explicit
    named = os.environ.get(CONFIG_ENV)
    if named is not None:
        return Path(named) if named else None
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(path: Path | None) -> Config:
    """Read a TOML file (or the defaults when path is None) and validate every key."""
    config = Config(source=path)
    if path is None:
        return config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    try:
        for section_name, section_value in data.items():
            if section_name not in SECTIONS or not isinstance(section_value, dict):
                raise ConfigError(
                    f"unknown section [{section_name}] (sections: {', '.join(SECTIONS)})"
                )
            if section_name == "site":
                config.site = _site(section_value)
            else:
                _apply_section(getattr(config, section_name), section_name, section_value)
                config.given.update(f"{section_name}.{key}" for key in section_value)
        follow_alpaca(config)
        validate(config)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
    return config


def follow_alpaca(config: Config) -> None:
    """The page's host and port are Alpaca's where the file did not give its own, so that
    moving Alpaca moves the page with it (one server for both)."""
    for key in ("host", "port"):
        if f"web.{key}" not in config.given:
            setattr(config.web, key, getattr(config.alpaca, key))


def _apply_section(section: Any, section_name: str, values: dict[str, Any]) -> None:
    hints = typing.get_type_hints(type(section))
    known = {f.name for f in fields(section)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown key {section_name}.{key} (keys: {', '.join(sorted(known))})"
            )
        setattr(section, key, _checked(f"{section_name}.{key}", hints[key], value))


def _site(values: dict[str, Any]) -> SiteConfig:
    # A site without its latitude or longitude would put a wrong BJD in every header.
    for key in SITE_REQUIRED:
        if key not in values:
            raise ConfigError(f"site.{key} is missing: [site] needs latitude and longitude "
                              "(elevation is 0 unless given)")
    site = SiteConfig(latitude=0.0, longitude=0.0)
    _apply_section(site, "site", values)
    return site


def _checked(key: str, expected: Any, value: Any) -> Any:
    origin = typing.get_origin(expected) or expected
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, not {value!r}")
        return list(value)
    if type(value) is not origin:
        raise ConfigError(
            f"{key} must be {origin.__name__}, not {type(value).__name__} ({value!r})"
        )
    return value


def validate(config: Config) -> None:
    """Range checks that apply however a value was given (file or flag)."""
    server, camera, mqtt = config.server, config.camera, config.mqtt
    _check_port("server.port", server.port)
    if camera.backend not in BACKENDS:
        raise ConfigError(
            f"camera.backend must be one of {', '.join(BACKENDS)}, not {camera.backend!r}"
        )
    if camera.simulators < 1:
        raise ConfigError(f"camera.simulators must be at least 1, not {camera.simulators}")
    if camera.time_scale <= 0:
        raise ConfigError(f"camera.time_scale must be positive, not {camera.time_scale}")
    if server.drop_stream_mb < 0:
        raise ConfigError(f"server.drop_stream_mb must be >= 0, not {server.drop_stream_mb}")
    if server.max_behind_mb <= 0:
        raise ConfigError(f"server.max_behind_mb must be > 0, not {server.max_behind_mb}")
    # An abstract name fits in sun_path (108 bytes) after its leading NUL.
    local_socket = server.local_socket
    if len(local_socket.encode()) > 107 or "\0" in local_socket:
        raise ConfigError(
            f"server.local_socket must be at most 107 bytes, without NUL: {local_socket!r}"
        )
    if server.max_clients < 0:
        raise ConfigError(f"server.max_clients must be >= 0 (0: no limit), not "
                          f"{server.max_clients}")
    networks("server.allow", server.allow)
    networks("server.read_only", server.read_only)
    _validate_mqtt(mqtt)
    _check_port("alpaca.port", config.alpaca.port, allow_any=True)
    _check_port("alpaca.discovery_port", config.alpaca.discovery_port, allow_any=True)
    _check_port("web.port", config.web.port, allow_any=True)
    if config.snoop.server:
        snoop_address(config.snoop.server)
    if config.site is not None:
        _validate_site(config.site)
    config.connect_commands()


def _validate_site(site: SiteConfig) -> None:
    for key, (low, high, unit) in SITE_RANGES.items():
        value = getattr(site, key)
        if not low <= value <= high:  # also refuses TOML's nan and inf
            raise ConfigError(f"site.{key} must be {low:g} to {high:g} {unit}, not {value}")


def snoop_address(value: str) -> tuple[str, int]:
    """snoop.server as (host, port); ConfigError naming the key if it is not host:port."""
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ConfigError(f"snoop.server must be host:port (e.g. localhost:7624), not {value!r}")
    _check_port("snoop.server's port", int(port))
    return host.strip("[]"), int(port)


def _check_port(key: str, port: int, *, allow_any: bool = False) -> None:
    """allow_any: 0 is accepted too, for a free port (the tests' choice)."""
    low = 0 if allow_any else 1
    if not low <= port < 65536:
        raise ConfigError(f"{key} must be {low}-65535, not {port}")


def _validate_mqtt(mqtt: MqttConfig) -> None:
    _check_port("mqtt.port", mqtt.port)
    prefix = mqtt.topic_prefix
    if not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or (
        prefix.endswith("/")
    ):
        raise ConfigError(
            f"mqtt.topic_prefix must be a topic without wildcards or outer slashes, "
            f"not {prefix!r}"
        )
    if not mqtt.homeassistant_prefix or any(c in mqtt.homeassistant_prefix for c in "+#/"):
        raise ConfigError(f"mqtt.homeassistant_prefix must be one topic level, not "
                          f"{mqtt.homeassistant_prefix!r}")
    if mqtt.keepalive_s < 5:
        raise ConfigError(f"mqtt.keepalive_s must be at least 5, not {mqtt.keepalive_s}")
    if mqtt.reconnect_max_s <= 0:
        raise ConfigError(f"mqtt.reconnect_max_s must be positive, not {mqtt.reconnect_max_s}")
    if mqtt.password and not mqtt.username:
        raise ConfigError("mqtt.password is set but mqtt.username is empty")
    for index, name in enumerate(mqtt.commands):
        if name not in MQTT_COMMANDABLE:
            raise ConfigError(
                f"mqtt.commands[{index}]: {name!r} cannot be commanded over MQTT "
                f"(allowed: {', '.join(MQTT_COMMANDABLE)})"
            )


def networks(key: str, values: list[str]) -> tuple[IpNetwork, ...]:
    """CIDR strings as networks; a host address alone means that one host."""
    parsed = []
    for index, value in enumerate(values):
        try:
            parsed.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{key}[{index}]: {value!r} is not an address or CIDR network "
                "(e.g. 192.168.1.0/24, 10.0.0.5, fd00::/8)"
            ) from None
    return tuple(parsed)
