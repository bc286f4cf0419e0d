"""The API's /metrics: a production scrape needs the metrics token; development stays open."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from devtools.stack import free_port
from paysaga.settings import DEV_OPS_KEY
from tests.api.test_edges import assert_problem
from tests.paysaga.test_production_secrets import LIVE
from tests.stack import Service, Stack

METRICS_TOKEN = "metrics-scraper-token-for-tests"
MERCHANT_KEY = "sk_live_a"  # the production API's one merchant key (LIVE)


@pytest.fixture(scope="module")
def production_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process on the stack's database and Temporal, in production mode."""
    port = free_port()
    env = {
        **stack.api.env,
        **LIVE,
        "PAYSAGA_ENVIRONMENT": "production",
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_METRICS_TOKEN": METRICS_TOKEN,
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("production-api") / "api.log"
    api = Service("production-api", [sys.executable, "-m", "api"], env, log, f"{url}/healthz")
    api.start()
    try:
        yield url
    finally:
        api.stop()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {MERCHANT_KEY}", METRICS_TOKEN],
    ids=["none", "wrong-token", "merchant-key", "token-without-bearer"],
)
def test_production_refuses_a_scrape_without_the_metrics_token(
    production_api: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = httpx.get(f"{production_api}/metrics", headers=headers)

    assert_problem(response, 401, "unauthorized")
    assert "python_info" not in response.text


def test_production_serves_the_scrape_with_the_metrics_token(production_api: str) -> None:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    response = httpx.get(f"{production_api}/metrics", headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "python_info" in response.text


def test_development_serves_the_scrape_without_a_token(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/metrics")

    assert response.status_code == 200, response.text
    assert "python_info" in response.text
    # A key is no token, but does not hurt either.
    authorized = httpx.get(
        f"{stack.api_url}/metrics", headers={"Authorization": f"Bearer {DEV_OPS_KEY}"}
    )
    assert authorized.status_code == 200
