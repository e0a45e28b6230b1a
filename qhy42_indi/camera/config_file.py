"""CONFIG_PROCESS storage: the device's saved property values, in ~/.indi as libindi keeps them.

The file is `<config dir>/<device name>_config.xml` (config dir: ~/.indi, or the directory of
$INDICONFIG). It is written the way libindi drivers write theirs (indiuserio.c, indidriver.c):
an `<INDIDriver>` root holding one newXXXVector per saved property, attributes in single
quotes, each value on a line of its own. So the file is shared with indi_qhy_ccd or any other
libindi driver run under the same device name: loading applies the properties the device
knows and reports the rest; saving replaces only the vectors it writes and keeps every other
one as it was, byte for byte, so the other driver finds its settings intact.

Files the daemon wrote before (bare newXXXVectors, no root) are read as well.

Beside it, `<file>.default`: libindi copies the config file there the first time it loads or
saves one and never touches it again; CONFIG_DEFAULT loads it. CONFIG_PURGE removes the config
file only, not the .default copy.

Blocking functions; the device runs them in a worker thread. Not the daemon's own
configuration (config.py).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qhy42_indi.camera.upload import write_atomically
from qhy42_indi.indi.encoder import escape_attribute, escape_text
from qhy42_indi.indi.messages import (
    NewVector,
    NumberElement,
    ParseProblem,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.parser import IndiParser
from qhy42_indi.indi.properties import PropertyVector, Value

log = logging.getLogger(__name__)

ROOT_OPEN = b"<INDIDriver>\n"
ROOT_CLOSE = b"</INDIDriver>\n"
DEFAULT_SUFFIX = ".default"

# One saved vector, as libindi and our old files write them. Values are escaped in the file,
# so a closing tag cannot occur inside one.
_VECTOR = re.compile(
    rb"<(new(?:Number|Text|Switch|BLOB|Light)Vector)\b.*?</\1\s*>", re.DOTALL
)
_ROOT_TAG = re.compile(rb"</?INDIDriver\b[^>]*>")
_PROLOG = re.compile(rb"<\?xml\b.*?\?>|<!--.*?-->", re.DOTALL)

# Which element names the device has, per property it applies, in replay order.
Known = Mapping[str, Sequence[str]]
Element = NumberElement | TextElement | SwitchElement


def config_path(device_name: str) -> Path:
    explicit = os.environ.get("INDICONFIG")
    directory = Path(explicit).parent if explicit else Path.home() / ".indi"
    return directory / f"{device_name.replace('/', '_')}_config.xml"


def default_path(path: Path) -> Path:
    """libindi's name for the first saved copy: the config file's name + ".default"."""
    return path.with_name(path.name + DEFAULT_SUFFIX)


# ---- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One vector of a config file: its bytes as found, and what they parse to (None when
    they do not parse: kept on save all the same, since another driver may read them)."""

    raw: bytes
    command: NewVector | None


@dataclass(frozen=True)
class LoadedConfig:
    """What a config file holds for one device.

    commands: what to replay, for the properties named in `known` (in its order, so modes
    come before geometry whatever order the file has), with only the elements the device has.
    ignored: properties (and PROPERTY.ELEMENT) of the device that are not applied.
    other_devices: vectors for another device name, which libindi skips too.
    problems: what could not be read.
    """

    path: Path
    exists: bool
    commands: tuple[NewVector, ...] = ()
    ignored: tuple[str, ...] = ()
    other_devices: int = 0
    problems: tuple[str, ...] = ()
    legacy: bool = False


def read_entries(data: bytes) -> tuple[list[Entry], list[str], bool]:
    """The vectors of a config file's bytes, what else it held, and whether it is in the
    daemon's old format (no <INDIDriver> root)."""
    legacy = _ROOT_TAG.search(data) is None
    entries: list[Entry] = []
    problems: list[str] = []
    position = 0
    for match in _VECTOR.finditer(data):
        _note_garbage(data[position:match.start()], problems)
        raw = match.group(0)
        command, reason = _parse_vector(raw)
        if reason:
            problems.append(reason)
        entries.append(Entry(raw, command))
        position = match.end()
    _note_garbage(data[position:], problems)
    return entries, problems, legacy


def read_config(path: Path, device: str | None = None, known: Known | None = None) -> LoadedConfig:
    """The saved commands for `device` (any device if None) and the properties in `known`
    (all of them, in file order, if None). No file: exists=False and nothing to apply."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LoadedConfig(path, exists=False)
    entries, problems, legacy = read_entries(data)
    mine = [e.command for e in entries
            if e.command is not None and (device is None or e.command.device == device)]
    others = sum(1 for e in entries
                 if e.command is not None and device is not None and e.command.device != device)
    commands, ignored = _select(mine, known)
    loaded = LoadedConfig(path, True, tuple(commands), tuple(ignored), others, tuple(problems),
                          legacy)
    _log_loaded(loaded)
    return loaded


def load_config(path: Path) -> list[NewVector]:
    """Every saved command of the file, in file order; [] when there is no file."""
    return list(read_config(path).commands)


def load_default(path: Path, device: str | None = None,
                 known: Known | None = None) -> LoadedConfig:
    """CONFIG_DEFAULT as libindi does it: the commands of `<path>.default`."""
    return read_config(default_path(path), device, known)


def _parse_vector(raw: bytes) -> tuple[NewVector | None, str]:
    parser = IndiParser()
    results = [*parser.feed(raw), *parser.close()]
    commands = [r for r in results if isinstance(r, NewVector)]
    if len(commands) == 1:
        return commands[0], ""
    reasons = [r.reason for r in results if isinstance(r, ParseProblem)]
    return None, f"unreadable vector ({'; '.join(reasons) or 'no command'}): {raw[:80]!r}"


def _note_garbage(between: bytes, problems: list[str]) -> None:
    rest = _PROLOG.sub(b"", _ROOT_TAG.sub(b"", between)).strip()
    if rest:
        problems.append(f"skipped: {rest[:80]!r}")


def _select(commands: list[NewVector], known: Known | None) -> tuple[list[NewVector], list[str]]:
    if known is None:
        return commands, []
    by_name = {c.name: c for c in commands}  # a name saved twice: the later one, as replayed
    ignored = [c.name for c in commands if c.name not in known]
    selected: list[NewVector] = []
    for name, element_names in known.items():
        command = by_name.get(name)
        if command is None:
            continue
        kept = _known_elements(command, element_names, ignored)
        if kept is not None:
            selected.append(kept)
    return selected, ignored


def _known_elements(command: NewVector, element_names: Sequence[str],
                    ignored: list[str]) -> NewVector | None:
    """The command with only the elements the device has; None if that leaves nothing to
    apply. A switch command whose On member the device lacks is dropped whole: its Offs alone
    would leave a one-of-many vector with nothing on."""
    names = set(element_names)
    kept = tuple(e for e in command.elements if e.name in names)
    dropped = [e for e in command.elements if e.name not in names]
    ignored.extend(f"{command.name}.{e.name}" for e in dropped)
    lost_on = any(isinstance(e, SwitchElement) and e.value is SwitchState.ON for e in dropped)
    if not kept or lost_on:
        if kept:
            ignored.append(command.name)
        return None
    if not dropped:
        return command
    return NewVector(kind=command.kind, device=command.device, name=command.name,
                     elements=kept, timestamp=command.timestamp)


def _log_loaded(loaded: LoadedConfig) -> None:
    if loaded.ignored:
        log.info("%s: not applied (not properties of this device): %s", loaded.path,
                 ", ".join(loaded.ignored))
    if loaded.other_devices:
        log.info("%s: %d vectors of other devices skipped", loaded.path, loaded.other_devices)
    for problem in loaded.problems:
        log.warning("%s: %s", loaded.path, problem)


# ---- writing ------------------------------------------------------------------------------


def as_new_vector(device: str, vector: PropertyVector) -> NewVector:
    """The property's current values as the command that would set them."""
    elements: list[Element] = []
    for element in vector.elements:
        if isinstance(element, NumberElement):
            elements.append(NumberElement(name=element.name, value=element.value))
        elif isinstance(element, TextElement):
            elements.append(TextElement(name=element.name, value=element.value))
        elif isinstance(element, SwitchElement):
            elements.append(SwitchElement(name=element.name, value=element.value))
    return NewVector(kind=vector.kind, device=device, name=vector.name, elements=tuple(elements))


def command_for(device: str, vector: PropertyVector, values: Mapping[str, Value]) -> NewVector:
    """The command a client would send to set `values` (some or all members of `vector`).
    Turning one switch of a one-of-many (or at-most-one) vector on turns the others off."""
    proposed = PropertyVector.from_definition(vector.definition(""))
    merged: dict[str, Value] = dict(values)
    exclusive = (SwitchRule.ONE_OF_MANY, SwitchRule.AT_MOST_ONE)
    if vector.kind is VectorKind.SWITCH and vector.rule in exclusive and any(
        value is SwitchState.ON for value in values.values()
    ):
        merged = {name: SwitchState.OFF for name in proposed.values()} | merged
    proposed.set_values(merged)
    return as_new_vector(device, proposed)


def format_vector(command: NewVector) -> bytes:
    """A command as libindi's IUSaveConfigXXX writes it (every member, switches included)."""
    tag = f"new{command.kind.value}Vector"
    member = f"one{command.kind.value}"
    lines = [f"<{tag} device='{escape_attribute(command.device)}' "
             f"name='{escape_attribute(command.name)}'>"]
    for element in command.elements:
        lines.append(f"  <{member} name='{escape_attribute(element.name)}'>")
        lines.append(f"      {_value_text(element)}")
        lines.append(f"  </{member}>")
    lines.append(f"</{tag}>")
    return ("\n".join(lines) + "\n").encode()


def _value_text(element: object) -> str:
    if isinstance(element, NumberElement):
        # repr is the shortest text that reads back as the same double (libindi writes %.20g).
        text = repr(float(element.value))
        return text[:-2] if text.endswith(".0") else text
    if isinstance(element, SwitchElement):
        return str(element.value)
    if isinstance(element, TextElement):
        return escape_text(element.value)
    raise TypeError(f"cannot save a {type(element).__name__}")


def save_config(path: Path, device: str, vectors: list[PropertyVector], *,
                keep_unknown: bool = True) -> None:
    """Write the vectors' current values into the config file, in libindi's format.

    With keep_unknown, whatever the file held that these vectors do not replace (another
    driver's properties, other devices, properties not defined now) stays, where it was.
    Then `<path>.default` is made if there is none, as libindi does. Blocking; raises
    upload.UploadError (or OSError) with the reason and leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ours = {v.name: format_vector(as_new_vector(device, v)) for v in vectors}
    existing = _existing_entries(path) if keep_unknown else []
    write_atomically(path, [ROOT_OPEN, *_merged(existing, device, ours), ROOT_CLOSE])
    ensure_default(path)


def _existing_entries(path: Path) -> list[Entry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries, problems, _legacy = read_entries(data)
    for problem in problems:
        # An unreadable vector is kept (another driver may read it); other bytes are not.
        log.warning("%s: %s", path, problem)
    return entries


def _merged(existing: list[Entry], device: str, ours: dict[str, bytes]) -> list[bytes]:
    """Our vectors in the place the file had them (new ones at the end), the rest as found."""
    pending = dict(ours)
    chunks: list[bytes] = []
    for entry in existing:
        command = entry.command
        if command is not None and command.device == device and command.name in ours:
            replacement = pending.pop(command.name, None)
            if replacement is not None:
                chunks.append(replacement)
            continue
        chunks.append(entry.raw if entry.raw.endswith(b"\n") else entry.raw + b"\n")
    chunks.extend(pending.values())
    return chunks


def ensure_default(path: Path) -> bool:
    """Copy the config file to `<path>.default` unless that exists (libindi does this after
    every load and save, so the first saved configuration is the default one). True when a
    copy was made."""
    target = default_path(path)
    if target.exists():
        return False
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    write_atomically(target, [data])
    return True


def purge(path: Path) -> bool:
    """CONFIG_PURGE: remove the config file (the .default copy stays, as in libindi). False
    when there was none (libindi answers Alert then)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
