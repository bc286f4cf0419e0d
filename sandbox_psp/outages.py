"""Sandbox only: a provider's outage switch and the calls it received, for breaker tests and demos.

`POST /{provider}/_sandbox/mode` `{"mode": "down"}` makes the provider answer every charge,
payout and refund 503 without processing it (its status endpoint still answers); `{"mode":
"slow"}` makes it process them, but answer only after `PAYSAGA_PSP_STALL_SECONDS` (as `pm_timeout`
does: a client with a shorter time-out does not know whether it was done); `ok` restores it. `GET /{provider}/_sandbox/stats` counts the calls asked since the process started, refused
ones included, by operation and outcome (`answered`: processed, declined or rejected;
`unavailable`: refused 503/429).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from sandbox_psp.deps import ProviderDep

OPERATIONS = ("charge", "payout", "refund")

router = APIRouter()


class ProviderModes:
    """Each provider's mode and call counts, in this process's memory."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.slow: set[str] = set()
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (provider, operation, outcome)

    def count(self, provider: str, operation: str, outcome: str) -> None:
        self.calls[(provider, operation, outcome)] += 1

    def stats(self, provider: str) -> dict[str, Any]:
        by_operation = {
            operation: {
                outcome: self.calls[(provider, operation, outcome)]
                for outcome in ("answered", "unavailable")
            }
            for operation in OPERATIONS
        }
        requests = sum(sum(outcomes.values()) for outcomes in by_operation.values())
        return {"requests": requests, "by_operation": by_operation}


class ModeRequest(BaseModel):
    """Take the provider down (every call refused 503), slow it down (every call processed, its
    answer late), or bring it back."""

    mode: Literal["down", "slow", "ok"]


def provider_modes(request: Request) -> ProviderModes:
    """The process's modes and counts."""
    modes: ProviderModes = request.app.state.modes
    return modes


@router.post("/{provider}/_sandbox/mode")
async def set_mode(provider: ProviderDep, body: ModeRequest, request: Request) -> dict[str, str]:
    """Sandbox only: take the provider down, slow it down, or bring it back."""
    modes = provider_modes(request)
    modes.down.discard(provider)
    modes.slow.discard(provider)
    if body.mode == "down":
        modes.down.add(provider)
    elif body.mode == "slow":
        modes.slow.add(provider)
    return {"provider": provider, "mode": body.mode}


@router.get("/{provider}/_sandbox/stats")
async def get_stats(provider: ProviderDep, request: Request) -> dict[str, Any]:
    """Sandbox only: the charges, payouts and refunds asked since the process started."""
    return provider_modes(request).stats(provider)
