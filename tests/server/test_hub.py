"""The hub and connections, in memory: routing, interest, BLOB modes, one encode, lag bounds."""

from __future__ import annotations

import asyncio

import pytest

from qhy42_indi.backends.simulator import SimulatorBackend, SimulatorOptions
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.indi import encoder
from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
    DefVector,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    Message,
    NewVector,
    NumberElement,
    Perm,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchState,
    VectorKind,
)
from qhy42_indi.server import connection as connection_module
from qhy42_indi.server.connection import Connection, Outgoing, QueueLimits
from qhy42_indi.server.hub import Hub, Publisher
from qhy42_indi.server.session import run_session
from tests.support.transports import FakeTransport

DEVICE = "QHY CCD TEST"


def queued(connection: Connection) -> list[Outgoing]:
    return list(connection._queue)


def blob_message(fmt: str = ".fits", payload: bytes = b"QUJD") -> SetVector:
    return SetVector(
        kind=VectorKind.BLOB, device=DEVICE, name="CCD1", state=PropertyState.OK,
        elements=(BlobElement(name="CCD1", format=fmt, size=3, data_b64=payload),),
    )


def new_device() -> Qhy42Device:
    return Qhy42Device(DEVICE, SimulatorBackend(SimulatorOptions(seed=1)))


def hub_with_device() -> tuple[Hub, Qhy42Device]:
    hub = Hub()
    device = new_device()
    hub.add_device(device)
    return hub, device


def client(hub: Hub, limits: QueueLimits | None = None) -> Connection:
    connection = Connection("test", FakeTransport(), limits or QueueLimits())
    hub.attach(connection)
    return connection


def names_of(connection: Connection) -> list[tuple[str, str | None]]:
    return [(type(o).__name__, o.name) for o in queued(connection)]


async def test_nothing_is_sent_before_get_properties() -> None:
    hub, device = hub_with_device()
    connection = client(hub)
    device.say("hello")
    assert queued(connection) == []


async def test_get_properties_sends_all_defs_to_the_asker_only() -> None:
    hub, _ = hub_with_device()
    asker, other = client(hub), client(hub)
    await hub.handle(other, GetProperties())
    before = len(queued(other))
    await hub.handle(asker, GetProperties(device=DEVICE))
    assert [o.name for o in queued(asker)][:3] == ["CONNECTION", "DRIVER_INFO", "POLLING_PERIOD"]
    assert len(queued(other)) == before  # no duplicate defs for others


async def test_get_properties_with_a_name_sends_that_def_only() -> None:
    hub, _ = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties(device=DEVICE, name="DRIVER_INFO"))
    assert [o.name for o in queued(connection)] == ["DRIVER_INFO"]


async def test_star_device_means_every_device() -> None:
    hub, _ = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties(device="*"))
    assert len(queued(connection)) == 6
    assert connection.interest.everything


async def test_ping_request_is_answered_with_the_same_uid() -> None:
    hub, _ = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, PingRequest(uid="SetBLOB/7"))
    assert queued(connection)[0].chunks == tuple(encoder.encode_chunks(PingReply(uid="SetBLOB/7")))


async def test_connect_defines_the_ccd_set_and_disconnect_deletes_it() -> None:
    hub, device = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties())
    start = len(queued(connection))
    connect = NewVector(kind=VectorKind.SWITCH, device=DEVICE, name="CONNECTION",
                        elements=(SwitchElement(name="CONNECT", value=SwitchState.ON),))
    await hub.handle(connection, connect)
    assert device.connected
    assert "CCD_EXPOSURE" in device.defined and "CCD1" in device.defined
    after_connect = len(queued(connection))
    defs = [o.name for o in queued(connection)[start:after_connect]]
    assert defs[0] == "CONNECTION" and defs[1:3] == ["CCD_EXPOSURE", "CCD_ABORT_EXPOSURE"]
    disconnect = NewVector(kind=VectorKind.SWITCH, device=DEVICE, name="CONNECTION",
                           elements=(SwitchElement(name="DISCONNECT", value=SwitchState.ON),))
    await hub.handle(connection, disconnect)
    assert "CCD_EXPOSURE" not in device.defined
    deleted = [o.name for o in queued(connection)[after_connect:] if o.name is not None]
    assert set(device.connected_names) <= set(deleted)
    await device.close()


@pytest.mark.parametrize(
    ("mode", "name", "gets_blob", "gets_other"),
    [
        (BlobEnable.NEVER, None, False, True),
        (BlobEnable.ALSO, None, True, True),
        (BlobEnable.ONLY, None, True, False),
        (BlobEnable.ONLY, "CCD1", True, True),
    ],
)
async def test_each_client_gets_what_its_blob_mode_says(
    mode: BlobEnable, name: str | None, gets_blob: bool, gets_other: bool
) -> None:
    hub, device = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties())
    await hub.handle(connection, EnableBlob(device=DEVICE, name=name, mode=mode))
    start = len(queued(connection))
    hub.publish(blob_message())
    device.say("after the frame")
    got = queued(connection)[start:]
    assert any(o.is_blob for o in got) is gets_blob
    assert any(not o.is_blob for o in got) is gets_other


async def test_one_frame_is_encoded_once_for_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[IndiMessage] = []
    real = connection_module.encode_chunks

    def counting(message: IndiMessage) -> list[bytes | memoryview]:
        calls.append(message)
        return real(message)

    monkeypatch.setattr(connection_module, "encode_chunks", counting)
    hub, _ = hub_with_device()
    clients = [client(hub) for _ in range(4)]
    for connection in clients:
        connection.interest.add(None, None)
        connection.blob_policy.apply(EnableBlob(device=DEVICE, mode=BlobEnable.ALSO))
    hub.publish(blob_message())
    assert len(calls) == 1
    payloads = [queued(c)[-1].chunks for c in clients]
    assert all(p is payloads[0] for p in payloads)  # the same buffers, not copies


async def test_stream_frames_are_dropped_for_a_lagging_client_but_science_frames_are_not() -> None:
    hub, _ = hub_with_device()
    lagging = client(hub, QueueLimits(drop_stream_bytes=100, max_behind_bytes=10_000))
    lagging.interest.add(None, None)
    lagging.blob_policy.apply(EnableBlob(device=DEVICE, mode=BlobEnable.ALSO))
    payload = b"A" * 200
    for _ in range(3):
        hub.publish(blob_message(".stream", payload))
        hub.publish(blob_message(".fits", payload))
    kinds = [o.is_stream for o in queued(lagging)]
    assert kinds.count(False) == 3  # every science frame kept
    assert kinds.count(True) == 1  # stream frames past the bound dropped
    assert lagging.frames_dropped == 2
    assert not lagging.closed


async def test_a_client_too_far_behind_is_disconnected_and_others_keep_receiving() -> None:
    hub, _ = hub_with_device()
    stalled = client(hub, QueueLimits(drop_stream_bytes=None, max_behind_bytes=1000))
    healthy = client(hub)
    for connection in (stalled, healthy):
        connection.interest.add(None, None)
        connection.blob_policy.apply(EnableBlob(device=DEVICE, mode=BlobEnable.ALSO))
    for _ in range(10):
        hub.publish(blob_message(".fits", b"B" * 400))
    assert stalled.closed
    assert len(queued(healthy)) == 10


async def test_writer_sends_queued_messages_in_order() -> None:
    hub, _ = hub_with_device()
    transport = FakeTransport()
    connection = Connection("test", transport)
    hub.attach(connection)
    task = asyncio.create_task(connection.run_writer())
    await hub.handle(connection, GetProperties(device=DEVICE, name="CONNECTION"))
    await hub.handle(connection, PingRequest(uid="x"))
    for _ in range(20):
        await asyncio.sleep(0)
    connection.close()
    await task
    data = b"".join(transport.written)
    assert data.index(b"defSwitchVector") < data.index(b"pingReply")


async def test_read_only_clients_cannot_command() -> None:
    hub, device = hub_with_device()
    watcher = Connection("watcher", FakeTransport(), read_only=True)
    hub.attach(watcher)
    await hub.handle(watcher, GetProperties())
    await hub.handle(watcher, NewVector(
        kind=VectorKind.NUMBER, device=DEVICE, name="POLLING_PERIOD",
        elements=(NumberElement(name="PERIOD_MS", value=500),)))
    assert device.props["POLLING_PERIOD"].value("PERIOD_MS") == 1000


async def test_partial_frame_is_refused_with_alert() -> None:
    hub, device = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties())
    await device.connect()
    await hub.handle(connection, NewVector(
        kind=VectorKind.NUMBER, device=DEVICE, name="CCD_FRAME",
        elements=(NumberElement(name="WIDTH", value=100),)))
    assert device.props["CCD_FRAME"].state is PropertyState.ALERT
    assert device.props["CCD_FRAME"].value("WIDTH") == 2048


async def test_out_of_range_value_is_alert_with_a_message_and_nothing_changes() -> None:
    hub, device = hub_with_device()
    connection = client(hub)
    await hub.handle(connection, GetProperties())
    await device.connect()
    start = len(queued(connection))
    await hub.handle(connection, NewVector(
        kind=VectorKind.NUMBER, device=DEVICE, name="CCD_BINNING",
        elements=(NumberElement(name="HOR_BIN", value=9),)))
    assert device.props["CCD_BINNING"].state is PropertyState.ALERT
    assert device.props["CCD_BINNING"].value("HOR_BIN") == 1
    reply = b"".join(bytes(c) for o in queued(connection)[start:] for c in o.chunks)
    assert b"out of range [1, 4]" in reply and b'state="Alert"' in reply


def test_defs_for_deleted_properties_are_not_offered() -> None:
    device = new_device()
    assert all(isinstance(d, DefVector) for d in device.definitions())
    assert "CCD_EXPOSURE" not in [d.name for d in device.definitions()]
    assert not isinstance(device.definitions()[0], DelProperty)


# ---- a device that fails: the client keeps its connection --------------------------------


class FailingDevice:
    """A device whose handler (and, on request, whose definitions) raise, as a bug would."""

    name = "BROKEN"

    def __init__(self, *, definitions_fail: bool = False) -> None:
        self.definitions_fail = definitions_fail
        self.vector = DefVector(
            kind=VectorKind.NUMBER, device=self.name, name="GAIN", state=PropertyState.OK,
            elements=(NumberElement(name="VALUE", value=3),), perm=Perm.RW,
        )

    def bind(self, publish: Publisher, wants_blob: object = None) -> None:
        self.publish = publish

    def definitions(self, name: str | None = None) -> list[DefVector]:
        if self.definitions_fail:
            raise KeyError("definitions are broken")
        return [self.vector] if name in (None, "GAIN") else []

    async def handle_new(self, message: NewVector) -> None:
        raise ZeroDivisionError("a bug in the handler")


def set_gain(name: str = "GAIN") -> NewVector:
    return NewVector(kind=VectorKind.NUMBER, device=FailingDevice.name, name=name,
                     elements=(NumberElement(name="VALUE", value=4),))


def replies_of(connection: Connection, start: int = 0) -> list[IndiMessage]:
    return [o.message for o in queued(connection)[start:]]


async def test_a_handler_that_raises_is_an_alert_and_a_message_and_the_client_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub()
    hub.add_device(FailingDevice())
    connection = client(hub)
    await hub.handle(connection, set_gain())
    alert, told = replies_of(connection)
    assert isinstance(alert, SetVector) and alert.state is PropertyState.ALERT
    assert alert.name == "GAIN" and [e.name for e in alert.elements] == ["VALUE"]
    assert isinstance(told, Message) and told.device == "BROKEN"
    assert "ZeroDivisionError: a bug in the handler" in (told.message or "")
    assert "ZeroDivisionError" in (alert.message or "")
    assert not connection.closed
    failures = [r for r in caplog.records if r.exc_info and r.name == "qhy42_indi.server.hub"]
    assert len(failures) == 1 and "GAIN" in failures[0].getMessage()
    await hub.handle(connection, PingRequest(uid="after"))
    assert isinstance(replies_of(connection)[-1], PingReply)


async def test_a_failure_on_a_vector_the_device_does_not_define_is_a_message_only() -> None:
    hub = Hub()
    hub.add_device(FailingDevice())
    connection = client(hub)
    await hub.handle(connection, set_gain("NOT_DEFINED"))
    (told,) = replies_of(connection)
    assert isinstance(told, Message) and "NOT_DEFINED" in (told.message or "")


async def test_definitions_that_raise_on_get_properties_are_told_not_fatal() -> None:
    hub = Hub()
    hub.add_device(FailingDevice(definitions_fail=True))
    connection = client(hub)
    await hub.handle(connection, GetProperties())
    await hub.handle(connection, set_gain())  # no definition to report the Alert with
    first, second = replies_of(connection)
    assert isinstance(first, Message) and "getProperties" in (first.message or "")
    assert isinstance(second, Message) and "ZeroDivisionError" in (second.message or "")


async def test_a_session_goes_on_reading_after_a_handler_raises() -> None:
    hub = Hub()
    hub.add_device(FailingDevice())
    stream = ScriptedStream([encoder.encode(set_gain()), b"<pingRequest uid='next'/>"])
    connection = Connection("scripted", stream)
    await run_session(hub, stream, connection)
    written = b"".join(stream.written)
    assert b'state="Alert"' in written and b"a bug in the handler" in written
    assert b'<pingReply uid="next"' in written  # the command after the failing one ran


class ScriptedStream(FakeTransport):
    """A client that sends these chunks, then ends its input."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = list(chunks)

    async def recv(self, max_bytes: int) -> bytes:
        await asyncio.sleep(0)
        return self._chunks.pop(0) if self._chunks else b""


def test_connection_watchers_hear_of_each_client_that_comes_and_goes() -> None:
    hub = Hub()
    heard: list[int] = []
    stop = hub.watch_connections(lambda: heard.append(len(hub.connections)))
    client = Connection("watched", FakeTransport())
    hub.attach(client)
    hub.detach(client)
    hub.detach(client)  # a second detach changes nothing, and says nothing
    assert heard == [1, 0]
    stop()
    hub.attach(Connection("unwatched", FakeTransport()))
    assert heard == [1, 0]
