"""INDI property vectors: current values, limits, perms, rules, and the checks on client input.

A `PropertyVector` holds one property's state and turns it into defXXX/setXXX messages. It also
checks a client's newXXX against the property (perm, known members, number limits, switch
rule) and proposes the complete resulting values, which the device's handler then commits or
refuses. What a property *does* lives in the device, not here. No I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    Element,
    LightElement,
    NewVector,
    NumberElement,
    Perm,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)

Value = str | float | SwitchState | PropertyState


class InvalidInput(ValueError):
    """A client's new value that the property refuses; the text goes to the client."""


@dataclass
class PropertyVector:
    """One property: its definition (from the skeleton) and its current values and state."""

    kind: VectorKind
    name: str
    label: str
    group: str
    state: PropertyState
    perm: Perm | None
    rule: SwitchRule | None
    timeout: float
    elements: list[Element] = field(default_factory=list)

    @classmethod
    def from_definition(cls, definition: DefVector) -> PropertyVector:
        return cls(
            kind=definition.kind,
            name=definition.name,
            label=definition.label or definition.name,
            group=definition.group or "",
            state=definition.state,
            perm=definition.perm,
            rule=definition.rule,
            timeout=definition.timeout,
            elements=list(definition.elements),
        )

    # ---- reading ------------------------------------------------------------------------

    def element(self, name: str) -> Element:
        for element in self.elements:
            if element.name == name:
                return element
        raise KeyError(f"{self.name} has no element {name}")

    def number(self, name: str) -> NumberElement:
        element = self.element(name)
        assert isinstance(element, NumberElement), f"{self.name}.{name} is not a number"
        return element

    def value(self, name: str) -> Value:
        element = self.element(name)
        if isinstance(element, BlobElement):
            raise TypeError(f"{self.name}.{name} is a BLOB")
        return element.value

    def values(self) -> dict[str, Value]:
        return {e.name: e.value for e in self.elements if not isinstance(e, BlobElement)}

    def on_switches(self) -> list[str]:
        return [
            e.name
            for e in self.elements
            if isinstance(e, SwitchElement) and e.value is SwitchState.ON
        ]

    def is_on(self, name: str) -> bool:
        return self.value(name) is SwitchState.ON

    # ---- changing ------------------------------------------------------------------------

    def set_values(self, values: dict[str, Value]) -> None:
        """Store new member values (names must exist; types are the member's own)."""
        for index, element in enumerate(self.elements):
            if element.name in values:
                self.elements[index] = replace(element, value=values[element.name])  # type: ignore[arg-type]

    def set_limits(
        self, name: str, minimum: float, maximum: float, step: float | None = None
    ) -> None:
        element = self.number(name)
        new_step = element.step if step is None else step
        index = self.elements.index(element)
        self.elements[index] = replace(element, min=minimum, max=maximum, step=new_step)

    def set_blob(self, name: str, data: bytes | bytearray | memoryview | None, fmt: str) -> None:
        """The BLOB's payload as raw bytes (None to clear it); the server makes the base64
        once, and only if a client that needs base64 wants the frame."""
        for index, element in enumerate(self.elements):
            if element.name == name and isinstance(element, BlobElement):
                payload = None if data is None else memoryview(data)
                size = 0 if payload is None else payload.nbytes
                self.elements[index] = replace(
                    element, data_b64=b"", data=payload, size=size, format=fmt
                )
                return
        raise KeyError(f"{self.name} has no BLOB {name}")

    # ---- messages ------------------------------------------------------------------------

    def definition(self, device: str, timestamp: str | None = None) -> DefVector:
        # A def never carries BLOB data: defBLOB has name and label only.
        elements = tuple(
            BlobElement(name=e.name, label=e.label) if isinstance(e, BlobElement) else e
            for e in self.elements
        )
        return DefVector(
            kind=self.kind,
            device=device,
            name=self.name,
            state=self.state,
            elements=elements,
            label=self.label,
            group=self.group,
            perm=self.perm,
            rule=self.rule,
            timeout=self.timeout,
            timestamp=timestamp,
        )

    def update(
        self,
        device: str,
        message: str | None = None,
        *,
        with_limits: bool = False,
        timestamp: str | None = None,
    ) -> SetVector:
        """The setXXXVector for the current values (all members, always with a state)."""
        return SetVector(
            kind=self.kind,
            device=device,
            name=self.name,
            state=self.state,
            elements=tuple(_for_set(e, with_limits) for e in self.elements),
            timeout=self.timeout if self.perm is not Perm.RO else None,
            timestamp=timestamp,
            message=message,
        )

    # ---- client input --------------------------------------------------------------------

    def propose(self, new: NewVector) -> dict[str, Value]:
        """Check a client's newXXXVector and return every member's resulting value.

        Members the client did not name keep their current value (indi_setprop sends only
        what it names). Raises InvalidInput with a message fit for the client.
        """
        if new.kind is not self.kind:
            raise InvalidInput(f"{self.name} is a {self.kind} vector, not {new.kind}")
        if self.perm is Perm.RO:
            raise InvalidInput(f"Cannot set read-only property {self.name}")
        known = {e.name for e in self.elements}
        unknown = [e.name for e in new.elements if e.name not in known]
        if unknown:
            raise InvalidInput(f"{self.name} has no element {', '.join(unknown)}")
        if self.kind is VectorKind.SWITCH:
            return self._propose_switches(new)
        proposed = self.values()
        for element in new.elements:
            if isinstance(element, NumberElement):
                self._check_number(element)
                proposed[element.name] = element.value
            elif isinstance(element, TextElement):
                proposed[element.name] = element.value
        return proposed

    def _check_number(self, given: NumberElement) -> None:
        spec = self.number(given.name)
        if not math.isfinite(given.value):
            raise InvalidInput(f"{self.name}.{given.name}: {given.value} is not a number")
        low, high = spec.min, spec.max
        # INDI: max is ignored when min == max.
        if low is None or high is None or low >= high:
            return
        if not low <= given.value <= high:
            raise InvalidInput(
                f"{self.name}.{given.name} value {given.value:g} is out of range "
                f"[{low:g}, {high:g}]"
            )

    def _propose_switches(self, new: NewVector) -> dict[str, Value]:
        current: dict[str, Value] = self.values()
        given = {
            e.name: e.value for e in new.elements if isinstance(e, SwitchElement)
        }
        turned_on = [name for name, state in given.items() if state is SwitchState.ON]
        if self.rule in (SwitchRule.ONE_OF_MANY, SwitchRule.AT_MOST_ONE):
            if len(turned_on) > 1:
                raise InvalidInput(
                    f"{self.name} allows one switch on, got {', '.join(turned_on)}"
                )
            if turned_on:
                # libindi clients send only the On member of a OneOfMany: the others go Off.
                return {name: _on_if(name == turned_on[0]) for name in current}
        proposed = {**current, **given}
        if self.rule is SwitchRule.ONE_OF_MANY and SwitchState.ON not in proposed.values():
            raise InvalidInput(f"{self.name} needs exactly one switch on")
        return proposed


def _on_if(condition: bool) -> SwitchState:
    return SwitchState.ON if condition else SwitchState.OFF


def _for_set(element: Element, with_limits: bool) -> Element:
    """Members as they go in a setXXXVector: no labels, number limits only on request."""
    if isinstance(element, NumberElement):
        if with_limits:
            return NumberElement(
                name=element.name,
                value=element.value,
                min=element.min,
                max=element.max,
                step=element.step,
            )
        return NumberElement(name=element.name, value=element.value)
    if isinstance(element, TextElement):
        return TextElement(name=element.name, value=element.value)
    if isinstance(element, SwitchElement):
        return SwitchElement(name=element.name, value=element.value)
    if isinstance(element, LightElement):
        return LightElement(name=element.name, value=element.value)
    return replace(element, label=None)
