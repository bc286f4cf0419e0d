"""The customers of `make chaos`: deposits that wait for their customer's authentication.

A `pm_3ds_required`, `pm_3ds_required_declined` or `pm_bank_redirect` deposit waits in
`requires_action`; the customer then authenticates at the provider's page, fails there, walks
away (the saga abandons it after `PAYSAGA_AUTHENTICATION_TIMEOUT_SECONDS`), or the operator
cancels it while it waits, all while processes crash. The books' checks of `chaos.check_books`
(wallet moved once, status agrees with the provider's books, nothing moved for a cancel) hold for
them as for every deposit; `check_customers` adds what only they promise: an abandoned or failed
authentication ends failed with its code, and an authenticated 3-D Secure card is credited.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from devtools.chaos_findings import Findings, LoadClient

AUTHENTICATION_METHODS = ("pm_3ds_required", "pm_3ds_required_declined", "pm_bank_redirect")
RETURN_URL = "http://127.0.0.1:9/checkout/return"  # where the customer would come back
# What the customer does at the page, and how often.
CHOICES = {"authenticated": 5, "failed": 2, "walked away": 2, "canceled": 1}
WAIT_SECONDS = 60  # for the deposit to show `requires_action`


@dataclass
class CustomerLoad:
    """The authentication deposits and what their customers (or the operator) did."""

    acted: dict[str, str] = field(default_factory=dict)  # payment id -> what was done
    methods: dict[str, str] = field(default_factory=dict)  # payment id -> payment method
    answers: Counter[str] = field(default_factory=Counter)

    async def act_later(self, load: LoadClient, payment_id: str, method: str) -> None:
        """Once the deposit waits for its customer: the customer's (or the operator's) move."""
        self.methods[payment_id] = method
        payment = await waiting_for_customer(load.api, payment_id)
        if payment is None:  # it ended first (a cancel, a terminate, a crash's resolution)
            self.answers["ended before its customer acted"] += 1
            return
        # The first customers take each choice in turn, so that every run has them all.
        first = list(CHOICES)
        choice = (
            first[len(self.acted)]
            if len(self.acted) < len(first)
            else random.choices(first, weights=list(CHOICES.values()))[0]
        )
        self.acted[payment_id] = choice
        if choice == "walked away":
            return
        if choice == "canceled":
            load.canceled_by[payment_id] = "api"
            answer = await load.cancel_by_api(payment_id)
            self.answers[f"cancel {answer}"] += 1
            if answer == "200":
                load.operator.cancel_accepted.add(payment_id)
            return
        url = payment["next_action"]["redirect_to_url"]["url"]
        async with httpx.AsyncClient(timeout=30) as browser:
            try:
                page = await browser.post(url, data={"outcome": choice})
                self.answers[f"page {page.status_code}"] += 1
            except httpx.HTTPError:  # the PSP restarting: the customer gives up (abandoned)
                self.acted[payment_id] = "walked away"
                self.answers["page no answer"] += 1


async def waiting_for_customer(api: httpx.AsyncClient, payment_id: str) -> dict[str, Any] | None:
    """The payment once it is `requires_action` with its `next_action`; None if it ended (or
    moved past it) first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            response = await api.get(f"/v1/payments/{payment_id}")
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            payment: dict[str, Any] = response.json()
            if payment["status"] == "requires_action" and payment.get("next_action"):
                return payment
            if payment["status"] not in ("processing", "requires_review"):
                return None
        await asyncio.sleep(0.2)
    return None


# How a deposit may end after what its customer did; a cancel (the load's random cancels reach
# these deposits too) may always win while the deposit still waits.
Outcome = tuple[str, str | None]  # status, failure code
ALLOWED: dict[str, set[Outcome]] = {
    "authenticated": {("succeeded", None)},
    "failed": {("failed", "authentication_failed")},
    "walked away": {("failed", "authentication_abandoned")},
    "canceled": set(),
}
DECLINED_AFTER_AUTHENTICATION: set[Outcome] = {("failed", "provider_declined")}


def check_customers(
    customers: CustomerLoad,
    final: dict[str, dict[str, Any]],
    operator_touched: set[str],
    findings: Findings,
) -> None:
    """What the customers did shows in how their deposits ended (those an operator terminated
    or reset are the operator's, counted by `check_operator`)."""
    findings.checking("authentication outcome not honoured")
    for payment_id, choice in customers.acted.items():
        payment = final.get(payment_id)
        if payment is None or payment_id in operator_touched:
            continue
        allowed: set[Outcome] = {("canceled", None)} | ALLOWED[choice]
        if (
            choice == "authenticated"
            and customers.methods[payment_id] == "pm_3ds_required_declined"
        ):
            allowed = {("canceled", None)} | DECLINED_AFTER_AUTHENTICATION
        if (payment["status"], payment.get("failure_code")) not in allowed:
            findings.found("authentication outcome not honoured", payment_id)
