"""One merchant's view of the tables: every read and write of the API goes through it.

The API builds a `MerchantStore` from the caller's key and never reads a table any other way, so
no route can forget the merchant: each statement here names it. Another merchant's id finds
nothing, by the same query and index as a missing one, so it answers the same 404 in the same
time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.routing import AuthorizationStats, MethodFamily
from paysaga.store.customers import CustomerRow
from paysaga.store.disputes import DisputeRow
from paysaga.store.idempotency import IdempotencyRow
from paysaga.store.merchant_events import MerchantEvents
from paysaga.store.merchants import MerchantRow
from paysaga.store.ops_audit import OpsActionRow
from paysaga.store.pages import Window, page_query
from paysaga.store.payments import PaymentRow
from paysaga.store.provider_accounts import ProviderAccountRow
from paysaga.store.quotes import QuoteRow
from paysaga.store.refunds import RefundableDeposit, RefundRow
from paysaga.store.sql import Tables
from paysaga.store.wallet_views import (
    BONUS_SQL,
    WALLET_TRANSACTIONS_SQL,
    WALLET_VIEW_SQL,
    BonusRow,
    WalletTransactionRow,
    WalletViewRow,
)
from providers.accounts import ProviderAccount


@dataclass(frozen=True)
class CustomerStatusRow(CustomerRow):
    """A customer with its wallet status (`active`, or `blocked`: no bets)."""

    status: str


class MerchantStore(MerchantEvents):
    """The tables as one merchant sees them."""

    def __init__(self, store: Any, merchant_id: str) -> None:
        # `store` is the whole `Store`; typed loosely to keep this module below it.
        self._store = store
        self._tables: Tables = store
        self.merchant_id = merchant_id

    # ------------------------------------------------------------------ the merchant itself

    async def merchant(self) -> MerchantRow:
        row: MerchantRow | None = await self._store.get_merchant(self.merchant_id)
        if row is None:
            raise LookupError(f"no merchant {self.merchant_id}")
        return row

    async def set_webhook(
        self,
        url: str | None,
        secret: str | None,
        grace_seconds: float | None,
        default_grace_seconds: float,
    ) -> MerchantRow:
        row: MerchantRow | None = await self._store.set_merchant_webhook(
            self.merchant_id, url, secret, grace_seconds, default_grace_seconds
        )
        assert row is not None
        return row

    # ------------------------------------------------------------------ provider accounts

    async def stored_provider_accounts(self) -> list[ProviderAccountRow]:
        """The merchant's own accounts and its versions of the built-in ones."""
        rows: list[ProviderAccountRow] = await self._store.list_provider_accounts(self.merchant_id)
        return rows

    async def create_provider_account(
        self, account_id: str, **fields: Any
    ) -> ProviderAccountRow | None:
        """Insert an own account; None when the merchant has one of that name already."""
        row: ProviderAccountRow | None = await self._store.create_provider_account(
            self.merchant_id, account_id, **fields
        )
        return row

    async def update_provider_account(
        self, account_id: str, **changes: Any
    ) -> ProviderAccountRow | None:
        """Change a stored account of the merchant; None when it has none with this id."""
        row: ProviderAccountRow | None = await self._store.update_provider_account(
            self.merchant_id, account_id, **changes
        )
        return row

    async def save_builtin_account(self, account: ProviderAccount) -> ProviderAccountRow:
        """Store the merchant's version of a built-in account."""
        row: ProviderAccountRow = await self._store.save_builtin_account(self.merchant_id, account)
        return row

    # ------------------------------------------------------------------ customers

    async def create_customer(
        self,
        customer_id: str,
        external_id: str,
        full_name: str,
        birth_date: date,
        country: str,
        metadata: dict[str, str] | None = None,
    ) -> CustomerRow | None:
        """Insert a customer; None when this merchant already has the external id."""
        row: CustomerRow | None = await self._store.create_customer(
            self.merchant_id, customer_id, external_id, full_name, birth_date, country, metadata
        )
        return row

    async def list_customers(
        self, window: Window[str], metadata: dict[str, str] | None = None
    ) -> tuple[list[CustomerRow], bool]:
        """The merchant's customers, newest first, optionally by metadata."""
        result: tuple[list[CustomerRow], bool] = await self._store.list_customers(
            self.merchant_id, window, metadata
        )
        return result

    async def get_customer(self, customer_id: str) -> CustomerRow | None:
        row: CustomerRow | None = await self._store.get_customer(customer_id, self.merchant_id)
        return row

    async def set_customer_status(self, customer_id: str, status: str) -> CustomerStatusRow | None:
        """Block or unblock the customer's bets; None if the merchant has no such customer."""
        row: CustomerStatusRow | None = await self._store._one_customer(
            CustomerStatusRow,
            "UPDATE customers SET status = %s, updated_at = now()"
            " WHERE id = %s AND merchant_id = %s RETURNING *",
            (status, customer_id, self.merchant_id),
        )
        return row

    # ------------------------------------------------------------------ the game wallet

    async def wallet_view(self, customer_id: str, currency: str) -> WalletViewRow | None:
        """The customer's cash (available), bonus and wagering left in a currency; zeros when it
        has no wallet there; None if the merchant has no such customer."""
        return await self._tables._one(
            WalletViewRow,
            WALLET_VIEW_SQL,
            {"merchant_id": self.merchant_id, "customer_id": customer_id, "currency": currency},
        )

    async def get_bonus(self, bonus_id: str) -> BonusRow | None:
        return await self._tables._one(
            BonusRow,
            BONUS_SQL + " WHERE b.id = %s AND b.merchant_id = %s",
            (bonus_id, self.merchant_id),
        )

    async def wallet_transactions(
        self,
        customer_id: str,
        *,
        round_id: str | None,
        game_provider: str | None,
        limit: int,
        after: int | None,
    ) -> tuple[list[WalletTransactionRow], bool]:
        """The customer's booked game calls in the order they were booked; the cursor is the
        `seq` of the last call of the previous page."""
        rows = await self._tables._all(
            WalletTransactionRow,
            WALLET_TRANSACTIONS_SQL,
            {
                "merchant_id": self.merchant_id,
                "customer_id": customer_id,
                "round_id": round_id,
                "game_provider": game_provider,
                "after": after,
                "limit": limit + 1,
            },
        )
        return rows[:limit], len(rows) > limit

    # ------------------------------------------------------------------ payments

    async def insert_customer_payment(
        self,
        payment_id: str,
        kind: str,
        customer_id: str,
        amount: int,
        currency: str,
        provider: str | None,
        details: dict[str, Any],
        routing: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PaymentRow | None:
        """Insert a payment in `processing` (event `payment.created`), or return the one there;
        None if the merchant has no such customer."""
        row: PaymentRow | None = await self._store.insert_customer_payment(
            self.merchant_id,
            payment_id,
            kind,
            customer_id,
            amount,
            currency,
            provider,
            details,
            routing,
            metadata,
        )
        return row

    async def authorization_stats(
        self, currency: str, method: MethodFamily, window_seconds: float
    ) -> dict[str, AuthorizationStats]:
        """Per provider account, this merchant's recent approved and declined deposits."""
        stats: dict[str, AuthorizationStats] = await self._store.authorization_stats(
            self.merchant_id, currency, method, window_seconds
        )
        return stats

    async def get_payment(self, payment_id: str) -> PaymentRow | None:
        return await self._tables._one(
            PaymentRow,
            "SELECT * FROM payments WHERE id = %s AND merchant_id = %s",
            (payment_id, self.merchant_id),
        )

    async def list_payments(
        self,
        *,
        customer_id: str | None,
        kind: str | None,
        status: str | None,
        window: Window[str],
        metadata: dict[str, str] | None = None,
    ) -> tuple[list[PaymentRow], bool]:
        result: tuple[list[PaymentRow], bool] = await self._store.list_payments(
            self.merchant_id,
            customer_id=customer_id,
            kind=kind,
            status=status,
            window=window,
            metadata=metadata,
        )
        return result

    # ------------------------------------------------------------------ refunds

    async def create_refund(
        self, refund_id: str, payment_id: str, amount: int | None, reason: str | None
    ) -> tuple[RefundRow, RefundableDeposit]:
        """Reserve and insert a refund of this merchant's deposit (see `Refunds.create_refund`)."""
        result: tuple[RefundRow, RefundableDeposit] = await self._store.create_refund(
            self.merchant_id, refund_id, payment_id, amount, reason
        )
        return result

    async def get_refund(self, refund_id: str) -> RefundRow | None:
        return await self._tables._one(
            RefundRow,
            "SELECT * FROM refunds WHERE id = %s AND merchant_id = %s",
            (refund_id, self.merchant_id),
        )

    async def list_refunds(
        self, payment_id: str, window: Window[str]
    ) -> tuple[list[RefundRow], bool]:
        result: tuple[list[RefundRow], bool] = await self._store.list_refunds(
            self.merchant_id, payment_id, window
        )
        return result

    # ------------------------------------------------------------------ disputes

    async def get_dispute(self, dispute_id: str) -> DisputeRow | None:
        return await self._tables._one(
            DisputeRow,
            "SELECT * FROM disputes WHERE id = %s AND merchant_id = %s",
            (dispute_id, self.merchant_id),
        )

    async def list_disputes(
        self, *, payment_id: str | None, status: str | None, window: Window[str]
    ) -> tuple[list[DisputeRow], bool]:
        """Newest first; the cursors are ids of the merchant's disputes."""
        page = page_query("disputes", window, newest_first=True)
        where = ["merchant_id = %(merchant_id)s", *page.conditions]
        if payment_id is not None:
            where.append("payment_id = %(payment_id)s")
        if status is not None:
            where.append("status = %(status)s")
        rows = await self._tables._all(
            DisputeRow,
            f"SELECT * FROM disputes WHERE {' AND '.join(where)}"
            f" ORDER BY {page.order_by} LIMIT %(limit)s",
            {
                **page.params,
                "merchant_id": self.merchant_id,
                "payment_id": payment_id,
                "status": status,
            },
        )
        return page.rows(rows, window.limit)

    # ------------------------------------------------------------------ FX quotes

    async def insert_quote(self, quote: dict[str, Any]) -> QuoteRow:
        row: QuoteRow = await self._store.insert_quote({**quote, "merchant_id": self.merchant_id})
        return row

    async def get_quote(self, quote_id: str) -> QuoteRow | None:
        return await self._tables._one(
            QuoteRow,
            "SELECT * FROM fx_quotes WHERE id = %s AND merchant_id = %s",
            (quote_id, self.merchant_id),
        )

    async def use_quote(self, quote_id: str, payment_id: str) -> bool:
        """Mark the quote used by this payment; False when another payment used it."""
        return await self._tables._execute(
            "UPDATE fx_quotes SET used_by_payment_id = %s WHERE id = %s AND merchant_id = %s"
            " AND (used_by_payment_id IS NULL OR used_by_payment_id = %s) RETURNING id",
            (payment_id, quote_id, self.merchant_id, payment_id),
        )

    # ------------------------------------------------------------------ idempotency keys

    async def claim_idempotency_key(
        self, key: str, request_hash: str, ttl_hours: int
    ) -> IdempotencyRow | None:
        row: IdempotencyRow | None = await self._store.claim_idempotency_key(
            self.merchant_id, key, request_hash, ttl_hours
        )
        return row

    async def complete_idempotency_key(self, key: str, status: int, raw_body: str) -> None:
        await self._store.complete_idempotency_key(self.merchant_id, key, status, raw_body)

    async def release_idempotency_key(self, key: str) -> None:
        await self._store.release_idempotency_key(self.merchant_id, key)

    # ------------------------------------------------------------------ ops audit trail

    async def record_ops_action(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> OpsActionRow:
        row: OpsActionRow = await self._store.record_ops_action(
            self.merchant_id, actor, action, target, detail
        )
        return row

    async def list_ops_actions(self, window: Window[int]) -> tuple[list[OpsActionRow], bool]:
        result: tuple[list[OpsActionRow], bool] = await self._store.list_ops_actions(
            self.merchant_id, window
        )
        return result
