"""CONFIG_PROCESS storage: the device's saved property values, in ~/.indi as libindi keeps them.

The file is `<config dir>/<device name>_config.xml` (config dir: ~/.indi, or the directory of
$INDICONFIG), written atomically. It holds one newXXXVector per saved property, so loading it
replays those values through the same checks and handlers as a client's command. Not the
daemon's own configuration (config.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from qhy42_indi.camera.upload import write_atomically
from qhy42_indi.indi.encoder import encode
from qhy42_indi.indi.messages import (
    NewVector,
    NumberElement,
    SwitchElement,
    TextElement,
)
from qhy42_indi.indi.parser import IndiParser
from qhy42_indi.indi.properties import PropertyVector


def config_path(device_name: str) -> Path:
    explicit = os.environ.get("INDICONFIG")
    directory = Path(explicit).parent if explicit else Path.home() / ".indi"
    return directory / f"{device_name.replace('/', '_')}_config.xml"


def as_new_vector(device: str, vector: PropertyVector) -> NewVector:
    """The property's current values as the command that would set them."""
    elements: list[NumberElement | TextElement | SwitchElement] = []
    for element in vector.elements:
        if isinstance(element, NumberElement):
            elements.append(NumberElement(name=element.name, value=element.value))
        elif isinstance(element, TextElement):
            elements.append(TextElement(name=element.name, value=element.value))
        elif isinstance(element, SwitchElement):
            elements.append(SwitchElement(name=element.name, value=element.value))
    return NewVector(kind=vector.kind, device=device, name=vector.name, elements=tuple(elements))


def save_config(path: Path, device: str, vectors: list[PropertyVector]) -> None:
    """Blocking; raises upload.UploadError with the reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, [encode(as_new_vector(device, v)) for v in vectors])


def load_config(path: Path) -> list[NewVector]:
    """The saved commands, in file order; [] when there is no file. Garbage is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    parser = IndiParser()
    return [m for m in (*parser.feed(data), *parser.close()) if isinstance(m, NewVector)]
