"""The pages' feeds coalesce and stay bounded; the page's commands are checked as input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qhy42_indi.indi.messages import DefVector as Def
from qhy42_indi.indi.messages import (
    NumberElement,
    PropertyState,
    SwitchElement,
    SwitchRule,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.indi.properties import PropertyVector
from qhy42_indi.web.commands import BadCommand, checked_values, parse_request
from qhy42_indi.web.events import TOPICS, Pages, TooManyPages
from qhy42_indi.web.logbook import Ring


async def test_a_burst_of_changes_is_one_pending_topic_per_page() -> None:
    pages = Pages()
    feed = pages.open()
    assert await feed.next_topics() == set(TOPICS)  # a new page gets everything once
    for _ in range(10_000):
        pages.mark("status")
    pages.mark("log")
    assert feed.pending == {"status", "log"}
    assert await feed.next_topics() == {"status", "log"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(feed.next_topics(), 0.05)  # nothing new: it waits


def test_pages_are_bounded_and_unknown_topics_refused() -> None:
    pages = Pages(max_pages=2)
    first = pages.open()
    pages.open()
    with pytest.raises(TooManyPages):
        pages.open()
    pages.close(first)
    pages.open()
    with pytest.raises(ValueError):
        pages.mark("everything")


def test_ring_keeps_its_bound_and_gives_what_is_new() -> None:
    ring = Ring(max_lines=3)
    for n in range(5):
        ring.add(float(n), "INFO", "test", f"line {n}")
    assert [line.text for line in ring.since(0)] == ["line 2", "line 3", "line 4"]
    assert [line.text for line in ring.since(4)] == ["line 4"]
    assert ring.since(5) == []


def vector(kind: VectorKind, *elements: Any, rule: SwitchRule | None = None) -> PropertyVector:
    return PropertyVector.from_definition(Def(kind=kind, device="D", name="P",
                                              state=PropertyState.IDLE, elements=elements,
                                              rule=rule))


NUMBERS = vector(VectorKind.NUMBER, NumberElement("GAIN", 0, format="%g", min=0, max=100, step=1))
SWITCHES = vector(VectorKind.SWITCH, SwitchElement("ON", SwitchState.OFF),
                  SwitchElement("OFF", SwitchState.ON), rule=SwitchRule.ONE_OF_MANY)
TEXTS = vector(VectorKind.TEXT, TextElement("DIR", "/tmp"))


def test_well_formed_commands_become_vector_values() -> None:
    assert parse_request({"camera": 0, "property": "CCD_GAIN", "values": {"GAIN": 3}}) == (
        0, "CCD_GAIN", {"GAIN": 3})
    assert checked_values(NUMBERS, {"GAIN": 3}) == {"GAIN": 3.0}
    assert checked_values(SWITCHES, {"ON": "On"}) == {"ON": SwitchState.ON}
    assert checked_values(TEXTS, {"DIR": "/data"}) == {"DIR": "/data"}


@pytest.mark.parametrize("body", [
    [], "CCD_GAIN", {"camera": "0", "property": "CCD_GAIN", "values": {"GAIN": 1}},
    {"camera": -1, "property": "CCD_GAIN", "values": {"GAIN": 1}},
    {"camera": True, "property": "CCD_GAIN", "values": {"GAIN": 1}},
    {"camera": 0, "property": "SIM_USB", "values": {"x": 1}},  # no control on the page
    {"camera": 0, "property": "CCD_GAIN", "values": {}},
    {"camera": 0, "property": "CCD_GAIN", "values": [1]},
])
def test_malformed_requests_are_refused(body: Any) -> None:
    with pytest.raises(BadCommand):
        parse_request(body)


@pytest.mark.parametrize(("target", "values"), [
    (NUMBERS, {"GAIN": "3"}), (NUMBERS, {"GAIN": float("nan")}), (NUMBERS, {"GAIN": True}),
    (NUMBERS, {"LOUDNESS": 3}), (SWITCHES, {"ON": True}), (SWITCHES, {"ON": "yes"}),
    (TEXTS, {"DIR": 5}), (TEXTS, {"DIR": "x" * 5000}), (TEXTS, {"DIR": "a\0b"}),
])
def test_values_the_vector_cannot_take_are_refused(target: PropertyVector,
                                                   values: dict[str, Any]) -> None:
    with pytest.raises(BadCommand):
        checked_values(target, values)
