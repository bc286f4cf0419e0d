"""A Hub88-style seamless wallet: its requests, signature and statuses mapped onto wallet calls.

The aggregator calls the operator (POST, JSON) at `/user/balance`, `/transaction/bet`,
`/transaction/win` and `/transaction/rollback`, each body signed with the aggregator's RSA key
(RSA-SHA256, PKCS#1 v1.5, base64 in `X-Hub88-Signature`); the operator answers HTTP 200 with
`{user, status, request_uuid, currency, balance}`, signed with its own key. Amounts are integers
in 1/100,000 of the currency unit. Each of the aggregator's ids keeps its meaning here:

| Hub88 | wallet |
|---|---|
| `transaction_uuid` | `transaction_id` (the idempotency key, under `game_provider` "hub88") |
| `reference_transaction_uuid` | a win's or rollback's `bet_transaction_id` |
| `round`, `round_closed` | `round_id`, a win's `round_closed` |
| a win with `is_free` | a credit `free_spin_win` (free rounds take no bet) |
| a win with a `reward_uuid` | a credit `promo_win` |
| `user` | the customer id; `token`, the session that a bet must hold |

Pure functions: `wallet.adapters.hub88_app` does the HTTP.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field

from domain.money import CURRENCY_EXPONENTS
from wallet.models import ACCEPTED, Bet, Call, Credit, Decision, Rollback, Win

GAME_PROVIDER = "hub88"
SIGNATURE_HEADER = "X-Hub88-Signature"
UNITS_PER_CURRENCY_UNIT = 100_000

OK = "RS_OK"
UNKNOWN = "RS_ERROR_UNKNOWN"
INVALID_TOKEN = "RS_ERROR_INVALID_TOKEN"
INVALID_SIGNATURE = "RS_ERROR_INVALID_SIGNATURE"
WRONG_SYNTAX = "RS_ERROR_WRONG_SYNTAX"
WRONG_TYPES = "RS_ERROR_WRONG_TYPES"

STATUSES: dict[str, str] = {
    "insufficient_funds": "RS_ERROR_NOT_ENOUGH_MONEY",
    "customer_blocked": "RS_ERROR_USER_DISABLED",
    "customer_not_found": INVALID_TOKEN,
    "wrong_currency": "RS_ERROR_WRONG_CURRENCY",
    "duplicate_transaction": "RS_ERROR_DUPLICATE_TRANSACTION",
    "bet_not_found": "RS_ERROR_TRANSACTION_DOES_NOT_EXIST",
    "bet_rolled_back": "RS_ERROR_TRANSACTION_ROLLED_BACK",
    "bonus_max_bet": "RS_ERROR_BET_LIMIT_EXCEEDED",
    # Hub88 has no status of its own for these: its general one, "for cases without a special
    # error code" (the round or the bet is settled: nothing more is booked on it).
    "bet_settled": UNKNOWN,
    "round_closed": UNKNOWN,
}
"""The wallet's refusal codes as Hub88 statuses; any other refusal is RS_ERROR_UNKNOWN."""


class Hub88Request(BaseModel):
    """The fields the adapter reads; Hub88 sends more (meta, game_code...), kept for the hash."""

    model_config = ConfigDict(extra="allow")

    user: str = Field(min_length=1, max_length=64)
    request_uuid: str = Field(min_length=1, max_length=255)
    token: str | None = None


class Hub88Transaction(Hub88Request):
    transaction_uuid: str = Field(min_length=1, max_length=255)
    reference_transaction_uuid: str | None = Field(default=None, min_length=1, max_length=255)
    round: str | None = Field(default=None, min_length=1, max_length=255)
    round_closed: bool = False
    game_code: str = Field(default="unknown", min_length=1, max_length=255)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    amount: int = Field(default=0, ge=0, le=10**20)
    is_free: bool = False
    reward_uuid: str | None = None


class WrongAmount(ValueError):
    """An amount that is not a whole number of the currency's minor units."""


@dataclass(frozen=True)
class Session:
    """What a game session token stands for: who plays, in which currency."""

    customer_id: str
    currency: str


def to_minor(amount: int, currency: str) -> int:
    """Hub88 units (1/100,000 of the currency unit) as minor units."""
    per_minor = _units_per_minor(currency)
    if amount % per_minor:
        raise WrongAmount(f"{amount} is not a whole number of {currency} minor units")
    return amount // per_minor


def to_units(minor: int, currency: str) -> int:
    return minor * _units_per_minor(currency)


def _units_per_minor(currency: str) -> int:
    exponent: int = CURRENCY_EXPONENTS[currency]
    per_minor: int = UNITS_PER_CURRENCY_UNIT // 10**exponent
    return per_minor


def bet_call(merchant_id: str, request: Hub88Transaction, currency: str) -> Bet:
    return Bet(
        merchant_id,
        request.user,
        GAME_PROVIDER,
        request.transaction_uuid,
        request.game_code,
        request.round or request.transaction_uuid,
        to_minor(request.amount, currency),
        currency,
    )


def win_call(merchant_id: str, request: Hub88Transaction, currency: str) -> Win | Credit:
    """A win on its bet; a free-round or reward win (no bet behind it) is a credit."""
    if request.is_free or request.reward_uuid:
        return Credit(
            merchant_id,
            request.user,
            GAME_PROVIDER,
            request.transaction_uuid,
            "free_spin_win" if request.is_free else "promo_win",
            to_minor(request.amount, currency),
            currency,
            request.game_code,
            request.round,
        )
    return Win(
        merchant_id,
        request.user,
        GAME_PROVIDER,
        request.transaction_uuid,
        request.reference_transaction_uuid or "",
        to_minor(request.amount, currency),
        request.round_closed,
        currency,
    )


def rollback_call(merchant_id: str, request: Hub88Transaction) -> Rollback:
    return Rollback(
        merchant_id,
        request.user,
        GAME_PROVIDER,
        request.transaction_uuid,
        request.reference_transaction_uuid or "",
        request.currency,
    )


def response(
    request: Hub88Request, decision: Decision | None, currency: str, status: str | None = None
) -> dict[str, Any]:
    """Hub88's answer to a call: its status (`RS_OK` or the refusal's), and the balance (cash
    and bonus) after it, or now (a refusal carries the current balance, as Hub88 asks)."""
    balance = decision.answer.get("balance") if decision is not None else None
    if status is None:
        assert decision is not None
        status = OK if decision.outcome == ACCEPTED else STATUSES.get(decision.outcome, UNKNOWN)
    body: dict[str, Any] = {
        "user": request.user,
        "status": status,
        "request_uuid": request.request_uuid,
        "currency": currency,
    }
    if balance is not None and currency in CURRENCY_EXPONENTS:
        body["balance"] = to_units(balance["total"], currency)
    return body


def is_money_call(call: Call) -> bool:
    return isinstance(call, Bet | Win | Rollback | Credit)


# ---------------------------------------------------------------------- signatures


def sign(body: bytes, private_key_pem: bytes) -> str:
    """The body's RSA-SHA256 signature (PKCS#1 v1.5), base64, as `X-Hub88-Signature`."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("an RSA private key is needed")
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(body: bytes, signature: str | None, public_key_pem: bytes) -> bool:
    """Whether `signature` is the aggregator's over exactly these bytes."""
    if not signature:
        return False
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("an RSA public key is needed")
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True
