"""Disputes at the sandbox PSP over real HTTP: planting, webhooks, answers, verdicts, reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from providers.webhooks import ProviderDisputeEvent, parse_any_event
from tests.psp_fixtures import Delivery, SandboxPSPProcess, WebhookReceiver, wait_until
from tests.sandbox_psp.test_service import charge_body, unique, verified_event, wait_for_status

CARDS, BANK = "sandbox-cards", "sandbox-bank"


@pytest.fixture
def psp(receiving_psp: SandboxPSPProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the session's PSP (webhooks go to `webhook_receiver`)."""
    with httpx.Client(base_url=receiving_psp.url, timeout=10.0) as client:
        yield client


def succeeded_charge(
    psp: httpx.Client, provider: str = CARDS, token: str = "pm_ok", amount: int = 1000
) -> dict[str, Any]:
    """A charge's request body, once the charge has succeeded."""
    body = charge_body(token, amount=amount)
    assert psp.post(f"/{provider}/charges", json=body).status_code == 201
    assert wait_for_status(psp, provider, body["idempotency_key"])["status"] == "succeeded"
    return body


def plant(
    psp: httpx.Client, reference: str, provider: str = CARDS, **changes: Any
) -> httpx.Response:
    body = {"reference": reference, "amount": 1000, "reason": "fraudulent", "fee": 150}
    return psp.post(f"/{provider}/_sandbox/disputes", json={"outcome": "won", **body, **changes})


def planted(
    psp: httpx.Client, reference: str, provider: str = CARDS, **changes: Any
) -> dict[str, Any]:
    response = plant(psp, reference, provider, **changes)
    assert response.status_code == 201, response.text
    dispute: dict[str, Any] = response.json()
    return dispute


def dispute_deliveries(
    receiver: WebhookReceiver, reference: str, count: int, timeout: float = 10.0
) -> list[Delivery]:
    """Wait for `count` dispute events about `reference` answered 2xx; those, in arrival order."""

    def enough() -> list[Delivery] | None:
        found = [
            d
            for d in receiver.deliveries(reference)
            if d.answered < 300 and d.event["type"].startswith("dispute.")
        ]
        return found if len(found) >= count else None

    found: list[Delivery] = wait_until(enough, timeout=timeout)
    return found


def test_plant_dispute_on_succeeded_charge_sends_signed_dispute_created(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    charge = succeeded_charge(psp, amount=2500)
    webhook_receiver.wait_for(charge["reference"])

    dispute = planted(psp, charge["reference"], amount=2000, outcome="lost")

    assert dispute["id"].startswith("dp_") and dispute["status"] == "needs_response"
    assert (dispute["reference"], dispute["charge_idempotency_key"]) == (
        charge["reference"],
        charge["idempotency_key"],
    )
    assert (dispute["amount"], dispute["currency"], dispute["fee"]) == (2000, "EUR", 150)
    assert (dispute["reason"], dispute["planted_outcome"]) == ("fraudulent", "lost")
    due = datetime.fromisoformat(dispute["evidence_due_by"])
    assert 6.9 < (due - datetime.now(UTC)).total_seconds() / 86_400 <= 7  # the default 7 days
    [delivery] = dispute_deliveries(webhook_receiver, charge["reference"], 1)
    assert delivery.provider == CARDS
    event = verified_event(delivery)
    assert event["type"] == "dispute.created" and event["sequence"] == 1
    assert event["id"].startswith("evt_")
    assert event["data"]["dispute"]["status"] == "needs_response"
    assert "planted_outcome" not in event["data"]["dispute"]
    parsed = parse_any_event(delivery.body)
    assert isinstance(parsed, ProviderDisputeEvent)
    assert (parsed.dispute_id, parsed.reference, parsed.amount, parsed.fee) == (
        dispute["id"],
        charge["reference"],
        2000,
        150,
    )
    assert parsed.evidence_due_by == dispute["evidence_due_by"]
    assert psp.get(f"/{CARDS}/disputes/{dispute['id']}").json()["status"] == "needs_response"


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_evidence_puts_dispute_under_review_then_decided_as_planted(
    psp: httpx.Client, webhook_receiver: WebhookReceiver, outcome: str
) -> None:
    charge = succeeded_charge(psp)
    dispute = planted(psp, charge["reference"], outcome=outcome)
    path = f"/{CARDS}/disputes/{dispute['id']}"

    answered = psp.post(f"{path}/evidence", json={"text": "delivered, signed for"})

    assert answered.status_code == 200
    assert answered.json()["status"] == "under_review"
    assert answered.json()["evidence_submitted_at"]
    created, verdict = (
        verified_event(d) for d in dispute_deliveries(webhook_receiver, charge["reference"], 2)
    )
    assert (created["type"], verdict["type"]) == ("dispute.created", f"dispute.{outcome}")
    assert created["sequence"] < verdict["sequence"] and created["id"] != verdict["id"]
    assert verdict["data"]["dispute"]["status"] == outcome
    assert psp.get(path).json()["status"] == outcome


def test_accept_loses_dispute_at_once(psp: httpx.Client, webhook_receiver: WebhookReceiver) -> None:
    charge = succeeded_charge(psp)
    dispute = planted(psp, charge["reference"], outcome="won")
    path = f"/{CARDS}/disputes/{dispute['id']}"

    accepted = psp.post(f"{path}/accept")

    assert (accepted.status_code, accepted.json()["status"]) == (200, "lost")
    assert psp.get(path).json()["status"] == "lost"
    events = [d.event for d in dispute_deliveries(webhook_receiver, charge["reference"], 2)]
    assert [event["type"] for event in events] == ["dispute.created", "dispute.lost"]


@pytest.mark.parametrize("first", ["evidence", "accept"])
def test_second_answer_to_dispute_is_conflict(psp: httpx.Client, first: str) -> None:
    charge = succeeded_charge(psp)
    path = f"/{CARDS}/disputes/{planted(psp, charge['reference'])['id']}"
    assert psp.post(f"{path}/{first}", json={"text": "proof"}).status_code == 200

    for action in ("evidence", "accept"):
        refused = psp.post(f"{path}/{action}", json={"text": "more proof"})
        assert (refused.status_code, refused.json()["error"]) == (409, "dispute_not_open")


def test_unanswered_dispute_is_lost_at_its_due_date(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    charge = succeeded_charge(psp)
    dispute = planted(psp, charge["reference"], outcome="won", evidence_due_in_seconds=0.3)

    created, lost = (d.event for d in dispute_deliveries(webhook_receiver, charge["reference"], 2))

    assert (created["type"], lost["type"]) == ("dispute.created", "dispute.lost")
    assert lost["data"]["dispute"]["updated_at"] == dispute["evidence_due_by"]
    path = f"/{CARDS}/disputes/{dispute['id']}"
    assert psp.post(f"{path}/evidence", json={"text": "too late"}).status_code == 409


def test_plant_dispute_refused_without_a_disputable_charge(psp: httpx.Client) -> None:
    declined = charge_body("pm_decline")
    psp.post(f"/{CARDS}/charges", json=declined)
    wait_for_status(psp, CARDS, declined["idempotency_key"])
    pending = charge_body("pm_pending_forever")
    psp.post(f"/{CARDS}/charges", json=pending)

    missing = plant(psp, unique("dep"))
    assert (missing.status_code, missing.json()["error"]) == (404, "charge_not_found")
    for reference in (declined["reference"], pending["reference"]):
        refused = plant(psp, reference)
        assert (refused.status_code, refused.json()["error"]) == (422, "charge_not_disputable")
    charge = succeeded_charge(psp, BANK)
    other_provider = plant(psp, charge["reference"], CARDS)
    assert other_provider.json()["error"] == "charge_not_found"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"amount": 1001}, "amount_exceeds_charge"),
        ({"currency": "USD"}, "currency_mismatch"),
        ({"amount": 0}, "invalid_request"),
        ({"amount": -5}, "invalid_request"),
        ({"fee": -1}, "invalid_request"),
        ({"outcome": "maybe"}, "invalid_request"),
    ],
)
def test_plant_dispute_refused_when_invalid(
    psp: httpx.Client, changes: dict[str, Any], code: str
) -> None:
    charge = succeeded_charge(psp)
    refused = plant(psp, charge["reference"], **changes)
    assert (refused.status_code, refused.json()["error"]) == (422, code)
    assert psp.get(f"/{CARDS}/disputes", params={"reference": charge["reference"]}).json() == {
        "data": []
    }


def test_plant_dispute_limited_to_what_was_not_refunded(psp: httpx.Client) -> None:
    charge = succeeded_charge(psp)
    refund = {
        "idempotency_key": unique("refund"),
        "reference": charge["reference"],
        "charge_idempotency_key": charge["idempotency_key"],
        "amount": 300,
        "currency": "EUR",
    }
    assert psp.post(f"/{CARDS}/refunds", json=refund).status_code == 201

    assert plant(psp, charge["reference"], amount=701).json()["error"] == "amount_exceeds_charge"
    dispute = planted(psp, charge["reference"], amount=700, currency="EUR")
    again = plant(psp, charge["reference"], amount=1)
    assert (again.status_code, again.json()["error"]) == (409, "charge_already_disputed")
    listed = psp.get(f"/{CARDS}/disputes", params={"reference": charge["reference"]}).json()
    assert [d["id"] for d in listed["data"]] == [dispute["id"]]


def test_refund_of_disputed_charge_refused_until_won(psp: httpx.Client) -> None:
    charge = succeeded_charge(psp)
    dispute = planted(psp, charge["reference"], amount=400, outcome="won")

    def refund() -> httpx.Response:
        body = {
            "idempotency_key": unique("refund"),
            "reference": charge["reference"],
            "charge_idempotency_key": charge["idempotency_key"],
            "amount": 100,
            "currency": "EUR",
        }
        return psp.post(f"/{CARDS}/refunds", json=body)

    refused = refund()
    assert (refused.status_code, refused.json()["error"]) == (422, "charge_disputed")
    path = f"/{CARDS}/disputes/{dispute['id']}"
    psp.post(f"{path}/evidence", json={"text": "proof"})
    wait_until(lambda: psp.get(path).json()["status"] == "won")
    assert refund().status_code == 201


def test_unknown_dispute_is_not_found(psp: httpx.Client) -> None:
    for response in (
        psp.get(f"/{CARDS}/disputes/dp_nope"),
        psp.post(f"/{CARDS}/disputes/dp_nope/accept"),
        psp.post(f"/{CARDS}/disputes/dp_nope/evidence", json={"text": "x"}),
    ):
        assert (response.status_code, response.json()["error"]) == (404, "dispute_not_found")
    empty = psp.post(f"/{CARDS}/disputes/dp_nope/evidence", json={"text": ""})
    assert empty.json()["error"] == "invalid_request"
    assert psp.get("/sandbox-nope/disputes/dp_nope").json()["error"] == "unknown_provider"


def test_settlement_report_lists_dispute_fee_and_reversal(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    won_charge, lost_charge = succeeded_charge(psp, BANK), succeeded_charge(psp, BANK)
    won = planted(psp, won_charge["reference"], BANK, amount=600, fee=150, outcome="won")
    lost = planted(psp, lost_charge["reference"], BANK, amount=1000, fee=0, outcome="lost")
    opened = datetime.now(UTC)
    for dispute in (won, lost):
        answered = psp.post(f"/{BANK}/disputes/{dispute['id']}/evidence", json={"text": "x"})
        assert answered.status_code == 200
    dispute_deliveries(webhook_receiver, won_charge["reference"], 2)
    dispute_deliveries(webhook_receiver, lost_charge["reference"], 2)

    def lines(report: dict[str, Any], reference: str) -> list[tuple[str, int, str]]:
        return [
            (row["kind"], row["amount"], row["id"])
            for row in report["data"]
            if row["reference"] == reference and row["kind"].startswith("dispute")
        ]

    report = psp.get(f"/{BANK}/settlement-report").json()
    assert lines(report, won_charge["reference"]) == [
        ("dispute", 600, won["id"]),
        ("dispute_fee", 150, won["id"]),
        ("dispute_reversal", 600, won["id"]),
    ]
    assert lines(report, lost_charge["reference"]) == [("dispute", 1000, lost["id"])]
    until_opened = psp.get(f"/{BANK}/settlement-report", params={"until": opened.isoformat()})
    assert [k for k, _, _ in lines(until_opened.json(), won_charge["reference"])] == [
        "dispute",
        "dispute_fee",
    ]
    after_opened = psp.get(f"/{BANK}/settlement-report", params={"since": opened.isoformat()})
    assert [k for k, _, _ in lines(after_opened.json(), won_charge["reference"])] == [
        "dispute_reversal"
    ]


def test_dispute_events_duplicated_then_stale_for_pm_duplicate_webhook(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    charge = succeeded_charge(psp, token="pm_duplicate_webhook")
    dispute = planted(psp, charge["reference"])
    psp.post(f"/{CARDS}/disputes/{dispute['id']}/accept")

    events = [
        verified_event(d) for d in dispute_deliveries(webhook_receiver, charge["reference"], 5)
    ]

    created, created_again, lost, lost_again, stale = events
    assert created == created_again and created["type"] == "dispute.created"
    assert lost == lost_again and lost["type"] == "dispute.lost"
    assert stale["type"] == "dispute.created" and stale["id"] not in (created["id"], lost["id"])
    assert stale["sequence"] < lost["sequence"]
    assert stale["data"]["dispute"]["status"] == "needs_response"


def test_dispute_webhook_retried_until_answered(
    psp: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    charge = succeeded_charge(psp)
    webhook_receiver.wait_for(charge["reference"])
    webhook_receiver.fail_reference(charge["reference"], 3)
    planted(psp, charge["reference"])

    [delivered] = dispute_deliveries(webhook_receiver, charge["reference"], 1)

    tried = [d for d in webhook_receiver.deliveries(charge["reference"]) if d.answered == 500]
    assert [d.event["type"] for d in tried] == ["dispute.created"] * 3
    assert {d.event["id"] for d in tried} == {delivered.event["id"]}


def test_disputes_and_their_verdicts_survive_restart(
    start_sandbox_psp: Callable[[], SandboxPSPProcess], webhook_receiver: WebhookReceiver
) -> None:
    process = start_sandbox_psp()
    with httpx.Client(base_url=process.url) as client:
        charge = succeeded_charge(client)
        webhook_receiver.wait_for(charge["reference"])
        webhook_receiver.fail_reference(charge["reference"], 10**6)
        dispute = planted(client, charge["reference"], outcome="won")
        client.post(f"/{CARDS}/disputes/{dispute['id']}/evidence", json={"text": "proof"})
        wait_until(lambda: webhook_receiver.deliveries(charge["reference"])[1:])

    process.restart()
    webhook_receiver.fail_reference(charge["reference"], 0)

    with httpx.Client(base_url=process.url) as client:
        after = client.get(f"/{CARDS}/disputes/{dispute['id']}").json()
        assert (after["id"], after["status"]) == (dispute["id"], "won")
        listed = client.get(f"/{CARDS}/disputes", params={"reference": charge["reference"]})
        assert [d["id"] for d in listed.json()["data"]] == [dispute["id"]]
    # Retried after the restart, in whatever order their retries fall due (as with real PSPs).
    delivered = dispute_deliveries(webhook_receiver, charge["reference"], 2)
    assert sorted(d.event["type"] for d in delivered) == ["dispute.created", "dispute.won"]
