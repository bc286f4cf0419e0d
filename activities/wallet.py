"""The bonus workflow's activity: end a bonus through the wallet engine (expiry or forfeit)."""

from __future__ import annotations

from typing import Literal, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.bonuses import BonusEnd, EndBonusInput
from wallet.engine import WalletEngine
from wallet.models import EndBonus


class WalletActivities:
    def __init__(self, engine: WalletEngine) -> None:
        self._engine = engine

    @activity.defn(name="wallet.end_bonus")
    async def end_bonus(self, data: EndBonusInput) -> BonusEnd:
        """Remove what remains of an active bonus (back to the merchant's bonus funding) and mark
        it `expired` or `forfeited`, in one transaction; an ended bonus stays as it is."""
        if data.status not in ("expired", "forfeited"):
            raise ApplicationError(f"cannot end a bonus as {data.status!r}", non_retryable=True)
        status = cast(Literal["expired", "forfeited"], data.status)
        call = EndBonus(data.merchant_id, data.customer_id, data.bonus_id, status, data.reason)
        decision = await self._engine.submit(call)
        if not decision.accepted:  # no such bonus: nothing the workflow can do by retrying
            raise ApplicationError(
                decision.answer["detail"], type=decision.outcome, non_retryable=True
            )
        return BonusEnd(data.bonus_id, str(decision.answer["status"]))
