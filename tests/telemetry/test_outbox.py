"""The outbox: a state topic keeps only its latest update, events are bounded, nothing waits."""

from __future__ import annotations

from qhy42_indi.telemetry.outbox import Outbox
from qhy42_indi.telemetry.state import Publication


def state(topic: str, value: float) -> Publication:
    return Publication(topic, {"value": value}, retain=True)


def event(number: int) -> Publication:
    return Publication("p/cam/frame", {"sequence": number}, retain=False)


def test_a_state_update_replaces_the_one_not_sent_yet_and_moves_to_the_end() -> None:
    outbox = Outbox()
    outbox.put(state("p/cam/temperature", 1.0))
    outbox.put(event(1))
    outbox.put(state("p/cam/temperature", 2.0))
    taken = outbox.take()
    assert [(p.topic, p.payload) for p in taken] == [
        ("p/cam/frame", {"sequence": 1}), ("p/cam/temperature", {"value": 2.0})]
    assert outbox.states_merged == 1 and len(outbox) == 0


def test_a_broker_away_for_hours_costs_one_entry_per_topic_and_the_event_bound() -> None:
    outbox = Outbox(max_events=10)
    for n in range(10_000):
        outbox.put(state("p/cam/temperature", float(n)))
        outbox.put(state("p/cam/exposure", float(n)))
        outbox.put(event(n))
    assert len(outbox) == 2 + 10
    taken = outbox.take()
    assert [p.payload["sequence"] for p in taken if not p.retain] == list(range(9990, 10_000))
    assert outbox.events_dropped == 9990


def test_dropping_states_keeps_the_events_for_a_fresh_connection() -> None:
    outbox = Outbox()
    outbox.put(state("p/cam/gain", 3.0))
    outbox.put(event(7))
    outbox.drop_states()
    assert [p.payload for p in outbox.take()] == [{"sequence": 7}]


async def test_wait_returns_once_something_is_put() -> None:
    outbox = Outbox()
    outbox.put(event(1))
    await outbox.wait()
    outbox.take()
    assert len(outbox) == 0
