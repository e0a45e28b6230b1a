"""The incremental parser, fed recorded traffic from the real peers and hostile input.

Recordings are in tests/indi/data (see its README). Every recording is fed whole and in chunks
of 1, 7 and 4096 bytes: the messages must not depend on where the stream was cut.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pybase64
import pytest

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
from qhy42_indi.indi.parser import IndiParser, ParseResult

DATA = Path(__file__).parent / "data"
CHUNK_SIZES = [1, 7, 4096, None]  # None: the whole input at once
GET_PROPERTIES = b"<getProperties version='1.7'/>"


def recording(name: str) -> bytes:
    return (DATA / name).read_bytes()


def chunks_of(data: bytes, size: int | None) -> Iterator[bytes]:
    step = size or max(len(data), 1)
    for start in range(0, len(data), step):
        yield data[start : start + step]


def parse(data: bytes, chunk_size: int | None = None, **limits: int) -> list[ParseResult]:
    parser = IndiParser(**limits)
    results: list[ParseResult] = []
    for chunk in chunks_of(data, chunk_size):
        results += parser.feed(chunk)
    return results + parser.close()


def messages_of(results: list[ParseResult]) -> list[IndiMessage]:
    return [item for item in results if not isinstance(item, ParseProblem)]


def problems_of(results: list[ParseResult]) -> list[ParseProblem]:
    return [item for item in results if isinstance(item, ParseProblem)]


def parse_one(data: bytes) -> IndiMessage:
    results = parse(data)
    assert problems_of(results) == []
    assert len(results) == 1
    return messages_of(results)[0]


def parse_problem(data: bytes, **limits: int) -> ParseProblem:
    results = parse(data, **limits)
    assert len(results) == 1, results
    assert isinstance(results[0], ParseProblem), results
    return results[0]


def find(messages: list[IndiMessage], kind: type, name: str,
         predicate: Callable[[IndiMessage], bool] = lambda _m: True) -> IndiMessage:
    return next(m for m in messages
                if isinstance(m, kind) and getattr(m, "name", None) == name and predicate(m))


# ---- indiserver + indi_simulator_ccd, as a client receives it -------------------------------


@pytest.fixture(scope="module")
def session() -> list[IndiMessage]:
    results = parse(recording("indiserver_session.xml"))
    assert problems_of(results) == []
    return messages_of(results)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_indiserver_session_parses_the_same_in_any_chunk_size(
    chunk_size: int | None, session: list[IndiMessage]
) -> None:
    results = parse(recording("indiserver_session.xml"), chunk_size)
    assert problems_of(results) == []
    assert messages_of(results) == session
    assert len(session) == 109


def test_indiserver_def_switch_vector_carries_every_attribute(session: list[IndiMessage]) -> None:
    assert find(session, DefVector, "CONNECTION") == DefVector(
        kind=VectorKind.SWITCH,
        device="CCD Simulator",
        name="CONNECTION",
        state=PropertyState.IDLE,
        elements=(
            SwitchElement("CONNECT", SwitchState.OFF, "Connect"),
            SwitchElement("DISCONNECT", SwitchState.ON, "Disconnect"),
        ),
        label="Connection",
        group="Main Control",
        perm=Perm.RW,
        rule=SwitchRule.ONE_OF_MANY,
        timeout=60.0,
        timestamp="2026-11-25T20:00:38",
    )


def test_values_on_their_own_indented_lines_are_stripped(session: list[IndiMessage]) -> None:
    driver_info = find(session, DefVector, "DRIVER_INFO")
    assert isinstance(driver_info, DefVector)
    assert driver_info.elements[:2] == (
        TextElement("DRIVER_NAME", "CCD Simulator", "Name"),
        TextElement("DRIVER_EXEC", "indi_simulator_ccd", "Exec"),
    )


def test_set_before_def_is_parsed_like_any_set(session: list[IndiMessage]) -> None:
    # indiserver relays the driver's DRIVER_INFO set before its def; ignoring it is the
    # client's business, not the parser's.
    first = session[0]
    assert isinstance(first, SetVector)
    assert (first.kind, first.name, first.state) == (VectorKind.TEXT, "DRIVER_INFO",
                                                     PropertyState.IDLE)


def test_libindi_twenty_digit_numbers_read_as_the_intended_doubles(
    session: list[IndiMessage],
) -> None:
    exposure = find(session, DefVector, "CCD_EXPOSURE")
    assert isinstance(exposure, DefVector)
    assert exposure.elements == (
        NumberElement("CCD_EXPOSURE_VALUE", 1.0, "Duration (s)", "%5.2f", 0.01, 3600.0, 1.0),
    )
    last_info = [m for m in session if isinstance(m, SetVector) and m.name == "CCD_INFO"][-1]
    pixel_size = last_info.elements[2]
    assert isinstance(pixel_size, NumberElement)
    # The driver's float32 5.2, written with %.20g as 5.1999998092651367188.
    assert pixel_size.value == struct.unpack("<f", struct.pack("<f", 5.2))[0]


def test_set_number_vector_limit_update_keeps_min_max_and_step(
    session: list[IndiMessage],
) -> None:
    def has_limits(m: IndiMessage) -> bool:
        return isinstance(m, SetVector) and isinstance(m.elements[0], NumberElement) and (
            m.elements[0].max is not None)

    frame_limits = find(session, SetVector, "CCD_FRAME", has_limits)
    assert isinstance(frame_limits, SetVector)
    assert frame_limits.elements == (
        NumberElement("X", 0.0, min=0.0, max=1279.0, step=0.0),
        NumberElement("Y", 0.0, min=0.0, max=1023.0, step=0.0),
        NumberElement("WIDTH", 0.0, min=1.0, max=1280.0, step=0.0),
        NumberElement("HEIGHT", 0.0, min=1.0, max=1024.0, step=0.0),
    )


def test_indiserver_one_line_blob_is_kept_as_base64_of_the_announced_size(
    session: list[IndiMessage],
) -> None:
    image = find(session, SetVector, "CCD1")
    assert isinstance(image, SetVector)
    assert image.state is PropertyState.OK
    (blob,) = image.elements
    assert isinstance(blob, BlobElement)
    assert (blob.name, blob.format, blob.size, len(blob.data_b64)) == ("CCD1", ".fits", 5760,
                                                                        7680)
    fits = pybase64.b64decode(blob.data_b64, validate=True)
    assert len(fits) == blob.size
    assert fits.startswith(b"SIMPLE  =                    T")


def test_exposure_ends_with_ok_after_the_blob_and_the_ping_is_answered(
    session: list[IndiMessage],
) -> None:
    blob_at = session.index(find(session, SetVector, "CCD1"))
    assert session[blob_at + 1] == SetVector(
        VectorKind.NUMBER, "CCD Simulator", "CCD_EXPOSURE", PropertyState.OK,
        (NumberElement("CCD_EXPOSURE_VALUE", 0.0),), timeout=60.0,
        timestamp="2026-11-25T20:00:46",
    )
    assert session[-1] == PingReply("abc123")


def test_message_elements_from_the_driver_are_parsed(session: list[IndiMessage]) -> None:
    notes = [m for m in session if isinstance(m, Message)]
    assert notes
    assert all(m.device == "CCD Simulator" and m.message and m.timestamp for m in notes)


# ---- indi_simulator_ccd's own stdout --------------------------------------------------------


@pytest.fixture(scope="module")
def native() -> list[IndiMessage]:
    results = parse(recording("indi_simulator_ccd_native.xml"))
    assert problems_of(results) == []
    return messages_of(results)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_driver_output_with_an_xml_declaration_before_each_message_parses_cleanly(
    chunk_size: int | None, native: list[IndiMessage]
) -> None:
    results = parse(recording("indi_simulator_ccd_native.xml"), chunk_size)
    assert problems_of(results) == []
    assert messages_of(results) == native
    assert len(native) == 105


def test_driver_snoop_requests_are_get_properties_with_device_and_name(
    native: list[IndiMessage],
) -> None:
    assert native[0] == GetProperties("1.7", "Telescope Simulator", "EQUATORIAL_EOD_COORD")


def test_driver_72_column_blob_is_joined_and_followed_by_its_flow_control_ping(
    native: list[IndiMessage],
) -> None:
    image = find(native, SetVector, "CCD1")
    assert isinstance(image, SetVector)
    (blob,) = image.elements
    assert isinstance(blob, BlobElement)
    assert len(blob.data_b64) == 7680  # the enclen the driver announced
    assert b"\n" not in blob.data_b64
    assert len(pybase64.b64decode(blob.data_b64, validate=True)) == blob.size == 5760
    assert native[native.index(image) + 1] == PingRequest("SetBLOB/1")


def test_driver_single_quoted_multi_line_attributes_give_the_same_defs_as_indiserver(
    native: list[IndiMessage], session: list[IndiMessage]
) -> None:
    def without_timestamp(m: IndiMessage) -> tuple[object, ...]:
        assert isinstance(m, DefVector)
        return (m.kind, m.name, m.label, m.group, m.perm, m.rule, m.elements)

    for name in ("CONNECTION", "DRIVER_INFO", "CCD_EXPOSURE", "CCD_FRAME"):
        assert without_timestamp(find(native, DefVector, name)) == without_timestamp(
            find(session, DefVector, name))


# ---- what indi_getprop and indi_setprop send ------------------------------------------------


def test_indi_getprop_asks_for_one_device() -> None:
    assert parse(recording("indi_getprop_ccd_info.xml")) == [
        GetProperties("1.7", "CCD Simulator", None)
    ]


def test_indi_getprop_enables_blobs_per_blob_property() -> None:
    assert parse(recording("indi_getprop_all.xml")) == [
        GetProperties("1.7"),
        EnableBlob("CCD Simulator", BlobEnable.ALSO, "CCD1"),
        EnableBlob("CCD Simulator", BlobEnable.ALSO, "CCD2"),
    ]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_indi_setprop_number_vector_with_two_elements(chunk_size: int | None) -> None:
    assert parse(recording("indi_setprop_binning.xml"), chunk_size) == [
        GetProperties("1.7"),
        NewVector(VectorKind.NUMBER, "CCD Simulator", "CCD_BINNING",
                  (NumberElement("HOR_BIN", 2.0), NumberElement("VER_BIN", 2.0))),
    ]


def test_partial_number_vector_from_indi_setprop_is_accepted() -> None:
    assert parse(recording("indi_setprop_partial_frame.xml"))[1] == NewVector(
        VectorKind.NUMBER, "CCD Simulator", "CCD_FRAME", (NumberElement("WIDTH", 100.0),)
    )


def test_one_of_many_switch_from_indi_setprop_carries_only_the_on_member() -> None:
    assert parse(recording("indi_setprop_connect.xml"))[1] == NewVector(
        VectorKind.SWITCH, "CCD Simulator", "CONNECTION",
        (SwitchElement("CONNECT", SwitchState.ON),),
    )


def test_sexagesimal_number_from_indi_setprop_is_converted() -> None:
    (request,) = parse(recording("indi_setprop_sexagesimal.xml"))
    assert isinstance(request, NewVector)
    assert request.elements == (NumberElement("CCD_TEMPERATURE_VALUE", -10.505),)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_unescaped_text_from_indi_setprop_is_reported_and_the_stream_goes_on(
    chunk_size: int | None,
) -> None:
    results = parse(recording("indi_setprop_text.xml") + GET_PROPERTIES, chunk_size)
    assert messages_of(results) == [GetProperties("1.7")]
    problems = problems_of(results)
    assert problems
    assert problems[0].excerpt.startswith("<newTextVector device='CCD Simulator'")


# ---- garbage, resynchronisation ------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_garbage_between_messages_is_skipped_and_reported(chunk_size: int | None) -> None:
    stream = (GET_PROPERTIES + b"<foo></bar>" + b"<<<>>> garbage & stuff"
              + b"<oneNumber>1</oneNumber>" + b"\x00" + GET_PROPERTIES)
    results = parse(stream, chunk_size)
    assert results[0] == GetProperties("1.7")
    assert results[-1] == GetProperties("1.7")
    # One run of junk between two messages is one report, wherever the chunks were cut.
    (problem,) = problems_of(results)
    assert "foo" in problem.reason
    assert problem.excerpt.startswith("<foo></bar><<<>>> garbage & stuff<oneNumber>1")


def test_nul_byte_between_messages_is_reported_and_skipped() -> None:
    results = parse(GET_PROPERTIES + b"\x00" + GET_PROPERTIES)
    assert messages_of(results) == [GetProperties("1.7"), GetProperties("1.7")]
    (problem,) = problems_of(results)
    assert problem.excerpt == "\\x00"


def test_stray_member_at_top_level_is_reported() -> None:
    problem = parse_problem(b"<oneNumber>1</oneNumber>")
    assert "oneNumber" in problem.reason


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_mismatched_end_tag_drops_that_message_only(chunk_size: int | None) -> None:
    stream = (b"<delProperty device='A'/>"
              b"<setTextVector device='A' name='T' state='Ok'><oneText name='x'>1</oneNumber>"
              b"</setTextVector>"
              b"<delProperty device='B'/>")
    results = parse(stream, chunk_size)
    assert messages_of(results) == [DelProperty("A"), DelProperty("B")]
    first_problem = problems_of(results)[0]
    assert "</oneNumber> does not close <oneText>" in first_problem.reason
    assert first_problem.excerpt.startswith("<setTextVector device='A'")


def test_lt_inside_a_tag_resynchronises_at_that_lt() -> None:
    results = parse(b"<message message='half" + GET_PROPERTIES)
    assert results == [
        ParseProblem("'<' inside a tag", "<message message='half"),
        GetProperties("1.7"),
    ]


def test_problems_and_messages_come_out_in_stream_order() -> None:
    results = parse(b"<pingRequest uid='1'/><pingRequest/><pingRequest uid='3'/>")
    assert [type(item) for item in results] == [PingRequest, ParseProblem, PingRequest]


def test_xml_declarations_processing_instructions_and_comments_are_skipped_silently() -> None:
    stream = (b"<?xml version='1.0'?>\n" + GET_PROPERTIES + b"<!-- a > b -->"
              + b"<?other stuff?><delProperty device='A'><!-- c --></delProperty>")
    for chunk_size in CHUNK_SIZES:
        assert parse(stream, chunk_size) == [GetProperties("1.7"), DelProperty("A")]


def test_whitespace_between_messages_is_not_a_problem() -> None:
    assert parse(b"\n\t " + GET_PROPERTIES + b"\r\n\r\n") == [GetProperties("1.7")]


def test_close_reports_an_unfinished_message() -> None:
    parser = IndiParser()
    assert parser.feed(b"<setNumberVector device='A' name='N' state='Ok'><oneNumber") == []
    (problem,) = parser.close()
    assert isinstance(problem, ParseProblem)
    assert "setNumberVector" in problem.reason
    assert parser.feed(GET_PROPERTIES) == [GetProperties("1.7")]


def test_close_reports_trailing_junk_that_no_message_followed() -> None:
    parser = IndiParser()
    assert parser.feed(b"hello") == []
    assert parser.close() == [ParseProblem("text outside any element", "hello")]


# ---- hostile input: bombs and limits --------------------------------------------------------


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<message message="&lol9;"/>
"""


def measure(action: Callable[[], list[ParseResult]]) -> tuple[list[ParseResult], int, float]:
    """Results, peak traced memory in bytes and seconds taken by `action`."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        results = action()
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return results, peak, elapsed


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_billion_laughs_is_refused_without_expanding_anything(chunk_size: int | None) -> None:
    stream = BILLION_LAUGHS + GET_PROPERTIES
    results, peak, elapsed = measure(lambda: parse(stream, chunk_size))
    assert results[-1] == GetProperties("1.7")
    assert not any(isinstance(m, Message) for m in results)
    assert "DOCTYPE" in problems_of(results)[0].reason
    assert peak < 1_000_000
    assert elapsed < 5.0  # expanded, it would be 3 GB of "lol"


def test_quadratic_blowup_entity_is_refused() -> None:
    big = b"A" * 50_000
    bomb = (b'<!DOCTYPE m [<!ENTITY a "' + big + b'">]>'
            + b"<message message='" + b"&a;" * 50_000 + b"'/>")
    stream = bomb + GET_PROPERTIES
    results, peak, _elapsed = measure(lambda: parse(stream, 4096))
    assert results[-1] == GetProperties("1.7")
    assert not any(isinstance(m, Message) for m in results)
    assert peak < 2_000_000  # expanded, it would be 2.5 GB


def test_undeclared_entity_reference_is_a_problem_not_a_lookup() -> None:
    problem = parse_problem(b"<message message='&secret;'/>")
    assert "XML error" in problem.reason


def test_external_entity_cannot_be_smuggled_inside_a_message() -> None:
    results = parse(b"<message><!DOCTYPE x SYSTEM 'file:///etc/passwd'></message>")
    assert messages_of(results) == []
    assert problems_of(results)[0].reason == (
        "markup declarations (DOCTYPE, ENTITY, CDATA) are refused")


def test_deep_nesting_costs_bounded_memory_and_the_stream_recovers() -> None:
    stream = (b"<setTextVector device='A' name='T' state='Ok'>" + b"<oneText name='x'>" * 50_000
              + GET_PROPERTIES)
    results, peak, elapsed = measure(lambda: parse(stream, 65536))
    assert results[0] == ParseProblem("elements nested deeper than 2",
                                      results[0].excerpt)  # type: ignore[union-attr]
    assert results[-1] == GetProperties("1.7")
    assert peak < 1_000_000
    assert elapsed < 5.0


def test_nesting_deeper_than_vector_and_member_is_refused() -> None:
    results = parse(
        b"<setTextVector device='A' name='T' state='Ok'><oneText name='x'><b/></oneText>"
        b"</setTextVector>")
    assert messages_of(results) == []
    # What follows the refused tag is then junk between messages: a second report.
    assert [problem.reason for problem in problems_of(results)] == [
        "elements nested deeper than 2", "end tag outside any element"]


def test_endless_attribute_costs_bounded_memory_and_the_stream_recovers() -> None:
    def endless() -> list[ParseResult]:
        parser = IndiParser()
        results = parser.feed(b"<message message='")
        for _ in range(160):  # 10 MiB of attribute value
            results += parser.feed(b"x" * 65536)
        return results + parser.feed(b"'/>" + GET_PROPERTIES)

    results, peak, _elapsed = measure(endless)
    assert problems_of(results)[0].reason == "attribute value longer than 65536 bytes"
    assert results[-1] == GetProperties("1.7")
    assert peak < 1_000_000


@pytest.mark.parametrize("chunk_size", [7, 4096, None])
def test_message_over_the_size_limit_is_skipped_and_the_next_one_parses(
    chunk_size: int | None,
) -> None:
    blob = (b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B' size='3000' "
            b"format='.fits'>" + b"QUJD" * 1000 + b"</oneBLOB></setBLOBVector>")
    results = parse(blob + GET_PROPERTIES, chunk_size, max_message_bytes=2000)
    assert results[0] == ParseProblem("message larger than 2000 bytes",
                                      results[0].excerpt)  # type: ignore[union-attr]
    assert results[-1] == GetProperties("1.7")
    assert not any(isinstance(m, SetVector) for m in results)


def test_a_client_parser_may_raise_the_message_limit_for_large_frames() -> None:
    data = pybase64.b64encode(bytes(range(256)) * 400)
    blob = (b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B' size='102400' "
            b"format='.fits'>" + data + b"</oneBLOB></setBLOBVector>")
    assert problems_of(parse(blob, 65536, max_message_bytes=100_000))
    (image,) = parse(blob, 65536, max_message_bytes=1 << 30)
    assert isinstance(image, SetVector)
    assert image.elements[0] == BlobElement("B", None, ".fits", 102400, data)


def test_more_attributes_than_the_limit_are_refused() -> None:
    attributes = b"".join(b" a%d='1'" % i for i in range(5))
    problem = parse_problem(b"<getProperties" + attributes + b"/>", max_attributes=4)
    assert problem.reason == "more than 4 attributes"
    assert parse(b"<getProperties" + attributes + b"/>", max_attributes=5) == [
        GetProperties(None)
    ]


def test_attribute_name_longer_than_the_limit_is_refused() -> None:
    problem = parse_problem(b"<getProperties " + b"v" * 65 + b"='1.7'/>")
    assert "attribute name longer than 64" in problem.reason


def test_tag_name_longer_than_the_limit_is_refused() -> None:
    problem = parse_problem(b"<" + b"g" * 65 + b"/>")
    assert problem.reason == "name longer than 64"


def test_endless_tag_name_is_cut_short() -> None:
    stream = b"<g" + b"g" * 5_000_000 + b"/>" + GET_PROPERTIES
    results, peak, _elapsed = measure(lambda: parse(stream, 65536))
    assert problems_of(results)[0].reason == "tag too long"
    assert results[-1] == GetProperties("1.7")
    assert peak < 1_000_000


def test_attribute_value_over_the_limit_is_refused() -> None:
    problem = parse_problem(b"<message message='" + b"m" * 101 + b"'/>",
                            max_attribute_length=100)
    assert problem.reason == "attribute value longer than 100 bytes"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IndiParser(max_depth=0)


# ---- XML details ----------------------------------------------------------------------------


def test_the_five_predefined_entities_are_decoded_in_attributes_and_text() -> None:
    message = parse_one(
        b"<newTextVector device='A &amp; B' name='T'>"
        b"<oneText name='x'>&lt;a&gt; &quot;b&quot; &apos;c&apos; &amp;</oneText>"
        b"</newTextVector>")
    assert message == NewVector(VectorKind.TEXT, "A & B", "T",
                                (TextElement("x", "<a> \"b\" 'c' &"),))


def test_gt_inside_a_quoted_attribute_does_not_end_the_tag() -> None:
    stream = b"<message device='A' message='1 > 0 and \"2\" > 1'/>"
    for chunk_size in CHUNK_SIZES:
        assert parse(stream, chunk_size) == [Message("A", "1 > 0 and \"2\" > 1")]


def test_text_keeps_inner_line_breaks_and_loses_surrounding_whitespace() -> None:
    message = parse_one(b"<newTextVector device='A' name='T'><oneText name='x'>\n  line 1\n"
                        b"line 2  \n</oneText></newTextVector>")
    assert isinstance(message, NewVector)
    assert message.elements == (TextElement("x", "line 1\nline 2"),)


def test_non_utf8_bytes_are_read_as_iso_8859_1() -> None:
    message = parse_one(b"<message device='A' message='20 \xb0C'/>")
    assert message == Message("A", "20 \u00b0C")


def test_utf8_text_is_decoded() -> None:
    message = parse_one("<message device='A' message='20 °C, ±0.5'/>".encode())
    assert message == Message("A", "20 °C, ±0.5")


# ---- INDI semantics -------------------------------------------------------------------------


def test_new_number_values_accept_sexagesimal() -> None:
    message = parse_one(b"<newNumberVector device='Mount' name='EQUATORIAL_EOD_COORD'>"
                        b"<oneNumber name='RA'>5:30:36</oneNumber>"
                        b"<oneNumber name='DEC'>-10 30.3</oneNumber></newNumberVector>")
    assert isinstance(message, NewVector)
    assert message.elements == (NumberElement("RA", 5.51), NumberElement("DEC", -10.505))


def test_def_number_values_accept_sexagesimal() -> None:
    message = parse_one(b"<defNumberVector device='M' name='C' state='Idle' perm='rw'>"
                        b"<defNumber name='RA' format='%010.6m' min='0' max='24' step='0'>"
                        b"5:30</defNumber></defNumberVector>")
    assert isinstance(message, DefVector)
    assert message.elements == (NumberElement("RA", 5.5, None, "%010.6m", 0.0, 24.0, 0.0),)


def test_set_number_values_must_be_plain_decimal() -> None:
    problem = parse_problem(b"<setNumberVector device='A' name='N' state='Ok'>"
                            b"<oneNumber name='x'>5:30</oneNumber></setNumberVector>")
    assert "not a decimal number" in problem.reason


@pytest.mark.parametrize(
    "xml",
    [
        b"<setNumberVector device='A' name='N' state='OK'><oneNumber name='x'>1</oneNumber>"
        b"</setNumberVector>",
        b"<newSwitchVector device='A' name='S'><oneSwitch name='x'>ON</oneSwitch>"
        b"</newSwitchVector>",
        b"<defSwitchVector device='A' name='S' state='Idle' perm='rw' rule='OneOf'>"
        b"<defSwitch name='x'>On</defSwitch></defSwitchVector>",
        b"<defTextVector device='A' name='T' state='Idle' perm='rwx'>"
        b"<defText name='x'/></defTextVector>",
        b"<setLightVector device='A' name='L' state='Ok'><oneLight name='x'>Red</oneLight>"
        b"</setLightVector>",
        b"<enableBLOB device='A'>Sometimes</enableBLOB>",
    ],
    ids=["state", "switch", "rule", "perm", "light", "blob-mode"],
)
def test_unknown_enumeration_value_makes_the_message_a_problem(xml: bytes) -> None:
    assert "is not a valid" in parse_problem(xml).reason


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (b"<setNumberVector device='A' name='N' state='Ok'><oneText name='x'>1</oneText>"
         b"</setNumberVector>", "<setNumberVector> cannot hold <oneText>"),
        (b"<setTextVector device='A' name='T' state='Ok'><defText name='x'>1</defText>"
         b"</setTextVector>", "<setTextVector> cannot hold <defText>"),
        (b"<defBLOBVector device='A' name='B' state='Idle' perm='ro'><oneBLOB name='B' "
         b"size='0' format='.fits'/></defBLOBVector>", "<defBLOBVector> cannot hold <oneBLOB>"),
        (b"<getProperties version='1.7'><defText name='x'/></getProperties>",
         "<getProperties> must be empty, found <defText>"),
    ],
)
def test_only_members_of_the_vector_type_are_accepted(xml: bytes, reason: str) -> None:
    assert parse_problem(xml).reason == reason


def test_vector_without_members_is_refused() -> None:
    problem = parse_problem(b"<setNumberVector device='A' name='N' state='Ok'/>")
    assert problem.reason == "<setNumberVector> has no <oneNumber>"


def test_new_light_vector_is_not_an_indi_message() -> None:
    problem = parse_problem(b"<newLightVector device='A' name='L'><oneLight name='x'>Ok"
                            b"</oneLight></newLightVector>")
    assert problem.reason == "<newLightVector> is not a top-level INDI element"


@pytest.mark.parametrize(
    ("xml", "missing"),
    [
        (b"<defTextVector device='A' name='T' state='Idle'><defText name='x'/></defTextVector>",
         "perm"),
        (b"<defSwitchVector device='A' name='S' state='Idle' perm='rw'><defSwitch name='x'>On"
         b"</defSwitch></defSwitchVector>", "rule"),
        (b"<defNumberVector device='A' name='N' state='Idle' perm='rw'><defNumber name='x' "
         b"min='0' max='1' step='0'>1</defNumber></defNumberVector>", "format"),
        (b"<defNumberVector device='A' name='N' state='Idle' perm='rw'><defNumber name='x' "
         b"format='%g' max='1' step='0'>1</defNumber></defNumberVector>", "min"),
        (b"<defTextVector name='T' state='Idle' perm='ro'><defText name='x'/></defTextVector>",
         "device"),
        (b"<setTextVector device='A' state='Ok'><oneText name='x'/></setTextVector>", "name"),
        (b"<newTextVector device='A' name='T'><oneText>v</oneText></newTextVector>", "name"),
        (b"<enableBLOB>Also</enableBLOB>", "device"),
        (b"<pingRequest/>", "uid"),
        (b"<delProperty name='P'/>", "device"),
    ],
)
def test_message_missing_a_required_attribute_is_a_problem(xml: bytes, missing: str) -> None:
    assert f"without required attribute {missing!r}" in parse_problem(xml).reason


@pytest.mark.parametrize("missing", ["size", "format"])
def test_blob_without_size_or_format_is_skipped(missing: str) -> None:
    attributes = {"size": b" size='4'", "format": b" format='.fits'"}
    del attributes[missing]
    xml = (b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B'"
           + b"".join(attributes.values()) + b">QUJD</oneBLOB></setBLOBVector>")
    results = parse(xml + GET_PROPERTIES)
    assert f"without required attribute {missing!r}" in problems_of(results)[0].reason
    assert results[-1] == GetProperties("1.7")


def test_blob_size_must_be_a_byte_count() -> None:
    problem = parse_problem(b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B' "
                            b"size='-1' format='.fits'>QUJD</oneBLOB></setBLOBVector>")
    assert "is not a byte count" in problem.reason


def test_unknown_blob_attributes_are_ignored() -> None:
    message = parse_one(b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B' "
                        b"size='3' format='.fits' enclen='4' len='3' attached='false'>QUJD"
                        b"</oneBLOB></setBLOBVector>")
    assert isinstance(message, SetVector)
    assert message.elements == (BlobElement("B", None, ".fits", 3, b"QUJD"),)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_blob_whitespace_of_every_kind_is_removed(chunk_size: int | None) -> None:
    message = parse(b"<newBLOBVector device='A' name='B'><oneBLOB name='B' size='6' "
                    b"format='.bin'>\r\n  QUJD\r\n\tREVG \n</oneBLOB></newBLOBVector>",
                    chunk_size)
    assert message == [NewVector(VectorKind.BLOB, "A", "B",
                                 (BlobElement("B", None, ".bin", 6, b"QUJDREVG"),))]


def test_blob_vector_with_several_blobs_keeps_each_payload_with_its_member() -> None:
    message = parse_one(b"<setBLOBVector device='A' name='B' state='Ok'>"
                        b"<oneBLOB name='one' size='3' format='.a'>QUJD</oneBLOB>"
                        b"<oneBLOB name='empty' size='0' format='.b'/>"
                        b"<oneBLOB name='two' size='3' format='.c'>REVG</oneBLOB>"
                        b"</setBLOBVector>")
    assert isinstance(message, SetVector)
    assert message.elements == (
        BlobElement("one", None, ".a", 3, b"QUJD"),
        BlobElement("empty", None, ".b", 0, b""),
        BlobElement("two", None, ".c", 3, b"REVG"),
    )


def test_entity_in_blob_data_is_refused() -> None:
    problem = parse_problem(b"<setBLOBVector device='A' name='B' state='Ok'><oneBLOB name='B' "
                            b"size='3' format='.a'>QU&amp;JD</oneBLOB></setBLOBVector>")
    assert "'&' in BLOB data" in problem.reason


def test_blob_arrives_identically_however_the_stream_is_cut() -> None:
    data = pybase64.b64encode(bytes(range(256)) * 300)
    wrapped = b"\n".join(data[i : i + 72] for i in range(0, len(data), 72))
    xml = (b"<?xml version='1.0'?>\n<setBLOBVector device='A' name='B' state='Ok'>\n"
           b"  <oneBLOB name='B' size='76800' enclen='102400' format='.fits'>\n" + wrapped
           + b"\n  </oneBLOB>\n</setBLOBVector>\n<pingRequest uid='SetBLOB/1' />")
    expected = [
        SetVector(VectorKind.BLOB, "A", "B", PropertyState.OK,
                  (BlobElement("B", None, ".fits", 76800, data),)),
        PingRequest("SetBLOB/1"),
    ]
    for chunk_size in (1, 3, 72, 73, 4096, 65536, None):
        assert parse(xml, chunk_size) == expected


def test_feed_accepts_bytearray_and_memoryview_and_keeps_its_own_copy() -> None:
    parser = IndiParser()
    head = bytearray(b"<newBLOBVector device='A' name='B'><oneBLOB name='B' size='3' "
                     b"format='.a'>")
    assert parser.feed(head) == []
    body = bytearray(b"QUJD")
    assert parser.feed(memoryview(body)) == []
    body[:] = b"XXXX"  # the caller reuses its buffer
    (message,) = parser.feed(b"</oneBLOB></newBLOBVector>")
    assert isinstance(message, NewVector)
    assert message.elements[0] == BlobElement("B", None, ".a", 3, b"QUJD")


def test_light_vector_has_no_perm_even_if_one_is_sent() -> None:
    message = parse_one(b"<defLightVector device='A' name='L' label='Status' group='G' "
                        b"state='Ok' perm='ro'><defLight name='x' label='X'>Alert</defLight>"
                        b"</defLightVector>")
    assert message == DefVector(VectorKind.LIGHT, "A", "L", PropertyState.OK,
                                (LightElement("x", PropertyState.ALERT, "X"),),
                                label="Status", group="G")


def test_def_vector_without_timeout_defaults_to_zero_and_keeps_missing_label_as_none() -> None:
    message = parse_one(b"<defTextVector device='A' name='T' state='Idle' perm='ro'>"
                        b"<defText name='x'>v</defText></defTextVector>")
    assert message == DefVector(VectorKind.TEXT, "A", "T", PropertyState.IDLE,
                                (TextElement("x", "v"),), perm=Perm.RO)


def test_set_vector_without_state_means_no_change() -> None:
    message = parse_one(b"<setSwitchVector device='A' name='S'><oneSwitch name='x'>Off"
                        b"</oneSwitch></setSwitchVector>")
    assert isinstance(message, SetVector)
    assert (message.state, message.timeout) == (None, None)


def test_get_properties_without_version_is_a_driver_snoop_request() -> None:
    assert parse_one(b"<getProperties device='Mount' name='COORD'/>") == GetProperties(
        None, "Mount", "COORD")


def test_chained_indiserver_wildcard_device_is_kept_verbatim() -> None:
    assert parse_one(b"<getProperties device='*' version='1.7'/>") == GetProperties("1.7", "*")


def test_site_wide_message_and_whole_device_deletion() -> None:
    assert parse(b"<message message='hello'/><delProperty device=\"CCD Simulator\"/>") == [
        Message(None, "hello"), DelProperty("CCD Simulator")]
