"""Responsible gambling limits: which apply now, and what a change does (pure, clock given).

A customer's limits in a currency are six slots, a kind (`deposit`, `loss`) by a rolling period
(`day` 24 h, `week` 7 days, `month` 30 days), each an amount in minor units or None (no limit).
A change that lowers a slot applies at once; one that raises or removes it waits 24 hours in
`pending` (a lower value sent meanwhile replaces it and applies at once). A pending slot takes
effect when it is read at or after its `effective_at`: there is no timer to miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

KINDS = ("deposit", "loss")
PERIODS: dict[str, timedelta] = {
    "day": timedelta(hours=24),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}
COOLING_OFF = timedelta(hours=24)
PERMANENT_EXCLUSION = datetime.fromisoformat("9999-12-31T00:00:00+00:00")

Slots = dict[str, dict[str, int | None]]  # kind -> period -> amount or None


def no_limits() -> Slots:
    return {kind: dict.fromkeys(PERIODS) for kind in KINDS}


@dataclass(frozen=True)
class PendingSlot:
    """A raised or removed limit waiting for its cooling-off period to end."""

    amount: int | None
    effective_at: datetime


@dataclass
class Limits:
    """The limits in force and the pending ones, as stored."""

    current: Slots = field(default_factory=no_limits)
    pending: dict[tuple[str, str], PendingSlot] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, limits: dict[str, Any] | None, pending: dict[str, Any] | None) -> Limits:
        current = no_limits()
        for kind in KINDS:
            for period in PERIODS:
                current[kind][period] = (limits or {}).get(kind, {}).get(period)
        waiting = {
            (kind, period): PendingSlot(slot["amount"], _aware(slot["effective_at"]))
            for kind, periods in (pending or {}).items()
            for period, slot in periods.items()
        }
        return cls(current, waiting)

    def at(self, now: datetime) -> Limits:
        """The limits as they stand at `now`: the pending slots whose time came, applied."""
        current = {kind: dict(periods) for kind, periods in self.current.items()}
        waiting = {}
        for (kind, period), slot in self.pending.items():
            if slot.effective_at <= now:
                current[kind][period] = slot.amount
            else:
                waiting[(kind, period)] = slot
        return Limits(current, waiting)

    def changed_to(self, requested: Slots, now: datetime) -> Limits:
        """The limits after a customer asks for `requested` at `now` (lower at once, higher or
        removed 24 hours later)."""
        settled = self.at(now)
        current = {kind: dict(periods) for kind, periods in settled.current.items()}
        waiting = dict(settled.pending)
        for kind in KINDS:
            for period in PERIODS:
                old, new = current[kind][period], requested[kind][period]
                if new == old:
                    waiting.pop((kind, period), None)
                elif new is not None and (old is None or new < old):
                    current[kind][period] = new
                    waiting.pop((kind, period), None)
                else:
                    waiting[(kind, period)] = PendingSlot(new, now + COOLING_OFF)
        return Limits(current, waiting)

    def stored(self) -> tuple[Slots, dict[str, Any]]:
        """The `limits` and `pending` columns."""
        pending: dict[str, Any] = {}
        for (kind, period), slot in sorted(self.pending.items()):
            pending.setdefault(kind, {})[period] = {
                "amount": slot.amount,
                "effective_at": slot.effective_at.isoformat(),
            }
        return self.current, pending

    def view(self) -> dict[str, Any]:
        """The `deposit`, `loss` and `pending` members of the API's Limits."""
        _, pending = self.stored()
        return {**self.current, "pending": pending or None}


def _aware(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def room_left(limits: Slots, kind: str, used: dict[str, int]) -> int | None:
    """The smallest amount left under the kind's limits given what each period used; None
    when the kind has no limit."""
    left = [
        amount - used.get(period, 0)
        for period, amount in limits[kind].items()
        if amount is not None
    ]
    return min(left) if left else None
