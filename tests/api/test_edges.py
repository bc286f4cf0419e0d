"""What the API answers to garbage: never a 5xx, always problem+json with a stable code."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.stack import create_customer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == code
    assert body["type"] == f"https://paysaga.dev/problems/{code}"


async def test_nul_byte_in_a_json_string_is_refused(api: httpx.AsyncClient) -> None:
    body = {
        "external_id": f"ext-{uuid.uuid4()}",
        "full_name": "a\u0000b",
        "birth_date": "1990-01-01",
        "country": "DE",
    }

    response = await api.post("/v1/customers", json=body)

    assert_problem(response, 422, "validation_error")
    assert response.json()["errors"][0]["loc"] == ["body", "full_name"]


async def test_lone_surrogate_in_a_json_string_is_refused(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    raw = (
        '{"customer_id": "' + customer["id"] + '", "amount": 100, "currency": "EUR",'
        ' "payment_method": "pm_\\ud800"}'
    )

    response = await api.post(
        "/v1/deposits",
        content=raw.encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )

    assert_problem(response, 422, "validation_error")


async def test_nul_byte_in_path_and_query_is_refused(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/payments/dep_%00"), 422, "validation_error")
    assert_problem(await api.get("/v1/payments?starting_after=%00"), 422, "validation_error")
    assert_problem(await api.get("/v1/payments?customer_id=a%00b"), 422, "validation_error")


async def test_body_that_is_not_json_is_refused(api: httpx.AsyncClient) -> None:
    for content in (b"\xff\xfe not utf-8", b"{not json", b"[1, 2"):
        response = await api.post(
            "/v1/customers", content=content, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "invalid_json")


async def test_number_beyond_bigint_is_refused(ops_api: httpx.AsyncClient) -> None:
    huge = 2**80
    for path in ("/v1/ops/audit-log", "/v1/ops/reconciliation/mismatches"):
        response = await ops_api.get(path, params={"starting_after": huge})
        assert_problem(response, 422, "validation_error")
    customer = await create_customer(ops_api)
    response = await ops_api.post(
        "/v1/deposits",
        json={
            "customer_id": customer["id"],
            "amount": huge,
            "currency": "EUR",
            "payment_method": "pm_ok",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert_problem(response, 422, "validation_error")


async def test_undeclared_method_is_405_with_allow(api: httpx.AsyncClient) -> None:
    response = await api.request("DELETE", "/v1/customers")

    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


async def test_non_ascii_webhook_signature_is_401(api: httpx.AsyncClient) -> None:
    signature: bytes = f"t={int(time.time())},v1=\u00e9t\u00e9".encode("latin-1")
    response = await api.post(
        "/v1/webhooks/providers/sandbox-cards",
        content=b'{"id": "evt_1"}',
        headers={b"Content-Type": b"application/json", b"Sandbox-Signature": signature},
    )

    assert_problem(response, 401, "invalid_signature")


async def test_replayed_error_is_the_first_answer_byte_for_byte(api: httpx.AsyncClient) -> None:
    body = {
        "customer_id": "cus_nobody",
        "amount": 100,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    first = await api.post("/v1/deposits", json=body, headers=headers)
    replay = await api.post("/v1/deposits", json=body, headers=headers)

    assert_problem(first, 404, "customer_not_found")
    assert replay.status_code == first.status_code
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"


async def test_openapi_documents_errors_as_problem_json(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()

    operation = document["paths"]["/v1/deposits"]["post"]
    for status in ("400", "401", "403", "404", "409", "422", "503"):
        assert PROBLEM in operation["responses"][status]["content"], status
    codes = operation["responses"]["400"]["content"][PROBLEM]["schema"]["properties"]["code"]
    assert "idempotency_key_missing" in codes["examples"]
    idempotency = next(p for p in operation["parameters"] if p["name"] == "idempotency-key")
    assert idempotency["required"] is True
    assert operation["security"] == [{"bearerAuth": []}]
