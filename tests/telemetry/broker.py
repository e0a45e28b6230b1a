"""A real mosquitto broker for the telemetry tests, and a subscriber that keeps what it gets.

The broker listens on 127.0.0.1 on a free port, is bounded in time, and is stopped by the
context manager even when a test fails; it can be stopped and started again on the same port
(persistence on, so a persistent subscriber's session and queued messages survive).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from tests.support.processes import HOST, free_port, stop, wait_for_port

WAIT_S = 20.0


def require_mosquitto() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        raise RuntimeError("mosquitto is not installed (Debian package mosquitto): run `make test`")
    return path


@dataclass
class Broker:
    port: int
    directory: Path
    password_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        lines = [
            # Run as root, mosquitto would switch to user mosquitto, who cannot read here.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"listener {self.port} {HOST}",
            "persistence true",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.directory}/mosquitto.log",
        ]
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [require_mosquitto(), "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def mosquitto(directory: Path, *, users: dict[str, str] | None = None) -> Iterator[Broker]:
    directory.mkdir(parents=True, exist_ok=True)
    broker = Broker(free_port(), directory)
    if users:
        broker.password_file = directory / "passwords"
        broker.password_file.write_text("")
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(broker.password_file), user,
                            password], check=True, timeout=10, capture_output=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """Everything received on the subscribed topics, in order, with a bounded wait."""

    client: aiomqtt.Client
    received: list[Received] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            async with self._arrived:
                self.received.append(Received(str(message.topic), payload, message.retain))
                self._arrived.notify_all()

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Received], bool] = lambda _: True,
        timeout_s: float = WAIT_S,
        *,
        start: int = 0,
    ) -> Received:
        def find() -> Received | None:
            return next((r for r in self.received[start:]
                         if r.topic == topic and predicate(r)), None)

        try:
            async with asyncio.timeout(timeout_s), self._arrived:
                while (found := find()) is None:
                    await self._arrived.wait()
                return found
        except TimeoutError:
            seen = [(r.topic, r.payload[:120]) for r in self.received if r.topic == topic]
            raise AssertionError(
                f"nothing matching on {topic} in {timeout_s} s; got {seen}") from None

    def on(self, topic: str) -> list[Received]:
        return [r for r in self.received if r.topic == topic]


@contextlib.asynccontextmanager
async def subscribed(
    broker: Broker,
    *topics: str,
    identifier: str | None = None,
    clean: bool = True,
    username: str | None = None,
    password: str | None = None,
) -> AsyncIterator[Subscriber]:
    client = aiomqtt.Client(HOST, broker.port, identifier=identifier,
                            clean_session=None if clean else False, timeout=10,
                            username=username, password=password)
    async with client:
        subscriber = Subscriber(client)
        pump = asyncio.create_task(subscriber._pump())
        for topic in topics:
            await client.subscribe(topic, qos=1)
        try:
            yield subscriber
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


async def publish(broker: Broker, topic: str, payload: bytes | str) -> None:
    async with aiomqtt.Client(HOST, broker.port, timeout=10) as client:
        await client.publish(topic, payload, qos=1)
