"""The adapters behind account ids, for the processes that call providers (the worker's activities).

Built-in accounts are the installation's providers, built once. A merchant's own account
(`pa_...`) is read at each call through `load` (its row may have changed: new credentials, a
disabled account) and its adapter is rebuilt only when the row changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from providers.accounts import is_own_account
from providers.adapter import AdapterConfig, ProviderAdapter
from providers.base import ProviderConfigurationError
from providers.registry import build_adapter


@dataclass(frozen=True)
class OwnAccount:
    """What building an own account's adapter takes, as stored (secrets opened)."""

    id: str
    adapter: str
    name: str
    endpoint: str
    credentials: Mapping[str, str]
    updated_at: datetime


class ProviderDirectory:
    """Account id -> adapter: the built-in providers, and the merchants' own accounts."""

    def __init__(
        self,
        builtin: Mapping[str, Any],  # ProviderAdapter, or a part of it in tests
        load: Callable[[str], Awaitable[OwnAccount | None]],
        http: httpx.AsyncClient | None,
        timeout_seconds: float,
    ) -> None:
        self._builtin: dict[str, Any] = dict(builtin)
        self._load = load
        self._http = http
        self._timeout = timeout_seconds
        self._built: dict[str, tuple[datetime, ProviderAdapter]] = {}

    @classmethod
    def of(cls, providers: Mapping[str, Any]) -> ProviderDirectory:
        """A directory of `providers` only (no own accounts): for tests and tools."""

        async def no_own_accounts(_account_id: str) -> OwnAccount | None:
            return None

        return cls(providers, no_own_accounts, None, 1.0)

    async def get(self, account_id: str) -> ProviderAdapter:
        """The adapter of `account_id`; ProviderConfigurationError if there is no such account."""
        if not is_own_account(account_id):
            try:
                adapter: ProviderAdapter = self._builtin[account_id]
                return adapter
            except KeyError:
                raise ProviderConfigurationError(f"no provider {account_id!r}") from None
        account = await self._load(account_id)
        if account is None or self._http is None:
            raise ProviderConfigurationError(f"no provider account {account_id!r}")
        cached = self._built.get(account_id)
        if cached is not None and cached[0] == account.updated_at:
            return cached[1]
        config = AdapterConfig(
            account.id, account.endpoint, self._http, self._timeout, account.credentials
        )
        adapter = build_adapter(account.adapter, config)
        self._built[account_id] = (account.updated_at, adapter)
        return adapter
