"""Assemble and run the daemon: devices on a hub, served over TCP (and the local socket) or
stdio, stopped by signal.

Not the command line (cli.py) and not the protocol (indi/, server/): this module wires them
and owns the process lifecycle (SIGTERM/SIGINT end it cleanly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device, default_device_name
from qhy42_indi.config import Config
from qhy42_indi.server.connection import QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.local import start_local_server
from qhy42_indi.server.stdio import run_stdio_session
from qhy42_indi.server.tcp import start_tcp_server

log = logging.getLogger(__name__)

def build_hub(config: Config) -> Hub:
    """The hub with the configured camera devices on it."""
    hub = Hub()
    if config.camera.backend == "auto":
        log.info("no QHY42PRO camera support available here: using the simulator")
    for index in range(config.camera.simulators):
        serial = f"SIM{index + 1:02d}"
        backend = SimulatorBackend(
            SimulatorOptions(camera_serial=serial, time_scale=config.camera.time_scale)
        )
        name = config.camera.device_name or default_device_name(f"QHY42PRO-{serial}")
        if index > 0 and config.camera.device_name:
            name = f"{config.camera.device_name} {index + 1}"
        hub.add_device(Qhy42Device(name, backend))
    return hub


async def close_devices(hub: Hub) -> None:
    for device in hub.devices.values():
        if isinstance(device, Qhy42Device):
            await device.close()


def queue_limits(config: Config) -> QueueLimits:
    mib = 1024 * 1024
    return QueueLimits(
        drop_stream_bytes=int(config.server.drop_stream_mb * mib) or None,
        max_behind_bytes=int(config.server.max_behind_mb * mib),
    )


async def serve_tcp(config: Config) -> None:
    hub = build_hub(config)
    limits = queue_limits(config)
    listener = await start_tcp_server(hub, config.server.host, config.server.port, limits)
    # Not being able to serve the local socket is logged, not fatal: TCP still serves all.
    local = None
    if config.server.local_socket:
        local = await start_local_server(hub, config.server.local_socket, limits)
    try:
        await _until_signalled()
    finally:
        log.info("stopping")
        if local is not None:
            await local.close()
        await listener.close()
        await close_devices(hub)


async def serve_stdio(config: Config) -> None:
    hub = build_hub(config)
    session = asyncio.create_task(run_stdio_session(hub))
    stop = asyncio.create_task(_until_signalled())
    await asyncio.wait({session, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (session, stop):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await close_devices(hub)


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
