"""The Hub88-style wallet endpoints: an APIRouter an operator mounts in front of the wallet engine.

Every request's signature is checked against the aggregator's public key and every answer is
signed with the operator's key; every answer is HTTP 200 with a Hub88 status, as the aggregator
expects. Bets need a live session (`Sessions`, the operator's own: the token it gave the game);
wins and rollbacks are taken whatever the session, since they settle money already at stake.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from paysaga.store.wallet_views import WALLET_VIEW_SQL
from wallet.adapters import hub88
from wallet.adapters.hub88 import Hub88Request, Hub88Transaction, Session
from wallet.engine import WalletEngine
from wallet.models import Call


class Sessions(Protocol):
    """The operator's game sessions: the token it handed the game when it was launched."""

    async def session(self, token: str) -> Session | None: ...


@dataclass(frozen=True)
class Hub88Config:
    merchant_id: str  # the paysaga merchant whose wallet this aggregator plays on
    aggregator_public_key: bytes  # PEM: checks the aggregator's requests
    operator_private_key: bytes  # PEM: signs the answers
    sessions: Sessions


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def hub88_router(config: Hub88Config, engine: WalletEngine, pool: AsyncConnectionPool) -> APIRouter:
    """The four endpoints of Hub88's wallet API over `engine` (writes) and `pool` (balances)."""
    router = APIRouter(tags=["hub88"])
    merchant = config.merchant_id

    async def submit(request: Hub88Request, call: Call, currency: str) -> dict[str, Any]:
        decision = await engine.submit(call)
        answered = decision.answer.get("currency") or currency
        return hub88.response(request, decision, answered)

    async def balance(body: dict[str, Any]) -> dict[str, Any]:
        request = Hub88Request.model_validate(body)
        session = await config.sessions.session(request.token or "")
        if session is None or session.customer_id != request.user:
            return hub88.response(request, None, "", hub88.INVALID_TOKEN)
        total = await _wallet_total(pool, merchant, session)
        answer = hub88.response(request, None, session.currency, hub88.OK)
        return {**answer, "balance": hub88.to_units(total, session.currency)}

    async def bet(body: dict[str, Any]) -> dict[str, Any]:
        request = Hub88Transaction.model_validate(body)
        session = await config.sessions.session(request.token or "")
        if session is None or session.customer_id != request.user:
            return hub88.response(request, None, request.currency or "", hub88.INVALID_TOKEN)
        currency = request.currency or session.currency
        if request.is_free:  # a free round's bet takes nothing: its win is a credit
            total = await _wallet_total(pool, merchant, session)
            answer = hub88.response(request, None, currency, hub88.OK)
            return {**answer, "balance": hub88.to_units(total, currency)}
        return await submit(request, hub88.bet_call(merchant, request, currency), currency)

    async def win(body: dict[str, Any]) -> dict[str, Any]:
        request = Hub88Transaction.model_validate(body)
        if request.currency is None:
            return hub88.response(request, None, "", hub88.WRONG_SYNTAX)
        call = hub88.win_call(merchant, request, request.currency)
        return await submit(request, call, request.currency)

    async def rollback(body: dict[str, Any]) -> dict[str, Any]:
        request = Hub88Transaction.model_validate(body)
        session = await config.sessions.session(request.token or "")  # only for its currency
        currency = request.currency or (session.currency if session is not None else "")
        call = hub88.rollback_call(merchant, request)
        return await submit(request, call, currency)

    for path, handler in (
        ("/user/balance", balance),
        ("/transaction/bet", bet),
        ("/transaction/win", win),
        ("/transaction/rollback", rollback),
    ):
        router.add_api_route(path, _endpoint(config, handler), methods=["POST"])
    return router


def _endpoint(config: Hub88Config, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The signature check, the parsing errors as Hub88 statuses, the answer signed."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        if not hub88.verify(
            raw, request.headers.get(hub88.SIGNATURE_HEADER), config.aggregator_public_key
        ):
            answer = _bare(raw, hub88.INVALID_SIGNATURE)
        else:
            try:
                answer = await handler(json.loads(raw))
            except (ValidationError, json.JSONDecodeError, TypeError):
                answer = _bare(raw, hub88.WRONG_SYNTAX)
            except hub88.WrongAmount:
                answer = _bare(raw, hub88.WRONG_TYPES)
        content = json.dumps(answer, separators=(",", ":")).encode()
        signature = hub88.sign(content, config.operator_private_key)
        headers = {hub88.SIGNATURE_HEADER: signature}
        return Response(content, media_type="application/json", headers=headers)

    return endpoint


def _bare(raw: bytes, status: str) -> dict[str, Any]:
    """An answer to a request that could not be read: its ids echoed when they can be."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return {"user": body.get("user"), "status": status, "request_uuid": body.get("request_uuid")}


async def _wallet_total(pool: AsyncConnectionPool, merchant_id: str, session: Session) -> int:
    """The customer's cash and bonus in the session's currency, in minor units."""
    params = {
        "merchant_id": merchant_id,
        "customer_id": session.customer_id,
        "currency": session.currency,
    }
    async with pool.connection() as conn:
        row = await (await conn.execute(WALLET_VIEW_SQL, params)).fetchone()
    return int(row[4]) if row is not None else 0
