"""Provider accounts: which accounts may take a payment, in the merchant's order.

An account is an adapter with its own credentials and webhook secret, the methods and currencies
it serves and a priority (1 first). Every merchant has the installation's own providers as
built-in accounts (`PAYSAGA_PROVIDER_ROUTING`: the sandbox's `sandbox-cards` and `sandbox-bank` in
development), whose id is their name; a merchant adds its own (`pa_...`) with `POST /v1/providers`.

This module knows nothing of the database or of Temporal: the API reads the accounts and asks it
for the candidates, in order; the saga tries them in that order (`workflows.saga.provider_outcome.call_provider`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from providers.routing import route

OWN_ACCOUNT_PREFIX = "pa_"  # ids of merchants' own accounts; built-in ones are their name
SANDBOX_ADAPTER = "sandbox"
# Operations an account may be routed: a charge (deposits), a payout (withdrawals, transfers).
CHARGE, PAYOUT = "charge", "payout"


def is_own_account(account_id: str) -> bool:
    """Whether `account_id` names a merchant's own account (else a built-in provider)."""
    return account_id.startswith(OWN_ACCOUNT_PREFIX)


@dataclass(frozen=True)
class ProviderAccount:
    """An account as routing sees it; empty `methods` or `currencies` mean every one its adapter
    serves."""

    id: str
    adapter: str
    name: str
    methods: tuple[str, ...]
    currencies: tuple[str, ...]
    priority: int
    enabled: bool
    builtin: bool
    payouts: bool = True
    # A built-in account the merchant changed (PATCH): its priority is the merchant's, not the
    # installation's order for the currency.
    customized: bool = False

    def serves(self, operation: str, method: str | None, currency: str) -> bool:
        """Whether a payment of `operation`, `method` (charges) and `currency` may go here."""
        if not self.enabled or (operation == PAYOUT and not self.payouts):
            return False
        if self.currencies and currency not in self.currencies:
            return False
        return not (method and self.methods and method not in self.methods)


def all_builtin_names(routing: dict[str, list[str]]) -> list[str]:
    """Every provider the installation configures, in first-seen order."""
    return list(dict.fromkeys(name for names in routing.values() for name in names))


# The method families of a built-in provider that serves fewer than its adapter: the sandbox's
# cards provider takes no pay-by-bank (`pm_bank_redirect` goes to `sandbox-bank`).
BUILTIN_METHODS = {"sandbox-cards": ("card",)}


def builtin_account(name: str, priority: int) -> ProviderAccount:
    """A built-in account as a merchant has it before changing it."""
    return ProviderAccount(
        id=name,
        adapter=SANDBOX_ADAPTER,
        name=name,
        methods=BUILTIN_METHODS.get(name, ()),
        currencies=(),
        priority=priority,
        enabled=True,
        builtin=True,
    )


def merchant_accounts(
    routing: dict[str, list[str]], stored: list[ProviderAccount]
) -> list[ProviderAccount]:
    """A merchant's accounts: the built-in ones (as the merchant changed them, if it did) and its
    own, in priority order (ties: its own first, then by name)."""
    changed = {account.id: account for account in stored if account.builtin}
    builtin = [
        changed.get(name, builtin_account(name, priority))
        for priority, name in enumerate(all_builtin_names(routing), start=1)
    ]
    own = [account for account in stored if not account.builtin]
    return sorted([*builtin, *own], key=lambda a: (a.priority, a.builtin, a.name))


def candidates(
    routing: dict[str, list[str]],
    accounts: list[ProviderAccount],
    operation: str,
    currency: str,
    method: str | None = None,
) -> list[str]:
    """The ids of the accounts that may take the payment, in the order to try them.

    A built-in provider is a candidate only where the installation routes the operation and
    currency to it (`PAYSAGA_PROVIDER_ROUTING`), in that order unless the merchant set a priority.
    """
    routed = route(routing, operation, currency)
    eligible: list[ProviderAccount] = []
    for account in accounts:
        if account.builtin:
            if account.id not in routed:
                continue
            if not account.customized:
                account = replace(account, priority=routed.index(account.id) + 1)
        if account.serves(operation, method, currency):
            eligible.append(account)
    eligible.sort(key=lambda a: (a.priority, a.builtin, a.name))
    return [account.id for account in eligible]
