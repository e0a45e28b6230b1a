"""Exposures as INDI properties: CCD_EXPOSURE, abort, fast exposure, FITS header, uploads.

Implements the exposure host (exposure.py) on the device's properties: the wire order is
libindi's, and each frame becomes one FITS, one base64, one local file (delivery.py). A
failed local save is an Alert on CCD_EXPOSURE that names the reason; in Both mode the frame
still goes to clients. Whether an exposure may start is the camera core's answer (core.py):
not while live video runs, not while the camera is away. The HDR merge and the FITS are
built in worker threads: nothing that costs milliseconds runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from qhy42_indi import __version__
from qhy42_indi.backends.base import CameraGone, ExposureControl, ExposureStart, Frame, GpioControl
from qhy42_indi.camera.core import CameraCore
from qhy42_indi.camera.delivery import (
    UploadMode,
    encode_off_loop,
    prepare_fits_buffer,
    save_off_loop,
)
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.exposure import DeliveryError, ExposureController, TriggerWait
from qhy42_indi.camera.fits import (
    Card,
    EncodedFrame,
    FrameMetadata,
    FrameType,
    custom_card,
    standard_cards,
)
from qhy42_indi.camera.frame_tap import DeliveredFrame, FrameTap
from qhy42_indi.camera.hdr import Splice, merge_hdr, splice_cards
from qhy42_indi.camera.settings import SensorSettings
from qhy42_indi.camera.snooping import FrameSky, header_cards
from qhy42_indi.camera.timecards import Site
from qhy42_indi.camera.timing import FrameTiming
from qhy42_indi.camera.upload import UploadError
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.snoop.cards import place_snoop_cards
from qhy42_indi.snoop.state import Snapshot

log = logging.getLogger(__name__)

FRAME_TYPES = {
    "FRAME_LIGHT": FrameType.LIGHT,
    "FRAME_BIAS": FrameType.BIAS,
    "FRAME_DARK": FrameType.DARK,
    "FRAME_FLAT": FrameType.FLAT,
}
CLEAR_KEYWORDS = "INDI_CLEAR"

# When row 0 of a frame began (UTC) and the timing cards that say how it is known; timing.py
# provides it (GPS head or host clock), called before the frame is processed.
FrameTimer = Callable[[Frame], FrameTiming]


class Capture:
    def __init__(
        self,
        device: PropertyDevice,
        core: CameraCore,
        backend: ExposureControl,
        triggers: GpioControl,
        settings: SensorSettings,
        *,
        set_temperature_c: Callable[[], float | None],
        frame_timer: FrameTimer,
        trigger: Callable[[], TriggerWait | None],
        camera_gone: Callable[[CameraGone], None],
        snooped: Callable[[], Snapshot] = Snapshot,
        site: Site | None = None,
        polling_period_s: Callable[[], float],
        frames: FrameTap,
    ) -> None:
        self._device = device
        self._frames = frames
        self._snooped = snooped
        self._site = site
        self._settings = settings
        self._set_temperature_c = set_temperature_c
        self._frame_timer = frame_timer
        self.exposures = ExposureController(core, backend, triggers, self, trigger, camera_gone,
                                            polling_period_s)
        self.custom_cards: dict[str, Card] = {}
        self.frames_delivered = 0
        self.exposure_in_flight_s = 0.0  # the length asked of the exposure now counting down
        self._splice: Splice | None = None

    def handlers(self) -> dict[str, Handler]:
        return {
            "CCD_EXPOSURE": self._on_exposure,
            "CCD_ABORT_EXPOSURE": self._on_abort,
            "FITS_HEADER": self._on_fits_header,
            "UPLOAD_MODE": self._on_upload_mode,
        }

    # ---- commands ------------------------------------------------------------------------

    async def _on_exposure(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        exposure_s = float(proposed["CCD_EXPOSURE_VALUE"])
        if self._frame_type() is FrameType.BIAS:
            exposure_s = float(vector.number("CCD_EXPOSURE_VALUE").min or exposure_s)
        props = self._device.props
        count = 1
        if props["CCD_FAST_TOGGLE"].is_on("INDI_ENABLED"):
            count = max(1, int(float(props["CCD_FAST_COUNT"].value("FRAMES"))))
        await self.exposures.start(exposure_s, count)

    async def _on_abort(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        await self.exposures.abort()
        vector.set_values({"ABORT": SwitchState.OFF})
        self._device.update(vector.name, PropertyState.OK)
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": 0})
        self._device.update("CCD_EXPOSURE", PropertyState.IDLE)
        self._end_fast_count()

    async def _on_fits_header(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        name = str(proposed["KEYWORD_NAME"]).strip().upper()
        if name == CLEAR_KEYWORDS:
            self.custom_cards.clear()
            self._device.update(vector.name, PropertyState.OK)
            return
        try:
            card = custom_card(name, str(proposed["KEYWORD_VALUE"]),
                               str(proposed["KEYWORD_COMMENT"]))
        except ValueError as error:
            self._device.alert(vector.name, f"FITS keyword refused: {error}")
            return
        # A keyword replaces its earlier value; comments accumulate.
        key = card.keyword if card.keyword != "COMMENT" else f"COMMENT {len(self.custom_cards)}"
        self.custom_cards[key] = card
        self._device.update(vector.name, PropertyState.OK)

    async def _on_upload_mode(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)
        if vector.is_on(UploadMode.CLIENT):
            self._device.delete(["CCD_FILE_PATH"])
        else:
            self._device.define(["CCD_FILE_PATH"])

    # ---- the exposure host ---------------------------------------------------------------

    def exposure_started(self, requested_s: float, start: ExposureStart) -> None:
        self.exposure_in_flight_s = requested_s
        prepare_fits_buffer()  # while the camera exposes, nothing waits on the other cores
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": requested_s})
        self._device.update("CCD_EXPOSURE", PropertyState.BUSY)

    def exposure_waiting(self, requested_s: float, reason: str) -> None:
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": requested_s})
        self._device.update("CCD_EXPOSURE", PropertyState.BUSY, reason)

    def exposure_progress(self, left_s: float) -> None:
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": left_s})
        self._device.update("CCD_EXPOSURE", PropertyState.BUSY)

    def frames_left(self, count: int) -> None:
        self._device.props["CCD_FAST_COUNT"].set_values({"FRAMES": count})
        self._device.update("CCD_FAST_COUNT", PropertyState.BUSY)

    def exposure_done(self) -> None:
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": 0})
        self._device.update("CCD_EXPOSURE", PropertyState.OK)
        self._end_fast_count()

    def exposure_failed(self, reason: str) -> None:
        self._device.props["CCD_EXPOSURE"].set_values({"CCD_EXPOSURE_VALUE": 0})
        self._device.alert("CCD_EXPOSURE", f"Exposure failed: {reason}")
        self._end_fast_count()

    def _end_fast_count(self) -> None:
        fast = self._device.props["CCD_FAST_COUNT"]
        if fast.state is PropertyState.BUSY:
            fast.set_values({"FRAMES": 0})
            self._device.update("CCD_FAST_COUNT", PropertyState.IDLE)

    async def deliver(self, frame: Frame, more_cards: Sequence[Card] = ()) -> None:
        """Build and send the frame. `more_cards` go last (a burst frame's cards)."""
        props = self._device.props
        timing = self._frame_timer(frame)
        start_utc = timing.start_utc
        sky = self._frame_sky()
        pixels, extra_cards = frame.pixels, []
        if self._settings.hdr_merged and frame.bit_depth == 16:
            pixels, splice = await asyncio.to_thread(
                merge_hdr, frame, self._settings.merge_columns, self._splice)
            self._splice = splice
            extra_cards = splice_cards(splice)
        mode = self._upload_mode()
        saving = mode in (UploadMode.LOCAL, UploadMode.BOTH)
        # A frame no INDI client takes (none wants the BLOB, say only Alpaca or the page
        # looks) is not built as FITS: the front-ends take the pixels from the frame tap.
        to_clients = mode in (UploadMode.CLIENT, UploadMode.BOTH) and (
            self._device.blob_wanted("CCD1"))
        compress = props["CCD_COMPRESSION"].is_on("INDI_ENABLED")
        metadata = self._metadata(frame, start_utc, sky)
        header = _HeaderJob(sky=sky, start_utc=start_utc, frame=frame, time_source=timing.source,
                            timer_cards=tuple(timing.cards), metadata=metadata,
                            after=(*extra_cards, *more_cards))
        # One worker call for the header and the FITS: each hand-off costs a wake-up.
        cards, encoded = await encode_off_loop(
            pixels, header.cards, compress=compress if saving or to_clients else None)
        failure = None
        if encoded is not None:
            log.debug("frame %d: %dx%d, %d bytes of %s", frame.sequence, pixels.shape[1],
                      pixels.shape[0], len(encoded.data), encoded.format)
            if saving:
                failure = await self._save(encoded)
            if to_clients:
                self._send_blob(encoded)
                # The connections' writers send it now; the rest of the frame's work (the
                # frame tap, the state change, CCD_EXPOSURE Ok) follows it on the wire anyway.
                await asyncio.sleep(0)
        self.frames_delivered += 1
        self._frames.offer(DeliveredFrame(
            device=self._device.name, frame=frame, pixels=pixels, fits=encoded,
            cards=tuple(cards), start_utc=start_utc, time_source=timing.source,
            frame_type=metadata.frame_type))
        if failure is not None:
            raise DeliveryError(failure)

    async def _save(self, encoded: EncodedFrame) -> str | None:
        upload = self._device.props["UPLOAD_SETTINGS"]
        try:
            path = await save_off_loop(str(upload.value("UPLOAD_DIR")),
                                       str(upload.value("UPLOAD_PREFIX")), encoded)
        except UploadError as error:
            self._device.alert("CCD_FILE_PATH", str(error))
            return str(error)
        self._device.props["CCD_FILE_PATH"].set_values({"FILE_PATH": str(path)})
        self._device.update("CCD_FILE_PATH", PropertyState.OK)
        return None

    def _send_blob(self, encoded: EncodedFrame) -> None:
        ccd1 = self._device.props["CCD1"]
        ccd1.set_blob("CCD1", encoded.data, encoded.format)
        self._device.update("CCD1", PropertyState.OK)
        # The vector must not keep a frame alive after it went out.
        ccd1.set_blob("CCD1", None, "")

    # ---- FITS metadata -------------------------------------------------------------------

    def _frame_type(self) -> FrameType:
        on = self._device.props["CCD_FRAME_TYPE"].on_switches()
        return FRAME_TYPES[on[0]] if on else FrameType.LIGHT

    def _upload_mode(self) -> str:
        on = self._device.props["UPLOAD_MODE"].on_switches()
        return on[0] if on else UploadMode.CLIENT

    def _frame_sky(self) -> FrameSky:
        """What the header needs of the snooped devices and the site, taken now."""
        scope = self._device.props["SCOPE_INFO"]
        snapshot = self._snooped()
        # The camera's SCOPE_INFO wins; without it the mount's TELESCOPE_INFO, as libindi.
        focal = float(scope.value("FOCAL_LENGTH")) or snapshot.telescope_focal_length_mm
        aperture = float(scope.value("APERTURE")) or snapshot.telescope_aperture_mm
        return FrameSky(snapshot=snapshot, site=self._site,
                        light_frame=self._frame_type() is FrameType.LIGHT,
                        focal_length_mm=focal, aperture_mm=aperture)

    def _metadata(self, frame: Frame, start_utc: datetime, sky: FrameSky) -> FrameMetadata:
        props = self._device.props
        info = self._settings.info
        assert info is not None
        target = self._set_temperature_c()
        return FrameMetadata(
            device_name=self._device.name,
            exposure_s=frame.exposure_s,
            start_time=start_utc.astimezone(UTC),
            pixel_size_x_um=info.pixel_width_um,
            pixel_size_y_um=info.pixel_height_um,
            frame_type=self._frame_type(),
            telescope_name=str(props["ACTIVE_DEVICES"].value("ACTIVE_TELESCOPE")),
            bin_x=frame.bin_x,
            bin_y=frame.bin_y,
            ccd_temperature_c=round(frame.sensor_temperature_c, 2),
            set_temperature_c=target,
            gain=frame.gain,
            offset=frame.offset,
            read_mode=frame.read_mode.name,
            focal_length_mm=sky.focal_length_mm or 0.0,
            aperture_mm=sky.aperture_mm or 0.0,
            driver_name="qhy42-indi",
            driver_version=__version__,
            custom_cards=tuple(self.custom_cards.values()),
        )


@dataclass(frozen=True, slots=True)
class _HeaderJob:
    """What a frame's header is made of, taken on the loop; `cards()` is blocking (the snooped
    and time cards compute positions and times) and runs in the encode's worker thread."""

    sky: FrameSky
    start_utc: datetime
    frame: Frame
    time_source: str
    timer_cards: tuple[Card, ...]  # the frame timer's, first of the custom cards
    metadata: FrameMetadata  # its custom cards: the client's (FITS_HEADER)
    after: tuple[Card, ...]  # the HDR splice's and a burst frame's, last

    def cards(self) -> list[Card]:
        frame = self.frame
        snooped, time_cards = header_cards(
            self.sky, self.start_utc, frame.exposure_s, line_period_us=frame.line_period_us,
            image_rows=frame.height, bin_y=frame.bin_y, time_source=self.time_source)
        metadata = replace(self.metadata, custom_cards=(
            *self.timer_cards, *time_cards, *self.metadata.custom_cards))
        return [*place_snoop_cards(standard_cards(metadata), snooped), *self.after]
