"""Snooping as an INDI::CCD does it: the mount, rotator, focuser, filter wheel and sky-quality
meter named in ACTIVE_DEVICES, read for every frame's FITS header.

ACTIVE_DEVICES says which device plays which role; the snooped values (snoop/state.py) keep
the last values of the properties INDI::CCD reads from them. They come in two ways, both at
once if both are there: through indiserver when the daemon runs as its driver (the hub asks
indiserver for them and hands over what it forwards), and from the INDI server named in
`[snoop] server` / `--snoop-server` (snoop/client.py, started by app.py). Changing
ACTIVE_DEVICES changes what is asked for at once; a device that is absent or goes away
leaves its cards out and never delays or fails an exposure.

`header_cards` is what a frame gets from them, computed in a worker thread (the J2000
conversion and the barycentric time take milliseconds): the snooped cards in libindi's
places, and the FITS 4.0 time cards with BJD_TDB when the target (the mount's pointing) and
the site (`[site]`, else the mount's GEOGRAPHIC_COORD) are known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.fits import Card
from qhy42_indi.camera.timecards import Site, Target, time_cards
from qhy42_indi.indi.messages import IndiMessage, NewVector, PropertyState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.snoop.cards import jnow_to_j2000, snoop_cards
from qhy42_indi.snoop.state import ActiveDevices, Snapshot, SnoopedValues

SnoopPair = tuple[str, str]


class SnoopHub(Protocol):
    """Snooping through an upstream indiserver (server/hub.py)."""

    def snooped(self, sink: Callable[[IndiMessage], None]) -> Callable[[], None]: ...

    def want_snooped(self, owner: str, pairs: frozenset[SnoopPair]) -> None: ...


class Snooping:
    def __init__(self, device: PropertyDevice) -> None:
        self._device = device
        self.values = SnoopedValues(self._active())

    def handlers(self) -> dict[str, Handler]:
        return {"ACTIVE_DEVICES": self._on_active_devices}

    def bind(self, hub: SnoopHub) -> None:
        """Snoop through indiserver too, when the hub has an upstream link."""
        hub.snooped(self.values.feed)

        def ask() -> None:
            hub.want_snooped(self._device.name, frozenset(self.values.wanted()))

        self.values.add_wanted_listener(ask)
        ask()

    def snapshot(self) -> Snapshot:
        return self.values.snapshot()

    def filter_name(self) -> str:
        return self.snapshot().filter_name or ""

    async def _on_active_devices(self, vector: PropertyVector, proposed: dict[str, Value],
                                 message: NewVector) -> None:
        vector.set_values(proposed)
        self.values.set_devices(self._active())
        self._device.update(vector.name, PropertyState.OK)

    def _active(self) -> ActiveDevices:
        values = self._device.props["ACTIVE_DEVICES"].values()
        return ActiveDevices.from_values({name: str(value) for name, value in values.items()})


@dataclass(frozen=True, slots=True)
class FrameSky:
    """What a frame's header needs besides the camera: taken on the event loop, cheaply."""

    snapshot: Snapshot
    site: Site | None  # [site]; None: the mount's, if it says
    light_frame: bool
    focal_length_mm: float | None  # SCOPE_INFO; None or 0: not set
    aperture_mm: float | None


def header_cards(sky: FrameSky, start_utc: datetime, exposure_s: float, *,
                 line_period_us: float, image_rows: int, bin_y: int,
                 time_source: str) -> tuple[list[Card], list[Card]]:
    """(snooped cards, time cards) of one frame. Blocking: run it in a worker thread."""
    end_utc = start_utc + timedelta(seconds=exposure_s)  # libindi: when the header is written
    snooped = snoop_cards(sky.snapshot, end_utc, focal_length_mm=sky.focal_length_mm,
                          aperture_mm=sky.aperture_mm, light_frame=sky.light_frame)
    middle = start_utc + timedelta(seconds=exposure_s / 2)
    times = time_cards(start_utc, exposure_s, line_period_us=line_period_us,
                       image_rows=image_rows, bin_y=bin_y, time_source=time_source,
                       site=sky.site or _mount_site(sky.snapshot),
                       target=_target(sky.snapshot, middle) if sky.light_frame else None)
    return snooped, times


def _target(snapshot: Snapshot, when_utc: datetime) -> Target | None:
    if snapshot.ra_j2000_h is not None and snapshot.dec_j2000_deg is not None:
        return Target(snapshot.ra_j2000_h * 15, snapshot.dec_j2000_deg)
    if snapshot.ra_jnow_h is not None and snapshot.dec_jnow_deg is not None:
        ra_h, dec = jnow_to_j2000(snapshot.ra_jnow_h, snapshot.dec_jnow_deg, when_utc)
        return Target(ra_h * 15, dec)
    return None


def _mount_site(snapshot: Snapshot) -> Site | None:
    if snapshot.latitude_deg is None or snapshot.longitude_deg is None:
        return None
    return Site(snapshot.latitude_deg, snapshot.longitude_deg, snapshot.elevation_m or 0.0)

