"""The worker: runs the payment sagas and their activities, and delivers merchant webhooks from
the event feed. Start as many as you like: they share the work through Temporal and leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.decision_guard import DecisionActivities, DecisionGuard
from activities.disputes import DisputeActivities, DisputeProviderActivities
from activities.ledger import LedgerActivities
from activities.payment_sweep import PaymentSweepActivities
from activities.payments import (
    PAYMENT_TIME_TO_TERMINAL,
    TIME_TO_TERMINAL_BUCKETS,
    BookingActivities,
    PaymentActivities,
)
from activities.provider_metrics import PROVIDER_LATENCY_BUCKETS, PROVIDER_REQUEST_DURATION
from activities.providers import ProviderActivities
from activities.reconciliation import ReconciliationActivities
from activities.refunds import RefundActivities
from activities.resolution import ResolutionActivities
from activities.retention import RetentionActivities
from activities.risk import RiskActivities
from activities.wallet import WalletActivities
from ledger.engine import Ledger
from paysaga.codec import data_converter
from paysaga.database import open_pool
from paysaga.observability.logs import setup_logging
from paysaga.observability.metrics import install_worker_runtime
from paysaga.observability.tracing import flush_tracing, setup_tracing, tracing_enabled
from paysaga.observability.worker_pool import report_pool
from paysaga.payment_sweep import SweepBooks
from paysaga.personal_data import PersonalDataCipher
from paysaga.reconciliation import ReconciliationBooks
from paysaga.settings import Settings, get_settings, refuse_default_secrets
from paysaga.store import Store
from paysaga.store.provider_accounts import provider_directory
from paysaga.store.provider_health import ProviderBreakers, breaker_policy
from paysaga.temporal_connection import connect_temporal
from paysaga.webhook_delivery import WebhookDispatcher
from providers.registry import PROVIDER_NAMES, build_providers
from providers.routing import OWN_ACCOUNTS_QUEUE, provider_task_queue
from risk.fraud import FraudRules
from risk.kyc import SandboxKyc
from wallet.engine import WalletEngine
from wallet.limits import wallet_limits
from workflows.bonus import BonusWorkflow
from workflows.deposit import DepositWorkflow
from workflows.dispute import DisputeWorkflow
from workflows.legacy.deposit_v1 import DepositV1Workflow
from workflows.payment_sweep import (
    SWEEP_SCHEDULE_ID,
    PaymentSweepInput,
    PaymentSweepWorkflow,
    SagaNotStartedWorkflow,
)
from workflows.reconciliation import SCHEDULE_ID, ReconciliationInput, ReconciliationWorkflow
from workflows.refund import RefundWorkflow
from workflows.resolution import PaymentResolutionWorkflow
from workflows.retention import RETENTION_SCHEDULE_ID, RetentionInput, RetentionWorkflow
from workflows.transfer import TransferWorkflow
from workflows.withdrawal import WithdrawalWorkflow

WORKFLOWS = [
    DepositWorkflow,
    DepositV1Workflow,  # deposits started before Deposit.v2, to their end
    WithdrawalWorkflow,
    TransferWorkflow,
    ReconciliationWorkflow,
    RetentionWorkflow,
    PaymentSweepWorkflow,
    SagaNotStartedWorkflow,
    BonusWorkflow,
    RefundWorkflow,
    DisputeWorkflow,
    PaymentResolutionWorkflow,  # an operator's resolve of a payment whose saga is closed
]


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox if the settings ask for it; else the sagas run as plain Python (`workflow_sandbox`)."""
    return SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def risk_activities(settings: Settings, store: Store) -> RiskActivities:
    """KYC, sanctions and fraud rules as the settings configure them."""
    kyc = SandboxKyc(
        settings.kyc_minimum_age,
        frozenset(settings.blocked_countries),
        frozenset(settings.sanctions_list),
    )
    fraud = FraudRules(
        settings.deposit_limit_major,
        settings.review_threshold_major,
        settings.velocity_max_payments,
        frozenset(settings.blocked_countries),
    )
    return RiskActivities(store, kyc, fraud, timedelta(seconds=settings.velocity_window_seconds))


def activities_for(
    settings: Settings, ledger: Ledger, store: Store, http: httpx.AsyncClient
) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
    """The activities of the sagas bound to their clients: the local ones, the provider calls."""
    risk = risk_activities(settings, store)
    ledger_activities = LedgerActivities(ledger)
    providers = build_providers(settings.psp_url, settings.psp_timeout_seconds, http)
    directory = provider_directory(settings, store, providers, http)
    breakers = ProviderBreakers(store.pool, breaker_policy(settings))
    provider_activities = ProviderActivities(directory, breakers)
    reconciliation = ReconciliationActivities(
        ReconciliationBooks(store.pool),
        directory,
        timedelta(seconds=settings.reconciliation_grace_seconds),
        store.own_account_ids,
    )
    payments = PaymentActivities(store)
    sweep = PaymentSweepActivities(store, SweepBooks(store.pool))
    local: list[Callable[..., Any]] = [
        risk.check_kyc,
        risk.assess_payment,
        risk.screen_payment,
        risk.screen_beneficiary,
        ledger_activities.post_transaction,
        ledger_activities.hold_funds,
        ledger_activities.post_hold,
        ledger_activities.void_hold,
        ledger_activities.reverse_transaction,
        ledger_activities.release_hold,
        ledger_activities.reverse_by_key,
        ledger_activities.is_posted,
        provider_activities.was_sent,
        payments.record_status,
        BookingActivities(ledger_activities, payments).post_and_record_status,
        RefundActivities(store).record_status,
        *dispute_activities(ledger_activities, store),
        reconciliation.reconcile_provider,
        reconciliation.own_accounts,
        RetentionActivities(store.pool, settings.event_retention_days).purge_idempotency,
        sweep.fail_orphans,
        sweep.park_stranded,
        sweep.start_bonus_timers,
        ResolutionActivities(store, ledger).facts,
        DecisionActivities(settings.decision_signing_keys).verify_decision,
    ]
    provider_calls: list[Callable[..., Any]] = [
        provider_activities.charge,
        provider_activities.payout,
        provider_activities.final_status,
        provider_activities.refund_charge,
        provider_activities.refund,
        provider_activities.authenticate,
        provider_activities.cancel_authorization,
    ]
    dispute_calls = DisputeProviderActivities(directory)
    provider_calls += [dispute_calls.answer, dispute_calls.verdict]
    return local, provider_calls


def dispute_activities(ledger: LedgerActivities, store: Store) -> list[Callable[..., Any]]:
    """The Dispute saga's local steps, and the receivable's (deposits repay it, withdrawals
    refuse a customer in debt)."""
    disputes = DisputeActivities(store)
    return [
        ledger.customer_debt,
        disputes.record,
        disputes.open,
        disputes.record_status,
    ]


async def ensure_schedule(
    client: Client,
    schedule_id: str,
    workflow_run: Callable[[Any, Any], Awaitable[Any]],
    arg: Any,
    every_seconds: float,
    task_queue: str,
) -> None:
    """Create a periodic workflow's schedule once; every worker may try, the first one wins."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            workflow_run, arg, id=f"{schedule_id}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))]),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(f"{schedule_id}-{task_queue}", schedule)


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Reconciliation, the orphan sweep and the retention purge, each on its own schedule."""
    queue = settings.task_queue
    await ensure_schedule(
        client,
        SCHEDULE_ID,
        ReconciliationWorkflow.run,
        ReconciliationInput(providers=list(PROVIDER_NAMES)),
        settings.reconciliation_interval_seconds,
        queue,
    )
    await ensure_schedule(
        client,
        SWEEP_SCHEDULE_ID,
        PaymentSweepWorkflow.run,
        PaymentSweepInput(grace_seconds=settings.payment_sweep_grace_seconds),
        settings.payment_sweep_interval_seconds,
        queue,
    )
    await ensure_schedule(
        client,
        RETENTION_SCHEDULE_ID,
        RetentionWorkflow.run,
        RetentionInput(
            settings.idempotency_key_ttl_hours, settings.ledger_idempotency_retention_days
        ),
        settings.retention_purge_interval_seconds,
        queue,
    )


async def run_worker(settings: Settings) -> None:
    """Poll the task queue until SIGTERM or SIGINT, then finish in-flight tasks and stop."""
    refuse_default_secrets(settings)
    # From the start: a SIGTERM while connecting stops the worker as cleanly as one while polling.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Before any connection opens: the psycopg and httpx instrumentation wraps their connects.
    interceptors = setup_tracing(settings, "paysaga-worker")
    pool = await open_pool(
        settings.database_url, settings.database_pool_min, settings.database_pool_max
    )
    client = await connect_temporal(settings, data_converter=data_converter(settings))
    async with httpx.AsyncClient() as http, contextlib.AsyncExitStack() as workers:
        store = Store(pool, PersonalDataCipher.from_settings(settings))
        local, provider_calls = activities_for(settings, Ledger(pool), store, http)
        # Bonus expiries and forfeits go through the wallet's engine, as every wallet write does.
        wallet = WalletEngine(
            settings.database_url,
            writers=1,
            house_owner_id=settings.house_owner_id,
            limits=wallet_limits(settings),
        )
        await workers.enter_async_context(wallet)
        local.append(WalletActivities(wallet).end_bonus)
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            workflow_runner=workflow_runner(settings),
            max_cached_workflows=settings.max_cached_workflows,
            activities=local,
            graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
            # The sagas take only the money decisions the API signed.
            interceptors=[*interceptors, DecisionGuard(settings.decision_signing_keys)],
        )
        # One queue and slot pool per provider: a slow provider cannot starve the others.
        provider_workers = [
            Worker(
                client,
                task_queue=provider_task_queue(settings.task_queue, provider),
                activities=provider_calls,
                max_concurrent_activities=settings.provider_max_concurrent_calls,
                graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
                interceptors=interceptors,
            )
            for provider in [*PROVIDER_NAMES, OWN_ACCOUNTS_QUEUE]
        ]
        await ensure_schedules(client, settings)
        for each in (worker, *provider_workers):
            await workers.enter_async_context(each)
        logging.info("worker polling task queue %s", settings.task_queue)
        # Beside the sagas: it stops with them, each merchant's send in flight finished first.
        webhooks = asyncio.create_task(WebhookDispatcher(store, settings).run(stop))
        pool_metrics = asyncio.create_task(report_pool(pool, stop))
        await stop.wait()
        await webhooks
        await pool_metrics
    await pool.close()


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    buckets = {
        PROVIDER_REQUEST_DURATION: PROVIDER_LATENCY_BUCKETS,
        PAYMENT_TIME_TO_TERMINAL: TIME_TO_TERMINAL_BUCKETS,
    }
    if served := install_worker_runtime(settings.worker_metrics_address, buckets):
        logging.info("worker metrics at http://%s/metrics", served)
    asyncio.run(run_worker(settings))
    # Everything is closed by now (workers shut down, pool closed). Leave without interpreter
    # finalization: a thread of Temporal's core that calls back into Python while the interpreter
    # finalizes aborts the process (SIGABRT, "PyGILState_Release: thread state ... must be
    # current"), which one CI run saw on a SIGTERM a moment after start. What atexit hooks would
    # have done is done here: the last spans exported, the logs flushed.
    if tracing_enabled(settings):
        flush_tracing()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
