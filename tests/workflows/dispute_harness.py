"""The Dispute saga in-process: the harness of tests/workflows with a fake provider's disputes.

The provider's dispute API is faked (`FakeDisputes`, whose books the tests read and whose
verdicts they decide); the provider's events are signalled as the API delivers them (signal-
with-start under the id derived from the provider's dispute id). Everything else is real: the
saga, the ledger, the disputes table and its events. Used by tests/workflows/test_dispute.py and
by the history capture of tests/histories.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.disputes import DisputeProviderActivities
from domain.disputes import (
    WORKFLOW_NAME,
    DisputeEventSignal,
    DisputeInput,
    DisputeView,
    dispute_id_for,
)
from ledger.models import AccountKind, LineSpec
from providers.base import (
    DisputeProvider,
    DisputeState,
    DisputeStatus,
    ProviderRequestRejected,
    ProviderUnavailable,
)
from tests.workflows.harness import (
    HOUSE,
    PROVIDERS,
    TASK_TIMEOUT,
    TIMINGS,
    Payment,
    SagaHarness,
    with_faults,
)

PROVIDER = PROVIDERS[0]  # the fake provider that takes every pm_ok charge first


@dataclass
class FakeDispute:
    state: DisputeState
    planted: DisputeStatus  # its verdict once evidence is in


@dataclass
class FakeDisputes:
    """The provider's disputes: answered by the saga, decided by the test."""

    disputes: dict[str, FakeDispute] = field(default_factory=dict)
    unavailable: int = 0  # the next calls that fail as network trouble
    calls: list[str] = field(default_factory=list)

    def plant(
        self, reference: str, amount: int, fee: int, due: datetime, planted: DisputeStatus
    ) -> DisputeState:
        dispute_id = f"dp_{uuid.uuid4().hex[:16]}"
        state = DisputeState(
            PROVIDER,
            dispute_id,
            reference,
            f"{reference}:charge",
            DisputeStatus.needs_response,
            amount,
            "EUR",
            fee,
            "fraudulent",
            due.isoformat(),
        )
        self.disputes[dispute_id] = FakeDispute(state, planted)
        return state

    def close(self, dispute_id: str, status: DisputeStatus) -> DisputeState:
        """The provider decides (or expires) the dispute."""
        fake = self.disputes[dispute_id]
        fake.state = replace(fake.state, status=status)
        return fake.state

    def _find(self, dispute_id: str) -> FakeDispute:
        self.calls.append(dispute_id)
        if self.unavailable > 0:
            self.unavailable -= 1
            raise ProviderUnavailable("fake provider unreachable")
        fake = self.disputes.get(dispute_id)
        if fake is None:
            raise ProviderRequestRejected(PROVIDER, 404, "dispute_not_found")
        return fake

    def _open(self, dispute_id: str) -> FakeDispute:
        fake = self._find(dispute_id)
        if fake.state.status != DisputeStatus.needs_response:
            raise ProviderRequestRejected(PROVIDER, 409, "dispute_not_open")
        return fake


class FakeDisputeProvider:
    def __init__(self, name: str, books: FakeDisputes) -> None:
        self._name = name
        self._books = books

    @property
    def name(self) -> str:
        return self._name

    async def submit_dispute_evidence(self, dispute_id: str, text: str) -> DisputeState:
        fake = self._books._open(dispute_id)
        fake.state = replace(
            fake.state, status=DisputeStatus.under_review, evidence_submitted_at="now"
        )
        return fake.state

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        fake = self._books._open(dispute_id)
        fake.state = replace(fake.state, status=DisputeStatus.lost)
        return fake.state

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        return self._books._find(dispute_id).state


@dataclass
class Dispute:
    """A dispute the test opened: the provider's record and its saga."""

    state: DisputeState
    payment: Payment
    handle: WorkflowHandle[Any, str]

    @property
    def id(self) -> str:
        return self.handle.id


class DisputeHarness(SagaHarness):
    """The sagas of one test, the Dispute saga's provider calls on the fake provider's queues."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disputes = FakeDisputes()

    def _activities(self) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        local, calls = super()._activities()
        fakes: dict[str, DisputeProvider] = {
            name: FakeDisputeProvider(name, self.disputes) for name in PROVIDERS
        }
        provider = DisputeProviderActivities(fakes)
        return local, [
            *calls,
            *(with_faults(c, self.faults) for c in (provider.answer, provider.verdict)),
        ]

    async def funded_deposit(self, amount: int, funds: int | None = None) -> Payment:
        """A succeeded deposit of `amount`; the wallet then holds `funds` (default: the amount)."""
        customer = await self.customer()
        deposit = await self.deposit(customer, amount=amount)
        assert (await self.finished(deposit)).status == "succeeded"
        spent = amount - (amount if funds is None else funds)
        if spent:
            await self.spend(customer, spent)
        return deposit

    async def refunded(self, deposit: Payment, amount: int) -> None:
        """A succeeded refund of the deposit, with its row and its posting as the saga leaves
        them (the Refund saga itself is tested on its own)."""
        refund_id = f"ref_{uuid.uuid4().hex[:24]}"
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO refunds (id, merchant_id, payment_id, customer_id, amount, currency,"
                " status, provider) VALUES (%s, %s, %s, %s, %s, 'EUR', 'succeeded', %s)",
                (refund_id, self.merchant_id, deposit.id, deposit.customer_id, amount, PROVIDER),
            )
            await conn.execute(
                "UPDATE payments SET refunded_amount = refunded_amount + %s WHERE id = %s",
                (amount, deposit.id),
            )
        await self.ledger.post_transaction(
            f"{deposit.id}:{refund_id}:post",
            [
                LineSpec(
                    self.merchant_id,
                    deposit.customer_id,
                    AccountKind.customer_wallet,
                    "EUR",
                    -amount,
                ),
                LineSpec(self.merchant_id, PROVIDER, AccountKind.provider_clearing, "EUR", amount),
            ],
        )

    async def spend(self, customer_id: str, amount: int) -> None:
        """The customer plays `amount` away (a bet the house keeps)."""
        await self.ledger.post_transaction(
            f"{customer_id}:spent:{uuid.uuid4().hex[:8]}",
            [
                LineSpec(
                    self.merchant_id, customer_id, AccountKind.customer_wallet, "EUR", -amount
                ),
                LineSpec(self.merchant_id, HOUSE, AccountKind.game, "EUR", amount),
            ],
        )

    async def open_dispute(
        self,
        deposit: Payment,
        amount: int,
        *,
        fee: int = 0,
        due_in: timedelta = timedelta(days=7),
        planted: DisputeStatus = DisputeStatus.won,
        first: str = "dispute.created",
    ) -> Dispute:
        """The provider opens a dispute; its first event (`dispute.created` unless told) reaches
        the saga as the API delivers it."""
        now = await self.env.get_current_time()
        state = self.disputes.plant(deposit.id, amount, fee, now + due_in, planted)
        dispute = Dispute(state, deposit, self.client.get_workflow_handle(""))
        dispute.handle = await self.deliver(dispute, first)
        return dispute

    def event(self, dispute: Dispute, kind: str, sequence: int | None = None) -> DisputeEventSignal:
        status = {"dispute.created": "needs_response", "dispute.won": "won", "dispute.lost": "lost"}
        state = dispute.state
        return DisputeEventSignal(
            f"evt_{uuid.uuid4().hex[:12]}",
            kind,
            sequence if sequence is not None else (1 if kind == "dispute.created" else 2),
            status[kind],
            state.amount,
            state.currency,
            state.fee,
            state.reason,
            state.evidence_due_by,
        )

    async def deliver(
        self, dispute: Dispute, kind: str, sequence: int | None = None
    ) -> WorkflowHandle[Any, str]:
        """Deliver a provider event as the API does: signal-with-start, nothing once closed."""
        payment = dispute.payment
        dispute_id = dispute_id_for(PROVIDER, dispute.state.dispute_id)
        saga = DisputeInput(
            dispute_id,
            self.merchant_id,
            payment.id,
            payment.customer_id,
            payment.currency,
            PROVIDER,
            dispute.state.dispute_id,
            HOUSE,
            TIMINGS,
        )
        try:
            handle: WorkflowHandle[Any, str] = await self.client.start_workflow(
                WORKFLOW_NAME,
                saga,
                id=dispute_id,
                task_queue=self.task_queue,
                result_type=str,
                task_timeout=TASK_TIMEOUT,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_signal="dispute_event",
                start_signal_args=[self.event(dispute, kind, sequence)],
            )
        except WorkflowAlreadyStartedError:
            return self.client.get_workflow_handle(dispute_id, result_type=str)
        self.started.append(handle)  # type: ignore[arg-type]  # ended by the harness all the same
        return handle

    async def decide(self, dispute: Dispute) -> None:
        """The provider decides as planted and sends the verdict's event."""
        fake = self.disputes.disputes[dispute.state.dispute_id]
        closed = self.disputes.close(dispute.state.dispute_id, fake.planted)
        await self.deliver(dispute, f"dispute.{closed.status.value}")

    async def view(self, dispute: Dispute) -> DisputeView:
        return await dispute.handle.query("state", result_type=DisputeView)

    async def wait_dispute(self, dispute: Dispute, status: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while (await self.view(dispute)).status.value != status:
                await asyncio.sleep(0.05)

    async def books_of(self, dispute: Dispute) -> dict[str, Any]:
        """What a user sees: the dispute's row and events, the customer's wallet and debt, the
        merchant's chargeback expense, the ledger transactions of the dispute."""
        customer = dispute.payment.customer_id
        row = await self.store.get_dispute(dispute.id)
        assert row is not None
        wallet = await self.ledger.balance(
            self.merchant_id, customer, AccountKind.customer_wallet, "EUR"
        )
        debt = await self.ledger.balance(
            self.merchant_id, customer, AccountKind.customer_receivable, "EUR"
        )
        async with self.store.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT type FROM events WHERE aggregate_id = %s ORDER BY written_order", (row.id,)
            )
            events = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT split_part(idempotency_key, ':', 4) FROM ledger_transactions"
                " WHERE idempotency_key LIKE %s ORDER BY id",
                (f"{dispute.payment.id}:dispute:%",),
            )
            bookings = [r[0] for r in await cur.fetchall()]
        return {
            "status": row.status,
            "receivable": row.receivable,
            "wallet": wallet,
            "debt": debt,
            "events": events,
            "bookings": bookings,
        }

    async def moved(self, dispute: Dispute, step: str) -> dict[str, int]:
        """What a booking of the dispute moved, by account kind."""
        tx = await self.ledger.get_transaction_by_key(
            f"{dispute.payment.id}:dispute:{dispute.id}:{step}"
        )
        moved: dict[str, int] = {}
        for entry in tx.entries:
            moved[entry.kind.value] = moved.get(entry.kind.value, 0) + entry.amount
        return moved
