"""The sandbox PSP's outage switch and call counts: what the breaker tests drive and read."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sandbox_psp.test_service import BANK, CARDS, charge_body, operation, psp  # noqa: F401


@pytest.fixture
def down_cards(psp: httpx.Client) -> Iterator[httpx.Client]:  # noqa: F811
    """`sandbox-cards` set down for the test, back up after it whatever happens."""
    assert psp.post(f"/{CARDS}/_sandbox/mode", json={"mode": "down"}).status_code == 200
    try:
        yield psp
    finally:
        psp.post(f"/{CARDS}/_sandbox/mode", json={"mode": "ok"})


def test_provider_set_down_refuses_every_call_503_without_processing(
    down_cards: httpx.Client,
) -> None:
    before = down_cards.get(f"/{CARDS}/_sandbox/stats").json()
    body = charge_body("pm_ok")

    refused = down_cards.post(f"/{CARDS}/charges", json=body)

    assert refused.status_code == 503
    assert refused.json()["error"] == "provider_unavailable"
    assert operation(down_cards, CARDS, body["idempotency_key"]).status_code == 404
    after = down_cards.get(f"/{CARDS}/_sandbox/stats").json()
    assert after["requests"] == before["requests"] + 1
    assert after["by_operation"]["charge"]["unavailable"] == (
        before["by_operation"]["charge"]["unavailable"] + 1
    )
    # The other provider is not affected.
    assert down_cards.post(f"/{BANK}/charges", json=charge_body("pm_ok")).status_code == 201


def test_provider_set_ok_again_processes_calls(down_cards: httpx.Client) -> None:
    assert down_cards.post(f"/{CARDS}/_sandbox/mode", json={"mode": "ok"}).json() == {
        "provider": CARDS,
        "mode": "ok",
    }
    before = down_cards.get(f"/{CARDS}/_sandbox/stats").json()

    assert down_cards.post(f"/{CARDS}/charges", json=charge_body("pm_ok")).status_code == 201

    after = down_cards.get(f"/{CARDS}/_sandbox/stats").json()
    assert after["by_operation"]["charge"]["answered"] == (
        before["by_operation"]["charge"]["answered"] + 1
    )


def test_unknown_mode_is_refused(psp: httpx.Client) -> None:  # noqa: F811
    answer = psp.post(f"/{CARDS}/_sandbox/mode", json={"mode": "sideways"})

    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"


def test_provider_set_slow_processes_calls_but_answers_after_the_client_gave_up(
    psp: httpx.Client,  # noqa: F811
) -> None:
    assert psp.post(f"/{CARDS}/_sandbox/mode", json={"mode": "slow"}).status_code == 200
    try:
        body = charge_body("pm_ok")
        with pytest.raises(httpx.ReadTimeout):
            psp.post(f"/{CARDS}/charges", json=body, timeout=0.3)

        # Done all the same: the provider's books have it.
        assert operation(psp, CARDS, body["idempotency_key"]).status_code == 200
        # The other provider is not affected.
        assert psp.post(f"/{BANK}/charges", json=charge_body("pm_ok"), timeout=0.3).is_success
    finally:
        psp.post(f"/{CARDS}/_sandbox/mode", json={"mode": "ok"})
