"""Load INDI property skeleton files (xml/*.xml) into property vectors.

A skeleton is a root element holding defXXXVector elements without a device attribute, the
format libindi drivers load with buildSkeleton. The files are ours and trusted, but they are
still read with defusedxml so a DTD or entity in them is refused. Not for wire traffic: that
goes through parser.py.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element as XmlElement

from defusedxml import ElementTree

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    Element,
    LightElement,
    NumberElement,
    Perm,
    PropertyState,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.properties import PropertyVector

_KINDS = {f"def{kind.value}Vector": kind for kind in VectorKind}


class SkeletonError(ValueError):
    """A skeleton file that does not describe valid INDI properties."""


def skeleton_dir() -> Path:
    """The xml/ directory: inside the installed package, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "xml", package.parent / "xml"):
        if candidate.is_dir():
            return candidate
    raise SkeletonError(f"no xml/ skeleton directory beside {package}")


def load_skeleton(path: Path) -> list[PropertyVector]:
    """Every property of one skeleton file, in file order."""
    root = ElementTree.parse(path).getroot()
    vectors = []
    for child in root:
        kind = _KINDS.get(child.tag)
        if kind is None:
            raise SkeletonError(f"{path.name}: unexpected element <{child.tag}>")
        vectors.append(PropertyVector.from_definition(_definition(kind, child, path)))
    return vectors


def _definition(kind: VectorKind, node: XmlElement, path: Path) -> DefVector:
    name = _required(node, "name", path)
    perm = None if kind is VectorKind.LIGHT else Perm(_required(node, "perm", path))
    rule = SwitchRule(_required(node, "rule", path)) if kind is VectorKind.SWITCH else None
    elements = tuple(_element(kind, child, path) for child in node)
    if not elements:
        raise SkeletonError(f"{path.name}: {name} has no elements")
    return DefVector(
        kind=kind,
        device="",
        name=name,
        state=PropertyState(node.get("state", "Idle")),
        elements=elements,
        label=node.get("label", name),
        group=node.get("group", ""),
        perm=perm,
        rule=rule,
        timeout=float(node.get("timeout", "0")),
    )


def _element(kind: VectorKind, node: XmlElement, path: Path) -> Element:
    expected = f"def{kind.value}"
    if node.tag != expected:
        raise SkeletonError(f"{path.name}: <{node.tag}> inside a {kind} vector")
    name = _required(node, "name", path)
    label = node.get("label", name)
    text = (node.text or "").strip()
    if kind is VectorKind.TEXT:
        return TextElement(name=name, value=text, label=label)
    if kind is VectorKind.NUMBER:
        return NumberElement(
            name=name,
            value=float(text or 0),
            label=label,
            format=_required(node, "format", path),
            min=float(_required(node, "min", path)),
            max=float(_required(node, "max", path)),
            step=float(_required(node, "step", path)),
        )
    if kind is VectorKind.SWITCH:
        return SwitchElement(name=name, value=SwitchState(text), label=label)
    if kind is VectorKind.LIGHT:
        return LightElement(name=name, value=PropertyState(text or "Idle"), label=label)
    return BlobElement(name=name, label=label)


def _required(node: XmlElement, attribute: str, path: Path) -> str:
    value = node.get(attribute)
    if value is None:
        raise SkeletonError(f"{path.name}: <{node.tag}> needs {attribute}")
    return value
