"""Prometheus metrics of the API process, for a scraper holding the metrics token."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from activities.provider_metrics import BREAKER_STATE_VALUES
from api.deps import ServicesDep
from domain.errors import Unauthorized
from paysaga.observability.metrics import (
    PROVIDER_BREAKER_FAILURE_RATE,
    PROVIDER_BREAKER_STATE,
    show_pool,
)
from paysaga.settings import Settings
from paysaga.store.provider_health import ProviderBreakers, breaker_policy
from providers.registry import PROVIDER_NAMES

log = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
async def metrics(
    svc: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """The Prometheus text format of every metric of this process."""
    if not scrape_allowed(svc.settings, authorization):
        raise Unauthorized("send Authorization: Bearer <PAYSAGA_METRICS_TOKEN>")
    await show_breakers(svc.pool, svc.settings)
    show_pool(svc.pool)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def show_breakers(pool: Any, settings: Settings) -> None:
    """Each provider account's breaker as PostgreSQL holds it, the state every process sees
    (a worker's own page shows the state that worker last saw): the installation's providers,
    and every account whose breaker has counted a call."""
    breakers = ProviderBreakers(pool, breaker_policy(settings))
    try:
        called = await breakers.accounts_called()
        shown = await breakers.health_of(sorted({*PROVIDER_NAMES, *called}))
    except Exception as exc:  # the database: the rest of the page is still worth serving
        log.warning("breaker states not read for /metrics: %r", exc)
        return
    for account, health in shown.items():
        PROVIDER_BREAKER_STATE.labels(account).set(BREAKER_STATE_VALUES[health.state.value])
        PROVIDER_BREAKER_FAILURE_RATE.labels(account).set(health.failure_rate)


def scrape_allowed(settings: Settings, authorization: str | None) -> bool:
    """The token, once set, is required; production without one serves nobody (the metrics
    tell the installation's payment volumes to whoever asks). Development without one is open."""
    token = settings.metrics_token
    if not token:
        return settings.environment == "development"
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
