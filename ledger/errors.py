"""The ledger's branch of the error tree (see domain.errors); callers map them by class name."""

from __future__ import annotations

from domain.errors import PaysagaError


class LedgerError(PaysagaError):
    """Any refusal of the ledger: bad request or a broken money rule; retrying won't help."""


class InvalidAmount(LedgerError):
    """An amount is not a nonzero integer in minor units (or not positive where it must be)."""


class InvalidCurrency(LedgerError):
    """A currency is not an uppercase ISO 4217 code of three letters."""


class InvalidAccountKind(LedgerError):
    """An account's kind, owner or merchant is not one the ledger knows."""


class InvalidIdempotencyKey(LedgerError):
    """An idempotency key is missing or not a string."""


class UnbalancedTransaction(LedgerError):
    """The lines of a transaction do not sum to zero per currency, or there are fewer than two."""


class CrossMerchantTransaction(LedgerError):
    """The lines name accounts of two merchants: each merchant's books are its own (rule 8)."""


class InsufficientFunds(LedgerError):
    """The write would take a non-negative account's available balance below zero."""


class ReceivableOverpaid(LedgerError):
    """The write would take a customer's receivable above zero: a debt account owes nobody."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different request."""


class TransactionNotFound(LedgerError):
    """No ledger transaction has this id."""


class AlreadyReversed(LedgerError):
    """The transaction was already reversed; a transaction is reversed at most once."""


class HoldNotFound(LedgerError):
    """No hold has this id."""


class HoldNotPending(LedgerError):
    """The hold was already posted, voided or expired."""


class HoldExpired(HoldNotPending):
    """The hold's expiry has passed: it can no longer be posted."""


class HoldExceeded(LedgerError):
    """The posting debits the held account by more than the hold."""


class HoldPostingMismatch(LedgerError):
    """The posting lines do not debit the held account."""
