"""A device made of skeleton-declared properties, with one handler per property.

It keeps the property vectors, which of them are defined right now (and in what order), and
dispatches a client's newXXXVector: the vector checks perm, members, limits and the switch
rule; the device may refuse it (`admit`); then the property's handler acts, or, without one,
the values are stored and echoed with Ok. Whatever a handler raises becomes an Alert on its
property (`handler_failed`): a command never costs a client its connection. Everything the
device says goes through `publish`, bound by the hub. The QHY42PRO behaviour lives in
device.py; this module knows nothing about cameras.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from qhy42_indi.indi.messages import (
    DefVector,
    DelProperty,
    IndiMessage,
    Message,
    NewVector,
    Perm,
    PropertyState,
)
from qhy42_indi.indi.properties import InvalidInput, PropertyVector, Value
from qhy42_indi.indi.values import timestamp_now

log = logging.getLogger(__name__)

Handler = Callable[[PropertyVector, dict[str, Value], NewVector], Awaitable[None]]
_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG")


def _no_publisher(message: IndiMessage) -> None:
    log.debug("no hub bound yet: dropped %s", type(message).__name__)


class PropertyDevice:
    def __init__(self, name: str, vectors: Iterable[PropertyVector]) -> None:
        self._name = name
        self.props: dict[str, PropertyVector] = {}
        for vector in vectors:
            if vector.name in self.props:
                raise ValueError(f"property {vector.name} declared twice")
            self.props[vector.name] = vector
        self.defined: dict[str, None] = {}  # an ordered set: definition order matters to KStars
        self.handlers: dict[str, Handler] = {}
        self.publish: Callable[[IndiMessage], None] = _no_publisher
        self._wants_blob: Callable[[str, str], bool] | None = None
        # One client command at a time: handlers see a consistent device.
        self._command_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._name

    def bind(self, publish: Callable[[IndiMessage], None],
             wants_blob: Callable[[str, str], bool] | None = None) -> None:
        """How the device speaks (the hub's publish), and how it learns whether anyone takes
        a BLOB of its own (unbound: everyone does)."""
        self.publish = publish
        self._wants_blob = wants_blob

    def blob_wanted(self, name: str) -> bool:
        return self._wants_blob is None or self._wants_blob(self._name, name)

    # ---- what clients see -----------------------------------------------------------------

    def definitions(self, name: str | None = None) -> list[DefVector]:
        names = [n for n in self.defined if name is None or n == name]
        now = timestamp_now()
        return [self.props[n].definition(self._name, now) for n in names]

    def publish_definitions(self) -> None:
        """Every defined property to the clients: a device added while they are connected."""
        for definition in self.definitions():
            self.publish(definition)

    def define(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.defined:
                self.defined[name] = None
                self.publish(self.props[name].definition(self._name, timestamp_now()))

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.defined:
                del self.defined[name]
                self.publish(DelProperty(device=self._name, name=name, timestamp=timestamp_now()))

    def update(
        self,
        name: str,
        state: PropertyState | None = None,
        message: str | None = None,
        *,
        with_limits: bool = False,
    ) -> None:
        """Publish a property's current values (after setting its state, if given)."""
        vector = self.props[name]
        if state is not None:
            vector.state = state
        if name in self.defined:
            self.publish(
                vector.update(
                    self._name, message, with_limits=with_limits, timestamp=timestamp_now()
                )
            )

    def alert(self, name: str, text: str) -> None:
        log.warning("%s %s: %s", self._name, name, text)
        self.update(name, PropertyState.ALERT, f"[ERROR] {text}")

    def say(self, text: str, level: str = "INFO") -> None:
        log.log(logging.getLevelName(level) if level in _LEVELS else logging.INFO,
                "%s: %s", self._name, text)
        self.say_to_clients(text, level)

    def say_to_clients(self, text: str, level: str = "INFO") -> None:
        """A message to the clients only (no log line): what say() and the debug log send,
        if `allows_message` lets that level through."""
        if self.allows_message(level):
            self.publish(Message(device=self._name, message=f"[{level}] {text}",
                                 timestamp=timestamp_now()))

    def allows_message(self, level: str) -> bool:
        """Whether messages of this level ([ERROR], [WARNING], [INFO], [DEBUG]) go out."""
        return True

    # ---- client commands -----------------------------------------------------------------

    async def handle_new(self, message: NewVector) -> None:
        vector = self.props.get(message.name)
        if vector is None or message.name not in self.defined:
            log.info("%s: property %s is not defined", self._name, message.name)
            return
        async with self._command_lock:
            await self.replay(message)

    async def replay(self, message: NewVector) -> None:
        """Check and act on a command without taking the command lock: for a handler that
        applies saved values (CONFIG_LOAD) while it holds the lock itself."""
        vector = self.props.get(message.name)
        if vector is None or message.name not in self.defined:
            log.info("%s: property %s is not defined", self._name, message.name)
            return
        try:
            proposed = vector.propose(message)
        except InvalidInput as refusal:
            if vector.perm is Perm.RO:
                self.say(str(refusal), "WARNING")
            else:
                self.alert(message.name, str(refusal))
            return
        handler = self.handlers.get(message.name, self.store_and_echo)
        try:
            self.admit(message.name)
            await handler(vector, proposed, message)
        except Exception as error:  # whatever went wrong, the client keeps its connection
            self.handler_failed(message.name, error)

    def admit(self, name: str) -> None:
        """Raise to refuse a command to `name` before its handler runs (the device's state
        does not allow it); handler_failed reports it. Admits everything by default."""

    def handler_failed(self, name: str, error: Exception) -> None:
        """A command's handling raised: Alert on the property with the reason."""
        log.error("%s %s: the command failed", self._name, name, exc_info=error)
        self.alert(name, f"The command failed: {error or type(error).__name__}")

    async def store_and_echo(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        """The default handler: keep the values, report Ok."""
        vector.set_values(proposed)
        self.update(vector.name, PropertyState.OK)
