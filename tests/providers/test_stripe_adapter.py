"""The Stripe adapter through the official SDK against the local Stripe server: each answer's
classification, 3-D Secure, refunds, disputes and their events, webhook signatures, `status`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest

import providers.stripe_lookups as stripe_lookups
from devtools.stack import free_port
from providers.adapter import (
    AUTHENTICATION_FAILED,
    AdapterConfig,
    Answer,
    CapabilityAbsent,
    DisputeStatus,
    Outcome,
    ProviderConfigurationError,
    ProviderDisputeEvent,
    ProviderEvent,
    ProviderRequestRejected,
    WebhookSignatureInvalid,
    classify,
)
from providers.conformance import settled
from providers.directory import OwnAccount, ProviderDirectory
from providers.registry import build_adapter
from providers.stripe_psp import StripeAdapter
from tests.providers.stripe_fixtures import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    StripeDelivery,
    StripeServerProcess,
    StripeWebhooks,
)

TOLERANCE = 300
NOW = datetime.now(UTC)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def account(endpoint: str, http: httpx.AsyncClient, secret_key: str = SECRET_KEY) -> StripeAdapter:
    config = AdapterConfig("stripe-eu", endpoint, http, 5.0, {"secret_key": secret_key})
    adapter = build_adapter("stripe", config)
    assert isinstance(adapter, StripeAdapter)
    return adapter


@pytest.fixture
def adapter(stripe_server: StripeServerProcess, http: httpx.AsyncClient) -> StripeAdapter:
    return account(stripe_server.url, http)


def new_payment(step: str = "charge") -> tuple[str, str]:
    reference = f"dep_{uuid.uuid4().hex[:16]}"
    return f"{reference}:{step}", reference


async def charge(
    adapter: StripeAdapter, method: str, amount: int = 1500, currency: str = "EUR"
) -> tuple[str, str, Outcome]:
    key, reference = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=amount,
        currency=currency,
        payment_method=method,
    )
    return key, reference, result.outcome


async def delivery(webhooks: StripeWebhooks, reference: str, event_type: str) -> StripeDelivery:
    return await asyncio.to_thread(webhooks.wait_for, reference, event_type)


def verified(adapter: StripeAdapter, received: StripeDelivery) -> object:
    """The delivery verified with the endpoint's secret at its own time, then parsed."""
    timestamp = int(received.headers["Stripe-Signature"].split(",")[0].removeprefix("t="))
    adapter.verify_webhook(
        received.headers,
        received.body,
        secret=WEBHOOK_SECRET,
        now=timestamp,
        tolerance_seconds=TOLERANCE,
    )
    return adapter.parse_webhook(received.body)


# -- building ------------------------------------------------------------------------------


async def test_build_adapter_without_secret_key_refused(
    stripe_server: StripeServerProcess, http: httpx.AsyncClient
) -> None:
    config = AdapterConfig("stripe-eu", stripe_server.url, http, 5.0, {})
    with pytest.raises(ProviderConfigurationError, match="secret_key"):
        build_adapter("stripe", config)


async def test_charge_with_wrong_secret_key_is_a_configuration_error(
    stripe_server: StripeServerProcess, http: httpx.AsyncClient
) -> None:
    adapter = account(stripe_server.url, http, secret_key="sk_test_wrong")
    with pytest.raises(ProviderConfigurationError) as raised:
        await charge(adapter, "pm_card_visa")
    assert classify(raised.value) == Answer.rejected


async def test_calls_go_through_the_shared_http_client(
    stripe_server: StripeServerProcess,
) -> None:
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as shared:
        adapter = account(stripe_server.url, shared)
        _, _, outcome = await charge(adapter, "pm_card_visa")
    assert outcome == Outcome.succeeded
    assert sent[0] == "POST /v1/payment_intents"


async def test_account_without_endpoint_calls_stripe_api() -> None:
    called: list[str] = []

    def stripe_api(request: httpx.Request) -> httpx.Response:
        called.append(f"{request.url.scheme}://{request.url.host}{request.url.path}")
        return httpx.Response(429, json={"error": {"type": "invalid_request_error"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(stripe_api)) as shared:
        adapter = account("", shared)
        _, _, outcome = await charge(adapter, "pm_card_visa")
    assert outcome == Outcome.unknown  # 429, and status could not read Stripe's books either
    assert called[0] == "https://api.stripe.com/v1/payment_intents"


async def test_merchant_stripe_account_through_provider_directory(
    stripe_server: StripeServerProcess, http: httpx.AsyncClient
) -> None:
    # A merchant's own account as the provider-accounts API stores it: adapter and secret key.
    own = OwnAccount(
        "pa_stripe1", "stripe", "my-stripe", stripe_server.url, {"secret_key": SECRET_KEY}, NOW
    )

    async def load(account_id: str) -> OwnAccount | None:
        return own if account_id == own.id else None

    directory = ProviderDirectory({}, load, http, 5.0)
    adapter = await directory.get("pa_stripe1")
    key, reference = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method="pm_card_visa",
    )
    assert (result.provider, result.outcome) == ("pa_stripe1", Outcome.succeeded)


async def test_payout_absent_nothing_sent(adapter: StripeAdapter) -> None:
    assert not adapter.capabilities.payouts
    key, reference = new_payment("payout")
    with pytest.raises(CapabilityAbsent):
        await adapter.payout(
            idempotency_key=key, reference=reference, amount=700, currency="EUR", destination="x"
        )
    assert (await adapter.status(key)).outcome == Outcome.not_processed


# -- classification ------------------------------------------------------------------------


async def test_charge_succeeds_with_payment_intent(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method="pm_card_visa",
    )
    assert result.outcome == Outcome.succeeded
    assert result.operation_id is not None and result.operation_id.startswith("pi_")
    assert (await adapter.status(key)).operation_id == result.operation_id


async def test_card_declined_is_declined_with_its_code(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method="pm_card_chargeDeclinedInsufficientFunds",
    )
    assert (result.outcome, result.decline_code) == (Outcome.declined, "insufficient_funds")
    recorded = await adapter.status(key)
    assert (recorded.outcome, recorded.decline_code) == (Outcome.declined, "insufficient_funds")
    assert recorded.operation_id == result.operation_id


async def test_invalid_request_is_rejected_and_unrecorded(adapter: StripeAdapter) -> None:
    key, reference = new_payment()
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=1500,
            currency="EUR",
            payment_method="pm_no_such_method",
        )
    assert (raised.value.status_code, raised.value.code) == (400, "resource_missing")
    assert classify(raised.value) == Answer.rejected
    assert (await adapter.status(key)).outcome == Outcome.not_processed


async def test_server_error_after_landing_is_unknown_then_resolved(
    adapter: StripeAdapter,
) -> None:
    key, reference, outcome = await charge(adapter, "pm_local_server_error")
    assert outcome == Outcome.unknown
    # Stripe saved the 500 under the key: the retry replays it, and makes no second payment.
    _, _, again = await charge_with_key(adapter, key, reference, "pm_local_server_error")
    assert again == Outcome.unknown
    assert (await adapter.status(key)).outcome == Outcome.succeeded
    lines = [line for line in await adapter.settlement_report() if line.reference == reference]
    assert [line.kind for line in lines] == ["charge"]


async def charge_with_key(
    adapter: StripeAdapter, key: str, reference: str, method: str
) -> tuple[str, str, Outcome]:
    result = await adapter.charge(
        idempotency_key=key,
        reference=reference,
        amount=1500,
        currency="EUR",
        payment_method=method,
    )
    return key, reference, result.outcome


async def test_connection_refused_is_not_processed(http: httpx.AsyncClient) -> None:
    adapter = account(f"http://127.0.0.1:{free_port()}", http)
    key, _, outcome = await charge(adapter, "pm_card_visa")
    assert outcome == Outcome.not_processed
    assert classify(await adapter.status(key)) == Answer.unknown  # status cannot read either


async def test_rate_limited_without_record_is_not_processed(adapter: StripeAdapter) -> None:
    key, _, outcome = await charge(adapter, "pm_local_rate_limited")
    assert outcome == Outcome.not_processed
    assert (await adapter.status(key)).outcome == Outcome.not_processed


async def test_three_decimal_amount_not_multiple_of_ten_refused_unsent(
    adapter: StripeAdapter,
) -> None:
    key, reference = new_payment()
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.charge(
            idempotency_key=key,
            reference=reference,
            amount=12345,
            currency="KWD",
            payment_method="pm_card_visa",
        )
    assert raised.value.code == "amount_precision"
    assert (await adapter.status(key)).outcome == Outcome.not_processed


async def test_zero_decimal_amount_sent_unchanged(
    adapter: StripeAdapter, stripe_webhooks: StripeWebhooks
) -> None:
    _, reference, outcome = await charge(adapter, "pm_card_visa", amount=1500, currency="JPY")
    assert outcome == Outcome.succeeded
    received = await delivery(stripe_webhooks, reference, "payment_intent.succeeded")
    intent = received.event["data"]["object"]
    assert (intent["amount"], intent["currency"]) == (1500, "jpy")  # ¥1,500, as Stripe counts


# -- status --------------------------------------------------------------------------------


async def test_status_finds_fresh_charge_search_does_not_show(
    start_stripe_server: Callable[..., StripeServerProcess], http: httpx.AsyncClient
) -> None:
    # Search sees nothing for a day: a fresh charge is found by listing, never `not_processed`.
    adapter = account(start_stripe_server(search_lag_seconds="86400").url, http)
    key, _, outcome = await charge(adapter, "pm_card_visa")
    assert outcome == Outcome.succeeded
    assert (await adapter.status(key)).outcome == Outcome.succeeded


async def test_status_finds_old_charge_by_search(
    start_stripe_server: Callable[..., StripeServerProcess], http: httpx.AsyncClient
) -> None:
    server = start_stripe_server(search_lag_seconds="60")
    adapter = account(server.url, http)
    key, _, _ = await charge(adapter, "pm_card_visa")
    server.control("age", seconds=str(3 * 3600))  # now past the listed window
    assert (await adapter.status(key)).outcome == Outcome.succeeded


async def test_status_unknown_when_list_too_long_to_prove_absence(
    adapter: StripeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await charge(adapter, "pm_card_visa")
    await charge(adapter, "pm_card_visa")
    monkeypatch.setattr(stripe_lookups, "PAGE_SIZE", 1)
    monkeypatch.setattr(stripe_lookups, "LIST_PAGES_MAX", 1)
    key, _ = new_payment()
    assert (await adapter.status(key)).outcome == Outcome.unknown


# -- customer authentication ---------------------------------------------------------------


async def test_requires_action_redirects_then_succeeds(
    adapter: StripeAdapter,
    stripe_server: StripeServerProcess,
    http: httpx.AsyncClient,
    stripe_webhooks: StripeWebhooks,
) -> None:
    key, reference, outcome = await charge(adapter, "pm_card_threeDSecure2Required")
    assert outcome == Outcome.pending
    assert (await adapter.status(key)).detail == "requires_action"

    asked = await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    assert asked.status == "required" and asked.url is not None
    assert (await http.get(asked.url)).status_code == 200  # the page the customer sees
    again = await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    assert again.url == asked.url

    intent_id = (await adapter.status(key)).operation_id
    stripe_server.control(f"3ds/{intent_id}", outcome="authenticate")
    assert (await settled(adapter, key)).outcome == Outcome.succeeded
    done = await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    assert done.status == "authenticated"
    event = verified(
        adapter, await delivery(stripe_webhooks, reference, "payment_intent.succeeded")
    )
    assert isinstance(event, ProviderEvent) and event.outcome == Outcome.succeeded


async def test_failed_authentication_is_declined(
    adapter: StripeAdapter, stripe_server: StripeServerProcess
) -> None:
    key, _, _ = await charge(adapter, "pm_card_authenticationRequired")
    await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    stripe_server.control(f"3ds/{(await adapter.status(key)).operation_id}", outcome="fail")
    final = await adapter.status(key)
    # Stripe's `payment_intent_authentication_failure`, as paysaga names it.
    assert (final.outcome, final.decline_code) == (Outcome.declined, AUTHENTICATION_FAILED)
    ended = await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    assert ended.status == "failed"


async def test_charge_waiting_for_customer_says_so(adapter: StripeAdapter) -> None:
    key, _ = new_payment()
    result = await adapter.charge(
        idempotency_key=key,
        reference=key.split(":")[0],
        amount=1500,
        currency="EUR",
        payment_method="pm_card_threeDSecure2Required",
    )
    assert (result.outcome, result.requires_action) == (Outcome.pending, True)
    assert (await adapter.status(key)).requires_action
    paid, _, _ = await charge(adapter, "pm_card_visa")
    assert not (await adapter.status(paid)).requires_action


async def test_cancel_authorization_of_charge_waiting_for_customer(
    adapter: StripeAdapter, stripe_server: StripeServerProcess
) -> None:
    key, _, _ = await charge(adapter, "pm_card_threeDSecure2Required")
    await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    canceled = await adapter.cancel_authorization(key)
    assert (canceled.outcome, canceled.decline_code) == (Outcome.declined, "canceled")
    assert (await adapter.cancel_authorization(key)).outcome == Outcome.declined  # again: same


async def test_cancel_authorization_leaves_charge_the_customer_authenticated(
    adapter: StripeAdapter, stripe_server: StripeServerProcess
) -> None:
    key, _, _ = await charge(adapter, "pm_card_threeDSecure2Required")
    await adapter.authenticate(idempotency_key=key, return_url="https://shop.test/back")
    stripe_server.control(f"3ds/{(await adapter.status(key)).operation_id}", outcome="authenticate")
    assert (await adapter.cancel_authorization(key)).outcome == Outcome.succeeded


# -- refunds -------------------------------------------------------------------------------


async def test_refund_succeeds_with_event_and_settlement_line(
    adapter: StripeAdapter, stripe_webhooks: StripeWebhooks
) -> None:
    charge_key, reference, _ = await charge(adapter, "pm_card_visa", amount=2000)
    refund_key = f"{reference}:refund"
    result = await adapter.refund(
        idempotency_key=refund_key,
        reference=reference,
        charge_idempotency_key=charge_key,
        amount=700,
        currency="EUR",
    )
    assert result.outcome == Outcome.succeeded
    assert result.operation_id is not None and result.operation_id.startswith("re_")
    assert (await adapter.status(refund_key)).operation_id == result.operation_id
    event = verified(adapter, await delivery(stripe_webhooks, reference, "refund.created"))
    assert isinstance(event, ProviderEvent)
    assert (event.kind, event.idempotency_key, event.amount) == ("refund", refund_key, 700)
    lines = [line for line in await adapter.settlement_report() if line.reference == reference]
    assert sorted((line.kind, line.amount) for line in lines) == [("charge", 2000), ("refund", 700)]


async def test_refund_beyond_charge_rejected(adapter: StripeAdapter) -> None:
    charge_key, reference, _ = await charge(adapter, "pm_card_visa", amount=1000)
    with pytest.raises(ProviderRequestRejected):
        await adapter.refund(
            idempotency_key=f"{reference}:refund",
            reference=reference,
            charge_idempotency_key=charge_key,
            amount=1001,
            currency="EUR",
        )


async def test_refund_in_another_currency_rejected_unsent(adapter: StripeAdapter) -> None:
    charge_key, reference, _ = await charge(adapter, "pm_card_visa", amount=1000, currency="EUR")
    refund_key = f"{reference}:refund"
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.refund(
            idempotency_key=refund_key,
            reference=reference,
            charge_idempotency_key=charge_key,
            amount=1000,
            currency="JPY",
        )
    assert raised.value.code == "currency_mismatch"
    assert (await adapter.status(refund_key)).outcome == Outcome.not_processed


async def test_refund_of_unknown_charge_rejected(adapter: StripeAdapter) -> None:
    charge_key, reference = new_payment()
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.refund(
            idempotency_key=f"{reference}:refund",
            reference=reference,
            charge_idempotency_key=charge_key,
            amount=100,
            currency="EUR",
        )
    assert raised.value.code == "charge_not_found"


# -- disputes ------------------------------------------------------------------------------


async def open_dispute(
    adapter: StripeAdapter, server: StripeServerProcess, webhooks: StripeWebhooks
) -> tuple[str, str, ProviderDisputeEvent]:
    charge_key, reference, _ = await charge(adapter, "pm_card_visa", amount=3000)
    intent_id = (await adapter.status(charge_key)).operation_id
    assert intent_id is not None
    dispute = server.control("disputes", payment_intent=intent_id, amount="2500")
    event = verified(adapter, await delivery(webhooks, dispute["id"], "charge.dispute.created"))
    assert isinstance(event, ProviderDisputeEvent)
    return charge_key, reference, event


async def test_dispute_won_events_and_settlement_lines(
    adapter: StripeAdapter, stripe_server: StripeServerProcess, stripe_webhooks: StripeWebhooks
) -> None:
    charge_key, reference, created = await open_dispute(adapter, stripe_server, stripe_webhooks)
    assert (created.type, created.status) == ("dispute.created", DisputeStatus.needs_response)
    assert (created.amount, created.currency, created.fee) == (2500, "EUR", 1500)
    # Stripe's dispute names the PaymentIntent only: the reference is read back from it.
    assert created.reference == ""
    completed = await adapter.complete_dispute_event(created)
    assert (completed.reference, completed.charge_idempotency_key) == (reference, charge_key)

    state = await adapter.submit_dispute_evidence(created.dispute_id, "signed delivery receipt")
    assert state.status == DisputeStatus.under_review
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.accept_dispute(created.dispute_id)
    assert (raised.value.status_code, raised.value.code) == (409, "dispute_not_open")

    stripe_server.control(f"disputes/{created.dispute_id}/decide", outcome="won")
    closed = verified(
        adapter, await delivery(stripe_webhooks, created.dispute_id, "charge.dispute.closed")
    )
    assert isinstance(closed, ProviderDisputeEvent)
    assert (closed.type, closed.status) == ("dispute.won", DisputeStatus.won)
    assert closed.sequence > created.sequence
    assert (await adapter.dispute_status(created.dispute_id)).status == DisputeStatus.won
    lines = [line for line in await adapter.settlement_report() if line.reference == reference]
    assert sorted((line.kind, line.amount) for line in lines) == [
        ("charge", 3000),
        ("dispute", 2500),
        ("dispute_fee", 1500),
        ("dispute_reversal", 2500),
    ]


async def test_dispute_accepted_is_lost(
    adapter: StripeAdapter, stripe_server: StripeServerProcess, stripe_webhooks: StripeWebhooks
) -> None:
    _, reference, created = await open_dispute(adapter, stripe_server, stripe_webhooks)
    state = await adapter.accept_dispute(created.dispute_id)
    assert (state.status, state.reference) == (DisputeStatus.lost, reference)
    closed = verified(
        adapter, await delivery(stripe_webhooks, created.dispute_id, "charge.dispute.closed")
    )
    assert isinstance(closed, ProviderDisputeEvent) and closed.type == "dispute.lost"
    with pytest.raises(ProviderRequestRejected, match="dispute_not_open"):
        await adapter.submit_dispute_evidence(created.dispute_id, "too late")


async def test_dispute_status_of_unknown_dispute_rejected(adapter: StripeAdapter) -> None:
    with pytest.raises(ProviderRequestRejected) as raised:
        await adapter.dispute_status("du_missing")
    assert (raised.value.status_code, raised.value.code) == (404, "dispute_not_found")


# -- webhook signatures --------------------------------------------------------------------


@pytest.fixture
async def succeeded_delivery(
    adapter: StripeAdapter, stripe_webhooks: StripeWebhooks
) -> StripeDelivery:
    _, reference, _ = await charge(adapter, "pm_card_visa")
    return await delivery(stripe_webhooks, reference, "payment_intent.succeeded")


def signed_at(received: StripeDelivery) -> int:
    return int(received.headers["Stripe-Signature"].split(",")[0].removeprefix("t="))


def test_webhook_verified_over_raw_body(
    adapter: StripeAdapter, succeeded_delivery: StripeDelivery
) -> None:
    event = verified(adapter, succeeded_delivery)
    assert isinstance(event, ProviderEvent) and event.kind == "charge"
    tampered = succeeded_delivery.body.replace(b'"amount": 1500', b'"amount": 15000')
    assert tampered != succeeded_delivery.body
    with pytest.raises(WebhookSignatureInvalid):
        adapter.verify_webhook(
            succeeded_delivery.headers,
            tampered,
            secret=WEBHOOK_SECRET,
            now=signed_at(succeeded_delivery),
            tolerance_seconds=TOLERANCE,
        )


def test_webhook_wrong_secret_refused(
    adapter: StripeAdapter, succeeded_delivery: StripeDelivery
) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        adapter.verify_webhook(
            succeeded_delivery.headers,
            succeeded_delivery.body,
            secret="whsec_other_endpoint",
            now=signed_at(succeeded_delivery),
            tolerance_seconds=TOLERANCE,
        )


@pytest.mark.parametrize("offset", [TOLERANCE + 1, -(TOLERANCE + 1)])
def test_webhook_outside_tolerance_refused(
    adapter: StripeAdapter, succeeded_delivery: StripeDelivery, offset: int
) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="tolerance"):
        adapter.verify_webhook(
            succeeded_delivery.headers,
            succeeded_delivery.body,
            secret=WEBHOOK_SECRET,
            now=signed_at(succeeded_delivery) + offset,
            tolerance_seconds=TOLERANCE,
        )


@pytest.mark.parametrize(
    "header", ["", "t=abc,v1=00", "v1=00", "t={t},v1=\u00e9\u00e9", "t={t},v0=00"]
)
def test_webhook_malformed_signature_refused(
    adapter: StripeAdapter, succeeded_delivery: StripeDelivery, header: str
) -> None:
    now = signed_at(succeeded_delivery)
    with pytest.raises(WebhookSignatureInvalid):
        adapter.verify_webhook(
            {"Stripe-Signature": header.format(t=now)},
            succeeded_delivery.body,
            secret=WEBHOOK_SECRET,
            now=now,
            tolerance_seconds=TOLERANCE,
        )
