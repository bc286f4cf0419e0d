"""A bonus's life after its grant: a durable timer to its expiry, or an operator's forfeit.

One workflow per bonus, its id the bonus id (`bon_...`). At `expires_at` it removes what remains
of the bonus (to the merchant's bonus funding) and marks it `expired`; the `forfeit` update does
the same at once as `forfeited`. A bonus completed by wagering meanwhile is simply left as it is
when the timer fires. Bets, wins and rollbacks never pass through here: the wallet answers them
alone, in milliseconds.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.wallet import WalletActivities
    from domain.bonuses import BonusEnd, BonusInput, EndBonusInput, ForfeitRequest

END_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


@workflow.defn(name="Bonus")
class BonusWorkflow:
    @workflow.init
    def __init__(self, bonus: BonusInput) -> None:
        # The bonus from the start: a forfeit can come in the workflow's first task, with the
        # start itself (update-with-start, or a busy worker taking both at once), before `run`.
        self._bonus = bonus
        self._forfeit: ForfeitRequest | None = None
        self._expiring = False
        self._end: BonusEnd | None = None

    @workflow.run
    async def run(self, bonus: BonusInput) -> str:
        left = datetime.fromisoformat(bonus.expires_at) - workflow.now()
        if left > timedelta(0):
            with contextlib.suppress(TimeoutError):  # the expiry came first
                await workflow.wait_condition(
                    lambda: self._forfeit is not None,
                    timeout=left,
                    timeout_summary="bonus expiry",
                )
        if self._forfeit is None:
            self._expiring = True
            self._end = await self._end_as("expired", "expired")
        await workflow.wait_condition(
            lambda: self._end is not None and workflow.all_handlers_finished()
        )
        assert self._end is not None
        return self._end.status

    @workflow.update
    async def forfeit(self, request: ForfeitRequest) -> BonusEnd:
        """An operator's forfeit: what remains of the bonus returns to the merchant's funding."""
        if self._forfeit is None:
            self._forfeit = request
            self._end = await self._end_as("forfeited", request.reason)
        else:  # a second forfeit: the first one's result
            await workflow.wait_condition(lambda: self._end is not None)
        assert self._end is not None
        return self._end

    @forfeit.validator
    def _not_expiring(self, request: ForfeitRequest) -> None:
        if self._expiring:
            raise ValueError("the bonus is expiring")

    async def _end_as(self, status: str, reason: str) -> BonusEnd:
        end: BonusEnd = await workflow.execute_activity_method(
            WalletActivities.end_bonus,
            EndBonusInput(
                self._bonus.bonus_id,
                self._bonus.merchant_id,
                self._bonus.customer_id,
                status,
                reason,
            ),
            start_to_close_timeout=END_TIMEOUT,
            retry_policy=RETRY,
        )
        return end
