"""The live-mode model as plain function calls in camera time: cadence, numbering, output,
burst windows, IDLE and its quirk, anti-RBI (backends/live.py)."""

from __future__ import annotations

import numpy as np

from qhy42_indi.backends.base import frame_head_counter
from qhy42_indi.backends.live import (
    BUFFER_FRAMES,
    OSD_ROWS,
    LiveTimeline,
    Readout,
    burn_osd,
    stamp_frame_head,
)

INTERVAL_S = 0.1
LINE_S = 20e-6


def running(now_s: float = 0.0) -> LiveTimeline:
    timeline = LiveTimeline()
    timeline.begin(now_s, exposure_s=0.05, interval_s=INTERVAL_S, readout_s=0.04,
                   line_period_s=LINE_S)
    return timeline


def drain(timeline: LiveTimeline, now_s: float) -> list[Readout]:
    out = []
    while (readout := timeline.take(now_s)) is not None:
        out.append(readout)
    return out


def test_frames_are_read_out_every_interval_and_numbered_from_one() -> None:
    timeline = running()
    assert timeline.take(0.05) is None
    assert timeline.next_output_s(0.05) == INTERVAL_S
    frames = [timeline.take(k * INTERVAL_S) for k in range(1, 4)]
    assert [f.counter for f in frames if f] == [1, 2, 3]
    assert [round(f.time_s, 9) for f in frames if f] == [0.1, 0.2, 0.3]


def test_a_slow_host_loses_the_oldest_frames_and_the_camera_keeps_its_pace() -> None:
    timeline = running()
    frames = drain(timeline, 2.0)  # 20 readouts, nobody read them
    assert [f.counter for f in frames] == list(range(21 - BUFFER_FRAMES, 21))
    assert timeline.dropped == 20 - BUFFER_FRAMES
    assert timeline.frame_counter(2.0) == 20


def test_reset_restarts_numbering_after_the_frames_already_read_out() -> None:
    timeline = running()
    before = drain(timeline, 0.35)
    timeline.reset_counter(0.35)
    after = drain(timeline, 0.65)
    assert [f.counter for f in before] == [1, 2, 3]
    assert [f.counter for f in after] == [1, 2, 3]


def test_a_new_exposure_retimes_the_sensor_and_skips_one_number() -> None:
    timeline = running()
    drain(timeline, 0.25)  # frames 1, 2
    timeline.retime(0.25, exposure_s=0.2, interval_s=0.2, readout_s=0.04)
    frames = drain(timeline, 0.65)
    assert [f.counter for f in frames] == [4, 5]
    assert [round(f.time_s, 9) for f in frames] == [0.45, 0.65]


def test_idle_stops_output_and_release_restarts_at_number_one() -> None:
    timeline = running()
    drain(timeline, 0.3)
    timeline.enter_idle(0.3)
    assert drain(timeline, 5.0) == []
    assert timeline.next_output_s(5.0) is None
    timeline.release(5.0)
    assert [f.counter for f in drain(timeline, 5.3)] == [1, 2, 3]


def test_a_burst_outputs_the_numbers_strictly_between_start_and_end_once() -> None:
    timeline = running()
    timeline.enter_idle(0.0)
    timeline.set_burst(0.0, True)
    timeline.set_burst_range(0.0, 1, 6)
    timeline.release(1.0)
    frames = drain(timeline, 10.0)
    assert [f.counter for f in frames] == [2, 3, 4, 5]
    assert all(f.burst for f in frames)
    assert timeline.next_output_s(10.0) is None  # the window has passed: quiet
    timeline.enter_idle(10.0)
    timeline.release(10.0)
    assert [f.counter for f in drain(timeline, 20.0)] == [2, 3, 4, 5]


def test_burst_frames_wait_in_the_camera_for_a_slow_host() -> None:
    timeline = running()
    timeline.enter_idle(0.0)
    timeline.set_burst(0.0, True)
    timeline.set_burst_range(0.0, 0, 40)
    timeline.release(0.0)
    assert [f.counter for f in drain(timeline, 60.0)] == list(range(1, 40))


def test_setting_start_end_without_idle_starts_output_at_once() -> None:
    """QHY's note 3: a camera that is not idle outputs the frames still inside the window."""
    timeline = running()
    assert [f.counter for f in drain(timeline, 0.15)] == [1]
    timeline.set_burst(0.15, True)  # no IDLE first
    timeline.set_burst_range(0.15, 0, 100)
    frames = drain(timeline, 0.55)
    assert [(f.counter, f.burst) for f in frames] == [(n, True) for n in (2, 3, 4, 5)]


def test_anti_rbi_makes_every_other_frame_a_flush_frame() -> None:
    timeline = running()
    timeline.set_anti_rbi(0.0, True)
    frames = drain(timeline, 0.45)
    assert [f.exposure_s for f in frames] == [0.05, LINE_S, 0.05, LINE_S]


def test_stop_empties_the_camera() -> None:
    timeline = running()
    timeline.stop()
    assert timeline.take(1.0) is None and timeline.next_output_s(1.0) is None


def test_the_frame_head_holds_the_number_big_endian() -> None:
    pixels = np.zeros((4, 8), dtype=np.uint16)
    stamp_frame_head(pixels, 0x01020304)
    assert pixels.reshape(-1).view(np.uint8)[:4].tolist() == [1, 2, 3, 4]
    assert frame_head_counter(pixels) == 0x01020304
    assert frame_head_counter(np.zeros((1, 2), dtype=np.uint8)) is None


def test_the_osd_burns_digits_into_the_top_rows_only() -> None:
    pixels = np.full((64, 64), 1000, dtype=np.uint16)
    burn_osd(pixels, "42")
    top, rest = pixels[:OSD_ROWS], pixels[OSD_ROWS:]
    assert top.max() == 65535 and (top == 0).any()
    assert (rest == 1000).all()
