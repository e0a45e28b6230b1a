"""The frame-path targets, judged on one run of bench.run, with the stages that cost the most.

Each target is a ratio against the C++ stack in the same run, or a figure of ours against
another of ours (the shared-memory path against our TCP one) or an absolute rate (the camera's
own HDR rate). A target missed names the costliest stages of that path from bench.stages
(CPU per frame on this machine, each stage alone) and the CPU per frame of our daemon's
threads in that scenario (qhy42-indi is the event loop, qhy42-sim the simulator's frames,
qhy42-work the FITS and base64, fits-rice the coder), so the table says where the time goes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# Figures as bench.run keeps them: figures[scenario][side] = the medians of that side.
Figures = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Target:
    label: str
    goal: float  # the figure must reach this (at least), or stay under it with `below`
    figure: Callable[[Figures], float | None]
    stages: tuple[str, ...]  # bench.stages keys of this path
    scenario: str  # whose per-thread CPU in our daemon a miss shows
    below: bool = False
    unit: str = "x"


def _get(figures: Figures, scenario: str, side: str, key: str) -> float | None:
    value = figures.get(scenario, {}).get(side, {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom == 0 else top / bottom


def _fps_vs_cpp(scenario: str) -> Callable[[Figures], float | None]:
    return lambda f: _ratio(_get(f, scenario, "ours", "fps"), _get(f, scenario, "cpp", "fps"))


def _cpu_vs_cpp(scenario: str) -> Callable[[Figures], float | None]:
    return lambda f: _ratio(_get(f, scenario, "cpp", "cpu_ms_per_frame"),
                            _get(f, scenario, "ours", "cpu_ms_per_frame"))


TARGETS: Final[tuple[Target, ...]] = (
    Target("2k16: CPU per frame, C++/ours (a third of C++: 3.0)", 3.0, _cpu_vs_cpp("2k16"),
           ("render_dark", "fits_16", "base64_16", "tcp_16"), "2k16"),
    Target("2k16: frames/s, ours/C++", 1.7, _fps_vs_cpp("2k16"),
           ("render_dark", "fits_16", "base64_16", "tcp_16"), "2k16"),
    Target("2k16z: CPU per compressed frame, ms", 25.0,
           lambda f: _get(f, "2k16z", "ours", "cpu_ms_per_frame"),
           ("render_dark", "rice_dark", "tcp_8"), "2k16z", below=True, unit=" ms"),
    Target("2k16z: compressed frames/s (noisy dark both sides), ours/C++", 2.0,
           _fps_vs_cpp("2k16z"), ("render_dark", "rice_dark", "tcp_8"), "2k16z"),
    Target("hdrm: merged HDR frames/s", 12.0, lambda f: _get(f, "hdrm", "ours", "fps"),
           ("render_hdr", "hdr_merge", "fits_16", "base64_16", "tcp_16"), "hdrm", unit=" /s"),
    Target("shm: local client frames/s, ours shm / ours 2k16 TCP", 2.0,
           lambda f: _ratio(_get(f, "shm", "ours", "fps"), _get(f, "2k16", "ours", "fps")),
           ("render_dark", "fits_16"), "shm"),  # our FITS is built in the memfd: no copy
    Target("2k16is: frames/s under indiserver, ours/C++", 1.0, _fps_vs_cpp("2k16is"),
           ("render_dark", "fits_16"), "2k16is"),  # indiserver gets the memfd as it is
)


def thread_text(threads: Mapping[str, float], most: int | None = None) -> str:
    """"qhy42-indi 9.8, qhy42-sim 6.9, ...": costliest first (qhy42-indi is the event loop),
    the `most` costliest if given."""
    costliest = sorted(threads.items(), key=lambda item: -item[1])[:most]
    return ", ".join(f"{name} {ms:.1f}" for name, ms in costliest)


def rows(figures: Figures, stage_cpu_ms: Mapping[str, float]) -> list[list[str]]:
    """[target, figure, met, costliest stages] for each target the run has figures for."""
    out = []
    for target in TARGETS:
        value = target.figure(figures)
        if value is None:
            out.append([target.label, "n/a", "-", "not measured in this run"])
            continue
        met = value < target.goal if target.below else value >= target.goal
        costly = sorted(((stage_cpu_ms[key], key) for key in target.stages
                         if key in stage_cpu_ms), reverse=True)[:3]
        where = ", ".join(f"{key} {ms:.1f}" for ms, key in costly)
        threads = figures.get(target.scenario, {}).get("ours", {}).get(
            "cpu_ms_per_frame_by_thread")
        if threads:
            where += f"; in the daemon, ms per frame: {thread_text(threads, 4)}"
        goal = f"{'<' if target.below else '>='} {target.goal:g}{target.unit}"
        out.append([target.label, f"{value:.2f}{target.unit} ({goal})",
                    "met" if met else "MISSED", "" if met else f"costliest stages, ms: {where}"])
    return out


def render(table: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in table)
