"""Success-rate routing: priority moved by authorization rates, exploration, the named provider."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from domain.routing import AuthorizationStats, MethodFamily, RoutingReason, method_family
from providers.success_rate import Candidate, RoutingPolicy, decide_route

CARDS = Candidate("sandbox-cards", 0)
BANK = Candidate("sandbox-bank", 1)
OWN = Candidate("pa_own", 2)
NO_EXPLORATION = RoutingPolicy(exploration_share=0.0, min_attempts=20, margin=0.2)


def stats(attempts: int, approvals: int) -> AuthorizationStats:
    return AuthorizationStats(attempts=attempts, approvals=approvals)


def test_route_keeps_priority_when_rates_are_close() -> None:
    decision = decide_route(
        [CARDS, BANK], {"sandbox-cards": stats(40, 30), "sandbox-bank": stats(40, 36)},
        NO_EXPLORATION, random.Random(1),
    )  # fmt: skip
    assert decision.account_ids == ["sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.PRIORITY
    assert decision.rates == {"sandbox-cards": 0.75, "sandbox-bank": 0.9}


def test_route_moves_traffic_away_from_account_whose_rate_drops() -> None:
    healthy = {"sandbox-cards": stats(40, 36), "sandbox-bank": stats(40, 34)}
    dropped = {"sandbox-cards": stats(40, 10), "sandbox-bank": stats(40, 34)}
    before = decide_route([CARDS, BANK], healthy, NO_EXPLORATION, random.Random(1))
    after = decide_route([CARDS, BANK], dropped, NO_EXPLORATION, random.Random(1))
    assert before.account_ids[0] == "sandbox-cards"
    assert after.account_ids == ["sandbox-bank", "sandbox-cards"]
    assert after.reason == RoutingReason.SUCCESS_RATE
    assert after.rates == {"sandbox-cards": 0.25, "sandbox-bank": 0.85}


def test_route_demoted_accounts_keep_priority_among_themselves() -> None:
    rates = {"sandbox-cards": stats(20, 2), "sandbox-bank": stats(20, 4), "pa_own": stats(20, 19)}
    decision = decide_route([CARDS, BANK, OWN], rates, NO_EXPLORATION, random.Random(1))
    assert decision.account_ids == ["pa_own", "sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.SUCCESS_RATE


def test_route_gap_of_exactly_the_margin_moves_nothing() -> None:
    rates = {"sandbox-cards": stats(20, 12), "sandbox-bank": stats(20, 16)}  # 0.6 against 0.8
    decision = decide_route([CARDS, BANK], rates, NO_EXPLORATION, random.Random(1))
    assert decision.account_ids == ["sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.PRIORITY


def test_route_does_not_judge_account_with_too_few_attempts() -> None:
    # Every one of cards' 19 attempts declined: one short of the minimum, so no rate.
    rates = {"sandbox-cards": stats(19, 0), "sandbox-bank": stats(40, 40)}
    decision = decide_route([CARDS, BANK], rates, NO_EXPLORATION, random.Random(1))
    assert decision.account_ids == ["sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.PRIORITY
    assert decision.rates == {"sandbox-bank": 1.0}


def test_route_does_not_judge_account_without_judged_peer() -> None:
    # Cards declines everything, but bank has too few attempts to compare with: no evidence.
    rates = {"sandbox-cards": stats(40, 0), "sandbox-bank": stats(3, 3)}
    decision = decide_route([CARDS, BANK], rates, NO_EXPLORATION, random.Random(1))
    assert decision.account_ids == ["sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.PRIORITY


def test_route_explores_at_about_its_share() -> None:
    policy = RoutingPolicy(exploration_share=0.05, min_attempts=20, margin=0.2)
    rng = random.Random(20261207)
    firsts = Counter(
        (decision.reason, decision.account_ids[0])
        for decision in (decide_route([CARDS, BANK, OWN], {}, policy, rng) for _ in range(10_000))
    )
    explored = firsts[(RoutingReason.EXPLORATION, "sandbox-bank")]
    explored += firsts[(RoutingReason.EXPLORATION, "pa_own")]
    assert 400 <= explored <= 600  # 5 % of 10,000, within about 4.5 standard deviations
    assert firsts[(RoutingReason.PRIORITY, "sandbox-cards")] == 10_000 - explored
    # Either account behind the first is explored, about equally.
    assert firsts[(RoutingReason.EXPLORATION, "sandbox-bank")] > explored / 3
    assert firsts[(RoutingReason.EXPLORATION, "pa_own")] > explored / 3


def test_route_exploration_can_try_demoted_account() -> None:
    rates = {"sandbox-cards": stats(40, 0), "sandbox-bank": stats(40, 40)}
    policy = RoutingPolicy(exploration_share=1.0, min_attempts=20, margin=0.2)
    decision = decide_route([CARDS, BANK], rates, policy, random.Random(1))
    assert decision.account_ids == ["sandbox-cards", "sandbox-bank"]
    assert decision.reason == RoutingReason.EXPLORATION


def test_route_is_deterministic_given_random_source() -> None:
    policy = RoutingPolicy(exploration_share=0.3, min_attempts=20, margin=0.2)

    def run(seed: int) -> list[tuple[list[str], RoutingReason]]:
        rng = random.Random(seed)
        decisions = (decide_route([CARDS, BANK, OWN], {}, policy, rng) for _ in range(200))
        return [(d.account_ids, d.reason) for d in decisions]

    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_route_single_candidate_is_always_first(share: float) -> None:
    policy = RoutingPolicy(exploration_share=share, min_attempts=1, margin=0.0)
    rng = random.Random(3)
    for _ in range(100):
        decision = decide_route([BANK], {"sandbox-bank": stats(50, 0)}, policy, rng)
        assert decision.account_ids == ["sandbox-bank"]
        assert decision.reason == RoutingReason.PRIORITY


def test_route_named_provider_is_first_whatever_the_rates() -> None:
    rates = {"sandbox-cards": stats(40, 0), "sandbox-bank": stats(40, 40)}
    policy = RoutingPolicy(exploration_share=1.0, min_attempts=20, margin=0.2)
    decision = decide_route([CARDS, BANK], rates, policy, random.Random(1), "sandbox-cards")
    assert decision.account_ids == ["sandbox-cards"]
    assert decision.reason == RoutingReason.REQUESTED


def test_route_record_shows_order_reason_and_rates() -> None:
    rates = {"sandbox-cards": stats(30, 10), "sandbox-bank": stats(30, 29)}
    decision = decide_route(
        [CARDS, BANK], rates, NO_EXPLORATION, random.Random(1), method=MethodFamily.CARD
    )
    assert decision.record() == {
        "reason": "success_rate",
        "method": "card",
        "candidates": [
            {"id": "sandbox-bank", "priority": 1},
            {"id": "sandbox-cards", "priority": 0},
        ],
        "rates": {"sandbox-cards": 0.3333, "sandbox-bank": 0.9667},
    }


@pytest.mark.parametrize(
    ("payment_method", "family"),
    [("pm_bank_redirect", MethodFamily.BANK), ("pm_ok", MethodFamily.CARD), ("pm_decline", "card")],
)
def test_method_family_of_sandbox_tokens(payment_method: str, family: str) -> None:
    assert method_family(payment_method) == family
