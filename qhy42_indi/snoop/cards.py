"""The FITS cards INDI::CCD writes from snooped values, and the astrometry behind them.

`snoop_cards` gives, from a `Snapshot`, the cards of libindi 1.9.9's `CCD::addFITSKeywords`
(libs/indibase/indiccd.cpp) that come from other devices, with libindi's names, comments,
value precision and order:

  FILTER, FOCALLEN, APTDIA, MPSAS, ROTATANG, FOCUSPOS, FOCUSTEM, (SCALE: the camera's),
  SITELAT, SITELONG, AIRMASS, OBJCTAZ, OBJCTALT, OBJCTRA, OBJCTDEC, RA, DEC, PIERSIDE, EQUINOX

FILTER follows IMAGETYP in libindi's header and the mount cards precede DATE-OBS;
`place_snoop_cards` puts them there among the cards of camera/fits.py `standard_cards`.
FOCALLEN/APTDIA come from the mount's TELESCOPE_INFO only when the camera's own SCOPE_INFO
value is not set (libindi prefers SCOPE_INFO; we treat 0 as not set, as fits.py does, where
libindi would write FOCALLEN = 0). Numbers are rounded as libindi's fits_update_key_dbl
writes them (%.6E or %.3E), so the same input gives the same values.
The mount block (SITELAT ... EQUINOX) exists for light frames with a known position only;
SITELAT/SITELONG, AIRMASS, OBJCTAZ and OBJCTALT need the site as well. AIRMASS is libnova's
ln_get_airmass(altitude, 750) (homogeneous atmosphere, no refraction), OBJCTAZ is measured
from north through east.

J2000 from the mount's JNow (EQUATORIAL_EOD_COORD, true equator and equinox of date): the
apparent place is moved to CIRS by the equation of the origins (erfa.eo06a) and taken to
ICRS with erfa.atic13, which undoes annual aberration, light deflection and the IAU
2006/2000A precession-nutation; ICRS is FK5 J2000 to 0.02". This agrees with astropy's
TETE -> FK5(J2000) to 0.03" and with libnova's model (which libindi calls) to 0.1".
libindi 1.9.9 itself is off by up to about 16": its DEG_TO_RAD macro (libastro.h) lacks
parentheses, so ObservedToJ2000 removes nutation with the obliquity in degrees taken as
radians. Measured against indi_simulator_ccd 1.9.9: 7-14" in RA*cos(Dec), up to 12.6" in
Dec. `libindi_1_9=True` reproduces that slip (to 0.2") for side-by-side comparisons. A
mount's own EQUATORIAL_COORD (J2000) is used as it is, as libindi does.
Time: UTC with UT1 = UTC (DUT1 < 0.9 s: at most 14" in hour angle) and TT = UTC + 69.184 s
(37 leap seconds; another one would move the result by microarcseconds). Nothing is
downloaded: pyerfa carries its own ephemerides and models.

Pure and blocking (about 0.1 ms per frame); no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import erfa  # type: ignore[import-untyped]  # pyerfa ships no type hints

from qhy42_indi.camera.fits import Card
from qhy42_indi.indi.values import format_sexagesimal
from qhy42_indi.snoop.state import PierSide, Snapshot

_UNIX_EPOCH_JD = 2440587.5
_SECONDS_PER_DAY = 86400.0
_TT_MINUS_UTC_S = 69.184
# libnova's ln_get_airmass scale, as libindi passes it.
_AIRMASS_SCALE = 750.0
_EQUINOX = 2000

_PIER_SIDE_COMMENTS = {PierSide.WEST: "West, looking East", PierSide.EAST: "East, looking West"}

# Where each snooped keyword goes among the standard cards (see place_snoop_cards).
_AFTER_FRAME_TYPE = ("FILTER", "FOCALLEN", "APTDIA")
_BEFORE_SCALE = ("MPSAS", "ROTATANG", "FOCUSPOS", "FOCUSTEM")
_OPTICS = frozenset({"FOCALLEN", "APTDIA", "SCALE"})
_DATE_OBS = "DATE-OBS"

SNOOP_KEYWORDS = frozenset({
    *_AFTER_FRAME_TYPE, *_BEFORE_SCALE, "SITELAT", "SITELONG", "AIRMASS", "OBJCTAZ",
    "OBJCTALT", "OBJCTRA", "OBJCTDEC", "RA", "DEC", "PIERSIDE", "EQUINOX",
})


def snoop_cards(snapshot: Snapshot, when_utc: datetime, *, focal_length_mm: float | None,
                aperture_mm: float | None, light_frame: bool = True,
                libindi_1_9: bool = False) -> list[Card]:
    """The snooped cards of one frame, in libindi's order.

    `when_utc` (timezone-aware) is the moment the coordinates are for: libindi uses the
    time it writes the header, which is the end of the exposure. `focal_length_mm` and
    `aperture_mm` are the camera's SCOPE_INFO values (None or 0: not set). `light_frame`
    False leaves out the mount cards, as libindi does for bias, dark and flat frames.
    """
    if when_utc.tzinfo is None or when_utc.utcoffset() is None:
        raise ValueError("when_utc must be timezone-aware")
    cards: list[Card] = []
    filter_name = snapshot.filter_name
    if filter_name is not None:
        cards.append(Card("FILTER", _fits_text(filter_name), "Filter"))
    mount_focal_length = snapshot.telescope_focal_length_mm
    if not _is_set(focal_length_mm) and mount_focal_length is not None and _is_set(
            mount_focal_length):
        cards.append(Card("FOCALLEN", _fits_double(mount_focal_length, 3), "Focal Length (mm)"))
    mount_aperture = snapshot.telescope_aperture_mm
    if not _is_set(aperture_mm) and mount_aperture is not None and _is_set(mount_aperture):
        cards.append(Card("APTDIA", _fits_double(mount_aperture, 3), "Telescope diameter (mm)"))
    if snapshot.sky_brightness_mpsas is not None:
        cards.append(Card("MPSAS", _fits_double(snapshot.sky_brightness_mpsas, 6),
                          "Sky Quality (mag per arcsec^2)"))
    if snapshot.rotator_angle_deg is not None:
        cards.append(Card("ROTATANG", _fits_double(snapshot.rotator_angle_deg, 3),
                          "Rotator angle in degrees"))
    if snapshot.focus_position is not None:
        cards.append(Card("FOCUSPOS", snapshot.focus_position, "Focus position in steps"))
    if snapshot.focus_temperature_c is not None:
        cards.append(Card("FOCUSTEM", _fits_double(snapshot.focus_temperature_c, 3),
                          "Focuser temperature in degrees C"))
    if light_frame:
        cards.extend(_mount_cards(snapshot, when_utc, libindi_1_9=libindi_1_9))
    return cards


def _mount_cards(snapshot: Snapshot, when_utc: datetime, *, libindi_1_9: bool) -> list[Card]:
    position = _positions(snapshot, when_utc, libindi_1_9=libindi_1_9)
    if position is None:
        return []
    (ra_j2000_h, dec_j2000), (ra_jnow_h, dec_jnow) = position
    cards: list[Card] = []
    latitude, longitude = snapshot.latitude_deg, snapshot.longitude_deg
    if latitude is not None and longitude is not None:
        cards.append(Card("SITELAT", _fits_double(latitude, 6),
                          "Latitude of the imaging site in degrees"))
        cards.append(Card("SITELONG", _fits_double(longitude, 6),
                          "Longitude of the imaging site in degrees"))
        azimuth, altitude = horizontal(ra_jnow_h, dec_jnow, latitude, longitude, when_utc)
        cards.append(Card("AIRMASS", _fits_double(airmass(altitude), 6), "Airmass"))
        cards.append(Card("OBJCTAZ", _fits_double(azimuth, 6),
                          "Azimuth of center of image in Degrees"))
        cards.append(Card("OBJCTALT", _fits_double(altitude, 6),
                          "Altitude of center of image in Degrees"))
    cards.append(Card("OBJCTRA", sexagesimal(ra_j2000_h), "Object J2000 RA in Hours"))
    cards.append(Card("OBJCTDEC", sexagesimal(dec_j2000), "Object J2000 DEC in Degrees"))
    cards.append(Card("RA", _fits_double(ra_j2000_h * 15, 6), "Object J2000 RA in Degrees"))
    cards.append(Card("DEC", _fits_double(dec_j2000, 6), "Object J2000 DEC in Degrees"))
    if snapshot.pier_side is not None:
        cards.append(Card("PIERSIDE", snapshot.pier_side.value,
                          _PIER_SIDE_COMMENTS[snapshot.pier_side]))
    cards.append(Card("EQUINOX", _EQUINOX, "Equinox"))
    return cards


def _positions(snapshot: Snapshot, when_utc: datetime, *, libindi_1_9: bool,
               ) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((J2000 RA h, Dec), (JNow RA h, Dec)) of the mount, or None if it is unknown."""
    jnow = _pair(snapshot.ra_jnow_h, snapshot.dec_jnow_deg)
    j2000 = _pair(snapshot.ra_j2000_h, snapshot.dec_j2000_deg)
    if j2000 is not None:
        return j2000, jnow if jnow is not None else j2000_to_jnow(*j2000, when_utc)
    if jnow is not None:
        return jnow_to_j2000(*jnow, when_utc, libindi_1_9=libindi_1_9), jnow
    return None


def place_snoop_cards(standard: Sequence[Card], snooped: Sequence[Card]) -> list[Card]:
    """`standard` (camera/fits.py standard_cards) with `snooped` where libindi has them:
    FILTER (and FOCALLEN/APTDIA from the mount) after the frame type, MPSAS ... FOCUSTEM
    before SCALE, the mount cards before DATE-OBS. A snooped FOCALLEN or APTDIA that the
    standard cards already have is left out (the camera's SCOPE_INFO wins)."""
    present = {card.keyword for card in standard}
    first = [c for c in snooped
             if c.keyword in _AFTER_FRAME_TYPE and not (c.keyword in _OPTICS and c.keyword
                                                        in present)]
    middle = [c for c in snooped if c.keyword in _BEFORE_SCALE]
    grouped = set(_AFTER_FRAME_TYPE) | set(_BEFORE_SCALE)
    mount = [c for c in snooped if c.keyword not in grouped]
    placed: list[Card] = []
    for card in standard:
        if first and (card.keyword in _OPTICS or card.keyword == _DATE_OBS):
            placed += first
            first = []
        if middle and card.keyword in ("SCALE", _DATE_OBS):
            placed += middle
            middle = []
        if mount and card.keyword == _DATE_OBS:
            placed += mount
            mount = []
        placed.append(card)
    return placed + first + middle + mount


# ---- astrometry -----------------------------------------------------------------------------


def jnow_to_j2000(ra_h: float, dec_deg: float, when_utc: datetime, *,
                  libindi_1_9: bool = False) -> tuple[float, float]:
    """J2000 (ICRS) RA in hours [0, 24) and Dec in degrees of an apparent place of date."""
    jd, tt = _julian_dates(when_utc)
    ra, dec = math.radians(ra_h * 15), math.radians(dec_deg)
    if libindi_1_9:
        ra, dec = _libindi_1_9_nutation_slip(ra, dec, jd, tt)
    ra_cirs = erfa.anp(ra + erfa.eo06a(jd, tt))
    ra_icrs, dec_icrs, _ = erfa.atic13(ra_cirs, dec, jd, tt)
    return _hours(ra_icrs), math.degrees(dec_icrs)


def j2000_to_jnow(ra_h: float, dec_deg: float, when_utc: datetime) -> tuple[float, float]:
    """The apparent place of date (RA hours, Dec degrees) of a J2000 (ICRS) position."""
    jd, tt = _julian_dates(when_utc)
    ra_cirs, dec, eo = erfa.atci13(math.radians(ra_h * 15), math.radians(dec_deg),
                                   0.0, 0.0, 0.0, 0.0, jd, tt)
    return _hours(ra_cirs - eo), math.degrees(dec)


def horizontal(ra_jnow_h: float, dec_jnow_deg: float, latitude_deg: float,
               longitude_deg: float, when_utc: datetime) -> tuple[float, float]:
    """(azimuth from north through east, altitude), degrees, of an apparent place, without
    refraction, from the local apparent sidereal time."""
    jd, tt = _julian_dates(when_utc)
    ut1 = tt - _TT_MINUS_UTC_S / _SECONDS_PER_DAY  # UT1 = UTC
    sidereal = erfa.era00(jd, ut1) - erfa.eo06a(jd, tt)
    hour_angle = sidereal + math.radians(longitude_deg) - math.radians(ra_jnow_h * 15)
    azimuth, altitude = erfa.hd2ae(hour_angle, math.radians(dec_jnow_deg),
                                   math.radians(latitude_deg))
    return math.degrees(azimuth), math.degrees(altitude)


def airmass(altitude_deg: float) -> float:
    """libnova's ln_get_airmass(altitude, 750): a homogeneous spherical atmosphere."""
    a = _AIRMASS_SCALE * math.sin(math.radians(altitude_deg))
    return math.sqrt(a * a + 2 * _AIRMASS_SCALE + 1) - a


def sexagesimal(value: float) -> str:
    """OBJCTRA/OBJCTDEC text: fs_sexa(value, 2, 360000) with spaces for colons, e.g.
    ' 5 28 21.57', '-5 02 03.40', '-0 30 00.00'."""
    return format_sexagesimal(value, 2, 360000).replace(":", " ")


def _libindi_1_9_nutation_slip(ra: float, dec: float, jd: float, tt: float,
                               ) -> tuple[float, float]:
    """Shift an apparent place by the error libindi 1.9.9 makes when it removes nutation:
    DEG_TO_RAD(ecliptic + obliquity) expands to ecliptic + obliquity * pi / 180, so the true
    obliquity enters sin/cos in degrees as if it were radians. The shift is that wrong
    correction minus the right one (Meeus 23.1, in the nutation in longitude only)."""
    nutation_longitude, nutation_obliquity = erfa.nut80(jd, tt)
    true_obliquity = erfa.obl80(jd, tt) + nutation_obliquity
    wrong_obliquity = math.degrees(true_obliquity)
    cos_step = math.cos(wrong_obliquity) - math.cos(true_obliquity)
    sin_step = math.sin(wrong_obliquity) - math.sin(true_obliquity)
    ra_shift = -(cos_step + sin_step * math.sin(ra) * math.tan(dec)) * nutation_longitude
    dec_shift = -sin_step * math.cos(ra) * nutation_longitude
    return ra + ra_shift, dec + dec_shift


def _julian_dates(when_utc: datetime) -> tuple[float, float]:
    """(JD part 1, TT part 2): 2-part Julian dates sharing the Unix epoch as part 1, which
    keeps microsecond resolution in part 2."""
    days = when_utc.timestamp() / _SECONDS_PER_DAY
    return _UNIX_EPOCH_JD, days + _TT_MINUS_UTC_S / _SECONDS_PER_DAY


def _hours(angle_rad: float) -> float:
    return math.degrees(erfa.anp(angle_rad)) / 15


# ---- values ---------------------------------------------------------------------------------


def _pair(ra: float | None, dec: float | None) -> tuple[float, float] | None:
    return None if ra is None or dec is None else (ra, dec)


def _is_set(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _fits_double(value: float, decimals: int) -> float:
    """`value` as fits_update_key_dbl(..., decimals, ...) writes it (%.<decimals>E)."""
    return float(f"{value:.{decimals}E}")


def _fits_text(text: str) -> str:
    # A FITS string holds printable ASCII only; a device's name for a filter may not.
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)
