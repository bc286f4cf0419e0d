"""Prometheus metrics of the API process, for a scraper holding the metrics token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import ServicesDep
from domain.errors import Unauthorized
from paysaga.settings import Settings

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
def metrics(svc: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """The Prometheus text format of every metric of this process."""
    if not scrape_allowed(svc.settings, authorization):
        raise Unauthorized("send Authorization: Bearer <PAYSAGA_METRICS_TOKEN>")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


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
