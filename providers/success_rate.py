"""Success-rate routing: the merchant's priority order, moved by each account's recent
authorization rate, with a small share of traffic kept for exploration.

Pure: the caller brings the candidates, their counts and a random source, so a decision is
reproducible from its inputs. The rule, each number a setting (`RoutingPolicy`):

- An account is judged only with at least `min_attempts` answered attempts in the window; one
  with fewer has no rate and is never moved (nor is it anyone's peer).
- A judged account is "well below its peers" when its rate is lower than the best rate among the
  other judged candidates by more than `margin` (absolute: 0.20 is twenty points). Such accounts
  go after the others, both groups keeping the priority order.
- Then, with probability `exploration_share`, a uniformly drawn candidate other than the one in
  front goes first (the rest keep their order): demoted or little-used accounts keep getting
  the attempts that tell when they are good again.
- A provider the merchant named, or a single candidate, is simply first: no draw, no judgement.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.routing import AuthorizationStats, RoutingReason

EXPLORATION_SHARE = 0.05
MIN_ATTEMPTS = 20
RATE_MARGIN = 0.20


@dataclass(frozen=True)
class Candidate:
    """An eligible account, as the merchant ranks it (`priority` is shown, the order decides)."""

    account_id: str
    priority: int


@dataclass(frozen=True)
class RoutingPolicy:
    """The rule's numbers (settings `routing_exploration_share`, `routing_min_attempts`,
    `routing_rate_margin`)."""

    exploration_share: float = EXPLORATION_SHARE
    min_attempts: int = MIN_ATTEMPTS
    margin: float = RATE_MARGIN


@dataclass(frozen=True)
class RoutingDecision:
    """The accounts in the order to try them, and why the first is first.

    `rates`: the authorization rates that were judged (accounts with enough attempts), by account;
    `method`: the method family they are rates of, recorded with the payment (whose method itself
    is sealed) so that the next decisions find its outcome.
    """

    order: list[Candidate]
    reason: RoutingReason
    rates: dict[str, float] = field(default_factory=dict)
    method: str | None = None

    @property
    def account_ids(self) -> list[str]:
        return [candidate.account_id for candidate in self.order]

    def record(self) -> dict[str, Any]:
        """What the payment keeps of it: its `routing`, also the saga's memo."""
        return {
            "reason": self.reason.value,
            "method": self.method,
            "candidates": [{"id": c.account_id, "priority": c.priority} for c in self.order],
            "rates": {account: round(rate, 4) for account, rate in self.rates.items()},
        }


def decide_route(
    candidates: Sequence[Candidate],
    stats: Mapping[str, AuthorizationStats],
    policy: RoutingPolicy,
    rng: random.Random,
    requested: str | None = None,
    method: str | None = None,
) -> RoutingDecision:
    """Order the eligible `candidates` (given in the merchant's priority order) for one payment.

    `stats`: each account's recent answered attempts for the payment's method family and
    currency (an account absent has none). `requested`: the provider the merchant named.
    `method`: the family the stats are for, only recorded.
    """
    if requested is not None:
        named = [c for c in candidates if c.account_id == requested]
        order = named or [Candidate(requested, 0)]
        return RoutingDecision(order, RoutingReason.REQUESTED, method=method)
    rates = {
        c.account_id: stats[c.account_id].rate
        for c in candidates
        if c.account_id in stats and stats[c.account_id].attempts >= policy.min_attempts
    }
    if len(candidates) <= 1:
        return RoutingDecision(list(candidates), RoutingReason.PRIORITY, rates, method)
    demoted = {account for account in rates if _well_below_peers(account, rates, policy.margin)}
    order = [c for c in candidates if c.account_id not in demoted]
    order += [c for c in candidates if c.account_id in demoted]
    reason = RoutingReason.PRIORITY if order[0] == candidates[0] else RoutingReason.SUCCESS_RATE
    if rng.random() < policy.exploration_share:
        explored = rng.choice(order[1:])
        order = [explored, *(c for c in order if c != explored)]
        reason = RoutingReason.EXPLORATION
    return RoutingDecision(order, reason, rates, method)


def _well_below_peers(account: str, rates: Mapping[str, float], margin: float) -> bool:
    peers = [rate for other, rate in rates.items() if other != account]
    # A gap of exactly `margin` is not "more than": the epsilon keeps 0.8 - 0.6 from counting.
    return bool(peers) and max(peers) - rates[account] > margin + 1e-9
