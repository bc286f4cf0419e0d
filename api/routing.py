"""Routing a deposit: its eligible accounts in the merchant's priority order, moved by their
recent authorization rates (providers/success_rate.py), read from the merchant's payments."""

from __future__ import annotations

import random
from collections.abc import Sequence

from api.deps import Services
from domain.routing import method_family
from paysaga.observability.metrics import ROUTING_DECISIONS
from paysaga.settings import Settings
from paysaga.store import MerchantStore
from providers.success_rate import Candidate, RoutingDecision, RoutingPolicy, decide_route


def routing_policy(settings: Settings) -> RoutingPolicy:
    return RoutingPolicy(
        exploration_share=settings.routing_exploration_share,
        min_attempts=settings.routing_min_attempts,
        margin=settings.routing_rate_margin,
    )


async def route_deposit(
    svc: Services,
    books: MerchantStore,
    payment_id: str,
    candidates: Sequence[Candidate],
    currency: str,
    payment_method: str,
    requested: str | None,
) -> RoutingDecision:
    """The order to try `candidates` (eligible, in priority order) for one deposit, and why.

    The exploration draw is seeded by the payment id: a retried request (same id) draws the same.
    """
    method = method_family(payment_method)
    stats = {}
    if requested is None and len(candidates) > 1:  # else nothing to judge: no query
        stats = await books.authorization_stats(
            currency, method, svc.settings.routing_window_seconds
        )
    decision = decide_route(
        candidates,
        stats,
        routing_policy(svc.settings),
        random.Random(payment_id),
        requested=requested,
        method=method.value,
    )
    ROUTING_DECISIONS.labels(decision.reason.value).inc()
    return decision
