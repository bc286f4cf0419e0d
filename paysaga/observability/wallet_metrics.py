"""The wallet engine's metrics (served by the API's /metrics): batches, calls and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client import Counter, Histogram


class _Call(Protocol):
    @property
    def type(self) -> str: ...


class _Decision(Protocol):
    outcome: str


WALLET_BATCH_CALLS = Histogram(
    "paysaga_wallet_batch_calls",
    "Calls committed together in one wallet batch (one database transaction).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
WALLET_BATCH_DURATION = Histogram(
    "paysaga_wallet_batch_duration_seconds",
    "Time from a batch's start to its commit, retries included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WALLET_CALLS = Counter(
    "paysaga_wallet_calls",
    "Wallet calls decided, by type and outcome (accepted, or the refusal's code).",
    ["type", "outcome"],
)


def count_batch(calls: Sequence[_Call], decisions: Sequence[_Decision], seconds: float) -> None:
    """A committed batch: its size, its time, each call's outcome (codes: wallet.errors)."""
    WALLET_BATCH_CALLS.observe(len(calls))
    WALLET_BATCH_DURATION.observe(seconds)
    for call, decision in zip(calls, decisions, strict=True):
        WALLET_CALLS.labels(call.type, decision.outcome).inc()
