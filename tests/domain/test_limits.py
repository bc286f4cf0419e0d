"""The limits' rules with a clock the test holds: lower at once, higher or removed 24 h later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.limits import COOLING_OFF, Limits, no_limits, room_left

NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def asked(**deposit: int | None) -> dict[str, dict[str, int | None]]:
    slots = no_limits()
    slots["deposit"].update(deposit)
    return slots


def test_raise_takes_effect_exactly_24_hours_later() -> None:
    limits = Limits().changed_to(asked(day=1_000), NOON)
    raised = limits.changed_to(asked(day=5_000), NOON)
    assert raised.current["deposit"]["day"] == 1_000
    just_before = raised.at(NOON + COOLING_OFF - timedelta(microseconds=1))
    assert just_before.current["deposit"]["day"] == 1_000
    assert raised.at(NOON + COOLING_OFF).current["deposit"]["day"] == 5_000
    assert raised.at(NOON + COOLING_OFF).pending == {}


def test_stored_limits_read_back_the_same() -> None:
    limits = Limits().changed_to(asked(day=1_000, week=2_000), NOON)
    raised = limits.changed_to(asked(day=None, week=2_000), NOON)
    current, pending = raised.stored()
    again = Limits.from_stored(current, pending)
    assert again == raised
    assert again.at(NOON + COOLING_OFF).current["deposit"] == {
        "day": None,
        "week": 2_000,
        "month": None,
    }


def test_a_later_raise_restarts_its_cooling_off() -> None:
    limits = Limits().changed_to(asked(day=1_000), NOON)
    first = limits.changed_to(asked(day=2_000), NOON)
    second = first.changed_to(asked(day=3_000), NOON + timedelta(hours=12))
    assert second.at(NOON + COOLING_OFF).current["deposit"]["day"] == 1_000
    assert second.at(NOON + timedelta(hours=36)).current["deposit"]["day"] == 3_000


def test_room_left_is_the_tightest_period() -> None:
    slots = asked(day=1_000, week=1_500)
    assert room_left(slots, "deposit", {"day": 200, "week": 1_400}) == 100
    assert room_left(slots, "deposit", {"day": 1_000, "week": 1_000}) == 0
    assert room_left(slots, "loss", {"day": 10}) is None
