"""Ledger activities through a real Temporal worker: a retried write posts once; refusals are final."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import psycopg
    import pytest
    from psycopg_pool import AsyncConnectionPool
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import ActivityError, ApplicationError
    from temporalio.worker import Worker

    from activities.ledger import (
        HoldFundsInput,
        LedgerActivities,
        PostHoldInput,
        PostTransactionInput,
        ReverseTransactionInput,
        VoidHoldInput,
    )
    from domain.merchants import DEV_MERCHANT_ID
    from ledger.engine import Ledger
    from ledger.models import AccountKind, Balance, Hold, HoldStatus, LineSpec, Transaction

RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=50), backoff_coefficient=1.0, maximum_attempts=5
)
STEP: dict[str, Any] = {"start_to_close_timeout": timedelta(seconds=10), "retry_policy": RETRY}
M = DEV_MERCHANT_ID  # the merchant whose books these tests write


@workflow.defn
class CreditWorkflow:
    """Posts one transaction through the ledger activity, as a saga step would."""

    @workflow.run
    async def run(self, data: PostTransactionInput) -> Transaction:
        return await workflow.execute_activity_method(
            LedgerActivities.post_transaction,
            data,
            **STEP,
        )


@workflow.defn
class WithdrawalLikeWorkflow:
    """Holds funds, then posts, voids or reverses, as the withdrawal saga would."""

    @workflow.run
    async def run(self, owner: str, psp: str, amount: int, finish: str) -> list[int]:
        prefix = workflow.info().workflow_id
        hold: Hold = await workflow.execute_activity_method(
            LedgerActivities.hold_funds,
            HoldFundsInput(f"{prefix}:hold", M, owner, "EUR", amount, expires_in_seconds=3600),
            **STEP,
        )
        if finish == "void":
            voided: Hold = await workflow.execute_activity_method(
                LedgerActivities.void_hold,
                VoidHoldInput(f"{prefix}:void", hold.id),
                **STEP,
            )
            return [voided.id]
        lines = [
            LineSpec(M, owner, AccountKind.customer_wallet, "EUR", -amount),
            LineSpec(M, psp, AccountKind.provider_clearing, "EUR", amount),
        ]
        posted: Transaction = await workflow.execute_activity_method(
            LedgerActivities.post_hold,
            PostHoldInput(f"{prefix}:post", hold.id, lines),
            **STEP,
        )
        reversal: Transaction = await workflow.execute_activity_method(
            LedgerActivities.reverse_transaction,
            ReverseTransactionInput(f"{prefix}:reverse", posted.id),
            **STEP,
        )
        return [hold.id, posted.id, reversal.id]


class CrashAfterCommit:
    """The real ledger activities, but the first attempt of each dies after its write committed."""

    def __init__(self, real: LedgerActivities) -> None:
        self.real = real
        self.attempts: list[str] = []

    def _crash_once(self, name: str) -> None:
        self.attempts.append(name)
        if activity.info().attempt == 1:
            raise RuntimeError(f"worker lost after committing {name}")

    @activity.defn(name="ledger.post_transaction")
    async def post_transaction(self, data: PostTransactionInput) -> Transaction:
        result = await self.real.post_transaction(data)
        self._crash_once("post_transaction")
        return result

    @activity.defn(name="ledger.hold_funds")
    async def hold_funds(self, data: HoldFundsInput) -> Hold:
        result = await self.real.hold_funds(data)
        self._crash_once("hold_funds")
        return result

    @activity.defn(name="ledger.post_hold")
    async def post_hold(self, data: PostHoldInput) -> Transaction:
        result = await self.real.post_hold(data)
        self._crash_once("post_hold")
        return result

    @activity.defn(name="ledger.void_hold")
    async def void_hold(self, data: VoidHoldInput) -> Hold:
        result = await self.real.void_hold(data)
        self._crash_once("void_hold")
        return result

    @activity.defn(name="ledger.reverse_transaction")
    async def reverse_transaction(self, data: ReverseTransactionInput) -> Transaction:
        result = await self.real.reverse_transaction(data)
        self._crash_once("reverse_transaction")
        return result

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.post_transaction,
            self.hold_funds,
            self.post_hold,
            self.void_hold,
            self.reverse_transaction,
        ]


def deposit_lines(owner: str, psp: str, amount: int) -> list[LineSpec]:
    return [
        LineSpec(M, psp, AccountKind.provider_clearing, "EUR", -amount),
        LineSpec(M, owner, AccountKind.customer_wallet, "EUR", amount),
    ]


async def test_retried_post_transaction_posts_once(
    temporal_client: Client, task_queue: str, db_pool: AsyncConnectionPool, postgres_url: str
) -> None:
    ledger = Ledger(db_pool)
    crashing = CrashAfterCommit(LedgerActivities(ledger))
    owner, psp, key = (
        f"cus_{uuid.uuid4().hex}",
        f"psp-{uuid.uuid4().hex}",
        f"dep_{uuid.uuid4().hex}:credit",
    )
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[CreditWorkflow],
        activities=crashing.all(),
    ):
        tx = await temporal_client.execute_workflow(
            CreditWorkflow.run,
            PostTransactionInput(key, deposit_lines(owner, psp, 2_500), "deposit"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert crashing.attempts == ["post_transaction", "post_transaction"]
    assert isinstance(tx, Transaction) and tx.idempotency_key == key
    assert tx == await ledger.get_transaction_by_key(key)
    assert await ledger.balance(M, owner, AccountKind.customer_wallet, "EUR") == Balance(
        2_500, 0, 2_500
    )
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT COUNT(DISTINCT t.id), COUNT(e.id) FROM ledger_transactions t"
            " JOIN ledger_entries e ON e.transaction_id = t.id WHERE t.idempotency_key = %s",
            (key,),
        )
        assert await cur.fetchone() == (1, 2)


async def test_retried_hold_post_reverse_each_write_once(
    temporal_client: Client, task_queue: str, db_pool: AsyncConnectionPool
) -> None:
    ledger = Ledger(db_pool)
    crashing = CrashAfterCommit(LedgerActivities(ledger))
    owner, psp = f"cus_{uuid.uuid4().hex}", f"psp-{uuid.uuid4().hex}"
    await ledger.post_transaction(f"seed-{owner}", deposit_lines(owner, psp, 10_000))
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[WithdrawalLikeWorkflow],
        activities=crashing.all(),
    ):
        hold_id, posted_id, reversal_id = await temporal_client.execute_workflow(
            WithdrawalLikeWorkflow.run,
            args=[owner, psp, 4_000, "post"],
            id=f"wd_{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
        (voided_id,) = await temporal_client.execute_workflow(
            WithdrawalLikeWorkflow.run,
            args=[owner, psp, 3_000, "void"],
            id=f"wd_{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
    assert crashing.attempts.count("hold_funds") == 4  # two holds, each retried once
    hold = await ledger.get_hold(hold_id)
    assert hold.status is HoldStatus.posted and hold.posting_transaction_id == posted_id
    assert (await ledger.get_hold(voided_id)).status is HoldStatus.voided
    assert (await ledger.get_transaction(reversal_id)).reverses_transaction_id == posted_id
    # posted 4,000 then reversed; the voided hold released: back where it started
    assert await ledger.balance(M, owner, AccountKind.customer_wallet, "EUR") == Balance(
        10_000, 0, 10_000
    )
    assert [
        e.amount for _, e in await ledger.entries(M, owner, AccountKind.customer_wallet, "EUR")
    ] == [
        10_000,
        -4_000,
        4_000,
    ]


async def test_insufficient_funds_fails_without_retry(
    temporal_client: Client, task_queue: str, db_pool: AsyncConnectionPool
) -> None:
    ledger = Ledger(db_pool)
    crashing = CrashAfterCommit(LedgerActivities(ledger))
    owner, psp = f"cus_{uuid.uuid4().hex}", f"psp-{uuid.uuid4().hex}"
    await ledger.post_transaction(f"seed-{owner}", deposit_lines(owner, psp, 1_000))
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[WithdrawalLikeWorkflow],
        activities=crashing.all(),
    ):
        with pytest.raises(WorkflowFailureError) as failure:
            await temporal_client.execute_workflow(
                WithdrawalLikeWorkflow.run,
                args=[owner, psp, 1_001, "post"],
                id=f"wd_{uuid.uuid4().hex}",
                task_queue=task_queue,
            )
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InsufficientFunds" and cause.non_retryable
    assert crashing.attempts == []  # refused before any write: one attempt, nothing recorded
    assert await ledger.balance(M, owner, AccountKind.customer_wallet, "EUR") == Balance(
        1_000, 0, 1_000
    )
