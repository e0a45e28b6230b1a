"""The config file in libindi's format: writing it as libindi does, reading what libindi
drivers and the daemon's older releases wrote, keeping other drivers' vectors, .default, purge."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qhy42_indi.camera import config_file
from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import NewVector, SwitchState, TextElement, VectorKind
from qhy42_indi.indi.properties import PropertyVector
from qhy42_indi.indi.skeleton import load_skeleton, skeleton_dir

DEVICE = "QHY CCD QHY42PRO-SIM01"

# The layout of a file indi_simulator_ccd (indi-bin 1.9.9) wrote, cut down: it holds the empty
# vector that driver writes for an undefined FILTER_NAME, and properties we do not have.
LIBINDI_FILE = f"""<INDIDriver>
<newSwitchVector device='{DEVICE}' name='DEBUG'>
  <oneSwitch name='ENABLE'>
      Off
  </oneSwitch>
  <oneSwitch name='DISABLE'>
      On
  </oneSwitch>
</newSwitchVector>
<newNumberVector device='{DEVICE}' name='CCD_FRAME'>
  <oneNumber name='X'>
      0
  </oneNumber>
  <oneNumber name='Y'>
      0
  </oneNumber>
  <oneNumber name='WIDTH'>
      1024
  </oneNumber>
  <oneNumber name='HEIGHT'>
      1024
  </oneNumber>
</newNumberVector>
<newTextVector device='{DEVICE}' name='UPLOAD_SETTINGS'>
  <oneText name='UPLOAD_DIR'>
      /data/lights
  </oneText>
  <oneText name='UPLOAD_PREFIX'>
      M31_XXX
  </oneText>
</newTextVector>
<newSwitchVector device='{DEVICE}' name='CCD_CAPTURE_FORMAT'>
  <oneSwitch name='INDI_MONO'>
      On
  </oneSwitch>
</newSwitchVector>
<newTextVector device='' name=''>
</newTextVector>
<newNumberVector device='{DEVICE}' name='SIMULATOR_SETTINGS'>
  <oneNumber name='SIM_XRES'>
      1280
  </oneNumber>
  <oneNumber name='SIM_XSIZE'>
      5.2000000000000001776
  </oneNumber>
</newNumberVector>
<newNumberVector device='{DEVICE}' name='READ_MODE'>
  <oneNumber name='MODE'>
      1
  </oneNumber>
</newNumberVector>
<newNumberVector device='Other Camera' name='CCD_GAIN'>
  <oneNumber name='GAIN'>
      7
  </oneNumber>
</newNumberVector>
<newNumberVector device='{DEVICE}' name='CCD_GAIN'>
  <oneNumber name='GAIN'>
      90
  </oneNumber>
</newNumberVector>
</INDIDriver>
"""

SIMULATOR_SETTINGS = LIBINDI_FILE[LIBINDI_FILE.index("<newNumberVector device='QHY CCD "
                                                     "QHY42PRO-SIM01' name='SIMULATOR"):]
SIMULATOR_SETTINGS = SIMULATOR_SETTINGS[:SIMULATOR_SETTINGS.index("</newNumberVector>") + 19]


@pytest.fixture(scope="module")
def props() -> dict[str, PropertyVector]:
    directory = skeleton_dir()
    return {v.name: v for part in ("base", "ccd", "qhy")
            for v in load_skeleton(directory / f"qhy42_{part}_sk.xml")}


def fresh(props: dict[str, PropertyVector], name: str) -> PropertyVector:
    return PropertyVector.from_definition(props[name].definition(DEVICE))


def known(props: dict[str, PropertyVector], *names: str) -> dict[str, list[str]]:
    return {n: [e.name for e in props[n].elements] for n in names}


def values(command: NewVector) -> dict[str, object]:
    return {e.name: getattr(e, "value", None) for e in command.elements}


# ---- writing -------------------------------------------------------------------------------


def test_saved_file_is_laid_out_as_libindi_writes_it(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    gain, upload = fresh(props, "CCD_GAIN"), fresh(props, "UPLOAD_SETTINGS")
    gain.set_values({"GAIN": 33})
    upload.set_values({"UPLOAD_DIR": "/data/a&b", "UPLOAD_PREFIX": "IMG_XXX"})
    path = tmp_path / "cfg.xml"
    config_file.save_config(path, DEVICE, [gain, upload])
    assert path.read_text() == (
        "<INDIDriver>\n"
        f"<newNumberVector device='{DEVICE}' name='CCD_GAIN'>\n"
        "  <oneNumber name='GAIN'>\n"
        "      33\n"
        "  </oneNumber>\n"
        "</newNumberVector>\n"
        f"<newTextVector device='{DEVICE}' name='UPLOAD_SETTINGS'>\n"
        "  <oneText name='UPLOAD_DIR'>\n"
        "      /data/a&amp;b\n"
        "  </oneText>\n"
        "  <oneText name='UPLOAD_PREFIX'>\n"
        "      IMG_XXX\n"
        "  </oneText>\n"
        "</newTextVector>\n"
        "</INDIDriver>\n"
    )


def test_switches_are_saved_with_every_member(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    mode = fresh(props, "UPLOAD_MODE")
    mode.set_values({"UPLOAD_CLIENT": SwitchState.OFF, "UPLOAD_LOCAL": SwitchState.ON})
    path = tmp_path / "cfg.xml"
    config_file.save_config(path, DEVICE, [mode])
    assert "  <oneSwitch name='UPLOAD_BOTH'>\n      Off\n  </oneSwitch>\n" in path.read_text()
    (command,) = config_file.load_config(path)
    assert values(command) == {"UPLOAD_CLIENT": "Off", "UPLOAD_LOCAL": "On", "UPLOAD_BOTH": "Off"}


def test_numbers_and_texts_read_back_exactly(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    ramp, upload = fresh(props, "CCD_TEMP_RAMP"), fresh(props, "UPLOAD_SETTINGS")
    ramp.set_values({"RAMP_SLOPE": 0.1, "RAMP_THRESHOLD": 1e-7})
    upload.set_values({"UPLOAD_DIR": "/d/<x> 'q' \"dq\"", "UPLOAD_PREFIX": ""})
    path = tmp_path / "cfg.xml"
    config_file.save_config(path, DEVICE, [ramp, upload])
    # libindi writes %.20g; the shortest exact text reads back as the same double.
    assert "      0.1\n" in path.read_text()
    loaded = {c.name: values(c) for c in config_file.load_config(path)}
    assert loaded["CCD_TEMP_RAMP"] == {"RAMP_SLOPE": 0.1, "RAMP_THRESHOLD": 1e-7}
    assert loaded["UPLOAD_SETTINGS"] == {"UPLOAD_DIR": "/d/<x> 'q' \"dq\"", "UPLOAD_PREFIX": ""}


def test_saving_over_a_libindi_file_keeps_what_we_do_not_write(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    path = tmp_path / "cfg.xml"
    path.write_text(LIBINDI_FILE)
    gain = fresh(props, "CCD_GAIN")
    gain.set_values({"GAIN": 12})
    config_file.save_config(path, DEVICE, [gain, fresh(props, "CCD_OFFSET")])
    text = path.read_text()
    assert text.startswith("<INDIDriver>\n") and text.endswith("</INDIDriver>\n")
    # Other vectors are kept byte for byte, the empty one libindi wrote included.
    assert SIMULATOR_SETTINGS in text
    assert "<newTextVector device='' name=''>\n</newTextVector>\n" in text
    assert "name='DEBUG'" in text and "device='Other Camera'" in text
    # Ours replaced where it was, not duplicated; a new one appended.
    assert text.count(f"device='{DEVICE}' name='CCD_GAIN'") == 1
    assert text.index("name='CCD_GAIN'") < text.index("name='CCD_OFFSET'")
    commands = {(c.device, c.name): values(c) for c in config_file.load_config(path)}
    assert commands[(DEVICE, "CCD_GAIN")] == {"GAIN": 12}
    assert commands[("Other Camera", "CCD_GAIN")] == {"GAIN": 7}
    assert commands[(DEVICE, "SIMULATOR_SETTINGS")]["SIM_XRES"] == 1280


def test_saving_without_keeping_writes_only_ours(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    path = tmp_path / "cfg.xml"
    path.write_text(LIBINDI_FILE)
    config_file.save_config(path, DEVICE, [fresh(props, "CCD_GAIN")], keep_unknown=False)
    assert [c.name for c in config_file.load_config(path)] == ["CCD_GAIN"]


def test_saving_over_an_old_daemon_file_converts_it(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    path = tmp_path / "cfg.xml"
    path.write_bytes(old_format(props))
    config_file.save_config(path, DEVICE, [fresh(props, "CCD_OFFSET")])
    loaded = config_file.read_config(path, DEVICE, known(props, "CCD_GAIN", "CCD_OFFSET"))
    assert not loaded.legacy
    assert [c.name for c in loaded.commands] == ["CCD_GAIN", "CCD_OFFSET"]


# ---- reading -------------------------------------------------------------------------------


def test_a_libindi_file_yields_the_shared_properties_in_our_order(
    tmp_path: Path, props: dict[str, PropertyVector], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cfg.xml"
    path.write_text(LIBINDI_FILE)
    ours = known(props, "READ_MODE", "CCD_CAPTURE_FORMAT", "CCD_GAIN", "CCD_FRAME",
                 "UPLOAD_SETTINGS")
    with caplog.at_level(logging.INFO, logger="qhy42_indi.camera.config_file"):
        loaded = config_file.read_config(path, DEVICE, ours)
    assert loaded.exists and not loaded.legacy
    # READ_MODE before CCD_FRAME as CONFIG_PROPERTIES orders them, though the file has
    # them the other way round; the other device's CCD_GAIN is not ours.
    assert [c.name for c in loaded.commands] == ["READ_MODE", "CCD_GAIN", "CCD_FRAME",
                                                 "UPLOAD_SETTINGS"]
    by_name = {c.name: values(c) for c in loaded.commands}
    assert by_name["CCD_GAIN"] == {"GAIN": 90}
    assert by_name["UPLOAD_SETTINGS"] == {"UPLOAD_DIR": "/data/lights", "UPLOAD_PREFIX": "M31_XXX"}
    # The simulator's INDI_MONO is no format of ours: the command goes, with a log line.
    assert {"DEBUG", "SIMULATOR_SETTINGS", "CCD_CAPTURE_FORMAT.INDI_MONO"} <= set(loaded.ignored)
    assert loaded.other_devices == 1
    assert "SIMULATOR_SETTINGS" in caplog.text
    assert len(loaded.problems) == 1 and "unreadable" in loaded.problems[0]


def test_unknown_members_are_dropped_and_known_ones_applied(tmp_path: Path) -> None:
    path = tmp_path / "cfg.xml"
    path.write_text(f"<INDIDriver>\n<newTextVector device='{DEVICE}' name='UPLOAD_SETTINGS'>\n"
                    "  <oneText name='UPLOAD_DIR'>\n      /x\n  </oneText>\n"
                    "  <oneText name='UPLOAD_SUFFIX'>\n      .fits\n  </oneText>\n"
                    "</newTextVector>\n</INDIDriver>\n")
    loaded = config_file.read_config(path, DEVICE, {"UPLOAD_SETTINGS": ["UPLOAD_DIR",
                                                                        "UPLOAD_PREFIX"]})
    (command,) = loaded.commands
    assert command.elements == (TextElement("UPLOAD_DIR", "/x"),)
    assert loaded.ignored == ("UPLOAD_SETTINGS.UPLOAD_SUFFIX",)


def old_format(props: dict[str, PropertyVector]) -> bytes:
    """What the daemon's CONFIG_SAVE wrote before: bare encoded commands, no root."""
    gain = fresh(props, "CCD_GAIN")
    gain.set_values({"GAIN": 44})
    return b"".join(encode(config_file.as_new_vector(DEVICE, v))
                    for v in (gain, fresh(props, "UPLOAD_MODE")))


def test_the_daemons_old_files_still_load(tmp_path: Path, props: dict[str, PropertyVector]) -> None:
    path = tmp_path / "cfg.xml"
    path.write_bytes(old_format(props))
    loaded = config_file.read_config(path, DEVICE, known(props, "UPLOAD_MODE", "CCD_GAIN"))
    assert loaded.legacy and not loaded.problems
    assert [c.name for c in loaded.commands] == ["UPLOAD_MODE", "CCD_GAIN"]
    assert values(loaded.commands[1]) == {"GAIN": 44}
    assert [c.name for c in config_file.load_config(path)] == ["CCD_GAIN", "UPLOAD_MODE"]


def test_garbage_between_vectors_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "cfg.xml"
    path.write_text(f"<?xml version='1.0'?>\n<INDIDriver>\nnot xml at all <<\n"
                    f"<newNumberVector device='{DEVICE}' name='CCD_GAIN'>\n"
                    "  <oneNumber name='GAIN'>\n      5\n  </oneNumber>\n</newNumberVector>\n"
                    f"<newNumberVector device='{DEVICE}' name='CCD_OFFSET'>\n"
                    "  <oneNumber name='OFFSET'>\n      five\n  </oneNumber>\n</newNumberVector>\n"
                    "</INDIDriver>\n")
    loaded = config_file.read_config(path, DEVICE, {"CCD_GAIN": ["GAIN"],
                                                    "CCD_OFFSET": ["OFFSET"]})
    assert [values(c) for c in loaded.commands] == [{"GAIN": 5}]
    assert len(loaded.problems) == 2


def test_no_file_is_nothing_to_apply(tmp_path: Path) -> None:
    loaded = config_file.read_config(tmp_path / "none.xml", DEVICE, {"CCD_GAIN": ["GAIN"]})
    assert not loaded.exists and loaded.commands == ()
    assert config_file.load_config(tmp_path / "none.xml") == []


# ---- .default and purge --------------------------------------------------------------------


def test_the_first_save_becomes_the_default(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    path = tmp_path / f"{DEVICE}_config.xml"
    gain = fresh(props, "CCD_GAIN")
    gain.set_values({"GAIN": 10})
    config_file.save_config(path, DEVICE, [gain])
    default = tmp_path / f"{DEVICE}_config.xml.default"
    assert config_file.default_path(path) == default
    first = default.read_bytes()
    assert first == path.read_bytes()
    gain.set_values({"GAIN": 20})
    config_file.save_config(path, DEVICE, [gain])
    assert default.read_bytes() == first
    (command,) = config_file.load_default(path, DEVICE, {"CCD_GAIN": ["GAIN"]}).commands
    assert values(command) == {"GAIN": 10}


def test_ensure_default_copies_an_existing_file_once(tmp_path: Path) -> None:
    path = tmp_path / "cfg.xml"
    assert not config_file.ensure_default(path)
    path.write_text(LIBINDI_FILE)
    assert config_file.ensure_default(path)
    assert config_file.default_path(path).read_text() == LIBINDI_FILE
    path.write_text("<INDIDriver>\n</INDIDriver>\n")
    assert not config_file.ensure_default(path)
    assert config_file.default_path(path).read_text() == LIBINDI_FILE


def test_purge_removes_the_file_but_not_the_default(
    tmp_path: Path, props: dict[str, PropertyVector]
) -> None:
    path = tmp_path / "cfg.xml"
    config_file.save_config(path, DEVICE, [fresh(props, "CCD_GAIN")])
    assert config_file.purge(path)
    assert not path.exists() and config_file.default_path(path).exists()
    assert not config_file.purge(path)


def test_a_command_kind_is_kept(tmp_path: Path, props: dict[str, PropertyVector]) -> None:
    path = tmp_path / "cfg.xml"
    config_file.save_config(path, DEVICE, [fresh(props, "UPLOAD_MODE"), fresh(props, "CCD_GAIN"),
                                           fresh(props, "UPLOAD_SETTINGS")])
    assert path.read_text().startswith("<INDIDriver>\n<newSwitchVector ")
    assert [c.kind for c in config_file.load_config(path)] == [
        VectorKind.SWITCH, VectorKind.NUMBER, VectorKind.TEXT]
