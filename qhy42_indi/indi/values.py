"""INDI value formats: numbers and timestamps as they travel, and numbers as humans see them.

For: reading numbers from the wire (plain decimal, and the sexagesimal forms the INDI white
paper allows in client input), writing numbers every peer parses (libindi clients use
std::stod on set values), INDI UTC timestamps, and printf-style display of a number with an
INDI `format` attribute (including INDI's sexagesimal %m).
Not for: XML, vectors, or checking values against min/max/step (that is property logic).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from fractions import Fraction

# std::stod accepts these; Python's float() also accepts '1_000' and non-ASCII digits, which no
# INDI peer writes and std::stod would misread, so the grammar is spelled out.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf(?:inity)?)", re.ASCII | re.IGNORECASE)
_UNSIGNED_DECIMAL = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Sexagesimal separators per the white paper: space, ':' or ';'.
_SEXAGESIMAL_SEPARATOR = re.compile(r"[ \t]*[:;][ \t]*|[ \t]+")
_SEXAGESIMAL_SCALES = (1, 60, 3600)

_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?", re.ASCII)

# Integral values below this print exactly as integers; above it repr() keeps them short
# ("1e+16") where an integer would print 17+ digits that are not all significant.
_MAX_PLAIN_INTEGER = 1e16

# INDI %<w>.<f>m: <f> picks the finest unit shown; any other <f> gives degrees:minutes.
_SEXAGESIMAL_FORMAT = re.compile(r"%(\d+)\.(\d+)m", re.ASCII)
_FRACTION_DIGITS_TO_BASE = {9: 360000, 8: 36000, 6: 3600, 5: 600}
_DEFAULT_FRACTION_BASE = 60


# ---- numbers in -----------------------------------------------------------------------------


def parse_decimal(text: str) -> float:
    """Parse a plain decimal number ('12', '-0.5', '1e-3', 'nan', 'inf'), as std::stod would.

    Surrounding whitespace is ignored. Raises ValueError for anything else, sexagesimal included.
    """
    stripped = text.strip()
    if _DECIMAL.fullmatch(stripped) or _NON_FINITE.fullmatch(stripped):
        return float(stripped)
    raise ValueError(f"not a decimal number: {text!r}")


def parse_number(text: str) -> float:
    """Parse an INDI numberValue: plain decimal, or sexagesimal 'D[:M[:S]]'.

    Separators are space, ':' or ';'; a missing part counts as 0; a leading '-' negates the
    whole value, so '-0:30' is -0.5 and '-10:30:18' == '-10 30.3' == -10.505.
    Raises ValueError when the text is neither form.
    """
    try:
        return parse_decimal(text)
    except ValueError:
        pass
    return _parse_sexagesimal(text.strip(), original=text)


def _parse_sexagesimal(stripped: str, *, original: str) -> float:
    negative = stripped.startswith("-")
    unsigned = stripped[1:] if stripped[:1] in ("-", "+") else stripped
    parts = _SEXAGESIMAL_SEPARATOR.split(unsigned)
    if not 1 <= len(parts) <= len(_SEXAGESIMAL_SCALES) or not parts[0]:
        raise ValueError(f"not a number: {original!r}")
    # Exact rational arithmetic so that '-10:30:18' gives exactly float('-10.505').
    total = Fraction(0)
    for part, scale in zip(parts, _SEXAGESIMAL_SCALES, strict=False):
        if not part:
            continue
        if not _UNSIGNED_DECIMAL.fullmatch(part):
            raise ValueError(f"not a number: {original!r}")
        total += Fraction(part) / scale
    value = float(total)
    return -value if negative else value


# ---- numbers out ----------------------------------------------------------------------------


def format_wire_number(value: float) -> str:
    """Write a number for the wire: plain decimal that std::stod and parse_decimal read back
    exactly. Integral values have no trailing '.0'; others use the shortest round-trip form."""
    value = float(value)
    if value.is_integer() and abs(value) < _MAX_PLAIN_INTEGER:
        return str(int(value))
    return repr(value)


def format_display(value: float, number_format: str) -> str:
    """Render a number as an INDI client shows it, using the property's `format` attribute.

    printf conversions (%f, %.f, %g, %e, %d ...) and INDI's sexagesimal %<w>.<f>m are
    supported. A format that cannot be applied falls back to the wire form, never raises.
    """
    sexagesimal = _SEXAGESIMAL_FORMAT.fullmatch(number_format)
    if sexagesimal is not None:
        width, fraction_digits = int(sexagesimal[1]), int(sexagesimal[2])
        fraction_base = _FRACTION_DIGITS_TO_BASE.get(fraction_digits, _DEFAULT_FRACTION_BASE)
        return format_sexagesimal(value, width - fraction_digits, fraction_base)
    try:
        return number_format % value
    except (TypeError, ValueError, OverflowError):
        return format_wire_number(value)


def format_sexagesimal(value: float, whole_width: int, fraction_base: int) -> str:
    """Render `value` as [-]D:MM[.M], D:MM:SS[.S[S]] with the whole part right-aligned in
    `whole_width` characters. `fraction_base` is the number of steps per unit: 60 (:mm),
    600 (:mm.m), 3600 (:mm:ss), 36000 (:mm:ss.s) or 360000 (:mm:ss.ss)."""
    if not math.isfinite(value):
        return format_wire_number(value)
    if fraction_base not in (60, 600, 3600, 36000, 360000):
        raise ValueError(f"unsupported sexagesimal fraction base {fraction_base}")
    negative = value < 0
    steps = int(abs(value) * fraction_base + 0.5)
    whole, fraction = divmod(steps, fraction_base)
    # The sign has to survive a whole part of 0, so it is written by hand.
    head = ("-" if negative else "") + str(whole)
    return head.rjust(whole_width) + _sexagesimal_tail(fraction, fraction_base)


def _sexagesimal_tail(fraction: int, fraction_base: int) -> str:
    if fraction_base == 60:
        return f":{fraction:02d}"
    if fraction_base == 600:
        return f":{fraction // 10:02d}.{fraction % 10:d}"
    steps_per_minute = fraction_base // 60
    minutes, seconds = divmod(fraction, steps_per_minute)
    if fraction_base == 3600:
        return f":{minutes:02d}:{seconds:02d}"
    if fraction_base == 36000:
        return f":{minutes:02d}:{seconds // 10:02d}.{seconds % 10:d}"
    return f":{minutes:02d}:{seconds // 100:02d}.{seconds % 100:02d}"


# ---- timestamps -----------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """INDI timeValue for `moment`: UTC 'YYYY-MM-DDTHH:MM:SS', no fraction, no 'Z'.

    A naive datetime is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def timestamp_now() -> str:
    """The current UTC time as an INDI timeValue."""
    return format_timestamp(datetime.now(UTC))


def parse_timestamp(text: str) -> datetime:
    """Parse an INDI timeValue ('2026-11-25T18:59:17', optional fractional seconds, no zone)
    into an aware UTC datetime. Raises ValueError otherwise."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an INDI timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    microsecond = int((match[7] or "0")[:6].ljust(6, "0"))
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
