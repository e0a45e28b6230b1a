"""libindiclient on the daemon's local socket: frames as shared memory, as indiserver -u does.

The capture client is given `--host localhost:/<path> --port 1`, which libindiclient 1.9.9
reads as the abstract Unix socket @/<path> (nothing listens on TCP port 1). While it takes an
exposure, a TCP client and a Python client on the same local socket watch: all three must get
the same FITS bytes, the TCP one as base64 and the Python one as a memfd with attached="true".
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from astropy.io import fits

from qhy42_indi.indi.messages import BlobElement, SetVector
from tests.interop.libindi_client import build_capture_client, run_capture_client
from tests.support.camera import DEVICE
from tests.support.client import IndiClient, is_blob
from tests.support.local_client import LocalClient, mapped
from tests.support.processes import HOST, daemon, indi_tool

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract Unix sockets and memfd are Linux"
)

BINNED = ["--set", "CCD_BINNING.HOR_BIN=2", "--set", "CCD_BINNING.VER_BIN=2"]


@pytest.fixture(scope="module")
def client_binary() -> Path:
    return build_capture_client()


@pytest.fixture
def path() -> str:
    return f"/qhy42-test/{uuid.uuid4().hex}"


async def watch_over_tcp(client: IndiClient) -> int:
    """Take every BLOB of the camera on this TCP connection; the index where to look."""
    await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>"
                      f"<enableBLOB device='{DEVICE}'>Also</enableBLOB>"
                      "<pingRequest uid='watching'/>")
    await client.wait_for(lambda m: type(m).__name__ == "PingReply")
    return len(client.received)


@pytest.mark.parametrize("blob_mode", ["only", "also"])
async def test_libindiclient_on_the_local_socket_gets_the_frame_tcp_clients_get(
    client_binary: Path, tmp_path: Path, path: str, blob_mode: str
) -> None:
    with daemon("--local-socket", path) as server:
        async with IndiClient.connect(HOST, server.port) as tcp:
            start = await watch_over_tcp(tcp)
            python_local = await asyncio.to_thread(LocalClient.connect, path, 60)
            try:
                await asyncio.to_thread(python_local.take_blobs, DEVICE)
                # One exposure, asked for by libindiclient; all three clients get its frame.
                result = await asyncio.to_thread(
                    run_capture_client, client_binary, f"localhost:{path}", 1, DEVICE, 0.2,
                    out_dir=tmp_path, extra_args=["--blob-mode", blob_mode, *BINNED],
                    timeout_s=60,
                )
                assert result.returncode == 0, result.stderr
                [frame] = result.frames
                shared = await asyncio.to_thread(python_local.next_blob)
                message = await tcp.wait_for(is_blob, start=start)

                assert isinstance(message, SetVector)
                [element] = message.elements
                assert isinstance(element, BlobElement)
                over_tcp = base64.b64decode(bytes(element.data_b64))
                [member] = ET.fromstring(shared.xml).findall("oneBLOB")
                assert member.get("attached") == "true" and len(shared.fds) == 1
                size = int(member.get("size", "0"))
                from_memfd = mapped(shared.fds[0], size)
            finally:
                python_local.close()

        from_libindi = frame.file.read_bytes()
        assert from_libindi == over_tcp == from_memfd  # the same FITS, byte for byte
        assert frame.size == frame.bloblen == size == element.size == len(from_libindi)
        with fits.open(frame.file) as hdus:
            assert hdus[0].data.shape == (1024, 1024)
            assert hdus[0].header["INSTRUME"] == DEVICE
        assert "serving INDI to local clients" in server.log()


def test_libindiclient_takes_a_sequence_over_the_local_socket(
    client_binary: Path, tmp_path: Path, path: str
) -> None:
    with daemon("--local-socket", path):
        result = run_capture_client(
            client_binary, f"localhost:{path}", 1, DEVICE, 0.1, count=3, out_dir=tmp_path,
            extra_args=BINNED, timeout_s=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.done_frames == 3
    for frame in result.frames:
        with fits.open(frame.file) as hdus:
            assert hdus[0].data.shape == (1024, 1024)
    assert result.exposure_states() == ["Busy", "Ok"] * 3


def test_a_second_daemon_on_the_same_local_socket_logs_it_and_serves_tcp(path: str) -> None:
    with daemon("--local-socket", path), daemon("--local-socket", path) as second:
        log = second.log()
        assert f"local socket @{path} not served" in log and "--local-socket" in log
        result = indi_tool("indi_getprop", "-h", HOST, "-p", str(second.port), "-t", "2",
                           f"{DEVICE}.CONNECTION.*")
        assert result.returncode == 0, result.stderr
        assert f"{DEVICE}.CONNECTION.CONNECT=Off" in result.stdout


def abstract_sockets_of(pid: int) -> set[str]:
    """The abstract Unix socket names a process holds (/proc/net/unix, by inode)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    names = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[7].startswith("@"):
            names.add(fields[7])
    return names


def test_the_local_socket_is_abstract_and_off_with_no_local_socket(path: str) -> None:
    with daemon("--local-socket", path) as server:
        assert abstract_sockets_of(server.process.pid) == {f"@{path}"}
        assert not Path(path).exists()
    with daemon("--no-local-socket") as server:
        assert abstract_sockets_of(server.process.pid) == set()
        assert "local clients" not in server.log()
