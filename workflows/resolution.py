"""An operator's resolution of a payment whose saga is gone: booked as the saga would book it.

A saga terminated or reset from the Temporal UI leaves its payment (or refund) parked in
`requires_intervention` by the sweep, its holds kept. The API's resolve cannot send its update to
a closed workflow: it starts this one instead, workflow id `{payment id}:resolution`. It finds
everything by the saga's idempotency keys (money rule 5) and books through the saga's own
activities under those keys, so that what the saga did is never done twice:

- `failed` runs every compensation the saga may have registered, the last first; each finds what
  it undoes by its key and does nothing if there is nothing: a deposit's credit is reversed and
  its charge refunded at the provider if it took money; a withdrawal's or refund's posting is
  reversed and its hold voided; a transfer's settlement and conversion are reversed and its hold
  voided. The row ends `failed`, `resolved_by_operator`.
- `succeeded` books what makes it true: a deposit's credit (with `succeeded`, in one step), a
  withdrawal's or refund's hold posted, a transfer's settlement if it was paid out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import failures
    from activities import providers as psp
    from activities.ledger import (
        LedgerActivities,
        PostHoldInput,
        PostTransactionInput,
        ReleaseHoldInput,
        ReverseByKeyInput,
    )
    from activities.payments import (
        BookingActivities,
        PaymentActivities,
        PostAndRecordInput,
        RecordStatusInput,
    )
    from activities.refunds import RefundActivities
    from activities.resolution import FactsInput, PaymentFacts, ResolutionActivities
    from domain.payments import FailureCode, PaymentStatus, SagaTimings
    from domain.refunds import SEARCH_KIND as REFUND_KIND
    from ledger.models import AccountKind, HoldStatus, LineSpec, Split
    from providers.base import Outcome, ProviderResult
    from providers.routing import provider_task_queue
    from workflows.saga import LOCAL_STEP

RESOLUTION_WORKFLOW = "PaymentResolution"


def resolution_workflow_id(payment_id: str) -> str:
    return f"{payment_id}:resolution"


@dataclass
class ResolutionInput:
    """The operator's decision, and what the saga was started with that its row does not hold."""

    payment_id: str  # or a refund's id
    outcome: str  # succeeded or failed
    reason: str | None = None
    operator: str | None = None
    providers: list[str] = field(default_factory=list)  # the saga's candidates, in its order
    timings: SagaTimings = field(default_factory=SagaTimings)


@workflow.defn(name=RESOLUTION_WORKFLOW)
class PaymentResolutionWorkflow:
    """Ends a payment in `requires_intervention` whose saga is closed; fails if it cannot."""

    def __init__(self) -> None:
        self._input = ResolutionInput("", "")

    @workflow.run
    async def run(self, resolution: ResolutionInput) -> str:
        self._input = resolution
        facts: PaymentFacts = await workflow.execute_local_activity_method(
            ResolutionActivities.facts, FactsInput(resolution.payment_id), **LOCAL_STEP
        )
        if facts.status != PaymentStatus.REQUIRES_INTERVENTION:
            raise ApplicationError(
                f"{resolution.payment_id} is {facts.status}, not requires_intervention",
                type=failures.NOT_REQUIRING_INTERVENTION,
                non_retryable=True,
            )
        if resolution.outcome == "failed":
            await self._compensate(facts)
            return await self._record(facts, PaymentStatus.FAILED, FailureCode.RESOLVED_BY_OPERATOR)
        if resolution.outcome != "succeeded":
            raise ApplicationError(
                "outcome must be succeeded or failed",
                type=failures.INVALID_OUTCOME,
                non_retryable=True,
            )
        if facts.kind == "deposit":
            return await self._credit(facts)
        if facts.kind == "transfer":
            await self._settle(facts)
        else:  # a withdrawal's payout or a refund's, taken from the wallet's hold
            await self._post_hold(facts)
        return await self._record(facts, PaymentStatus.SUCCEEDED)

    # -- failed: every compensation the saga may have registered, the last registered first -----

    async def _compensate(self, facts: PaymentFacts) -> None:
        prefix = facts.key_prefix
        if facts.kind == "deposit":
            await self._reverse(prefix, "credit")
            for provider in self._candidates(facts):
                await self._refund_if_charged(facts, provider)
            return
        for step in ("settle", "convert", "post"):  # a transfer's, or a withdrawal's / refund's
            if step in facts.posted:
                await self._reverse(prefix, step)
        await workflow.execute_local_activity_method(
            LedgerActivities.release_hold,
            ReleaseHoldInput(f"{prefix}:void", f"{prefix}:hold"),
            **LOCAL_STEP,
        )

    async def _reverse(self, prefix: str, step: str) -> None:
        await workflow.execute_local_activity_method(
            LedgerActivities.reverse_by_key,
            ReverseByKeyInput(f"{prefix}:reverse-{step}", f"{prefix}:{step}"),
            **LOCAL_STEP,
        )

    async def _refund_if_charged(self, facts: PaymentFacts, provider: str) -> None:
        """The deposit saga's compensation of its charge: refunded if (and only if) it took money."""
        timings = self._input.timings
        await workflow.execute_activity_method(
            psp.ProviderActivities.refund_charge,
            psp.RefundInput(
                provider,
                f"{facts.key_prefix}:refund",
                facts.key_prefix,
                f"{facts.key_prefix}:charge",
                facts.amount,
                facts.currency,
            ),
            task_queue=self._provider_queue(provider),
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=timings.poll_interval_max_seconds),
                non_retryable_error_types=[failures.PROVIDER_REJECTED],
            ),
        )

    # -- succeeded: what makes it true, by the saga's keys (made at most once) -------------------

    async def _credit(self, facts: PaymentFacts) -> str:
        """The deposit's credit, the same posting as its saga's, with `succeeded` in one step."""
        provider = await self._provider_that_succeeded(facts, "charge")
        credit = PostTransactionInput(
            f"{facts.key_prefix}:credit",
            [
                LineSpec(
                    facts.merchant_id,
                    provider,
                    AccountKind.provider_clearing,
                    facts.currency,
                    -facts.amount,
                )
            ],
            f"deposit {facts.key_prefix}",
            split=Split(
                facts.merchant_id,
                facts.currency,
                facts.amount,
                facts.customer_id,
                AccountKind.customer_receivable,
                facts.customer_id,
                AccountKind.customer_wallet,
            ),
        )
        change = RecordStatusInput(
            self._input.payment_id,
            PaymentStatus.SUCCEEDED.value,
            provider,
            None,
            self._input.reason,
        )
        recorded = await workflow.execute_local_activity_method(
            BookingActivities.post_and_record_status,
            PostAndRecordInput(credit, change),
            **LOCAL_STEP,
        )
        return PaymentStatus.SUCCEEDED.value if recorded is None else recorded.status

    async def _post_hold(self, facts: PaymentFacts) -> None:
        """A withdrawal's or refund's hold posted to the provider's clearing, as its saga posts it."""
        hold = facts.hold
        if hold is None or hold.status not in (HoldStatus.pending, HoldStatus.posted):
            raise self._cannot(f"no pending hold under {facts.key_prefix}:hold to post")
        if facts.kind == REFUND_KIND:
            provider = facts.provider or ""
            description = f"refund {self._input.payment_id} of {facts.refunded_payment_id}"
        else:
            provider = await self._provider_that_succeeded(facts, "payout")
            description = f"withdrawal {facts.key_prefix}"
        await workflow.execute_local_activity_method(
            LedgerActivities.post_hold,
            PostHoldInput(
                f"{facts.key_prefix}:post",
                hold.id,
                [
                    LineSpec(
                        facts.merchant_id,
                        facts.customer_id,
                        AccountKind.customer_wallet,
                        facts.currency,
                        -facts.amount,
                    ),
                    LineSpec(
                        facts.merchant_id,
                        provider,
                        AccountKind.provider_clearing,
                        facts.currency,
                        facts.amount,
                    ),
                ],
                description,
            ),
            **LOCAL_STEP,
        )

    async def _settle(self, facts: PaymentFacts) -> None:
        """A transfer: converted is succeeded for a wallet; paid out, its settlement is booked
        (the amount in transit, as the conversion left it, to the provider's clearing)."""
        if "convert" not in facts.posted:
            raise self._cannot(f"{facts.key_prefix} was never converted: it can only fail")
        transit = facts.in_transit
        if transit is None:
            return
        provider = await self._provider_that_succeeded(facts, "payout")
        await workflow.execute_local_activity_method(
            LedgerActivities.post_transaction,
            PostTransactionInput(
                f"{facts.key_prefix}:settle",
                [
                    LineSpec(
                        facts.merchant_id,
                        transit.owner_id,
                        AccountKind.suspense,
                        transit.currency,
                        -transit.amount,
                    ),
                    LineSpec(
                        facts.merchant_id,
                        provider,
                        AccountKind.provider_clearing,
                        transit.currency,
                        transit.amount,
                    ),
                ],
                f"transfer {facts.key_prefix} paid out",
            ),
            **LOCAL_STEP,
        )

    async def _provider_that_succeeded(self, facts: PaymentFacts, step: str) -> str:
        """The provider that took the saga's call: the row's, else the one whose status of the
        call (by its key) is succeeded; none found, the resolution cannot be booked."""
        if facts.provider:
            return facts.provider
        timings = self._input.timings
        for provider in self._candidates(facts):
            try:
                status: ProviderResult = await workflow.execute_activity_method(
                    psp.ProviderActivities.final_status,
                    psp.StatusInput(provider, f"{facts.key_prefix}:{step}"),
                    task_queue=self._provider_queue(provider),
                    start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=timings.poll_interval_seconds),
                        maximum_attempts=timings.provider_attempts,
                    ),
                )
            except Exception as err:  # unreadable there: try the next
                workflow.logger.warning("status of %s at %s: %s", step, provider, err)
                continue
            if status.outcome == Outcome.succeeded:
                return provider
        raise self._cannot(f"no provider shows {facts.key_prefix}:{step} succeeded")

    def _candidates(self, facts: PaymentFacts) -> list[str]:
        return [facts.provider] if facts.provider else list(self._input.providers)

    def _provider_queue(self, provider: str) -> str:
        return provider_task_queue(workflow.info().task_queue, provider)

    def _cannot(self, why: str) -> ApplicationError:
        return ApplicationError(
            f"the resolution of {self._input.payment_id} cannot be booked: {why}",
            type=failures.RESOLVE_FAILED,
            non_retryable=True,
        )

    # -- the row ----------------------------------------------------------------------------------

    async def _record(
        self, facts: PaymentFacts, status: PaymentStatus, failure_code: str | None = None
    ) -> str:
        change = RecordStatusInput(
            self._input.payment_id, status.value, None, failure_code, self._input.reason
        )
        if facts.kind == REFUND_KIND:
            recorded = await workflow.execute_local_activity_method(
                RefundActivities.record_status, change, **LOCAL_STEP
            )
        else:
            recorded = await workflow.execute_local_activity_method(
                PaymentActivities.record_status, change, **LOCAL_STEP
            )
        return status.value if recorded is None else recorded.status
