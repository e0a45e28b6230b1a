"""The vendor's libqhyccd in the loop, without a camera: the one the `qhyccd` wheel installs
(QHYCCD's build, with its libusb and libudev in qhyccd.libs/).

- find_library finds the wheel's library; every function sdk_bindings declares resolves in it;
- the ctypes table in sdk_bindings.py, and the stub's C, agree with qhyccd.h (tests/sdk/qhyccd_h);
- InitQHYCCDResource, ScanQHYCCD (no camera: 0), GetQHYCCDSDKVersion, ReleaseQHYCCDResource;
- `qhy42-indi list` names the library; `serve --backend auto` falls back to the simulator and
  says why; `serve --backend sdk` serves the device, whose CONNECT says no camera is there.

The library starts threads and looks at /dev/bus/usb, so every check that loads it runs in a
child process with a timeout. The wheel exists only for x86_64 Linux; elsewhere the tests
that need it are skipped, and the header checks still run.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qhy42_indi.backends import sdk_bindings
from qhy42_indi.backends.sdk_bindings import LIBRARY_ENV, SIGNATURES
from qhy42_indi.indi.messages import DefVector, SetVector
from tests.sdk.qhyccd_h import HEADER_SOURCE, PROTOTYPES, Prototype, parse_prototypes
from tests.sdk.stub import STUB_DIR
from tests.support.client import IndiClient, is_def, is_set
from tests.support.processes import HOST, child_env, daemon, daemon_argv, free_port, running

CHILD_TIMEOUT_S = 90
WHEEL_PLATFORM = sys.platform == "linux" and platform.machine() == "x86_64"
needs_wheel = pytest.mark.skipif(
    not WHEEL_PLATFORM,
    reason="the qhyccd wheel (QHYCCD's libqhyccd) exists only for x86_64 Linux; here "
           "libqhyccd comes from the vendor's SDK package, if at all")


@pytest.fixture
def wheel_library(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The wheel's libqhyccd, found here from the wheel's file list (independently of
    sdk_bindings); on x86_64 Linux its absence is a failure (`make test` installs the test
    extra, which brings it). The suite's $QHY42_LIBQHYCCD (tests/conftest.py) is cleared, so
    the search in this process finds what a user's would."""
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    try:
        files = importlib.metadata.files("qhyccd") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    found = [Path(str(f.locate())) for f in files
             if f.parts[0] == "qhyccd.libs" and f.name.startswith("libqhyccd")]
    assert found, "the qhyccd wheel is not installed: pip install -e '.[test]'"
    return found[0].resolve()


def _env_without_override(home: Path) -> dict[str, str]:
    env = child_env(home)
    env.pop(LIBRARY_ENV, None)
    return env


def _child(code: str, home: Path) -> Any:
    """Run `code` in a fresh interpreter (cwd and HOME `home`, no $QHY42_LIBQHYCCD); it
    prints one JSON line last, which is returned."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, env=_env_without_override(home),
                          cwd=home, check=False)
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the child:\n{done.stdout}{done.stderr}"
    return json.loads(lines[-1])


# ---- finding the library --------------------------------------------------------------------

@needs_wheel
def test_find_library_finds_the_wheels_libqhyccd(
        wheel_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    assert wheel_library.parent.name == "qhyccd.libs" and ".so" in wheel_library.name
    candidates = list(sdk_bindings.library_candidates())
    assert str(wheel_library) in candidates
    # after the system's libqhyccd, if there is one: the wheel is the last candidate
    assert candidates[-1] == str(wheel_library)
    assert sdk_bindings.find_library() == candidates[0]


@needs_wheel
def test_the_environment_variable_still_decides(
        wheel_library: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "libqhyccd.so"))
    assert list(sdk_bindings.library_candidates()) == [str(tmp_path / "libqhyccd.so")]


# ---- the real library -----------------------------------------------------------------------

@needs_wheel
def test_every_declared_function_resolves_in_the_real_library(
        wheel_library: Path, tmp_path: Path) -> None:
    code = f"""
import json
from qhy42_indi.backends.sdk_bindings import SIGNATURES, QhyLibrary
lib = QhyLibrary({str(wheel_library)!r})
print(json.dumps({{s.name: hasattr(lib.cdll, s.name) for s in SIGNATURES}}))
"""
    present = _child(code, tmp_path)
    missing = sorted(name for name, there in present.items() if not there)
    assert not missing, f"{wheel_library} lacks {missing}"
    assert set(present) == {s.name for s in SIGNATURES}


@needs_wheel
def test_init_scan_version_release_without_a_camera(wheel_library: Path, tmp_path: Path) -> None:
    code = f"""
import ctypes, json
from qhy42_indi.backends.sdk_bindings import QhyLibrary
lib = QhyLibrary({str(wheel_library)!r})
lib("SetQHYCCDAutoDetectCamera", False)
out = {{"init": lib("InitQHYCCDResource"), "scan": lib("ScanQHYCCD")}}
parts = [ctypes.c_uint32(0) for _ in range(4)]
out["version_rc"] = lib("GetQHYCCDSDKVersion", *(ctypes.byref(p) for p in parts))
out["version"] = [p.value for p in parts]
out["release"] = lib("ReleaseQHYCCDResource")
print(json.dumps(out))
"""
    out = _child(code, tmp_path)
    assert (out["init"], out["scan"], out["version_rc"], out["release"]) == (0, 0, 0, 0), out
    year, month, day, _sub = out["version"]
    assert 20 <= year < 100 and 1 <= month <= 12 and 1 <= day <= 31, out  # 2-digit year


@needs_wheel
def test_the_sdk_runtime_starts_scans_and_stops_on_the_real_library(
        wheel_library: Path, tmp_path: Path) -> None:
    code = """
import json
from qhy42_indi.backends.qhysdk import SdkRuntime
sdk = SdkRuntime.load()
sdk.start()
try:
    out = {"path": sdk.library.path, "ids": sdk.camera_ids(), "version": sdk.sdk_version}
finally:
    sdk.stop()
print(json.dumps(out))
"""
    out = _child(code, tmp_path)
    assert out["path"] == sdk_bindings.find_library() or out["path"] == str(wheel_library)
    assert out["ids"] == []
    assert out["version"].startswith("V20") and "_" in out["version"], out


@needs_wheel
def test_list_names_the_library(wheel_library: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "qhy42_indi.cli", "list"], capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT_S, env=_env_without_override(tmp_path),
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = sdk_bindings.find_library() or str(wheel_library)
    assert f"libqhyccd: {expected}" in done.stdout, done.stdout


@needs_wheel
def test_serve_auto_without_a_camera_falls_back_to_the_simulator(
        wheel_library: Path, tmp_path: Path) -> None:
    port = free_port()
    argv = daemon_argv(port, "--no-local-socket", "--backend", "auto")
    # an empty $QHY42_LIBQHYCCD counts as unset: the search finds the wheel
    with running(argv, port, tmp_path, {LIBRARY_ENV: ""}) as proc:
        log = proc.log()
    line = next((x for x in log.splitlines() if "answers through libqhyccd" in x), "")
    assert line, log
    assert sdk_bindings.find_library() in line and "using the simulator" in line, line


@needs_wheel
async def test_serve_sdk_without_a_camera_serves_the_device_and_says_none_is_there(
        wheel_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    with daemon("--backend", "sdk", home=tmp_path) as proc:
        async with IndiClient.connect(HOST, proc.port) as client:
            await client.send(b'<getProperties version="1.7"/>')
            connection = await client.wait_for(is_def("CONNECTION"))
            assert isinstance(connection, DefVector)
            assert [(e.name, e.value) for e in connection.elements] == [
                ("CONNECT", "Off"), ("DISCONNECT", "On")]
            # It says what it waits for as soon as a client looks, before any CONNECT.
            assert connection.message is not None
            assert "Waiting for a QHY42PRO" in connection.message, connection
            start = len(client.received)
            await client.send(
                f'<newSwitchVector device="{connection.device}" name="CONNECTION">'
                '<oneSwitch name="CONNECT">On</oneSwitch></newSwitchVector>')
            refused = await client.wait_for(is_set("CONNECTION", "Alert"), start=start)
        log = proc.log()
    assert isinstance(refused, SetVector)
    assert refused.message is not None and "no QHY42PRO is connected" in refused.message, refused
    assert "yet: waiting for one to be plugged in" in log, log
    assert sdk_bindings.find_library() in log, log


# ---- the signatures against qhyccd.h ----------------------------------------------------------

def _ctypes_abi(ctype: Any) -> str:
    """A ctypes type as an ABI class of tests/sdk/qhyccd_h ('*' for c_void_p: any pointer)."""
    if ctype is None:
        return "void"
    if ctype is ctypes.c_void_p:
        return "*"
    if ctype is ctypes.c_char_p:
        return "*byte"
    if isinstance(ctype, type) and issubclass(ctype, ctypes._Pointer):
        return "*" + _ctypes_abi(ctype._type_)
    scalars = {ctypes.c_bool: "bool", ctypes.c_uint8: "byte", ctypes.c_char: "byte",
               ctypes.c_uint16: "uint16", ctypes.c_uint32: "uint32", ctypes.c_int32: "int32",
               ctypes.c_double: "double"}
    if ctype in scalars:
        return scalars[ctype]
    raise AssertionError(f"no ABI class for {ctype!r}")


def _agrees(ours: str, header: str) -> bool:
    return ours == header or (ours == "*" and header.startswith("*"))


def test_the_ctypes_table_agrees_with_qhyccd_h() -> None:
    problems = []
    for signature in SIGNATURES:
        prototype = PROTOTYPES.get(signature.name)
        if prototype is None:
            problems.append(f"{signature.name}: not in the qhyccd.h table ({HEADER_SOURCE})")
            continue
        ours = (_ctypes_abi(signature.restype), tuple(map(_ctypes_abi, signature.argtypes)))
        if len(ours[1]) != len(prototype.argtypes) or not all(
                _agrees(a, b) for a, b in zip((ours[0], *ours[1]),
                                              (prototype.restype, *prototype.argtypes),
                                              strict=True)):
            problems.append(f"{signature.name}: ctypes {ours} but qhyccd.h "
                            f"{(prototype.restype, prototype.argtypes)}")
    assert not problems, "\n".join(problems)


def _stub_exports() -> dict[str, Prototype]:
    text = (STUB_DIR / "qhyccd_stub.c").read_text()
    heads = re.findall(r"^EXPORT\s+([^;{]*?\))\s*\{", text, re.M | re.S)
    return {name: p for head in heads for name, p in parse_prototypes(head).items()}


def test_the_stub_keeps_the_real_librarys_signatures() -> None:
    exports = _stub_exports()
    sdk = {name: p for name, p in exports.items() if not name.startswith("stub_")}
    assert {s.name for s in SIGNATURES if s.required} <= set(sdk), "the stub lacks an SDK call"
    problems = []
    for name, stub in sorted(sdk.items()):
        header = PROTOTYPES.get(name)
        if header is None:
            problems.append(f"{name}: the stub exports it, qhyccd.h ({HEADER_SOURCE}) has no "
                            "such function")
        elif (stub.restype, stub.argtypes) != (header.restype, header.argtypes):
            problems.append(f"{name}: stub {(stub.restype, stub.argtypes)} but qhyccd.h "
                            f"{(header.restype, header.argtypes)}")
    assert not problems, "\n".join(problems)


def test_the_prototype_reader_sees_a_difference() -> None:
    """The comparison can fail: a changed width or a lost pointer is a different prototype."""
    a = parse_prototypes("uint32_t F(qhyccd_handle *h, uint32_t *w);")["F"]
    b = parse_prototypes("EXPORT uint32_t F(void *h, uint16_t *w) {")["F"]
    c = parse_prototypes("uint32_t F(void *handle, uint32_t w)")["F"]
    assert a.argtypes == ("*void", "*uint32")
    assert b.argtypes != a.argtypes and c.argtypes != a.argtypes

