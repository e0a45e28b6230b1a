"""FITS 4.0 time cards a photometrist can use: DATE-BEG/AVG, MJD-OBS/AVG/END and BJD_TDB.

What it is for: a light curve wants each frame's time on one clock, the Solar System
barycentre's. `time_cards` turns row 0's start (DATE-OBS, from the GPS head or the host clock)
and the exposure into the UTC cards of row 0's exposure, and, when both the site and the
target are known, into the barycentric Julian date (TDB) of the middle of the exposure of the
frame's middle image row: in this rolling-shutter camera sensor row FIRSTROW + n starts
n line periods after row 0, so the frame's middle integrates visibly later than its top.

It is pure and blocking (astropy takes a few milliseconds): the caller runs it in a worker
thread. It never touches the network, not now and not years after its IERS and leap-second
tables were bundled: at import it tells astropy to use the bundled tables whatever their age
(UT1-UTC and polar motion are then held at their last predicted values; for BJD that is an
error of a few microseconds at most), and the ephemeris is astropy's builtin one (ERFA's
epv00, within 4 us of JPL DE405), which needs no download either.

Not here: DATE-OBS, DATE-END, TIMESYS and the rows' layout cards (fits.py and timing.py write
them), and where the site and the target come from (the configuration's [site], a mount).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import astropy.units as u
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning
from erfa import ErfaWarning  # type: ignore[import-untyped]  # pyerfa has no stubs

from qhy42_indi.camera.fits import Card

# Offline, always: never fetch IERS-A or a leap-second list; use the bundled tables however
# old they are (auto_max_age None also silences the "expired" warnings), and beyond their end
# hold the last values instead of raising.
iers.conf.auto_download = False
iers.conf.auto_max_age = None
iers.conf.iers_degraded_accuracy = "ignore"

EPHEMERIS = "builtin"
MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)
_MICROSECONDS_PER_DAY = 86_400_000_000

# What astropy and ERFA say for dates past the bundled tables. Their effect on BJD is
# microseconds (polar motion moves the site by metres; a "dubious year" is one past the
# leap-second list, where no new leap second is assumed, the best anyone can do offline).
_BEYOND_TABLES_WARNINGS = (
    (AstropyWarning, "Tried to get polar motions"),
    (ErfaWarning, ".*dubious year"),
)
# warnings.catch_warnings swaps process-wide state: two of our worker threads inside it at
# once could leave the other's filters installed. Serialise them (astropy's
# solar_system_ephemeris.set, inside light_travel_time, is process-wide as well).
_ASTROPY_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Site:
    """Where the telescope is: WGS84 geodetic, longitude east positive (-180..360)."""

    latitude_deg: float
    longitude_deg: float
    elevation_m: float = 0.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude_deg <= 90.0:
            raise ValueError(f"latitude must be -90..90 degrees, not {self.latitude_deg}")
        if not -180.0 <= self.longitude_deg <= 360.0:
            raise ValueError(f"longitude must be -180..360 degrees east, not "
                             f"{self.longitude_deg}")
        if not -1000.0 <= self.elevation_m <= 10_000.0:
            raise ValueError(f"elevation must be -1000..10000 m, not {self.elevation_m}")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the telescope points: ICRS, which catalogues call J2000 (FK5 J2000 differs by
    some 20 mas, which moves BJD by less than 60 us)."""

    ra_j2000_deg: float
    dec_j2000_deg: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.ra_j2000_deg <= 360.0:
            raise ValueError(f"right ascension must be 0..360 degrees, not {self.ra_j2000_deg}")
        if not -90.0 <= self.dec_j2000_deg <= 90.0:
            raise ValueError(f"declination must be -90..90 degrees, not {self.dec_j2000_deg}")


def time_cards(start_utc: datetime, exposure_s: float, *, line_period_us: float,
               image_rows: int, bin_y: int, time_source: str, site: Site | None = None,
               target: Target | None = None) -> list[Card]:
    """The time cards of one frame whose row 0 started integrating at `start_utc`.

    DATE-BEG, DATE-AVG and MJD-OBS, MJD-AVG, MJD-END are row 0's start, middle and end (UTC,
    to the microsecond; DATE-OBS and DATE-END are written elsewhere). BJD_TDB, written only
    with both `site` and `target`, is the middle image row's mid-exposure: see `bjd_instant`.
    `image_rows` is the image's height (binned rows), `time_source` names the clock (GPS,
    HOST) in BJD_TDB's comment.
    """
    if start_utc.utcoffset() is None:
        raise ValueError("start_utc must be timezone-aware")
    middle_utc = start_utc + timedelta(seconds=exposure_s / 2)
    end_utc = start_utc + timedelta(seconds=exposure_s)  # as DATE-END
    cards = [
        Card("DATE-BEG", _iso_utc(start_utc), "UTC start of row 0 exposure"),
        Card("DATE-AVG", _iso_utc(middle_utc), "UTC middle of row 0 exposure"),
        Card("MJD-OBS", mjd_utc(start_utc), "[d] MJD (UTC) of row 0 start"),
        Card("MJD-AVG", mjd_utc(middle_utc), "[d] MJD (UTC) of row 0 mid-exposure"),
        Card("MJD-END", mjd_utc(end_utc), "[d] MJD (UTC) of row 0 end"),
    ]
    if site is not None and target is not None:
        row = middle_image_row(image_rows)
        instant = bjd_instant(start_utc, exposure_s, line_period_us=line_period_us,
                              image_row=row, bin_y=bin_y)
        cards.append(Card("BJD_TDB", bjd_tdb(instant, site, target),
                          f"[d] mid-exposure of image row {row} ({time_source})"))
    return cards


def middle_image_row(image_rows: int) -> int:
    """The image row at the frame's middle; of two middle rows, the upper (1023 of 2048)."""
    if image_rows < 1:
        raise ValueError(f"a frame has at least one row, not {image_rows}")
    return (image_rows - 1) // 2


def bjd_instant(start_utc: datetime, exposure_s: float, *, line_period_us: float,
                image_row: int, bin_y: int) -> datetime:
    """The UTC instant BJD_TDB is computed for: the mid-exposure of `image_row`.

    Image row k sums sensor rows FIRSTROW + k*bin_y ... FIRSTROW + k*bin_y + bin_y - 1, which
    start k*bin_y ... k*bin_y + bin_y - 1 line periods after row 0 (sensor row FIRSTROW, the
    DATE-OBS instant) and each integrate `exposure_s`. The instant is the mean of their
    mid-exposures: row 0's start + (k*bin_y + (bin_y - 1)/2) line periods + exposure/2,
    rounded to the microsecond.
    """
    if bin_y < 1:
        raise ValueError(f"binning must be at least 1, not {bin_y}")
    lines = image_row * bin_y + (bin_y - 1) / 2
    return start_utc + timedelta(seconds=lines * line_period_us * 1e-6 + exposure_s / 2)


def bjd_tdb(moment_utc: datetime, site: Site, target: Target) -> float:
    """The barycentric Julian date (TDB) at which light reaching `site` at `moment_utc` from
    `target` passed the Solar System barycentre (Roemer delay and TDB; a float JD holds it
    to some 40 us)."""
    location = EarthLocation.from_geodetic(lon=site.longitude_deg * u.deg,
                                           lat=site.latitude_deg * u.deg,
                                           height=site.elevation_m * u.m)
    coord = SkyCoord(ra=target.ra_j2000_deg * u.deg, dec=target.dec_j2000_deg * u.deg,
                     frame="icrs")
    with _ASTROPY_LOCK, warnings.catch_warnings():
        for category, message in _BEYOND_TABLES_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        moment = Time(_iso_utc(moment_utc), format="isot", scale="utc", location=location)
        delay = moment.light_travel_time(coord, kind="barycentric", ephemeris=EPHEMERIS)
        barycentric = moment.tdb + delay
        return float(barycentric.jd1 + barycentric.jd2)


def mjd_utc(moment: datetime) -> float:
    """The UTC modified Julian date of `moment`, from its whole microseconds.

    Days of 86400 s, as DATE-OBS counts them (a datetime has no 23:59:60). A float MJD
    resolves 0.6 us today, so the value read back rounds to the same microsecond.
    """
    microseconds = (moment - MJD_EPOCH) // timedelta(microseconds=1)
    return microseconds / _MICROSECONDS_PER_DAY  # int / int: correctly rounded


def _iso_utc(moment: datetime) -> str:
    # As timing.iso_utc (DATE-OBS's format); not imported, so that timing.py may import us.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
