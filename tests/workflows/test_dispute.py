"""The Dispute saga on the time-skipping server: verdicts, the due date, events in any order,
receivables, faults and crashes; money booked once whatever happens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities import failures
from domain.disputes import DisputeAnswer, DisputeView
from ledger.models import Balance
from paysaga.audit import DISPUTES_BOOKED_AS_STATED, RECEIVABLES_COVERED
from providers.base import DisputeStatus
from tests.workflows.dispute_harness import DisputeHarness

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPOSIT = 10_000


@pytest_asyncio.fixture(loop_scope="session")
async def saga(
    time_skipping_env: WorkflowEnvironment, db_pool: AsyncConnectionPool[Any], task_queue: str
) -> AsyncIterator[DisputeHarness]:
    harness = DisputeHarness(time_skipping_env, db_pool, task_queue)
    async with harness.workers():
        yield harness


async def answer(saga: DisputeHarness, dispute: Any, action: str, text: str = "") -> DisputeView:
    view: DisputeView = await dispute.handle.execute_update(
        "respond", DisputeAnswer(action, text), result_type=DisputeView
    )
    return view


async def refusal(saga: DisputeHarness, dispute: Any, action: str) -> str | None:
    try:
        await answer(saga, dispute, action, "receipt")
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        return cause.type if isinstance(cause, ApplicationError) else repr(cause)
    except RPCError as err:  # the saga has ended: no update reaches it
        return err.status.name
    return None


async def audit_clean(saga: DisputeHarness, *customers: str) -> None:
    """The ledger's audit passes, and the service's dispute checks find nothing about these
    customers (the session's database also holds the ledger tests' receivables, which no
    dispute covers)."""
    report = await saga.ledger.audit()
    assert report.ok, report.format()
    async with saga.store.pool.connection() as conn:
        for check in (RECEIVABLES_COVERED, DISPUTES_BOOKED_AS_STATED):
            rows = await (await conn.execute(check.sql)).fetchall()
            found = [row for row in rows if set(customers) & {str(value) for value in row}]
            assert found == [], (check.name, found)


async def test_dispute_won_with_evidence_reinstates_the_amount_not_the_fee(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 3_000, fee=1_500)
    await saga.wait_dispute(dispute, "needs_response")

    view = await answer(saga, dispute, "evidence", "signed delivery receipt")
    assert view.status == "under_review"
    await saga.decide(dispute)

    assert await dispute.handle.result() == "won"
    books = await saga.books_of(dispute)
    assert books["wallet"] == Balance(DEPOSIT, 0, DEPOSIT)
    assert books["bookings"] == ["withdraw", "reinstate"]
    assert books["events"] == ["dispute.created", "dispute.under_review", "dispute.won"]
    assert await saga.moved(dispute, "withdraw") == {
        "provider_clearing": 4_500,
        "chargeback_fees": -1_500,
        "customer_wallet": -3_000,
    }
    assert await saga.moved(dispute, "reinstate") == {
        "provider_clearing": -3_000,
        "customer_wallet": 3_000,
    }
    await audit_clean(saga, deposit.customer_id)


async def test_dispute_accepted_is_lost_and_keeps_the_withdrawal(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, DEPOSIT, fee=500, planted=DisputeStatus.won)
    await saga.wait_dispute(dispute, "needs_response")

    view = await answer(saga, dispute, "accept")

    assert view.status == "lost"
    assert await dispute.handle.result() == "lost"
    books = await saga.books_of(dispute)
    assert books["wallet"] == Balance(0, 0, 0)
    assert books["bookings"] == ["withdraw"]
    assert books["events"] == ["dispute.created", "dispute.lost"]
    assert await refusal(saga, dispute, "evidence") == "NOT_FOUND"  # ended: no more answers
    await audit_clean(saga, deposit.customer_id)


async def test_no_answer_by_the_due_date_is_an_acceptance(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000, due_in=timedelta(days=7))

    assert await dispute.handle.result() == "lost"  # seven days, skipped
    fake = saga.disputes.disputes[dispute.state.dispute_id]
    assert fake.state.status == DisputeStatus.lost  # the saga accepted it at the provider
    books = await saga.books_of(dispute)
    assert books["wallet"] == Balance(8_000, 0, 8_000)
    assert books["bookings"] == ["withdraw"]


async def test_due_date_after_the_provider_closed_it_itself_is_done(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000, due_in=timedelta(days=7))
    await saga.wait_dispute(dispute, "needs_response")
    saga.disputes.close(dispute.state.dispute_id, DisputeStatus.lost)  # its webhook was lost

    assert await dispute.handle.result() == "lost"
    assert (await saga.books_of(dispute))["bookings"] == ["withdraw"]


async def test_evidence_the_provider_no_longer_takes_is_refused(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000)
    await saga.wait_dispute(dispute, "needs_response")
    saga.disputes.close(dispute.state.dispute_id, DisputeStatus.lost)

    assert await refusal(saga, dispute, "evidence") == failures.DISPUTE_NOT_OPEN
    assert await dispute.handle.result() == "lost"


async def test_provider_unreachable_answer_is_not_sent_and_can_be_sent_again(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000)
    await saga.wait_dispute(dispute, "needs_response")
    saga.disputes.unavailable = 10  # every attempt of the answer fails

    assert await refusal(saga, dispute, "evidence") == failures.DISPUTE_ANSWER_FAILED
    assert (await saga.view(dispute)).status == "needs_response"
    saga.disputes.unavailable = 0
    assert (await answer(saga, dispute, "evidence", "receipt")).status == "under_review"
    await saga.decide(dispute)
    assert await dispute.handle.result() == "won"


async def test_dispute_on_a_spent_wallet_books_a_receivable_that_the_next_deposit_repays(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT, funds=1_000)  # 9,000 played away
    dispute = await saga.open_dispute(deposit, DEPOSIT, fee=700)
    await saga.wait_dispute(dispute, "needs_response")
    customer = deposit.customer_id

    books = await saga.books_of(dispute)
    assert books["receivable"] == 9_000
    assert books["wallet"] == Balance(0, 0, 0)
    assert books["debt"] == Balance(-9_000, 0, -9_000)
    # Contested first: its due date must not pass while the other sagas' results are awaited
    # (the time-skipping server skips to the next timer whenever everything waits).
    await answer(saga, dispute, "evidence", "the player played it")

    withdrawal = await saga.withdrawal(customer, amount=100)
    seen = await saga.finished(withdrawal)
    assert (seen.status, seen.failure_code) == ("failed", "customer_in_debt")
    assert saga.books.total("payout", withdrawal.id) == 0

    repaying = await saga.deposit(customer, amount=12_000)
    assert (await saga.finished(repaying)).status == "succeeded"
    books = await saga.books_of(dispute)
    assert books["debt"] == Balance(0, 0, 0)
    assert books["wallet"] == Balance(3_000, 0, 3_000)  # what was left after the debt

    await saga.decide(dispute)
    assert await dispute.handle.result() == "won"
    # Won: the amount comes back; the debt was repaid meanwhile, so all of it reaches the wallet.
    books = await saga.books_of(dispute)
    assert books["wallet"] == Balance(13_000, 0, 13_000)
    assert books["debt"] == Balance(0, 0, 0)
    await audit_clean(saga, deposit.customer_id)


async def test_won_reinstates_the_debt_first(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT, funds=4_000)
    dispute = await saga.open_dispute(deposit, DEPOSIT)
    await saga.wait_dispute(dispute, "needs_response")
    await answer(saga, dispute, "evidence", "receipt")
    await saga.decide(dispute)

    assert await dispute.handle.result() == "won"
    assert await saga.moved(dispute, "reinstate") == {
        "provider_clearing": -DEPOSIT,
        "customer_receivable": 6_000,
        "customer_wallet": 4_000,
    }
    books = await saga.books_of(dispute)
    assert (books["wallet"], books["debt"]) == (Balance(4_000, 0, 4_000), Balance(0, 0, 0))


async def test_verdict_before_created_starts_the_saga_and_nothing_moves_backwards(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_500, first="dispute.won")

    assert await dispute.handle.result() == "won"
    await saga.deliver(dispute, "dispute.created")  # late: the saga has ended, nothing starts
    books = await saga.books_of(dispute)
    assert books["bookings"] == ["withdraw", "reinstate"]
    assert books["events"] == ["dispute.created", "dispute.won"]
    assert books["wallet"] == Balance(DEPOSIT, 0, DEPOSIT)
    assert saga.disputes.calls == []  # decided already: nothing asked of the provider


async def test_duplicate_and_stale_events_change_nothing_twice(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000, planted=DisputeStatus.lost)
    await saga.deliver(dispute, "dispute.created")
    await saga.wait_dispute(dispute, "needs_response")
    await answer(saga, dispute, "evidence", "receipt")
    # The provider decides; its verdict comes twice, then a stale `created` (sequence 1).
    saga.disputes.close(dispute.state.dispute_id, DisputeStatus.lost)
    await saga.deliver(dispute, "dispute.lost")
    await saga.deliver(dispute, "dispute.lost")
    await saga.deliver(dispute, "dispute.created")

    assert await dispute.handle.result() == "lost"
    books = await saga.books_of(dispute)
    assert books["bookings"] == ["withdraw"]
    assert books["events"] == ["dispute.created", "dispute.under_review", "dispute.lost"]
    assert books["wallet"] == Balance(8_000, 0, 8_000)


async def test_a_step_failing_after_its_effect_parks_the_dispute_then_a_retry_books_once(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    saga.faults.fail(
        "ledger.post_transaction",
        after_effect=True,
        times=1,
        when=lambda data: ":dispute:" in data.idempotency_key,
    )
    dispute = await saga.open_dispute(deposit, 2_000, first="dispute.won")
    await saga.wait_dispute(dispute, "requires_intervention")
    row = await saga.store.get_dispute(dispute.id)
    assert row is not None and row.status == "requires_intervention"

    await dispute.handle.signal("retry")

    assert await dispute.handle.result() == "won"
    books = await saga.books_of(dispute)
    assert books["bookings"] == ["withdraw", "reinstate"]
    assert books["events"] == ["dispute.requires_intervention", "dispute.created", "dispute.won"]
    assert books["wallet"] == Balance(DEPOSIT, 0, DEPOSIT)
    await audit_clean(saga, deposit.customer_id)


async def test_a_cancel_from_temporal_is_ignored(saga: DisputeHarness) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    dispute = await saga.open_dispute(deposit, 2_000)
    await saga.wait_dispute(dispute, "needs_response")

    await dispute.handle.cancel()
    await answer(saga, dispute, "accept")

    assert await dispute.handle.result() == "lost"
    description = await dispute.handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert (await description.memo())["cancel_ignored"] == "temporal"


async def test_a_dispute_never_takes_back_from_the_customer_what_was_refunded(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    await saga.refunded(deposit, 4_000)  # booked as the Refund saga books it
    # A provider that disputes the whole charge all the same: the refunded part is the merchant's.
    dispute = await saga.open_dispute(deposit, DEPOSIT, fee=200)
    await saga.wait_dispute(dispute, "needs_response")

    assert await saga.moved(dispute, "withdraw") == {
        "provider_clearing": DEPOSIT + 200,
        "chargeback_fees": -4_200,
        "customer_wallet": -6_000,
    }
    await answer(saga, dispute, "evidence", "receipt")
    await saga.decide(dispute)
    assert await dispute.handle.result() == "won"
    assert await saga.moved(dispute, "reinstate") == {
        "provider_clearing": -DEPOSIT,
        "chargeback_fees": 4_000,
        "customer_wallet": 6_000,
    }
    await audit_clean(saga, deposit.customer_id)


async def test_a_dispute_of_a_deposit_whose_credit_was_refused_takes_nothing_from_the_customer(
    saga: DisputeHarness,
) -> None:
    # The customer holds 5,000 from elsewhere; the deposit's credit is refused by the ledger and
    # its charge refunded: the deposit never gave the customer anything.
    customer = await saga.customer(funds=5_000)
    saga.faults.fail(
        "payments.post_and_record_status", error_type=failures.POSTING_REFUSED, times=1
    )
    deposit = await saga.deposit(customer, amount=DEPOSIT)
    seen = await saga.finished(deposit)
    assert (seen.status, seen.failure_code) == ("failed", "credit_failed")

    dispute = await saga.open_dispute(deposit, DEPOSIT, fee=300)
    await saga.wait_dispute(dispute, "needs_response")

    books = await saga.books_of(dispute)
    assert books["receivable"] == 0
    assert (books["wallet"], books["debt"]) == (Balance(5_000, 0, 5_000), Balance(0, 0, 0))
    # The merchant bears it all: the amount and the fee against the provider's clearing.
    assert await saga.moved(dispute, "withdraw") == {
        "provider_clearing": DEPOSIT + 300,
        "chargeback_fees": -(DEPOSIT + 300),
    }
    await answer(saga, dispute, "evidence", "receipt")
    await saga.decide(dispute)
    assert await dispute.handle.result() == "won"
    # Won: the amount comes back to the merchant, nothing to the customer.
    assert await saga.moved(dispute, "reinstate") == {
        "provider_clearing": -DEPOSIT,
        "chargeback_fees": DEPOSIT,
    }
    books = await saga.books_of(dispute)
    assert (books["wallet"], books["debt"]) == (Balance(5_000, 0, 5_000), Balance(0, 0, 0))
    await audit_clean(saga, customer)


async def test_a_dispute_never_takes_from_the_customer_what_a_refund_in_flight_gives_back(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    # A refund the API accepted (reserved on the deposit) whose saga has not booked it yet.
    refund_id = f"ref_{uuid.uuid4().hex[:24]}"
    await saga.store.create_refund(saga.merchant_id, refund_id, deposit.id, 4_000, "test")

    dispute = await saga.open_dispute(deposit, DEPOSIT, fee=200)
    await saga.wait_dispute(dispute, "needs_response")

    assert await saga.moved(dispute, "withdraw") == {
        "provider_clearing": DEPOSIT + 200,
        "chargeback_fees": -4_200,
        "customer_wallet": -6_000,
    }
    books = await saga.books_of(dispute)
    assert (books["wallet"], books["debt"]) == (Balance(4_000, 0, 4_000), Balance(0, 0, 0))
    await answer(saga, dispute, "accept")
    assert await dispute.handle.result() == "lost"
    await audit_clean(saga, deposit.customer_id)


async def test_a_second_dispute_takes_only_what_the_first_left_the_customer(
    saga: DisputeHarness,
) -> None:
    deposit = await saga.funded_deposit(DEPOSIT)
    first = await saga.open_dispute(deposit, 6_000)
    await saga.wait_dispute(first, "needs_response")
    await answer(saga, first, "accept")
    assert await first.handle.result() == "lost"

    # The provider disputes the whole charge again: 4,000 is all the deposit still gave.
    second = await saga.open_dispute(deposit, DEPOSIT)
    await saga.wait_dispute(second, "needs_response")

    assert await saga.moved(second, "withdraw") == {
        "provider_clearing": DEPOSIT,
        "chargeback_fees": -6_000,
        "customer_wallet": -4_000,
    }
    books = await saga.books_of(second)
    assert (books["receivable"], books["wallet"], books["debt"]) == (
        0,
        Balance(0, 0, 0),
        Balance(0, 0, 0),
    )
    await answer(saga, second, "evidence", "receipt")
    await saga.decide(second)
    assert await second.handle.result() == "won"
    # Won: only what it withdrew from the customer comes back to the customer.
    assert await saga.moved(second, "reinstate") == {
        "provider_clearing": -DEPOSIT,
        "chargeback_fees": 6_000,
        "customer_wallet": 4_000,
    }
    await audit_clean(saga, deposit.customer_id)
