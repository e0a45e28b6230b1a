"""Time cards: row 0's UTC times to the microsecond, the middle row a rolling shutter reads
later, BJD_TDB only with a site and a target, checked against ERFA called directly, and never
a download, for dates years past the bundled IERS and leap-second tables."""

from __future__ import annotations

import math
import socket
import urllib.request
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import astropy.utils.data
import erfa  # type: ignore[import-untyped]
import numpy as np
import pytest
from astropy.io import fits as afits
from astropy.time import Time
from astropy.utils import iers

from qhy42_indi.camera.fits import Card
from qhy42_indi.camera.timecards import (
    MJD_EPOCH,
    Site,
    Target,
    bjd_instant,
    bjd_tdb,
    middle_image_row,
    mjd_utc,
    time_cards,
)

START = datetime(2026, 12, 1, 20, 41, 10, 123456, tzinfo=UTC)
ZURICH = Site(latitude_deg=47.3769, longitude_deg=8.5417, elevation_m=408.0)
CRAB = Target(ra_j2000_deg=83.6331, dec_j2000_deg=22.0145)
ROW0_KEYWORDS = ["DATE-BEG", "DATE-AVG", "MJD-OBS", "MJD-AVG", "MJD-END"]
SPEED_OF_LIGHT_M_S = 299_792_458.0
AU_M = 149_597_870_700.0


def cards_of(start: datetime = START, exposure_s: float = 2.5, *, line_period_us: float = 20.0,
             image_rows: int = 2048, bin_y: int = 1, time_source: str = "GPS",
             site: Site | None = ZURICH, target: Target | None = CRAB) -> dict[str, Card]:
    cards = time_cards(start, exposure_s, line_period_us=line_period_us, image_rows=image_rows,
                       bin_y=bin_y, time_source=time_source, site=site, target=target)
    return {card.keyword: card for card in cards}


def as_written(card: Card) -> afits.Card:
    """The card as a FITS reader sees it: through its 80-character image."""
    return afits.Card.fromstring(afits.Card(*card).image)


def test_row_0_times_to_the_microsecond() -> None:
    cards = cards_of(exposure_s=2.5)
    assert list(cards) == [*ROW0_KEYWORDS, "BJD_TDB"]
    assert cards["DATE-BEG"].value == "2026-12-01T20:41:10.123456"
    assert cards["DATE-AVG"].value == "2026-12-01T20:41:11.373456"
    expected = {"MJD-OBS": START, "MJD-AVG": START + timedelta(microseconds=1_250_000),
                "MJD-END": START + timedelta(microseconds=2_500_000)}
    for keyword, moment in expected.items():
        mjd = as_written(cards[keyword]).value
        assert isinstance(mjd, float)
        assert MJD_EPOCH + timedelta(days=mjd) == moment, keyword
        # astropy's own MJD of the same instant (a day without a leap second).
        astropy_mjd = Time(moment.strftime("%Y-%m-%dT%H:%M:%S.%f"), scale="utc").mjd
        assert abs(mjd - astropy_mjd) * 86400 < 1e-6, keyword
    assert math.floor(as_written(cards["MJD-OBS"]).value) == 61375


def test_an_exposure_with_odd_microseconds_and_a_non_utc_start() -> None:
    start = datetime(2027, 3, 4, 23, 59, 59, 999999, tzinfo=UTC).astimezone()
    cards = cards_of(start, 0.000003)
    assert cards["DATE-BEG"].value == "2027-03-04T23:59:59.999999"
    assert cards["DATE-AVG"].value == "2027-03-05T00:00:00.000001"  # 1.5 us, to the microsecond
    end = MJD_EPOCH + timedelta(days=as_written(cards["MJD-END"]).value)
    assert end == datetime(2027, 3, 5, 0, 0, 0, 2, tzinfo=UTC)


def test_mjd_of_the_epoch_and_of_a_known_date() -> None:
    assert mjd_utc(MJD_EPOCH) == 0.0
    assert mjd_utc(datetime(2000, 1, 1, 12, tzinfo=UTC)) == 51544.5  # J2000.0 in UTC


def test_every_card_fits_in_80_characters_without_losing_its_comment() -> None:
    for time_source in ("GPS", "HOST"):
        for card in cards_of(time_source=time_source, image_rows=4096).values():
            written = as_written(card)
            assert written.comment == card.comment, card.keyword
            assert written.value == card.value, card.keyword


@pytest.mark.parametrize(("image_rows", "middle"), [(1, 0), (2, 0), (3, 1), (5, 2), (2048, 1023),
                                                    (1024, 511)])
def test_the_middle_image_row(image_rows: int, middle: int) -> None:
    assert middle_image_row(image_rows) == middle
    comment = cards_of(image_rows=image_rows, time_source="HOST")["BJD_TDB"].comment
    assert comment == f"[d] mid-exposure of image row {middle} (HOST)"


def test_the_instant_of_a_binned_row_is_the_mean_of_its_sensor_rows() -> None:
    # 2x binning: image row 255 sums sensor rows 510 and 511 after FIRSTROW, which start
    # 510 and 511 line periods after row 0: on average 510.5 x 20 us = 10210 us.
    assert bjd_instant(START, 2.5, line_period_us=20.0, image_row=255, bin_y=2) == (
        START + timedelta(microseconds=10_210 + 1_250_000))
    assert bjd_instant(START, 2.5, line_period_us=20.0, image_row=0, bin_y=1) == (
        START + timedelta(microseconds=1_250_000))
    assert bjd_instant(START, 1.0, line_period_us=14.5, image_row=3, bin_y=4) == (
        START + timedelta(microseconds=round(13.5 * 14.5) + 500_000))


def test_bjd_is_that_of_the_middle_rows_instant() -> None:
    binned = cards_of(image_rows=512, bin_y=2)["BJD_TDB"].value  # ROI of 1024 sensor rows
    instant = START + timedelta(microseconds=10_210 + 1_250_000)
    assert binned == bjd_tdb(instant, ZURICH, CRAB)
    # The rolling shutter shows: the middle of 2048 rows is 1023 x 20 us after a 1-row frame.
    full = cards_of(image_rows=2048)["BJD_TDB"].value
    one_row = cards_of(image_rows=1)["BJD_TDB"].value
    assert isinstance(full, float) and isinstance(one_row, float)
    assert (full - one_row) * 86400 == pytest.approx(1023 * 20e-6, abs=1e-4)


@pytest.mark.parametrize(("site", "target"), [(None, CRAB), (ZURICH, None), (None, None)])
def test_no_bjd_without_both_site_and_target(site: Site | None, target: Target | None) -> None:
    assert list(cards_of(site=site, target=target)) == ROW0_KEYWORDS


def test_a_naive_start_and_impossible_coordinates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cards_of(datetime(2026, 12, 1))
    for make in (lambda: Site(91.0, 0.0), lambda: Site(0.0, 361.0), lambda: Site(0, 0, 1e5),
                 lambda: Target(360.5, 0.0), lambda: Target(10.0, -90.5),
                 lambda: Site(math.nan, 0.0)):
        with pytest.raises(ValueError):
            make()


# ---- BJD against ERFA called directly --------------------------------------------------------


def erfa_bjd_tdb(moment: datetime, site: Site, target: Target) -> float:
    """BJD_TDB without astropy: UTC -> TAI -> TT -> TDB by ERFA, the observer's barycentric
    position from epv00 (Earth) plus the site rotated into GCRS (c2t06a, UT1 = UTC, no polar
    motion), and the Roemer delay r.n/c. Sub-millisecond terms (Shapiro, aberration of the
    site vector) are left out: they are what the tolerance allows for."""
    seconds = moment.second + moment.microsecond * 1e-6
    utc1, utc2 = erfa.dtf2d("UTC", moment.year, moment.month, moment.day, moment.hour,
                            moment.minute, seconds)
    tt1, tt2 = erfa.taitt(*erfa.utctai(utc1, utc2))
    longitude = math.radians(site.longitude_deg)
    itrs_m = erfa.gd2gc(1, longitude, math.radians(site.latitude_deg), site.elevation_m)
    spin_axis_km, equator_km = math.hypot(itrs_m[0], itrs_m[1]) / 1e3, itrs_m[2] / 1e3
    day_fraction = (utc1 - 0.5) % 1.0 + utc2  # UT1 ~ UTC is plenty for the 2 us term
    tdb2 = tt2 + erfa.dtdb(tt1, tt2, day_fraction, longitude, spin_axis_km, equator_km) / 86400
    _heliocentric, barycentric = erfa.epv00(tt1, tdb2)
    earth_m = np.asarray(barycentric["p"]) * AU_M  # position of the (position, velocity) pair
    celestial_to_terrestrial = erfa.c2t06a(tt1, tt2, utc1, utc2, 0.0, 0.0)
    site_gcrs_m = celestial_to_terrestrial.T @ itrs_m
    towards = erfa.s2c(math.radians(target.ra_j2000_deg), math.radians(target.dec_j2000_deg))
    roemer_s = float(np.dot(earth_m + site_gcrs_m, towards)) / SPEED_OF_LIGHT_M_S
    return float(tt1 + tdb2 + roemer_s / 86400)


@pytest.mark.parametrize(("moment", "site", "target"), [
    (datetime(2026, 12, 1, 20, 41, 10, 123456, tzinfo=UTC), ZURICH, CRAB),
    # Past the bundled IERS-A predictions: Mauna Kea, the north ecliptic pole's neighbourhood.
    (datetime(2028, 6, 21, 9, 30, tzinfo=UTC), Site(19.8207, -155.4681, 4205.0),
     Target(270.0, 66.56)),
    # Past the leap-second list too ("dubious year"): Siding Spring, a target on the ecliptic.
    (datetime(2033, 3, 20, 14, 0, 0, 500000, tzinfo=UTC), Site(-31.2733, 149.0617, 1165.0),
     Target(180.0, 0.0)),
])
def test_bjd_agrees_with_erfa_called_directly(moment: datetime, site: Site,
                                              target: Target) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", erfa.ErfaWarning)  # our own "dubious year" in 2033
        independent = erfa_bjd_tdb(moment, site, target)
        utc_jd = Time(moment.strftime("%Y-%m-%dT%H:%M:%S.%f"), scale="utc").jd
    assert abs(independent - utc_jd) * 86400 > 60  # TDB-UTC alone is 69 s: a real correction
    assert abs(bjd_tdb(moment, site, target) - independent) * 86400 < 1e-3


# ---- offline ---------------------------------------------------------------------------------


def test_no_download_and_no_warning_years_after_the_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:1]))
        raise OSError("no network in this test")

    for owner, name in ((astropy.utils.data, "download_file"), (iers.iers, "download_file"),
                        (urllib.request, "urlopen"), (socket, "create_connection"),
                        (socket.socket, "connect")):
        monkeypatch.setattr(owner, name, refuse)
    # Make astropy look for its tables again, as a fresh daemon would.
    monkeypatch.setattr(iers.IERS_Auto, "iers_table", None)
    from astropy.time import core as time_core
    if hasattr(time_core, "_LEAP_SECONDS_CHECK"):
        monkeypatch.setattr(time_core, "_LEAP_SECONDS_CHECK",
                            time_core._LeapSecondsCheck.NOT_STARTED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for years_ahead in (0, 1, 2, 7, 15):
            start = START.replace(year=START.year + years_ahead)
            cards = cards_of(start, site=ZURICH, target=CRAB)
            assert isinstance(cards["BJD_TDB"].value, float)
    assert attempts == []
    assert iers.conf.auto_download is False
