"""MQTT telemetry: the camera's state on a broker, with aiomqtt, never in the camera's way.

The hub calls our observer with every device message; state.py turns it into publications and
they wait in a bounded outbox (outbox.py). One task holds the broker connection: it says
`online` on `<prefix>/status` (retained; the last will says `offline` if we vanish), sends Home
Assistant discovery if asked, the whole retained state, then whatever the outbox gets, and
listens for commands (commands.py) if any are allowed. When the broker goes away the camera
goes on; the task tries again after 1 s, doubling up to `reconnect_max_s`, and on success
republishes everything (a restarted broker may have lost its retained messages). A clean stop
says `offline` itself.

Everything is QoS 1 and sent one message at a time, so the outbox, not the MQTT client,
absorbs a slow broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiomqtt

from qhy42_indi.config import MqttConfig
from qhy42_indi.indi.messages import IndiMessage
from qhy42_indi.server.hub import Hub
from qhy42_indi.tasks import cancel_and_wait
from qhy42_indi.telemetry.commands import MqttCommands
from qhy42_indi.telemetry.homeassistant import discovery_messages
from qhy42_indi.telemetry.outbox import Outbox
from qhy42_indi.telemetry.state import Publication, TelemetryState, complete_from_file

log = logging.getLogger(__name__)

QOS = 1
FIRST_RETRY_S = 1.0
BROKER_TIMEOUT_S = 10.0
STOP_FLUSH_S = 3.0


class MqttTelemetry:
    """Start with `start()`, end with `await stop()`."""

    def __init__(
        self,
        hub: Hub,
        config: MqttConfig,
        setpoint_of: Callable[[str], float | None] = lambda _: None,
    ) -> None:
        self._hub = hub
        self._config = config
        self.state = TelemetryState(config.topic_prefix, setpoint_of)
        self.outbox = Outbox()
        self._commands = MqttCommands(hub, self.state, config.commands) if config.commands \
            else None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unobserve: Callable[[], None] | None = None
        self.connected = False
        self.connected_since: float | None = None  # epoch s of the session now open
        self.sessions = 0  # broker connections made so far

    def start(self) -> None:
        # What the devices defined before we started, so the first snapshot is complete.
        for device in list(self._hub.devices.values()):
            for definition in device.definitions():
                self.state.feed(definition)
        self._unobserve = self._hub.observe(self._observe, reads_blobs=True)  # frame events
        self._task = asyncio.create_task(self._run(), name="mqtt telemetry")

    def _observe(self, message: IndiMessage) -> None:
        for publication in self.state.feed(message):
            self.outbox.put(publication)

    async def stop(self) -> None:
        """Flush (bounded), say offline, disconnect."""
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        # Connected: let it flush and say offline (bounded). Connecting: nothing to wait for.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_FLUSH_S + 2.0 if self.connected else 0.1):
                await asyncio.shield(task)
        if not task.done():
            await cancel_and_wait(task)

    # ---- the connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        config = self._config
        delay_s = FIRST_RETRY_S
        failures = 0
        while not self._stopping.is_set():
            try:
                async with self._client() as client:
                    self.connected, failures, delay_s = True, 0, FIRST_RETRY_S
                    self.connected_since = time.time()
                    self.sessions += 1
                    log.info("MQTT: connected to %s:%d, publishing under %s/", config.host,
                             config.port, config.topic_prefix)
                    await self._session(client)
            except aiomqtt.MqttError as error:
                level = logging.WARNING if failures == 0 else logging.INFO
                log.log(level, "MQTT broker %s:%d: %s; the camera goes on, next try in %.0f s",
                        config.host, config.port, error or type(error).__name__, delay_s)
                failures += 1
            except Exception:  # a bug here must not end telemetry for good, nor the camera
                log.exception("MQTT telemetry failed; starting again in %.0f s", delay_s)
            finally:
                self.connected = False
                self.connected_since = None
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._stopping.wait()
            delay_s = min(delay_s * 2, config.reconnect_max_s)

    def _client(self) -> aiomqtt.Client:
        config = self._config
        return aiomqtt.Client(
            config.host,
            config.port,
            username=config.username or None,
            password=config.password or None,
            identifier=config.client_id or None,
            will=aiomqtt.Will(self.state.status_topic, b"offline", qos=QOS, retain=True),
            keepalive=config.keepalive_s,
            timeout=BROKER_TIMEOUT_S,
            logger=logging.getLogger("qhy42_indi.telemetry.paho"),
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.publish(self.state.status_topic, b"online", qos=QOS, retain=True)
        if self._config.homeassistant:
            devices = list(self._hub.devices)
            for publication in discovery_messages(self.state,
                                                  self._config.homeassistant_prefix, devices):
                await self._send(client, publication)
        self.outbox.drop_states()
        for publication in self.state.snapshot():
            await self._send(client, publication)
        if self._commands is not None:
            await client.subscribe(self._commands.subscription, qos=QOS)
        jobs = {
            asyncio.create_task(self._drain(client), name="mqtt send"),
            asyncio.create_task(self._listen(client), name="mqtt receive"),
            asyncio.create_task(self._stopping.wait(), name="mqtt stop"),
        }
        try:
            done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await job
        for job in done:
            error = None if job.cancelled() else job.exception()
            if error is not None:
                raise error  # the connection is lost: _run connects again
        await self._flush(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        """On stop: what is waiting (bounded), then offline (a clean disconnect sends no will)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_FLUSH_S):
                for publication in self.outbox.take():
                    await self._send(client, publication)
        await client.publish(self.state.status_topic, b"offline", qos=QOS, retain=True,
                             timeout=STOP_FLUSH_S)

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            await self.outbox.wait()
            waiting = self.outbox.take()
            for index, publication in enumerate(waiting):
                try:
                    await self._send(client, publication)
                except aiomqtt.MqttError:
                    # Events not sent wait for the next connection; states are resent whole.
                    for unsent in waiting[index:]:
                        if not unsent.retain:
                            self.outbox.put(unsent)
                    raise

    async def _send(self, client: aiomqtt.Client, publication: Publication) -> None:
        if publication.header_file is not None:
            publication = await asyncio.to_thread(complete_from_file, publication)
        await client.publish(publication.topic, publication.body(), qos=QOS,
                             retain=publication.retain)

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Commands, if allowed; otherwise only the way a lost connection is noticed."""
        async for message in client.messages:
            if self._commands is None or not isinstance(message.payload, bytes | bytearray):
                continue
            answer = await self._commands.handle(str(message.topic), bytes(message.payload))
            if answer is not None:
                self.outbox.put(answer)
