"""Merchants: created with their keys by the platform; each reads and sets its own webhook; keys
listed and revoked by the platform (any merchant's) or by an ops key (its own merchant's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from api.deps import ApiKey, MerchantView, OpsKey, PlatformKey, Services, ServicesDep
from api.lists import ListWindow
from api.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    ComplianceSettings,
    Merchant,
    MerchantCreate,
    MerchantUpdate,
)
from domain.errors import InvalidRequest, NotFound
from domain.merchants import DEV_MERCHANT_ID
from paysaga.keys import issue_key, new_merchant_id
from paysaga.store import ApiKeyRow, MerchantRow
from paysaga.store.aml import set_compliance_rules
from paysaga.store.pages import Window
from paysaga.webhook_egress import NOT_ALLOWED_CODE, webhook_url_refusal

router = APIRouter(tags=["merchants"])


# How long a replaced webhook secret keeps signing when the merchant does not say.
WEBHOOK_SECRET_GRACE_SECONDS = 24 * 3600


def merchant_view(row: MerchantRow) -> Merchant:
    grace_ends = row.previous_webhook_secret_expires_at
    return Merchant(
        id=row.id,
        name=row.name,
        webhook_url=row.webhook_url,
        created_at=row.created_at,
        previous_webhook_secret_expires_at=(
            grace_ends if grace_ends and grace_ends > datetime.now(UTC) else None
        ),
        compliance=ComplianceSettings.model_validate(row.compliance),
    )


@router.post("/v1/merchants", status_code=201, response_model=Merchant)
async def create_merchant(body: MerchantCreate, svc: ServicesDep, key: PlatformKey) -> Merchant:
    """A new merchant, with no key yet (platform keys only)."""
    row = await svc.store.create_merchant(new_merchant_id(), body.name)
    await svc.store.record_ops_action(None, key.actor, "merchant.create", row.id, {})
    return merchant_view(row)


@router.post("/v1/merchants/{merchant_id}/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_merchant_key(
    merchant_id: str, body: ApiKeyCreate, svc: ServicesDep, key: PlatformKey
) -> ApiKeyCreated:
    """A key of the merchant with these scopes (platform keys only); the secret is shown once."""
    name = body.name or f"created by {key.actor}"
    try:
        created = await issue_key(svc.store, merchant_id, name, list(body.scopes))
    except LookupError as exc:
        raise NotFound(f"no merchant {merchant_id}") from exc
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    detail = {"key_id": created.key_id, "scopes": created.row.scopes}
    await svc.store.record_ops_action(
        None, key.actor, "merchant.api_key.create", merchant_id, detail
    )
    return ApiKeyCreated(
        id=created.key_id, merchant_id=merchant_id, secret=created.secret, scopes=created.row.scopes
    )


@router.get("/v1/merchant", response_model=Merchant)
async def get_own_merchant(books: MerchantView) -> Merchant:
    """The merchant of the calling key."""
    return merchant_view(await books.merchant())


@router.patch("/v1/merchant", response_model=Merchant)
async def update_own_merchant(
    body: MerchantUpdate, books: MerchantView, key: OpsKey, svc: ServicesDep
) -> Merchant:
    """Set where the merchant's webhooks go and their signing secret (ops scope); audited.

    A URL needs a secret to sign with (the development merchant falls back to the
    installation's); in production it must be https to a public host (422
    `webhook_url_not_allowed`). A new secret signs at once; the one it replaces signs beside it
    for the grace period, so that the merchant's receiver can take either while it rolls over; a
    grace sent alone re-times the running one from now (0 ends it)."""
    current = await books.merchant()
    sent = body.model_fields_set
    if body.webhook_url is not None:
        production = svc.settings.environment == "production"
        if refusal := webhook_url_refusal(body.webhook_url, production):
            raise InvalidRequest(refusal, code=NOT_ALLOWED_CODE)
    url = body.webhook_url if "webhook_url" in sent else current.webhook_url
    secret = body.webhook_secret if "webhook_secret" in sent else current.webhook_secret
    if url and not secret and books.merchant_id != DEV_MERCHANT_ID:
        raise InvalidRequest("a webhook_url needs a webhook_secret to sign the webhooks with")
    if body.compliance is not None:
        await set_compliance_rules(svc.pool, books.merchant_id, body.compliance.model_dump())
    row = await books.set_webhook(
        url, secret, body.webhook_secret_grace_seconds, WEBHOOK_SECRET_GRACE_SECONDS
    )
    detail: dict[str, Any] = {
        "webhook_url": url,
        "secret_changed": "webhook_secret" in sent,
    }
    if body.compliance is not None:
        detail["compliance"] = body.compliance.model_dump()
    grace_ends = merchant_view(row).previous_webhook_secret_expires_at
    if grace_ends is not None or "webhook_secret_grace_seconds" in sent:
        detail["previous_secret_signs_until"] = grace_ends.isoformat() if grace_ends else None
    await books.record_ops_action(key.actor, "merchant.update", books.merchant_id, detail)
    return merchant_view(row)


def key_view(row: ApiKeyRow) -> ApiKeyView:
    assert row.merchant_id is not None  # only merchants' keys are listed through the API
    return ApiKeyView(
        id=row.id,
        merchant_id=row.merchant_id,
        name=row.name,
        prefix=row.prefix,
        scopes=row.scopes,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.get("/v1/merchants/{merchant_id}/api-keys", response_model=ApiKeyList)
async def list_merchant_keys(
    merchant_id: str,
    svc: ServicesDep,
    _key: PlatformKey,
    window: ListWindow,
) -> ApiKeyList:
    """The merchant's keys, revoked ones included, oldest first (platform keys only)."""
    if await svc.store.get_merchant(merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")
    return await _list_keys(svc, merchant_id, window)


@router.delete("/v1/merchants/{merchant_id}/api-keys/{key_id}", response_model=ApiKeyView)
async def revoke_merchant_key(
    merchant_id: str, key_id: str, svc: ServicesDep, key: PlatformKey
) -> ApiKeyView:
    """Revoke a key of the merchant (platform keys only): refused from the next request on."""
    return await _revoke_key(svc, key, merchant_id, key_id)


@router.get("/v1/merchant/api-keys", response_model=ApiKeyList)
async def list_own_keys(svc: ServicesDep, key: OpsKey, window: ListWindow) -> ApiKeyList:
    """The calling key's merchant's keys, revoked ones included, oldest first (ops scope)."""
    assert key.merchant_id is not None  # an ops key is a merchant's
    return await _list_keys(svc, key.merchant_id, window)


@router.delete("/v1/merchant/api-keys/{key_id}", response_model=ApiKeyView)
async def revoke_own_key(key_id: str, svc: ServicesDep, key: OpsKey) -> ApiKeyView:
    """Revoke a key of the calling key's merchant (ops scope): refused from the next request on."""
    assert key.merchant_id is not None  # an ops key is a merchant's
    return await _revoke_key(svc, key, key.merchant_id, key_id)


async def _list_keys(svc: Services, merchant_id: str, window: Window[str]) -> ApiKeyList:
    if window.cursor and await svc.store.get_merchant_api_key(merchant_id, window.cursor) is None:
        raise NotFound(f"no key {window.cursor} to page from", code="cursor_not_found")
    rows, has_more = await svc.store.list_merchant_api_keys(merchant_id, window)
    return ApiKeyList(data=[key_view(row) for row in rows], has_more=has_more)


async def _revoke_key(svc: Services, caller: ApiKey, merchant_id: str, key_id: str) -> ApiKeyView:
    """Revoke; audited (in the merchant's log when its ops key did it). Another merchant's key
    is answered as a missing one."""
    row = await svc.store.revoke_api_key(key_id, merchant_id)
    if row is None:
        raise NotFound(f"no key {key_id}")
    svc.key_cache.evict(key_id)  # this process at once; the others when its NOTIFY reaches them
    detail = {"merchant_id": merchant_id}
    await svc.store.record_ops_action(
        caller.merchant_id, caller.actor, "merchant.api_key.revoke", key_id, detail
    )
    return key_view(row)
