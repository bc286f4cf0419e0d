"""The closed vocabularies of the API, as enums in the OpenAPI document: statuses, failure codes
and problem codes (PRODUCT.md's lists), so that a generated client can match on them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from domain.payments import PaymentKind, PaymentStatus

__all__ = [
    "DisputeStatusName",
    "FailureCode",
    "KycStatus",
    "PaymentKind",
    "PaymentStatus",
    "ProblemCode",
    "RefundStatusName",
]

KycStatus = Literal["pending", "approved", "rejected"]
RefundStatusName = Literal["processing", "requires_intervention", "succeeded", "failed"]
DisputeStatusName = Literal[
    "needs_response", "under_review", "requires_intervention", "won", "lost"
]


class FailureCode(StrEnum):
    """Why a payment or refund failed (machine-readable; `failure_reason` says it in words)."""

    KYC_REJECTED = "kyc_rejected"
    SANCTIONS_HIT = "sanctions_hit"
    RISK_DECLINED = "risk_declined"
    PROVIDER_DECLINED = "provider_declined"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REVIEW_REJECTED = "review_rejected"
    QUOTE_EXPIRED = "quote_expired"
    CREDIT_FAILED = "credit_failed"
    CUSTOMER_BLOCKED = "customer_blocked"
    CUSTOMER_IN_DEBT = "customer_in_debt"
    RESOLVED_BY_OPERATOR = "resolved_by_operator"
    AUTHENTICATION_FAILED = "authentication_failed"
    AUTHENTICATION_ABANDONED = "authentication_abandoned"
    DEPOSIT_LIMIT_EXCEEDED = "deposit_limit_exceeded"
    CUSTOMER_SELF_EXCLUDED = "customer_self_excluded"
    INTERNAL_ERROR = "internal_error"
    SAGA_NOT_STARTED = "saga_not_started"
    CANCELED = "canceled"  # a refund canceled from the Temporal UI before it was sent


class ProblemCode(StrEnum):
    """The stable `code` of a problem+json answer."""

    # the request itself
    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    JSON_TOO_DEEP = "json_too_deep"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    INVALID_METADATA = "invalid_metadata"
    INVALID_CREATED_FILTER = "invalid_created_filter"
    CURSORS_EXCLUSIVE = "cursors_exclusive"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYMENT_REQUIRED = "payment_required"
    HTTP_ERROR = "http_error"
    # keys and scopes
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INVALID_SIGNATURE = "invalid_signature"
    # idempotency
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"
    # not found
    NOT_FOUND = "not_found"
    CURSOR_NOT_FOUND = "cursor_not_found"
    CURSOR_EXPIRED = "cursor_expired"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    PAYMENT_NOT_FOUND = "payment_not_found"
    QUOTE_NOT_FOUND = "quote_not_found"
    DISPUTE_NOT_FOUND = "dispute_not_found"
    PROVIDER_NOT_FOUND = "provider_not_found"
    BET_NOT_FOUND = "bet_not_found"
    BONUS_NOT_FOUND = "bonus_not_found"
    # conflicts with the current state
    CONFLICT = "conflict"
    CUSTOMER_EXISTS = "customer_exists"
    PROVIDER_EXISTS = "provider_exists"
    PAYMENT_NOT_CANCELABLE = "payment_not_cancelable"
    PAYMENT_NOT_IN_REVIEW = "payment_not_in_review"
    PAYMENT_NOT_REQUIRING_INTERVENTION = "payment_not_requiring_intervention"
    PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"
    REFUND_NOT_REQUIRING_INTERVENTION = "refund_not_requiring_intervention"
    RESOLVE_FAILED = "resolve_failed"
    QUOTE_ALREADY_USED = "quote_already_used"
    DISPUTE_NOT_OPEN = "dispute_not_open"
    DEAD_LETTER_REDELIVERING = "dead_letter_redelivering"
    # the request's content
    AMOUNT_EXCEEDS_REFUNDABLE = "amount_exceeds_refundable"
    RETURN_URL_NOT_ALLOWED = "return_url_not_allowed"
    WEBHOOK_URL_NOT_ALLOWED = "webhook_url_not_allowed"
    PROVIDER_MISCONFIGURED = "provider_misconfigured"
    INVALID_EVENT = "invalid_event"
    CODEC_ERROR = "codec_error"
    DEPOSIT_LIMIT_EXCEEDED = "deposit_limit_exceeded"
    CUSTOMER_SELF_EXCLUDED = "customer_self_excluded"
    # FX
    FX_ERROR = "fx_error"
    UNSUPPORTED_CURRENCY_PAIR = "unsupported_currency_pair"
    INVALID_AMOUNT = "invalid_amount"
    QUOTE_TOO_SMALL = "quote_too_small"
    INVALID_PRICING = "invalid_pricing"
    # the game wallet's refusals
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CUSTOMER_BLOCKED = "customer_blocked"
    BONUS_MAX_BET = "bonus_max_bet"
    LOSS_LIMIT_REACHED = "loss_limit_reached"
    BET_ROLLED_BACK = "bet_rolled_back"
    BET_SETTLED = "bet_settled"
    ROUND_CLOSED = "round_closed"
    DUPLICATE_TRANSACTION = "duplicate_transaction"
    BONUS_ALREADY_ACTIVE = "bonus_already_active"
    BONUS_NOT_ACTIVE = "bonus_not_active"
    WRONG_CURRENCY = "wrong_currency"
    # the server
    SERVICE_UNAVAILABLE = "service_unavailable"
    PERSONAL_DATA_UNREADABLE = "personal_data_unreadable"
    WALLET_BUSY = "wallet_busy"
    WALLET_TIMEOUT = "wallet_timeout"
    WALLET_STOPPED = "wallet_stopped"
    WALLET_UNAVAILABLE = "wallet_unavailable"
    INTERNAL_ERROR = "internal_error"
