"""PropertyVector: perms, members, number limits and switch rules on client input."""

from __future__ import annotations

import pytest

from qhy42_indi.indi.messages import (
    DefVector,
    NewVector,
    NumberElement,
    Perm,
    PropertyState,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.properties import InvalidInput, PropertyVector

ON, OFF = SwitchState.ON, SwitchState.OFF


def switches(rule: SwitchRule, *states: tuple[str, SwitchState]) -> PropertyVector:
    return PropertyVector.from_definition(
        DefVector(
            kind=VectorKind.SWITCH,
            device="",
            name="S",
            state=PropertyState.IDLE,
            perm=Perm.RW,
            rule=rule,
            elements=tuple(SwitchElement(name=n, value=v) for n, v in states),
        )
    )


def new_switches(*states: tuple[str, SwitchState]) -> NewVector:
    return NewVector(
        kind=VectorKind.SWITCH,
        device="D",
        name="S",
        elements=tuple(SwitchElement(name=n, value=v) for n, v in states),
    )


def frame() -> PropertyVector:
    def number(name: str, low: float, high: float, value: float) -> NumberElement:
        return NumberElement(name=name, value=value, format="%4.0f", min=low, max=high, step=1)

    return PropertyVector.from_definition(
        DefVector(
            kind=VectorKind.NUMBER,
            device="",
            name="CCD_FRAME",
            state=PropertyState.IDLE,
            perm=Perm.RW,
            elements=(
                number("X", 0, 2047, 0),
                number("Y", 0, 2047, 0),
                number("WIDTH", 1, 2048, 2048),
                number("HEIGHT", 1, 2048, 2048),
            ),
        )
    )


def new_numbers(name: str, **values: float) -> NewVector:
    return NewVector(
        kind=VectorKind.NUMBER,
        device="D",
        name=name,
        elements=tuple(NumberElement(name=k, value=v) for k, v in values.items()),
    )


def test_one_of_many_with_only_the_on_member_turns_the_others_off() -> None:
    vector = switches(SwitchRule.ONE_OF_MANY, ("CONNECT", OFF), ("DISCONNECT", ON))
    assert vector.propose(new_switches(("CONNECT", ON))) == {"CONNECT": ON, "DISCONNECT": OFF}


def test_one_of_many_refuses_two_on() -> None:
    vector = switches(SwitchRule.ONE_OF_MANY, ("A", ON), ("B", OFF), ("C", OFF))
    with pytest.raises(InvalidInput, match="one switch"):
        vector.propose(new_switches(("B", ON), ("C", ON)))


def test_one_of_many_refuses_all_off() -> None:
    vector = switches(SwitchRule.ONE_OF_MANY, ("A", ON), ("B", OFF))
    with pytest.raises(InvalidInput, match="exactly one"):
        vector.propose(new_switches(("A", OFF)))


def test_at_most_one_allows_all_off_and_switches_over() -> None:
    vector = switches(SwitchRule.AT_MOST_ONE, ("LOAD", OFF), ("SAVE", ON))
    assert vector.propose(new_switches(("SAVE", OFF))) == {"LOAD": OFF, "SAVE": OFF}
    assert vector.propose(new_switches(("LOAD", ON))) == {"LOAD": ON, "SAVE": OFF}


def test_any_of_many_applies_members_as_given() -> None:
    vector = switches(SwitchRule.ANY_OF_MANY, ("A", OFF), ("B", OFF), ("C", ON))
    assert vector.propose(new_switches(("A", ON), ("B", ON))) == {"A": ON, "B": ON, "C": ON}


def test_partial_number_vector_keeps_unnamed_members() -> None:
    proposed = frame().propose(new_numbers("CCD_FRAME", WIDTH=100))
    assert proposed == {"X": 0, "Y": 0, "WIDTH": 100, "HEIGHT": 2048}


def test_number_out_of_range_names_the_limits() -> None:
    with pytest.raises(InvalidInput, match=r"WIDTH value 4096 is out of range \[1, 2048\]"):
        frame().propose(new_numbers("CCD_FRAME", WIDTH=4096))


def test_unknown_member_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no element DEPTH"):
        frame().propose(new_numbers("CCD_FRAME", DEPTH=3))


def test_read_only_vector_refuses_input() -> None:
    vector = frame()
    vector.perm = Perm.RO
    with pytest.raises(InvalidInput, match="read-only"):
        vector.propose(new_numbers("CCD_FRAME", X=1))


def test_kind_mismatch_is_refused() -> None:
    message = NewVector(
        kind=VectorKind.TEXT, device="D", name="CCD_FRAME",
        elements=(TextElement(name="X", value="1"),),
    )
    with pytest.raises(InvalidInput, match="Number vector"):
        frame().propose(message)


def test_set_message_has_state_and_all_members_without_labels() -> None:
    vector = frame()
    vector.state = PropertyState.OK
    update = vector.update("D")
    assert update.state is PropertyState.OK
    assert [e.name for e in update.elements] == ["X", "Y", "WIDTH", "HEIGHT"]
    assert all(isinstance(e, NumberElement) and e.min is None for e in update.elements)
    limits = vector.update("D", with_limits=True)
    assert [e.max for e in limits.elements if isinstance(e, NumberElement)] == [
        2047, 2047, 2048, 2048
    ]


def test_set_limits_changes_the_definition() -> None:
    vector = frame()
    vector.set_limits("WIDTH", 1, 4096)
    element = vector.definition("D").elements[2]
    assert isinstance(element, NumberElement) and element.max == 4096
