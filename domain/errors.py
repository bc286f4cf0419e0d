"""The one tree of paysaga's errors: its root and the service's own refusals.

The root and the service errors live here; each package keeps its own branch in its own module,
and every branch subclasses `PaysagaError`. No class carries an HTTP status: `api.problems` maps
the tree to problem+json in one table, looked up along the MRO. Ledger classes are never renamed:
activities type their ApplicationErrors by the ledger class name and sagas branch on it.

    PaysagaError                  domain/errors.py
    ├── InvalidRequest            the request is not valid beyond its schema
    ├── NotFound                  what the request names does not exist
    ├── Unauthorized              missing or unknown API key
    ├── Forbidden                 the API key lacks the scope
    ├── Conflict                  the current state refuses the request
    ├── IdempotencyKeyMissing
    ├── IdempotencyKeyReused
    ├── IdempotencyKeyInFlight
    ├── ServiceUnavailable        a dependency is down; retry later (perhaps after Retry-After)
    │   └── WalletUnavailable     wallet/errors.py: a writer could not book the call now
    │       ├── WalletBusy        its queue is full
    │       ├── WalletTimeout     its batch hit the lock or statement time-out
    │       └── WalletStopped     the writers stopped before answering
    ├── PersonalDataUnreadable    paysaga/personal_data.py: a sealed value does not open
    ├── CursorExpired             the feed's events after the cursor were purged by retention
    ├── LedgerError               ledger/errors.py: a refusal of the ledger
    │   ├── InvalidAmount
    │   ├── InvalidCurrency
    │   ├── InvalidAccountKind
    │   ├── InvalidIdempotencyKey
    │   ├── UnbalancedTransaction
    │   ├── InsufficientFunds
    │   ├── ReceivableOverpaid
    │   ├── IdempotencyConflict
    │   ├── TransactionNotFound
    │   ├── AlreadyReversed
    │   ├── HoldNotFound
    │   ├── HoldNotPending
    │   │   └── HoldExpired
    │   ├── HoldExceeded
    │   └── HoldPostingMismatch
    ├── ProviderError             providers/base.py: a provider adapter's failure
    │   ├── ProviderRequestRejected
    │   ├── ProviderConfigurationError
    │   ├── WebhookSignatureInvalid
    │   └── InvalidEvent
    ├── FxError                   fx/errors.py: the FX quoting rules (also a ValueError)
    │   ├── UnsupportedCurrencyPair
    │   ├── InvalidSourceAmount
    │   ├── QuoteTooSmall
    │   └── InvalidPricing
    └── WalletError               wallet/errors.py: a game wallet call refused (with the balance)
        ├── WalletInsufficientFunds
        ├── CustomerBlocked
        ├── CustomerNotFound
        ├── BetNotFound
        ├── BetRolledBack
        ├── BetSettled
        ├── RoundClosed
        ├── DuplicateTransaction
        ├── WrongCurrency
        ├── BonusAlreadyActive
        ├── BonusNotFound
        └── BonusNotActive

An error the API's table does not map (a ledger or provider error reaching a route) is answered
as the unexpected error it is: 500, logged.
"""

from __future__ import annotations

from typing import Any


class PaysagaError(Exception):
    """Base of every error paysaga raises on purpose.

    `detail` is the message (also `str()`); `code`, when set by the class or the raiser, is a
    stable machine-readable name more specific than the one `api.problems` gives the class
    (e.g. `customer_not_found` for a `NotFound`); `extra` are members a client can act on.
    """

    code: str | None = None

    def __init__(self, detail: str = "", *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if code is not None:
            self.code = code


class InvalidRequest(PaysagaError):
    """The request is not valid as a whole, beyond what its schema checks."""


class NotFound(PaysagaError):
    """What the request names does not exist (for this caller)."""


class Unauthorized(PaysagaError):
    """The API key is missing or unknown."""


class Forbidden(PaysagaError):
    """The API key lacks the scope for this call."""


class Conflict(PaysagaError):
    """The current state of what the request names refuses it."""


class IdempotencyKeyMissing(PaysagaError):
    """A mutating call came without its Idempotency-Key header."""


class IdempotencyKeyReused(PaysagaError):
    """The Idempotency-Key was already used with another request."""


class IdempotencyKeyInFlight(PaysagaError):
    """A request with this Idempotency-Key is still in progress."""


class ServiceUnavailable(PaysagaError):
    """A dependency (database, Temporal) is unavailable; the client may retry later.

    `retry_after_seconds`, when set, is answered as the `Retry-After` header."""

    retry_after_seconds: int | None = None


class CursorExpired(PaysagaError):
    """The events right after the feed cursor are gone (purged by retention): reading on would
    skip them silently, so the consumer is told to resynchronise."""
