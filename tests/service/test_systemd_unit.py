"""The systemd unit: `systemd-analyze verify` and `security`, the directives the issue asks for,
and its command line run as systemd would run it (the example config, $NOTIFY_SOCKET and
the watchdog from WatchdogSec).

`systemd-analyze verify` needs no running systemd, but it checks that ExecStart's program
exists, and /opt/qhy42-indi is not installed here. So it runs with --root on a scratch tree:
the unit byte for byte in etc/systemd/system, the host's own units (the targets it refers
to), and an executable at the ExecStart path. Every warning fails the test, not only the exit
status (verify exits 0 on an unknown or misspelt directive and only prints it).
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from qhy42_indi.notify import watchdog_period_s
from tests.support.processes import HOST, VENV_BIN, child_env, free_port, stop

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "qhy42-indi.service"
EXAMPLE = ROOT / "systemd" / "config.example.toml"
HOST_UNITS = Path("/usr/lib/systemd/system")


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        raise RuntimeError("systemd-analyze is missing (Debian package systemd): run `make test`")
    return path


def service_section() -> dict[str, list[str]]:
    """[Service] as systemd reads it: a directive may repeat, and then every value counts."""
    directives: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def exec_start() -> list[str]:
    return shlex.split(service_section()["ExecStart"][0])


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy2(UNIT, root / "etc/systemd/system" / UNIT.name)
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    program = root / exec_start()[0].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), *args, f"--root={root}", f"/etc/systemd/system/{UNIT.name}"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_systemd_analyze_verify_passes_without_a_single_warning(scratch_root: Path) -> None:
    result = analyze(scratch_root, "verify", "--man=no")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", result.stderr


def test_a_misspelt_directive_would_fail_it(scratch_root: Path) -> None:
    unit = scratch_root / "etc/systemd/system" / UNIT.name
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = analyze(scratch_root, "verify", "--man=no")
    assert "ProtectSytem" in result.stderr


def test_the_sandbox_is_rated_ok_by_systemd_analyze_security(scratch_root: Path) -> None:
    # --threshold is the overall exposure x10: at most 2.5 of 10 ("OK").
    result = analyze(scratch_root, "security", "--offline=true", "--threshold=25", "--no-pager")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Overall exposure level" in result.stdout


def test_the_unit_has_what_the_issue_asks() -> None:
    service = service_section()
    expected = {
        "Type": "notify", "Restart": "on-failure", "User": "qhy42", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes", "SupplementaryGroups": "plugdev",
        "StateDirectory": "qhy42-indi", "DevicePolicy": "closed",
        "DeviceAllow": "char-usb_device rw",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert int(service["WatchdogSec"][0]) > 0
    families = set(service["RestrictAddressFamilies"][0].split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    # The local socket is abstract: it lives in the network namespace.
    assert "PrivateNetwork" not in service
    assert exec_start()[1:] == ["serve", "--config", "/etc/qhy42-indi/config.toml"]
    # ~/.indi (saved device configuration) and the default upload dir are writable.
    home = [v for v in service["Environment"] if v.startswith("HOME=")]
    assert home == ["HOME=/var/lib/qhy42-indi"]
    upload_dir = tomllib.loads(EXAMPLE.read_text())["upload"]["dir"]
    assert upload_dir.startswith("/var/lib/qhy42-indi/")


def test_the_units_command_line_with_the_example_config_reports_ready_and_feeds_the_watchdog(
    tmp_path: Path,
) -> None:
    """ExecStart as systemd runs it, but from this checkout's venv and with the example
    config on a free port; $NOTIFY_SOCKET and $WATCHDOG_USEC as systemd sets them from the
    unit (WatchdogSec, scaled down 100 times so the test does not wait 15 s)."""
    watchdog_s = int(service_section()["WatchdogSec"][0])
    assert watchdog_period_s({"WATCHDOG_USEC": str(watchdog_s * 1_000_000)}) == watchdog_s / 2
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        EXAMPLE.read_text()
        .replace('host = "0.0.0.0"', f'host = "{HOST}"')
        .replace("port = 7624", f"port = {port}")
        .replace('local_socket = "/tmp/indiserver"', 'local_socket = ""')
        .replace("/var/lib/qhy42-indi", str(tmp_path / "state"))
    )
    argv = exec_start()
    argv[0] = str(VENV_BIN / Path(argv[0]).name)
    argv[argv.index("--config") + 1] = str(config)
    name = f"qhy42-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, \
            open(tmp_path / "daemon.log", "wb") as log:
        notify.bind("\0" + name)
        notify.settimeout(20)
        env = child_env(tmp_path) | {"NOTIFY_SOCKET": "@" + name,
                                     "WATCHDOG_USEC": str(watchdog_s * 10_000)}
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            assert notify.recv(4096).startswith(b"READY=1\n")
            socket.create_connection((HOST, port), timeout=5).close()
            assert notify.recv(4096).startswith(b"WATCHDOG=1\n")
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            stop(process)
    assert "configuration: " + str(config) in (tmp_path / "daemon.log").read_text()
