"""The sandbox PSP's customer authentication over real HTTP: the page, its form, its webhook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.psp_fixtures import SandboxPSPProcess, WebhookReceiver
from tests.sandbox_psp.test_service import (
    BANK,
    CARDS,
    charge_body,
    operation,
    verified_event,
    wait_for_status,
)

RETURN_URL = "http://127.0.0.1:9/shop/done?order=42"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def psp(receiving_psp: SandboxPSPProcess) -> Iterator[httpx.Client]:
    """An HTTP client of the session's PSP (webhooks go to `webhook_receiver`)."""
    with httpx.Client(base_url=receiving_psp.url, timeout=10.0) as client:
        yield client


def waiting_charge(
    client: httpx.Client, token: str, provider: str = CARDS, return_url: str = RETURN_URL
) -> tuple[dict[str, Any], str]:
    """A charge that waits for its customer, and the URL of its authentication page."""
    body = charge_body(token, amount=12_345)
    created = client.post(f"/{provider}/charges", json=body)
    assert created.status_code == 201
    assert created.json()["status"] == "requires_action"
    key = body["idempotency_key"]
    started = client.post(
        f"/{provider}/charges/{key}/authentication", json={"return_url": return_url}
    )
    assert started.status_code == 200
    answer = started.json()
    assert answer["status"] == "required"
    return body, answer["url"]


def answer_page(client: httpx.Client, url: str, outcome: str) -> httpx.Response:
    """The customer opens the page, then presses a button (the form's POST)."""
    page = client.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'name="outcome" value="{outcome}"' in page.text
    return client.post(url, content=f"outcome={outcome}", headers=FORM)


@pytest.mark.parametrize(
    ("token", "provider", "outcome", "status", "decline_code"),
    [
        ("pm_3ds_required", CARDS, "authenticated", "succeeded", None),
        ("pm_3ds_required", CARDS, "failed", "declined", "authentication_failed"),
        ("pm_3ds_required_declined", CARDS, "authenticated", "declined", "card_declined"),
        ("pm_bank_redirect", BANK, "authenticated", "succeeded", None),
        ("pm_bank_redirect", BANK, "failed", "declined", "authentication_failed"),
    ],
)
def test_authentication_page_decides_the_charge(
    psp: httpx.Client,
    webhook_receiver: WebhookReceiver,
    token: str,
    provider: str,
    outcome: str,
    status: str,
    decline_code: str | None,
) -> None:
    body, url = waiting_charge(psp, token, provider)
    assert psp.get(url).text.count("123.45 EUR") == 1  # the amount, in euros
    answered = answer_page(psp, url, outcome)
    assert answered.status_code == 303
    back = urlsplit(answered.headers["location"])
    assert back._replace(query="").geturl() == "http://127.0.0.1:9/shop/done"
    assert parse_qs(back.query) == {"order": ["42"], "payment_id": [body["reference"]]}

    settled = wait_for_status(psp, provider, body["idempotency_key"])
    assert (settled["status"], settled["decline_code"]) == (status, decline_code)
    [delivery] = webhook_receiver.wait_for(body["reference"])
    event = verified_event(delivery)
    assert event["type"] == f"charge.{status}"
    assert event["data"]["operation"]["decline_code"] == decline_code
    # Read again, the authentication tells how it ended; the page has nothing left to do.
    again = psp.post(
        f"/{provider}/charges/{body['idempotency_key']}/authentication",
        json={"return_url": RETURN_URL},
    ).json()
    assert again == {
        "status": "authenticated" if outcome == "authenticated" else "failed",
        "url": None,
    }
    assert "Authenticate</button>" not in psp.get(url).text


def test_charge_waits_for_customer_until_answered(psp: httpx.Client) -> None:
    body, _ = waiting_charge(psp, "pm_3ds_required")
    shown = operation(psp, CARDS, body["idempotency_key"]).json()
    assert shown["status"] == "requires_action"
    report = psp.get(f"/{CARDS}/settlement-report").json()["data"]
    assert body["reference"] not in {line["reference"] for line in report}


def test_cancel_charge_waiting_for_customer(
    psp: httpx.Client,
    webhook_receiver: WebhookReceiver,
) -> None:
    body, url = waiting_charge(psp, "pm_3ds_required")
    key = body["idempotency_key"]
    canceled = psp.post(f"/{CARDS}/charges/{key}/cancel")
    assert canceled.status_code == 200
    assert (canceled.json()["status"], canceled.json()["decline_code"]) == ("declined", "canceled")
    [delivery] = webhook_receiver.wait_for(body["reference"])
    assert verified_event(delivery)["type"] == "charge.declined"
    # The customer answering afterwards changes nothing, and is still sent back.
    late = psp.post(url, content="outcome=authenticated", headers=FORM)
    assert late.status_code == 303
    assert operation(psp, CARDS, key).json()["status"] == "declined"


def test_cancel_leaves_charge_the_customer_authenticated(psp: httpx.Client) -> None:
    body, url = waiting_charge(psp, "pm_3ds_required")
    assert answer_page(psp, url, "authenticated").status_code == 303
    after = psp.post(f"/{CARDS}/charges/{body['idempotency_key']}/cancel").json()
    assert after["status"] in ("pending", "succeeded")
    assert wait_for_status(psp, CARDS, body["idempotency_key"])["status"] == "succeeded"


def test_page_without_return_url_says_done(psp: httpx.Client) -> None:
    _, url = waiting_charge(psp, "pm_3ds_required", return_url="")
    answered = answer_page(psp, url, "authenticated")
    assert answered.status_code == 200 and "close this page" in answered.text


def test_page_refuses_unknown_outcome(psp: httpx.Client) -> None:
    _, url = waiting_charge(psp, "pm_3ds_required")
    refused = psp.post(url, content="outcome=maybe", headers=FORM)
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_outcome"


def test_pay_by_bank_refused_by_cards_provider(psp: httpx.Client) -> None:
    refused = psp.post(f"/{CARDS}/charges", json=charge_body("pm_bank_redirect"))
    assert refused.status_code == 422
    assert refused.json()["error"] == "unsupported_payment_method"


def test_page_escapes_what_it_shows(psp: httpx.Client) -> None:
    body = charge_body("pm_3ds_required")
    body["reference"] = "<script>alert(1)</script>"
    assert psp.post(f"/{CARDS}/charges", json=body).status_code == 201
    key = body["idempotency_key"]
    url = psp.post(f"/{CARDS}/charges/{key}/authentication", json={}).json()["url"]
    page = psp.get(url).text
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_authentication_of_unknown_charge_is_not_found(psp: httpx.Client) -> None:
    missing = psp.post(f"/{CARDS}/charges/nope/authentication", json={})
    assert missing.status_code == 404 and missing.json()["error"] == "operation_not_found"
    assert psp.get(f"/{CARDS}/authenticate/ch_nope").status_code == 404


def test_page_url_under_the_public_address(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    """Behind a name browsers do not reach (a container's), the page is under `psp_public_url`."""
    public = "https://psp.example:8443/"
    process = SandboxPSPProcess(
        tmp_path / "psp.sqlite3",
        f"{webhook_receiver.url}/psp",
        env={"PAYSAGA_PSP_PUBLIC_URL": public},
    )
    process.start()
    try:
        with httpx.Client(base_url=process.url, timeout=10.0) as client:
            body = charge_body("pm_3ds_required")
            assert client.post(f"/{CARDS}/charges", json=body).status_code == 201
            key = body["idempotency_key"]
            asked = client.post(f"/{CARDS}/charges/{key}/authentication", json={}).json()
    finally:
        process.stop()
    assert asked["url"].startswith(f"https://psp.example:8443/{CARDS}/authenticate/ch_")
