"""USB discovery on a faked bus: pyusb with a backend of our own (usb.backend.IBackend)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import usb.backend

from qhy42_indi import cli
from qhy42_indi.backends import usb as qhy_usb
from qhy42_indi.backends.usb import Access, Firmware, classify, format_listing, list_cameras


@dataclass
class Descriptor:
    """What pyusb reads of a device descriptor."""

    idVendor: int
    idProduct: int
    bus: int
    address: int
    bLength: int = 18
    bDescriptorType: int = 1
    bcdUSB: int = 0x0300
    bDeviceClass: int = 0
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    bMaxPacketSize0: int = 9
    bcdDevice: int = 0
    iManufacturer: int = 0
    iProduct: int = 0
    iSerialNumber: int = 0
    bNumConfigurations: int = 1
    port_number: int | None = None
    port_numbers: tuple[int, ...] | None = None
    speed: int | None = None


class FakeBus(usb.backend.IBackend):  # type: ignore[misc]
    """A USB bus that holds the given devices; pyusb enumerates it as it would libusb."""

    def __init__(self, *devices: Descriptor) -> None:
        self.devices = list(devices)

    def enumerate_devices(self):  # type: ignore[no-untyped-def]
        yield from self.devices

    def get_device_descriptor(self, dev):  # type: ignore[no-untyped-def]
        return dev


@pytest.fixture
def dev_root(tmp_path: Path) -> Path:
    for bus, address in ((1, 5), (2, 7), (3, 9)):
        node = tmp_path / f"{bus:03d}" / f"{address:03d}"
        node.parent.mkdir(parents=True, exist_ok=True)
        node.touch()
    return tmp_path


def only_bus_3_device_9_is_denied(path: Path, mode: int) -> bool:
    return not str(path).endswith("003/009")


def test_pre_load_and_loaded_ids_are_told_apart() -> None:
    assert classify(0x4202) == ("QHY42PRO", Firmware.PENDING)
    assert classify(0x4203) == ("QHY42PRO", Firmware.LOADED)
    assert classify(0xC601) == ("QHY600", Firmware.LOADED)
    assert classify(0x1234) == (None, Firmware.UNKNOWN)


def test_lists_qhyccd_devices_only_with_firmware_and_access(dev_root: Path) -> None:
    bus = FakeBus(
        Descriptor(0x1618, 0x4203, bus=2, address=7),  # a QHY42PRO, firmware loaded
        Descriptor(0x1d6b, 0x0003, bus=1, address=1),  # a root hub: not QHYCCD
        Descriptor(0x1618, 0x4202, bus=1, address=5),  # a QHY42PRO waiting for fxload
        Descriptor(0x1618, 0xC601, bus=3, address=9),  # a QHY600 we may not open
        Descriptor(0x1618, 0x4203, bus=4, address=2),  # no node under dev_root
    )
    cameras = list_cameras(bus, dev_root, only_bus_3_device_9_is_denied)
    assert [(c.bus, c.address, c.model, c.firmware, c.access) for c in cameras] == [
        (1, 5, "QHY42PRO", Firmware.PENDING, Access.OK),
        (2, 7, "QHY42PRO", Firmware.LOADED, Access.OK),
        (3, 9, "QHY600", Firmware.LOADED, Access.DENIED),
        (4, 2, "QHY42PRO", Firmware.LOADED, Access.NO_NODE),
    ]
    text = format_listing(cameras)
    assert "ID 1618:4202 QHY42PRO, firmware NOT loaded, access ok" in text
    assert "/lib/firmware/qhy/QHY42PRO.img" in text
    assert "ID 1618:c601 QHY600, firmware loaded, no permission" in text
    assert "udev rules" in text


def test_real_permissions_are_read_from_the_device_node(dev_root: Path) -> None:
    node = dev_root / "002" / "007"
    node.chmod(0o000)
    try:
        (camera,) = list_cameras(FakeBus(Descriptor(0x1618, 0x4203, bus=2, address=7)),
                                 dev_root)
        expected = Access.OK if os.geteuid() == 0 else Access.DENIED  # root may open anything
        assert camera.access is expected and camera.is_qhy42pro
    finally:
        node.chmod(0o644)


def test_an_empty_bus_says_so() -> None:
    assert "no QHYCCD USB device" in format_listing(list_cameras(FakeBus()))


def test_list_command_prints_the_bus_and_the_library(
    dev_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = FakeBus(Descriptor(0x1618, 0x4202, bus=1, address=5))
    real = qhy_usb.list_cameras
    monkeypatch.setattr(qhy_usb, "list_cameras", lambda: real(bus, dev_root))
    monkeypatch.setenv("QHY42_LIBQHYCCD", "/opt/sdk/libqhyccd.so")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "libqhyccd: /opt/sdk/libqhyccd.so" in out
    assert "Bus 001 Device 005: ID 1618:4202 QHY42PRO, firmware NOT loaded" in out


def test_list_command_without_libusb_fails_with_advice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_backend() -> list[qhy_usb.UsbCamera]:
        raise qhy_usb.UsbUnavailable("pyusb finds no USB backend: install libusb-1.0")

    monkeypatch.setattr(qhy_usb, "list_cameras", no_backend)
    assert cli.main(["list"]) == 1
    assert "install libusb" in capsys.readouterr().err
