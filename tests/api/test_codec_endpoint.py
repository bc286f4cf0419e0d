"""Workflow histories are ciphertext at rest; the API's codec endpoint decrypts them for operators."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devtools.stack import installed_binary
from paysaga.cli import keys
from paysaga.cli.main import build_parser
from paysaga.codec import ENCODING, KEY_ID_METADATA, data_converter
from paysaga.settings import (
    DEV_MERCHANT_2_KEY,
    DEV_MERCHANT_KEY,
    DEV_OPS_KEY,
    DEV_PLATFORM_KEY,
    Settings,
)
from tests.stack import Stack, create_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")

UI_ORIGIN = f"http://127.0.0.1:{Settings().temporal_ui_port}"


@pytest_asyncio.fixture(loop_scope="session")
async def codec_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the codec endpoint as the installation's operator: the dev platform key,
    which carries the `codec` scope."""
    headers = {"Authorization": f"Bearer {DEV_PLATFORM_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


async def started_deposit(api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A succeeded deposit of a customer named Ada Lovelace, and the customer."""
    customer = await create_customer(api, full_name="Ada Lovelace")
    body = {
        "customer_id": customer["id"],
        "amount": 2_500,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    payment = await wait_terminal(api, response.json()["id"])
    assert payment["status"] == "succeeded"
    return payment, customer


async def start_input(client: Client, workflow_id: str) -> list[Payload]:
    """The payloads of the workflow's start input, as the history stores them."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return list(started.input.payloads)


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """The codec server protocol's body: metadata values and data in base64."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


async def test_workflow_history_is_ciphertext_at_rest(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment
) -> None:
    payment, customer = await started_deposit(api)

    payloads = await start_input(temporal_env.client, payment["id"])

    assert payloads
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == Settings().codec_current_key_id.encode()
        raw = payload.SerializeToString()
        for secret in (customer["id"], payment["id"], "pm_ok", "json/plain"):
            assert secret.encode() not in raw


async def test_history_reads_with_the_codec(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment
) -> None:
    payment, customer = await started_deposit(api)
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=data_converter(Settings()),
    )

    history = await client.get_workflow_handle(payment["id"]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [deposit] = await client.data_converter.decode(started.input.payloads, [dict[str, Any]])

    assert deposit["payment_id"] == payment["id"]
    assert deposit["customer_id"] == customer["id"]


async def test_decode_history_payloads_with_codec_key(
    api: httpx.AsyncClient,
    codec_api: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
) -> None:
    payment, _ = await started_deposit(api)
    payloads = await start_input(temporal_env.client, payment["id"])

    response = await codec_api.post(
        "/codec/decode", json=as_json(payloads), headers={"X-Namespace": "default"}
    )

    assert response.status_code == 200, response.text
    [decoded] = response.json()["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(decoded["data"]))["payment_id"] == payment["id"]


async def test_encode_then_decode_round_trip(codec_api: httpx.AsyncClient) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"full_name": "Ada Lovelace"}')

    encoded = await codec_api.post("/codec/encode", json=as_json([plain]))
    assert encoded.status_code == 200, encoded.text
    [sealed] = encoded.json()["payloads"]
    assert b"Ada Lovelace" not in base64.b64decode(sealed["data"])
    decoded = await codec_api.post("/codec/decode", json=encoded.json())

    assert decoded.json() == as_json([plain])


@pytest.mark.parametrize("secret", [DEV_MERCHANT_KEY, DEV_OPS_KEY, DEV_MERCHANT_2_KEY])
async def test_codec_refuses_every_merchant_key(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment, secret: str
) -> None:
    """One merchant's operators never read another's customers: the codec key is installation-wide."""
    payment, _ = await started_deposit(api)
    payloads = await start_input(temporal_env.client, payment["id"])
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as client:
        decoded = await client.post("/codec/decode", json=as_json(payloads))
        encoded = await client.post("/codec/encode", json={"payloads": []})

    assert_problem(decoded, 403, "forbidden")
    assert_problem(encoded, 403, "forbidden")


async def test_decode_without_key_is_unauthorized(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        anonymous = await client.post("/codec/decode", json={"payloads": []})

    assert_problem(anonymous, 401, "unauthorized")


async def test_platform_key_needs_the_codec_scope(stack: Stack) -> None:
    plain = await keys.create_key(stack.database_url, "merchant admin", ["platform"], None)
    operator = await keys.create_key(
        stack.database_url, "installation operator", ["platform", "codec"], None
    )

    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        refused = await client.post(
            "/codec/decode",
            json={"payloads": []},
            headers={"Authorization": f"Bearer {plain.secret}"},
        )
        served = await client.post(
            "/codec/decode",
            json={"payloads": []},
            headers={"Authorization": f"Bearer {operator.secret}"},
        )

    assert_problem(refused, 403, "forbidden")
    assert served.status_code == 200, served.text
    assert operator.row.scopes == ["platform", "codec"]


async def test_decode_returns_temporal_plaintext_as_it_is(codec_api: httpx.AsyncClient) -> None:
    """Search attributes and markers are never encrypted: the UI and the CLI send them too."""
    attribute = Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"EUR"')

    response = await codec_api.post("/codec/decode", json=as_json([attribute]))

    assert response.status_code == 200, response.text
    assert response.json() == as_json([attribute])


async def test_decode_payload_of_unknown_key_is_rejected(codec_api: httpx.AsyncClient) -> None:
    foreign = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"retired"}, data=b"x" * 40)

    response = await codec_api.post("/codec/decode", json=as_json([foreign]))

    assert_problem(response, 422, "codec_error")
    assert "retired" in response.json()["detail"]


async def test_cors_preflight_from_temporal_ui_is_allowed(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        allowed = await client.options(
            "/codec/decode",
            headers={
                "Origin": UI_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        foreign = await client.options(
            "/codec/decode",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        other_route = await client.options(
            "/v1/deposits", headers={"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers
    assert "access-control-allow-origin" not in other_route.headers


async def test_cli_creates_a_platform_key_with_the_codec_scope() -> None:
    args = build_parser().parse_args(
        ["keys", "create", "--platform", "--name", "ops", "--scope", "platform", "--scope", "codec"]
    )

    assert (args.platform, args.scopes) == (True, ["platform", "codec"])


async def test_temporal_cli_reads_a_history_through_the_codec_with_the_platform_key(
    api: httpx.AsyncClient, stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    """The README's `temporal workflow show --codec-endpoint ... --codec-auth` works, with the
    installation operator's key, and only with it."""
    payment, customer = await started_deposit(api)

    async def show(secret: str) -> tuple[int, str, str]:
        """`temporal workflow show` as JSON: its exit status, output and errors."""
        process = await asyncio.create_subprocess_exec(
            installed_binary("temporal"),
            "workflow",
            "show",
            "-w",
            payment["id"],
            "--address",
            temporal_env.client.service_client.config.target_host,
            "--codec-endpoint",
            f"{stack.api_url}/codec",
            "--codec-auth",
            f"Bearer {secret}",
            "-o",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    operator, merchant = await show(DEV_PLATFORM_KEY), await show(DEV_OPS_KEY)

    assert operator[0] == 0, operator[2]
    started = json.loads(operator[1])["events"][0]["workflowExecutionStartedEventAttributes"]
    [payload] = started["input"]["payloads"]
    assert json.loads(base64.b64decode(payload["data"]))["customer_id"] == customer["id"]
    assert merchant[0] != 0
    assert customer["id"] not in merchant[1]
