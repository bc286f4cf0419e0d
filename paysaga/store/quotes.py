"""FX quotes: a locked price for one customer, used by at most one transfer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paysaga.store.sql import TableRow, Tables


@dataclass(frozen=True)
class QuoteRow(TableRow):
    """A row of `fx_quotes`."""

    id: str
    merchant_id: str
    customer_id: str
    source_currency: str
    target_currency: str
    source_amount: int
    fee: int
    target_amount: int
    rate: str
    mid_rate: str
    expires_at: datetime
    used_by_payment_id: str | None
    created_at: datetime


class Quotes(Tables):
    """Reads and writes of `fx_quotes`."""

    async def insert_quote(self, quote: dict[str, Any]) -> QuoteRow:
        columns = ", ".join(quote)
        values = ", ".join(f"%({name})s" for name in quote)
        row = await self._one(
            QuoteRow, f"INSERT INTO fx_quotes ({columns}) VALUES ({values}) RETURNING *", quote
        )
        assert row is not None
        return row

    async def get_quote(self, quote_id: str) -> QuoteRow | None:
        return await self._one(QuoteRow, "SELECT * FROM fx_quotes WHERE id = %s", (quote_id,))

    async def use_quote(self, quote_id: str, payment_id: str) -> bool:
        """Mark the quote used by this payment; False when another payment used it."""
        return await self._execute(
            "UPDATE fx_quotes SET used_by_payment_id = %s WHERE id = %s"
            " AND (used_by_payment_id IS NULL OR used_by_payment_id = %s) RETURNING id",
            (payment_id, quote_id, payment_id),
        )
