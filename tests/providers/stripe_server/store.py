"""The local Stripe server's books: its objects in Stripe's shapes, and the events they raise.

One process, one asyncio loop: the store is plain dicts. Object shapes follow Stripe's API
reference (PaymentIntent, Charge, Refund, Dispute, BalanceTransaction, Event), trimmed to the
fields a client of these endpoints reads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

StripeObject = dict[str, Any]

DISPUTE_FEE = 1500  # Stripe's dispute fee, in the disputed currency's minor units here
EVIDENCE_DAYS = 7


def new_id(prefix: str) -> str:
    """An id shaped like Stripe's: a prefix and 24 random characters."""
    return f"{prefix}_{secrets.token_hex(12)}"


class StripeError(Exception):
    """An answer in Stripe's error shape: `{"error": {"type", "code", "message", ...}}`."""

    def __init__(
        self,
        status_code: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        payment_intent: StripeObject | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body: StripeObject = {
            "type": error_type,
            "code": code,
            "message": message,
            "decline_code": decline_code,
            "param": param,
        }
        if payment_intent is not None:
            self.body["payment_intent"] = payment_intent

    def payload(self) -> StripeObject:
        """The JSON body: the error hash without its empty fields."""
        return {"error": {key: value for key, value in self.body.items() if value is not None}}


def not_found(kind: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's 404 for an unknown object."""
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


class Store:
    """Every object by id, with the time each became searchable, and the event hook."""

    def __init__(self, search_lag_seconds: float, emit: Callable[[str, StripeObject], None]):
        self.objects: dict[str, StripeObject] = {}
        self.search_lag_seconds = search_lag_seconds
        self._emit = emit
        self._sequence = 0

    def add(self, obj: StripeObject) -> StripeObject:
        """Record a new object (its `created` is now)."""
        self._sequence += 1
        obj["_sequence"] = self._sequence  # insertion order among objects of the same second
        self.objects[obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str) -> StripeObject:
        """The object of that kind (`payment_intent`, `refund`...), or Stripe's 404."""
        found = self.objects.get(object_id)
        if found is None or found["object"] != kind:
            raise not_found(kind, object_id)
        return found

    def of_kind(self, kind: str) -> list[StripeObject]:
        """Objects of a kind, newest first, as Stripe lists them."""
        found = [obj for obj in self.objects.values() if obj["object"] == kind]
        return sorted(found, key=lambda obj: (obj["created"], obj["_sequence"]), reverse=True)

    def searchable(self, obj: StripeObject, now: float) -> bool:
        """Whether search sees the object yet (lists always do)."""
        return bool(obj["created"] + self.search_lag_seconds <= now)

    def age(self, seconds: int) -> None:
        """Move every object back in time (tests of old objects without waiting for them)."""
        for obj in self.objects.values():
            obj["created"] -= seconds

    def event(self, event_type: str, obj: StripeObject) -> None:
        """Announce a change by webhook."""
        self._emit(event_type, public(obj))

    # -- money movements -------------------------------------------------------------------

    def balance_transaction(
        self,
        *,
        amount: int,
        currency: str,
        kind: str,
        category: str,
        source: str,
        fee: int = 0,
        description: str = "",
    ) -> StripeObject:
        """Record money moving on the account's balance (settled at once, here)."""
        now = int(time.time())
        fee_details = (
            [
                {
                    "amount": fee,
                    "currency": currency,
                    "type": "stripe_fee",
                    "description": description,
                }
            ]
            if fee
            else []
        )
        return self.add(
            {
                "id": new_id("txn"),
                "object": "balance_transaction",
                "amount": amount,
                "currency": currency,
                "fee": fee,
                "fee_details": fee_details,
                "net": amount - fee,
                "type": kind,
                "reporting_category": category,
                "source": source,
                "status": "available",
                "created": now,
                "available_on": now,
                "description": description or None,
                "exchange_rate": None,
            }
        )

    def charge(self, intent: StripeObject) -> StripeObject:
        """The Charge of a PaymentIntent that succeeded, and its balance transaction."""
        charge = self.add(
            {
                "id": new_id("ch"),
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount"],
                "amount_refunded": 0,
                "currency": intent["currency"],
                "payment_intent": intent["id"],
                "payment_method": intent["payment_method"],
                "status": "succeeded",
                "paid": True,
                "captured": True,
                "refunded": False,
                "disputed": False,
                "metadata": {},
                "created": int(time.time()),
                "livemode": False,
            }
        )
        charge["balance_transaction"] = self.balance_transaction(
            amount=intent["amount"],
            currency=intent["currency"],
            kind="charge",
            category="charge",
            source=charge["id"],
        )["id"]
        return charge


def public(obj: StripeObject) -> StripeObject:
    """The object as the API shows it (without the store's own fields)."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def payment_intent(
    *,
    amount: int,
    currency: str,
    payment_method: str | None,
    metadata: dict[str, str],
    description: str | None,
    payment_method_types: list[str],
) -> StripeObject:
    """A new PaymentIntent, `requires_payment_method` (or `requires_confirmation` with a method)."""
    intent_id = new_id("pi")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "status": "requires_confirmation" if payment_method else "requires_payment_method",
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "created": int(time.time()),
        "description": description,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "payment_method": payment_method,
        "payment_method_types": payment_method_types,
        "cancellation_reason": None,
        "canceled_at": None,
    }


def dispute_status_after(status: str, outcome: str) -> str:
    """A dispute's closing status: `won` or `lost` (`warning_closed` for an inquiry)."""
    if status.startswith("warning_"):
        return "warning_closed"
    return outcome
