"""Command line: `qhy42-indi serve|driver`, and `indi_qhy42_ccd` for indiserver.

Flags override the TOML configuration file. Errors in either are reported in one line that
names the key, and the process exits with status 2.
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
from qhy42_indi.app import serve_stdio, serve_tcp
from qhy42_indi.config import BACKENDS, Config, ConfigError, load_config, validate


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
    driver = commands.add_parser("driver", help="speak INDI on stdin/stdout, under indiserver")
    for sub in (serve, driver):
        _add_common(sub)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, help="camera backend (default auto)")
    parser.add_argument("--device-name", help="INDI device name (default 'QHY CCD <camera id>')")
    parser.add_argument("--simulators", type=int, help="number of simulated cameras")
    parser.add_argument(
        "--time-scale", type=float, help="simulator: model seconds per wall second (default 1)"
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    overrides = {
        ("server", "host"): getattr(args, "host", None),
        ("server", "port"): getattr(args, "port", None),
        ("server", "local_socket"): "" if getattr(args, "no_local_socket", False)
        else getattr(args, "local_socket", None),
        ("camera", "backend"): args.backend,
        ("camera", "device_name"): args.device_name,
        ("camera", "simulators"): args.simulators,
        ("camera", "time_scale"): args.time_scale,
    }
    if args.command == "driver" and args.device_name is None:
        # indiserver passes a device name chosen in its FIFO (`start ... -n NAME`) as INDIDEV.
        overrides[("camera", "device_name")] = os.environ.get("INDIDEV") or None
    for (section, key), value in overrides.items():
        if value is not None:
            setattr(getattr(config, section), key, value)
    validate(config)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Logs go to stderr: in driver mode stdout carries INDI, and indiserver logs our stderr.
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _config(args)
    except ConfigError as error:
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 2
    runner = serve_tcp if args.command == "serve" else serve_stdio
    try:
        asyncio.run(runner(config))
    except OSError as error:
        print(f"qhy42-indi: {error}", file=sys.stderr)
        return 1
    return 0


def driver_main() -> int:
    """Entry point of `indi_qhy42_ccd`: the driver mode, with indiserver's conventions."""
    return main(["driver", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
