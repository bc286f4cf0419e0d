"""Provider accounts (ops): the installation's built-in providers and a merchant's own PSP
accounts, each with the methods, currencies and priority it is routed by, and its circuit
breaker's health (paysaga/store/provider_health.py, keyed by the account's id)."""

from __future__ import annotations

import secrets

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import MerchantView, OpsKey, Services, ServicesDep
from api.schemas import (
    ProviderAccount,
    ProviderAccountCreate,
    ProviderAccountList,
    ProviderAccountUpdate,
    ProviderHealth,
)
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.routing import method_family
from paysaga.store import MerchantStore
from paysaga.store.provider_health import ProviderBreakers, breaker_policy
from providers.accounts import (
    OWN_ACCOUNT_PREFIX,
    SANDBOX_ADAPTER,
    candidates,
    merchant_accounts,
)
from providers.accounts import (
    ProviderAccount as RoutedAccount,
)
from providers.adapter import AdapterConfig, Capabilities
from providers.base import ProviderConfigurationError
from providers.health import Health
from providers.registry import build_adapter

router = APIRouter(prefix="/v1/providers", tags=["providers"])


async def accounts_of(svc: Services, books: MerchantStore) -> list[RoutedAccount]:
    """The merchant's accounts, built-in and own, in priority order."""
    stored = [row.account() for row in await books.stored_provider_accounts()]
    return merchant_accounts(svc.settings.provider_routing, stored)


async def candidates_for(
    svc: Services,
    books: MerchantStore,
    operation: str,
    currency: str,
    payment_method: str | None = None,
) -> list[RoutedAccount]:
    """The accounts that may take a payment (a charge in `payment_method`, or a payout), in the
    order the saga tries them."""
    method = None if payment_method is None else method_family(payment_method).value
    accounts = await accounts_of(svc, books)
    order = candidates(svc.settings.provider_routing, accounts, operation, currency, method)
    by_id = {account.id: account for account in accounts}
    return [by_id[account_id] for account_id in order]


@router.get("", response_model=ProviderAccountList)
async def list_providers(
    svc: ServicesDep, books: MerchantView, _key: OpsKey
) -> ProviderAccountList:
    """The merchant's provider accounts, in routing order, with their health (ops scope)."""
    accounts = await accounts_of(svc, books)
    shown = await health_of(svc, [account.id for account in accounts])
    return ProviderAccountList(data=[view(a, shown[a.id]) for a in accounts])


@router.post("", status_code=201, response_model=ProviderAccount)
async def create_provider(
    body: ProviderAccountCreate, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> JSONResponse:
    """Add one of the merchant's own PSP accounts (ops scope). Its webhooks are to be sent to
    `/v1/webhooks/providers/{id}`."""
    if body.endpoint is not None and svc.settings.environment != "development":
        raise InvalidRequest("an account's endpoint can be set only in development")
    if body.name in {a.name for a in await accounts_of(svc, books) if a.builtin}:
        raise Conflict(f"{body.name!r} is a built-in provider", code="provider_exists")
    endpoint = body.endpoint or (svc.settings.psp_url if body.adapter == SANDBOX_ADAPTER else "")
    capabilities = await adapter_capabilities(
        svc, body.adapter, body.name, endpoint, body.credentials
    )
    methods = served(body.methods, capabilities.methods, "methods")
    currencies = served(body.currencies, capabilities.currencies, "currencies")
    account_id = OWN_ACCOUNT_PREFIX + secrets.token_hex(12)
    row = await books.create_provider_account(
        account_id,
        adapter=body.adapter,
        name=body.name,
        endpoint=body.endpoint,
        credentials=body.credentials,
        webhook_secret=body.webhook_secret,
        methods=methods,
        currencies=currencies,
        priority=body.priority,
        payouts=capabilities.payouts,
    )
    if row is None:
        raise Conflict(f"an account named {body.name!r} exists", code="provider_exists")
    detail = {"adapter": row.adapter, "name": row.name, "priority": row.priority}
    await books.record_ops_action(key.actor, "provider.create", row.id, detail)
    account = row.account()
    shown = await health_of(svc, [account.id])
    return JSONResponse(view(account, shown[account.id]).model_dump(mode="json"), status_code=201)


@router.patch("/{account_id}", response_model=ProviderAccount)
async def update_provider(
    account_id: str,
    body: ProviderAccountUpdate,
    svc: ServicesDep,
    books: MerchantView,
    key: OpsKey,
) -> ProviderAccount:
    """Enable or disable an account, move its priority, change what it serves or its
    credentials (ops scope). A disabled account takes no new payment; those it has go on."""
    current = next((a for a in await accounts_of(svc, books) if a.id == account_id), None)
    if current is None:
        raise NotFound(f"no provider account {account_id!r}", code="provider_not_found")
    sent = body.model_fields_set
    if current.builtin:
        if "credentials" in sent:
            raise InvalidRequest("a built-in provider's credentials are the installation's")
        capabilities = None
    else:
        stored = await svc.store.own_account_secrets(account_id)
        assert stored is not None and stored.row.merchant_id == books.merchant_id
        endpoint = stored.row.endpoint or (
            svc.settings.psp_url if stored.row.adapter == SANDBOX_ADAPTER else ""
        )
        credentials = body.credentials if body.credentials is not None else stored.credentials
        capabilities = await adapter_capabilities(
            svc, stored.row.adapter, stored.row.name, endpoint, credentials
        )
    methods = body.methods
    currencies = body.currencies
    if capabilities is not None:
        if methods is not None:
            methods = served(methods, capabilities.methods, "methods")
        if currencies is not None:
            currencies = served(currencies, capabilities.currencies, "currencies")
    if current.builtin:
        changed = RoutedAccount(
            id=current.id,
            adapter=current.adapter,
            name=current.name,
            methods=tuple(current.methods if methods is None else methods),
            currencies=tuple(current.currencies if currencies is None else currencies),
            priority=current.priority if body.priority is None else body.priority,
            enabled=current.enabled if body.enabled is None else body.enabled,
            builtin=True,
            payouts=current.payouts,
        )
        row = await books.save_builtin_account(changed)
    else:
        updated = await books.update_provider_account(
            account_id,
            enabled=body.enabled,
            priority=body.priority,
            methods=methods,
            currencies=currencies,
            credentials=body.credentials,
        )
        assert updated is not None
        row = updated
    detail = {field: getattr(body, field) for field in sorted(sent) if field != "credentials"}
    if "credentials" in sent:
        detail["credentials_changed"] = True
    await books.record_ops_action(key.actor, "provider.update", account_id, detail)
    return view(row.account(), (await health_of(svc, [account_id]))[account_id])


async def adapter_capabilities(
    svc: Services, adapter: str, name: str, endpoint: str, credentials: dict[str, str]
) -> Capabilities:
    """What the adapter serves, built as the worker will build it: an adapter that is not
    installed, or that refuses the credentials, is refused here rather than at the first payment."""
    async with httpx.AsyncClient() as http:
        try:
            config = AdapterConfig(
                name, endpoint, http, svc.settings.psp_timeout_seconds, credentials
            )
            return build_adapter(adapter, config).capabilities
        except ProviderConfigurationError as exc:
            raise InvalidRequest(str(exc), code="provider_misconfigured") from exc
        except Exception as exc:  # a plug-in's factory may refuse credentials in its own words
            raise InvalidRequest(
                f"adapter {adapter!r} refused the account: {type(exc).__name__}: {exc}",
                code="provider_misconfigured",
            ) from exc


def served(asked: list[str], offered: frozenset[str], what: str) -> list[str]:
    """The `asked` subset of what the adapter offers (empty: all of it, kept empty)."""
    unknown = sorted(set(asked) - offered)
    if unknown:
        raise InvalidRequest(
            f"the adapter does not serve the {what} {unknown}", code="provider_misconfigured"
        )
    return sorted(set(asked))


async def health_of(svc: Services, account_ids: list[str]) -> dict[str, Health]:
    """Each account's circuit breaker, as every process sees it."""
    return await ProviderBreakers(svc.pool, breaker_policy(svc.settings)).health_of(account_ids)


def view(account: RoutedAccount, health: Health) -> ProviderAccount:
    return ProviderAccount(
        id=account.id,
        adapter=account.adapter,
        name=account.name,
        methods=list(account.methods),
        currencies=list(account.currencies),
        priority=account.priority,
        enabled=account.enabled,
        builtin=account.builtin,
        health=ProviderHealth(
            state=health.state.value,
            failure_rate=health.failure_rate,
            calls=health.calls,
            opened_at=health.opened_at,
        ),
    )
