"""The hub: routes INDI messages between devices and client connections.

Devices publish through the hub; each message is encoded once and offered to every
connection, which filters by interest and BLOB policy. Client messages come in through
`handle()`: getProperties (defs to that client only, so others see no duplicates),
enableBLOB, pingRequest and newXXXVector. Transports (tcp.py, stdio.py) only move bytes.

Whatever a device raises while it handles a client's message costs that client nothing but
the command: the hub logs it with the traceback and tells the client, in a message from the
device naming the failure and, for a vector the device defines, a setXXXVector in Alert
(to that client only: the device itself reports its state to everyone). The connection
stays open.

Observers (MQTT telemetry, the exposure log, the connect defaults) see every device message,
before any encoding, through `observe()`: a plain call that must return at once (queue, never
wait).

Snooping under indiserver: the stdio link to indiserver is an upstream connection. The
devices say which properties of other devices they want (`want_snooped`); the hub asks
indiserver for them with getProperties (again on every new upstream link), and hands the
def/set/del messages indiserver forwards to the devices' sinks (`snooped`). Nothing of this
goes to the clients: a getProperties from a server is not something KStars expects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from qhy42_indi.indi.messages import (
    DefVector,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    Message,
    NewVector,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    VectorKind,
)
from qhy42_indi.indi.values import timestamp_now
from qhy42_indi.server.connection import Connection, Outgoing

log = logging.getLogger(__name__)

# libindi keeps a message in 256 bytes (MAXINDIMESSAGE): the reason is cut to fit.
MAX_REASON_CHARS = 200


class Publisher(Protocol):
    def __call__(self, message: IndiMessage) -> None: ...


# Whether anyone takes a device's BLOB (device, property): a frame nobody takes is not built.
BlobInterest = Callable[[str, str], bool]


class Device(Protocol):
    """What the hub needs of a device."""

    @property
    def name(self) -> str: ...

    def bind(self, publish: Publisher, wants_blob: BlobInterest) -> None: ...

    def definitions(self, name: str | None = None) -> list[DefVector]: ...

    async def handle_new(self, message: NewVector) -> None: ...


Observer = Callable[[IndiMessage], None]
SnoopPair = tuple[str, str]  # (device, property)


class Hub:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.connections: set[Connection] = set()
        self._observers: list[Observer] = []
        self._blob_readers = 0  # observers that read BLOBs (MQTT's frame events)
        self._connection_watchers: list[Callable[[], None]] = []
        self._snoop_sinks: list[Observer] = []
        self._snoop_wants: dict[str, frozenset[SnoopPair]] = {}

    def add_device(self, device: Device) -> None:
        self.devices[device.name] = device
        device.bind(self.publish, self.wants_blob)

    def remove_device(self, name: str, farewell: DelProperty) -> None:
        """Take a device away: its delProperty (device-wide) to the clients, then gone."""
        device = self.devices.get(name)
        if device is None:
            return
        self.publish(farewell)
        del self.devices[name]
        self._snoop_wants.pop(name, None)

    def attach(self, connection: Connection) -> None:
        self.connections.add(connection)
        if connection.upstream:
            self._request(connection, self._wanted())
        self._connections_changed()

    def detach(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._connections_changed()
        connection.close()

    def watch_connections(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call `watcher` (at once, without waiting) whenever a client connects or leaves;
        returns the way to stop."""
        self._connection_watchers.append(watcher)
        return lambda: self._connection_watchers.remove(watcher)

    def _connections_changed(self) -> None:
        for watcher in list(self._connection_watchers):
            try:
                watcher()
            except Exception:  # a watcher's bug must not cost a client its connection
                log.exception("connection watcher %r failed", watcher)

    def observe(self, observer: Observer, *, reads_blobs: bool = False) -> Callable[[], None]:
        """Call `observer` with every device message from now on; returns the way to stop.
        `reads_blobs`: it reads the frames' BLOBs, so they are sent even when no client
        wants them (wants_blob)."""
        self._observers.append(observer)
        self._blob_readers += reads_blobs

        def stop() -> None:
            self._observers.remove(observer)
            self._blob_readers -= reads_blobs

        return stop

    def wants_blob(self, device: str, name: str) -> bool:
        """Whether a client (indiserver, as our upstream, always does) or an observer takes
        this BLOB now; a device that builds its frames for the BLOB alone may skip it."""
        return self._blob_readers > 0 or any(
            connection.interest.covers(device, name)
            and connection.blob_policy.wants_blob(device, name)
            for connection in self.connections)

    # ---- snooping through an upstream indiserver

    def snooped(self, sink: Observer) -> Callable[[], None]:
        """Call `sink` with every def/set/del of other devices that indiserver forwards."""
        self._snoop_sinks.append(sink)
        return lambda: self._snoop_sinks.remove(sink)

    def want_snooped(self, owner: str, pairs: frozenset[SnoopPair]) -> None:
        """What `owner` (a device) wants to snoop now; the new pairs are asked for at once."""
        before = self._wanted()
        self._snoop_wants[owner] = pairs
        added = self._wanted() - before
        for connection in list(self.connections):
            if connection.upstream:
                self._request(connection, added)

    def _wanted(self) -> frozenset[SnoopPair]:
        return frozenset().union(*self._snoop_wants.values())

    def _request(self, connection: Connection, pairs: frozenset[SnoopPair]) -> None:
        connection.send_messages([GetProperties(device=device, name=name)
                                  for device, name in sorted(pairs)])

    def _feed_snooped(self, message: DefVector | SetVector | DelProperty) -> None:
        if message.device in self.devices:
            return  # our own, echoed
        for sink in list(self._snoop_sinks):
            try:
                sink(message)
            except Exception:  # a sink's bug must not cost the link
                log.exception("snoop sink %r failed", sink)

    # ---- the devices' messages

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
        """One message from a client. Never raises for a device's failure (see above)."""
        try:
            await self._dispatch(connection, message)
        except Exception as error:
            log.exception("%s from client %s failed", _describe(message), connection.peer)
            self._report_failure(connection, message, error)

    async def _dispatch(self, connection: Connection, message: IndiMessage) -> None:
        if isinstance(message, GetProperties):
            self._get_properties(connection, message)
        elif isinstance(message, EnableBlob):
            connection.interest.add(message.device, message.name)
            connection.blob_policy.apply(message)
        elif isinstance(message, PingRequest):
            connection.send(Outgoing.of(PingReply(uid=message.uid)))
        elif isinstance(message, NewVector):
            await self._new_vector(connection, message)
        elif isinstance(message, PingReply):
            connection.ping_replied(message.uid)
        elif isinstance(message, DefVector | SetVector | DelProperty) and connection.upstream:
            self._feed_snooped(message)
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

    def _report_failure(
        self, connection: Connection, message: IndiMessage, error: Exception
    ) -> None:
        reason = f"{_describe(message)} failed: {type(error).__name__}: {error}"
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        replies: list[IndiMessage] = []
        if isinstance(message, NewVector):
            alert = self._alert(message, reason)
            if alert is not None:
                replies.append(alert)
        device = getattr(message, "device", None)
        replies.append(Message(
            device=device if device in self.devices else None,
            message=f"[ERROR] {reason}",
            timestamp=timestamp_now(),
        ))
        connection.send_messages(replies)

    def _alert(self, message: NewVector, reason: str) -> SetVector | None:
        """The vector as the device defines it now, in Alert; None if it defines none (or a
        BLOB vector: an empty oneBLOB would read as a frame)."""
        device = self.devices.get(message.device)
        if device is None or message.kind is VectorKind.BLOB:
            return None
        try:
            definitions = device.definitions(message.name)
        except Exception:  # the device is in a bad way; the message still goes
            log.exception("%s %s: no definition to report the failure with",
                          message.device, message.name)
            return None
        for definition in definitions:
            if definition.name == message.name and definition.elements:
                return SetVector(
                    kind=definition.kind, device=definition.device, name=definition.name,
                    state=PropertyState.ALERT, elements=definition.elements,
                    timestamp=timestamp_now(), message=reason,
                )
        return None


def _describe(message: IndiMessage) -> str:
    if isinstance(message, NewVector):
        return f"{message.device} {message.name}: new{message.kind.value}Vector"
    if isinstance(message, GetProperties):
        return f"getProperties {message.device or '*'} {message.name or ''}".rstrip()
    return type(message).__name__
