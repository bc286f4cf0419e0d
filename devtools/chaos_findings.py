"""What `make chaos` reads back, and what it reports: the shared part of its checks.

The API and Temporal as a client sees them (a read that may fail while a process restarts, a
payment once it is terminal, a workflow's state, a cancel sent as the Temporal UI sends it), and
the must-be-zero findings that `chaos`, `chaos_refunds`, `chaos_disputes` and `chaos_operator`
each add their counts to.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

TERMINAL = {"succeeded", "failed", "canceled"}
SETTLED = TERMINAL | {"requires_intervention"}  # an operator's to resolve: not lost


class CancelRecord(Protocol):
    """The operator's record of the cancels the API accepted (`chaos_operator.Operator`)."""

    cancel_accepted: set[str]


class LoadClient(Protocol):
    """What the refunds', disputes' and customers' loads use of the run's client (`chaos.Load`).

    Typed here, below them all, so that `chaos` imports them and none of them imports `chaos`.
    """

    api: httpx.AsyncClient
    temporal: Client
    canceled_by: dict[str, str]

    @property
    def operator(self) -> CancelRecord: ...

    async def cancel_by_api(self, payment_id: str) -> str: ...


@dataclass
class Findings:
    """What must be zero: a count per check, in the order checked, and the ids behind it."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def checking(self, *names: str) -> None:
        """Checks listed (with 0) even when nothing is found."""
        for name in names:
            self.counts[name] += 0

    def found(self, name: str, object_id: str) -> None:
        self.counts[name] += 1
        self.examples.setdefault(name, []).append(object_id)

    def print(self) -> None:
        print("\nmust all be zero:")
        for name, n in self.counts.items():
            examples = self.examples.get(name, [])[:5]
            print(f"  {name:<48} {n}" + (f"  (e.g. {', '.join(examples)})" if examples else ""))


async def api_get(api: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
    """The JSON of a 200, or None (any other answer, or none while the API restarts)."""
    try:
        response = await api.get(path)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


async def final_payment(
    api: httpx.AsyncClient, payment_id: str, timeout: float = 60
) -> dict[str, Any] | None:
    """The payment once it is terminal (None if it is not within `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        payment = await api_get(api, f"/v1/payments/{payment_id}")
        if payment and payment["status"] in TERMINAL:
            return payment
        await asyncio.sleep(0.5)
    return None


async def workflow_state(
    temporal: Client, workflow_id: str, wait_while_running: float = 0
) -> WorkflowExecutionStatus | None:
    """The workflow's status in Temporal (None when it has no such workflow); a running one is
    read again for up to `wait_while_running` seconds (a saga may close a moment after its last
    write)."""
    deadline = time.monotonic() + wait_while_running
    while True:
        try:
            status = (await temporal.get_workflow_handle(workflow_id).describe()).status
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() >= deadline:
            return status
        await asyncio.sleep(0.5)


async def cancel_from_temporal(temporal: Client, workflow_id: str) -> str:
    """A cancel request to the workflow, as the Temporal UI sends it, retried for a minute."""
    deadline = time.monotonic() + 60
    answer = "no answer"
    while time.monotonic() < deadline:
        try:
            await temporal.get_workflow_handle(workflow_id).cancel()
            return "requested"
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return "closed"  # the saga had already finished
            answer = exc.status.name if exc.status else "error"
        await asyncio.sleep(0.5)  # the Temporal server is restarting
    return answer
