"""Merchants: created with their keys by the platform; each reads and sets its own webhook."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import MerchantView, OpsKey, PlatformKey, ServicesDep
from api.schemas import ApiKeyCreate, ApiKeyCreated, Merchant, MerchantCreate, MerchantUpdate
from domain.errors import InvalidRequest, NotFound
from domain.merchants import DEV_MERCHANT_ID
from paysaga.keys import issue_key, new_merchant_id
from paysaga.store import MerchantRow

router = APIRouter(tags=["merchants"])


def merchant_view(row: MerchantRow) -> Merchant:
    return Merchant(
        id=row.id, name=row.name, webhook_url=row.webhook_url, created_at=row.created_at
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
async def update_own_merchant(body: MerchantUpdate, books: MerchantView, key: OpsKey) -> Merchant:
    """Set where the merchant's webhooks go and their signing secret (ops scope); audited.

    A URL needs a secret to sign with (the development merchant falls back to the
    installation's)."""
    current = await books.merchant()
    sent = body.model_fields_set
    url = body.webhook_url if "webhook_url" in sent else current.webhook_url
    secret = body.webhook_secret if "webhook_secret" in sent else current.webhook_secret
    if url and not secret and books.merchant_id != DEV_MERCHANT_ID:
        raise InvalidRequest("a webhook_url needs a webhook_secret to sign the webhooks with")
    row = await books.set_webhook(url, secret)
    detail = {"webhook_url": url, "secret_changed": "webhook_secret" in sent}
    await books.record_ops_action(key.actor, "merchant.update", books.merchant_id, detail)
    return merchant_view(row)
