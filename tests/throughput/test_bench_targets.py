"""The frame-path targets and the per-mode budget of the benchmark are judged from the figures
they are given (not timed): a target met or missed by its own rule, a missed one naming its
costliest stages, a scenario not run shown as n/a, and the budget summing the right stages."""

from __future__ import annotations

from bench import stages, targets

STAGE_MS = {"render_dark": 6.0, "fits_16": 1.5, "base64_16": 1.0, "tcp_16": 2.0,
            "rice_dark": 40.0, "tcp_8": 1.0, "memfd_16": 2.5}


def by_label(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in rows}


def test_a_target_is_met_or_missed_by_its_ratio_and_names_the_costly_stages() -> None:
    figures = {
        "2k16": {"cpp": {"fps": 16.0, "cpu_ms_per_frame": 30.0},
                 "ours": {"fps": 32.0, "cpu_ms_per_frame": 15.0}},
        "2k16z": {"cpp": {"fps": 5.0}, "ours": {"fps": 12.0, "cpu_ms_per_frame": 50.0}},
    }
    rows = by_label(targets.rows(figures, STAGE_MS))
    cpu = rows["2k16: CPU per frame, C++/ours (a third of C++: 3.0)"]
    assert cpu[1].startswith("2.00x") and cpu[2] == "MISSED"
    assert cpu[3] == "costliest stages, ms: render_dark 6.0, tcp_16 2.0, fits_16 1.5"
    assert rows["2k16: frames/s, ours/C++"][2] == "met"
    assert rows["2k16z: CPU per compressed frame, ms"][2] == "MISSED"  # 50 ms, goal < 25
    assert rows["2k16z: compressed frames/s (noisy dark both sides), ours/C++"][2] == "met"
    assert rows["hdrm: merged HDR frames/s"][1] == "n/a"


def test_a_missed_target_shows_where_our_daemon_spent_the_frame() -> None:
    threads = {"qhy42-work": 7.5, "qhy42-indi": 9.8, "qhy42-sim": 6.9, "fits-rice": 0.2,
               "fits-memfd": 0.1}
    figures = {"2k16": {"cpp": {"cpu_ms_per_frame": 30.0},
                        "ours": {"cpu_ms_per_frame": 24.5, "cpu_ms_per_frame_by_thread": threads}}}
    row = by_label(targets.rows(figures, STAGE_MS))[
        "2k16: CPU per frame, C++/ours (a third of C++: 3.0)"]
    assert row[2] == "MISSED"
    assert row[3].endswith("; in the daemon, ms per frame: qhy42-indi 9.8, qhy42-work 7.5, "
                           "qhy42-sim 6.9, fits-rice 0.2")  # costliest four


def test_the_shared_memory_target_compares_our_two_paths() -> None:
    figures = {"2k16": {"ours": {"fps": 20.0}}, "shm": {"ours": {"fps": 41.0}}}
    row = by_label(targets.rows(figures, STAGE_MS))[
        "shm: local client frames/s, ours shm / ours 2k16 TCP"]
    assert row[1].startswith("2.05x") and row[2] == "met"


def test_the_budget_sums_a_modes_stages_at_its_rate_without_the_render() -> None:
    found = [stages.Stage(key, key, ms, ms) for key, ms in STAGE_MS.items()]
    found += [stages.Stage(key, key, 0.0, 0.0) for key in (
        "fits_8", "base64_8", "hdr_merge", "stream_8bit", "stream_mjpeg")]
    rows = {label: (here, pi) for label, here, pi in stages.budget(found, 3.0)}
    one, pi = rows["single frames 16-bit .fits, 1 client, 24/s"]
    assert one == 24 * (1.5 + 1.0 + 2.0) and pi == 3 * one
    four, _ = rows["single frames 16-bit .fits, 4 clients, 24/s"]
    assert four == one + 24 * 3 * 2.0  # one base64, one send per client
