"""Assemble and run the daemon: devices on a hub, served over TCP (and the local socket) or
stdio, with telemetry and the configured connect defaults beside, stopped by signal.

Not the command line (cli.py) and not the protocol (indi/, server/): this module wires them
and owns the process lifecycle: SIGTERM/SIGINT end it cleanly, and under systemd
(`Type=notify`) it reports READY=1 once the port listens, feeds the watchdog while the event
loop runs and the listener accepts, and says STOPPING=1 when it stops (notify.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from qhy42_indi.backends.qhysdk import SdkBackend
from qhy42_indi.backends.sdk_setup import SdkCameras, sdk_cameras_async
from qhy42_indi.backends.sim_timing import CameraSync
from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device, default_device_name
from qhy42_indi.camera.timecards import Site
from qhy42_indi.config import Config, snoop_address
from qhy42_indi.connect_defaults import ConnectDefaults
from qhy42_indi.front.assemble import Fronts
from qhy42_indi.front.context import FrontContext
from qhy42_indi.notify import Notifier, feed_watchdog, watchdog_period_s
from qhy42_indi.roster import CameraRoster, Naming
from qhy42_indi.server.access import AccessControl, AccessPolicy
from qhy42_indi.server.connection import QueueLimits
from qhy42_indi.server.hub import Hub
from qhy42_indi.server.local import start_local_server
from qhy42_indi.server.stdio import run_stdio_session
from qhy42_indi.server.tcp import start_tcp_server
from qhy42_indi.snoop.client import SnoopClient
from qhy42_indi.tasks import cancel_and_wait
from qhy42_indi.telemetry.exposure_log import ExposureLog
from qhy42_indi.telemetry.mqtt import MqttTelemetry
from qhy42_indi.thread_names import named_executor

log = logging.getLogger(__name__)


@dataclass
class Cameras:
    """The hub with the camera devices on it, and the roster that adds SDK cameras plugged in
    later (None for the simulator)."""

    hub: Hub
    roster: CameraRoster | None = None

    async def close(self) -> None:
        if self.roster is not None:
            await self.roster.stop()
        await close_devices(self.hub)


async def build_cameras(config: Config) -> Cameras:
    """The configured camera devices: the real cameras that answer through libqhyccd (`sdk`,
    or `auto` when one answers; the SDK starts off the event loop), else the simulated ones."""
    return cameras_for(config, await sdk_cameras_async(config.camera.backend))


def cameras_for(config: Config, sdk: SdkCameras | None) -> Cameras:
    hub = Hub()
    site = None
    if config.site is not None:  # a fixed observatory: BJD_TDB needs where it is
        site = Site(config.site.latitude, config.site.longitude, config.site.elevation)
    if sdk is not None:
        def serve(name: str, backend: SdkBackend) -> Qhy42Device:
            device = Qhy42Device(name, backend, site=site)
            add_camera(hub, device)
            return device

        roster = CameraRoster(hub, sdk, Naming(config.camera.device_name), serve)
        roster.serve_initial()
        return Cameras(hub, roster)
    # One sync cable and clock for all simulated cameras (a master triggers slaves)
    sync = CameraSync(config.camera.time_scale)
    for index in range(config.camera.simulators):
        serial = f"SIM{index + 1:02d}"
        backend = SimulatorBackend(
            SimulatorOptions(camera_serial=serial, time_scale=config.camera.time_scale,
                             sync=sync, instant_readout=config.camera.instant_readout)
        )
        name = config.camera.device_name or default_device_name(f"QHY42PRO-{serial}")
        if index > 0 and config.camera.device_name:
            name = f"{config.camera.device_name} {index + 1}"
        add_camera(hub, Qhy42Device(name, backend, site=site))
    return Cameras(hub)


def add_camera(hub: Hub, device: Qhy42Device) -> None:
    hub.add_device(device)
    device.snooping.bind(hub)  # through indiserver, when we run as its driver


async def close_devices(hub: Hub) -> None:
    for device in hub.devices.values():
        if isinstance(device, Qhy42Device):
            await device.close()


def queue_limits(config: Config) -> QueueLimits:
    mib = 1024 * 1024
    return QueueLimits(
        drop_stream_bytes=int(config.server.drop_stream_mb * mib) or None,
        max_behind_bytes=max(1, int(config.server.max_behind_mb * mib)),
    )


class Beside:
    """What runs beside the INDI service: the exposure log, connect defaults, MQTT, the
    snoop clients that read the mount, focuser... from `[snoop] server`, and the roster's
    scan for cameras plugged in later."""

    def __init__(self, cameras: Cameras, config: Config) -> None:
        hub = cameras.hub
        self._hub = hub
        self._roster = cameras.roster
        self._stop_exposure_log: Callable[[], None] | None = None
        self.snoop_clients: list[SnoopClient] = []
        self._snoop_address = snoop_address(config.snoop.server) if config.snoop.server else None
        if self._snoop_address is not None:
            host, port = self._snoop_address
            self.snoop_clients = [SnoopClient(host, port, device.snooping.values)
                                  for device in hub.devices.values()
                                  if isinstance(device, Qhy42Device)]
        if self._roster is not None:
            self._roster.on_added(self._camera_added)
        self.defaults = ConnectDefaults(hub, config.connect_commands())
        self.telemetry = (
            MqttTelemetry(hub, config.mqtt, setpoint_reader(hub)) if config.mqtt.enabled
            else None
        )

    def start(self) -> None:
        self._stop_exposure_log = self._hub.observe(ExposureLog())
        self.defaults.start()
        for client in self.snoop_clients:
            client.start()
        if self.telemetry is not None:
            self.telemetry.start()
        if self._roster is not None:
            self._roster.start()

    def _camera_added(self, device: Qhy42Device) -> None:
        if self._snoop_address is not None:
            client = SnoopClient(*self._snoop_address, device.snooping.values)
            self.snoop_clients.append(client)
            client.start()

    async def stop(self) -> None:
        if self._roster is not None:
            await self._roster.stop()
        if self._stop_exposure_log is not None:
            self._stop_exposure_log()
        await self.defaults.stop()
        for client in self.snoop_clients:
            await client.stop()
        if self.telemetry is not None:
            await self.telemetry.stop()


def setpoint_reader(hub: Hub) -> Callable[[str], float | None]:
    """The cooler's set-point by device name: INDI has no property for it."""

    def setpoint_of(name: str) -> float | None:
        device = hub.devices.get(name)
        return device.cooling.target_c if isinstance(device, Qhy42Device) else None

    return setpoint_of


async def serve_tcp(config: Config) -> None:
    name_the_workers()
    notifier = Notifier.from_environment()
    with StopSignals() as stop:  # before anything listens: a signal during start-up counts
        cameras = await build_cameras(config)
        hub = cameras.hub
        beside = Beside(cameras, config)
        beside.start()
        limits = queue_limits(config)
        access = AccessControl(AccessPolicy.from_config(config.server))
        fronts = Fronts()
        listener = None
        local = None
        watchdog = None
        try:
            listener = await start_tcp_server(hub, config.server.host, config.server.port,
                                              limits, access)
            # Not being able to serve the local socket is logged, not fatal: TCP serves all.
            if config.server.local_socket:
                local = await start_local_server(hub, config.server.local_socket, limits,
                                                 access)
            await fronts.start(FrontContext(hub, config, access, beside.telemetry))
            freeze_start_up_objects()
            host, port = listener.address
            notifier.send("READY=1", f"STATUS=serving INDI on {host}:{port}")
            period_s = watchdog_period_s()
            if notifier.enabled and period_s is not None:
                served = listener

                def status() -> str:
                    return f"serving INDI on {host}:{port}, {access.clients} client(s)"

                watchdog = asyncio.create_task(
                    feed_watchdog(notifier, period_s, lambda: served.accepting, status),
                    name="watchdog",
                )
            await stop.wait()
        finally:
            log.info("stopping")
            notifier.send("STOPPING=1")
            if watchdog is not None:
                await cancel_and_wait(watchdog)
            await fronts.close()
            if local is not None:
                await local.close()
            if listener is not None:
                await listener.close()
            await cameras.close()
            await beside.stop()
            notifier.close()


async def serve_stdio(config: Config) -> None:
    name_the_workers()
    with StopSignals() as stop:
        cameras = await build_cameras(config)
        hub = cameras.hub
        beside = Beside(cameras, config)
        beside.start()
        fronts = Fronts()  # Alpaca and the page can run beside indiserver too
        access = AccessControl(AccessPolicy.from_config(config.server))
        await fronts.start(FrontContext(hub, config, access, beside.telemetry))
        freeze_start_up_objects()
        session = asyncio.create_task(run_stdio_session(hub))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({session, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(session, stopped)
        await fronts.close()
        await cameras.close()
        await beside.stop()


def name_the_workers() -> None:
    """The loop's own thread pool (asyncio.to_thread: FITS, base64, saves) as qhy42-work_N,
    in the OS too (top -H)."""
    asyncio.get_running_loop().set_default_executor(named_executor("qhy42-work"))


def freeze_start_up_objects() -> None:
    """Exempt what start-up made (modules, astropy's tables, property skeletons: hundreds of
    thousands of objects that live as long as the process) from the cyclic garbage
    collector, so its full collections, which the per-frame messages trigger, no longer walk
    all of them."""
    gc.collect()
    gc.freeze()


class StopSignals:
    """SIGTERM and SIGINT set an event while this context is entered."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._stopped = asyncio.Event()

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.add_signal_handler(signum, self._stopped.set)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.remove_signal_handler(signum)

    async def wait(self) -> None:
        await self._stopped.wait()
