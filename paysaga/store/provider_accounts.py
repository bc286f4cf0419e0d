"""Provider accounts: a merchant's own PSP accounts, and its changes to the built-in ones.

Credentials and the webhook secret are sealed with the installation's data keys, bound to their
row (`paysaga.personal_data`): they are opened only where a provider is called or a webhook
verified, and no API answer carries them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from paysaga.personal_data import sealed_at
from paysaga.settings import Settings
from paysaga.store.sql import TableRow, Tables
from providers.accounts import SANDBOX_ADAPTER, ProviderAccount
from providers.base import PaymentProvider
from providers.directory import OwnAccount, ProviderDirectory

TABLE = "provider_accounts"


@dataclass(frozen=True)
class ProviderAccountRow(TableRow):
    """A row of `provider_accounts`, its secrets still sealed."""

    merchant_id: str
    id: str
    adapter: str
    name: str
    builtin: bool
    endpoint: str | None
    credentials_sealed: str | None
    webhook_secret_sealed: str | None
    methods: list[str]
    currencies: list[str]
    priority: int
    enabled: bool
    payouts: bool
    created_at: datetime
    updated_at: datetime

    def account(self) -> ProviderAccount:
        """The account as routing sees it."""
        return ProviderAccount(
            id=self.id,
            adapter=self.adapter,
            name=self.name,
            methods=tuple(self.methods),
            currencies=tuple(self.currencies),
            priority=self.priority,
            enabled=self.enabled,
            builtin=self.builtin,
            payouts=self.payouts,
            customized=self.builtin,
        )


@dataclass(frozen=True)
class AccountSecrets:
    """An own account's opened secrets: what its adapter is built with and verifies with."""

    row: ProviderAccountRow
    credentials: dict[str, str]
    webhook_secret: str | None


class ProviderAccounts(Tables):
    """Reads and writes of `provider_accounts`."""

    def _seal(self, merchant_id: str, account_id: str, column: str, value: str) -> str:
        return self.personal_data.seal(value, sealed_at(TABLE, column, merchant_id, account_id))

    async def create_provider_account(
        self,
        merchant_id: str,
        account_id: str,
        *,
        adapter: str,
        name: str,
        endpoint: str | None,
        credentials: dict[str, str],
        webhook_secret: str,
        methods: list[str],
        currencies: list[str],
        priority: int,
        payouts: bool,
    ) -> ProviderAccountRow | None:
        """Insert a merchant's own account; None when it already has one of that name."""
        return await self._one(
            ProviderAccountRow,
            "INSERT INTO provider_accounts (merchant_id, id, adapter, name, endpoint,"
            " credentials_sealed, webhook_secret_sealed, methods, currencies, priority, payouts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (merchant_id, name) DO NOTHING RETURNING *",
            (
                merchant_id,
                account_id,
                adapter,
                name,
                endpoint,
                self._seal(merchant_id, account_id, "credentials_sealed", json.dumps(credentials)),
                self._seal(merchant_id, account_id, "webhook_secret_sealed", webhook_secret),
                methods,
                currencies,
                priority,
                payouts,
            ),
        )

    async def list_provider_accounts(self, merchant_id: str) -> list[ProviderAccountRow]:
        """A merchant's stored accounts: its own, and the built-in ones it changed."""
        return await self._all(
            ProviderAccountRow,
            "SELECT * FROM provider_accounts WHERE merchant_id = %s ORDER BY priority, name",
            (merchant_id,),
        )

    async def update_provider_account(
        self,
        merchant_id: str,
        account_id: str,
        *,
        enabled: bool | None = None,
        priority: int | None = None,
        methods: list[str] | None = None,
        currencies: list[str] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> ProviderAccountRow | None:
        """Change what is given of an account of the merchant; None when it has none so named."""
        sealed = (
            None
            if credentials is None
            else self._seal(merchant_id, account_id, "credentials_sealed", json.dumps(credentials))
        )
        return await self._one(
            ProviderAccountRow,
            "UPDATE provider_accounts SET"
            " enabled = COALESCE(%(enabled)s, enabled),"
            " priority = COALESCE(%(priority)s, priority),"
            " methods = COALESCE(%(methods)s, methods),"
            " currencies = COALESCE(%(currencies)s, currencies),"
            " credentials_sealed = COALESCE(%(sealed)s, credentials_sealed),"
            " updated_at = now()"
            " WHERE merchant_id = %(merchant)s AND id = %(id)s RETURNING *",
            {
                "enabled": enabled,
                "priority": priority,
                "methods": methods,
                "currencies": currencies,
                "sealed": sealed,
                "merchant": merchant_id,
                "id": account_id,
            },
        )

    async def save_builtin_account(
        self, merchant_id: str, account: ProviderAccount
    ) -> ProviderAccountRow:
        """Store a merchant's version of a built-in account (its secrets stay the installation's)."""
        row = await self._one(
            ProviderAccountRow,
            "INSERT INTO provider_accounts (merchant_id, id, adapter, name, builtin, methods,"
            " currencies, priority, enabled, payouts) VALUES (%s, %s, %s, %s, true, %s, %s, %s,"
            " %s, %s) ON CONFLICT (merchant_id, id) DO UPDATE SET methods = EXCLUDED.methods,"
            " currencies = EXCLUDED.currencies, priority = EXCLUDED.priority,"
            " enabled = EXCLUDED.enabled, updated_at = now() RETURNING *",
            (
                merchant_id,
                account.id,
                account.adapter,
                account.name,
                list(account.methods),
                list(account.currencies),
                account.priority,
                account.enabled,
                account.payouts,
            ),
        )
        assert row is not None
        return row

    async def own_account_secrets(self, account_id: str) -> AccountSecrets | None:
        """An own account (any merchant's: its id is unique) with its secrets opened; None when
        there is no such account. For the worker's provider calls and the webhook route."""
        row = await self._one(
            ProviderAccountRow,
            "SELECT * FROM provider_accounts WHERE id = %s AND NOT builtin",
            (account_id,),
        )
        if row is None:
            return None
        credentials: dict[str, str] = {}
        if row.credentials_sealed is not None:
            where = sealed_at(TABLE, "credentials_sealed", row.merchant_id, row.id)
            credentials = json.loads(self.personal_data.open(row.credentials_sealed, where))
        secret = None
        if row.webhook_secret_sealed is not None:
            where = sealed_at(TABLE, "webhook_secret_sealed", row.merchant_id, row.id)
            secret = self.personal_data.open(row.webhook_secret_sealed, where)
        return AccountSecrets(row, credentials, secret)

    async def own_account_ids(self) -> list[str]:
        """Every merchant's own accounts, by id."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM provider_accounts WHERE NOT builtin ORDER BY id"
            )
            return [row[0] for row in await cur.fetchall()]

    async def own_account(self, account_id: str, sandbox_endpoint: str) -> OwnAccount | None:
        """What building an own account's adapter takes (`ProviderDirectory`'s loader). A
        disabled account takes no new payment (routing) but still serves those it has: their
        status, refunds and disputes. The sandbox adapter talks to the installation's sandbox PSP
        unless the account names another endpoint."""
        found = await self.own_account_secrets(account_id)
        if found is None:
            return None
        default = sandbox_endpoint if found.row.adapter == SANDBOX_ADAPTER else ""
        return OwnAccount(
            id=found.row.id,
            adapter=found.row.adapter,
            name=found.row.name,
            endpoint=found.row.endpoint or default,
            credentials=found.credentials,
            updated_at=found.row.updated_at,
        )


def provider_directory(
    settings: Settings,
    store: ProviderAccounts,
    builtin: Mapping[str, PaymentProvider],
    http: httpx.AsyncClient,
) -> ProviderDirectory:
    """The installation's providers (`builtin`) and the merchants' own accounts, read from the
    store: what the worker calls and the webhook route verifies with."""
    return ProviderDirectory(
        builtin,
        functools.partial(store.own_account, sandbox_endpoint=settings.psp_url),
        http,
        settings.psp_timeout_seconds,
    )
