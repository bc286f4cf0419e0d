"""What each sandbox token (a payment method or payout destination) makes the PSP do."""

from __future__ import annotations

from dataclasses import dataclass

PROVIDERS = ("sandbox-cards", "sandbox-bank")
PRIMARY_PROVIDER = "sandbox-cards"
# How many calls `pm_flaky` refuses with 503 (per provider and idempotency key) before processing.
FLAKY_REFUSALS = 2
# The stale event of `pm_duplicate_webhook` goes out this long after the final one.
STALE_EVENT_LAG_SECONDS = 0.05

DECLINE_CODES = {
    "charge": "card_declined",
    "payout": "payout_declined",
    "refund": "refund_declined",
}


@dataclass(frozen=True)
class Behaviour:
    """The sandbox's script for one token."""

    succeeds: bool = True
    webhook: bool = True
    duplicate_webhook: bool = False
    stall: bool = False
    flaky: bool = False
    primary_down: bool = False
    pending_forever: bool = False  # taken, but the outcome never settles: no webhook, no result
    refunds_declined: bool = False  # the charge succeeds; every refund of it is declined
    # A charge that waits for its customer's authentication (the page of sandbox_psp.
    # authentication); `succeeds` is its outcome once authenticated.
    authentication: bool = False
    bank_only: bool = False  # pay by bank: `sandbox-bank` (or a merchant's own account), not cards


TOKENS = {
    "pm_ok": Behaviour(),
    "pm_decline": Behaviour(succeeds=False),
    "pm_no_webhook": Behaviour(webhook=False),
    "pm_timeout": Behaviour(stall=True),
    "pm_flaky": Behaviour(flaky=True),
    "pm_duplicate_webhook": Behaviour(duplicate_webhook=True),
    "pm_primary_down": Behaviour(primary_down=True),
    "pm_pending_forever": Behaviour(webhook=False, pending_forever=True),
    "pm_no_refund": Behaviour(refunds_declined=True),
    "pm_3ds_required": Behaviour(authentication=True),
    "pm_3ds_required_declined": Behaviour(succeeds=False, authentication=True),
    "pm_bank_redirect": Behaviour(authentication=True, bank_only=True),
}
