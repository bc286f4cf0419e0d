"""Request bodies the API refuses before reading them whole: too large (413) or nested too deep."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paysaga.settings import DEV_OPS_KEY, DEV_PLATFORM_KEY, DEV_PSP_WEBHOOK_SECRETS
from providers.webhooks import SIGNATURE_HEADER, sign
from tests.api.test_edges import assert_problem
from tests.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

MiB = 1024 * 1024
KiB = 1024
CHUNK = b"x" * MiB
WEBHOOK = "/v1/webhooks/providers/sandbox-cards"
# A request this large must not cost the API anything near its size in memory.
MEMORY_GROWTH_MAX = 50 * MiB


async def stream_of(size: int) -> AsyncIterator[bytes]:
    """`size` bytes, sent a mebibyte at a time: the client never holds the body."""
    sent = 0
    while sent < size:
        piece = CHUNK[: min(MiB, size - sent)]
        sent += len(piece)
        yield piece


def peak_memory_reset(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS (Linux), and return it in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_memory(pid)


def peak_memory(pid: int) -> int:
    """The process's peak resident set size since the last reset, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KiB
    raise AssertionError("no VmHWM in /proc/<pid>/status")


async def post_stream(
    stack: Stack, path: str, size: int, *, declared: bool, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, int]:
    """POST a `size`-byte body (with Content-Length, or chunked); the answer and the API's
    peak memory growth while it took it."""
    assert stack.api.process is not None
    pid = stack.api.process.pid
    before = peak_memory_reset(pid)
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    if declared:
        sent_headers["Content-Length"] = str(size)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as client:
        response = await client.post(path, content=stream_of(size), headers=sent_headers)
    return response, peak_memory(pid) - before


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_200_mib_body_is_413_before_any_key_with_memory_bounded(
    stack: Stack, declared: bool
) -> None:
    response, growth = await post_stream(stack, "/v1/customers", 200 * MiB, declared=declared)

    assert_problem(response, 413, "payload_too_large")
    assert growth < MEMORY_GROWTH_MAX, f"the API's peak memory grew by {growth / MiB:.0f} MiB"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_100_mib_webhook_is_413_before_its_signature_with_memory_bounded(
    stack: Stack, declared: bool
) -> None:
    signature = {SIGNATURE_HEADER: f"t={int(time.time())},v1=00"}
    response, growth = await post_stream(
        stack, WEBHOOK, 100 * MiB, declared=declared, headers=signature
    )

    assert_problem(response, 413, "payload_too_large")
    assert growth < MEMORY_GROWTH_MAX, f"the API's peak memory grew by {growth / MiB:.0f} MiB"


async def test_body_of_any_media_type_over_a_mebibyte_is_413(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {DEV_OPS_KEY}", "Content-Type": "text/plain"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        for path in ("/v1/customers", "/v1/merchant", "/codec/decode"):
            method = "PATCH" if path == "/v1/merchant" else "POST"
            response = await client.request(method, path, content=b"x" * (5 * MiB), headers=headers)
            assert_problem(response, 413, "payload_too_large")


async def test_bodies_within_the_limits_reach_their_routes(api: httpx.AsyncClient) -> None:
    # Just under 1 MiB of JSON: the route answers (its own validation), not the size limit.
    padding = "a" * (MiB - 200)
    response = await api.post(
        "/v1/customers",
        json={"external_id": "x", "full_name": padding, "birth_date": "1990-01-01"},
    )
    assert response.status_code == 422, response.text
    # A webhook just under 64 KiB reaches its signature check; just over it does not.
    for size, status, code in ((63 * KiB, 401, "invalid_signature"), (65 * KiB, 413, None)):
        response = await api.post(
            WEBHOOK,
            content=b"{" + b" " * (size - 2) + b"}",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: "t=1,v1=00"},
        )
        assert_problem(response, status, code or "payload_too_large")


async def test_openapi_lists_413_for_every_operation_with_a_body(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    with_body = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]

    assert with_body
    for method, path, operation in with_body:
        response = operation["responses"].get("413")
        assert response is not None, f"{method} {path} does not list 413"
        examples = response["content"]["application/problem+json"]["schema"]["properties"]
        assert examples["code"]["examples"] == ["payload_too_large"]


# JSON nested 100,000 deep: a list of lists, and an object of objects.
DEPTH = 100_000
DEEP_ARRAYS = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECTS = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
# Every route kind that takes JSON: merchant, ops, platform, codec, money-moving, idempotent.
DEEP_ROUTES = [
    ("POST", "/v1/customers"),
    ("POST", "/v1/deposits"),
    ("PATCH", "/v1/merchant"),
    ("POST", "/v1/merchants"),
    ("POST", "/codec/decode"),
    ("POST", "/v1/wallet/bets"),
]


@pytest.mark.parametrize(
    "key", [None, DEV_OPS_KEY, DEV_PLATFORM_KEY], ids=["no-key", "ops", "platform"]
)
@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
async def test_json_nested_100000_deep_is_400_on_every_route(
    stack: Stack, body: bytes, key: str | None
) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        for method, path in DEEP_ROUTES:
            response = await client.request(method, path, content=body, headers=headers)
            assert_problem(response, 400, "json_too_deep")


@pytest.mark.parametrize("depth", [64, 1_500, 30_000])
async def test_signed_webhook_nested_deep_is_422(api: httpx.AsyncClient, depth: int) -> None:
    # Only the provider can sign: even its own deep event is a 4xx, never a crash.
    body = b'{"id": "evt_deep", "data": ' + b"[" * depth + b"]" * depth + b"}"
    timestamp = int(time.time())
    secret = DEV_PSP_WEBHOOK_SECRETS["sandbox-cards"]
    headers: dict[str, Any] = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }

    response = await api.post(WEBHOOK, content=body, headers=headers)

    assert_problem(response, 422, "invalid_event")
