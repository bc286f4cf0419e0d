"""The orphan sweep: a payment whose saga never started ends failed, and no saga can start later."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.payment_sweep import PaymentSweepActivities
from activities.wallet import WalletActivities
from domain.merchants import DEV_MERCHANT_ID
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec
from paysaga.payment_sweep import SweepBooks
from paysaga.settings import Settings
from paysaga.store import PaymentRow, Store
from paysaga.store.merchant_store import MerchantStore
from tests.events.receiver import MerchantEndpoint
from tests.stack import Stack, worker_schedule
from wallet.engine import WalletEngine
from wallet.models import GrantBonus
from worker import WORKFLOWS, activities_for
from workflows.bonus import BonusWorkflow
from workflows.payment_sweep import (
    SWEEP_SCHEDULE_ID,
    PaymentSweepInput,
    PaymentSweepWorkflow,
    SagaNotStartedWorkflow,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@workflow.defn(name="StandInSaga", sandboxed=False)  # this module imports the whole stack
class StandInSaga:
    """A saga that started and is still running (waiting for its provider, say)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def payment(
    store: Store,
    customer_id: str,
    name: str,
    *,
    age: timedelta,
    merchant_id: str = DEV_MERCHANT_ID,
) -> PaymentRow:
    """A `processing` deposit row, inserted `age` ago, as the API writes it before its saga starts."""
    payment_id = f"dep_{name}_{uuid.uuid4().hex[:12]}"
    await store.insert_payment(
        merchant_id, payment_id, "deposit", customer_id, 2_500, "EUR", None, {}
    )
    async with store.pool.connection() as conn:
        await conn.execute(
            "UPDATE payments SET created_at = created_at - %s, updated_at = updated_at - %s"
            " WHERE id = %s",
            (age, age, payment_id),
        )
    row = await store.get_payment(payment_id)
    assert row is not None
    return row


def sweep_activities(sweep: PaymentSweepActivities) -> list[Callable[..., Any]]:
    """Every activity of the sweep, as the worker registers them."""
    return [
        getattr(sweep, name)
        for name in dir(sweep)
        if activity_definition(getattr(sweep, name)) is not None
    ]


def activity_definition(member: object) -> object:
    return getattr(member, "__temporal_activity_definition", None)


async def test_sweep_fails_only_payments_whose_saga_never_started(
    db_pool: AsyncConnectionPool, temporal_client: Client, task_queue: str
) -> None:
    store = Store(db_pool)
    customer_id = f"cus_sweep_{uuid.uuid4().hex[:12]}"
    await store.create_customer(
        DEV_MERCHANT_ID, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
    )
    old = timedelta(minutes=10)
    orphan = await payment(store, customer_id, "orphan", age=old)
    running = await payment(store, customer_id, "running", age=old)
    young = await payment(store, customer_id, "young", age=timedelta(seconds=0))
    booked = await payment(store, customer_id, "booked", age=old)  # its saga ran, then vanished
    await Ledger(db_pool).post_transaction(
        f"{booked.id}:credit",
        [
            LineSpec(
                DEV_MERCHANT_ID, f"sweep-{uuid.uuid4().hex[:8]}", AccountKind.suspense, "EUR", 2_500
            ),
            LineSpec(
                DEV_MERCHANT_ID,
                f"sweep-{uuid.uuid4().hex[:8]}",
                AccountKind.suspense,
                "EUR",
                -2_500,
            ),
        ],
    )
    sweep = PaymentSweepActivities(store, SweepBooks(db_pool))
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[PaymentSweepWorkflow, SagaNotStartedWorkflow, StandInSaga],
        activities=sweep_activities(sweep),
    ):
        saga = await temporal_client.start_workflow(
            StandInSaga.run, id=running.id, task_queue=task_queue
        )
        for run in range(2):  # a second sweep changes nothing
            await temporal_client.execute_workflow(
                PaymentSweepWorkflow.run,
                PaymentSweepInput(grace_seconds=300),
                id=f"sweep-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            swept = await store.get_payment(orphan.id)
            assert swept is not None
            assert (swept.status, swept.failure_code, swept.failure_reason) == (
                "failed",
                "saga_not_started",
                "the payment's workflow never started",
            ), f"sweep {run}"
            for untouched in (running, young):
                assert await store.get_payment(untouched.id) == untouched
            # Its saga ran (the ledger has its records), yet no workflow is there: an operator's.
            parked = await store.get_payment(booked.id)
            assert parked is not None
            assert (parked.status, parked.failure_code) == ("requires_intervention", None)
            assert "never started" in (parked.failure_reason or "")
        await saga.terminate()

    # The payment's workflow id is taken: a late start of its saga (a client's retry) is refused,
    # and the Temporal UI shows, under the payment id, why it failed.
    with pytest.raises(WorkflowAlreadyStartedError):
        await temporal_client.start_workflow(
            "Deposit",
            id=orphan.id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    taken = await temporal_client.get_workflow_handle(orphan.id).describe()
    assert (taken.workflow_type, taken.status) == (
        "SagaNotStarted",
        WorkflowExecutionStatus.COMPLETED,
    )


async def test_worker_schedules_the_sweep_every_minute(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    schedule = await worker_schedule(temporal_env.client, f"{SWEEP_SCHEDULE_ID}-{stack.task_queue}")
    described = await schedule.describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "PaymentSweep"
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=1)]

    await schedule.trigger()  # the stack's worker runs it: workflow and activity are registered
    deadline = time.monotonic() + 30
    while not (await schedule.describe()).info.recent_actions:
        assert time.monotonic() < deadline, "the schedule never started the sweep"
        await asyncio.sleep(0.2)
    started = (await schedule.describe()).info.recent_actions[-1].action
    assert isinstance(started, ScheduleActionExecutionStartWorkflow)
    handle = temporal_env.client.get_workflow_handle(started.workflow_id)
    while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, "the sweep did not finish"
        await asyncio.sleep(0.2)
    assert status == WorkflowExecutionStatus.COMPLETED


async def test_sweep_fails_refunds_whose_saga_never_started(
    db_pool: AsyncConnectionPool, temporal_client: Client, task_queue: str
) -> None:
    """An orphaned refund ends failed and gives its amount back to its deposit; a refund whose
    saga runs (its row untouched while it waits for its provider) is left alone."""
    store = Store(db_pool)
    customer_id = f"cus_sweep_{uuid.uuid4().hex[:12]}"
    await store.create_customer(
        DEV_MERCHANT_ID, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
    )
    deposit = await payment(store, customer_id, "refunded", age=timedelta(minutes=20))
    await store.update_payment(deposit.id, "succeeded", provider="sandbox-cards")
    refunds = []
    for name in ("orphan", "running"):
        refund_id = f"ref_{name}_{uuid.uuid4().hex[:12]}"
        await store.create_refund(DEV_MERCHANT_ID, refund_id, deposit.id, 1_000, None)
        refunds.append(refund_id)
    async with db_pool.connection() as conn:
        await conn.execute(
            "UPDATE refunds SET created_at = created_at - interval '10 minutes',"
            " updated_at = updated_at - interval '10 minutes' WHERE id = ANY(%s)",
            (refunds,),
        )
    orphan, running = refunds
    sweep = PaymentSweepActivities(store, SweepBooks(db_pool))
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[PaymentSweepWorkflow, SagaNotStartedWorkflow, StandInSaga],
        activities=sweep_activities(sweep),
    ):
        saga = await temporal_client.start_workflow(
            StandInSaga.run, id=running, task_queue=task_queue
        )
        await temporal_client.execute_workflow(
            PaymentSweepWorkflow.run,
            PaymentSweepInput(grace_seconds=300),
            id=f"sweep-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await saga.terminate()

    swept, left = await store.get_refund(orphan), await store.get_refund(running)
    assert swept is not None and left is not None
    assert (swept.status, swept.failure_code) == ("failed", "saga_not_started")
    assert left.status == "processing"
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT refunded_amount FROM payments WHERE id = %s", (deposit.id,)
        )
        assert await cur.fetchone() == (1_000,)  # only the running refund's part stays reserved
    taken = await temporal_client.get_workflow_handle(orphan).describe()
    assert taken.workflow_type == "SagaNotStarted"


async def test_sweep_parks_a_payment_whose_saga_was_reset_then_terminated(
    db_pool: AsyncConnectionPool, temporal_client: Client, task_queue: str
) -> None:
    """A reset leaves a running run under the payment's id: left alone. Once no run is running
    (here: terminated), the payment is parked for an operator, the reason naming how it closed."""
    store = Store(db_pool)
    customer_id = f"cus_sweep_{uuid.uuid4().hex[:12]}"
    await store.create_customer(
        DEV_MERCHANT_ID, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
    )
    stranded = await payment(store, customer_id, "reset", age=timedelta(minutes=10))
    await store.update_payment(stranded.id, "processing", provider="sandbox-cards")  # touched
    sweep = PaymentSweepActivities(store, SweepBooks(db_pool))
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[PaymentSweepWorkflow, SagaNotStartedWorkflow, StandInSaga],
        activities=sweep_activities(sweep),
    ):
        saga = await temporal_client.start_workflow(
            StandInSaga.run, id=stranded.id, task_queue=task_queue
        )
        deadline = time.monotonic() + 20
        while not [e async for e in saga.fetch_history_events() if e.event_id == 4]:
            assert time.monotonic() < deadline, "the stand-in saga's first task never completed"
            await asyncio.sleep(0.1)
        await temporal_client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=temporal_client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=stranded.id),
                reason="reset from the Temporal UI",
                workflow_task_finish_event_id=4,
                request_id=str(uuid.uuid4()),
            )
        )
        sweep_input = PaymentSweepInput(grace_seconds=0)
        await temporal_client.execute_workflow(
            PaymentSweepWorkflow.run, sweep_input, id=f"sweep-{uuid.uuid4()}", task_queue=task_queue
        )
        left = await store.get_payment(stranded.id)
        assert left is not None and left.status == "processing"  # its reset run is running

        await temporal_client.get_workflow_handle(stranded.id).terminate("from the UI")
        await temporal_client.execute_workflow(
            PaymentSweepWorkflow.run, sweep_input, id=f"sweep-{uuid.uuid4()}", task_queue=task_queue
        )

    parked = await store.get_payment(stranded.id)
    assert parked is not None
    assert (parked.status, parked.failure_code) == ("requires_intervention", None)
    assert "terminated" in (parked.failure_reason or "")
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT type FROM events WHERE aggregate_id = %s ORDER BY written_order", (stranded.id,)
        )
        assert [r[0] for r in await cur.fetchall()][-1] == "payment.requires_intervention"


async def test_sweep_starts_missing_bonus_timers_and_expires_overdue_bonuses(
    db_pool: AsyncConnectionPool, postgres_url: str, temporal_client: Client, task_queue: str
) -> None:
    """A grant committed whose workflow never started: the sweep starts its timer; one past its
    expiry is expired at once (its remaining bonus removed), as its timer would have."""
    store = Store(db_pool)
    engine = WalletEngine(postgres_url, writers=1)
    bonus_ids: dict[str, str] = {}
    async with engine:
        for name in ("waiting", "overdue", "young"):
            customer_id = f"cus_bonus_{name}_{uuid.uuid4().hex[:12]}"
            await store.create_customer(
                DEV_MERCHANT_ID, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
            )
            bonus_id = f"bon_{name}_{uuid.uuid4().hex[:12]}"
            expires_at = datetime.now(UTC) + timedelta(days=1)
            grant = GrantBonus(DEV_MERCHANT_ID, customer_id, bonus_id, 1_000, "EUR", 5, expires_at)
            assert (await engine.submit(grant)).accepted  # and then its start failed
            bonus_ids[name] = bonus_id
        async with db_pool.connection() as conn:
            await conn.execute(
                "UPDATE bonuses SET created_at = created_at - interval '10 minutes'"
                " WHERE id = ANY(%s)",
                ([bonus_ids["waiting"], bonus_ids["overdue"]],),
            )
            await conn.execute(
                "UPDATE bonuses SET expires_at = now() - interval '1 minute' WHERE id = %s",
                (bonus_ids["overdue"],),
            )
        sweep = PaymentSweepActivities(store, SweepBooks(db_pool))
        async with Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[PaymentSweepWorkflow, SagaNotStartedWorkflow, BonusWorkflow],
            activities=[*sweep_activities(sweep), WalletActivities(engine).end_bonus],
        ):
            await temporal_client.execute_workflow(
                PaymentSweepWorkflow.run,
                PaymentSweepInput(grace_seconds=300),
                id=f"sweep-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            overdue = temporal_client.get_workflow_handle(bonus_ids["overdue"], result_type=str)
            assert await asyncio.wait_for(overdue.result(), 20) == "expired"
            waiting = temporal_client.get_workflow_handle(bonus_ids["waiting"])
            described = await waiting.describe()
            assert (described.workflow_type, described.status) == (
                "Bonus",
                WorkflowExecutionStatus.RUNNING,
            )
            await waiting.terminate("test over")

    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT b.id, b.status, COALESCE(a.posted, 0) FROM bonuses b"
            " LEFT JOIN ledger_accounts a ON a.merchant_id = b.merchant_id"
            " AND a.owner_id = b.customer_id AND a.kind = 'customer_bonus'"
            " AND a.currency = b.currency WHERE b.id = ANY(%s)",
            (list(bonus_ids.values()),),
        )
        seen = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    assert seen[bonus_ids["overdue"]] == ("expired", 0)  # its balance removed
    assert seen[bonus_ids["waiting"]] == ("active", 1_000)
    assert seen[bonus_ids["young"]] == ("active", 1_000)
    with pytest.raises(RPCError):  # too young: its grant may still be starting it
        await temporal_client.get_workflow_handle(bonus_ids["young"]).describe()


async def test_sweep_sends_another_merchants_payments_to_no_installation_endpoint(
    sweep_db_pool: AsyncConnectionPool,
    temporal_client: Client,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The installation-wide URL of earlier releases set, a merchant's orphaned and stranded
    payments are swept as the worker wires the sweep: nothing of them reaches that URL (another
    merchant's customer, amount and failure), and each change is in the merchant's own feed."""
    installation = MerchantEndpoint()
    installation.start()
    monkeypatch.setenv("PAYSAGA_MERCHANT_WEBHOOK_URL", installation.url)
    settings = Settings(environment="development")
    store = Store(sweep_db_pool)
    merchant_id = f"mer_sweep_{uuid.uuid4().hex[:12]}"
    await store.create_merchant(merchant_id, "Brand B")
    customer_id = f"cus_sweep_{uuid.uuid4().hex[:12]}"
    await store.create_customer(
        merchant_id, customer_id, customer_id, "Grace Hopper", date(1986, 12, 9), "DE"
    )
    old = timedelta(minutes=10)
    orphan = await payment(store, customer_id, "orphan_b", age=old, merchant_id=merchant_id)
    stranded = await payment(store, customer_id, "stranded_b", age=old, merchant_id=merchant_id)
    try:
        async with httpx.AsyncClient() as http:
            local, _ = activities_for(settings, Ledger(sweep_db_pool), store, http)
            async with Worker(
                temporal_client,
                task_queue=task_queue,
                workflows=[*WORKFLOWS, StandInSaga],
                activities=local,
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                saga = await temporal_client.start_workflow(
                    StandInSaga.run, id=stranded.id, task_queue=task_queue
                )
                await saga.terminate()  # closed unfinished, as from the Temporal UI
                await temporal_client.execute_workflow(
                    PaymentSweepWorkflow.run,
                    PaymentSweepInput(grace_seconds=300),
                    id=f"sweep-{uuid.uuid4()}",
                    task_queue=task_queue,
                )
                # Whatever the sweep started on the side runs to its end before the endpoint is
                # read (the notification workflows of earlier releases, under these ids).
                for started in (
                    f"{orphan.id}:notify:failed",
                    f"{stranded.id}:notify:requires_intervention",
                ):
                    with contextlib.suppress(RPCError):
                        await temporal_client.get_workflow_handle(started).result()
    finally:
        installation.stop()

    assert installation.received() == []
    swept = {p.id: await store.get_payment(p.id) for p in (orphan, stranded)}
    assert {i: (p.status if p else None) for i, p in swept.items()} == {
        orphan.id: "failed",
        stranded.id: "requires_intervention",
    }
    feed, _ = await MerchantStore(store, merchant_id).list_events(
        after=0, event_type=None, limit=100
    )
    changes = {(e.aggregate_id, e.type) for e in feed}
    assert {
        (orphan.id, "payment.failed"),
        (stranded.id, "payment.requires_intervention"),
    } <= changes
