"""A merchant's webhook URL: what the schema's pattern accepts is a URL every client can parse.

The schema fuzzer echoes a merchant's `webhook_url` back and parses it; a pattern that let
`http://[` through made Python's own `urlsplit` raise (and the outbox could never have sent to it).
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.schemas import HTTP_URL_PATTERN, MerchantUpdate
from paysaga.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "http://[",
        "http://a]b",
        "http://[::1",
        "http://host:99999/h",
        "http://host:65536",
        "http://host:/h",
        "http://host:abc",
        "https://user:pw@host/h",
        "ftp://host/h",
        "http://",
        "http://host/\x14",
        "http://[::1]:8080/h",
    ],
)
def test_a_url_no_client_can_use_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        MerchantUpdate(webhook_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://merchant.example.test/hooks/1?x=1#f",
        "http://127.0.0.1:8080/h",
        "http://localhost:65535/h",
        "https://xn--bcher-kva.example/",
        "http://host",
    ],
)
def test_a_usable_url_is_taken_as_written(url: str) -> None:
    assert MerchantUpdate(webhook_url=url).webhook_url == url


@settings(max_examples=400, deadline=None)
@given(st.from_regex(HTTP_URL_PATTERN, fullmatch=True))
def test_every_url_the_pattern_accepts_parses(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.port is None or 0 <= parts.port <= 65535  # .port raises when out of range
    assert httpx.URL(url).host
    assert MerchantUpdate(webhook_url=url).webhook_url == url  # the schema's parsers take it too


@contextlib.asynccontextmanager
async def merchant_api(
    environment: str, postgres_url: str, temporal_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process, in `environment`, with an ops key of a merchant of its own."""
    key = f"sk_live_{uuid.uuid4().hex}"
    settings = Settings(
        _env_file=None,
        environment=environment,
        database_url=postgres_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        api_keys={
            key: {"merchant": f"mer_url_{uuid.uuid4().hex[:8]}", "scopes": ["payments", "ops"]}
        },
        codec_keys={"live-1": base64.b64encode(os.urandom(32)).decode()},
        codec_current_key_id="live-1",
        data_keys={"data-live-1": base64.b64encode(os.urandom(32)).decode()},
        data_current_key_id="data-live-1",
        decision_signing_keys=[os.urandom(32).hex()],
        psp_webhook_secrets={"sandbox-cards": "whsec_live_a", "sandbox-bank": "whsec_live_b"},
        merchant_webhook_secret="whsec_live_merchant",
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        yield client


# Loopback, cloud metadata (link-local), private, unspecified, multicast, reserved and shared
# (carrier-grade NAT) addresses, a loopback name, and plain http.
NOT_ALLOWED_IN_PRODUCTION = [
    "https://127.0.0.1:8443/hooks",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.8/hooks",
    "https://192.168.1.20/hooks",
    "https://0.0.0.0/hooks",
    "https://224.0.0.1/hooks",
    "https://240.0.0.1/hooks",
    "https://100.64.0.1/hooks",
    "https://localhost:8443/hooks",
    "https://hooks.localhost/hooks",
    "http://hooks.merchant.example/paysaga",
]
SECRET = "whsec_" + "u" * 24


@pytest.mark.asyncio(loop_scope="session")
async def test_webhook_urls_to_internal_addresses_are_refused_in_production(
    postgres_url: str, temporal_env: WorkflowEnvironment
) -> None:
    async with merchant_api("production", postgres_url, temporal_env) as api:
        refused = [
            await api.patch("/v1/merchant", json={"webhook_url": u, "webhook_secret": SECRET})
            for u in NOT_ALLOWED_IN_PRODUCTION
        ]
        public = "https://hooks.merchant.example:8443/paysaga?v=1"
        taken = await api.patch(
            "/v1/merchant", json={"webhook_url": public, "webhook_secret": SECRET}
        )
        after = await api.get("/v1/merchant")

    assert [(r.status_code, r.json()["code"]) for r in refused] == [
        (422, "webhook_url_not_allowed")
    ] * len(NOT_ALLOWED_IN_PRODUCTION)
    assert {r.headers["content-type"] for r in refused} == {"application/problem+json"}
    assert taken.status_code == 200, taken.text
    assert after.json()["webhook_url"] == public  # as the merchant wrote it


@pytest.mark.asyncio(loop_scope="session")
async def test_webhook_urls_to_internal_addresses_are_allowed_in_development(
    postgres_url: str, temporal_env: WorkflowEnvironment
) -> None:
    async with merchant_api("development", postgres_url, temporal_env) as api:
        answers = [
            await api.patch("/v1/merchant", json={"webhook_url": u, "webhook_secret": SECRET})
            for u in NOT_ALLOWED_IN_PRODUCTION
        ]

    assert [(r.status_code, r.json()["webhook_url"]) for r in answers] == [
        (200, u) for u in NOT_ALLOWED_IN_PRODUCTION
    ]
