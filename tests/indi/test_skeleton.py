"""The xml/ skeletons load into the standard INDI::CCD vocabulary, in libindi's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from qhy42_indi.indi.messages import NumberElement, Perm, SwitchRule, VectorKind
from qhy42_indi.indi.skeleton import SkeletonError, load_skeleton, skeleton_dir


def names(file: str) -> list[str]:
    return [v.name for v in load_skeleton(skeleton_dir() / file)]


def test_base_properties_are_the_default_device_set() -> None:
    assert names("qhy42_base_sk.xml") == [
        "CONNECTION", "DRIVER_INFO", "POLLING_PERIOD", "DEBUG", "CONFIG_PROCESS",
        "ACTIVE_DEVICES",
    ]


def test_ccd_properties_cover_the_standard_set_in_libindi_order() -> None:
    ccd = names("qhy42_ccd_sk.xml")
    libindi_order = [
        "CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CCD_FRAME", "CCD_FRAME_RESET", "CCD_BINNING",
        "FITS_HEADER", "CCD_TEMPERATURE", "CCD_TEMP_RAMP", "CCD_CAPTURE_FORMAT",
        "CCD_TRANSFER_FORMAT", "CCD_INFO", "CCD_COMPRESSION", "CCD1", "CCD_FRAME_TYPE",
        "SCOPE_INFO", "UPLOAD_MODE", "UPLOAD_SETTINGS", "CCD_FAST_TOGGLE", "CCD_FAST_COUNT",
    ]
    assert [n for n in ccd if n in libindi_order] == libindi_order
    for extra in ("CCD_COOLER", "CCD_COOLER_POWER", "CCD_GAIN", "CCD_OFFSET"):
        assert extra in ccd


def test_ccd_info_is_read_only_and_ordered_for_kstars() -> None:
    info = next(v for v in load_skeleton(skeleton_dir() / "qhy42_ccd_sk.xml")
                if v.name == "CCD_INFO")
    assert info.perm is Perm.RO and info.kind is VectorKind.NUMBER
    assert [(e.name, e.value) for e in info.elements] == [
        ("CCD_MAX_X", 2048), ("CCD_MAX_Y", 2048), ("CCD_PIXEL_SIZE", 11),
        ("CCD_PIXEL_SIZE_X", 11), ("CCD_PIXEL_SIZE_Y", 11), ("CCD_BITSPERPIXEL", 16),
    ]


def test_switch_rules_and_number_limits_come_from_the_file() -> None:
    vectors = {v.name: v for v in load_skeleton(skeleton_dir() / "qhy42_ccd_sk.xml")}
    assert vectors["CCD_ABORT_EXPOSURE"].rule is SwitchRule.AT_MOST_ONE
    assert vectors["CCD_FRAME_RESET"].perm is Perm.WO
    exposure = vectors["CCD_EXPOSURE"].elements[0]
    assert isinstance(exposure, NumberElement)
    assert (exposure.min, exposure.max) == (0.00002, 300)


def test_a_dtd_in_a_skeleton_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb_sk.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><INDIDriver/>')
    with pytest.raises(Exception, match=r"(?i)entit|dtd|forbidden"):
        load_skeleton(bomb)


def test_an_element_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad_sk.xml"
    bad.write_text('<INDIDriver><defNumberVector name="N" perm="rw">'
                   '<defText name="T">x</defText></defNumberVector></INDIDriver>')
    with pytest.raises(SkeletonError, match="defText"):
        load_skeleton(bad)
