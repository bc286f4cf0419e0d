"""The game wallet: bets, wins, rollbacks, credits, the calls booked, the wallet view, bonuses,
blocking a customer.

Game calls go straight to the wallet engine (no workflow, no Idempotency-Key: the game
provider's `transaction_id` is the key). The engine records each call's answer with its postings;
this module only turns a decision into HTTP. A bonus's grant goes through the engine too, then
starts the bonus's expiry workflow; its forfeit is an update of that workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import IdempotencyKey, MerchantData, MerchantView, OpsKey, Services, ServicesDep
from api.game_calls import GAME_CALLS, GameCallRoute, decision_response
from api.idempotency import derived_id, request_fingerprint, run_once
from api.sagas import raise_if_not_signed, signed_decision
from api.schemas import (
    Bonus,
    BonusCreate,
    CustomerWithStatus,
    OpsReason,
    Wallet,
    WalletBetCreate,
    WalletCall,
    WalletCallList,
    WalletCreditCreate,
    WalletRollbackCreate,
    WalletTransaction,
    WalletWinCreate,
)
from domain import search_attributes as sa
from domain.bonuses import BonusInput, ForfeitRequest
from domain.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from domain.money import CURRENCY_EXPONENTS
from paysaga.store import MerchantStore
from paysaga.store.responsible import SELF_EXCLUDED, self_excluded
from wallet.errors import REFUSALS, BonusNotActive, CustomerNotFound
from wallet.models import (
    NO_BALANCE,
    Bet,
    Call,
    Credit,
    EndBonus,
    GrantBonus,
    Rollback,
    Win,
)

router = APIRouter(tags=["wallet"])

UPDATE_RPC_TIMEOUT = timedelta(seconds=15)


# ---------------------------------------------------------------------- game calls


EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def game_call(
    path: str, body_model: type[BaseModel], make_call: Callable[..., Call]
) -> Callable[[EndpointT], EndpointT]:
    """Register a game call: documented by FastAPI from the endpoint, answered by the lean
    handler of `api.game_calls` (the endpoint's body is `body_model`, the call `make_call`)."""
    GAME_CALLS[body_model] = make_call

    def register(endpoint: EndpointT) -> EndpointT:
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=WalletTransaction,
            route_class_override=GameCallRoute,
        )
        return endpoint

    return register


# The endpoints below document the calls (signature, docstring); GameCallRoute answers them.


@game_call("/v1/wallet/bets", WalletBetCreate, Bet)
async def place_bet(body: WalletBetCreate, svc: ServicesDep, books: MerchantData) -> Response:
    """Take a bet: available cash first, then bonus."""
    call = Bet(books.merchant_id, **body.model_dump())
    return decision_response(await svc.wallet.submit(call))


@game_call("/v1/wallet/wins", WalletWinCreate, Win)
async def pay_win(body: WalletWinCreate, svc: ServicesDep, books: MerchantData) -> Response:
    """Pay a win on a bet, split as the bet was funded; a closing win settles the round."""
    call = Win(books.merchant_id, **body.model_dump())
    return decision_response(await svc.wallet.submit(call))


@game_call("/v1/wallet/rollbacks", WalletRollbackCreate, Rollback)
async def roll_back_bet(
    body: WalletRollbackCreate, svc: ServicesDep, books: MerchantData
) -> Response:
    """Cancel a bet: its money returns where it came from (nothing, for a bet never seen)."""
    call = Rollback(books.merchant_id, **body.model_dump())
    return decision_response(await svc.wallet.submit(call))


@router.post("/v1/wallet/credits", response_model=WalletTransaction)
async def pay_credit(body: WalletCreditCreate, svc: ServicesDep, books: MerchantData) -> Response:
    """Pay a win with no bet (free spins, promotion, jackpot, tournament) from promotions."""
    if await books.get_customer(body.customer_id) is None:  # before its wallet is opened
        raise CustomerNotFound(f"no customer {body.customer_id}", balance=NO_BALANCE)
    call = Credit(books.merchant_id, **body.model_dump())
    return decision_response(await svc.wallet.submit(call))


@router.get("/v1/wallet/transactions", response_model=WalletCallList)
async def list_wallet_calls(
    books: MerchantView,
    customer_id: Annotated[str, Query(min_length=1, max_length=64)],
    round_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    game_provider: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[str | None, Query(pattern=r"^wtx_[0-9]{1,18}$")] = None,
) -> WalletCallList:
    """The customer's booked game calls with their answers, in booking order (reconciliation);
    pass the last `id` as `starting_after` for the next page."""
    after = int(starting_after.removeprefix("wtx_")) if starting_after else None
    rows, has_more = await books.wallet_transactions(
        customer_id, round_id=round_id, game_provider=game_provider, limit=limit, after=after
    )
    data = [WalletCall.model_validate({**asdict(row), "id": f"wtx_{row.seq}"}) for row in rows]
    return WalletCallList(data=data, has_more=has_more)


# ---------------------------------------------------------------------- the wallet view


@router.get("/v1/customers/{customer_id}/wallet", response_model=Wallet)
async def get_wallet(
    customer_id: str,
    books: MerchantView,
    currency: Annotated[
        str,
        Query(
            pattern=r"^[A-Z]{3}$",
            json_schema_extra={"enum": sorted(CURRENCY_EXPONENTS)},
            description="uppercase ISO 4217 code of a supported currency",
        ),
    ],
) -> Wallet:
    """The customer's game wallet in a currency: cash, bonus, total, wagering left."""
    if currency not in CURRENCY_EXPONENTS:
        raise InvalidRequest(f"currency {currency} is not supported")
    row = await books.wallet_view(customer_id, currency)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    return Wallet.model_validate(row, from_attributes=True)


# ---------------------------------------------------------------------- bonuses


@router.post("/v1/customers/{customer_id}/bonuses", status_code=201, response_model=Bonus)
async def grant_bonus(
    customer_id: str,
    body: BonusCreate,
    request: Request,
    svc: ServicesDep,
    books: MerchantData,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Grant a bonus from the merchant's bonus funding; it expires by a durable timer."""
    fingerprint = request_fingerprint(request.url.path, body)

    async def grant() -> Bonus:
        customer = await books.get_customer(customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id}")
        if self_excluded(customer.self_excluded_until):
            raise Conflict(f"customer {customer_id} is self-excluded", code=SELF_EXCLUDED)
        expires_at = datetime.now(UTC) + timedelta(seconds=body.expires_in_seconds)
        call = GrantBonus(
            books.merchant_id,
            customer_id,
            derived_id("bon_", books.merchant_id, idempotency_key, fingerprint),
            body.amount,
            body.currency,
            body.wagering_multiplier,
            expires_at,
            body.max_bet,
        )
        decision = await svc.wallet.submit(call)
        if not decision.accepted:
            refusal = REFUSALS[decision.outcome]
            raise refusal(decision.answer["detail"], balance=decision.answer["balance"])
        bonus = Bonus.model_validate(decision.answer)
        await start_bonus_timer(svc.temporal, svc.settings.task_queue, books.merchant_id, bonus)
        return bonus

    return await run_once(
        books, svc.settings.idempotency_key_ttl_hours, idempotency_key, fingerprint, 201, grant
    )


async def start_bonus_timer(
    temporal: Client, task_queue: str, merchant_id: str, bonus: Bonus
) -> WorkflowHandle[Any, str] | None:
    """Start the bonus's expiry workflow (id: the bonus id); its handle, or None if an earlier
    attempt started it."""
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.MERCHANT_ID, merchant_id),
            SearchAttributePair(sa.CUSTOMER_ID, bonus.customer_id),
            SearchAttributePair(sa.CURRENCY, bonus.currency),
            SearchAttributePair(sa.AMOUNT_MINOR, bonus.amount),
        ]
    )
    try:
        return await temporal.start_workflow(
            "Bonus",
            bonus_input(merchant_id, bonus),
            id=bonus.id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            static_summary=bonus_summary(bonus),
            result_type=str,
        )
    except WorkflowAlreadyStartedError:
        return None  # the first attempt of this request started it
    except RPCError as exc:
        raise ServiceUnavailable(f"could not start the bonus's workflow: {exc}") from exc


def bonus_input(merchant_id: str, bonus: Bonus) -> BonusInput:
    """What the bonus's workflow starts with."""
    return BonusInput(
        bonus.id,
        merchant_id,
        bonus.customer_id,
        bonus.currency,
        bonus.amount,
        bonus.expires_at.isoformat(),
    )


def bonus_summary(bonus: Bonus) -> str:
    """The one-line summary an operator reads in the Temporal UI."""
    return (
        f"bonus of {bonus.amount} {bonus.currency} minor units for {bonus.customer_id},"
        f" expires {bonus.expires_at.isoformat()}"
    )


@router.get("/v1/bonuses/{bonus_id}", response_model=Bonus)
async def get_bonus(bonus_id: str, books: MerchantView) -> Bonus:
    """One bonus: while active, `remaining` is the customer's bonus balance."""
    row = await books.get_bonus(bonus_id)
    if row is None:
        raise NotFound(f"no bonus {bonus_id}")
    return Bonus.model_validate(row, from_attributes=True)


@router.post("/v1/bonuses/{bonus_id}/forfeit", response_model=Bonus)
async def forfeit_bonus(
    bonus_id: str, body: OpsReason, svc: ServicesDep, books: MerchantView, key: OpsKey
) -> Bonus:
    """An operator takes an active bonus back (ops scope); what remains returns to the funding."""
    row = await books.get_bonus(bonus_id)
    if row is None:
        raise NotFound(f"no bonus {bonus_id}")
    if row.status == "active":
        await _forfeit(
            svc, books, row.customer_id, bonus_id, ForfeitRequest(body.reason, key.actor)
        )
        detail = {"reason": body.reason, "key_name": key.name}
        await books.record_ops_action(key.actor, "bonus.forfeit", bonus_id, detail)
        row = await books.get_bonus(bonus_id)
        assert row is not None
    if row.status != "forfeited":
        state = "expiring" if row.status == "active" else f"{row.status} already"
        raise BonusNotActive(f"bonus {bonus_id} is {state}")
    return Bonus.model_validate(row, from_attributes=True)


async def _forfeit(
    svc: Services, books: MerchantStore, customer_id: str, bonus_id: str, request: ForfeitRequest
) -> None:
    """The forfeit update of the bonus's workflow; straight through the engine if it has none
    (its start failed and was never retried), so that an operator is never stuck."""
    handle = svc.temporal.get_workflow_handle(bonus_id)
    try:
        await handle.execute_update(
            "forfeit",
            signed_decision(svc, bonus_id, "forfeit", request),
            rpc_timeout=UPDATE_RPC_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise_if_not_signed(exc)
        return  # refused: the bonus is expiring
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise ServiceUnavailable("the bonus's workflow did not answer in time; retry") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.FAILED_PRECONDITION:
            return  # the workflow has ended: the bonus with it
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable("the bonus's workflow did not answer; retry") from exc
        call = EndBonus(books.merchant_id, customer_id, bonus_id, "forfeited", request.reason)
        await svc.wallet.submit(call)


# ---------------------------------------------------------------------- blocking a customer


@router.post("/v1/customers/{customer_id}/block", response_model=CustomerWithStatus)
async def block_customer(
    customer_id: str, body: OpsReason, books: MerchantView, key: OpsKey
) -> CustomerWithStatus:
    """Refuse the customer's bets from now on; its wins and rollbacks are still taken (ops)."""
    return await _set_status(books, key.actor, key.name, customer_id, "blocked", body.reason)


@router.post("/v1/customers/{customer_id}/unblock", response_model=CustomerWithStatus)
async def unblock_customer(
    customer_id: str, body: OpsReason, books: MerchantView, key: OpsKey
) -> CustomerWithStatus:
    """Take the customer's bets again (ops)."""
    return await _set_status(books, key.actor, key.name, customer_id, "active", body.reason)


async def _set_status(
    books: MerchantStore, actor: str, key_name: str, customer_id: str, status: str, reason: str
) -> CustomerWithStatus:
    row = await books.set_customer_status(customer_id, status)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    action = "customer.block" if status == "blocked" else "customer.unblock"
    await books.record_ops_action(
        actor, action, customer_id, {"reason": reason, "key_name": key_name}
    )
    return CustomerWithStatus.model_validate(row, from_attributes=True)
