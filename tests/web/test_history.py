"""The cooling history: bounded; per period the first reading and the last before the next."""

from __future__ import annotations

from qhy42_indi.web.history import MAX_SAMPLES, SAMPLE_PERIOD_S, CoolingHistory


def test_history_keeps_at_most_its_bound_dropping_the_oldest() -> None:
    history = CoolingHistory(max_samples=5, period_s=1.0)
    for second in range(12):
        history.record(float(second), -float(second), -10.0, 50.0)
    assert len(history) == 5
    assert [s.time_s for s in history.since(0)] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_the_bound_holds_six_hours_of_the_densest_readings() -> None:
    assert MAX_SAMPLES * SAMPLE_PERIOD_S / 2 == 6 * 3600
    history = CoolingHistory()
    readings_per_period = 10
    periods = MAX_SAMPLES // 2 + 50
    for step in range(periods * readings_per_period):
        history.record(step * SAMPLE_PERIOD_S / readings_per_period, 20.0, None, None)
    assert len(history) == MAX_SAMPLES
    kept = history.since(0)
    assert kept[-1].time_s - kept[0].time_s >= 6 * 3600 - 2 * SAMPLE_PERIOD_S


def test_a_period_keeps_its_first_and_its_last_reading() -> None:
    history = CoolingHistory(period_s=10.0)
    assert history.record(100.0, 20.0, -10.0, 100.0)
    assert not history.record(103.0, 5.0, -10.0, 100.0)
    assert not history.record(106.0, -9.5, -10.0, 60.0)  # then the camera is quiet
    assert history.record(300.0, -10.0, -10.0, 55.0)
    assert [(s.time_s, s.temperature_c) for s in history.since(0)] == [
        (100.0, 20.0), (106.0, -9.5), (300.0, -10.0)]


def test_since_gives_only_what_a_page_has_not_seen() -> None:
    history = CoolingHistory(period_s=1.0)
    for second in range(4):
        history.record(float(second), 0.0, None, None)
    seen = history.since(0)[1].seq
    assert [s.time_s for s in history.since(seen)] == [2.0, 3.0]
    assert history.since(history.last_seq) == []


def test_the_pending_reading_is_shown_until_it_becomes_a_sample() -> None:
    history = CoolingHistory(period_s=10.0)
    history.record(100.0, 20.0, -10.0, 100.0)
    assert history.pending is None
    history.record(104.0, -9.0, -10.0, 70.0)
    pending = history.pending
    assert pending is not None and (pending.time_s, pending.temperature_c) == (104.0, -9.0)
    history.record(200.0, -10.0, -10.0, 60.0)
    assert history.pending is None
    assert [s.temperature_c for s in history.since(0)] == [20.0, -9.0, -10.0]
