"""ctypes declarations of libqhyccd, QHYCCD's camera SDK, and finding the library.

What it is for: loading libqhyccd and giving every function the SDK backend calls its
argument and return types (`SIGNATURES`, written from the documented C signatures in
reference/qhy-sdk-and-drivers.md section 1; tests/sdk/test_real_libqhyccd.py checks them
against QHYCCD's qhyccd.h and resolves them in the vendor's library from the qhyccd
wheel). Functions marked optional exist only in some SDK builds; they are resolved when
present and `QhyLibrary.has()` says whether they were.

What it is not: no camera logic and no threads. Nothing here may be called from more than one
thread: the SDK is not thread-safe, and sdk_thread.py runs every call on one thread.

Types: handles are opaque pointers (c_void_p); C++ `bool` is one byte (c_bool); CONTROL_ID is
an int-sized enum (c_int); strings the SDK fills are caller buffers (CAMERA_ID_LENGTH 64,
read-mode names up to 256 bytes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from qhy42_indi.backends.base import BackendError

# ---- return codes (reference 1.1) ---------------------------------------------------------

QHYCCD_SUCCESS = 0
QHYCCD_ERROR = 0xFFFFFFFF  # the only error code the SDK produces
QHYCCD_DELAY_200MS = 0x2000  # SetQHYCCDBinMode: success, but wait 200 ms before the next call
QHYCCD_READ_DIRECTLY = 0x2001  # ExpQHYCCDSingleFrame: success
PARAM_ERROR = float(QHYCCD_ERROR)  # what GetQHYCCDParam returns when it fails

CAMERA_ID_LENGTH = 64
READ_MODE_NAME_LENGTH = 256
CONTROL_NAME_LENGTH = 256


class ControlId(IntEnum):
    """CONTROL_ID values 0..80, the same in every SDK header seen (reference 1.5). Values
    above 80 differ between SDK builds and are looked up by name (GetQHYCCDControlName)."""

    GAIN = 6
    OFFSET = 7
    EXPOSURE = 8  # microseconds
    SPEED = 9
    TRANSFERBIT = 10
    USBTRAFFIC = 12
    CURTEMP = 14
    CURPWM = 15
    MANULPWM = 16
    COOLER = 18  # set: the target temperature
    CAM_COLOR = 20
    CAM_BIN1X1MODE = 21
    CAM_BIN2X2MODE = 22
    CAM_BIN3X3MODE = 23
    CAM_BIN4X4MODE = 24
    CAM_8BITS = 34
    CAM_16BITS = 35
    CAM_GPS = 36
    AMPV = 41
    DDR = 48
    DEFAULT_GAIN = 53
    DEFAULT_OFFSET = 54
    OUTPUT_DATA_ACTUAL_BITS = 55
    CAM_HUMIDITY = 62
    CAM_BURST_MODE = 72


# ---- finding the library ------------------------------------------------------------------

LIBRARY_ENV = "QHY42_LIBQHYCCD"
SEARCH_DIRECTORIES = ("/usr/local/lib", "/usr/lib", "/usr/lib/aarch64-linux-gnu",
                      "/usr/lib/arm-linux-gnueabihf", "/usr/lib/x86_64-linux-gnu")
# The `qhyccd` wheel on PyPI (manylinux x86_64) ships QHYCCD's libqhyccd, with the libusb and
# libudev it links to, auditwheel-style: `qhyccd.libs/libqhyccd-<hash>.so.<soversion>`
# beside the `qhyccd` package, and no RPATH in it (see _load_bundled_dependencies).
WHEEL_DISTRIBUTION = "qhyccd"
WHEEL_LIBS_DIRECTORY = "qhyccd.libs"
INSTALL_ADVICE = (
    "install QHYCCD's SDK for Linux (`pip install 'qhy42-indi[sdk]'` brings it on x86_64 "
    "Linux through the qhyccd wheel; elsewhere the 'Linux SDK' from qhyccd.com, whose "
    "install.sh puts libqhyccd.so into /usr/local/lib, or the libqhy package of the INDI "
    f"third-party repository), or set {LIBRARY_ENV} to the path of libqhyccd.so"
)


class SdkLibraryMissing(BackendError):
    """libqhyccd could not be found or loaded, or lacks a function the backend needs."""


def library_candidates() -> Iterator[str]:
    """Where libqhyccd may be, in the order tried: $QHY42_LIBQHYCCD (alone, when set), the
    linker's search (ctypes.util.find_library), the directories the SDK installers use, then
    the library the `qhyccd` wheel installed into this Python environment.

    The system SDK comes before the wheel: it is what someone installed on purpose for this
    machine, together with the firmware (/lib/firmware/qhy) and udev rules of the same SDK
    release, and it is the one indi_qhy_ccd and the other QHY programs there use; the wheel
    is the fallback that makes `pip install` enough where nothing else is installed."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        yield explicit
        return
    found = ctypes.util.find_library("qhyccd")
    if found:
        yield found
    for directory in SEARCH_DIRECTORIES:
        path = Path(directory) / "libqhyccd.so"
        if path.exists():
            yield str(path)
    wheel = wheel_library()
    if wheel is not None:
        yield wheel


def find_library() -> str | None:
    """The first candidate path, or None (nothing says libqhyccd is installed)."""
    return next(library_candidates(), None)


def wheel_library() -> str | None:
    """libqhyccd from the `qhyccd` wheel in this environment, or None. Found through the
    distribution's file list (importlib.metadata), else beside the package's location
    (importlib.util.find_spec); neither imports the package, which loads a Python extension
    and libqhyccd with it."""
    for directory in _wheel_library_directories():
        matches = sorted(p for p in directory.glob("libqhyccd*.so*") if p.is_file())
        if matches:
            return str(matches[0])
    return None


def _wheel_library_directories() -> Iterator[Path]:
    try:
        files = importlib.metadata.files(WHEEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        files = None
    for file in files or ():
        if file.parts[:1] == (WHEEL_LIBS_DIRECTORY,) and file.name.startswith("libqhyccd"):
            yield Path(str(file.locate())).parent
            break
    try:
        spec = importlib.util.find_spec(WHEEL_DISTRIBUTION)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        yield Path(location).parent / WHEEL_LIBS_DIRECTORY


def _load_bundled_dependencies(path: str) -> list[ctypes.CDLL]:
    """Load the libraries auditwheel bundled beside `path` (libusb, libudev in qhyccd.libs/).

    Their names carry a hash (libusb-1-<hash>.0.so.0) and libqhyccd has no RPATH, so the
    dynamic linker would not find them; once loaded, a library is matched by its soname.
    They depend on one another (libusb on libudev): load what loads, and retry the rest
    until a pass makes no progress. Nothing happens outside a `*.libs` directory."""
    directory = Path(path).resolve().parent
    if not directory.name.endswith(".libs"):
        return []
    own = Path(path).resolve()
    pending = sorted(p for p in directory.iterdir()
                     if ".so" in p.name and p.is_file() and p.resolve() != own)
    loaded: list[ctypes.CDLL] = []
    while pending:
        left = []
        for dependency in pending:
            try:
                loaded.append(ctypes.CDLL(str(dependency)))
            except OSError:
                left.append(dependency)
        if len(left) == len(pending):
            break  # what is left does not load; CDLL(path) says why, if it matters
        pending = left
    return loaded


# ---- signatures ---------------------------------------------------------------------------

_h = ctypes.c_void_p  # qhyccd_handle*
_u8, _u16, _u32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32
_u32p = ctypes.POINTER(ctypes.c_uint32)
_dp = ctypes.POINTER(ctypes.c_double)
_bytes = ctypes.c_void_p  # uint8_t* / char* buffers the SDK fills
_id = ctypes.c_char_p  # char* camera id (input)
_bool, _int, _double = ctypes.c_bool, ctypes.c_int, ctypes.c_double


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    restype: Any
    argtypes: tuple[Any, ...]
    required: bool = True


def _req(name: str, restype: Any, *argtypes: Any) -> Signature:
    return Signature(name, restype, argtypes)


def _opt(name: str, restype: Any, *argtypes: Any) -> Signature:
    return Signature(name, restype, argtypes, required=False)


SIGNATURES: tuple[Signature, ...] = (
    # lifecycle and discovery (1.2)
    _req("InitQHYCCDResource", _u32),
    _req("ReleaseQHYCCDResource", _u32),
    _opt("SetQHYCCDAutoDetectCamera", None, _bool),
    _req("ScanQHYCCD", _u32),
    _req("GetQHYCCDId", _u32, _u32, _bytes),
    _opt("GetQHYCCDModel", _u32, _id, _bytes),
    _req("OpenQHYCCD", _h, _id),
    _req("CloseQHYCCD", _u32, _h),
    _req("GetQHYCCDSDKVersion", _u32, _u32p, _u32p, _u32p, _u32p),
    _opt("SetQHYCCDLogLevel", None, _u8),
    _opt("EnableQHYCCDMessage", None, _bool),
    _opt("EnableQHYCCDLogFile", None, _bool),
    _opt("GetQHYCCDFWVersion", _u32, _h, _bytes),
    _opt("GetQHYCCDFPGAVersion", _u32, _h, _u8, _bytes),
    # open / init / stream mode (1.3)
    _req("SetQHYCCDStreamMode", _u32, _h, _u8),
    _req("InitQHYCCD", _u32, _h),
    # read modes (1.4)
    _req("GetQHYCCDNumberOfReadModes", _u32, _h, _u32p),
    _req("GetQHYCCDReadModeName", _u32, _h, _u32, _bytes),
    _req("GetQHYCCDReadModeResolution", _u32, _h, _u32, _u32p, _u32p),
    _req("SetQHYCCDReadMode", _u32, _h, _u32),
    _req("GetQHYCCDReadMode", _u32, _h, _u32p),
    # parameters (1.5)
    _req("IsQHYCCDControlAvailable", _u32, _h, _int),
    _req("SetQHYCCDParam", _u32, _h, _int, _double),
    _req("GetQHYCCDParam", _double, _h, _int),
    _req("GetQHYCCDParamMinMaxStep", _u32, _h, _int, _dp, _dp, _dp),
    _opt("GetQHYCCDControlName", _u32, _h, _int, _bytes),
    # geometry (1.6)
    _req("GetQHYCCDChipInfo", _u32, _h, _dp, _dp, _u32p, _u32p, _dp, _dp, _u32p),
    _opt("GetQHYCCDEffectiveArea", _u32, _h, _u32p, _u32p, _u32p, _u32p),
    _req("SetQHYCCDResolution", _u32, _h, _u32, _u32, _u32, _u32),
    _req("SetQHYCCDBinMode", _u32, _h, _u32, _u32),
    _req("SetQHYCCDBitsMode", _u32, _h, _u32),
    _req("GetQHYCCDMemLength", _u32, _h),
    # single frame (1.7)
    _req("ExpQHYCCDSingleFrame", _u32, _h),
    _req("GetQHYCCDSingleFrame", _u32, _h, _u32p, _u32p, _u32p, _u32p, _bytes),
    _opt("SetQHYCCDSingleFrameTimeOut", _u32, _h, _u32),
    _req("CancelQHYCCDExposingAndReadout", _u32, _h),
    # live frames (1.8)
    _req("BeginQHYCCDLive", _u32, _h),
    _req("GetQHYCCDLiveFrame", _u32, _h, _u32p, _u32p, _u32p, _u32p, _bytes),
    _req("StopQHYCCDLive", _u32, _h),
    # cooling and humidity (1.9)
    _req("ControlQHYCCDTemp", _u32, _h, _double),
    _opt("GetQHYCCDHumidity", _u32, _h, _dp),
    # burst (1.10)
    _opt("EnableQHYCCDBurstMode", _u32, _h, _bool),
    _opt("SetQHYCCDBurstModeStartEnd", _u32, _h, ctypes.c_ushort, ctypes.c_ushort),
    _opt("EnableQHYCCDBurstCountFun", _u32, _h, _bool),
    _opt("ResetQHYCCDFrameCounter", _u32, _h),
    _opt("SetQHYCCDBurstIDLE", _u32, _h),
    _opt("ReleaseQHYCCDBurstIDLE", _u32, _h),
    _opt("SetQHYCCDBurstModePatchNumber", _u32, _h, _u32),
    _opt("SetQHYCCDEnableLiveModeAntiRBI", _u32, _h, _u32),
    _opt("EnableQHYCCDImageOSD", _u32, _h, _u32),
    # trigger (1.11)
    _opt("SetQHYCCDTrigerFunction", _u32, _h, _bool),
    # GPS and precise timing (1.12)
    _opt("GetQHYCCDPreciseExposureInfo", _u32, _h, _u32p, _u32p, _u32p, _u32p, _u32p, _u32p,
         ctypes.POINTER(ctypes.c_uint8)),
    # registers (1.13)
    _opt("SetQHYCCDWriteFPGA", _u32, _h, _u8, _u8, _u8),
    _opt("QHYCCDVendRequestRead", _u32, _h, _u8, _u16, _u16, _u32, _bytes),
)


class QhyLibrary:
    """libqhyccd, loaded, with every function of SIGNATURES typed."""

    def __init__(self, path: str) -> None:
        self._dependencies = _load_bundled_dependencies(path)
        try:
            cdll = ctypes.CDLL(path)
        except OSError as error:
            raise SdkLibraryMissing(f"cannot load {path}: {error}; {INSTALL_ADVICE}") from error
        self.path = path
        self._functions: dict[str, Callable[..., Any]] = {}
        missing_required = []
        for signature in SIGNATURES:
            function = getattr(cdll, signature.name, None)
            if function is None:
                if signature.required:
                    missing_required.append(signature.name)
                continue
            function.restype = signature.restype
            function.argtypes = list(signature.argtypes)
            self._functions[signature.name] = function
        if missing_required:
            raise SdkLibraryMissing(
                f"{path} lacks {', '.join(missing_required)}: it is not libqhyccd, or an SDK "
                f"too old for the QHY42PRO; {INSTALL_ADVICE}"
            )
        self.cdll = cdll
        self.calling: str | None = None  # the function in progress, to name a hung call

    def has(self, name: str) -> bool:
        return name in self._functions

    @property
    def missing_optional(self) -> tuple[str, ...]:
        return tuple(s.name for s in SIGNATURES if not s.required and not self.has(s.name))

    def __call__(self, name: str, *args: Any) -> Any:
        """Call an SDK function by name (KeyError if this build lacks an optional one)."""
        function = self._functions[name]
        self.calling = name
        try:
            return function(*args)
        finally:
            self.calling = None


def load_library(path: str | None = None) -> QhyLibrary:
    """Load libqhyccd from `path`, or from the first of library_candidates()."""
    path = path or find_library()
    if path is None:
        raise SdkLibraryMissing(f"libqhyccd not found; {INSTALL_ADVICE}")
    return QhyLibrary(path)
