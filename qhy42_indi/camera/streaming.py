"""Live video as INDI properties: libindi's streaming set, the stream on CCD1, SER recording.

The properties are those of libindi's StreamManager, in its order (xml/qhy42_stream_sk.xml,
group Streaming): CCD_VIDEO_STREAM, STREAM_DELAY, STREAMING_EXPOSURE, FPS, RECORD_STREAM,
RECORD_FILE, RECORD_OPTIONS, CCD_STREAM_FRAME, CCD_STREAM_ENCODER, CCD_STREAM_RECORDER,
LIMITS, and libindi HEAD's STREAM_FULL_DEPTH.

The video stream or a recording puts the camera in live mode (live.py) at STREAMING_EXPOSURE;
live mode ends when neither needs it. Each frame the camera outputs is thinned as libindi does
(STREAMING_DIVISOR_VALUE > 1 drops every Nth frame), cropped to CCD_STREAM_FRAME, then

* recorded, every frame, when a recording runs (recording.py; LIMITS_BUFFER_MAX bounds what
  waits for the disk), each with its start time from timing.py's clock (the GPS head when
  its time is valid, else the host's), shown in EXPOSURE_TIMING while it runs; the
  recording ends at RECORD_OFF, after RECORD_DURATION seconds (RECORD_DURATION_ON) or
  RECORD_FRAME_TOTAL frames (RECORD_FRAME_ON);
* streamed, when CCD_VIDEO_STREAM is on, at most LIMITS_PREVIEW_FPS frames a second: encoded
  (stream_frames.py) and set on CCD1 as `.stream` or `.stream_jpg`. The encoder takes frames
  from a one-frame slot: a frame that arrives while it is busy replaces the waiting one, so
  the camera never waits for it. The connections then drop `stream` frames for a client that
  lags (server/connection.py), and only for that client.

CCD_STREAM_FRAME always holds the size of the frames sent (KStars sizes raw frames by it): it
follows the camera's frame (CCD_FRAME / binning) when live mode starts. Live mode is a state
of the camera's core (core.py): this part asks for START_LIVE and STOP_LIVE, and the core
refuses them (and exposures, and geometry changes) when the state does not allow it.

A recording that ends (RECORD_OFF, its limit, a write error, the end of live mode) is
finished in the background: RECORD_STREAM stays Busy until the frames still buffered are on
disk, and no command waits for the disk meanwhile. A write error (disk full) stops it at
once, and the file keeps every frame written before (recording.py); the Alert says why and
how many frames were kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from qhy42_indi.backends.base import BackendError, Frame, Lifecycle, LiveFrame
from qhy42_indi.camera.core import CameraCore, Refused, Request
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.camera.live import LiveSession
from qhy42_indi.camera.recording import RecordingResult, SerRecording, expand_record_path
from qhy42_indi.camera.stream_frames import StreamWindow, crop, encode_stream_frame, needs_work
from qhy42_indi.camera.upload import UploadError
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value
from qhy42_indi.tasks import TaskGroup, cancel_and_wait, start_task

log = logging.getLogger(__name__)

STATS_PERIOD_S = 0.5  # FPS and STREAM_DELAY updates, at most this often
MEBIBYTE = 1024 * 1024
# A frame may come this fraction of the preview interval early and still count as due, so a
# limit equal to the camera's rate keeps every frame despite arrival jitter.
PREVIEW_SLACK = 0.25


class FrameTimes(Protocol):
    """When a live frame began, from the clock the device trusts (timing.py)."""

    def frame_start(self, frame: Frame) -> datetime: ...

    def show_frame_times(self, frame: Frame, *, publish_gps: bool) -> None: ...


class Streaming:
    def __init__(
        self,
        device: PropertyDevice,
        core: CameraCore,
        backend: Lifecycle,
        session: LiveSession,
        frame_times: FrameTimes,
        *,
        filter_name: Callable[[], str] = str,
    ) -> None:
        self._device = device
        self._filter_name = filter_name
        self._core = core
        self._frame_times = frame_times
        self._backend = backend
        self._session = session
        session.listeners.append(self)
        self._streaming = False
        self._recording: SerRecording | None = None
        self._record_limit: tuple[str, float] | None = None
        self._record_started_s = 0.0
        self._record_accepted = 0
        self._finishing = TaskGroup("recording")
        self._pending: NDArray[Any] | None = None
        self._wake = asyncio.Event()
        self._encoder: asyncio.Task[None] | None = None
        self._divider = 0
        self._next_preview_s = -math.inf
        self._next_stats_s = -math.inf
        self._delay_s = 0.0
        self._next_timing_s = -math.inf
        self.frames_published = 0
        self.frames_replaced = 0  # stream frames the encoder was too busy for

    def handlers(self) -> dict[str, Handler]:
        return {
            "CCD_VIDEO_STREAM": self._on_video_stream,
            "STREAMING_EXPOSURE": self._on_streaming_exposure,
            "RECORD_STREAM": self._on_record_stream,
            "RECORD_FILE": self._on_record_file,
            "RECORD_OPTIONS": self._on_record_options,
            "CCD_STREAM_FRAME": self._on_stream_frame,
        }

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def recording(self) -> bool:
        return self._recording is not None

    # ---- commands ------------------------------------------------------------------------

    async def _on_video_stream(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        on = proposed["STREAM_ON"] is SwitchState.ON
        if on == self._streaming:
            self._device.update(vector.name)
            return
        if not on:
            self._streaming = False
            self._pending = None
            vector.set_values(proposed)
            self._device.update(vector.name, PropertyState.IDLE)
            await self._stop_live_if_unused()
            return
        if not await self._ensure_live(vector.name):
            return
        self._streaming = True
        self._next_preview_s = -math.inf
        if self._encoder is None or self._encoder.done():
            self._encoder = start_task(self._encode_frames(), "stream-encoder")
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.BUSY)

    async def _on_streaming_exposure(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if self._session.active:
            try:
                await self._session.set_exposure(float(proposed["STREAMING_EXPOSURE_VALUE"]))
            except BackendError as error:
                self._device.alert(vector.name, f"Cannot change the exposure: {error}")
                return
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_record_stream(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        chosen = next(name for name, state in proposed.items() if state is SwitchState.ON)
        if chosen == "RECORD_OFF":
            if self._recording is None:
                vector.set_values(proposed)
                self._device.update(vector.name, PropertyState.IDLE)
            else:
                await self._end_recording()
            return
        if self._finishing.running:
            self._device.update(vector.name, message="[WARNING] The last recording is still "
                                "being written: try again in a moment")
            return
        if self._recording is not None:
            self._device.update(vector.name, message="[WARNING] A recording is running: "
                                "stop it before starting another")
            return
        await self._start_recording(vector, proposed, chosen)

    async def _on_record_file(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if "/" in str(proposed["RECORD_FILE_NAME"]):
            self._device.alert(vector.name, "The directory separator (/) is not allowed in "
                               "the file name: put directories in RECORD_FILE_DIR")
            return
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_record_options(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if self._refused_while_recording(vector.name):
            return
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_stream_frame(
        self, vector: PropertyVector, proposed: dict[str, Value], message: NewVector
    ) -> None:
        if self._refused_while_recording(vector.name):
            return
        width = round(vector.number("WIDTH").max or 1)
        height = round(vector.number("HEIGHT").max or 1)
        window = StreamWindow(*(round(float(proposed[n])) for n in ("X", "Y", "WIDTH", "HEIGHT")))
        self._set_window(window.fitted(width, height))
        self._device.update(vector.name, PropertyState.OK)

    def _refused_while_recording(self, name: str) -> bool:
        if self._recording is None:
            return False
        self._device.alert(name, "A recording is running: stop it first")
        return True

    # ---- live mode -----------------------------------------------------------------------

    async def _ensure_live(self, name: str) -> bool:
        """Live mode on; False (and an Alert on `name`) if the camera refused it."""
        if self._session.active:
            return True
        exposure_s = float(self._device.props["STREAMING_EXPOSURE"].value(
            "STREAMING_EXPOSURE_VALUE"))
        try:
            settings = await self._backend.settings()
            await self._core.transition(Request.START_LIVE,
                                        work=lambda: self._session.start(exposure_s))
        except Refused as refused:
            self._device.alert(name, refused.reason)
            return False
        except BackendError as error:
            self._device.alert(name, f"Cannot start live video: {error}")
            return False
        start = self._session.start_info
        assert start is not None
        self._divider = 0
        self._fit_window(settings.roi.width // settings.bin_x,
                         settings.roi.height // settings.bin_y)
        self._device.say(f"Live video: {start.frames_per_s:.1f} frames/s at "
                         f"{start.exposure_s:.6f} s")
        return True

    async def _stop_live_if_unused(self) -> None:
        if not self._streaming and self._recording is None and self._session.active:
            # Refused: the camera left live mode meanwhile (gone, disconnected)
            with contextlib.suppress(Refused):
                await self._core.transition(Request.STOP_LIVE)
            self._publish_stats(force=True)

    def live_stopped(self, failure: str | None) -> None:
        self._pending = None
        if failure is None:
            return
        if self._streaming:
            self._streaming = False
            self._device.props["CCD_VIDEO_STREAM"].set_values(
                {"STREAM_ON": SwitchState.OFF, "STREAM_OFF": SwitchState.ON})
            self._device.alert("CCD_VIDEO_STREAM", f"Live video stopped: {failure}")
        if self._recording is not None:
            self._end_recording_soon()
        self._publish_stats(force=True)

    # ---- frames --------------------------------------------------------------------------

    def live_frame(self, live: LiveFrame) -> None:
        if live.burst:
            return  # science frames: burst.py
        now_s = time.monotonic()
        self._publish_stats(now_s=now_s)
        if not self._streaming and self._recording is None:
            return
        self._divider += 1
        divisor = round(float(self._device.props["STREAMING_EXPOSURE"].value(
            "STREAMING_DIVISOR_VALUE")))
        if divisor > 1 and self._divider % divisor == 0:
            return
        source = live.frame.pixels
        pixels = crop(source, self._window_for(source.shape[1], source.shape[0]))
        if self._recording is not None:
            self._record(pixels, self._frame_times.frame_start(live.frame), now_s)
            if now_s >= self._next_timing_s:
                self._next_timing_s = now_s + STATS_PERIOD_S
                self._frame_times.show_frame_times(live.frame, publish_gps=False)
        if self._streaming and self._preview_due(now_s):
            if self._pending is not None:
                self.frames_replaced += 1
            self._pending = pixels
            self._wake.set()

    def _preview_due(self, now_s: float) -> bool:
        limit = float(self._device.props["LIMITS"].value("LIMITS_PREVIEW_FPS"))
        interval_s = 1.0 / max(limit, 1e-3)
        if now_s < self._next_preview_s - PREVIEW_SLACK * interval_s:
            return False
        self._next_preview_s = max(self._next_preview_s + interval_s, now_s - interval_s)
        return True

    async def _encode_frames(self) -> None:
        props = self._device.props
        while True:
            await self._wake.wait()
            self._wake.clear()
            pixels, self._pending = self._pending, None
            if pixels is None:
                continue
            mjpeg = props["CCD_STREAM_ENCODER"].is_on("MJPEG")
            full_depth = props["STREAM_FULL_DEPTH"].is_on("FULL_DEPTH_16BIT")
            began_s = time.monotonic()
            try:
                if needs_work(pixels, mjpeg, full_depth):
                    data, fmt = await asyncio.to_thread(
                        encode_stream_frame, pixels, mjpeg=mjpeg, full_depth=full_depth)
                else:
                    data, fmt = encode_stream_frame(pixels, mjpeg=mjpeg, full_depth=full_depth)
            except Exception:  # a frame that cannot be encoded is skipped, not fatal
                log.exception("stream frame encoding failed")
                continue
            if self._streaming:
                self._publish_frame(data, fmt)
                self._delay_s = time.monotonic() - began_s

    def _publish_frame(self, data: bytes | NDArray[Any], fmt: str) -> None:
        payload = memoryview(data) if isinstance(data, bytes) else (
            data.reshape(-1).view(np.uint8).data)
        ccd1 = self._device.props["CCD1"]
        ccd1.set_blob("CCD1", payload, fmt)
        self._device.update("CCD1", PropertyState.OK)
        ccd1.set_blob("CCD1", None, "")  # the messages keep the frame; the vector must not
        self.frames_published += 1

    def _publish_stats(self, *, now_s: float | None = None, force: bool = False) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        if not force and now_s < self._next_stats_s:
            return
        self._next_stats_s = now_s + STATS_PERIOD_S
        active = self._session.active
        rate = self._session.rate
        self._device.props["FPS"].set_values({
            "EST_FPS": round(rate.instant(), 2) if active else 0.0,
            "AVG_FPS": round(rate.average(), 2) if active else 0.0,
        })
        self._device.update("FPS", PropertyState.OK if active else PropertyState.IDLE)
        if self._streaming:
            self._device.props["STREAM_DELAY"].set_values(
                {"STREAM_DELAY_TIME": round(self._delay_s, 4)})
            self._device.update("STREAM_DELAY", PropertyState.OK)

    # ---- the stream frame ----------------------------------------------------------------

    def _window_for(self, width: int, height: int) -> StreamWindow:
        vector = self._device.props["CCD_STREAM_FRAME"]
        if (vector.number("WIDTH").max, vector.number("HEIGHT").max) != (width, height):
            self._fit_window(width, height)  # the camera's frame changed size
        return self._window()

    def _fit_window(self, width: int, height: int) -> None:
        """Set CCD_STREAM_FRAME's limits to a width x height frame, keeping the window if it
        still fits (else the whole frame), and publish it with its limits."""
        vector = self._device.props["CCD_STREAM_FRAME"]
        limits_changed = (vector.number("WIDTH").max, vector.number("HEIGHT").max) != (
            width, height)
        vector.set_limits("X", 0, width - 1)
        vector.set_limits("Y", 0, height - 1)
        vector.set_limits("WIDTH", 1, width)
        vector.set_limits("HEIGHT", 1, height)
        window = StreamWindow.full(width, height) if limits_changed else self._window().fitted(
            width, height)
        self._set_window(window)
        self._device.update(vector.name, PropertyState.OK, with_limits=True)

    def _window(self) -> StreamWindow:
        values = self._device.props["CCD_STREAM_FRAME"].values()
        return StreamWindow(*(round(float(values[n])) for n in ("X", "Y", "WIDTH", "HEIGHT")))

    def _set_window(self, window: StreamWindow) -> None:
        self._device.props["CCD_STREAM_FRAME"].set_values(
            {"X": window.x, "Y": window.y, "WIDTH": window.width, "HEIGHT": window.height})

    # ---- recording -----------------------------------------------------------------------

    async def _start_recording(
        self, vector: PropertyVector, proposed: dict[str, Value], chosen: str
    ) -> None:
        props = self._device.props
        files, options = props["RECORD_FILE"], props["RECORD_OPTIONS"]
        try:
            path = expand_record_path(str(files.value("RECORD_FILE_DIR")),
                                      str(files.value("RECORD_FILE_NAME")), datetime.now(UTC),
                                      filter_name=self._filter_name())
            recording = SerRecording(
                path,
                max_buffer_bytes=int(float(props["LIMITS"].value("LIMITS_BUFFER_MAX")) * MEBIBYTE),
                instrument=self._device.name,
                telescope=str(props["ACTIVE_DEVICES"].value("ACTIVE_TELESCOPE")),
            )
            await recording.open()
        except UploadError as error:
            self._device.alert(vector.name, str(error))
            return
        if not await self._ensure_live(vector.name):
            await recording.abort()
            return
        limits = {
            "RECORD_DURATION_ON": ("duration", float(options.value("RECORD_DURATION"))),
            "RECORD_FRAME_ON": ("frames", float(options.value("RECORD_FRAME_TOTAL"))),
        }
        self._record_limit = limits.get(chosen)
        self._record_started_s = time.monotonic()
        self._record_accepted = 0
        self._recording = recording
        vector.set_values(proposed)
        self._device.update(vector.name, PropertyState.BUSY)
        for recovered in recording.recovered:  # left by a crash: finished now
            self._device.say(f"An interrupted recording was finished: {recovered.frames_kept} "
                             f"frames in {recovered.path}", "WARNING")
        self._device.say(f"Recording to {path}")

    def _record(self, pixels: NDArray[Any], started: datetime, now_s: float) -> None:
        recording = self._recording
        assert recording is not None
        kind, value = self._record_limit or ("", 0.0)
        if kind == "duration" and now_s - self._record_started_s >= value:
            self._end_recording_soon()
            return
        if recording.offer(pixels, started):
            self._record_accepted += 1
        if recording.failure is not None or (
                kind == "frames" and self._record_accepted >= value):
            self._end_recording_soon()

    def _end_recording_soon(self) -> None:
        """End the recording from a frame callback: the rest runs in the background."""
        self._finishing.start(self._end_recording(), "end")

    async def _end_recording(self, *, leave_live: bool = True) -> None:
        """Stop taking frames now; the file is finished in the background. With leave_live,
        live mode ends too if nothing else needs it (not from inside a transition: the core
        is ending live mode itself then)."""
        recording, self._recording = self._recording, None
        if recording is None:
            return
        vector = self._device.props["RECORD_STREAM"]
        off: dict[str, Value] = {name: SwitchState.OFF for name in vector.values()}
        vector.set_values(off | {"RECORD_OFF": SwitchState.ON})
        self._device.update(vector.name, PropertyState.BUSY,
                            f"[INFO] Finishing the recording {recording.path.name}")
        self._finishing.start(self._finish(recording), recording.path.name)
        if leave_live:
            await self._stop_live_if_unused()

    async def _finish(self, recording: SerRecording) -> None:
        try:
            result = await recording.finish()
        except (UploadError, OSError) as error:
            self._device.alert("RECORD_STREAM", f"Recording failed: {error}")
            return
        self._report(result)

    def _report(self, result: RecordingResult) -> None:
        skipped = (f", {result.frames_skipped} not recorded (buffer full or after the "
                   "failure)" if result.frames_skipped else "")
        if result.failure is None:
            self._device.update("RECORD_STREAM", PropertyState.IDLE)
            self._device.say(f"Recorded {result.frames_kept} frames to {result.path}{skipped}")
        elif result.path is not None:
            self._device.alert("RECORD_STREAM", f"Recording stopped: {result.failure}; the "
                               f"{result.frames_kept} frames written before are kept in "
                               f"{result.path}{skipped}")
        else:
            self._device.alert("RECORD_STREAM", f"Recording failed: {result.failure}")

    # ---- connection ----------------------------------------------------------------------

    async def close(self, *, wait_for_disk: bool = True) -> None:
        """Stop streaming and recording (the recording is kept; with wait_for_disk, until
        its file is finished)."""
        self._streaming = False
        self._pending = None
        await self._end_recording(leave_live=False)
        if wait_for_disk:
            await self._finishing.wait()
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            await cancel_and_wait(encoder)
        props = self._device.props
        props["CCD_VIDEO_STREAM"].set_values({"STREAM_ON": SwitchState.OFF,
                                              "STREAM_OFF": SwitchState.ON})
        for name in ("CCD_VIDEO_STREAM", "RECORD_STREAM", "FPS", "STREAM_DELAY"):
            props[name].state = PropertyState.IDLE
