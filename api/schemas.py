"""Request and response bodies of the public API (names fixed by PRODUCT.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from domain.money import CURRENCY_EXPONENTS

# The schema states what the validators below enforce: a currency paysaga supports, a provider
# it knows (any other answers 422, which a client should be able to tell from the schema).
Currency = Field(
    pattern=r"^[A-Z]{3}$",
    description="uppercase ISO 4217 code of a supported currency",
    examples=["EUR"],
    json_schema_extra={"enum": list[JsonValue](sorted(CURRENCY_EXPONENTS))},
)
MinorUnits = Field(gt=0, le=10**15, strict=True, description="integer amount in minor units")


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerCreate(StrictBody):
    external_id: str = Field(min_length=1, max_length=255)
    full_name: str = Field(min_length=1, max_length=200)
    birth_date: date = Field(description="YYYY-MM-DD")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2", examples=["DE"])

    @field_validator("birth_date", mode="before")
    @classmethod
    def iso_date_only(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("birth_date must be a YYYY-MM-DD string")
        return value


class Customer(BaseModel):
    id: str
    external_id: str
    full_name: str
    birth_date: date
    country: str
    kyc_status: str
    status: Literal["active", "blocked"] = "active"  # a blocked customer places no bets
    self_excluded_until: datetime | None = Field(
        default=None,
        description="the end of the customer's self-exclusion (9999-12-31: permanent); until"
        " then no deposit, bet or bonus",
    )
    created_at: datetime


class Balance(BaseModel):
    currency: str
    posted: int
    held: int
    available: int
    receivable: int = Field(
        default=0,
        description="what the customer owes the merchant (a chargeback the wallet could not"
        " cover); while above 0 withdrawals fail `customer_in_debt` and deposits repay it first",
    )


class BalanceList(BaseModel):
    data: list[Balance]


# An http(s) URL every client parses as written: an IPv4 address or a DNS name whose last label
# starts with a letter (no credentials, no IPv6 literal), a port that exists, then printable ASCII
# (percent-encode the rest).
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HOST = rf"(?:(?:{_OCTET}\.){{3}}{_OCTET}|(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*\.?)"
HTTP_URL_PATTERN = rf"^https?://{_HOST}(?::{_PORT})?(?:[/?#][\x21-\x7e]*)?$"
_HTTP_URL = TypeAdapter(AnyHttpUrl)


def _usable_url(url: str | None, name: str) -> str | None:
    """The pattern (kept for the OpenAPI document) and a real URL parser, both pydantic's and
    httpx's, must take it; it is kept as the merchant wrote it."""
    if url is not None:
        try:
            _HTTP_URL.validate_python(url)
            httpx.URL(url)
        except (ValidationError, httpx.InvalidURL) as exc:
            raise ValueError(f"{name} is not a URL an HTTP client can use") from exc
    return url


def _supported(currency: str) -> str:
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"currency {currency} is not supported")
    return currency


def _supported_or_none(currency: str | None) -> str | None:
    return None if currency is None else _supported(currency)


class DepositCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    amount: int = MinorUnits
    currency: str = Currency
    payment_method: str = Field(min_length=1, max_length=64, examples=["pm_ok"])
    provider: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        examples=["sandbox-cards"],
        description="a provider account's id or name (`GET /v1/providers`) to charge at, and no"
        " other; default: routing over the merchant's accounts",
    )
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        examples=["https://shop.example/deposits/done"],
        description="where the customer comes back after an authentication the provider asks"
        " for (3-D Secure, the bank's approval); its query gains `payment_id`. https in"
        " production (http in development); echoed in `next_action`",
    )

    _currency = field_validator("currency")(_supported)

    @field_validator("return_url")
    @classmethod
    def return_url_parses(cls, url: str | None) -> str | None:
        return _usable_url(url, "return_url")


class RoutingCandidate(BaseModel):
    id: str = Field(description="the provider account")
    priority: int = Field(description="its place in the merchant's priority order")


class PaymentRouting(BaseModel):
    """Why the payment went where it did, decided when it was created."""

    reason: Literal["requested", "priority", "success_rate", "exploration"] = Field(
        description="why the first candidate is first: the merchant named it (`requested`), its"
        " priority (`priority`), an account before it had an authorization rate well below a"
        " peer's and was moved later (`success_rate`), or a random eligible account was tried"
        " first to keep every rate known (`exploration`)"
    )
    method: str | None = Field(
        description="the payment method family the rates are of (`card`, `bank`)",
        examples=["card"],
    )
    candidates: list[RoutingCandidate] = Field(
        description="the accounts in the order they are tried (failover only when one certainly"
        " did not process the payment)"
    )
    rates: dict[str, float] = Field(
        description="recent authorization rates (approved / approved + declined) by account, of"
        " the accounts with enough attempts to be judged"
    )


class RedirectToUrl(BaseModel):
    url: str = Field(description="the provider's page where the customer authenticates")
    return_url: str | None = Field(
        description="where the provider sends the customer back (the deposit's `return_url`)"
    )


class NextAction(BaseModel):
    """What the customer must do for a payment in `requires_action`."""

    type: Literal["redirect_to_url"]
    redirect_to_url: RedirectToUrl


class Payment(BaseModel):
    id: str
    kind: Literal["deposit", "withdrawal", "transfer"]
    status: str
    customer_id: str
    amount: int
    currency: str
    provider: str | None
    failure_code: str | None
    failure_reason: str | None = None
    routing: PaymentRouting | None = Field(
        default=None,
        description="why it went to its providers in that order (deposits; null for withdrawals"
        " and transfers, which follow the priority order)",
    )
    next_action: NextAction | None = Field(
        default=None,
        description="while `requires_action`: send the customer to `redirect_to_url.url`; the"
        " provider's outcome then moves the payment on",
    )
    review_reasons: list[str] | None = Field(
        default=None,
        description="while or after `requires_review`: the rules that sent it there"
        " (`large_amount`, `low_wagering`, `structuring`, `edd_required`)",
    )
    created_at: datetime
    updated_at: datetime


class PaymentList(BaseModel):
    data: list[Payment]
    has_more: bool


class Probe(BaseModel):
    status: Literal["ok", "unavailable"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    temporal: str


class WithdrawalCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    amount: int = MinorUnits
    currency: str = Currency
    destination: str = Field(min_length=1, max_length=128, examples=["pm_ok"])

    _currency = field_validator("currency")(_supported)


class ReviewCreate(StrictBody):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=500)


class ResolveCreate(StrictBody):
    outcome: Literal["succeeded", "failed"]
    reason: str | None = Field(default=None, max_length=500)


class QuoteCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    source_currency: str = Currency
    target_currency: str = Currency
    source_amount: int = MinorUnits
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=3600, description="shorter than the default validity if given"
    )

    _source = field_validator("source_currency")(_supported)
    _target = field_validator("target_currency")(_supported)


class Quote(BaseModel):
    id: str
    customer_id: str
    source_currency: str
    target_currency: str
    rate: str = Field(description="decimal string: target major units per source major unit")
    source_amount: int
    fee: int = Field(description="minor units of the source currency, included in source_amount")
    target_amount: int
    expires_at: datetime
    used: bool


class InternalBeneficiary(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)


class ExternalBeneficiary(StrictBody):
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    account: str = Field(min_length=1, max_length=128, examples=["pm_ok"])


class TransferCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    quote_id: str = Field(min_length=1, max_length=64)
    beneficiary: InternalBeneficiary | ExternalBeneficiary


WEEK_SECONDS = 7 * 24 * 3600


class MerchantCreate(StrictBody):
    name: str = Field(min_length=1, max_length=200)


class ComplianceSettings(StrictBody):
    """The merchant's AML monitoring rules, each off (0) by default; thresholds in EUR."""

    min_wagering_before_withdrawal: float = Field(
        default=0,
        ge=0,
        le=1000,
        strict=True,
        allow_inf_nan=False,
        description="a withdrawal while the customer's settled bets since their last withdrawal"
        " are below this multiple of their deposits since then goes to review (`low_wagering`)",
    )
    structuring_deposits: int = Field(
        default=0,
        ge=0,
        le=1000,
        strict=True,
        description="this many deposits within 24 hours, each within 10 % under the review"
        " threshold, send the next withdrawal to review (`structuring`)",
    )
    edd_threshold_eur: int = Field(
        default=0,
        ge=0,
        le=10**12,
        strict=True,
        description="deposits of 30 days above this (EUR) need enhanced due diligence before"
        " the next withdrawal (`edd_required`)",
    )


class Merchant(BaseModel):
    """A merchant: the owner of its customers, payments, events and keys."""

    id: str
    name: str
    webhook_url: str | None = None  # the secret is never shown
    created_at: datetime
    # While a rotated-out secret still signs beside the new one: when it stops.
    previous_webhook_secret_expires_at: datetime | None = None
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)


class MerchantUpdate(StrictBody):
    """Where the merchant's webhooks go and the secret they are signed with; omitted: unchanged,
    null: removed (no URL: no webhooks, the events stay in the feed)."""

    webhook_url: str | None = Field(default=None, max_length=2048, pattern=HTTP_URL_PATTERN)
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=255)
    # How long, from now, the secret being replaced keeps signing beside the new one (default
    # 24 h; 0: not at all, e.g. when it leaked). Without a new secret: re-times the running
    # grace (0 ends it once the receivers have rolled over).
    webhook_secret_grace_seconds: float | None = Field(
        default=None, ge=0, le=WEEK_SECONDS, strict=True, allow_inf_nan=False
    )
    compliance: ComplianceSettings | None = None  # the AML monitoring rules; omitted: unchanged

    @field_validator("webhook_url")
    @classmethod
    def url_parses(cls, url: str | None) -> str | None:
        return _usable_url(url, "webhook_url")


class ApiKeyCreate(StrictBody):
    """`payments` moves money and reads; `ops` reads and takes the operator's actions (reviews,
    resolutions, disputes, blocks, the merchant's settings) but moves no money on its own."""

    scopes: list[Literal["payments", "ops"]] = Field(min_length=1, max_length=2)
    name: str = Field(default="", max_length=200)


class ApiKeyCreated(BaseModel):
    """A new key; `secret` is shown in this answer only."""

    id: str
    merchant_id: str
    secret: str
    scopes: list[str]


class ApiKeyView(BaseModel):
    """A key as listed: never its secret, only the secret's first characters (`prefix`)."""

    id: str
    merchant_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    data: list[ApiKeyView]
    has_more: bool


class Event(BaseModel):
    """A change of one of the merchant's objects; `sequence` numbers them from 1 with no gap."""

    id: str
    sequence: int
    type: str
    created: int  # Unix seconds
    data: dict[str, Any]


class EventList(BaseModel):
    data: list[Event]
    has_more: bool


# ---------------------------------------------------------------------- the game wallet

GameProvider = Field(
    pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    description="the game provider (aggregator) that sends the call; with `transaction_id`, the"
    " call's idempotency key",
    examples=["pragmatic"],
)
TransactionId = Field(min_length=1, max_length=255, description="the game provider's id")
GameText = Field(min_length=1, max_length=255)
OptionalCurrency = Field(
    default=None,
    pattern=r"^[A-Z]{3}$",
    description="checked against the bet's currency; names the balance to answer when the bet is"
    " unknown",
    json_schema_extra={"enum": list[JsonValue]([*sorted(CURRENCY_EXPONENTS), None])},
)


class WalletBetCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    game_id: str = GameText
    round_id: str = GameText
    amount: int = MinorUnits
    currency: str = Currency

    _currency = field_validator("currency")(_supported)


class WalletWinCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    bet_transaction_id: str = TransactionId
    amount: int = Field(ge=0, le=10**15, strict=True, description="minor units; 0 settles a loss")
    round_closed: bool = Field(default=False, strict=True)
    currency: str | None = OptionalCurrency

    _currency = field_validator("currency")(_supported_or_none)


class WalletRollbackCreate(StrictBody):
    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    bet_transaction_id: str = TransactionId
    currency: str | None = OptionalCurrency

    _currency = field_validator("currency")(_supported_or_none)


CreditType = Literal["free_spin_win", "promo_win", "jackpot_win", "tournament_win"]


class WalletCreditCreate(StrictBody):
    """A win with no bet (free spins, a promotion, a jackpot, a tournament), paid into cash from
    the merchant's promotions account."""

    customer_id: str = Field(min_length=1, max_length=64)
    game_provider: str = GameProvider
    transaction_id: str = TransactionId
    type: CreditType
    amount: int = MinorUnits
    currency: str = Currency
    game_id: str | None = Field(default=None, min_length=1, max_length=255)
    round_id: str | None = Field(default=None, min_length=1, max_length=255)

    _currency = field_validator("currency")(_supported)


class WalletBalance(BaseModel):
    cash: int
    bonus: int
    total: int


class WalletTransaction(BaseModel):
    """A bet, win or rollback as taken: its parts from (bets) or to (wins, rollbacks) cash and
    bonus, and the customer's balance after it."""

    transaction_id: str
    type: Literal["bet", "win", "rollback"] | CreditType
    amount: int
    currency: str | None  # none only for a rollback of an unseen bet of a multi-currency customer
    cash_part: int
    bonus_part: int
    balance: WalletBalance
    customer_id: str
    game_provider: str
    bet_transaction_id: str | None
    round_id: str | None


class Wallet(BaseModel):
    """A customer's game wallet in one currency: `cash` is what a bet can take (posted - held)."""

    customer_id: str
    currency: str
    cash: int
    bonus: int
    total: int
    wagering_remaining: int


class BonusCreate(StrictBody):
    amount: int = MinorUnits
    currency: str = Currency
    wagering_multiplier: int = Field(
        ge=0, le=1000, strict=True, description="wagering required = amount x multiplier"
    )
    expires_in_seconds: int = Field(ge=1, le=366 * 86_400, strict=True)
    max_bet: int | None = Field(
        default=None,
        gt=0,
        le=10**15,
        strict=True,
        description="minor units: a bet drawing on the bonus above it is refused bonus_max_bet",
    )

    _currency = field_validator("currency")(_supported)


class Bonus(BaseModel):
    id: str
    customer_id: str
    status: Literal["active", "completed", "expired", "forfeited"]
    amount: int
    currency: str
    remaining: int
    wagering_required: int
    wagering_remaining: int
    expires_at: datetime
    max_bet: int | None = None


class WalletCall(BaseModel):
    """A game call as booked under its transaction id, with the answer it was given (a
    refusal's answer is its problem's `code`, `detail` and `balance`)."""

    id: str = Field(description="`wtx_` and the booking's sequence number: the cursor")
    transaction_id: str
    game_provider: str
    customer_id: str
    type: Literal["bet", "win", "rollback"] | CreditType
    outcome: str = Field(description="`accepted`, or the refusal's code")
    amount: int
    currency: str | None
    cash_part: int
    bonus_part: int
    bet_transaction_id: str | None
    round_id: str | None
    answer: dict[str, JsonValue]
    created_at: datetime


class WalletCallList(BaseModel):
    data: list[WalletCall]
    has_more: bool


class OpsReason(StrictBody):
    """Why an operator acts (kept in the ops audit trail)."""

    reason: str = Field(min_length=1, max_length=500)


class CustomerWithStatus(Customer):
    """A customer and its wallet status: `blocked` customers place no bets."""

    status: Literal["active", "blocked"]


class RefundCreate(StrictBody):
    """A refund of (part of) a succeeded deposit."""

    amount: int | None = Field(
        default=None,
        gt=0,
        le=10**15,
        strict=True,
        description="integer amount in minor units; default: what is left to refund",
    )
    reason: str | None = Field(default=None, max_length=500)


class Refund(BaseModel):
    """A refund; its id is its Temporal workflow id. `failure_code` `canceled`: canceled from
    the Temporal UI before the refund was sent to the provider."""

    id: str
    payment_id: str
    amount: int
    currency: str
    status: Literal["processing", "requires_intervention", "succeeded", "failed"]
    failure_code: str | None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class RefundList(BaseModel):
    data: list[Refund]
    has_more: bool


class Dispute(BaseModel):
    """A chargeback of a deposit; its id is its Temporal workflow id. `receivable`: the part
    of `amount` the customer's wallet could not cover, booked as the customer's debt."""

    id: str
    payment_id: str
    customer_id: str
    amount: int
    currency: str
    fee: int
    reason: str
    status: Literal["needs_response", "under_review", "requires_intervention", "won", "lost"]
    evidence_due_by: datetime
    receivable: int
    created_at: datetime
    updated_at: datetime


class DisputeList(BaseModel):
    data: list[Dispute]
    has_more: bool


class DisputeEvidence(StrictBody):
    """The merchant's evidence against a dispute, forwarded to the provider."""

    text: str = Field(min_length=1, max_length=20_000)


# ---------------------------------------------------------------------- provider accounts

AccountName = Field(
    min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$", examples=["stripe-eu"]
)
MethodFamily = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Credentials = Field(
    max_length=20,
    description='the adapter\'s credentials, e.g. `{"secret_key": "sk_test_..."}`: sealed'
    " at rest, never shown again",
)


class ProviderAccountCreate(StrictBody):
    """A merchant's own PSP account: the adapter (an installed `paysaga.providers` entry point),
    its credentials and webhook secret, what it serves (empty: all its adapter serves), and its
    place in routing (1 first)."""

    adapter: str = Field(min_length=1, max_length=64, examples=["stripe"])
    name: str = AccountName
    credentials: dict[
        Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=4096)]
    ] = Credentials
    webhook_secret: str = Field(min_length=16, max_length=255)
    methods: list[MethodFamily] = Field(default_factory=list, max_length=16, examples=[["card"]])
    currencies: list[CurrencyCode] = Field(default_factory=list, max_length=200)
    priority: int = Field(default=10, ge=1, le=1000, strict=True)
    # The PSP's base URL; development only (in production each adapter calls its PSP's own).
    endpoint: str | None = Field(default=None, max_length=2048, pattern=HTTP_URL_PATTERN)


class ProviderAccountUpdate(StrictBody):
    """What changes; omitted: unchanged. `credentials` only on a merchant's own account."""

    enabled: bool | None = Field(default=None, strict=True)
    priority: int | None = Field(default=None, ge=1, le=1000, strict=True)
    methods: list[MethodFamily] | None = Field(default=None, max_length=16)
    currencies: list[CurrencyCode] | None = Field(default=None, max_length=200)
    credentials: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=4096)]] | None
    ) = Field(default=None, max_length=20)


class ProviderHealth(BaseModel):
    """The account's circuit breaker over its last calls (`calls` of them, `failure_rate` of
    them unavailable); `opened_at` while it is open or half-open."""

    state: Literal["closed", "open", "half_open"]
    failure_rate: float
    calls: int
    opened_at: datetime | None = None


class ProviderAccount(BaseModel):
    """A provider account payments are routed over; empty `methods` or `currencies`: all its
    adapter serves. Credentials and webhook secret are never shown."""

    id: str
    adapter: str
    name: str
    methods: list[str]
    currencies: list[str]
    priority: int
    enabled: bool
    builtin: bool
    health: ProviderHealth


class ProviderAccountList(BaseModel):
    data: list[ProviderAccount]
