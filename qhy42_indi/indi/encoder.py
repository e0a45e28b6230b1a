"""INDI 1.7 encoder: one typed message in, the XML bytes of one top-level element out.

For: writing what libindi peers (KStars, indiserver, indi_getprop) and our own parser read:
every attribute value and text escaped, numbers in plain decimal (values.format_wire_number),
`state` on every set vector, label/group/perm/rule/timeout on every def (lights have neither
perm nor timeout), one newline after each element, no XML declaration and no comments.
`encode_chunks` hands a BLOB's base64 payload back as its own chunk, the very object from the
message, so one encoded frame is shared by every connection without copying; the payload is
written as it is, so it must be base64 without whitespace (as BlobElement requires). With
`attach_blobs` it writes the local-socket form instead (indiserver -u, libindi's shared-memory
BLOBs): every attachable member becomes `<oneBLOB name size format len attached="true"/>`
and its bytes travel beside the XML as a file descriptor, one per such member, in order.
Not for: sockets, queues or per-client BLOB policy (server/), nor filling in timestamps: the
encoder is a pure function and writes the timestamp the message holds, if any (callers stamp
messages with values.timestamp_now()).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import assert_never

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    Element,
    EnableBlob,
    GetProperties,
    IndiMessage,
    LightElement,
    Message,
    NewVector,
    NumberElement,
    PingReply,
    PingRequest,
    SetVector,
    SwitchElement,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.values import format_wire_number

Chunk = bytes | memoryview

# XML 1.0 forbids C0 controls other than tab, newline and carriage return anywhere.
_NEEDS_ESCAPE = re.compile(r"[&<>'\"\x00-\x1f\x7f]")
_CONTROL_CHARS = {code: None for code in (*range(0x20), 0x7F)}
_ENTITIES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("'"): "&apos;",
             ord('"'): "&quot;"}
# In text, tab/newline/CR survive (a multi-line oneText); every other control is dropped.
_TEXT_TABLE = {**_CONTROL_CHARS, 0x09: "\t", 0x0A: "\n", 0x0D: "\r", **_ENTITIES}
# In attribute values XML parsers turn tab/newline/CR into spaces and lilxml drops them, so
# write the space ourselves and both kinds of peer read the same value.
_ATTRIBUTE_TABLE = {**_CONTROL_CHARS, 0x09: " ", 0x0A: " ", 0x0D: " ", **_ENTITIES}

_DEFAULT_NUMBER_FORMAT = "%g"
_MEMBER_INDENT = "\n  "


def encode(msg: IndiMessage) -> bytes:
    """The complete XML of `msg`, newline-terminated."""
    return b"".join(encode_chunks(msg))


def encode_chunks(msg: IndiMessage, *, attach_blobs: bool = False) -> list[Chunk]:
    """The XML of `msg` as chunks to write in order. Each BLOB payload (BlobElement.data_b64)
    is one chunk of its own, the same object the message holds (no copy). With `attach_blobs`,
    members whose `attachable` is true are written as attachments, without payload."""
    writer = _Writer(attach_blobs=attach_blobs)
    match msg:
        case GetProperties():
            writer.empty("getProperties", _get_properties_attributes(msg))
        case EnableBlob():
            writer.element("enableBLOB", (("device", msg.device), ("name", msg.name)),
                           msg.mode.value)
        case PingRequest():
            writer.empty("pingRequest", (("uid", msg.uid),))
        case PingReply():
            writer.empty("pingReply", (("uid", msg.uid),))
        case Message():
            writer.empty("message", _message_attributes(msg))
        case DelProperty():
            writer.empty("delProperty", _del_property_attributes(msg))
        case DefVector():
            _write_vector(writer, "def", msg.kind, _def_attributes(msg), msg.elements)
        case SetVector():
            _write_vector(writer, "set", msg.kind, _set_attributes(msg), msg.elements)
        case NewVector():
            _write_vector(writer, "new", msg.kind, _new_attributes(msg), msg.elements)
        case _:
            assert_never(msg)
    writer.text("\n")
    return writer.chunks()


# ---- escaping -------------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """Escape element text: & < > ' " as entities, C0 controls other than tab/newline/CR
    dropped."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return value.translate(_TEXT_TABLE)


def escape_attribute(value: str) -> str:
    """Escape an attribute value: & < > ' " as entities, tab/newline/CR as spaces, other C0
    controls dropped."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return value.translate(_ATTRIBUTE_TABLE)


# ---- the writer -----------------------------------------------------------------------------


Attributes = Iterable[tuple[str, str | None]]


class _Writer:
    """Collects XML text and BLOB payload chunks in order."""

    def __init__(self, *, attach_blobs: bool = False) -> None:
        self.attach_blobs = attach_blobs
        self._chunks: list[Chunk] = []
        self._pending: list[str] = []

    def text(self, markup: str) -> None:
        self._pending.append(markup)

    def payload(self, data: Chunk) -> None:
        self._flush()
        self._chunks.append(data)

    def chunks(self) -> list[Chunk]:
        self._flush()
        return self._chunks

    def start(self, tag: str, attributes: Attributes) -> None:
        self.text(f"<{tag}{_attributes(attributes)}>")

    def end(self, tag: str) -> None:
        self.text(f"</{tag}>")

    def empty(self, tag: str, attributes: Attributes) -> None:
        self.text(f"<{tag}{_attributes(attributes)}/>")

    def element(self, tag: str, attributes: Attributes, content: str) -> None:
        self.text(f"<{tag}{_attributes(attributes)}>{escape_text(content)}</{tag}>")

    def _flush(self) -> None:
        if self._pending:
            self._chunks.append("".join(self._pending).encode("utf-8", "replace"))
            self._pending.clear()


def _attributes(attributes: Attributes) -> str:
    return "".join(f' {name}="{escape_attribute(value)}"'
                   for name, value in attributes if value is not None)


# ---- top-level attributes -------------------------------------------------------------------


def _get_properties_attributes(msg: GetProperties) -> Attributes:
    return (("version", msg.version), ("device", msg.device), ("name", msg.name))


def _message_attributes(msg: Message) -> Attributes:
    return (("device", msg.device), ("timestamp", msg.timestamp), ("message", msg.message))


def _del_property_attributes(msg: DelProperty) -> Attributes:
    return (("device", msg.device), ("name", msg.name), ("timestamp", msg.timestamp),
            ("message", msg.message))


def _new_attributes(msg: NewVector) -> Attributes:
    return (("device", msg.device), ("name", msg.name), ("timestamp", msg.timestamp))


def _def_attributes(msg: DefVector) -> Attributes:
    """Every attribute libindi clients look for, with the DTD defaults written out (a missing
    label is the name, a missing group is blank) because some clients do not apply them."""
    is_light = msg.kind is VectorKind.LIGHT
    if not is_light and msg.perm is None:
        raise ValueError(f"def{msg.kind}Vector {msg.name!r} needs a perm")
    if msg.kind is VectorKind.SWITCH and msg.rule is None:
        raise ValueError(f"defSwitchVector {msg.name!r} needs a rule")
    # Lights have neither perm nor timeout in the DTD; a non-zero timeout is still kept.
    timeout = None if is_light and msg.timeout == 0 else format_wire_number(msg.timeout)
    return (
        ("device", msg.device),
        ("name", msg.name),
        ("label", msg.name if msg.label is None else msg.label),
        ("group", "" if msg.group is None else msg.group),
        ("state", msg.state.value),
        ("perm", None if is_light or msg.perm is None else msg.perm.value),
        ("rule", None if msg.rule is None else msg.rule.value),
        ("timeout", timeout),
        ("timestamp", msg.timestamp),
        ("message", msg.message),
    )


def _set_attributes(msg: SetVector) -> Attributes:
    # The DTD allows a set without state ("no change") but libindi clients reject it.
    if msg.state is None:
        raise ValueError(f"set{msg.kind}Vector {msg.name!r} needs a state")
    timeout = None if msg.timeout is None else format_wire_number(msg.timeout)
    return (
        ("device", msg.device),
        ("name", msg.name),
        ("state", msg.state.value),
        ("timeout", timeout),
        ("timestamp", msg.timestamp),
        ("message", msg.message),
    )


# ---- vectors and members --------------------------------------------------------------------


def _write_vector(writer: _Writer, direction: str, kind: VectorKind, attributes: Attributes,
                  elements: tuple[Element, ...]) -> None:
    vector_tag = f"{direction}{kind.value}Vector"
    member_tag = f"{'def' if direction == 'def' else 'one'}{kind.value}"
    writer.start(vector_tag, attributes)
    for element in elements:
        writer.text(_MEMBER_INDENT)
        _write_member(writer, direction, member_tag, kind, element)
    writer.text("\n")
    writer.end(vector_tag)


def _write_member(writer: _Writer, direction: str, tag: str, kind: VectorKind,
                  element: Element) -> None:
    is_def = direction == "def"
    label = element.label if is_def else None
    match element:
        case TextElement() if kind is VectorKind.TEXT:
            writer.element(tag, (("name", element.name), ("label", label)), element.value)
        case NumberElement() if kind is VectorKind.NUMBER:
            attributes = _number_attributes(element, label, is_def=is_def)
            writer.element(tag, attributes, format_wire_number(element.value))
        case SwitchElement() if kind is VectorKind.SWITCH:
            writer.element(tag, (("name", element.name), ("label", label)), element.value.value)
        case LightElement() if kind is VectorKind.LIGHT:
            writer.element(tag, (("name", element.name), ("label", label)), element.value.value)
        case BlobElement() if kind is VectorKind.BLOB and is_def:
            writer.empty(tag, (("name", element.name), ("label", label)))
        case BlobElement() if kind is VectorKind.BLOB and writer.attach_blobs and (
            element.attachable
        ):
            _write_attached_blob(writer, tag, element)
        case BlobElement() if kind is VectorKind.BLOB:
            _write_blob(writer, tag, element)
        case _:
            raise ValueError(f"{type(element).__name__} {element.name!r} in a {kind} vector")


def _number_attributes(element: NumberElement, label: str | None, *, is_def: bool) -> Attributes:
    """Defs carry all four of format/min/max/step (DTD #REQUIRED); sets and news carry
    min/max/step only when given (libindi's limit-update extension)."""
    if is_def:
        return (
            ("name", element.name),
            ("label", label),
            ("format", _DEFAULT_NUMBER_FORMAT if element.format is None else element.format),
            ("min", format_wire_number(0.0 if element.min is None else element.min)),
            ("max", format_wire_number(0.0 if element.max is None else element.max)),
            ("step", format_wire_number(0.0 if element.step is None else element.step)),
        )
    return (
        ("name", element.name),
        ("min", None if element.min is None else format_wire_number(element.min)),
        ("max", None if element.max is None else format_wire_number(element.max)),
        ("step", None if element.step is None else format_wire_number(element.step)),
    )


def _write_blob(writer: _Writer, tag: str, element: BlobElement) -> None:
    payload = element.data_b64
    encoded_length = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    attributes = (
        ("name", element.name),
        ("size", str(element.size)),
        ("format", element.format),
        # indiserver's own form: `len` (decoded bytes), no `enclen`. libindiclient 1.9.9
        # given `enclen` on a multi-megabyte BLOB never delivers it (seen with KStars' library).
        ("len", str(element.size)),
    )
    writer.start(tag, attributes)
    if encoded_length:
        writer.payload(payload)
    writer.end(tag)


def _write_attached_blob(writer: _Writer, tag: str, element: BlobElement) -> None:
    # indiserver's form (SerializedMsgWithSharedBuffer): len is the byte length of the
    # attachment; libindi maps `size` bytes of the descriptor that came with the message.
    attributes = (
        ("name", element.name),
        ("size", str(element.size)),
        ("format", element.format),
        ("len", str(element.size)),
        ("attached", "true"),
    )
    writer.empty(tag, attributes)
