"""Record a history of every saga path into tests/histories/<saga>_<path>.json, for the replay test.

Run it after a deliberate change of a saga (`make histories`): it runs each path on Temporal's
time-skipping server and a throwaway PostgreSQL, with the harness of tests/workflows (real ledger,
fake providers, faults on demand), and overwrites the JSON files. Commit them with the change.
The workflows beside the sagas (the orphan sweep and the SagaNotStarted workflow it starts,
reconciliation, retention) are recorded the same way, with their real activities and providers
whose settlement reports are planted.

    .venv/bin/python -m tests.histories.capture [path-name-filter]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import failures
from activities.payment_sweep import PaymentSweepActivities
from activities.reconciliation import ReconciliationActivities
from activities.retention import RetentionActivities
from domain.bonuses import BonusEnd, ForfeitRequest
from domain.disputes import DisputeAnswer, DisputeView
from domain.merchants import DEV_MERCHANT_ID
from domain.payments import ResolveDecision, ReviewDecision
from ledger.models import AccountKind, LineSpec
from paysaga.database import open_pool, run_migrations, start_embedded_postgres
from paysaga.payment_sweep import SweepBooks
from paysaga.reconciliation import ReconciliationBooks
from paysaga.store import Store
from paysaga.store.provider_health import ProviderBreakers
from providers.base import AUTHENTICATION_FAILED, DisputeStatus, Outcome, SettlementLine
from providers.health import BreakerPolicy
from tests.workflows.bonus_harness import BonusHarness
from tests.workflows.dispute_harness import DisputeHarness
from tests.workflows.harness import (
    AMOUNT,
    BIG_AMOUNT,
    PROVIDERS,
    Payment,
    SagaHarness,
    start_time_skipping_server,
)
from tests.workflows.stranded_harness import StrandedHarness, resolution_handle, resolve, sweep
from workflows.payment_sweep import PaymentSweepInput, PaymentSweepWorkflow, SagaNotStartedWorkflow
from workflows.reconciliation import ReconciliationInput, ReconciliationWorkflow
from workflows.retention import RetentionInput, RetentionWorkflow

HISTORIES = Path(__file__).resolve().parent
Path_ = Callable[[SagaHarness], Awaitable[Payment]]
PATHS: dict[str, Path_] = {}


def path(name: str) -> Callable[[Path_], Path_]:
    def register(run: Path_) -> Path_:
        PATHS[name] = run
        return run

    return register


# -- ways through a saga, shared by the three ---------------------------------------------------


async def start(saga: SagaHarness, kind: str, **options: object) -> Payment:
    """Start a saga of `kind` for a new customer funded enough for it."""
    amount = int(options.pop("amount", AMOUNT))  # type: ignore[call-overload]
    funds = int(options.pop("funds", amount))  # type: ignore[call-overload]
    country = str(options.pop("country", "DE"))
    if kind == "deposit":
        return await saga.deposit(await saga.customer(country=country), amount=amount, **options)  # type: ignore[arg-type]
    customer = await saga.customer(funds=funds, country=country)
    if kind == "withdrawal":
        return await saga.withdrawal(customer, amount=amount, **options)  # type: ignore[arg-type]
    return await saga.transfer(customer, amount=amount, **options)  # type: ignore[arg-type]


async def review(saga: SagaHarness, kind: str, decision: str | None) -> Payment:
    payment = await start(saga, kind, amount=BIG_AMOUNT)
    await saga.wait_status(payment, "requires_review")
    if decision:
        await payment.handle.execute_update("review", ReviewDecision(decision, "checked"))
    return payment


async def cancel_before(saga: SagaHarness, kind: str, source: str) -> Payment:
    """Cancel before the point of no return: in review (withdrawal, transfer), in KYC (deposit)."""
    if kind == "deposit":
        saga.faults.block("risk.screen_payment")
        payment = await start(saga, kind)
        await saga.faults.entered("risk.screen_payment")
    else:
        payment = await review(saga, kind, None)
    await saga.cancel(payment, source)
    return payment


# The step in flight past the point of no return, when a cancel comes.
IN_FLIGHT = {"deposit": "provider.charge", "withdrawal": "provider.payout"}


async def cancel_after(saga: SagaHarness, kind: str, source: str) -> Payment:
    step = IN_FLIGHT.get(kind, "provider.payout")
    saga.faults.block(step)
    payment = await start(saga, kind)
    await saga.faults.entered(step)
    await saga.cancel(payment, source)
    if source == "temporal":
        await saga.cancel_ignored(payment)
    saga.faults.release(step)
    return payment


async def intervention(saga: SagaHarness, kind: str, outcome: str) -> Payment:
    """Polling fails for good past the point of no return; an operator resolves it."""
    saga.faults.fail("provider.final_status")
    token = {"method": "pm_pending"} if kind == "deposit" else {}
    if kind == "withdrawal":
        token = {"destination": "pm_pending"}
    if kind == "transfer":
        token = {"account": "pm_pending"}
    payment = await start(saga, kind, **token)
    await saga.wait_status(payment, "requires_intervention")
    saga.books.settle(payment.id, Outcome.succeeded if outcome == "succeeded" else Outcome.declined)
    await payment.handle.execute_update("resolve", ResolveDecision(outcome, "checked at the PSP"))
    return payment


async def late_answer(saga: SagaHarness, kind: str) -> Payment:
    """No webhook, polling until the provider answers."""
    token = {"deposit": "method", "withdrawal": "destination", "transfer": "account"}[kind]
    payment = await start(saga, kind, **{token: "pm_pending"})
    await saga.wait_status(payment, "processing")
    await asyncio.sleep(1.5)  # a few polls
    saga.books.settle(payment.id, Outcome.succeeded)
    return payment


def register_common(kind: str) -> None:
    token = {"deposit": "method", "withdrawal": "destination", "transfer": "account"}[kind]
    path(f"{kind}_succeeded")(lambda saga: start(saga, kind))
    path(f"{kind}_kyc_rejected")(lambda saga: start(saga, kind, country="KP"))
    path(f"{kind}_provider_declined")(lambda saga: start(saga, kind, **{token: "pm_decline"}))
    path(f"{kind}_provider_rejected")(lambda saga: start(saga, kind, **{token: "pm_reject"}))
    screening = "risk.screen_payment" if kind == "deposit" else "risk.assess_payment"
    path(f"{kind}_internal_error")(lambda saga: fail_at(saga, kind, screening))
    path(f"{kind}_provider_timeout")(lambda saga: hang_provider(saga, kind))
    path(f"{kind}_late_answer")(lambda saga: late_answer(saga, kind))
    for source in ("api", "temporal"):
        path(f"{kind}_cancel_before_{source}")(lambda saga, s=source: cancel_before(saga, kind, s))  # type: ignore[misc]
        path(f"{kind}_cancel_after_{source}")(lambda saga, s=source: cancel_after(saga, kind, s))  # type: ignore[misc]
    for outcome in ("succeeded", "failed"):
        path(f"{kind}_intervention_{outcome}")(lambda saga, o=outcome: intervention(saga, kind, o))  # type: ignore[misc]
    if kind != "deposit":
        path(f"{kind}_insufficient_funds")(lambda saga: start(saga, kind, funds=AMOUNT - 1))
        path(f"{kind}_review_approved")(lambda saga: review(saga, kind, "approve"))
        path(f"{kind}_review_rejected")(lambda saga: review(saga, kind, "reject"))
        path(f"{kind}_review_deadline")(lambda saga: review(saga, kind, None))


async def fail_at(saga: SagaHarness, kind: str, step: str) -> Payment:
    saga.faults.fail(step)
    return await start(saga, kind)


async def hang_provider(saga: SagaHarness, kind: str) -> Payment:
    saga.faults.hang(IN_FLIGHT.get(kind, "provider.payout"), times=2)
    return await start(saga, kind)


for each in ("deposit", "withdrawal", "transfer"):
    register_common(each)


@path("deposit_risk_declined")
async def _deposit_too_large(saga: SagaHarness) -> Payment:
    return await start(saga, "deposit", amount=5_000_001)


@path("deposit_credit_failed")
async def _deposit_credit_failed(saga: SagaHarness) -> Payment:
    saga.faults.fail("payments.post_and_record_status", error_type=failures.POSTING_REFUSED)
    return await start(saga, "deposit")


@path("transfer_to_wallet")
async def _transfer_to_wallet(saga: SagaHarness) -> Payment:
    return await start(saga, "transfer", account=None, beneficiary_id=await saga.customer())


@path("transfer_sanctions_hit")
async def _transfer_sanctions_hit(saga: SagaHarness) -> Payment:
    return await start(saga, "transfer", beneficiary_name="Sanctioned Test Person")


@path("transfer_quote_expired")
async def _transfer_quote_expired(saga: SagaHarness) -> Payment:
    return await start(saga, "transfer", quote_seconds=-1)


@path("transfer_quote_expired_in_review")
async def _transfer_quote_expired_in_review(saga: SagaHarness) -> Payment:
    payment = await start(saga, "transfer", amount=BIG_AMOUNT, quote_seconds=600)
    await saga.wait_status(payment, "requires_review")
    await saga.env.sleep(700)
    await payment.handle.execute_update("review", ReviewDecision("approve", "late"))
    return payment


# -- a deposit whose charge waits for its customer (tests/workflows/test_deposit_authentication.py)


async def waiting_for_customer(saga: SagaHarness) -> Payment:
    payment = await saga.deposit(
        await saga.customer(), method="pm_3ds", return_url="https://shop.example/done"
    )
    await saga.wait_status(payment, "requires_action")
    return payment


@path("deposit_authentication_succeeded")
async def _deposit_authentication_succeeded(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    saga.books.settle(payment.id, Outcome.succeeded)
    await saga.charge_event(payment, "succeeded")
    return payment


@path("deposit_authentication_failed")
async def _deposit_authentication_failed(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    saga.books.settle(payment.id, Outcome.declined, AUTHENTICATION_FAILED)
    await saga.charge_event(payment, "declined", AUTHENTICATION_FAILED)
    return payment


@path("deposit_authentication_declined")
async def _deposit_authentication_declined(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    saga.books.settle(payment.id, Outcome.declined, "card_declined")
    await saga.charge_event(payment, "declined", "card_declined")
    return payment


@path("deposit_authentication_polled")
async def _deposit_authentication_polled(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    saga.books.settle(payment.id, Outcome.succeeded)  # no webhook
    return payment


@path("deposit_authentication_abandoned")
async def _deposit_authentication_abandoned(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    await saga.env.sleep(timedelta(seconds=901))
    return payment


@path("deposit_authentication_abandoned_late_success")
async def _deposit_authentication_abandoned_late_success(saga: SagaHarness) -> Payment:
    payment = await waiting_for_customer(saga)
    saga.books.customer_first.add(f"{payment.id}:charge")
    await saga.env.sleep(timedelta(seconds=901))
    return payment


async def authentication_canceled(saga: SagaHarness, source: str, first: bool) -> Payment:
    payment = await waiting_for_customer(saga)
    if first:
        saga.books.customer_first.add(f"{payment.id}:charge")
    await saga.cancel(payment, source)
    return payment


for source_ in ("api", "temporal"):
    path(f"deposit_authentication_cancel_{source_}")(
        lambda saga, s=source_: authentication_canceled(saga, s, False)  # type: ignore[misc]
    )
path("deposit_authentication_cancel_customer_first")(
    lambda saga: authentication_canceled(saga, "api", True)
)


# -- the refund saga's paths (tests/workflows/test_refund.py tells each) ----------------------


async def refund(saga: SagaHarness, funds: int = AMOUNT, token: str = "pm_ok") -> Payment:
    """A refund of AMOUNT from a customer's wallet funded with `funds`."""
    return await saga.refund(await saga.customer(funds=funds), token=token)


async def refund_settled(saga: SagaHarness, refund_: Payment, outcome: Outcome) -> None:
    """The provider decides the refund (its books name the deposit)."""
    row = await saga.store.get_refund(refund_.id)
    assert row is not None
    saga.books.settle(row.payment_id, outcome)


@path("refund_succeeded")
async def _refund_succeeded(saga: SagaHarness) -> Payment:
    return await refund(saga)


@path("refund_insufficient_funds")
async def _refund_insufficient_funds(saga: SagaHarness) -> Payment:
    return await refund(saga, funds=AMOUNT - 1)


@path("refund_provider_declined")
async def _refund_provider_declined(saga: SagaHarness) -> Payment:
    return await refund(saga, token="pm_decline")


@path("refund_provider_rejected")
async def _refund_provider_rejected(saga: SagaHarness) -> Payment:
    return await refund(saga, token="pm_reject")


@path("refund_internal_error")
async def _refund_internal_error(saga: SagaHarness) -> Payment:
    saga.faults.fail("ledger.hold_funds", after_effect=True)
    return await refund(saga)


@path("refund_provider_timeout")
async def _refund_provider_timeout(saga: SagaHarness) -> Payment:
    saga.faults.hang("provider.refund", times=2)
    return await refund(saga)


# -- through an open circuit breaker: it stays open a moment of real time, while the saga waits
# on timers the time-skipping server skips; then its probe goes through.

BREAKER_POLICY = BreakerPolicy(open_seconds=1.0)
BREAKER_PATHS = {"withdrawal_breaker_wait", "refund_resend_breaker_wait"}


async def open_breakers(saga: SagaHarness, *accounts: str) -> None:
    async with saga.store.pool.connection() as conn:
        for account in accounts:
            await conn.execute(
                "INSERT INTO provider_health (provider_account, state, recent, opened_at)"
                " VALUES (%s, 'open', 'fffff', now()) ON CONFLICT (provider_account) DO UPDATE"
                " SET state = 'open', recent = 'fffff', opened_at = now()",
                (account,),
            )


@path("withdrawal_breaker_wait")
async def _withdrawal_breaker_wait(saga: SagaHarness) -> Payment:
    """Every provider's breaker open: the payout waits for one to let a probe through."""
    await open_breakers(saga, *PROVIDERS)
    return await start(saga, "withdrawal")


@path("withdrawal_resends_spaced")
async def _withdrawal_resends_spaced(saga: SagaHarness) -> Payment:
    """The payout's answer is lost; the provider refuses its resends (not processed) past
    MAX_RESENDS, so later ones wait ever longer first; then one is taken."""
    saga.faults.hang("provider.payout", times=2, after_effect=False)
    refusals = saga.faults.then(
        "provider.payout", "fail", error_type=failures.PROVIDER_NOT_PROCESSED
    )
    refusals.times = 5
    return await start(saga, "withdrawal")


@path("refund_resend_breaker_wait")
async def _refund_resend_breaker_wait(saga: SagaHarness) -> Payment:
    """The refund call times out before reaching the provider; its resends are skipped by the
    open breaker and wait for it, then one is sent."""
    saga.faults.hang("provider.refund", times=2, after_effect=False)
    payment = await refund(saga)
    while saga.faults.calls("provider.refund") < 2:  # both attempts of the first call hang
        await asyncio.sleep(0.05)
    await open_breakers(saga, PROVIDERS[0])
    return payment


@path("refund_late_answer")
async def _refund_late_answer(saga: SagaHarness) -> Payment:
    payment = await refund(saga, token="pm_pending")
    await saga.wait_status(payment, "processing")
    await asyncio.sleep(1.5)  # a few polls
    await refund_settled(saga, payment, Outcome.succeeded)
    return payment


@path("refund_posting_failed")
async def _refund_posting_failed(saga: SagaHarness) -> Payment:
    saga.faults.fail("ledger.post_hold", after_effect=True, times=1)
    payment = await refund(saga)
    await saga.wait_status(payment, "requires_intervention")
    await payment.handle.execute_update("resolve", ResolveDecision("succeeded", "refunded at PSP"))
    return payment


async def refund_cancel(saga: SagaHarness, source: str, step: str) -> Payment:
    """A cancel while `step` is in flight: before the provider call (the hold) or after it."""
    saga.faults.block(step)
    payment = await refund(saga)
    await saga.faults.entered(step)
    await saga.cancel(payment, source)
    if step != "ledger.hold_funds":
        if source == "temporal":
            await saga.cancel_ignored(payment)
        saga.faults.release(step)
    return payment


async def refund_intervention(saga: SagaHarness, outcome: str) -> Payment:
    """Polling fails for good past the point of no return; an operator resolves it."""
    saga.faults.fail("provider.final_status")
    payment = await refund(saga, token="pm_pending")
    await saga.wait_status(payment, "requires_intervention")
    settled = Outcome.succeeded if outcome == "succeeded" else Outcome.declined
    await refund_settled(saga, payment, settled)
    await payment.handle.execute_update("resolve", ResolveDecision(outcome, "checked at the PSP"))
    return payment


for source_ in ("api", "temporal"):
    path(f"refund_cancel_before_{source_}")(
        lambda saga, s=source_: refund_cancel(saga, s, "ledger.hold_funds")  # type: ignore[misc]
    )
    path(f"refund_cancel_after_{source_}")(
        lambda saga, s=source_: refund_cancel(saga, s, "provider.refund")  # type: ignore[misc]
    )
for outcome_ in ("succeeded", "failed"):
    path(f"refund_intervention_{outcome_}")(
        lambda saga, o=outcome_: refund_intervention(saga, o)  # type: ignore[misc]
    )


# -- receivables: a customer in debt (a chargeback the wallet could not cover) ----------------


async def indebted_customer(saga: SagaHarness, funds: int, debt: int) -> str:
    customer = await saga.customer(funds=funds)
    await saga.ledger.post_transaction(
        f"{customer}:chargeback",
        [
            LineSpec(saga.merchant_id, "seed-provider", AccountKind.provider_clearing, "EUR", debt),
            LineSpec(saga.merchant_id, customer, AccountKind.customer_receivable, "EUR", -debt),
        ],
    )
    return customer


@path("withdrawal_customer_in_debt")
async def _withdrawal_customer_in_debt(saga: SagaHarness) -> Payment:
    return await saga.withdrawal(await indebted_customer(saga, AMOUNT, 1))


@path("deposit_repays_receivable")
async def _deposit_repays_receivable(saga: SagaHarness) -> Payment:
    return await saga.deposit(await indebted_customer(saga, 0, AMOUNT // 2))


# -- the dispute saga's paths (tests/workflows/test_dispute.py tells each) --------------------

DisputePath = Callable[[DisputeHarness], Awaitable[WorkflowHandle[Any, str]]]
DISPUTE_PATHS: dict[str, DisputePath] = {}


def dispute_path(name: str) -> Callable[[DisputePath], DisputePath]:
    def register(run: DisputePath) -> DisputePath:
        DISPUTE_PATHS[name] = run
        return run

    return register


async def respond(handle: WorkflowHandle[Any, str], action: str) -> None:
    await handle.execute_update(
        "respond", DisputeAnswer(action, "receipt"), result_type=DisputeView
    )


@dispute_path("dispute_won")
async def _dispute_won(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    dispute = await saga.open_dispute(await saga.funded_deposit(AMOUNT, funds=AMOUNT // 2), AMOUNT)
    await saga.wait_dispute(dispute, "needs_response")
    await respond(dispute.handle, "evidence")
    await saga.decide(dispute)
    return dispute.handle


@dispute_path("dispute_lost_with_evidence")
async def _dispute_lost(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    deposit = await saga.funded_deposit(AMOUNT)
    dispute = await saga.open_dispute(deposit, AMOUNT, fee=100, planted=DisputeStatus.lost)
    await saga.wait_dispute(dispute, "needs_response")
    await respond(dispute.handle, "evidence")
    await saga.decide(dispute)
    return dispute.handle


@dispute_path("dispute_accepted")
async def _dispute_accepted(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    dispute = await saga.open_dispute(await saga.funded_deposit(AMOUNT), AMOUNT // 2, fee=100)
    await saga.wait_dispute(dispute, "needs_response")
    await respond(dispute.handle, "accept")
    return dispute.handle


@dispute_path("dispute_due_date")
async def _dispute_due_date(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    return (await saga.open_dispute(await saga.funded_deposit(AMOUNT), AMOUNT)).handle


@dispute_path("dispute_verdict_first")
async def _dispute_verdict_first(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    deposit = await saga.funded_deposit(AMOUNT)
    return (await saga.open_dispute(deposit, AMOUNT, first="dispute.won")).handle


@dispute_path("dispute_verdict_polled")
async def _dispute_verdict_polled(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    """Evidence in; the verdict's webhook never comes: the saga asks the provider."""
    dispute = await saga.open_dispute(await saga.funded_deposit(AMOUNT), AMOUNT)
    await saga.wait_dispute(dispute, "needs_response")
    await respond(dispute.handle, "evidence")
    saga.disputes.close(dispute.state.dispute_id, DisputeStatus.won)
    return dispute.handle


@dispute_path("dispute_intervention_retried")
async def _dispute_intervention_retried(saga: DisputeHarness) -> WorkflowHandle[Any, str]:
    saga.faults.fail("ledger.post_transaction", after_effect=True, times=1, when=_of_a_dispute)
    dispute = await saga.open_dispute(await saga.funded_deposit(AMOUNT), AMOUNT)
    await saga.wait_dispute(dispute, "requires_intervention")
    await dispute.handle.signal("retry")
    await saga.wait_dispute(dispute, "needs_response")
    await respond(dispute.handle, "accept")
    return dispute.handle


def _of_a_dispute(data: Any) -> bool:
    return ":dispute:" in data.idempotency_key


# -- the bonus workflow's paths ----------------------------------------------------------------

BonusPath = Callable[[BonusHarness], Awaitable[WorkflowHandle[Any, str]]]
BONUS_PATHS: dict[str, BonusPath] = {}


def bonus_path(name: str) -> Callable[[BonusPath], BonusPath]:
    def register(run: BonusPath) -> BonusPath:
        BONUS_PATHS[name] = run
        return run

    return register


@bonus_path("bonus_expired")
async def _bonus_expired(bonuses: BonusHarness) -> WorkflowHandle[Any, str]:
    customer = await bonuses.customer()
    handle = await bonuses.grant(customer, 1_000, multiplier=5, lasts=timedelta(days=30))
    await bonuses.play(customer, 400, win=100)
    return handle


@bonus_path("bonus_forfeited")
async def _bonus_forfeited(bonuses: BonusHarness) -> WorkflowHandle[Any, str]:
    customer = await bonuses.customer()
    handle = await bonuses.grant(customer, 500, multiplier=10, lasts=timedelta(days=7))
    await handle.execute_update("forfeit", ForfeitRequest("abuse", "ops"), result_type=BonusEnd)
    return handle


@bonus_path("bonus_completed")
async def _bonus_completed(bonuses: BonusHarness) -> WorkflowHandle[Any, str]:
    customer = await bonuses.customer(cash=100)
    handle = await bonuses.grant(customer, 200, multiplier=1, lasts=timedelta(hours=1))
    await bonuses.play(customer, 250, win=0)
    return handle


# -- the workflows beside the sagas: the sweep, reconciliation, retention ------------------------


class PlantedReport:
    """A provider whose settlement report is what was planted (only the report is asked for)."""

    def __init__(self, lines: list[SettlementLine]) -> None:
        self.lines = lines

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        return self.lines


RECONCILED = ["sandbox-cards", "sandbox-bank"]


@dataclass
class Housekeeping:
    """The workflows beside the sagas on one task queue, with their real activities."""

    env: WorkflowEnvironment
    pool: AsyncConnectionPool[Any]
    task_queue: str
    reports: dict[str, PlantedReport] = field(
        default_factory=lambda: {name: PlantedReport([]) for name in RECONCILED}
    )

    @property
    def store(self) -> Store:
        return Store(self.pool)

    @contextlib.asynccontextmanager
    async def workers(self) -> AsyncIterator[None]:
        sweep = PaymentSweepActivities(self.store, SweepBooks(self.pool))
        reconciliation = ReconciliationActivities(
            ReconciliationBooks(self.pool),
            self.reports,  # type: ignore[arg-type]
            timedelta(hours=1),
        )
        async with Worker(
            self.env.client,
            task_queue=self.task_queue,
            workflows=[
                PaymentSweepWorkflow,
                SagaNotStartedWorkflow,
                ReconciliationWorkflow,
                RetentionWorkflow,
            ],
            activities=[
                sweep.fail_orphans,
                sweep.park_stranded,
                sweep.start_bonus_timers,
                reconciliation.reconcile_provider,
                reconciliation.own_accounts,
                RetentionActivities(self.pool).purge_idempotency,
            ],
        ):
            yield

    async def payment(self, age: timedelta = timedelta(0)) -> str:
        """A `processing` deposit row of a new customer, inserted `age` ago (as the API writes
        it before its saga starts)."""
        customer_id = f"cus_{uuid.uuid4().hex[:12]}"
        await self.store.create_customer(
            DEV_MERCHANT_ID,
            customer_id,
            f"ext-{uuid.uuid4()}",
            "Ada Lovelace",
            date(1990, 1, 1),
            "DE",
        )
        payment_id = f"dep_{uuid.uuid4().hex[:16]}"
        await self.store.insert_payment(
            DEV_MERCHANT_ID, payment_id, "deposit", customer_id, 2_500, "EUR", None, {}
        )
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE payments SET created_at = created_at - %s, updated_at = updated_at - %s"
                " WHERE id = %s",
                (age, age, payment_id),
            )
        return payment_id

    async def start(self, workflow: str, arg: Any, workflow_id: str) -> WorkflowHandle[Any, Any]:
        return await self.env.client.start_workflow(
            workflow, arg, id=workflow_id, task_queue=self.task_queue
        )


HousekeepingPath = Callable[[Housekeeping], Awaitable[WorkflowHandle[Any, Any]]]
HOUSEKEEPING_PATHS: dict[str, HousekeepingPath] = {}


def housekeeping_path(name: str) -> Callable[[HousekeepingPath], HousekeepingPath]:
    def register(run: HousekeepingPath) -> HousekeepingPath:
        HOUSEKEEPING_PATHS[name] = run
        return run

    return register


async def sweep_an_orphan(house: Housekeeping) -> tuple[WorkflowHandle[Any, Any], str]:
    """A payment whose saga never started, ten minutes old: the sweep fails it."""
    orphan = await house.payment(age=timedelta(minutes=10))
    sweep = await house.start(
        "PaymentSweep", PaymentSweepInput(grace_seconds=300), f"sweep-{uuid.uuid4()}"
    )
    await sweep.result()
    return sweep, orphan


@housekeeping_path("sweep_failed_orphan")
async def _sweep_failed_orphan(house: Housekeeping) -> WorkflowHandle[Any, Any]:
    sweep, _ = await sweep_an_orphan(house)
    return sweep


@housekeeping_path("saga_not_started")
async def _saga_not_started(house: Housekeeping) -> WorkflowHandle[Any, Any]:
    """The workflow the sweep starts under the orphan's id, so that its saga never can."""
    _, orphan = await sweep_an_orphan(house)
    return house.env.client.get_workflow_handle(orphan)


@housekeeping_path("reconciliation_mismatch")
async def _reconciliation_mismatch(house: Housekeeping) -> WorkflowHandle[Any, Any]:
    """One provider settled a charge the ledger never booked; the other reported nothing."""
    reference = f"dep_phantom_{uuid.uuid4().hex[:12]}"
    phantom = SettlementLine("charge", reference, 4_242, "EUR", f"op_{reference}")
    house.reports["sandbox-bank"].lines = [phantom]
    job = ReconciliationInput(providers=RECONCILED)
    return await house.start("Reconciliation", job, f"reconciliation-{uuid.uuid4()}")


@housekeeping_path("retention_purged")
async def _retention_purged(house: Housekeeping) -> WorkflowHandle[Any, Any]:
    """An API idempotency record past its 24 hours, purged."""
    async with house.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO api_idempotency_keys"
            " (merchant_id, key, request_hash, response_status, created_at)"
            " VALUES (%s, %s, 'h', 202, now() - interval '25 hours')",
            (DEV_MERCHANT_ID, f"histories-{uuid.uuid4()}"),
        )
    job = RetentionInput(api_idempotency_hours=24, ledger_idempotency_days=45)
    return await house.start("Retention", job, f"retention-{uuid.uuid4()}")


# -- sagas terminated from the Temporal UI: the sweep parks them, an operator resolves them ------

StrandedPath = Callable[[StrandedHarness], Awaitable[WorkflowHandle[Any, Any]]]
STRANDED_PATHS: dict[str, StrandedPath] = {}


def stranded_path(name: str) -> Callable[[StrandedPath], StrandedPath]:
    def register(run: StrandedPath) -> StrandedPath:
        STRANDED_PATHS[name] = run
        return run

    return register


async def terminated_withdrawal(saga: StrandedHarness) -> tuple[Payment, WorkflowHandle[Any, Any]]:
    """A withdrawal terminated while its payout is pending, then parked by the sweep."""
    payment = await saga.withdrawal(await saga.customer(funds=AMOUNT), destination="pm_pending")
    while (row := await saga.store.get_payment(payment.id)) is None or row.provider is None:
        await asyncio.sleep(0.05)
    await payment.handle.terminate("terminated from the Temporal UI")
    return payment, await sweep(saga)


@stranded_path("sweep_parked_stranded")
async def _sweep_parked_stranded(saga: StrandedHarness) -> WorkflowHandle[Any, Any]:
    _, swept = await terminated_withdrawal(saga)
    return swept


@stranded_path("resolution_failed")
async def _resolution_failed(saga: StrandedHarness) -> WorkflowHandle[Any, Any]:
    """The withdrawal resolved failed without its saga: its hold voided."""
    payment, _ = await terminated_withdrawal(saga)
    await resolve(saga, payment, "failed")
    return resolution_handle(saga, payment)


@stranded_path("resolution_succeeded")
async def _resolution_succeeded(saga: StrandedHarness) -> WorkflowHandle[Any, Any]:
    """A deposit charged, terminated before its credit, resolved succeeded: credited once."""
    saga.faults.hang("payments.post_and_record_status", times=1, after_effect=False)
    payment = await saga.deposit(await saga.customer())
    await saga.faults.entered("payments.post_and_record_status")
    await payment.handle.terminate("terminated from the Temporal UI")
    await sweep(saga)
    await resolve(saga, payment, "succeeded")
    return resolution_handle(saga, payment)


# -- the run ------------------------------------------------------------------------------------


async def capture(selected: list[str]) -> None:
    with tempfile.TemporaryDirectory() as data:
        server, url = start_embedded_postgres(Path(data) / "pg", "paysaga_histories")
        try:
            run_migrations(url)
            pool = await open_pool(url, max_size=16)
            env = await start_time_skipping_server()
            try:
                for name in selected:
                    if name in HOUSEKEEPING_PATHS:
                        house = Housekeeping(env, pool, f"histories-{uuid.uuid4()}")
                        async with house.workers():
                            handle = await HOUSEKEEPING_PATHS[name](house)
                            outcome = await handle.result()
                            history = await handle.fetch_history()
                        _write(name, history.to_json())
                        print(f"{name}: {outcome} ({len(history.events)} events)")
                        continue
                    if name in BONUS_PATHS:
                        bonuses = BonusHarness(env, pool, url, f"histories-{uuid.uuid4()}")
                        async with bonuses.workers():
                            handle = await BONUS_PATHS[name](bonuses)
                            outcome = await handle.result()
                            history = await handle.fetch_history()
                        _write(name, history.to_json())
                        print(f"{name}: {outcome} ({len(history.events)} events)")
                        continue
                    if name in STRANDED_PATHS:
                        stranded = StrandedHarness(env, pool, f"histories-{uuid.uuid4()}")
                        async with stranded.workers():
                            handle = await STRANDED_PATHS[name](stranded)
                            outcome = await handle.result()
                            history = await handle.fetch_history()
                        _write(name, history.to_json())
                        print(f"{name}: {outcome} ({len(history.events)} events)")
                        continue
                    if name in DISPUTE_PATHS:
                        disputes = DisputeHarness(env, pool, f"histories-{uuid.uuid4()}")
                        async with disputes.workers():
                            handle = await DISPUTE_PATHS[name](disputes)
                            outcome = await handle.result()
                            history = await handle.fetch_history()
                        _write(name, history.to_json())
                        print(f"{name}: {outcome} ({len(history.events)} events)")
                        continue
                    # The paths through an open breaker, with breakers on the capture's database.
                    breakers = (
                        ProviderBreakers(pool, BREAKER_POLICY) if name in BREAKER_PATHS else None
                    )
                    saga = SagaHarness(env, pool, f"histories-{uuid.uuid4()}", breakers)
                    async with saga.workers():
                        payment = await PATHS[name](saga)
                        seen = await saga.finished(payment)
                        history = await payment.handle.fetch_history()
                    _write(name, history.to_json())
                    print(
                        f"{name}: {seen.status} {seen.failure_code or ''} ({len(history.events)} events)"
                    )
            finally:
                await env.shutdown()
                await pool.close()
        finally:
            server.cleanup()


def _write(name: str, history_json: str) -> None:
    compact = json.dumps(json.loads(history_json), separators=(",", ":"))
    (HISTORIES / f"{name}.json").write_text(compact + "\n")


def main() -> None:
    wanted = sys.argv[1:]
    names = [*PATHS, *BONUS_PATHS, *DISPUTE_PATHS, *HOUSEKEEPING_PATHS, *STRANDED_PATHS]
    selected = [name for name in names if not wanted or any(w in name for w in wanted)]
    asyncio.run(capture(selected))


if __name__ == "__main__":
    main()
