"""The hub: routes INDI messages between devices and client connections.

Devices publish through the hub; each message is encoded once and offered to every
connection, which filters by interest and BLOB policy. Client messages come in through
`handle()`: getProperties (defs to that client only, so others see no duplicates),
enableBLOB, pingRequest and newXXXVector. Transports (tcp.py, stdio.py) only move bytes.

Observers (MQTT telemetry, the exposure log, the connect defaults) see every device message,
before any encoding, through `observe()`: a plain call that must return at once (queue, never
wait).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from qhy42_indi.indi.messages import (
    DefVector,
    EnableBlob,
    GetProperties,
    IndiMessage,
    Message,
    NewVector,
    PingReply,
    PingRequest,
)
from qhy42_indi.server.connection import Connection, Outgoing

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def __call__(self, message: IndiMessage) -> None: ...


class Device(Protocol):
    """What the hub needs of a device."""

    @property
    def name(self) -> str: ...

    def bind(self, publish: Publisher) -> None: ...

    def definitions(self, name: str | None = None) -> list[DefVector]: ...

    async def handle_new(self, message: NewVector) -> None: ...


Observer = Callable[[IndiMessage], None]


class Hub:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.connections: set[Connection] = set()
        self._observers: list[Observer] = []

    def add_device(self, device: Device) -> None:
        self.devices[device.name] = device
        device.bind(self.publish)

    def attach(self, connection: Connection) -> None:
        self.connections.add(connection)

    def detach(self, connection: Connection) -> None:
        self.connections.discard(connection)
        connection.close()

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer` with every device message from now on; returns the way to stop."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def publish(self, message: IndiMessage) -> None:
        """A device's message to every connection that wants it, encoded once."""
        for observer in list(self._observers):
            try:
                observer(message)
            except Exception:  # an observer's bug must not stop the camera or the clients
                log.exception("observer %r failed", observer)
        if not self.connections:
            return
        out = Outgoing.of(message)
        for connection in list(self.connections):
            connection.offer(out)

    async def handle(self, connection: Connection, message: IndiMessage) -> None:
        """One message from a client."""
        if isinstance(message, GetProperties):
            self._get_properties(connection, message)
        elif isinstance(message, EnableBlob):
            connection.interest.add(message.device, message.name)
            connection.blob_policy.apply(message)
        elif isinstance(message, PingRequest):
            connection.send(Outgoing.of(PingReply(uid=message.uid)))
        elif isinstance(message, NewVector):
            await self._new_vector(connection, message)
        # Anything else from a client (set, def, message, pingReply) has no meaning here.

    def _get_properties(self, connection: Connection, request: GetProperties) -> None:
        connection.interest.add(request.device, request.name)
        every_device = request.device in (None, "*")
        for device in list(self.devices.values()):
            if every_device or device.name == request.device:
                connection.send_messages(device.definitions(request.name))

    async def _new_vector(self, connection: Connection, message: NewVector) -> None:
        device = self.devices.get(message.device)
        if device is None:
            log.debug("%s: new%sVector for unknown device %s", connection.peer,
                      message.kind, message.device)
            return
        connection.interest.add(message.device, message.name)
        if connection.read_only:
            log.warning("%s %s: not changed: client %s is read-only (server.read_only)",
                        message.device, message.name, connection.peer)
            refusal = Message(
                device=message.device,
                message=f"[WARNING] {connection.peer} is read-only: {message.name} not changed",
            )
            connection.send(Outgoing.of(refusal))
            return
        await device.handle_new(message)
