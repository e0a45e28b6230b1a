"""The configuration file: every error names its key, check-config, the example and the README
document every key, and the camera and upload values are applied on CONNECT."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from qhy42_indi.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    SiteConfig,
    config_path,
    load_config,
    snoop_address,
)
from qhy42_indi.indi.messages import SetVector, SwitchElement, SwitchState
from tests.service.logs import logged
from tests.support.camera import (
    answered,
    connect_camera,
    expose,
    number,
    set_numbers,
    set_switch,
)
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST, child_env, daemon

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "config.example.toml"
CLI = [sys.executable, "-m", "qhy42_indi.cli"]


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 7624\n", "unknown key server.prot"),
        ("[sever]\nport = 7624\n", "unknown section [sever]"),
        ('[server]\nport = "7624"\n', "server.port must be int, not str"),
        ("[server]\nport = 70000\n", "server.port must be 1-65535"),
        ("[server]\nmax_clients = -1\n", "server.max_clients must be >= 0"),
        ('[server]\nallow = "10.0.0.0/8"\n', "server.allow must be a list of strings"),
        ('[server]\nallow = ["10.0.0.0/8", "10.0.0.0/33"]\n', "server.allow[1]: '10.0.0.0/33'"),
        ('[server]\nread_only = ["lan"]\n', "server.read_only[0]: 'lan' is not an address"),
        ('[camera]\nbackend = "qhy"\n', "camera.backend must be one of auto, simulator"),
        ("[camera.defaults]\nCCD_GIAN = { GAIN = 1 }\n",
         "camera.defaults.CCD_GIAN: the camera has no property CCD_GIAN"),
        ("[camera.defaults]\nCCD_GAIN = { GIAN = 1 }\n",
         "camera.defaults.CCD_GAIN.GIAN: CCD_GAIN has no member GIAN (it has GAIN)"),
        ('[camera.defaults]\nCCD_GAIN = { GAIN = "high" }\n',
         "camera.defaults.CCD_GAIN.GAIN must be a number"),
        ("[camera.defaults]\nCCD_GAIN = { GAIN = 100000 }\n",
         "camera.defaults.CCD_GAIN: CCD_GAIN.GAIN value 100000 is out of range"),
        ("[camera.defaults]\nCCD_GAIN = 10\n", "camera.defaults.CCD_GAIN must be a table"),
        ("[camera.defaults]\nCCD_INFO = { CCD_MAX_X = 1 }\n",
         "camera.defaults.CCD_INFO: CCD_INFO is an action or read-only"),
        ("[camera.defaults]\nCONNECTION = { CONNECT = true }\n",
         "camera.defaults.CONNECTION: CONNECTION is an action or read-only"),
        ("[camera.defaults]\nCCD_COOLER = { COOLER_ON = true, COOLER_OFF = true }\n",
         "camera.defaults.CCD_COOLER: CCD_COOLER allows one switch on"),
        ('[upload]\nmode = "ftp"\n', "upload.mode must be one of client, local, both"),
        ("[upload]\ndir = 5\n", "upload.dir must be str, not int"),
        ('[mqtt]\ntopic_prefix = "obs/#"\n', "mqtt.topic_prefix must be a topic"),
        ('[mqtt]\ncommands = ["CCD_GAIN", "CONFIG_PROCESS"]\n',
         "mqtt.commands[1]: 'CONFIG_PROCESS' cannot be commanded over MQTT"),
        ('[mqtt]\npassword = "x"\n', "mqtt.password is set but mqtt.username is empty"),
        ("[mqtt]\nenabled = 1\n", "mqtt.enabled must be bool, not int"),
        ("[mqtt]\nkeepalive_s = 1\n", "mqtt.keepalive_s must be at least 5"),
    ],
)
def test_a_wrong_key_or_value_is_an_error_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert named in str(error.value)
    assert str(tmp_path / "config.toml") in str(error.value)


def test_defaults_and_the_commands_applied_on_connect(tmp_path: Path) -> None:
    config = load(tmp_path, '[upload]\ndir = "/data"\nmode = "both"\n'
                            "[camera.defaults]\nCCD_GAIN = { GAIN = 7 }\n"
                            "CCD_COOLER = { COOLER_ON = true }\n")
    assert config.server.allow == ["0.0.0.0/0", "::/0"] and config.server.read_only == []
    assert config.server.max_clients == 64 and not config.mqtt.enabled
    commands = config.connect_commands()
    assert [c.key for c in commands] == ["upload", "upload.mode", "camera.defaults.CCD_GAIN",
                                         "camera.defaults.CCD_COOLER"]
    assert [c.command.name for c in commands] == [
        "UPLOAD_SETTINGS", "UPLOAD_MODE", "CCD_GAIN", "CCD_COOLER"]


def test_the_file_comes_from_the_flag_then_the_environment_then_the_default_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    assert config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"
    assert config_path(None) == tmp_path / "env.toml"
    monkeypatch.setenv(CONFIG_ENV, "")
    assert config_path(None) is None
    monkeypatch.delenv(CONFIG_ENV)
    expected = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
    assert config_path(None) == expected


def test_the_example_has_every_key_and_is_valid() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    config = load_config(EXAMPLE)
    for section in ("server", "camera", "upload", "mqtt", "snoop", "alpaca", "web"):
        keys = {f.name for f in fields(getattr(config, section))}
        assert set(example[section]) == keys, section
    assert config.connect_commands()


def test_the_readme_documents_every_key_and_the_default_path() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Configuration file", 1)[1].split("\n## ", 1)[0]
    assert str(DEFAULT_CONFIG_PATH) in section and "check-config" in section
    config = Config()
    for name in ("server", "camera", "upload", "mqtt", "snoop", "alpaca", "web"):
        assert f"[{name}]" in section
        for key in (f.name for f in fields(getattr(config, name))):
            assert re.search(rf"\b{key}\b", section), f"{name}.{key} is not in the README"


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30,
                          env=env or child_env(tmp_path), check=False)


def test_check_config_accepts_the_example_and_names_the_key_of_a_mistake(
    tmp_path: Path,
) -> None:
    good = run_cli(tmp_path, "check-config", str(EXAMPLE))
    assert good.returncode == 0, good.stderr
    assert f"{EXAMPLE}: ok" in good.stdout and "camera.defaults.CCD_GAIN" in good.stdout
    assert "Alpaca: off" in good.stdout and "web page: off" in good.stdout
    shared = tmp_path / "http.toml"
    shared.write_text("[alpaca]\nenabled = true\n[web]\nenabled = true\n")
    both = run_cli(tmp_path, "check-config", str(shared))
    assert "Alpaca: on 0.0.0.0:11111, discovery on UDP 32227" in both.stdout, both.stdout
    assert "web page: on 0.0.0.0:11111 (shared with Alpaca)" in both.stdout
    wrong = tmp_path / "port.toml"
    wrong.write_text("[alpaca]\nport = 70000\n")
    refused = run_cli(tmp_path, "check-config", str(wrong))
    assert refused.returncode == 2 and "alpaca.port must be 0-65535" in refused.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera.defaults]\nREAD_MODE = { MODE = 7 }\n")
    result = run_cli(tmp_path, "check-config", str(bad))
    assert result.returncode == 2
    assert "camera.defaults.READ_MODE: READ_MODE.MODE value 7 is out of range [0, 2]" in (
        result.stderr)
    # Without FILE: $QHY42_INDI_CONFIG.
    result = run_cli(tmp_path, "check-config", env=child_env(tmp_path) | {CONFIG_ENV: str(bad)})
    assert result.returncode == 2 and "READ_MODE" in result.stderr


def test_the_daemon_does_not_start_on_a_wrong_value_and_says_which(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nread_only = ["192.168.1.0/24", "everyone"]\n')
    result = run_cli(tmp_path, "serve", "--config", str(bad))
    assert result.returncode == 2
    assert "server.read_only[1]: 'everyone' is not an address" in result.stderr
    result = run_cli(tmp_path, "serve", "--allow", "10.1.2.0/99")
    assert result.returncode == 2 and "server.allow[0]" in result.stderr


async def test_upload_and_camera_defaults_are_applied_on_connect(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    config = tmp_path / "config.toml"
    config.write_text(f'[upload]\ndir = "{frames}"\nprefix = "N_XXX"\nmode = "local"\n'
                      "[camera.defaults]\nCCD_GAIN = { GAIN = 21 }\n"
                      "CCD_OFFSET = { OFFSET = 33 }\n")
    with daemon("--config", str(config)) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            await client.wait_for(lambda m: is_set("CCD_GAIN")(m) and number(m, "GAIN") == 21)
            await client.wait_for(lambda m: is_set("CCD_OFFSET")(m)
                                  and number(m, "OFFSET") == 33)
            settings = await client.wait_for(is_set("UPLOAD_SETTINGS"))
            assert f"'{frames}'" in repr(settings) and "'N_XXX'" in repr(settings)
            mode = await client.wait_for(is_set("UPLOAD_MODE"))
            assert on_switches(mode) == ["UPLOAD_LOCAL"]
            # The frame goes where [upload] said.
            await expose(client, 0.05)
            assert [p.name[:2] for p in frames.iterdir()] == ["N_"]
        assert "CCD_GAIN: set from camera.defaults.CCD_GAIN" in proc.log()


def on_switches(message: object) -> list[str]:
    assert isinstance(message, SetVector)
    return [e.name for e in message.elements
            if isinstance(e, SwitchElement) and e.value is SwitchState.ON]


async def test_the_saved_device_configuration_wins_over_the_defaults(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("[camera.defaults]\nCCD_GAIN = { GAIN = 21 }\n"
                      "CCD_OFFSET = { OFFSET = 33 }\n")
    with daemon("--config", str(config), home=home) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await connect_camera(client)
            await client.wait_for(lambda m: is_set("CCD_OFFSET")(m)
                                  and number(m, "OFFSET") == 33)
            start = await set_numbers(client, "CCD_GAIN", GAIN=5)
            await answered(client, "CCD_GAIN", start)
            start = await set_switch(client, "CONFIG_PROCESS", "CONFIG_SAVE")
            await answered(client, "CONFIG_PROCESS", start)
    # The defaults apply at the first CONNECT of a daemon's life: the next start's.
    with daemon("--config", str(config), home=home) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            start = len(client.received)
            await connect_camera(client)
            await client.wait_for(lambda m: is_set("CCD_OFFSET")(m)
                                  and number(m, "OFFSET") == 33, start=start)
            await logged(proc, "CCD_OFFSET: the saved configuration's value kept over "
                               "camera.defaults.CCD_OFFSET")  # the last default: all done
            assert "CCD_GAIN: the saved configuration's value kept" in proc.log()
            await client.send("<pingRequest uid='after'/>")
            await client.wait_for(lambda m: type(m).__name__ == "PingReply", start=start)
            gains = [number(m, "GAIN") for m in client.received[start:] if is_set("CCD_GAIN")(m)]
            assert gains and set(gains) == {5}


# ---- [site] ----------------------------------------------------------------------------------

SITE = "[site]\nlatitude = 47.3769\nlongitude = 8.5417\n"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[site]\nlatitude = 91.0\nlongitude = 8.5\n",
         "site.latitude must be -90 to 90 degrees north, not 91.0"),
        ("[site]\nlatitude = -90.5\nlongitude = 8.5\n", "site.latitude must be -90 to 90"),
        ("[site]\nlatitude = nan\nlongitude = 8.5\n", "site.latitude must be -90 to 90"),
        (SITE.replace("8.5417", "361"), "site.longitude must be -180 to 360 degrees east, not "
                                         "361.0"),
        (SITE.replace("8.5417", "-180.5"), "site.longitude must be -180 to 360"),
        (SITE.replace("8.5417", "inf"), "site.longitude must be -180 to 360"),
        (SITE + "elevation = 20000\n", "site.elevation must be -1000 to 10000 m, not 20000.0"),
        ('[site]\nlatitude = "47.3769"\nlongitude = 8.5\n', "site.latitude must be float, not str"),
        ("[site]\nlatitude = 47.3\nlongitude = true\n", "site.longitude must be float, not bool"),
        (SITE + 'elevation = "408 m"\n', "site.elevation must be float, not str"),
        ("[site]\nlatitude = 47.3769\n", "site.longitude is missing"),
        ("[site]\nelevation = 400\n", "site.latitude is missing"),
        (SITE + "altitude = 400\n", "unknown key site.altitude (keys: elevation, latitude, "
                                    "longitude)"),
    ],
)
def test_a_wrong_site_is_an_error_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert named in str(error.value)
    assert str(tmp_path / "config.toml") in str(error.value)


def test_the_site_is_none_unless_given_and_its_numbers_are_floats(tmp_path: Path) -> None:
    assert load(tmp_path, "[server]\nport = 7624\n").site is None
    assert Config().describe_site() == "not set (headers get no BJD_TDB)"
    site = load(tmp_path, "[site]\nlatitude = -31\nlongitude = 149.0617\nelevation = 1165\n").site
    assert site == SiteConfig(latitude=-31.0, longitude=149.0617, elevation=1165.0)
    assert isinstance(site.latitude, float) and isinstance(site.elevation, float)
    assert site.describe() == "31 S, 149.0617 E, 1165 m"
    assert load(tmp_path, SITE).site == SiteConfig(latitude=47.3769, longitude=8.5417,
                                                   elevation=0.0)


@pytest.mark.parametrize(("longitude", "shown"), [(250, "110 W"), (-110, "110 W"), (-180, "180 W"),
                                                  (360, "0 E"), (0, "0 E"), (179.5, "179.5 E")])
def test_longitude_is_east_positive_either_way_round(tmp_path: Path, longitude: float,
                                                     shown: str) -> None:
    site = load(tmp_path, f"[site]\nlatitude = 90\nlongitude = {longitude}\n").site
    assert site is not None and site.longitude == longitude
    assert site.describe() == f"90 N, {shown}, 0 m"


def test_the_example_documents_the_site_commented_out_and_valid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert "site" not in tomllib.loads(text)  # a copied example must not claim a site
    block = text[text.index("# [site]"):].splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in block if line.startswith("# "))
    site = load(tmp_path, uncommented).site
    assert site is not None
    assert set(tomllib.loads(uncommented)["site"]) == {f.name for f in fields(site)}


def test_check_config_accepts_a_site_and_names_the_key_of_a_wrong_one(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(SITE + "elevation = 408\n")
    result = run_cli(tmp_path, "check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert f"{good}: ok" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(SITE.replace("47.3769", "147.3769"))
    result = run_cli(tmp_path, "check-config", str(bad))
    assert result.returncode == 2 and "site.latitude must be -90 to 90" in result.stderr


@pytest.mark.parametrize(("value", "error"), [
    ("localhost", "snoop.server must be host:port"),
    (":7624", "snoop.server must be host:port"),
    ("scope.local:99999", "snoop.server's port"),
])
def test_a_snoop_server_must_be_host_and_port(tmp_path: Path, value: str, error: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[snoop]\nserver = "{value}"\n')
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_a_snoop_server_from_the_file_or_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[snoop]\nserver = "mount.local:7624"\n')
    assert load_config(path).snoop.server == "mount.local:7624"
    assert snoop_address("[::1]:7625") == ("::1", 7625)


def test_the_page_follows_alpaca_unless_given_its_own_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qhy42_indi import cli

    moved = tmp_path / "moved.toml"
    moved.write_text('[alpaca]\nport = 12000\nhost = "127.0.0.1"\n[web]\nenabled = true\n')
    config = load_config(moved)
    assert (config.web.host, config.web.port) == ("127.0.0.1", 12000)  # one server for both
    own = tmp_path / "own.toml"
    own.write_text("[alpaca]\nport = 12000\n[web]\nport = 8080\n")
    assert load_config(own).web.port == 8080

    monkeypatch.setenv(CONFIG_ENV, "")

    def from_flags(*flags: str) -> tuple[int, int]:
        parsed = cli._config(cli._parser().parse_args(["serve", *flags]))
        return parsed.alpaca.port, parsed.web.port

    assert from_flags("--alpaca", "--web", "--alpaca-port", "18111") == (18111, 18111)
    assert from_flags("--alpaca-port", "18111", "--web-port", "8081") == (18111, 8081)
    monkeypatch.setenv(CONFIG_ENV, str(own))
    assert from_flags("--alpaca-port", "18111") == (18111, 8080)  # the file's own port stays
