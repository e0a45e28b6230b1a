"""Number and timestamp formats: what the wire allows in, what we write out, what humans see."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest

from qhy42_indi.indi.values import (
    format_display,
    format_sexagesimal,
    format_timestamp,
    format_wire_number,
    parse_decimal,
    parse_number,
    parse_timestamp,
    timestamp_now,
)

# ---- parse_number: decimal and sexagesimal ---------------------------------------------------


def test_white_paper_example_sexagesimal_forms_are_the_same_number() -> None:
    assert parse_number("-10:30:18") == parse_number("-10 30.3") == -10.505


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12.0),
        ("-0.5", -0.5),
        ("  2.5\n", 2.5),
        ("1e3", 1000.0),
        (".25", 0.25),
        ("10:30", 10.5),
        ("10;30", 10.5),
        ("10 30 36", 10.51),
        ("10:30:18.5", 10 + 30 / 60 + 18.5 / 3600),
        ("+10:30", 10.5),
        ("10:", 10.0),
        ("10::36", 10.01),
        ("  -5 : 30  ", -5.5),
    ],
)
def test_parse_number_accepts_decimal_and_sexagesimal(text: str, expected: float) -> None:
    assert parse_number(text) == pytest.approx(expected, abs=1e-12)


def test_leading_minus_negates_the_whole_sexagesimal_value_even_with_zero_degrees() -> None:
    assert parse_number("-0:30") == -0.5
    assert parse_number("-0:00:36") == -0.01


@pytest.mark.parametrize("text", ["", "   ", "abc", "10:-30", "1:2:3:4", ":30", "10:3x", "--1"])
def test_parse_number_rejects_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


# ---- parse_decimal: what clients read with std::stod ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0.0), ("-3", -3.0), ("5.2000000000000001776", 5.2), ("1E-3", 0.001), (" 7 ", 7.0)],
)
def test_parse_decimal_reads_plain_decimal(text: str, expected: float) -> None:
    assert parse_decimal(text) == expected


def test_parse_decimal_reads_the_non_finite_values_std_stod_reads() -> None:
    assert parse_decimal("inf") == float("inf")
    assert parse_decimal("-Infinity") == float("-inf")
    nan = parse_decimal("nan")
    assert nan != nan


@pytest.mark.parametrize("text", ["10:30", "1_000", "\u0661\u0662", "0x10", "", "1.2.3", "e5"])
def test_parse_decimal_rejects_sexagesimal_and_python_only_spellings(text: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal(text)


# ---- format_wire_number ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (-0.0, "0"),
        (-2.0, "-2"),
        (3600.0, "3600"),
        (2048, "2048"),
        (5.2, "5.2"),
        (0.01, "0.01"),
        (-10.505, "-10.505"),
        (1e-7, "1e-07"),
        (1e16, "1e+16"),
        (float("inf"), "inf"),
    ],
)
def test_wire_numbers_are_short_plain_decimal_without_trailing_zero(value: float,
                                                                    wire: str) -> None:
    assert format_wire_number(value) == wire


def test_wire_numbers_round_trip_exactly_for_random_doubles() -> None:
    rng = random.Random(42)
    for _ in range(5000):
        value = struct.unpack("<d", rng.randbytes(8))[0]
        if value != value:  # NaN never compares equal
            continue
        assert parse_decimal(format_wire_number(value)) == value


# ---- timestamps ------------------------------------------------------------------------------


def test_timestamp_is_utc_without_fraction_or_zone_suffix() -> None:
    moment = datetime(2026, 11, 25, 19, 59, 17, 399000, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(moment) == "2026-11-25T18:59:17"


def test_naive_datetime_is_taken_as_utc() -> None:
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"


def test_timestamp_now_is_parseable_and_current() -> None:
    parsed = parse_timestamp(timestamp_now())
    assert abs(parsed - datetime.now(UTC)) < timedelta(seconds=5)


def test_parse_timestamp_accepts_optional_fractional_seconds() -> None:
    assert parse_timestamp("2026-11-25T18:59:33.399") == datetime(
        2026, 11, 25, 18, 59, 33, 399000, tzinfo=UTC
    )
    assert parse_timestamp("2026-11-25T18:59:33") == datetime(2026, 11, 25, 18, 59, 33,
                                                              tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["2026-11-25T18:59:33Z", "2026-11-25 18:59:33", "2026-11-25T18:59:33+01:00", "now"]
)
def test_parse_timestamp_rejects_zones_and_other_layouts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


# ---- display formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number_format", "shown"),
    [
        (2.5, "%5.2f", " 2.50"),
        (1000.0, "%.f", "1000"),
        (0.0001234, "%g", "0.0001234"),
        (1280.0, "%4.0f", "1280"),
        (-123.75, "%7.3m", "-123:45"),
        (62 / 3600, "%9.6m", "  0:01:02"),
        (-0.5, "%6.3m", " -0:30"),
        (12.505, "%8.5m", " 12:30.3"),
        (1 + 2 / 60 + 3.4 / 3600, "%9.8m", "1:02:03.4"),
        (1 + 2 / 60 + 3.45 / 3600, "%12.9m", "  1:02:03.45"),
        (5.75, "%010.6m", "   5:45:00"),
        (5.75, "%6.2m", "   5:45"),
    ],
)
def test_display_format_applies_printf_and_indi_sexagesimal(value: float, number_format: str,
                                                           shown: str) -> None:
    assert format_display(value, number_format) == shown


@pytest.mark.parametrize("number_format", ["", "Volts", "%s %s", "%(x)f"])
def test_display_format_that_cannot_apply_falls_back_to_the_wire_form(
    number_format: str,
) -> None:
    assert format_display(2.5, number_format) == "2.5"


def test_sexagesimal_rejects_an_unknown_fraction_base() -> None:
    with pytest.raises(ValueError):
        format_sexagesimal(1.0, 3, 7)
