"""Typed, immutable INDI 1.7 messages: what the parser yields and the encoder writes.

One frozen dataclass per kind of top-level element. Vectors of the five types share three
classes (DefVector, SetVector, NewVector) tagged by `VectorKind`, because the five differ only
in their element type. No I/O, no XML here: see parser.py and encoder.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PropertyState(StrEnum):
    IDLE = "Idle"
    OK = "Ok"
    BUSY = "Busy"
    ALERT = "Alert"


class SwitchState(StrEnum):
    ON = "On"
    OFF = "Off"


class SwitchRule(StrEnum):
    ONE_OF_MANY = "OneOfMany"
    AT_MOST_ONE = "AtMostOne"
    ANY_OF_MANY = "AnyOfMany"


class Perm(StrEnum):
    RO = "ro"
    WO = "wo"
    RW = "rw"


class BlobEnable(StrEnum):
    NEVER = "Never"
    ALSO = "Also"
    ONLY = "Only"


class VectorKind(StrEnum):
    """The type part of the element names: def<Kind>Vector, one<Kind>, ..."""

    TEXT = "Text"
    NUMBER = "Number"
    SWITCH = "Switch"
    LIGHT = "Light"
    BLOB = "BLOB"


# ---- vector members -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextElement:
    name: str
    value: str = ""
    label: str | None = None


@dataclass(frozen=True, slots=True)
class NumberElement:
    """A number member. `format`, `min`, `max`, `step` are required in defs, optional in sets
    (libindi's limit-update extension) and absent in news."""

    name: str
    value: float = 0.0
    label: str | None = None
    format: str | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None


@dataclass(frozen=True, slots=True)
class SwitchElement:
    name: str
    value: SwitchState = SwitchState.OFF
    label: str | None = None


@dataclass(frozen=True, slots=True)
class LightElement:
    name: str
    value: PropertyState = PropertyState.IDLE
    label: str | None = None


@dataclass(frozen=True, slots=True)
class BlobElement:
    """A BLOB member. `data_b64` is the base64 text exactly as it travels (no whitespace), kept
    encoded so one encoding can be shared by every connection. `size` is the decoded (and
    decompressed) byte count. A defBLOB carries only name and label.

    `data` is the payload itself (what `size` counts, unless the format ends in .z), for
    clients on the local socket, which get it as shared memory instead of base64. The encoder
    never writes it. A producer may give `data` alone: the server then makes the base64 only
    if a client that needs it wants the frame."""

    name: str
    label: str | None = None
    format: str = ""
    size: int = 0
    data_b64: bytes | memoryview = b""
    data: bytes | memoryview | None = field(default=None, repr=False, compare=False)

    @property
    def attachable(self) -> bool:
        """Whether `data` can travel as a shared-memory attachment: libindi maps exactly `size`
        bytes of it, so it must be the whole payload (not a .z-compressed one)."""
        data = self.data
        if data is None or self.size <= 0:
            return False
        length = data.nbytes if isinstance(data, memoryview) else len(data)
        return length == self.size


Element = TextElement | NumberElement | SwitchElement | LightElement | BlobElement


# ---- top-level messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetProperties:
    version: str | None = "1.7"
    device: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class EnableBlob:
    device: str
    mode: BlobEnable
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PingRequest:
    uid: str


@dataclass(frozen=True, slots=True)
class PingReply:
    uid: str


@dataclass(frozen=True, slots=True)
class Message:
    """The <message> element: text for humans, device-wide or site-wide (device None)."""

    device: str | None = None
    message: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class DelProperty:
    device: str
    name: str | None = None
    timestamp: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class DefVector:
    kind: VectorKind
    device: str
    name: str
    state: PropertyState
    elements: tuple[Element, ...]
    label: str | None = None
    group: str | None = None
    perm: Perm | None = None  # None only for lights, which have no perm
    rule: SwitchRule | None = None  # switches only
    timeout: float = 0.0
    timestamp: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class SetVector:
    kind: VectorKind
    device: str
    name: str
    state: PropertyState | None
    elements: tuple[Element, ...]
    timeout: float | None = None
    timestamp: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class NewVector:
    kind: VectorKind
    device: str
    name: str
    elements: tuple[Element, ...]
    timestamp: str | None = None


IndiMessage = (
    GetProperties
    | EnableBlob
    | PingRequest
    | PingReply
    | Message
    | DelProperty
    | DefVector
    | SetVector
    | NewVector
)


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """Something the parser skipped (garbage, an over-limit element, a malformed message).

    The parser reports these beside the messages so the connection can log them; the stream
    goes on."""

    reason: str
    excerpt: str = field(default="")
