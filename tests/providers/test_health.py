"""The circuit-breaker rules: a failure rate over a window of calls, declines never count, probes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from providers.base import Outcome
from providers.health import (
    ANSWERED,
    FAILED,
    BreakerPolicy,
    BreakerState,
    after_call,
    call_mark,
    health,
    seconds_left_open,
)

POLICY = BreakerPolicy()  # the contract's numbers: 20 calls, 5 at least, half, 30 s, 3 probes
CLOSED, OPEN, HALF_OPEN = BreakerState.closed, BreakerState.open, BreakerState.half_open


def closed_after(marks: str) -> tuple[BreakerState, str]:
    """A closed breaker's state and window after these calls, one at a time."""
    state, recent = CLOSED, ""
    for mark in marks:
        state, recent, _ = after_call(state, recent, 0, mark, False, POLICY)
        if state != CLOSED:
            break
    return state, recent


@pytest.mark.parametrize(
    ("outcome", "mark"),
    [
        (Outcome.not_processed, FAILED),  # 503, 429, refused connection
        (Outcome.unknown, FAILED),  # time-out, other 5xx
        (Outcome.succeeded, ANSWERED),
        (Outcome.pending, ANSWERED),
        (Outcome.declined, ANSWERED),
        (None, ANSWERED),  # rejected as invalid
    ],
)
def test_call_counts_as_failure_only_when_provider_was_unavailable(
    outcome: Outcome | None, mark: str
) -> None:
    assert call_mark(outcome) == mark


def test_breaker_stays_closed_under_the_minimum_number_of_calls() -> None:
    assert closed_after(FAILED * 4) == (CLOSED, FAILED * 4)


def test_breaker_opens_at_the_minimum_when_half_failed() -> None:
    assert closed_after(ANSWERED * 3 + FAILED * 3)[0] == OPEN


def test_breaker_stays_closed_below_half_failed() -> None:
    assert closed_after((ANSWERED * 2 + FAILED) * 6)[0] == CLOSED


def test_breaker_window_forgets_calls_older_than_its_size() -> None:
    state, recent = closed_after(ANSWERED * 20 + FAILED * 9)
    assert (state, len(recent)) == (CLOSED, 20)  # 9 of the last 20 failed

    # 10 of 30 calls failed, but 10 of the last 20: the oldest answers left the window.
    assert closed_after(ANSWERED * 20 + FAILED * 10)[0] == OPEN


def test_declines_never_open_a_breaker() -> None:
    marks = "".join(call_mark(Outcome.declined) for _ in range(50))

    assert closed_after(marks)[0] == CLOSED


def test_half_open_probe_failing_opens_again() -> None:
    state, _, answered = after_call(HALF_OPEN, FAILED * 5, 1, FAILED, True, POLICY)

    assert (state, answered) == (OPEN, 0)


def test_half_open_closes_after_every_probe_answered_with_a_fresh_window() -> None:
    state, recent, answered = HALF_OPEN, FAILED * 5, 0
    for expected in (HALF_OPEN, HALF_OPEN, CLOSED):
        state, recent, answered = after_call(state, recent, answered, ANSWERED, True, POLICY)
        assert state == expected
    assert recent == ""


def test_late_answer_of_a_call_sent_before_opening_changes_no_state() -> None:
    assert after_call(OPEN, FAILED * 5, 0, ANSWERED, False, POLICY)[0] == OPEN
    assert after_call(HALF_OPEN, FAILED * 5, 1, FAILED, False, POLICY)[0] == HALF_OPEN


def test_open_breaker_shows_half_open_once_its_time_is_up() -> None:
    opened = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    during, after = opened + timedelta(seconds=29), opened + timedelta(seconds=30)

    assert seconds_left_open(opened, during, POLICY) == 1.0
    assert health(OPEN, FAILED * 5, opened, during, POLICY).state == OPEN
    shown = health(OPEN, FAILED * 4 + ANSWERED, opened, after, POLICY)
    assert (shown.state, shown.failure_rate, shown.calls) == (HALF_OPEN, 0.8, 5)
