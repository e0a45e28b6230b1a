"""The command line as a user runs it: driver mode on pipes, clean stops, config errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from qhy42_indi.indi.messages import DefVector
from qhy42_indi.indi.parser import IndiParser
from tests.support.processes import HOST, child_env, daemon, free_port, wait_for_port

CLI = [sys.executable, "-m", "qhy42_indi.cli"]


def test_driver_mode_on_pipes_answers_get_properties_and_ends_at_end_of_input(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [*CLI, "driver"], input=b"<getProperties version='1.7'/>", capture_output=True,
        timeout=30, env=child_env(tmp_path), check=False,
    )
    assert result.returncode == 0, result.stderr
    messages = IndiParser().feed(result.stdout)
    names = [m.name for m in messages if isinstance(m, DefVector)]
    assert names[:2] == ["CONNECTION", "DRIVER_INFO"]
    assert b"INFO" in result.stderr  # logs go to stderr, never into the INDI stream


def test_indidev_names_the_device_in_driver_mode(tmp_path: Path) -> None:
    env = child_env(tmp_path) | {"INDIDEV": "Main Camera"}
    result = subprocess.run(
        [*CLI, "driver"], input=b"<getProperties version='1.7'/>", capture_output=True,
        timeout=30, env=env, check=False,
    )
    devices = {m.device for m in IndiParser().feed(result.stdout) if isinstance(m, DefVector)}
    assert devices == {"Main Camera"}


def test_device_name_flag_overrides_the_default(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "driver", "--device-name", "Dome Cam"], input=b"<getProperties version='1.7'/>",
        capture_output=True, timeout=30, env=child_env(tmp_path), check=False,
    )
    assert b'device="Dome Cam"' in result.stdout


def test_sigterm_stops_the_server_cleanly() -> None:
    with daemon() as proc:
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(15) == 0
        assert "stopping" in proc.log()


def test_sigint_stops_the_server_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--host", HOST, "--port", str(port)], env=child_env(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        process.kill()
        process.wait()


def test_a_config_error_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nprot = 7624\n")
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=30,
        env=child_env(tmp_path), check=False,
    )
    assert result.returncode == 2
    assert "server.prot" in result.stderr


def test_a_wrong_type_in_the_config_names_the_key_and_the_type(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = "seven"\n')
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=30,
        env=child_env(tmp_path), check=False,
    )
    assert result.returncode == 2
    assert "server.port must be int" in result.stderr


def test_the_config_file_sets_the_port_and_a_flag_overrides_it(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nhost = "{HOST}"\nport = 1\n[camera]\ndevice_name = "Cfg Cam"\n')
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(config), "--port", str(port)],
        env=child_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
    finally:
        process.terminate()
        assert process.wait(15) == 0
