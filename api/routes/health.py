"""Liveness of the API and of what it depends on: the database and Temporal."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.schemas import Health

router = APIRouter(tags=["health"])


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
