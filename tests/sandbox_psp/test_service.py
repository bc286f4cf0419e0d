"""The sandbox PSP over real HTTP: tokens, idempotency, refunds, reports, webhooks, restarts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from paysaga.settings import Settings
from providers.webhooks import parse_event, verify
from tests.psp_fixtures import Delivery, SandboxPSPProcess, WebhookReceiver, wait_until

CARDS, BANK = "sandbox-cards", "sandbox-bank"


@pytest.fixture
def psp(receiving_psp: SandboxPSPProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the session's PSP (webhooks go to `webhook_receiver`)."""
    with httpx.Client(base_url=receiving_psp.url, timeout=10.0) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def charge_body(token: str, *, key: str | None = None, amount: int = 1000) -> dict[str, Any]:
    return {
        "idempotency_key": key or unique("key"),
        "reference": unique("ref"),
        "amount": amount,
        "currency": "EUR",
        "payment_method": token,
    }


def operation(client: httpx.Client, provider: str, key: str) -> httpx.Response:
    return client.get(f"/{provider}/operations/{key}")


def wait_for_status(client: httpx.Client, provider: str, key: str) -> dict[str, Any]:
    """The operation once it has left `pending`."""

    def settled() -> dict[str, Any] | None:
        body: dict[str, Any] = operation(client, provider, key).json()
        return body if body.get("status") not in (None, "pending") else None

    result: dict[str, Any] = wait_until(settled)
    return result


def verified_event(delivery: Delivery) -> dict[str, Any]:
    """The delivery's event, after checking its signature as the API would."""
    secret = Settings().psp_webhook_secrets[delivery.provider]
    verify(secret, delivery.signature, delivery.body, now=int(time.time()), tolerance_seconds=300)
    return delivery.event


def test_charge_succeeds_with_signed_webhook_for_pm_ok(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    body = charge_body("pm_ok")
    created = psp.post(f"/{CARDS}/charges", json=body)
    assert created.status_code == 201
    charge = created.json()
    assert charge["id"].startswith("ch_")
    assert charge["kind"] == "charge" and charge["provider"] == CARDS
    assert charge["status"] == "pending" and charge["method"] == "pm_ok"
    assert (charge["amount"], charge["currency"]) == (1000, "EUR")

    [delivery] = webhook_receiver.wait_for(body["reference"])
    assert delivery.provider == CARDS
    event = verified_event(delivery)
    assert event["id"].startswith("evt_") and event["type"] == "charge.succeeded"
    assert isinstance(event["created"], int) and event["sequence"] == 2
    parsed = parse_event(delivery.body)
    assert (parsed.operation_id, parsed.status) == (charge["id"], "succeeded")
    assert parsed.kind == "charge"
    assert parsed.idempotency_key == body["idempotency_key"] and parsed.provider == CARDS
    assert operation(psp, CARDS, body["idempotency_key"]).json()["status"] == "succeeded"


def test_charge_declined_with_webhook_for_pm_decline(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    body = charge_body("pm_decline")
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 201

    [delivery] = webhook_receiver.wait_for(body["reference"])
    event = verified_event(delivery)
    assert event["type"] == "charge.declined"
    assert event["data"]["operation"]["decline_code"] == "card_declined"
    polled = operation(psp, CARDS, body["idempotency_key"]).json()
    assert (polled["status"], polled["decline_code"]) == ("declined", "card_declined")


def test_charge_succeeds_without_webhook_for_pm_no_webhook(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    silent = charge_body("pm_no_webhook")
    assert psp.post(f"/{CARDS}/charges", json=silent).status_code == 201
    assert wait_for_status(psp, CARDS, silent["idempotency_key"])["status"] == "succeeded"

    # Deliveries go out in due order: once a later charge's webhook arrived, none is owed before.
    later = charge_body("pm_ok")
    psp.post(f"/{CARDS}/charges", json=later)
    webhook_receiver.wait_for(later["reference"])
    assert webhook_receiver.deliveries(silent["reference"]) == []


def test_charge_recorded_despite_client_timeout_for_pm_timeout(psp: httpx.Client) -> None:
    body = charge_body("pm_timeout")
    with pytest.raises(httpx.ReadTimeout):
        psp.post(f"/{CARDS}/charges", json=body, timeout=0.3)

    polled = wait_for_status(psp, CARDS, body["idempotency_key"])
    assert polled["status"] == "succeeded" and polled["reference"] == body["reference"]


def test_charge_refused_twice_then_processed_for_pm_flaky(psp: httpx.Client) -> None:
    body = charge_body("pm_flaky")
    for _ in range(2):
        refused = psp.post(f"/{CARDS}/charges", json=body)
        assert refused.status_code == 503
        assert operation(psp, CARDS, body["idempotency_key"]).status_code == 404

    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 201
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 200
    records = psp.get(f"/{CARDS}/operations", params={"reference": body["reference"]}).json()
    assert len(records["data"]) == 1
    assert wait_for_status(psp, CARDS, body["idempotency_key"])["status"] == "succeeded"


def test_webhook_duplicated_then_stale_event_for_pm_duplicate_webhook(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    body = charge_body("pm_duplicate_webhook")
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 201

    first, second, stale = [
        verified_event(d) for d in webhook_receiver.wait_for(body["reference"], count=3)
    ]
    assert first == second and first["type"] == "charge.succeeded"
    assert stale["type"] == "charge.pending" and stale["id"] != first["id"]
    assert stale["sequence"] < first["sequence"] and stale["created"] <= first["created"]
    assert stale["data"]["operation"]["status"] == "pending"
    assert operation(psp, CARDS, body["idempotency_key"]).json()["status"] == "succeeded"


def test_primary_refuses_and_bank_processes_pm_primary_down(psp: httpx.Client) -> None:
    body = charge_body("pm_primary_down")
    refused = psp.post(f"/{CARDS}/charges", json=body)
    assert refused.status_code == 503
    assert refused.json()["error"] == "provider_unavailable"
    assert operation(psp, CARDS, body["idempotency_key"]).status_code == 404

    assert psp.post(f"/{BANK}/charges", json=body).status_code == 201
    assert wait_for_status(psp, BANK, body["idempotency_key"])["status"] == "succeeded"
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 503


def test_replay_same_key_returns_first_operation(psp: httpx.Client) -> None:
    body = charge_body("pm_ok")
    first = psp.post(f"/{CARDS}/charges", json=body)
    replay = psp.post(f"/{CARDS}/charges", json=body)

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    records = psp.get(f"/{CARDS}/operations", params={"reference": body["reference"]}).json()
    assert [record["id"] for record in records["data"]] == [first.json()["id"]]


def test_reuse_key_with_other_body_is_rejected(psp: httpx.Client) -> None:
    body = charge_body("pm_ok")
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 201

    conflict = psp.post(f"/{CARDS}/charges", json={**body, "amount": 999})
    assert conflict.status_code == 422
    assert conflict.json()["error"] == "idempotency_key_reused"
    payout = {**body, "destination": "pm_ok"}
    del payout["payment_method"]
    assert psp.post(f"/{CARDS}/payouts", json=payout).status_code == 422


def test_keys_are_per_provider(psp: httpx.Client) -> None:
    body = charge_body("pm_ok")
    cards = psp.post(f"/{CARDS}/charges", json=body).json()
    bank = psp.post(f"/{BANK}/charges", json=body).json()
    assert cards["id"] != bank["id"]


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 10.5},
        {"amount": 0},
        {"amount": "100"},
        {"currency": "eur"},
        {"idempotency_key": ""},
        {"payment_method": None},
    ],
)
def test_invalid_charge_is_rejected(psp: httpx.Client, change: dict[str, Any]) -> None:
    body = {**charge_body("pm_ok"), **change}
    rejected = psp.post(f"/{CARDS}/charges", json=body)
    assert rejected.status_code == 422
    assert rejected.json()["error"] == "invalid_request"


def test_unknown_token_is_rejected_unrecorded(psp: httpx.Client) -> None:
    body = charge_body("pm_whatever")
    rejected = psp.post(f"/{CARDS}/charges", json=body)
    assert rejected.status_code == 422
    assert rejected.json()["error"] == "unsupported_payment_method"
    assert operation(psp, CARDS, body["idempotency_key"]).status_code == 404


def test_unknown_provider_is_not_found(psp: httpx.Client) -> None:
    assert psp.post("/sandbox-nope/charges", json=charge_body("pm_ok")).status_code == 404
    assert psp.get("/sandbox-nope/operations/x").json()["error"] == "unknown_provider"


def test_payouts_succeed_and_decline_with_webhooks(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    outcomes = {}
    for token in ("pm_ok", "pm_decline"):
        body = charge_body(token)
        body["destination"] = body.pop("payment_method")
        created = psp.post(f"/{BANK}/payouts", json=body).json()
        assert created["id"].startswith("po_") and created["kind"] == "payout"
        [delivery] = webhook_receiver.wait_for(body["reference"])
        outcomes[token] = verified_event(delivery)["type"]
    assert outcomes == {"pm_ok": "payout.succeeded", "pm_decline": "payout.declined"}


def test_refund_of_succeeded_charge(psp: httpx.Client, webhook_receiver: WebhookReceiver) -> None:
    charge = charge_body("pm_ok", amount=1000)
    psp.post(f"/{CARDS}/charges", json=charge)
    wait_for_status(psp, CARDS, charge["idempotency_key"])

    def refund(amount: int, charge_key: str = charge["idempotency_key"]) -> httpx.Response:
        body = {
            "idempotency_key": unique("refund"),
            "reference": charge["reference"],
            "charge_idempotency_key": charge_key,
            "amount": amount,
            "currency": "EUR",
        }
        return psp.post(f"/{CARDS}/refunds", json=body)

    first = refund(600)
    assert first.status_code == 201
    assert first.json()["id"].startswith("re_") and first.json()["status"] == "succeeded"
    assert refund(401).json()["error"] == "amount_exceeds_charge"
    assert refund(400).status_code == 201
    assert refund(1, "no-such-charge").json()["error"] == "charge_not_found"

    events = [verified_event(d) for d in webhook_receiver.wait_for(charge["reference"], count=3)]
    assert sorted(event["type"] for event in events) == [
        "charge.succeeded",
        "refund.succeeded",
        "refund.succeeded",
    ]


def test_refund_of_declined_charge_is_rejected(psp: httpx.Client) -> None:
    charge = charge_body("pm_decline")
    psp.post(f"/{CARDS}/charges", json=charge)
    wait_for_status(psp, CARDS, charge["idempotency_key"])
    body = {
        "idempotency_key": unique("refund"),
        "reference": charge["reference"],
        "charge_idempotency_key": charge["idempotency_key"],
        "amount": 1,
        "currency": "EUR",
    }
    rejected = psp.post(f"/{CARDS}/refunds", json=body)
    assert (rejected.status_code, rejected.json()["error"]) == (422, "charge_not_refundable")


def test_refund_declined_for_pm_no_refund(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    charge = charge_body("pm_no_refund", amount=1000)
    psp.post(f"/{CARDS}/charges", json=charge)
    assert wait_for_status(psp, CARDS, charge["idempotency_key"])["status"] == "succeeded"
    refunds = [
        {
            "idempotency_key": unique("refund"),
            "reference": charge["reference"],
            "charge_idempotency_key": charge["idempotency_key"],
            "amount": 1000,
            "currency": "EUR",
        }
        for _ in range(2)
    ]

    answers = [psp.post(f"/{CARDS}/refunds", json=refund) for refund in refunds]

    # A declined refund moved nothing: the next one may ask for the whole amount again.
    for answer, refund in zip(answers, refunds, strict=True):
        assert answer.status_code == 201
        assert (answer.json()["status"], answer.json()["decline_code"]) == (
            "declined",
            "refund_declined",
        )
        polled = operation(psp, CARDS, refund["idempotency_key"]).json()
        assert (polled["status"], polled["decline_code"]) == ("declined", "refund_declined")
    events = [verified_event(d) for d in webhook_receiver.wait_for(charge["reference"], count=3)]
    assert sorted(event["type"] for event in events) == [
        "charge.succeeded",
        "refund.declined",
        "refund.declined",
    ]
    report = psp.get(f"/{CARDS}/settlement-report").json()["data"]
    assert [row["kind"] for row in report if row["reference"] == charge["reference"]] == ["charge"]


def test_settlement_report_lists_succeeded_operations(psp: httpx.Client) -> None:
    succeeded, declined = charge_body("pm_no_webhook"), charge_body("pm_decline")
    for body in (succeeded, declined):
        psp.post(f"/{BANK}/charges", json=body)
        wait_for_status(psp, BANK, body["idempotency_key"])

    report = psp.get(f"/{BANK}/settlement-report").json()
    assert report["provider"] == BANK
    by_key = {row["idempotency_key"]: row for row in report["data"]}
    assert declined["idempotency_key"] not in by_key
    row = by_key[succeeded["idempotency_key"]]
    assert (row["kind"], row["amount"], row["currency"]) == ("charge", 1000, "EUR")
    assert row["reference"] == succeeded["reference"] and row["settled_at"]


def test_webhook_retried_until_receiver_answers_2xx(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    body = charge_body("pm_ok")
    webhook_receiver.fail_reference(body["reference"], 3)
    psp.post(f"/{CARDS}/charges", json=body)

    deliveries = webhook_receiver.wait_for(body["reference"])
    assert [d.answered for d in deliveries] == [500, 500, 500, 200]
    assert len({d.event["id"] for d in deliveries}) == 1


def test_records_and_pending_webhooks_survive_restart(
    start_sandbox_psp: Callable[[], SandboxPSPProcess], webhook_receiver: WebhookReceiver
) -> None:
    process = start_sandbox_psp()
    body = charge_body("pm_ok")
    webhook_receiver.fail_reference(body["reference"], 10**6)
    with httpx.Client(base_url=process.url) as client:
        created = client.post(f"/{CARDS}/charges", json=body).json()
        wait_until(lambda: webhook_receiver.deliveries(body["reference"]))
    old_pid = process.pid

    process.restart()
    webhook_receiver.fail_reference(body["reference"], 0)
    assert process.pid != old_pid
    with httpx.Client(base_url=process.url) as client:
        assert operation(client, CARDS, body["idempotency_key"]).json()["id"] == created["id"]
        assert client.post(f"/{CARDS}/charges", json=body).json()["id"] == created["id"]
    [*_, delivered] = webhook_receiver.wait_for(body["reference"])
    assert delivered.answered == 200 and delivered.event["type"] == "charge.succeeded"


def test_sandbox_psp_fixture_serves_health(sandbox_psp: SandboxPSPProcess) -> None:
    assert httpx.get(f"{sandbox_psp.url}/healthz").json() == {"status": "ok"}
    assert sandbox_psp.pid > 0 and sandbox_psp.database_path.exists()
    assert str(sandbox_psp.port) in sandbox_psp.url
