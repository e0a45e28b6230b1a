"""The encoder: XML that libindi peers and our parser read back, BLOB payloads shared, not copied.
"""

from __future__ import annotations

import re

import pybase64
import pytest

from qhy42_indi.indi.encoder import encode, encode_chunks, escape_attribute, escape_text
from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
    DefVector,
    DelProperty,
    EnableBlob,
    GetProperties,
    IndiMessage,
    LightElement,
    Message,
    NewVector,
    NumberElement,
    ParseProblem,
    Perm,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser

DEVICE = "QHY CCD QHY42PRO-0123"
TIMESTAMP = "2026-11-25T18:59:17"
FRAME_B64 = pybase64.b64encode(bytes(range(256)) * 16)


def parse_all(data: bytes) -> list[IndiMessage | ParseProblem]:
    parser = IndiParser()
    return parser.feed(data) + parser.close()


def round_trip(message: IndiMessage) -> IndiMessage | ParseProblem:
    results = parse_all(encode(message))
    assert len(results) == 1, results
    return results[0]


# ---- every message type survives encode -> parse ---------------------------------------------

EVERY_MESSAGE_TYPE: list[IndiMessage] = [
    GetProperties(),
    GetProperties("1.7", DEVICE, "CCD_EXPOSURE"),
    GetProperties(None, "Telescope Simulator", "EQUATORIAL_EOD_COORD"),
    EnableBlob(DEVICE, BlobEnable.ONLY, "CCD1"),
    EnableBlob(DEVICE, BlobEnable.NEVER),
    PingRequest("SetBLOB/7"),
    PingReply("abc123"),
    Message(DEVICE, "[ERROR] Cooler fault: supply < 11.5 V & falling", TIMESTAMP),
    Message(None, "site-wide"),
    DelProperty(DEVICE),
    DelProperty(DEVICE, "CCD_TEMP_RAMP", TIMESTAMP, "gone"),
    DefVector(VectorKind.TEXT, DEVICE, "DRIVER_INFO", PropertyState.IDLE,
              (TextElement("DRIVER_NAME", "QHY CCD", "Name"),
               TextElement("DRIVER_INTERFACE", "2", "Interface")),
              label="Driver Info", group="General Info", perm=Perm.RO, timeout=60.0,
              timestamp=TIMESTAMP),
    DefVector(VectorKind.NUMBER, DEVICE, "CCD_EXPOSURE", PropertyState.IDLE,
              (NumberElement("CCD_EXPOSURE_VALUE", 1.0, "Duration (s)", "%5.2f", 2e-5, 3600.0,
                             1.0),),
              label="Expose", group="Main Control", perm=Perm.RW, timeout=60.0,
              timestamp=TIMESTAMP, message="ready"),
    DefVector(VectorKind.SWITCH, DEVICE, "CCD_COOLER", PropertyState.OK,
              (SwitchElement("COOLER_ON", SwitchState.ON, "ON"),
               SwitchElement("COOLER_OFF", SwitchState.OFF, "OFF")),
              label="Cooler", group="Main Control", perm=Perm.WO, rule=SwitchRule.ONE_OF_MANY),
    DefVector(VectorKind.LIGHT, DEVICE, "CAMERA_STATUS", PropertyState.ALERT,
              (LightElement("SUPPLY", PropertyState.ALERT, "Supply"),
               LightElement("TEC", PropertyState.OK, "TEC")),
              label="Status", group="Main Control"),
    DefVector(VectorKind.BLOB, DEVICE, "CCD1", PropertyState.IDLE,
              (BlobElement("CCD1", "Image"),),
              label="Image Data", group="Image Info", perm=Perm.RO, timeout=60.0),
    SetVector(VectorKind.TEXT, DEVICE, "UPLOAD_SETTINGS", PropertyState.OK,
              (TextElement("UPLOAD_DIR", "/home/pi/<images> & 'darks'"),
               TextElement("UPLOAD_PREFIX", "")), timeout=60.0, timestamp=TIMESTAMP),
    SetVector(VectorKind.NUMBER, DEVICE, "CCD_FRAME", PropertyState.IDLE,
              (NumberElement("X", 0.0, min=0.0, max=2047.0, step=1.0),
               NumberElement("WIDTH", 2048.0, min=1.0, max=2048.0, step=1.0)),
              timeout=60.0),
    SetVector(VectorKind.NUMBER, DEVICE, "CCD_TEMPERATURE", PropertyState.BUSY,
              (NumberElement("CCD_TEMPERATURE_VALUE", -10.505),), message="cooling"),
    SetVector(VectorKind.SWITCH, DEVICE, "CONNECTION", PropertyState.OK,
              (SwitchElement("CONNECT", SwitchState.ON),
               SwitchElement("DISCONNECT", SwitchState.OFF))),
    SetVector(VectorKind.LIGHT, DEVICE, "CAMERA_STATUS", PropertyState.OK,
              (LightElement("SUPPLY", PropertyState.OK),)),
    SetVector(VectorKind.BLOB, DEVICE, "CCD1", PropertyState.OK,
              (BlobElement("CCD1", None, ".fits", 4096, FRAME_B64),), timeout=60.0,
              timestamp=TIMESTAMP),
    SetVector(VectorKind.BLOB, DEVICE, "CCD1", PropertyState.ALERT,
              (BlobElement("CCD1", None, ".fits", 0, b""),)),
    NewVector(VectorKind.TEXT, DEVICE, "FITS_HEADER",
              (TextElement("FITS_OBSERVER", "Ana \"Ana\" O'Neil"),)),
    NewVector(VectorKind.NUMBER, DEVICE, "CCD_EXPOSURE",
              (NumberElement("CCD_EXPOSURE_VALUE", 0.000123),), timestamp=TIMESTAMP),
    NewVector(VectorKind.SWITCH, DEVICE, "CONNECTION",
              (SwitchElement("CONNECT", SwitchState.ON),)),
    NewVector(VectorKind.BLOB, DEVICE, "UPLOAD",
              (BlobElement("FILE", None, ".fits.z", 4096, FRAME_B64),)),
]


@pytest.mark.parametrize("message", EVERY_MESSAGE_TYPE, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips_through_the_parser(message: IndiMessage) -> None:
    assert round_trip(message) == message


def test_a_stream_of_encoded_messages_parses_back_in_order() -> None:
    stream = b"".join(encode(message) for message in EVERY_MESSAGE_TYPE)
    assert parse_all(stream) == EVERY_MESSAGE_TYPE


# ---- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("message", EVERY_MESSAGE_TYPE, ids=lambda m: type(m).__name__)
def test_one_newline_after_each_element_and_no_declaration_or_comment(
    message: IndiMessage,
) -> None:
    data = encode(message)
    assert data.endswith(b">\n")
    assert not data.endswith(b"\n\n")
    assert b"<?" not in data
    assert b"<!" not in data


def test_get_properties_is_one_empty_element_line() -> None:
    assert encode(GetProperties("1.7", DEVICE)) == (
        b'<getProperties version="1.7" device="QHY CCD QHY42PRO-0123"/>\n')


def test_enable_blob_carries_its_mode_as_text() -> None:
    assert encode(EnableBlob(DEVICE, BlobEnable.ALSO, "CCD1")) == (
        b'<enableBLOB device="QHY CCD QHY42PRO-0123" name="CCD1">Also</enableBLOB>\n')


def test_ping_reply_echoes_the_uid() -> None:
    assert encode(PingReply("SetBLOB/1")) == b'<pingReply uid="SetBLOB/1"/>\n'


# ---- escaping --------------------------------------------------------------------------------


def test_all_five_xml_specials_are_escaped_in_attributes_and_text() -> None:
    tricky = "a&b<c>d'e\"f"
    data = encode(NewVector(VectorKind.TEXT, tricky, tricky, (TextElement(tricky, tricky),)))
    assert data.count(b"a&amp;b&lt;c&gt;d&apos;e&quot;f") == 4
    assert b"a&b" not in data


def test_line_breaks_survive_in_text_but_become_spaces_in_attributes() -> None:
    assert escape_text("line 1\nline 2\ttab") == "line 1\nline 2\ttab"
    assert escape_attribute("line 1\nline 2\ttab\r") == "line 1 line 2 tab "
    message = SetVector(VectorKind.TEXT, DEVICE, "NOTES", PropertyState.OK,
                        (TextElement("NOTE", "line 1\nline 2"),), message="two\nlines")
    assert round_trip(message) == SetVector(VectorKind.TEXT, DEVICE, "NOTES", PropertyState.OK,
                                            (TextElement("NOTE", "line 1\nline 2"),),
                                            message="two lines")


def test_control_characters_that_xml_forbids_are_dropped() -> None:
    message = Message(DEVICE, "bell\x07 nul\x00 esc\x1b")
    assert round_trip(message) == Message(DEVICE, "bell nul esc")


def test_non_ascii_text_is_written_as_utf8() -> None:
    message = Message(DEVICE, "Température 20 °C ±0.5")
    assert "Température 20 °C ±0.5".encode() in encode(message)
    assert round_trip(message) == message


# ---- numbers ---------------------------------------------------------------------------------


def test_numbers_are_plain_decimal_without_trailing_zero() -> None:
    data = encode(SetVector(VectorKind.NUMBER, DEVICE, "CCD_INFO", PropertyState.OK,
                            (NumberElement("CCD_MAX_X", 2048.0),
                             NumberElement("CCD_PIXEL_SIZE", 11.0),
                             NumberElement("GAIN", 5.2),
                             NumberElement("TINY", 1e-7))))
    values = re.findall(rb">([^<>]*)</oneNumber>", data)
    assert values == [b"2048", b"11", b"5.2", b"1e-07"]


def test_def_number_always_carries_format_min_max_and_step() -> None:
    data = encode(DefVector(VectorKind.NUMBER, DEVICE, "CCD_GAIN", PropertyState.IDLE,
                            (NumberElement("GAIN", 30.0),), perm=Perm.RW))
    assert b'<defNumber name="GAIN" format="%g" min="0" max="0" step="0">30</defNumber>' in data


def test_set_number_writes_limits_only_when_given() -> None:
    data = encode(SetVector(VectorKind.NUMBER, DEVICE, "CCD_FRAME", PropertyState.IDLE,
                            (NumberElement("X", 0.0, min=0.0, max=2047.0),
                             NumberElement("Y", 0.0))))
    assert b'<oneNumber name="X" min="0" max="2047">0</oneNumber>' in data
    assert b'<oneNumber name="Y">0</oneNumber>' in data


def test_number_format_and_labels_are_not_written_in_sets_and_news() -> None:
    data = encode(NewVector(VectorKind.NUMBER, DEVICE, "CCD_EXPOSURE",
                            (NumberElement("CCD_EXPOSURE_VALUE", 1.0, "Duration", "%5.2f"),)))
    assert b"label" not in data
    assert b"format" not in data


# ---- what libindi clients require -----------------------------------------------------------


def test_set_vector_without_state_is_refused_because_libindi_clients_reject_it() -> None:
    with pytest.raises(ValueError, match="needs a state"):
        encode(SetVector(VectorKind.NUMBER, DEVICE, "CCD_EXPOSURE", None,
                         (NumberElement("CCD_EXPOSURE_VALUE", 0.0),)))


def test_def_vector_without_perm_is_refused_except_for_lights() -> None:
    with pytest.raises(ValueError, match="needs a perm"):
        encode(DefVector(VectorKind.TEXT, DEVICE, "T", PropertyState.IDLE, (TextElement("x"),)))
    light = DefVector(VectorKind.LIGHT, DEVICE, "L", PropertyState.IDLE, (LightElement("x"),))
    assert b"perm" not in encode(light)


def test_switch_def_without_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a rule"):
        encode(DefVector(VectorKind.SWITCH, DEVICE, "S", PropertyState.IDLE,
                         (SwitchElement("x"),), perm=Perm.RW))


def test_def_writes_label_group_and_timeout_even_when_the_message_leaves_them_out() -> None:
    data = encode(DefVector(VectorKind.TEXT, DEVICE, "NOTES", PropertyState.IDLE,
                            (TextElement("x"),), perm=Perm.RW))
    assert b'name="NOTES" label="NOTES" group="" state="Idle" perm="rw" timeout="0"' in data
    parsed = round_trip(DefVector(VectorKind.TEXT, DEVICE, "NOTES", PropertyState.IDLE,
                                  (TextElement("x"),), perm=Perm.RW))
    assert isinstance(parsed, DefVector)
    assert (parsed.label, parsed.group) == ("NOTES", "")


def test_switch_def_attributes_come_in_libindi_order() -> None:
    data = encode(DefVector(VectorKind.SWITCH, DEVICE, "CONNECTION", PropertyState.IDLE,
                            (SwitchElement("CONNECT", SwitchState.OFF, "Connect"),),
                            label="Connection", group="Main Control", perm=Perm.RW,
                            rule=SwitchRule.ONE_OF_MANY, timeout=60.0, timestamp=TIMESTAMP))
    first_line = data.split(b"\n")[0]
    assert first_line == (
        b'<defSwitchVector device="QHY CCD QHY42PRO-0123" name="CONNECTION" label="Connection"'
        b' group="Main Control" state="Idle" perm="rw" rule="OneOfMany" timeout="60"'
        b' timestamp="2026-11-25T18:59:17">')


def test_element_of_the_wrong_type_for_the_vector_is_refused() -> None:
    with pytest.raises(ValueError, match="TextElement"):
        encode(SetVector(VectorKind.NUMBER, DEVICE, "N", PropertyState.OK,
                         (TextElement("x", "1"),)))


# ---- BLOBs -----------------------------------------------------------------------------------


def blob_vector(payload: bytes | memoryview, size: int = 4096) -> SetVector:
    return SetVector(VectorKind.BLOB, DEVICE, "CCD1", PropertyState.OK,
                     (BlobElement("CCD1", None, ".fits", size, payload),), timeout=60.0)


def test_blob_payload_is_its_own_chunk_and_the_very_same_object() -> None:
    chunks = encode_chunks(blob_vector(FRAME_B64))
    assert len(chunks) == 3
    assert chunks[1] is FRAME_B64
    assert bytes(chunks[0]).endswith(b'format=".fits" len="4096">')
    assert chunks[2] == b"</oneBLOB>\n</setBLOBVector>\n"


def test_memoryview_payload_is_shared_too() -> None:
    backing = bytearray(b"xx" + FRAME_B64 + b"yy")
    view = memoryview(backing)[2:-2]
    chunks = encode_chunks(blob_vector(view))
    assert chunks[1] is view
    assert b'len="4096"' in bytes(chunks[0])
    assert b"".join(bytes(chunk) for chunk in chunks) == encode(blob_vector(FRAME_B64))


def test_each_blob_of_a_vector_gets_its_own_chunk() -> None:
    second = pybase64.b64encode(b"guider")
    message = SetVector(VectorKind.BLOB, DEVICE, "IMAGES", PropertyState.OK,
                        (BlobElement("CCD1", None, ".fits", 4096, FRAME_B64),
                         BlobElement("CCD2", None, ".fits", 6, second)))
    chunks = encode_chunks(message)
    assert [chunk for chunk in chunks if chunk is FRAME_B64 or chunk is second] == [
        FRAME_B64, second]
    assert round_trip(message) == message


def test_blob_base64_is_on_one_line_with_size_format_and_len_as_indiserver_sends() -> None:
    data = encode(blob_vector(FRAME_B64))
    line = next(line for line in data.split(b"\n") if b"<oneBLOB" in line)
    # No enclen: libindiclient 1.9.9 drops multi-megabyte BLOBs that carry it.
    assert line == (b'  <oneBLOB name="CCD1" size="4096" format=".fits" len="4096">'
                    + FRAME_B64 + b"</oneBLOB>")


def test_empty_blob_is_a_state_change_with_size_zero_and_no_payload_chunk() -> None:
    chunks = encode_chunks(blob_vector(b"", size=0))
    assert len(chunks) == 1
    assert b'size="0" format=".fits" len="0"></oneBLOB>' in bytes(chunks[0])


def test_non_blob_messages_are_a_single_chunk() -> None:
    for message in EVERY_MESSAGE_TYPE:
        if isinstance(message, SetVector | NewVector) and message.kind is VectorKind.BLOB:
            continue
        assert encode_chunks(message) == [encode(message)]
