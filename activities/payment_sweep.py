"""The orphan sweep's activities: payments (and refunds) whose saga never started end `failed`
(`saga_not_started`); those whose saga closed unfinished are parked for an operator; bonuses
whose expiry timer is not running get it started.

Nothing was sent to a provider for such a payment, so nothing is undone: the row is failed with
reason "the payment's workflow never started". Before that, the sweep takes the payment's workflow
id by starting a `SagaNotStarted` workflow under it (the API starts sagas with
`REJECT_DUPLICATE`): a client's late retry then can no longer start the saga behind a failed
payment, and an operator who pastes the payment id in the Temporal UI finds why it failed. One
whose ledger already holds records under its keys is not failed but parked, as below.

A saga terminated, reset away, timed out or failed from the Temporal UI leaves its row in flight
with its holds in place: the sweep parks such a payment (or refund) in `requires_intervention`,
the reason naming how its workflow closed, its holds kept. The operator's resolve then books the
decision without the saga (workflows/resolution.py).

A bonus granted whose workflow start failed would stay active forever: the sweep starts its Bonus
workflow, which expires it at once if it is past its `expires_at`, else waits for it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.payments import count_finished_payment
from domain import search_attributes as sa
from domain.bonuses import BonusInput
from domain.payments import FailureCode, PaymentStatus
from domain.refunds import SEARCH_KIND as REFUND_KIND
from domain.refunds import RefundStatus, refund_key_prefix
from paysaga.payment_sweep import ActiveBonus, SweepBooks
from paysaga.store import PaymentRow, RefundRow, Store

SAGA_NOT_STARTED = FailureCode.SAGA_NOT_STARTED.value  # nothing was ever sent to a provider
NOT_STARTED_REASON = "the payment's workflow never started"
REFUND_NOT_STARTED_REASON = "the refund's workflow never started"
# Workflow names, as registered by their modules (workflows/payment_sweep.py, workflows/bonus.py).
SAGA_NOT_STARTED_WORKFLOW = "SagaNotStarted"
BONUS_WORKFLOW = "Bonus"
PAGE = 200


class _Row(Protocol):
    @property
    def id(self) -> str: ...


class _Checked(Protocol):
    checked: int


RowT = TypeVar("RowT", bound=_Row)


async def _each_row(
    page: Callable[[str, int], Awaitable[Sequence[RowT]]], result: _Checked
) -> AsyncIterator[RowT]:
    """Every row `page(after_id, limit)` returns, PAGE at a time in id order; each page's rows
    are counted in `result.checked` and heartbeated once the caller has handled them."""
    after = ""
    while True:
        rows = await page(after, PAGE)
        for row in rows:
            yield row
        result.checked += len(rows)
        activity.heartbeat(result.checked)
        if len(rows) < PAGE:
            return
        after = rows[-1].id


BOOKED_WITHOUT_WORKFLOW = (
    "its workflow never started, yet the ledger holds records under its keys;"
    " its holds are kept for an operator's resolve"
)
# How a saga's workflow closed, as the parked payment's reason says it.
CLOSED_AS = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued as new",
}
# Bonuses granted this long ago at most have their timer checked on every sweep; older ones are
# checked once past their expiry (their timer should have ended them).
BONUS_LOOKBACK_SECONDS = 3_600.0


@dataclass
class FailOrphansInput:
    grace_seconds: float  # a payment younger than this may still be having its saga started


@dataclass
class FailOrphansResult:
    checked: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class ParkStrandedInput:
    quiet_seconds: float  # rows written this recently belong to a saga at work: not asked about


@dataclass
class ParkStrandedResult:
    checked: int = 0
    parked: list[str] = field(default_factory=list)


@dataclass
class BonusTimersInput:
    grace_seconds: float  # a bonus younger than this may still be having its workflow started
    lookback_seconds: float = BONUS_LOOKBACK_SECONDS


@dataclass
class BonusTimersResult:
    checked: int = 0
    started: list[str] = field(default_factory=list)


@dataclass
class SagaNotStartedInput:
    payment_id: str
    reason: str = NOT_STARTED_REASON


@dataclass(frozen=True)
class Orphan:
    """A payment or refund whose saga may never have started: what its workflow id shows."""

    id: str
    merchant_id: str
    kind: str
    customer_id: str
    currency: str
    amount: int
    key_prefix: str  # what its ledger keys start with

    @classmethod
    def of_payment(cls, row: PaymentRow) -> Orphan:
        return cls(
            row.id, row.merchant_id, row.kind, row.customer_id, row.currency, row.amount, row.id
        )

    @classmethod
    def of_refund(cls, row: RefundRow) -> Orphan:
        prefix = refund_key_prefix(row.payment_id, row.id)
        return cls(
            row.id, row.merchant_id, REFUND_KIND, row.customer_id, row.currency, row.amount, prefix
        )


class PaymentSweepActivities:
    def __init__(self, store: Store, books: SweepBooks) -> None:
        self._store = store
        self._books = books

    @activity.defn(name="payment_sweep.fail_orphans")
    async def fail_orphans(self, sweep: FailOrphansInput) -> FailOrphansResult:
        """Fail every payment and refund past the grace period whose saga never started;
        idempotent."""
        result = FailOrphansResult()
        grace = sweep.grace_seconds
        payments = functools.partial(self._books.untouched_processing_payments, grace)
        async for row in _each_row(payments, result):
            if await self._take_workflow_id(Orphan.of_payment(row)) and await self._fail(row):
                result.failed.append(row.id)
        refunds = functools.partial(self._books.untouched_processing_refunds, grace)
        async for refund in _each_row(refunds, result):
            orphan = Orphan.of_refund(refund)
            if await self._take_workflow_id(orphan) and await self._fail_refund(refund):
                result.failed.append(refund.id)
        return result

    async def _take_workflow_id(self, payment: Orphan) -> bool:
        """True when no saga ever ran for the payment and the sweep now holds its workflow id."""
        client = activity.client()
        try:
            description = await client.get_workflow_handle(payment.id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:  # its saga runs or ran, or an earlier attempt of this sweep took the id
            return description.workflow_type == SAGA_NOT_STARTED_WORKFLOW
        if await self._books.ledger_names(payment.key_prefix):
            if await self._park(payment.id, payment.kind, BOOKED_WITHOUT_WORKFLOW):
                activity.logger.warning(
                    "payment %s has no workflow but has ledger records: parked for an operator",
                    payment.id,
                )
            return False
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(sa.MERCHANT_ID, payment.merchant_id),
                SearchAttributePair(sa.PAYMENT_KIND, payment.kind),
                SearchAttributePair(sa.PAYMENT_STATUS, PaymentStatus.FAILED.value),
                SearchAttributePair(sa.CUSTOMER_ID, payment.customer_id),
                SearchAttributePair(sa.CURRENCY, payment.currency),
                SearchAttributePair(sa.AMOUNT_MINOR, payment.amount),
            ]
        )
        try:
            await client.start_workflow(
                SAGA_NOT_STARTED_WORKFLOW,
                SagaNotStartedInput(payment.id),
                id=payment.id,
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
                static_summary=f"{payment.kind} failed: {NOT_STARTED_REASON}",
            )
        except WorkflowAlreadyStartedError:
            return False  # a client's retry started its saga just now: the saga owns it
        return True

    async def _fail_refund(self, refund: RefundRow) -> bool:
        """Fail the refund as its saga would (its amount refundable again, event refund.failed);
        False if done before."""
        row = await self._store.update_refund(
            refund.id,
            RefundStatus.FAILED.value,
            SAGA_NOT_STARTED,
            REFUND_NOT_STARTED_REASON,
        )
        if row is None:
            return False  # already terminal: an earlier attempt of this sweep failed it
        activity.logger.info("refund %s is failed (%s)", row.id, SAGA_NOT_STARTED)
        return True

    async def _fail(self, payment: PaymentRow) -> bool:
        """Fail the payment as the sagas do, its event (`payment.failed`) in the same transaction:
        the merchant hears of it through its own feed and webhook; False if done before."""
        row = await self._store.update_payment(
            payment.id,
            PaymentStatus.FAILED.value,
            failure_code=SAGA_NOT_STARTED,
            failure_reason=NOT_STARTED_REASON,
        )
        if row is None:
            return False  # already terminal: an earlier attempt of this sweep failed it
        activity.logger.info("payment %s is failed (%s)", row.id, SAGA_NOT_STARTED)
        count_finished_payment(row)
        return True

    # -- sagas closed unfinished: parked for an operator ------------------------------------------

    @activity.defn(name="payment_sweep.park_stranded")
    async def park_stranded(self, sweep: ParkStrandedInput) -> ParkStrandedResult:
        """Park every payment and refund in flight whose workflow has no running run; idempotent."""
        result = ParkStrandedResult()
        payments = functools.partial(self._books.quiet_payments_in_flight, sweep.quiet_seconds)
        async for row in _each_row(payments, result):
            touched = row.updated_at != row.created_at
            reason = await self._closed_saga(row.id, row.status, touched)
            if reason is not None and await self._park(row.id, row.kind, reason):
                result.parked.append(row.id)
        refunds = functools.partial(self._books.quiet_refunds_in_flight, sweep.quiet_seconds)
        async for refund in _each_row(refunds, result):
            touched = refund.updated_at != refund.created_at
            reason = await self._closed_saga(refund.id, refund.status, touched)
            if reason is not None and await self._park(refund.id, REFUND_KIND, reason):
                result.parked.append(refund.id)
        return result

    async def _closed_saga(self, payment_id: str, status: str, touched: bool) -> str | None:
        """Why the payment must be parked (how its workflow closed); None while a run of it runs,
        or while its saga may never have started (`fail_orphans` decides those)."""
        try:
            description = await activity.client().get_workflow_handle(payment_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            if not touched:
                return None
            how = "no longer exists"
        else:
            if description.status in (None, WorkflowExecutionStatus.RUNNING):
                return None
            if description.workflow_type == SAGA_NOT_STARTED_WORKFLOW:
                return None  # the sweep took the id of a saga that never started: it fails it
            how = f"was {CLOSED_AS.get(description.status, description.status.name.lower())}"
        return (
            f"its workflow {how} while it was {status};"
            " its holds are kept for an operator's resolve"
        )

    async def _park(self, payment_id: str, kind: str, reason: str) -> bool:
        """Park the payment (or refund) in `requires_intervention` as the sagas do: its event in
        the same transaction; False if it ended meanwhile or was parked before."""
        status = PaymentStatus.REQUIRES_INTERVENTION.value
        if kind == REFUND_KIND:
            refund = await self._store.get_refund(payment_id)
            if refund is None or refund.status == status:
                return False
            parked_refund = await self._store.update_refund(payment_id, status, None, reason)
            parked = parked_refund is not None
        else:
            payment = await self._store.get_payment(payment_id)
            if payment is None or payment.status == status:
                return False
            parked = (
                await self._store.update_payment(payment_id, status, failure_reason=reason)
                is not None
            )
        if parked:
            activity.logger.warning("%s %s is parked: %s", kind, payment_id, reason)
        return parked

    # -- bonuses whose expiry timer is not running ------------------------------------------------

    @activity.defn(name="payment_sweep.start_bonus_timers")
    async def start_bonus_timers(self, sweep: BonusTimersInput) -> BonusTimersResult:
        """Start the Bonus workflow of every active bonus that has none running; idempotent.
        One past its expiry is expired by it at once, as its timer would have."""
        result = BonusTimersResult()
        bonuses = functools.partial(
            self._books.bonuses_to_time, sweep.grace_seconds, sweep.lookback_seconds
        )
        async for bonus in _each_row(bonuses, result):
            if await self._start_bonus_timer(bonus):
                result.started.append(bonus.id)
        return result

    async def _start_bonus_timer(self, bonus: ActiveBonus) -> bool:
        """Start the bonus's workflow unless a run of it is running; True if started."""
        client = activity.client()
        try:
            description = await client.get_workflow_handle(bonus.id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            if description.status in (None, WorkflowExecutionStatus.RUNNING):
                return False
        expires_at = bonus.expires_at.isoformat()
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(sa.MERCHANT_ID, bonus.merchant_id),
                SearchAttributePair(sa.CUSTOMER_ID, bonus.customer_id),
                SearchAttributePair(sa.CURRENCY, bonus.currency),
                SearchAttributePair(sa.AMOUNT_MINOR, bonus.amount),
            ]
        )
        try:
            await client.start_workflow(
                BONUS_WORKFLOW,
                BonusInput(
                    bonus.id,
                    bonus.merchant_id,
                    bonus.customer_id,
                    bonus.currency,
                    bonus.amount,
                    expires_at,
                ),
                id=bonus.id,
                task_queue=activity.info().task_queue,
                # A run that closed with the bonus still active (terminated from the UI) is
                # replaced; a running one is left alone.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=attributes,
                static_summary=(
                    f"bonus of {bonus.amount} {bonus.currency} minor units for"
                    f" {bonus.customer_id}, expires {expires_at}"
                ),
            )
        except WorkflowAlreadyStartedError:
            return False  # its grant's own start, or another sweep, came first
        activity.logger.warning("bonus %s had no running timer: started", bonus.id)
        return True
