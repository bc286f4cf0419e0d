"""Circuit-breaker rules per provider account: pure functions of its recent calls and the clock.

A breaker is `closed` (calls go through and are counted in a window of the last
`window_calls`), `open` (routing skips the account for `open_seconds`: nothing is sent, so
failing over past it is safe) or `half_open` (up to `probe_calls` calls go through as probes:
the first that fails opens it again, all of them answered close it). Only unavailability counts
as a failure (5xx, 429, time-outs, refused connections): a decline or a rejection is an answer.
The state lives in PostgreSQL (paysaga/store/provider_health.py); these rules decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from providers.base import Outcome

ANSWERED = "a"  # one call in the window: the provider answered (succeeded, declined, rejected)
FAILED = "f"  # one call in the window: the provider was unavailable


class BreakerState(StrEnum):
    """A provider account's breaker state, as `health` shows it."""

    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """The contract's numbers, each a setting (`PAYSAGA_BREAKER_*`)."""

    window_calls: int = 20
    minimum_calls: int = 5
    failure_rate_to_open: float = 0.5
    open_seconds: float = 30.0
    probe_calls: int = 3


@dataclass(frozen=True)
class Health:
    """What `GET /v1/providers` shows of an account's breaker."""

    state: BreakerState
    failure_rate: float
    calls: int
    opened_at: datetime | None


def call_mark(outcome: Outcome | None) -> str:
    """How a call counts: FAILED when the provider was unavailable, ANSWERED otherwise.

    `None` is a rejection as invalid (the adapter raises it): an answer. `not_processed` (503,
    429, refused connection) and `unknown` (a time-out, another 5xx, an unreadable answer) are
    the provider's unavailability.
    """
    return FAILED if outcome in (Outcome.not_processed, Outcome.unknown) else ANSWERED


def window(recent: str, mark: str, policy: BreakerPolicy) -> str:
    """The window after one more call: the last `window_calls` marks, oldest first."""
    return (recent + mark)[-policy.window_calls :]


def failure_rate(recent: str) -> float:
    """The share of the window's calls that failed as unavailable (0 for an empty window)."""
    return recent.count(FAILED) / len(recent) if recent else 0.0


def trips(recent: str, policy: BreakerPolicy) -> bool:
    """Whether a closed breaker with this window opens: enough calls, and too many failed."""
    return len(recent) >= policy.minimum_calls and failure_rate(recent) >= (
        policy.failure_rate_to_open
    )


def after_call(
    state: BreakerState,
    recent: str,
    probes_answered: int,
    mark: str,
    probe: bool,
    policy: BreakerPolicy,
) -> tuple[BreakerState, str, int]:
    """The breaker's state, window and answered probes after one more call marked `mark`.

    `probe`: the call went out under a half-open lease. Closing starts a fresh window, so that
    the outage's failures do not open it again at the next one.
    """
    recent = window(recent, mark, policy)
    if state == BreakerState.closed:
        return (BreakerState.open if trips(recent, policy) else state), recent, 0
    if state == BreakerState.half_open and probe:
        if mark == FAILED:
            return BreakerState.open, recent, 0
        if probes_answered + 1 >= policy.probe_calls:
            return BreakerState.closed, "", 0
        return state, recent, probes_answered + 1
    # A call let through before the breaker opened, answering late: counted, nothing more.
    return state, recent, probes_answered


def open_until(opened_at: datetime, policy: BreakerPolicy) -> datetime:
    """When an open breaker lets its first probe through."""
    return opened_at + timedelta(seconds=policy.open_seconds)


def seconds_left_open(opened_at: datetime, now: datetime, policy: BreakerPolicy) -> float:
    """How long routing still skips an account opened at `opened_at` (0: probes may go)."""
    return max(0.0, (open_until(opened_at, policy) - now).total_seconds())


def health(
    state: BreakerState,
    recent: str,
    opened_at: datetime | None,
    now: datetime,
    policy: BreakerPolicy,
) -> Health:
    """An account's health as shown: an open breaker whose time is up shows `half_open`, since
    its next call is a probe."""
    if state == BreakerState.open and opened_at and not seconds_left_open(opened_at, now, policy):
        state = BreakerState.half_open
    return Health(state, round(failure_rate(recent), 4), len(recent), opened_at)
