"""The Bonus workflow on Temporal's time-skipping server: a durable timer, an operator's forfeit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.routes.wallet import bonus_input
from domain import search_attributes as sa
from domain.bonuses import BonusEnd, ForfeitRequest
from tests.workflows.bonus_harness import BonusHarness

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def bonuses(
    time_skipping_env: WorkflowEnvironment,
    db_pool: AsyncConnectionPool[Any],
    postgres_url: str,
    task_queue: str,
) -> AsyncIterator[BonusHarness]:
    harness = BonusHarness(time_skipping_env, db_pool, postgres_url, task_queue)
    async with harness.workers():
        yield harness


async def test_a_bonus_expires_at_its_timer_and_returns_what_remains(bonuses: BonusHarness) -> None:
    customer = await bonuses.customer(cash=0)
    handle = await bonuses.grant(customer, 1_000, multiplier=5, lasts=timedelta(days=30))
    await bonuses.play(customer, 400, win=100)  # bonus: 1000 - 400 + 100 = 700

    assert await handle.result() == "expired"  # thirty days, skipped

    assert await bonuses.bonus(handle.id) == ("expired", 0)
    assert await bonuses.funding() == -1_000 + 700
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.MERCHANT_ID) == bonuses.merchant_id
    assert described.typed_search_attributes.get(sa.CUSTOMER_ID) == customer
    summary = await described.static_summary()
    assert summary is not None and summary.startswith("bonus of 1000 EUR minor units for cus_")


async def test_a_forfeit_ends_the_bonus_before_its_expiry(bonuses: BonusHarness) -> None:
    customer = await bonuses.customer()
    handle = await bonuses.grant(customer, 500, multiplier=10, lasts=timedelta(days=7))

    ended = await handle.execute_update(
        "forfeit", ForfeitRequest("abuse", "ops"), result_type=BonusEnd
    )

    assert ended.status == "forfeited"
    assert await handle.result() == "forfeited"
    assert await bonuses.bonus(handle.id) == ("forfeited", 0)
    assert await bonuses.funding() == 0
    with pytest.raises(RPCError):  # the workflow has ended with its bonus
        await handle.execute_update("forfeit", ForfeitRequest("twice"), result_type=BonusEnd)


async def test_a_forfeit_in_the_bonus_workflows_first_task_ends_it(bonuses: BonusHarness) -> None:
    """A forfeit that reaches the workflow with its start (update-with-start, or a busy worker that
    takes both in one task) finds the bonus it forfeits."""
    customer = await bonuses.customer()
    bonus = await bonuses.grant_without_timer(customer, 500, lasts=timedelta(days=7))
    start: WithStartWorkflowOperation[Any, str] = WithStartWorkflowOperation(
        "Bonus",
        bonus_input(bonuses.merchant_id, bonus),
        id=bonus.id,
        task_queue=bonuses.queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=str,
    )

    ended = await bonuses.env.client.execute_update_with_start_workflow(
        "forfeit",
        ForfeitRequest("abuse", "ops"),
        start_workflow_operation=start,
        result_type=BonusEnd,
    )

    assert ended.status == "forfeited"
    assert await (await start.workflow_handle()).result() == "forfeited"
    assert await bonuses.bonus(bonus.id) == ("forfeited", 0)


async def test_a_bonus_wagered_before_its_expiry_is_left_completed(bonuses: BonusHarness) -> None:
    customer = await bonuses.customer(cash=100)
    handle = await bonuses.grant(customer, 200, multiplier=1, lasts=timedelta(hours=1))
    await bonuses.play(customer, 250, win=0)  # wagers the whole requirement: completed

    assert await bonuses.bonus(handle.id) == ("completed", 0)
    assert await handle.result() == "completed"
    assert await bonuses.funding() == -200  # the bonus stayed the customer's, as cash


async def test_a_bonus_past_its_expiry_at_the_start_expires_at_once(bonuses: BonusHarness) -> None:
    customer = await bonuses.customer()
    handle = await bonuses.grant(customer, 100, multiplier=1, lasts=timedelta(seconds=-1))

    assert await handle.result() == "expired"
    with pytest.raises(RPCError):
        await handle.execute_update("forfeit", ForfeitRequest("late"), result_type=BonusEnd)
    assert await bonuses.bonus(handle.id) == ("expired", 0)
