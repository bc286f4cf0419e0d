"""Probes of the API: alive (`/livez`), ready for requests (`/readyz`), its dependencies (`/healthz`).

Kubernetes restarts a pod whose liveness fails and takes a pod out of its Service while its
readiness fails: both are shallow, so that a blip of Temporal or of the database neither restarts
every API pod nor empties the Service (requests then fail one by one with their own problem+json).
`/healthz` is the deep check, for dashboards, `docker compose` and people.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.schemas import Health, Probe

router = APIRouter(tags=["health"])


@router.get("/livez", response_model=Probe)
async def livez() -> Probe:
    """200 while the process answers: its event loop runs. Nothing else is checked."""
    return Probe(status="ok")


@router.get(
    "/readyz",
    response_model=Probe,
    responses={503: {"model": Probe, "description": "The API's services are not open"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 once the API holds its database pool and Temporal client open; no call is made."""
    services = getattr(request.app.state, "services", None)
    ready = services is not None and not services.pool.closed
    body = Probe(status="ok" if ready else "unavailable")
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency does not answer"}},
)
async def healthz(svc: ServicesDep) -> JSONResponse:
    """200 when the database and Temporal answer, 503 with the failing part otherwise."""
    checks = {"database": "ok", "temporal": "ok"}
    try:
        await asyncio.wait_for(svc.store.ping(), timeout=2)
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(svc.temporal.service_client.check_health(), timeout=2)
    except Exception as exc:
        checks["temporal"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", **checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
