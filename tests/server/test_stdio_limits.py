"""The bounds of our output to indiserver, in memory: they follow its -d and -m, and past them
the link drops frames and stays up instead of disconnecting."""

from __future__ import annotations

import asyncio

import pytest

from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
    EnableBlob,
    Message,
    PropertyState,
    SetVector,
    VectorKind,
)
from qhy42_indi.server.connection import MIB, Connection, Outgoing, Overflow, QueueLimits
from qhy42_indi.server.stdio import indiserver_limits_mib, stdio_limits
from tests.server.test_hub import queued
from tests.support.transports import FakeTransport

DEVICE = "QHY CCD TEST"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], (5, 128)),
        (["-v", "-p", "7624", "indi_qhy42_ccd"], (5, 128)),
        (["-m", "64", "-d", "2", "indi_qhy42_ccd"], (2, 64)),
        (["-vvm", "256", "indi_qhy42_ccd"], (5, 256)),  # grouped letters, as indiserver reads
        (["-d", "0", "indi_qhy42_ccd"], (0, 128)),  # 0: stream frames never dropped
        (["-m", "0", "indi_qhy42_ccd"], (5, 128)),  # not a usable bound: the default
        (["-m", "12MB", "indi_qhy42_ccd"], (5, 12)),  # atoi
        (["-l", "/var/log/indi", "-m", "32", "drv"], (5, 32)),  # values are skipped whole
        (["indi_qhy42_ccd", "-m", "1"], (5, 128)),  # options end at the first driver
    ],
)
def test_limits_are_read_as_indiserver_reads_its_arguments(
    args: list[str], expected: tuple[int, int]
) -> None:
    assert indiserver_limits_mib(args) == expected


def test_the_bounds_follow_the_indiserver_that_runs_us_and_else_its_defaults() -> None:
    ours = stdio_limits(["/usr/bin/indiserver", "-m", "64", "-d", "0", "indi_qhy42_ccd"])
    assert ours == QueueLimits(drop_stream_bytes=None, max_behind_bytes=64 * MIB,
                               overflow=Overflow.DROP_BLOBS)
    for argv in (None, ["python3", "-m", "pytest", "-m", "1"]):
        default = stdio_limits(argv)
        assert default.max_behind_bytes == 128 * MIB and default.drop_stream_bytes == 5 * MIB
        assert default.overflow is Overflow.DROP_BLOBS


def test_a_queue_without_a_bound_cannot_be_made() -> None:
    with pytest.raises(ValueError):
        QueueLimits(max_behind_bytes=0)


# ---- the must-stay link -------------------------------------------------------------------


def frame(fmt: str, size: int) -> Outgoing:
    return Outgoing.of(SetVector(
        kind=VectorKind.BLOB, device=DEVICE, name="CCD1", state=PropertyState.OK,
        elements=(BlobElement(name="CCD1", format=fmt, size=size, data_b64=b"A" * size),),
    ))


def update(text: str = "exposure done") -> Outgoing:
    return Outgoing.of(Message(device=DEVICE, message=text))


def indiserver_link(transport: FakeTransport | None = None) -> Connection:
    limits = QueueLimits(drop_stream_bytes=1000, max_behind_bytes=10_000,
                         overflow=Overflow.DROP_BLOBS, other_headroom_bytes=2_000)
    connection = Connection("indiserver", transport or FakeTransport(), limits)
    connection.interest.add(None, None)
    connection.blob_policy.apply(EnableBlob(device=DEVICE, mode=BlobEnable.ALSO))
    return connection


def kinds(connection: Connection) -> list[str]:
    return ["stream" if o.is_stream else "frame" if o.is_blob else "other"
            for o in queued(connection)]


def test_past_the_stream_bound_only_stream_frames_are_dropped() -> None:
    link = indiserver_link()
    for _ in range(3):
        link.offer(frame(".stream", 800))
    link.offer(frame(".fits", 800))
    assert kinds(link) == ["stream", "stream", "frame"]
    assert link.frames_dropped == 1


def test_past_the_hard_bound_frames_are_dropped_other_messages_queue_on_and_it_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = indiserver_link()
    for _ in range(20):  # 20 science frames of 1 KB against a 10 KB bound
        link.offer(frame(".fits", 1000))
    link.offer(update())
    assert not link.closed
    assert kinds(link).count("frame") < 20 and kinds(link)[-1] == "other"
    assert link.bytes_behind() <= 10_000 + 2_000
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "dropping every frame" in errors[0].getMessage()


def test_past_the_headroom_other_messages_are_dropped_too_so_the_bound_holds() -> None:
    link = indiserver_link()
    for _ in range(20):
        link.offer(frame(".fits", 1000))
    for index in range(500):  # far more than 2 KB of them
        link.offer(update(f"update {index}"))
    assert not link.closed
    assert link.bytes_behind() <= 10_000 + 2_000


async def test_once_indiserver_reads_again_frames_flow_and_the_loss_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = FakeTransport()
    link = indiserver_link(transport)
    for _ in range(20):
        link.offer(frame(".fits", 1000))
    writer = asyncio.create_task(link.run_writer())
    await link.flush(5)
    link.offer(frame(".fits", 1000))
    await link.flush(5)
    link.close()
    await writer
    sent = b"".join(transport.written)
    assert sent.count(b"<setBLOBVector") == 20 - link.frames_dropped + 1
    recovered = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(recovered) == 1 and f"{link.frames_dropped} frames" in recovered[0]

