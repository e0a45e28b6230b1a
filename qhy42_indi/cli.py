"""Command line: `qhy42-indi serve|driver|check-config|list|recover`, and `indi_qhy42_ccd`
for indiserver.

The configuration file is --config FILE, else $QHY42_INDI_CONFIG, else
/etc/qhy42-indi/config.toml when it exists; flags override it. Errors in either are reported
in one line that names the key, and the process exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qhy42_indi import __version__
from qhy42_indi.config import (
    BACKENDS,
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    config_path,
    follow_alpaca,
    load_config,
    validate,
)

log = logging.getLogger("qhy42_indi")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qhy42-indi", description=__doc__)
    parser.add_argument("--version", action="version", version=f"qhy42-indi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve INDI on TCP (like indiserver, port 7624)")
    serve.add_argument("--host", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="TCP port (default 7624)")
    local = serve.add_mutually_exclusive_group()
    local.add_argument(
        "--local-socket", metavar="PATH",
        help="abstract Unix socket for local clients, who get frames as shared memory"
        " (like indiserver -u; libindi clients reach it as host localhost:PATH;"
        " default /tmp/indiserver)",
    )
    local.add_argument("--no-local-socket", action="store_true", help="serve TCP only")
    serve.add_argument("--snoop-server", metavar="HOST:PORT",
                       help="INDI server whose mount, focuser, filter wheel... (ACTIVE_DEVICES)"
                       " the camera reads for its FITS headers ('' = none)")
    serve.add_argument("--max-clients", type=int, help="most clients at once (0: no limit)")
    serve.add_argument("--allow", action="append", metavar="CIDR",
                       help="only clients from these networks (repeatable; default all)")
    serve.add_argument("--read-only", action="append", metavar="CIDR",
                       help="clients from these networks may watch but not command"
                       " (repeatable)")
    alpaca = serve.add_argument_group("ASCOM Alpaca and the web page (HTTP; off by default)")
    alpaca.add_argument("--alpaca", action="store_true", default=None,
                        help="serve ASCOM Alpaca (N.I.N.A., SharpCap, MaxIm DL)")
    alpaca.add_argument("--alpaca-port", type=int, metavar="PORT",
                        help="Alpaca's HTTP port (default 11111; 0: a free one)")
    alpaca.add_argument("--alpaca-discovery-port", type=int, metavar="PORT",
                        help="UDP port answering Alpaca discovery (default 32227)")
    alpaca.add_argument("--no-alpaca-discovery", action="store_true",
                        help="do not answer Alpaca discovery")
    alpaca.add_argument("--web", action="store_true", default=None,
                        help="serve the camera's web page")
    alpaca.add_argument("--web-port", type=int, metavar="PORT",
                        help="the page's HTTP port (default: Alpaca's, one server for both)")
    alpaca.add_argument("--http-host", metavar="ADDRESS",
                        help="address the HTTP server binds (default 0.0.0.0)")
    driver = commands.add_parser("driver", help="speak INDI on stdin/stdout, under indiserver")
    for sub in (serve, driver):
        _add_common(sub)
    commands.add_parser("list", help="list the QHYCCD cameras on USB: firmware, permissions")
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path, nargs="?",
                       help=f"the file (default: $QHY42_INDI_CONFIG or {DEFAULT_CONFIG_PATH})")
    recover = commands.add_parser(
        "recover", help="finish the SER recordings a crash or power cut left in a directory")
    recover.add_argument("directory", type=Path, help="the recording directory")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, help="camera backend (default auto)")
    parser.add_argument("--device-name", help="INDI device name (default 'QHY CCD <camera id>')")
    parser.add_argument("--simulators", type=int, help="number of simulated cameras")
    parser.add_argument(
        "--time-scale", type=float, help="simulator: model seconds per wall second (default 1)"
    )
    parser.add_argument(
        "--sim-instant-readout", action="store_true", default=None,
        help="simulator: frames ready when the exposure ends, without the camera's readout "
        "time (as indi_simulator_ccd; for benchmarks)",
    )
    parser.add_argument(
        "--config", type=Path,
        help=f"TOML configuration file (default: $QHY42_INDI_CONFIG, or {DEFAULT_CONFIG_PATH}"
        " if it exists)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def _config(args: argparse.Namespace) -> Config:
    config = load_config(config_path(args.config))
    overrides = {
        ("server", "host"): getattr(args, "host", None),
        ("server", "port"): getattr(args, "port", None),
        ("server", "local_socket"): "" if getattr(args, "no_local_socket", False)
        else getattr(args, "local_socket", None),
        ("server", "max_clients"): getattr(args, "max_clients", None),
        ("server", "allow"): getattr(args, "allow", None),
        ("server", "read_only"): getattr(args, "read_only", None),
        ("snoop", "server"): getattr(args, "snoop_server", None),
        ("alpaca", "enabled"): getattr(args, "alpaca", None),
        ("alpaca", "port"): getattr(args, "alpaca_port", None),
        ("alpaca", "discovery_port"): getattr(args, "alpaca_discovery_port", None),
        ("alpaca", "discovery"): False if getattr(args, "no_alpaca_discovery", False) else None,
        ("alpaca", "host"): getattr(args, "http_host", None),
        ("web", "enabled"): getattr(args, "web", None),
        ("web", "port"): getattr(args, "web_port", None),
        ("web", "host"): getattr(args, "http_host", None),
        ("camera", "backend"): args.backend,
        ("camera", "device_name"): args.device_name,
        ("camera", "simulators"): args.simulators,
        ("camera", "time_scale"): args.time_scale,
        ("camera", "instant_readout"): args.sim_instant_readout,
    }
    if args.command == "driver" and args.device_name is None:
        # indiserver passes a device name chosen in its FIFO (`start ... -n NAME`) as INDIDEV.
        overrides[("camera", "device_name")] = os.environ.get("INDIDEV") or None
    for (section, key), value in overrides.items():
        if value is not None:
            setattr(getattr(config, section), key, value)
            config.given.add(f"{section}.{key}")
    follow_alpaca(config)
    try:
        validate(config)
    except ConfigError as error:
        raise ConfigError(f"{error} (from the command line)") from error
    return config


def check_config(file: Path | None) -> int:
    """`qhy42-indi check-config [FILE]`: 0 and a summary when the file is usable, else 2."""
    path = config_path(file)
    if path is None:
        print(f"no configuration file ({DEFAULT_CONFIG_PATH} does not exist): "
              "the built-in defaults apply")
        return 0
    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 2
    server, mqtt = config.server, config.mqtt
    print(f"{path}: ok")
    print(f"  INDI on {server.host}:{server.port}, local socket "
          f"{'@' + server.local_socket if server.local_socket else 'off'}")
    print(f"  clients: at most {server.max_clients or 'any number'}, from "
          f"{', '.join(server.allow) or 'nowhere'}; read-only: "
          f"{', '.join(server.read_only) or 'none'}")
    print(f"  on CONNECT: {', '.join(c.key for c in config.connect_commands()) or 'nothing'}")
    if mqtt.enabled:
        commands = ", ".join(mqtt.commands) or "none"
        print(f"  MQTT to {mqtt.host}:{mqtt.port} under {mqtt.topic_prefix}/, commands: "
              f"{commands}, Home Assistant discovery: {'on' if mqtt.homeassistant else 'off'}")
    else:
        print("  MQTT off")
    snoop = config.snoop.server
    print(f"  snooping: {f'from {snoop}' if snoop else 'through indiserver only (as its driver)'}")
    print(f"  site: {config.describe_site()}")
    alpaca, web = config.alpaca, config.web
    discovery = f", discovery on UDP {alpaca.discovery_port}" if alpaca.discovery else ""
    print(f"  Alpaca: {f'on {alpaca.host}:{alpaca.port}{discovery}' if alpaca.enabled else 'off'}")
    shared = " (shared with Alpaca)" if alpaca.enabled and (alpaca.host, alpaca.port) == (
        web.host, web.port) else ""
    print(f"  web page: {f'on {web.host}:{web.port}{shared}' if web.enabled else 'off'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "list":
        return list_cameras()
    if args.command == "recover":
        return recover(args.directory)
    # Logs go to stderr: in driver mode stdout carries INDI, and indiserver logs our stderr.
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The daemon's own log keeps its level when a client asks for the driver's debug log
    # (DEBUG_LEVEL, LOGGING_LEVEL: camera/device_log.py lowers the package logger's level).
    for handler in logging.getLogger().handlers:
        handler.setLevel(args.log_level)
    try:
        config = _config(args)
    except ConfigError as error:
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 2
    log.info("qhy42-indi %s; configuration: %s", __version__,
             config.source or "built-in defaults")
    # Imported here: check-config and argument errors need none of the daemon.
    from qhy42_indi.app import serve_stdio, serve_tcp
    from qhy42_indi.backends.base import BackendError

    runner = serve_tcp if args.command == "serve" else serve_stdio
    try:
        asyncio.run(runner(config))
    except (OSError, BackendError) as error:  # BackendError: --backend sdk cannot start
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 1
    return 0


def list_cameras() -> int:
    """`qhy42-indi list`: the QHYCCD devices on USB and whether libqhyccd is found."""
    from qhy42_indi.backends.sdk_bindings import find_library
    from qhy42_indi.backends.usb import UsbUnavailable, format_listing
    from qhy42_indi.backends.usb import list_cameras as usb_cameras

    library = find_library()
    print(f"libqhyccd: {library or 'not found (--backend sdk needs it; see the README)'}")
    try:
        print(format_listing(usb_cameras()))
    except UsbUnavailable as error:
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 1
    return 0


def recover(directory: Path) -> int:
    """`qhy42-indi recover DIR`: finish what interrupted recordings left there, say what."""
    from qhy42_indi.camera.recording import recover_recordings

    if not directory.is_dir():
        print(f"qhy42-indi: {directory} is not a directory", file=sys.stderr)
        return 2
    results = recover_recordings(directory)
    for result in results:
        if result.path is not None:
            print(f"{result.path}: {result.frames_kept} frames"
                  + (f" ({result.failure})" if result.failure else ""))
        else:
            print(f"not recovered: {result.failure}")
    if not results:
        print(f"no interrupted recording in {directory}")
    return 0 if all(r.path is not None for r in results) else 1


def driver_main() -> int:
    """Entry point of `indi_qhy42_ccd`: the driver mode, with indiserver's conventions."""
    return main(["driver", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
