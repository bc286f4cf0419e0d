"""The ApplicationError types that cross the activity and workflow boundary, as constants.

Sagas branch on these and the API maps the update refusals to its problems; nobody compares a
type as a string literal, so renaming an error is a change in one place.

    Raised by activities (a saga branches on them):
    ├── PROVIDER_NOT_PROCESSED    the provider certainly did nothing: retry, then fail over
    ├── PROVIDER_OUTCOME_PENDING  no final outcome yet: poll again later (retried by Temporal)
    ├── PROVIDER_REJECTED         the provider refused the request as invalid: final
    ├── REFUND_DECLINED           the provider declined a compensating refund: an operator decides
    ├── INSUFFICIENT_FUNDS        the ledger refused a hold: the funds are not there
    ├── CUSTOMER_NOT_FOUND        KYC or risk of a customer that does not exist
    └── DISPUTED_PAYMENT_NOT_FOUND / DISPUTE_MISMATCH  a dispute the saga cannot book

    Raised by the sagas' update validators and handlers (the API answers 409):
    ├── TOO_LATE_TO_CANCEL        past the point of no return, or already ended
    ├── NOT_IN_REVIEW / REVIEW_TOO_LATE / INVALID_DECISION
    ├── NOT_REQUIRING_INTERVENTION / INVALID_OUTCOME / RESOLVE_FAILED
    └── DISPUTE_NOT_OPEN / DISPUTE_ANSWER_FAILED / INVALID_DISPUTE_ANSWER

    Raised by the worker's decision guard (activities.decision_guard) before any validator:
    └── DECISION_NOT_SIGNED       a money decision without the API's token (sent straight to Temporal)
"""

from __future__ import annotations

from ledger.errors import InsufficientFunds

PROVIDER_NOT_PROCESSED = "ProviderNotProcessed"
PROVIDER_OUTCOME_PENDING = "ProviderOutcomePending"
PROVIDER_REJECTED = "ProviderRequestRejected"
REFUND_DECLINED = "RefundDeclined"
# Ledger refusals are typed by the ledger error's class name (activities/ledger.py).
INSUFFICIENT_FUNDS = InsufficientFunds.__name__
# A posting refused by the ledger in a step that writes a status with it: nothing was written.
POSTING_REFUSED = "PostingRefused"
CUSTOMER_NOT_FOUND = "CustomerNotFound"
DISPUTED_PAYMENT_NOT_FOUND = "DisputedPaymentNotFound"
DISPUTE_MISMATCH = "DisputeMismatch"  # the provider's dispute does not fit its deposit

TOO_LATE_TO_CANCEL = "TooLateToCancel"
NOT_IN_REVIEW = "NotInReview"
REVIEW_TOO_LATE = "ReviewTooLate"
INVALID_DECISION = "InvalidDecision"
NOT_REQUIRING_INTERVENTION = "NotRequiringIntervention"
INVALID_OUTCOME = "InvalidOutcome"
RESOLVE_FAILED = "ResolveFailed"
DISPUTE_NOT_OPEN = "DisputeNotOpen"  # the dispute no longer takes evidence or an acceptance
DISPUTE_ANSWER_FAILED = "DisputeAnswerFailed"  # the provider could not be reached: not sent
INVALID_DISPUTE_ANSWER = "InvalidDisputeAnswer"
DECISION_NOT_SIGNED = "DecisionNotSigned"
