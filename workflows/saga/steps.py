"""The saga's steps as Temporal runs them: step options, failures, compensations, operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import (
    ActivityCancellationType,
)

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from domain.payments import (
        SagaTimings,
    )
    from providers.routing import provider_task_queue

# Local steps (database, rules) run as local activities: in the worker that runs the workflow,
# with no round trip through the Temporal server; they are idempotent, so a retry after a crash
# is safe. Retried for as long as a dependency is down: in place for the first half minute, then
# on durable timers with backoff, so that a long outage does not grow the history. A cancel waits
# for the step to finish, so that a compensation never races the step it undoes.
LOCAL_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=10)),
    "local_retry_threshold": timedelta(seconds=30),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}
# A ledger step whose scheduling must be in the history before it runs (a point of no return
# that writes to the ledger): a regular activity on the saga's own queue, retried like a local one.
DURABLE_LEDGER_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=10)),
}

# What a failed activity raises in the workflow: an ActivityError wrapping the activity's
# ApplicationError, or, for a local activity, the ApplicationError itself.
STEP_FAILED = (ActivityError, ApplicationError)

T = TypeVar("T")


def provider_queue(provider: str) -> str:
    """This saga's task queue for calls to `provider` (each provider has its own)."""
    return provider_task_queue(workflow.info().task_queue, provider)


def provider_call(timings: SagaTimings, provider: str) -> dict[str, Any]:
    """Options of a provider call: its queue, a few attempts while it answers "not processed"."""
    return {
        "task_queue": provider_queue(provider),
        "start_to_close_timeout": timedelta(seconds=timings.provider_call_seconds),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=timings.poll_interval_seconds),
            maximum_attempts=timings.provider_attempts,
            non_retryable_error_types=[failures.PROVIDER_REJECTED],
        ),
    }


def error_type(err: BaseException) -> str | None:
    """The ApplicationError type behind an activity failure, if any."""
    cause = err.cause if isinstance(err, ActivityError) else err  # local: the error itself
    return cause.type if isinstance(cause, ApplicationError) else None


class Compensations:
    """Undo steps, registered *before* their step (a step may succeed and fail to report it).

    Each is idempotent and finds what it undoes by its idempotency key, so running one that has
    nothing to undo, or running it again after an interruption, is harmless.
    """

    def __init__(self) -> None:
        self._steps: list[Callable[[], Awaitable[Any]]] = []

    def add(self, step: Callable[[], Awaitable[Any]]) -> None:
        self._steps.append(step)

    async def run(self) -> None:
        """Run every registered compensation, the last registered first; each leaves once done."""
        while self._steps:
            await self._steps[-1]()
            self._steps.pop()


@dataclass(frozen=True)
class ProviderOperation:
    """What the saga asked a provider to do: its events and polls are matched against it."""

    idempotency_key: str
    amount: int
    currency: str


class PaymentInput(Protocol):
    payment_id: str
    timings: SagaTimings


def describe(err: BaseException) -> str:
    """A step failure as an operator reads it: its type, then its message."""
    return f"{error_type(err) or type(err).__name__}: {err}"
