"""Traces: an incoming W3C `traceparent` continues into the API's, the database's, the worker's
and the PSP call's spans, and every log line of that work carries the trace and span ids."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import pytest

from paysaga.observability.tracing import traces_exporter
from paysaga.settings import Settings
from tests.api.test_tracing import spans
from tests.stack import Stack, create_customer, wait_terminal


@pytest.mark.asyncio(loop_scope="session")
async def test_request_with_a_traceparent_continues_its_trace(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    customer = await create_customer(api)
    body = {"customer_id": customer["id"], "amount": 800, "currency": "EUR"}
    response = await api.post(
        "/v1/deposits",
        json={**body, "payment_method": "pm_ok"},
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01", "Idempotency-Key": parent_id},
    )
    assert response.status_code == 202, response.text
    payment_id = response.json()["id"]
    await wait_terminal(api, payment_id)

    ours = f"0x{trace_id}"
    deadline = time.monotonic() + 30  # the batch processor exports every few seconds
    while True:
        api_spans = [s for s in spans(stack.api.stdout_path.read_text()) if trace(s) == ours]
        worker_spans = [s for s in spans(stack.worker.stdout_path.read_text()) if trace(s) == ours]
        server = [s for s in api_spans if s["kind"] == "SpanKind.SERVER"]
        if (
            server
            and any(s["name"] == "RunActivity:provider.charge" for s in worker_spans)
            and any(is_psp_call(s, stack.psp.url) for s in worker_spans)
        ):
            break
        assert time.monotonic() < deadline, sorted({s["name"] for s in api_spans + worker_spans})
        await asyncio.sleep(0.5)

    assert [(s["name"], s["parent_id"]) for s in server] == [
        ("POST /v1/deposits", f"0x{parent_id}")
    ]
    assert server[0]["attributes"]["paysaga.request_id"] == response.headers["x-request-id"]
    assert any(s["attributes"].get("db.system") == "postgresql" for s in api_spans)
    assert any(s["attributes"].get("db.system") == "postgresql" for s in worker_spans)
    worker_lines = [
        line
        for line in map(json.loads, stack.worker.log_path.read_text().splitlines())
        if line.get("payment_id") == payment_id
    ]
    assert worker_lines and all(line.get("trace_id") == trace_id for line in worker_lines)
    assert all(len(line.get("span_id", "")) == 16 for line in worker_lines)


def trace(span: dict[str, Any]) -> str:
    return str(span["context"]["trace_id"])


def is_psp_call(span: dict[str, Any], psp_url: str) -> bool:
    attributes = span["attributes"]
    url = str(attributes.get("url.full") or attributes.get("http.url") or "")
    return span["kind"].endswith("CLIENT") and url.startswith(psp_url)


@pytest.mark.parametrize(
    ("environ", "legacy", "expected"),
    [
        ({}, "", None),
        ({"OTEL_TRACES_EXPORTER": "console"}, "", ("console", None)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "", ("otlp", None)),
        (
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            "",
            None,
        ),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, "", None),
        ({}, "http://collector:4318/v1/traces", ("otlp", "http://collector:4318/v1/traces")),
        ({}, "console", ("console", None)),
    ],
)
def test_traces_follow_the_standard_otel_variables(
    environ: dict[str, str], legacy: str, expected: tuple[str, str | None] | None
) -> None:
    settings = Settings(otel_exporter_endpoint=legacy)

    assert traces_exporter(settings, environ) == expected
