"""The benchmark's scenarios and the property settings each needs on each side.

Both sides get the same workload (peer-benchmark.md): a dark frame with nothing to draw,
polling every 10 ms, exposure 0.01 s (the C++ simulator's minimum), one warm-up frame, then
back-to-back exposures. The C++ side is `indiserver indi_simulator_ccd` (device
"CCD Simulator"), the frame size set through its SIMULATOR_SETTINGS; ours is the QHY42PRO
simulator, the frame size set through READ_MODE (0 = HDR 4096x2048, 1 = STD 2048x2048) and
CCD_FRAME. A property the device lacks makes a required setting fail as "n/a", with the
reason, rather than being guessed around.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from bench.client import Setting

Side = Literal["cpp", "ours"]
SIDES: Final[tuple[Side, ...]] = ("cpp", "ours")
SIDE_LABELS: Final[dict[Side, str]] = {"cpp": "C++", "ours": "ours"}

EXPOSURE_S: Final = 0.01
POLLING_MS: Final = 10
READ_MODE_HDR: Final = 0
READ_MODE_STD: Final = 1
# indi_simulator_ccd's SIM_NOISE for the compressed rows: a frame of zeros compresses to
# nothing, so there both sides compress a noisy frame.
CPP_NOISE: Final = 10


def switch_on(element: str) -> dict[str, bool]:
    """A switch setting's members: this one On (the rule turns the others Off)."""
    return {element: True}


def _compression(enabled: bool) -> Setting:
    return Setting("CCD_COMPRESSION", switch_on("INDI_ENABLED" if enabled else "INDI_DISABLED"))


def cpp_settings(width: int, height: int, *, bits: int = 16, compressed: bool = False,
                 sensor: tuple[int, int] | None = None, noise: int = 0,
                 frame_type: str = "FRAME_DARK") -> list[Setting]:
    """indi_simulator_ccd: sensor size and noise first (they reset CCD_FRAME), then the rest.
    The sensor is width x height unless `sensor` is given (its minimum is 512x512; a smaller
    frame is a subframe)."""
    sensor_width, sensor_height = sensor or (width, height)
    settings = [
        Setting("SIMULATOR_SETTINGS",
                {"SIM_XRES": sensor_width, "SIM_YRES": sensor_height, "SIM_NOISE": noise}),
        Setting("POLLING_PERIOD", {"PERIOD_MS": POLLING_MS}),
        Setting("CCD_FRAME_TYPE", switch_on(frame_type)),
    ]
    if bits == 8:
        # Its CCD_CAPTURE_FORMAT offers INDI_MONO only and CCD_INFO is read-only: this fails
        # as n/a, naming what the simulator does offer.
        settings.append(Setting("CCD_CAPTURE_FORMAT", switch_on("INDI_MONO_8")))
    settings += [
        Setting("CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1}),
        Setting("CCD_FRAME", {"X": 0, "Y": 0, "WIDTH": width, "HEIGHT": height}),
        _compression(compressed),
    ]
    return settings


def ours_settings(read_mode: int, width: int, height: int, *, bits: int = 16,
                  compressed: bool = False, scene: str | None = None) -> list[Setting]:
    """Our QHY42PRO: the read mode first (it sets the sensor size), then the rest. STD is the
    default read mode, so READ_MODE is needed only for HDR. A dark frame is the covered
    sensor (SCENE_DARK: the QHY42PRO has no shutter, so the frame type alone would leave the
    simulator's star field in view); with `scene` (SCENE_STARS, SCENE_FLAT) a light frame of
    what the simulator shows."""
    frame_type = "FRAME_DARK" if scene is None else "FRAME_LIGHT"
    scene_settings = [Setting("SIM_SCENE", switch_on(scene or "SCENE_DARK"))]
    return [
        Setting("READ_MODE", {"MODE": read_mode}, required=read_mode != READ_MODE_STD),
        Setting("POLLING_PERIOD", {"PERIOD_MS": POLLING_MS}, required=False),
        *scene_settings,
        Setting("CCD_FRAME_TYPE", switch_on(frame_type)),
        Setting("CCD_CAPTURE_FORMAT", switch_on("INDI_MONO_8" if bits == 8 else "INDI_MONO_16")),
        Setting("CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1}),
        Setting("CCD_FRAME", {"X": 0, "Y": 0, "WIDTH": width, "HEIGHT": height}),
        _compression(compressed),
    ]


# The merged-HDR row's flat: 3000 e- in 0.01 s, inside both channels' fit range, so the splice
# is fitted on every frame (as bench/ping.py's hdr workload).
HDR_FLAT_E_PER_S: Final = 300_000.0


def ours_hdr_merged() -> list[Setting]:
    """HDR 4096x2048 merged by us into 2048x2048 16-bit, of a bright flat."""
    return [
        Setting("READ_MODE", {"MODE": READ_MODE_HDR}),
        Setting("HDR_OUTPUT", switch_on("HDR_MERGED")),
        Setting("POLLING_PERIOD", {"PERIOD_MS": POLLING_MS}, required=False),
        Setting("SIM_SCENE", switch_on("SCENE_FLAT")),
        Setting("SIM_FLAT_LEVEL", {"LEVEL": HDR_FLAT_E_PER_S}),
        Setting("CCD_FRAME_TYPE", switch_on("FRAME_FLAT")),
        Setting("CCD_CAPTURE_FORMAT", switch_on("INDI_MONO_16")),
        Setting("CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1}),
        Setting("CCD_FRAME", {"X": 0, "Y": 0, "WIDTH": 2048, "HEIGHT": 2048}),
        _compression(False),
    ]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    frames: int  # timed frames per run (after one warm-up)
    quick_frames: int
    settings: dict[Side, Callable[[], Sequence[Setting]]] = field(default_factory=dict)
    listeners: int = 0  # receive-only clients beside the commanding one
    stalled: bool = False  # a client that enables BLOBs and never reads
    measure_idle: bool = False  # idle CPU and RSS after CONNECT, before configuring
    placeholder: str | None = None  # not measured yet: why (printed as n/a)
    # Our daemon's extra flags. By default its simulator, like indi_simulator_ccd, delivers a
    # frame the moment the exposure ends, so both sides do the same work; the "camera
    # timing" row keeps the QHY42PRO's own readout time (42 ms per full 16-bit frame).
    ours_args: tuple[str, ...] = ("--sim-instant-readout",)
    local: bool = False  # the client on the server's abstract Unix socket (shared memory)
    # Ours as indiserver's driver (`indiserver indi_qhy42_ccd`), not as the daemon: both
    # sides are then indiserver with a driver, the client on indiserver's TCP port.
    ours_under_indiserver: bool = False


SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(
        "2k16", "2048x2048 16-bit, 1 client", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        measure_idle=True,
    ),
    Scenario(
        "2k16cam", "2048x2048 16-bit, 1 client, ours with the camera's readout time", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        ours_args=(),
    ),
    Scenario(
        "2k16x4", "2048x2048 16-bit, 4 clients (1 commands, 3 listen)", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        listeners=3,
    ),
    Scenario(
        "4k16", "4096x2048 16-bit, 1 client", 15, 6,
        {"cpp": lambda: cpp_settings(4096, 2048),
         "ours": lambda: ours_settings(READ_MODE_HDR, 4096, 2048)},
    ),
    Scenario(
        "2k8", "2048x2048 8-bit, 1 client", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048, bits=8),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048, bits=8)},
    ),
    Scenario(
        "2k16z", "2048x2048 16-bit compressed (CCD_COMPRESSION), dark with noise on both "
        "sides, 1 client", 20, 6,
        {"cpp": lambda: cpp_settings(2048, 2048, compressed=True, noise=CPP_NOISE),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048, compressed=True)},
    ),
    Scenario(
        "2k16zs", "2048x2048 16-bit compressed, star field (C++: a light frame with noise, "
        "no catalogue), 1 client", 20, 6,
        {"cpp": lambda: cpp_settings(2048, 2048, compressed=True, noise=CPP_NOISE,
                                     frame_type="FRAME_LIGHT"),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048, compressed=True,
                                       scene="SCENE_STARS")},
    ),
    Scenario(
        "2k16zf", "2048x2048 16-bit compressed, flat (C++: its flat frame with noise), "
        "1 client", 20, 6,
        {"cpp": lambda: cpp_settings(2048, 2048, compressed=True, noise=CPP_NOISE,
                                     frame_type="FRAME_FLAT"),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048, compressed=True,
                                       scene="SCENE_FLAT")},
    ),
    Scenario(
        "hdrm", "HDR 4096x2048 merged to 2048x2048 16-bit, bright flat (C++: its 2048x2048 "
        "16-bit frames), 1 client", 20, 8,
        {"cpp": lambda: cpp_settings(2048, 2048), "ours": ours_hdr_merged},
    ),
    Scenario(
        "stall", "2048x2048 16-bit, 1 client beside a stalled one", 30, 20,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        stalled=True,
    ),
    Scenario(
        "shm", "2048x2048 16-bit, 1 local client through the shared-memory path", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        local=True,
    ),
    Scenario(
        "2k16is", "2048x2048 16-bit through indiserver: indiserver indi_qhy42_ccd vs "
        "indiserver indi_simulator_ccd, 1 TCP client", 30, 10,
        {"cpp": lambda: cpp_settings(2048, 2048),
         "ours": lambda: ours_settings(READ_MODE_STD, 2048, 2048)},
        ours_under_indiserver=True,
    ),
)

BASELINE_KEY: Final = "2k16"


def by_key(keys: Sequence[str]) -> list[Scenario]:
    known = {scenario.key: scenario for scenario in SCENARIOS}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[key] for key in keys]
