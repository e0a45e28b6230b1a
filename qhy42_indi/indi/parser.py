"""Incremental INDI 1.7 parser: a byte stream of top-level XML elements in, typed messages out.

For: any INDI byte stream, fed in chunks of any size (one byte at a time works), in time linear
in its length. Two stages:

1. A framer scans the stream once, finds where each top-level element starts and ends (by
   tags, quotes and depth, never by re-reading a growing buffer), enforces the limits and skips
   what is not INDI. Like libindi's lilxml, on any syntax error it drops what it has of the
   element and resynchronises at the next '<'; the stream goes on. A BLOB's base64 body is
   diverted around the XML parser (it is most of the bytes and needs no XML work), so an 11 MB
   image costs a few memchr and memcpy passes.
2. The skeleton of each complete element goes to a fresh expat parser hardened as defusedxml
   hardens it (no DTD, no entity declarations, no external entities: only the five predefined
   entities), and the tree is turned into one message from messages.py, checked against the
   INDI DTD (required attributes, enumerations, member types).

What is skipped is reported as a ParseProblem beside the messages, in stream order, so the
connection can log it. A run of consecutive junk between messages (text, stray tags, unknown
elements, declarations) is one problem, reported when the next message starts or at close().
`<?...?>` (libindi drivers write `<?xml version='1.0'?>` before every message) and comments
are skipped silently.
Not for: sockets, asyncio, routing, or what a message means to a device.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum, StrEnum, auto
from typing import Final, TypeVar
from xml.parsers import expat

from qhy42_indi.indi.messages import (
    BlobElement,
    BlobEnable,
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
    ParseProblem,
    Perm,
    PingReply,
    PingRequest,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.values import parse_decimal, parse_number

ParseResult = IndiMessage | ParseProblem

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 2
DEFAULT_MAX_ATTRIBUTES: Final = 32
DEFAULT_MAX_NAME_LENGTH: Final = 64
DEFAULT_MAX_ATTRIBUTE_LENGTH: Final = 64 * 1024

EXCERPT_BYTES: Final = 80

_SIMPLE_ELEMENTS = frozenset(
    {"getProperties", "enableBLOB", "pingRequest", "pingReply", "message", "delProperty"}
)
_VECTOR_ELEMENTS = frozenset(
    [f"def{kind.value}Vector" for kind in VectorKind]
    + [f"set{kind.value}Vector" for kind in VectorKind]
    + [f"new{kind.value}Vector" for kind in VectorKind if kind is not VectorKind.LIGHT]
)
TOP_LEVEL_ELEMENTS: Final = _SIMPLE_ELEMENTS | _VECTOR_ELEMENTS
_BLOB_CARRIERS = frozenset({"setBLOBVector", "newBLOBVector"})

_LT, _GT, _SLASH, _BANG, _QUESTION = b"<>/!?"
_XML_WHITESPACE = b" \t\r\n"
_XML_WHITESPACE_TEXT = " \t\r\n"
_NAME = rb"[A-Za-z_:][-A-Za-z0-9_.:]*"
_START_TAG = re.compile(
    rb"<(" + _NAME + rb")((?:\s+" + _NAME + rb"""\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(/?)>"""
)
_END_TAG = re.compile(rb"</(" + _NAME + rb")\s*>")
_NAME_START_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:")
_TAG_DELIMITERS = re.compile(rb"""["'<>]""")
_QUOTE_END = {ord('"'): re.compile(rb'["<]'), ord("'"): re.compile(rb"['<]")}
_PI_END = re.compile(rb"\?>|<")
_COMMENT_END = b"-->"
# Between the quoted values of a tag there is a name, '=' and some indentation; more than this
# many unquoted bytes in a row is not a tag worth waiting for.
_UNQUOTED_SLACK = 1024


class _State(Enum):
    BETWEEN = auto()  # at top level, outside any element
    MARKUP = auto()  # at a '<', deciding what it opens
    TAG = auto()  # inside a start or end tag, looking for its '>'
    TEXT = auto()  # character data inside a message
    BLOB_BODY = auto()  # base64 inside a oneBLOB, kept out of expat
    PI = auto()  # inside <?...?>, skipped
    COMMENT = auto()  # inside <!--...-->, skipped


@dataclass(frozen=True, slots=True)
class _Limits:
    max_message_bytes: int
    max_depth: int
    max_attributes: int
    max_name_length: int
    max_attribute_length: int


@dataclass(slots=True)
class _JunkRun:
    """Consecutive skipped input between messages, reported as one problem."""

    reason: str
    excerpt: bytearray


class IndiParser:
    """Feed bytes, get INDI messages and ParseProblems, in stream order.

    Limits (keyword arguments):
      max_message_bytes: bytes of one top-level element, BLOB data included (64 MiB; a client
        that receives large frames may raise it).
      max_depth: element nesting in one message, the top-level element included. INDI uses
        two levels (vector, member); deeper is refused.
      max_attributes: attributes on one element.
      max_name_length: characters in a tag or attribute name.
      max_attribute_length: bytes of one attribute value as written (entities unexpanded).
    An element over a limit is skipped and reported; memory stays bounded by the limits, and
    time stays linear, whatever the input.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
        max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
        max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH,
    ) -> None:
        if min(max_message_bytes, max_depth, max_attributes, max_name_length,
               max_attribute_length) < 1:
            raise ValueError("parser limits must be positive")
        self._limits = _Limits(max_message_bytes, max_depth, max_attributes, max_name_length,
                               max_attribute_length)
        self._max_unquoted = 2 * max_name_length + _UNQUOTED_SLACK
        self._handlers: dict[_State, Callable[[], bool]] = {
            _State.BETWEEN: self._between,
            _State.MARKUP: self._markup,
            _State.TAG: self._tag,
            _State.TEXT: self._text,
            _State.BLOB_BODY: self._blob_body,
            _State.PI: self._processing_instruction,
            _State.COMMENT: self._comment,
        }
        self._out: list[ParseResult] = []
        self._buf = bytearray()
        self._state = _State.BETWEEN
        self._junk: _JunkRun | None = None
        self._reset_tag_scan(is_end=False)
        self._reset_message()

    # ---- public API ----

    def feed(self, data: bytes | bytearray | memoryview) -> list[ParseResult]:
        """Parse the next bytes of the stream; return what they completed."""
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer; we may keep the bytes
        if self._state is _State.BLOB_BODY and not self._buf:
            data = self._divert_blob_chunk(data)
        self._buf += data
        while self._handlers[self._state]():
            if self._message_size > self._limits.max_message_bytes:
                self._fail(f"message larger than {self._limits.max_message_bytes} bytes", 0)
        if self._message_size > self._limits.max_message_bytes:
            self._fail(f"message larger than {self._limits.max_message_bytes} bytes", 0)
        return self._take_output()

    def close(self) -> list[ParseResult]:
        """End of stream: report an unfinished element or trailing junk, and reset."""
        if self._stack:
            self._report(f"stream ended inside <{self._stack[0]}>", self._excerpt)
        elif self._state in (_State.MARKUP, _State.TAG):
            self._add_junk("stream ended inside a tag", self._buf)
        self._flush_junk()
        self._buf.clear()
        self._state = _State.BETWEEN
        self._reset_message()
        return self._take_output()

    # ---- output ----

    def _take_output(self) -> list[ParseResult]:
        out, self._out = self._out, []
        return out

    def _report(self, reason: str, excerpt: bytes | bytearray) -> None:
        self._out.append(ParseProblem(reason, _printable_excerpt(excerpt)))

    def _add_junk(self, reason: str, data: bytes | bytearray) -> None:
        if self._junk is None:
            self._junk = _JunkRun(reason, bytearray())
        room = EXCERPT_BYTES - len(self._junk.excerpt)
        if room > 0:
            self._junk.excerpt += data[:room]

    def _flush_junk(self) -> None:
        if self._junk is not None:
            self._report(self._junk.reason, self._junk.excerpt)
            self._junk = None

    # ---- message being framed ----

    def _reset_message(self) -> None:
        self._stack: list[str] = []
        self._skeleton = bytearray()
        self._excerpt = bytearray()
        self._message_size = 0
        self._in_blob = False
        self._blob_parts: list[bytes] = []
        self._blob_bodies: list[bytes] = []

    def _note(self, data: bytes | bytearray) -> None:
        self._message_size += len(data)
        room = EXCERPT_BYTES - len(self._excerpt)
        if room > 0:
            self._excerpt += data[:room]

    def _take(self, count: int) -> None:
        """Move the next `count` buffered bytes into the message skeleton."""
        piece = self._buf[:count]
        del self._buf[:count]
        self._skeleton += piece
        self._note(piece)

    def _content_state(self) -> _State:
        if not self._stack:
            return _State.BETWEEN
        return _State.BLOB_BODY if self._in_blob else _State.TEXT

    def _fail(self, reason: str, drop: int) -> bool:
        """Skip the element being framed (or, between messages, the construct at hand), drop
        `drop` buffered bytes and resynchronise at the next '<'."""
        dropped = self._buf[:drop]
        del self._buf[:drop]
        if self._stack:
            self._note(dropped)
            self._report(reason, self._excerpt)
            self._reset_message()
        else:
            self._add_junk(reason, dropped)
        self._state = _State.BETWEEN
        return True

    def _finish_message(self) -> None:
        skeleton, bodies, excerpt = bytes(self._skeleton), self._blob_bodies, self._excerpt
        self._reset_message()
        self._state = _State.BETWEEN
        try:
            self._out.append(_build_message(_parse_tree(skeleton, self._limits), bodies))
        except expat.ExpatError as error:
            self._report(f"XML error: {error}", excerpt)
        except _Invalid as error:
            self._report(str(error), excerpt)

    # ---- framer states: each returns False when it needs more bytes ----

    def _between(self) -> bool:
        buf = self._buf
        at = buf.find(b"<")
        end = len(buf) if at < 0 else at
        if end:
            text = buf[:end]
            del buf[:end]
            if text.strip(_XML_WHITESPACE):
                self._add_junk("text outside any element", text)
            elif self._junk is not None:
                self._add_junk(self._junk.reason, text)
        if at < 0:
            return False
        self._state = _State.MARKUP
        return True

    def _markup(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        second = buf[1]
        if second == _QUESTION:
            return self._begin_skip(_State.PI, 2)
        if second == _BANG:
            return self._markup_declaration()
        if second == _SLASH and not self._stack:
            return self._fail("end tag outside any element", 2)
        if second == _SLASH or second in _NAME_START_BYTES:
            self._reset_tag_scan(is_end=second == _SLASH)
            self._state = _State.TAG
            return True
        return self._fail("'<' not followed by a tag name", 1)

    def _markup_declaration(self) -> bool:
        if len(self._buf) < 4 and b"<!--".startswith(self._buf):
            return False
        if self._buf.startswith(b"<!--"):
            return self._begin_skip(_State.COMMENT, 4)
        # DOCTYPE, ENTITY, CDATA: no INDI peer sends them and a DTD is how XML bombs start.
        return self._fail("markup declarations (DOCTYPE, ENTITY, CDATA) are refused", 2)

    def _begin_skip(self, state: _State, opener_length: int) -> bool:
        del self._buf[:opener_length]
        self._state = state
        return True

    def _processing_instruction(self) -> bool:
        match = _PI_END.search(self._buf)
        if match is None:
            del self._buf[: max(len(self._buf) - 1, 0)]  # keep a '?' that may start '?>'
            return False
        if match[0] == b"<":
            return self._fail("unterminated processing instruction", match.start())
        del self._buf[: match.end()]
        self._state = self._content_state()
        return True

    def _comment(self) -> bool:
        at = self._buf.find(_COMMENT_END)
        if at < 0:
            del self._buf[: max(len(self._buf) - 2, 0)]  # keep a '--' that may start '-->'
            return False
        del self._buf[: at + len(_COMMENT_END)]
        self._state = self._content_state()
        return True

    def _text(self) -> bool:
        at = self._buf.find(b"<")
        if at < 0:
            self._take(len(self._buf))
            return False
        self._take(at)
        self._state = _State.MARKUP
        return True

    def _blob_body(self) -> bool:
        buf = self._buf
        at = buf.find(b"<")
        end = len(buf) if at < 0 else at
        if end:
            piece = bytes(buf[:end])
            del buf[:end]
            self._blob_parts.append(piece)
            self._note(piece)
        if at < 0:
            return False
        self._state = _State.MARKUP
        return True

    def _divert_blob_chunk(self, data: bytes) -> bytes:
        """Fast path for the bulk of a BLOB: the body bytes of a fresh chunk are kept as they
        are (bytes are immutable), without passing through the buffer. Returns the rest."""
        at = data.find(b"<")
        piece, rest = (data, b"") if at < 0 else (data[:at], data[at:])
        if piece:
            self._blob_parts.append(piece)
            self._note(piece)
        return rest

    # ---- tags ----

    def _reset_tag_scan(self, *, is_end: bool) -> None:
        self._tag_is_end = is_end
        self._scan = 2  # past '<' and the first name byte (or '/')
        self._quote = 0
        self._quote_start = 0
        self._unquoted_start = 0
        self._attribute_count = 0

    def _tag(self) -> bool:
        """Find the '>' that closes the tag at the front of the buffer, resuming where the
        previous call stopped, with quoted attribute values skipped whole."""
        while True:
            progress = self._scan_quoted() if self._quote else self._scan_unquoted()
            if progress is not None:
                return progress

    def _scan_quoted(self) -> bool | None:
        buf = self._buf
        match = _QUOTE_END[self._quote].search(buf, self._scan)
        end = len(buf) if match is None else match.start()
        if end - self._quote_start - 1 > self._limits.max_attribute_length:
            limit = self._limits.max_attribute_length
            return self._fail(f"attribute value longer than {limit} bytes", end)
        if match is None:
            self._scan = len(buf)
            return False
        if buf[end] == _LT:
            return self._fail("'<' inside a tag", end)
        self._quote = 0
        self._scan = self._unquoted_start = end + 1
        return None

    def _scan_unquoted(self) -> bool | None:
        buf = self._buf
        match = _TAG_DELIMITERS.search(buf, self._scan)
        end = len(buf) if match is None else match.start()
        if end - self._unquoted_start > self._max_unquoted:
            return self._fail("tag too long", end)
        if match is None:
            self._scan = len(buf)
            return False
        delimiter = buf[end]
        if delimiter == _GT:
            return self._complete_tag(end + 1)
        if delimiter == _LT:
            return self._fail("'<' inside a tag", end)
        self._attribute_count += 1
        if self._attribute_count > self._limits.max_attributes:
            return self._fail(f"more than {self._limits.max_attributes} attributes", end)
        self._quote, self._quote_start, self._scan = delimiter, end, end + 1
        return None

    def _complete_tag(self, length: int) -> bool:
        tag = bytes(self._buf[:length])
        if self._tag_is_end:
            return self._complete_end_tag(tag)
        return self._complete_start_tag(tag)

    def _complete_end_tag(self, tag: bytes) -> bool:
        match = _END_TAG.fullmatch(tag)
        if match is None:
            return self._fail("malformed end tag", len(tag))
        name = match[1].decode("ascii")
        if name != self._stack[-1]:
            return self._fail(f"</{name}> does not close <{self._stack[-1]}>", len(tag))
        self._take(len(tag))
        self._stack.pop()
        if self._in_blob:
            self._end_blob_body()
        self._element_closed()
        return True

    def _complete_start_tag(self, tag: bytes) -> bool:
        match = _START_TAG.fullmatch(tag)
        if match is None:
            return self._fail("malformed tag", len(tag))
        name = match[1].decode("ascii")
        refusal = self._refusal(name)
        if refusal is not None:
            return self._fail(refusal, len(tag))
        if not self._stack:
            self._flush_junk()  # a message starts, so the junk before it has ended
        self._take(len(tag))
        self._open_element(name, is_empty=bool(match[3]))
        return True

    def _refusal(self, name: str) -> str | None:
        """Why an element named `name` cannot open here, or None if it can."""
        if len(name) > self._limits.max_name_length:
            return f"name longer than {self._limits.max_name_length}"
        if not self._stack and name not in TOP_LEVEL_ELEMENTS:
            return f"<{name}> is not a top-level INDI element"
        if len(self._stack) >= self._limits.max_depth:
            return f"elements nested deeper than {self._limits.max_depth}"
        return None

    def _open_element(self, name: str, *, is_empty: bool) -> None:
        carries_blob = (name == "oneBLOB" and len(self._stack) == 1
                        and self._stack[0] in _BLOB_CARRIERS)
        if is_empty:
            if carries_blob:
                self._blob_bodies.append(b"")  # keeps bodies in step with oneBLOB members
            self._element_closed()
            return
        self._stack.append(name)
        self._in_blob = carries_blob
        self._state = self._content_state()

    def _element_closed(self) -> None:
        if self._stack:
            self._state = _State.TEXT
        else:
            self._finish_message()

    def _end_blob_body(self) -> None:
        parts = self._blob_parts
        self._blob_bodies.append(parts[0] if len(parts) == 1 else b"".join(parts))
        self._blob_parts = []
        self._in_blob = False


# ---- stage 2: expat on one complete element ------------------------------------------------


class _Invalid(ValueError):
    """The element is well-formed XML but not a valid INDI message."""


class _Refused(_Invalid):
    """The element uses an XML feature we refuse (DTD, entity declarations, over-limit)."""


@dataclass(slots=True)
class _Node:
    name: str
    attributes: dict[str, str]
    text: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)


def _refuse_dtd(*_args: object) -> None:
    raise _Refused("DTDs are refused")


def _refuse_entity_declaration(*_args: object) -> None:
    raise _Refused("entity declarations are refused")


def _refuse_external_entity(*_args: object) -> int:
    raise _Refused("external entities are refused")


def _hardened_expat(encoding: str) -> expat.XMLParserType:
    """An expat parser with the protections defusedxml applies: no DTD, no entity
    declarations, no external or parameter entities. The framer never forwards a declaration,
    so these are a second line of defence."""
    parser = expat.ParserCreate(encoding)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_entity_declaration
    parser.UnparsedEntityDeclHandler = _refuse_entity_declaration
    parser.ExternalEntityRefHandler = _refuse_external_entity
    parser.buffer_text = True
    return parser


def _encoding_of(skeleton: bytes) -> str:
    """UTF-8, or ISO-8859-1 (the white paper's charset) for bytes that are not UTF-8."""
    if skeleton.isascii():
        return "UTF-8"
    try:
        skeleton.decode("utf-8")
    except UnicodeDecodeError:
        return "ISO-8859-1"
    return "UTF-8"


def _parse_tree(skeleton: bytes, limits: _Limits) -> _Node:
    parser = _hardened_expat(_encoding_of(skeleton))
    roots: list[_Node] = []
    open_nodes: list[_Node] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        _check_names(name, attributes, limits)
        node = _Node(name, attributes)
        (open_nodes[-1].children if open_nodes else roots).append(node)
        open_nodes.append(node)

    def end(_name: str) -> None:
        open_nodes.pop()

    def text(data: str) -> None:
        if open_nodes:
            open_nodes[-1].text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(skeleton, True)
    return roots[0]


def _check_names(name: str, attributes: dict[str, str], limits: _Limits) -> None:
    if len(attributes) > limits.max_attributes:
        raise _Refused(f"<{name}> has more than {limits.max_attributes} attributes")
    for attribute in attributes:
        if len(attribute) > limits.max_name_length:
            raise _Refused(f"<{name}> has an attribute name longer than {limits.max_name_length}")


# ---- stage 3: tree to message ---------------------------------------------------------------


_E = TypeVar("_E", bound=StrEnum)


def _build_message(root: _Node, blob_bodies: list[bytes]) -> IndiMessage:
    simple = _SIMPLE_BUILDERS.get(root.name)
    if simple is not None:
        if root.children:
            raise _Invalid(f"<{root.name}> must be empty, found <{root.children[0].name}>")
        return simple(root)
    direction, kind = root.name[:3], VectorKind(root.name[3:-len("Vector")])
    elements = _build_members(root, direction, kind, blob_bodies)
    if direction == "def":
        return _build_def_vector(root, kind, elements)
    if direction == "set":
        return _build_set_vector(root, kind, elements)
    return NewVector(kind, _required(root, "device"), _required(root, "name"), elements,
                     timestamp=root.attributes.get("timestamp"))


def _required(node: _Node, attribute: str) -> str:
    value = node.attributes.get(attribute)
    if value is None:
        raise _Invalid(f"<{node.name}> without required attribute {attribute!r}")
    return value


def _enum(kind: type[_E], value: str, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise _Invalid(f"{where}: {value!r} is not a valid {kind.__name__}") from None


def _text_of(node: _Node) -> str:
    return "".join(node.text).strip(_XML_WHITESPACE_TEXT)


def _number(text: str, where: str, *, sexagesimal: bool) -> float:
    try:
        return parse_number(text) if sexagesimal else parse_decimal(text)
    except ValueError as error:
        raise _Invalid(f"{where}: {error}") from None


def _optional_number(node: _Node, attribute: str) -> float | None:
    value = node.attributes.get(attribute)
    if value is None:
        return None
    return _number(value, f"<{node.name}> {attribute}", sexagesimal=False)


def _required_number(node: _Node, attribute: str) -> float:
    return _number(_required(node, attribute), f"<{node.name}> {attribute}", sexagesimal=False)


# -- simple messages --


def _build_get_properties(node: _Node) -> GetProperties:
    # version is required from clients but absent in a driver's snoop request.
    attributes = node.attributes
    return GetProperties(attributes.get("version"), attributes.get("device"),
                         attributes.get("name"))


def _build_enable_blob(node: _Node) -> EnableBlob:
    mode = _enum(BlobEnable, _text_of(node), "<enableBLOB>")
    return EnableBlob(_required(node, "device"), mode, node.attributes.get("name"))


def _build_ping_request(node: _Node) -> PingRequest:
    return PingRequest(_required(node, "uid"))


def _build_ping_reply(node: _Node) -> PingReply:
    return PingReply(_required(node, "uid"))


def _build_message_element(node: _Node) -> Message:
    attributes = node.attributes
    return Message(attributes.get("device"), attributes.get("message"),
                   attributes.get("timestamp"))


def _build_del_property(node: _Node) -> DelProperty:
    attributes = node.attributes
    return DelProperty(_required(node, "device"), attributes.get("name"),
                       attributes.get("timestamp"), attributes.get("message"))


_SIMPLE_BUILDERS: dict[str, Callable[[_Node], IndiMessage]] = {
    "getProperties": _build_get_properties,
    "enableBLOB": _build_enable_blob,
    "pingRequest": _build_ping_request,
    "pingReply": _build_ping_reply,
    "message": _build_message_element,
    "delProperty": _build_del_property,
}


# -- vectors --


def _build_def_vector(node: _Node, kind: VectorKind, elements: tuple[Element, ...]) -> DefVector:
    where = f"<{node.name}>"
    is_light = kind is VectorKind.LIGHT
    timeout = _optional_number(node, "timeout")
    return DefVector(
        kind,
        _required(node, "device"),
        _required(node, "name"),
        _enum(PropertyState, _required(node, "state"), where),
        elements,
        label=node.attributes.get("label"),
        group=node.attributes.get("group"),
        # Lights have no perm; one found on a light is ignored, as libindi does.
        perm=None if is_light else _enum(Perm, _required(node, "perm"), where),
        rule=_enum(SwitchRule, _required(node, "rule"), where)
        if kind is VectorKind.SWITCH
        else None,
        timeout=0.0 if timeout is None else timeout,
        timestamp=node.attributes.get("timestamp"),
        message=node.attributes.get("message"),
    )


def _build_set_vector(node: _Node, kind: VectorKind, elements: tuple[Element, ...]) -> SetVector:
    state = node.attributes.get("state")
    return SetVector(
        kind,
        _required(node, "device"),
        _required(node, "name"),
        None if state is None else _enum(PropertyState, state, f"<{node.name}>"),
        elements,
        timeout=_optional_number(node, "timeout"),
        timestamp=node.attributes.get("timestamp"),
        message=node.attributes.get("message"),
    )


def _build_members(node: _Node, direction: str, kind: VectorKind,
                   blob_bodies: list[bytes]) -> tuple[Element, ...]:
    member_tag = f"{'def' if direction == 'def' else 'one'}{kind.value}"
    if not node.children:
        raise _Invalid(f"<{node.name}> has no <{member_tag}>")
    bodies = iter(blob_bodies)
    elements: list[Element] = []
    for child in node.children:
        if child.name != member_tag:
            raise _Invalid(f"<{node.name}> cannot hold <{child.name}>")
        if child.children:
            raise _Invalid(f"<{child.name}> cannot hold <{child.children[0].name}>")
        elements.append(_build_member(child, direction, kind, bodies))
    return tuple(elements)


def _build_member(node: _Node, direction: str, kind: VectorKind,
                  bodies: Iterator[bytes]) -> Element:
    name = _required(node, "name")
    label = node.attributes.get("label") if direction == "def" else None
    where = f"<{node.name} name={name!r}>"
    if kind is VectorKind.TEXT:
        return TextElement(name, _text_of(node), label)
    if kind is VectorKind.NUMBER:
        return _build_number(node, name, label, direction, where)
    if kind is VectorKind.SWITCH:
        return SwitchElement(name, _enum(SwitchState, _text_of(node), where), label)
    if kind is VectorKind.LIGHT:
        return LightElement(name, _enum(PropertyState, _text_of(node), where), label)
    if direction == "def":
        return BlobElement(name, label)
    return _build_blob(node, name, next(bodies, b""), where)


def _build_number(node: _Node, name: str, label: str | None, direction: str,
                  where: str) -> NumberElement:
    # Devices must accept sexagesimal in news, and defs may carry it (libindi reads def
    # values with f_scansexa); set values are read by clients with std::stod: plain decimal.
    value = _number(_text_of(node), where, sexagesimal=direction != "set")
    if direction == "def":
        return NumberElement(name, value, label, _required(node, "format"),
                             _required_number(node, "min"), _required_number(node, "max"),
                             _required_number(node, "step"))
    # min/max/step on oneNumber: libindi's limit-update extension.
    return NumberElement(name, value, None, None, _optional_number(node, "min"),
                         _optional_number(node, "max"), _optional_number(node, "step"))


_SIZE = re.compile(r"\d+", re.ASCII)
_RARE_WHITESPACE = (b"\r", b" ", b"\t")


def _build_blob(node: _Node, name: str, body: bytes, where: str) -> BlobElement:
    # libindi clients refuse a oneBLOB without size or format; indiserver closes the
    # connection. We skip the message.
    size_text = _required(node, "size").strip(_XML_WHITESPACE_TEXT)
    blob_format = _required(node, "format")
    if not _SIZE.fullmatch(size_text):
        raise _Invalid(f"{where}: size {size_text!r} is not a byte count")
    return BlobElement(name, None, blob_format, int(size_text), _base64_payload(body, where))


def _base64_payload(body: bytes, where: str) -> bytes:
    """The base64 text without whitespace (libindi drivers wrap it at 72 columns, indiserver
    writes one line). Decoding is the consumer's job; an '&' would be an entity reference,
    which has no place in base64 and was not expanded, so it is refused."""
    payload = body.strip(_XML_WHITESPACE)
    # replace() runs at memchr speed, three times faster than translate() on newline-wrapped
    # base64, which is what libindi drivers send.
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"")
    if any(space in payload for space in _RARE_WHITESPACE):
        payload = payload.translate(None, _XML_WHITESPACE)
    if b"&" in payload:
        raise _Invalid(f"{where}: '&' in BLOB data")
    return payload


def _printable_excerpt(data: bytes | bytearray) -> str:
    """The start of the skipped bytes, on one line, control characters escaped."""
    text = bytes(data[:EXCERPT_BYTES]).decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
