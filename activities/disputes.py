"""Dispute activities: the dispute row the API serves, and the provider's dispute API.

The row's writes are local steps (idempotent: a retry finds the row as the first attempt left
it). The provider calls run on the provider's own task queue. An answer (evidence, acceptance)
the provider refuses because the dispute is no longer open, or that may or may not have gone
through (network trouble), is followed by a read of the dispute's state: the saga decides from
what the provider shows, never from the refusal alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import failures
from paysaga.store import Store
from paysaga.store.disputes import NewDispute
from providers.base import (
    DisputeProvider,
    DisputeState,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderUnavailable,
)
from providers.directory import ProviderDirectory

DISPUTE_NOT_OPEN = "dispute_not_open"  # the provider's code: the dispute needs no response


@dataclass
class RecordDisputeInput:
    dispute_id: str
    payment_id: str
    provider: str
    provider_dispute_id: str
    amount: int
    currency: str
    fee: int
    reason: str
    evidence_due_by: str  # ISO 8601 with offset


@dataclass
class RecordedDispute:
    """The dispute's row as the saga found or made it."""

    status: str
    customer_part: int  # what the withdrawal takes from the customer
    receivable: int


@dataclass
class OpenDisputeInput:
    dispute_id: str
    receivable: int


@dataclass
class DisputeStatusInput:
    dispute_id: str
    status: str
    provider_sequence: int = 0


@dataclass
class AnswerDisputeInput:
    provider: str
    provider_dispute_id: str
    action: str  # evidence or accept
    text: str = ""


@dataclass
class DisputeVerdictInput:
    provider: str
    provider_dispute_id: str


class DisputeActivities:
    """Writes of the disputes table; a final dispute never changes, none moves backwards."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name="disputes.record")
    async def record(self, dispute: RecordDisputeInput) -> RecordedDispute:
        """Insert the dispute (`needs_response`), or find it as an earlier attempt left it."""
        row = await self._store.record_dispute(
            NewDispute(
                dispute.dispute_id,
                dispute.payment_id,
                dispute.provider,
                dispute.provider_dispute_id,
                dispute.amount,
                dispute.currency,
                dispute.fee,
                dispute.reason,
                datetime.fromisoformat(dispute.evidence_due_by),
            )
        )
        if row is None:
            raise ApplicationError(
                f"no payment {dispute.payment_id} for dispute {dispute.dispute_id}",
                type=failures.DISPUTED_PAYMENT_NOT_FOUND,
                non_retryable=True,
            )
        return RecordedDispute(row.status, row.customer_part, row.receivable)

    @activity.defn(name="disputes.open")
    async def open(self, opened: OpenDisputeInput) -> None:
        """The withdrawal is booked: record its receivable and announce `dispute.created`."""
        await self._store.open_dispute(opened.dispute_id, opened.receivable)

    @activity.defn(name="disputes.record_status")
    async def record_status(self, change: DisputeStatusInput) -> str | None:
        """Move the dispute to a status (never backwards); the status the row now shows."""
        row = await self._store.update_dispute_status(
            change.dispute_id, change.status, change.provider_sequence
        )
        if row is not None:
            activity.logger.info("dispute %s is %s", row.id, row.status)
        return None if row is None else row.status


class DisputeProviderActivities:
    """Calls to the providers' dispute APIs, on each provider's task queue."""

    def __init__(self, providers: ProviderDirectory | Mapping[str, DisputeProvider]) -> None:
        self._providers = (
            providers
            if isinstance(providers, ProviderDirectory)
            else ProviderDirectory.of(providers)
        )

    async def _provider(self, account_id: str) -> DisputeProvider:
        try:
            return await self._providers.get(account_id)
        except ProviderConfigurationError as exc:
            raise ApplicationError(
                str(exc), type=ProviderConfigurationError.__name__, non_retryable=True
            ) from None

    @activity.defn(name="provider.answer_dispute")
    async def answer(self, answer: AnswerDisputeInput) -> DisputeState:
        """Send evidence or the acceptance; the dispute's state after it, whoever closed it.

        Once the dispute is no longer open (answered by an earlier attempt, or closed by the
        provider at its due date), the answer is its current state. Network trouble is retried.
        """
        provider = await self._provider(answer.provider)
        try:
            with _unavailable_retried():
                if answer.action == "evidence":
                    return await provider.submit_dispute_evidence(
                        answer.provider_dispute_id, answer.text
                    )
                return await provider.accept_dispute(answer.provider_dispute_id)
        except ProviderRequestRejected as exc:
            if exc.code != DISPUTE_NOT_OPEN:
                raise _rejection(exc) from exc
        return await self.current(answer.provider, answer.provider_dispute_id)

    @activity.defn(name="provider.dispute_verdict")
    async def verdict(self, query: DisputeVerdictInput) -> DisputeState:
        """The dispute once the provider closed it; raises (retried with backoff) until then."""
        state = await self.current(query.provider, query.provider_dispute_id)
        if not state.status.is_final:
            raise ApplicationError(
                f"dispute {query.provider_dispute_id} is still {state.status}",
                type=failures.PROVIDER_OUTCOME_PENDING,
            )
        return state

    async def current(self, account_id: str, dispute_id: str) -> DisputeState:
        provider = await self._provider(account_id)
        try:
            with _unavailable_retried():
                return await provider.dispute_status(dispute_id)
        except ProviderRequestRejected as exc:
            raise _rejection(exc) from exc


@contextlib.contextmanager
def _unavailable_retried() -> Iterator[None]:
    """Network trouble at the provider becomes a retryable ApplicationError."""
    try:
        yield
    except ProviderUnavailable as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__) from exc


def _rejection(exc: ProviderRequestRejected) -> ApplicationError:
    return ApplicationError(str(exc), exc.code, type=failures.PROVIDER_REJECTED, non_retryable=True)
