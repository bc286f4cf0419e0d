"""Deposits that wait for their customer (3-D Secure, pay by bank), end to end through the stack.

The customer is played over HTTP: they open `next_action`'s url (the sandbox PSP's page), press a
button (the form's POST), and are sent back to the merchant's `return_url` (303).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.test_webhook_url import merchant_api
from tests.stack import (
    Stack,
    balance_of,
    create_customer,
    post_payment,
    psp_operations,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

RETURN_URL = "http://127.0.0.1:9/shop/deposit-done?order=7"  # http: a development stack
AMOUNT = 12_345
FORM_CONTENT = {"content-type": "application/x-www-form-urlencoded"}


async def waiting_deposit(
    api: httpx.AsyncClient, method: str, return_url: str | None = RETURN_URL
) -> dict[str, Any]:
    """A deposit of a new customer, once it shows `requires_action`."""
    customer = await create_customer(api)
    body: dict[str, Any] = {
        "customer_id": customer["id"],
        "amount": AMOUNT,
        "currency": "EUR",
        "payment_method": method,
    }
    if return_url is not None:
        body["return_url"] = return_url
    created = await post_payment(api, "/v1/deposits", body)
    assert created.status_code == 202, created.text
    return await wait_status(api, created.json()["id"], {"requires_action"})


async def customer_answers(page_url: str, outcome: str) -> httpx.Response:
    """The customer's browser: the page, then the button's form POST (redirect not followed)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(page_url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "123.45 EUR" in page.text
        assert f'name="outcome" value="{outcome}"' in page.text
        return await browser.post(
            page_url,
            content=f"outcome={outcome}",
            headers=FORM_CONTENT,
        )


@pytest.mark.parametrize(
    ("method", "provider", "outcome", "status", "failure_code"),
    [
        ("pm_3ds_required", "sandbox-cards", "authenticated", "succeeded", None),
        ("pm_3ds_required", "sandbox-cards", "failed", "failed", "authentication_failed"),
        (
            "pm_3ds_required_declined",
            "sandbox-cards",
            "authenticated",
            "failed",
            "provider_declined",
        ),
        ("pm_bank_redirect", "sandbox-bank", "authenticated", "succeeded", None),
        ("pm_bank_redirect", "sandbox-bank", "failed", "failed", "authentication_failed"),
    ],
)
async def test_deposit_through_the_authentication_page(
    api: httpx.AsyncClient,
    stack: Stack,
    method: str,
    provider: str,
    outcome: str,
    status: str,
    failure_code: str | None,
) -> None:
    payment = await waiting_deposit(api, method)
    assert payment["provider"] == provider
    action = payment["next_action"]
    assert action["type"] == "redirect_to_url"
    assert action["redirect_to_url"]["return_url"] == RETURN_URL
    assert action["redirect_to_url"]["url"].startswith(f"{stack.psp.url}/{provider}/authenticate/")
    assert await balance_of(api, payment["customer_id"], "EUR") == {
        "posted": 0,
        "held": 0,
        "available": 0,
    }

    answered = await customer_answers(action["redirect_to_url"]["url"], outcome)
    assert answered.status_code == 303
    back = urlsplit(answered.headers["location"])
    assert back._replace(query="").geturl() == "http://127.0.0.1:9/shop/deposit-done"
    assert parse_qs(back.query) == {"order": ["7"], "payment_id": [payment["id"]]}

    done = await wait_terminal(api, payment["id"])
    assert (done["status"], done["failure_code"]) == (status, failure_code)
    assert done["next_action"] is None
    credited = AMOUNT if status == "succeeded" else 0
    balance = await balance_of(api, payment["customer_id"], "EUR")
    assert balance == {"posted": credited, "held": 0, "available": credited}
    [charge] = psp_operations(stack, provider, payment["id"])
    assert charge["status"] == ("succeeded" if status == "succeeded" else "declined")


async def test_requires_action_is_an_event_with_the_payment(api: httpx.AsyncClient) -> None:
    payment = await waiting_deposit(api, "pm_3ds_required")
    events = await api.get("/v1/events", params={"type": "payment.requires_action", "limit": 100})
    assert events.status_code == 200
    mine = [e for e in events.json()["data"] if e["data"]["object"]["id"] == payment["id"]]
    assert len(mine) == 1
    shown = mine[0]["data"]["object"]
    assert shown["status"] == "requires_action"
    assert shown["next_action"] == payment["next_action"]


async def test_cancel_deposit_waiting_for_its_customer(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    payment = await waiting_deposit(api, "pm_3ds_required")
    canceled = await api.post(f"/v1/payments/{payment['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    [charge] = psp_operations(stack, "sandbox-cards", payment["id"])
    assert (charge["status"], charge["decline_code"]) == ("declined", "canceled")
    # The customer, late on the page, finds nothing to do; a form sent from a page opened
    # before the cancel changes nothing either: sent back, the deposit stays canceled.
    page_url = payment["next_action"]["redirect_to_url"]["url"]
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(page_url)
        late = await browser.post(page_url, content="outcome=authenticated", headers=FORM_CONTENT)
    assert "This payment was canceled." in page.text and "<button" not in page.text
    assert late.status_code == 303
    assert (await wait_terminal(api, payment["id"]))["status"] == "canceled"
    assert (await balance_of(api, payment["customer_id"], "EUR"))["posted"] == 0


async def test_deposit_without_return_url_still_waits_for_its_customer(
    api: httpx.AsyncClient,
) -> None:
    payment = await waiting_deposit(api, "pm_3ds_required", return_url=None)
    assert payment["next_action"]["redirect_to_url"]["return_url"] is None
    answered = await customer_answers(
        payment["next_action"]["redirect_to_url"]["url"], "authenticated"
    )
    assert answered.status_code == 200
    assert (await wait_terminal(api, payment["id"]))["status"] == "succeeded"


@pytest.mark.parametrize(
    "return_url",
    [
        "not a url",
        "ftp://shop.example/done",
        "https://",
        "http://[::1]/done",
        "https://x/" + "a" * 2048,
    ],
)
async def test_refuse_deposit_with_unusable_return_url(
    api: httpx.AsyncClient, return_url: str
) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": AMOUNT,
        "currency": "EUR",
        "payment_method": "pm_3ds_required",
        "return_url": return_url,
    }
    refused = await post_payment(api, "/v1/deposits", body)
    assert refused.status_code == 422, refused.text


async def test_refuse_http_return_url_in_production(
    postgres_url: str, temporal_env: WorkflowEnvironment
) -> None:
    body = {
        "customer_id": "cus_any",
        "amount": AMOUNT,
        "currency": "EUR",
        "payment_method": "pm_3ds_required",
        "return_url": "http://shop.example/done",
    }
    async with merchant_api("production", postgres_url, temporal_env) as production:
        refused = await post_payment(production, "/v1/deposits", body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "return_url_not_allowed"
