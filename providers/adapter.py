"""The provider adapter interface: what a PSP adapter implements, declares and promises.

An adapter connects paysaga to one PSP. It is a Python package that registers a factory under
the entry-point group `paysaga.providers` (see `providers.registry`):

    [project.entry-points."paysaga.providers"]
    mypsp = "mypsp.adapter:build_adapter"   # a callable: AdapterConfig -> ProviderAdapter

The factory gets an `AdapterConfig` (the account's name, the PSP's endpoint, its credentials,
a shared httpx client and a time-out) and returns an object that satisfies `ProviderAdapter`:

- `charge`, `payout`, `refund`: each carries an idempotency key (the payment id and step). The
  same key sent twice must make one operation at the PSP, never two: sagas retry.
- `status(idempotency_key)`: the operation's outcome as the PSP records it, `not_processed` if it
  has no record. Sagas resolve every `unknown` or `pending` outcome with it.
- customer authentication (3-D Secure, the bank's approval): a charge that waits for the
  customer answers `pending` with `requires_action=True`; `authenticate(idempotency_key,
  return_url)` then gives the `url` to send the customer to (and, read again, how it ended); the
  outcome comes as the charge's own webhook or `status`: `succeeded`, or `declined` (with the
  decline code `AUTHENTICATION_FAILED` when the customer failed it);
  `cancel_authorization(idempotency_key)` withdraws a charge still waiting for its customer
  (an abandoned or cancelled payment) and answers the charge's state after it. Raise
  `CapabilityAbsent` from both if the PSP has none (and declare `authentication=False`).
- `verify_webhook` over the RAW body bytes as received (never re-serialized JSON), then
  `parse_webhook` into paysaga's `ProviderEvent` or `ProviderDisputeEvent`. A PSP whose dispute
  events do not name paysaga's payment may also offer the optional
  `async complete_dispute_event(event) -> ProviderDisputeEvent`, which fills `reference` and
  `charge_idempotency_key` from its API; the webhook route calls it when it is there.
- `settlement_report`: the money the PSP says moved, for reconciliation.
- `submit_dispute_evidence`, `accept_dispute`, `dispute_status`: answering chargebacks.
- `capabilities`: the methods, currencies and operations it serves.

Amounts are integers in minor units of the currency's ISO 4217 exponent (`domain.money`):
JPY 1500 is 1,500 yen, EUR 1500 is 15.00 euros, KWD 1500 is 1.500 dinars. An adapter converts to
its PSP's representation and back; paysaga never sees a float or a decimal string.

Every answer is classified (`Answer`, from the call's `Outcome` or the error it raises, see
`classify`), and the sagas rely on it:

- `succeeded`, `pending`, `declined`: return a `ProviderResult` with that `Outcome`.
- `rejected`: raise `ProviderRequestRejected` (the PSP refused the request as invalid, 4xx).
- `unavailable`: return `Outcome.not_processed` ONLY when the PSP certainly did nothing: the
  connection was refused, or it answered 429/503 and its `status` has no record of the key.
  paysaga then retries or fails over to another provider.
- `unknown`: return `Outcome.unknown` whenever the request may have landed (a read time-out, a
  dropped connection, another 5xx, an unreadable answer). paysaga then polls `status` and never
  sends the payment elsewhere: a time-out is `unknown`, not `unavailable`.

`providers.conformance` checks these promises against a PSP's test endpoint; docs/providers.md
walks through writing an adapter, from an empty package to a passing conformance run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from domain.money import CURRENCY_EXPONENTS
from providers.base import (
    AUTHENTICATION_FAILED,
    SETTLEMENT_DIRECTIONS,
    Answer,
    CapabilityAbsent,
    DisputeProvider,
    DisputeState,
    DisputeStatus,
    InvalidEvent,
    Outcome,
    PaymentProvider,
    ProviderConfigurationError,
    ProviderError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
    WebhookSignatureInvalid,
)
from providers.webhooks import ProviderDisputeEvent, ProviderEvent

__all__ = [
    "ADAPTER_GROUP",
    "AUTHENTICATION_FAILED",
    "SETTLEMENT_DIRECTIONS",
    "AdapterConfig",
    "AdapterFactory",
    "Answer",
    "Capabilities",
    "CapabilityAbsent",
    "CustomerAuthentication",
    "DisputeState",
    "DisputeStatus",
    "InvalidEvent",
    "Outcome",
    "ProviderAdapter",
    "ProviderConfigurationError",
    "ProviderDisputeEvent",
    "ProviderError",
    "ProviderEvent",
    "ProviderRequestRejected",
    "ProviderResult",
    "ProviderUnavailable",
    "SettlementLine",
    "WebhookSignatureInvalid",
    "classify",
    "header_value",
]

ADAPTER_GROUP = "paysaga.providers"


@dataclass(frozen=True)
class Capabilities:
    """What an adapter serves; routing sends it nothing else, and the conformance suite checks
    only what it declares."""

    methods: frozenset[str]  # payment-method families, e.g. "card", "bank"
    currencies: frozenset[str]  # ISO 4217 codes, among those paysaga knows (domain.money)
    payouts: bool = False
    refunds: bool = False
    disputes: bool = False
    authentication: bool = False

    def __post_init__(self) -> None:
        unknown = self.currencies - CURRENCY_EXPONENTS.keys()
        if unknown:
            # An exponent paysaga does not know would make every amount a guess.
            raise ProviderConfigurationError(f"currencies paysaga does not know: {unknown}")

    def serves(self, method: str, currency: str) -> bool:
        """Whether a payment in `method` and `currency` may be routed to this adapter."""
        return method in self.methods and currency in self.currencies


@dataclass
class CustomerAuthentication:
    """A customer authentication the PSP asked for: where to send the customer, and its state.

    `status` is `required` (send the customer to `url`), `authenticated` or `failed`.
    """

    provider: str
    idempotency_key: str  # the charge's
    status: str
    url: str | None = None


@dataclass(frozen=True)
class AdapterConfig:
    """What a factory gets to build an adapter for one provider account."""

    name: str  # the account's name: `ProviderResult.provider` and webhook paths carry it
    endpoint: str  # the PSP's base URL (a test endpoint for the conformance suite)
    http: httpx.AsyncClient  # shared by every adapter of the process
    timeout_seconds: float  # for one HTTP call; past it the answer is `unknown`
    credentials: Mapping[str, str] = field(default_factory=dict)


class ProviderAdapter(PaymentProvider, DisputeProvider, Protocol):
    """A PSP as paysaga sees it: payments, status, disputes (inherited), and the rest below."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        """Start (or read) the customer authentication of the charge `idempotency_key`.

        Raises `CapabilityAbsent` when the PSP does not authenticate customers.
        """
        ...

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        """Cancel the charge `idempotency_key` while it waits for its customer's authentication.

        Answers the charge as it is afterwards: `declined` once cancelled; whatever it became if
        the customer was faster (`succeeded`, or `pending` while it completes). Raises
        `CapabilityAbsent` when the PSP does not authenticate customers.
        """
        ...

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        secret: str,
        now: int,
        tolerance_seconds: int,
    ) -> None:
        """Check the signature over the raw `body`; raise `WebhookSignatureInvalid` if wrong."""
        ...

    def parse_webhook(self, body: bytes) -> ProviderEvent | ProviderDisputeEvent:
        """A verified body as paysaga's event; raise `InvalidEvent` if it is not one."""
        ...


AdapterFactory = Callable[[AdapterConfig], ProviderAdapter]


def classify(answer: ProviderResult | BaseException) -> Answer:
    """The classification of a call's result or of the error it raised.

    An error that is neither a rejection nor a configuration error is `unknown`: without proof
    that nothing was sent, paysaga must read the status rather than fail over.
    """
    if isinstance(answer, ProviderResult):
        return answer.outcome.answer
    if isinstance(answer, ProviderRequestRejected | ProviderConfigurationError | CapabilityAbsent):
        return Answer.rejected
    return Answer.unknown


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A header's value whatever its case in `headers` ('' if absent): HTTP names are not
    case-sensitive, a plain dict is."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")
