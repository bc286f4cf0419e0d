"""OpenTelemetry traces across API, workflows and activities; off unless an exporter is set.

Configured by the standard variables (https://opentelemetry.io/docs/specs/otel/configuration/):
`OTEL_TRACES_EXPORTER` (`otlp` or `console`; `none` or unset: off unless an OTLP endpoint is
set), `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and the exporter's
other `OTEL_EXPORTER_OTLP_*` (OTLP/HTTP; needs the `otel` extra), `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_SDK_DISABLED`. The incoming W3C
`traceparent` of an API request is honoured (the default propagators).
`PAYSAGA_OTEL_EXPORTER_ENDPOINT` (an OTLP/HTTP traces URL, or `console`) is a deprecated alias.

When on: the API's requests (FastAPI), every httpx call (PSPs, merchants' webhook endpoints),
every PostgreSQL statement (psycopg) and Temporal's workflows and activities (its interceptor).
With nothing configured nothing is traced at all, so the hot path pays nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from temporalio.contrib.opentelemetry import TracingInterceptor

from paysaga.settings import Settings

log = logging.getLogger(__name__)

Exporter = Literal["otlp", "console"]
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def traces_exporter(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[Exporter, str | None] | None:
    """The exporter the configuration asks for, and an endpoint of the deprecated alias; None: off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen in ("otlp", "console"):
        return ("otlp" if chosen == "otlp" else "console"), None
    if chosen and chosen != "none":
        raise RuntimeError(f"OTEL_TRACES_EXPORTER={chosen}: paysaga knows otlp, console, none")
    if chosen != "none" and any(env.get(name) for name in OTLP_ENDPOINTS):
        return "otlp", None
    legacy = settings.otel_exporter_endpoint
    if legacy and chosen != "none":
        log.warning(
            "PAYSAGA_OTEL_EXPORTER_ENDPOINT is deprecated: set OTEL_TRACES_EXPORTER=%s%s",
            "console" if legacy == "console" else "otlp",
            "" if legacy == "console" else " and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        )
        return ("console", None) if legacy == "console" else ("otlp", legacy)
    return None


def setup_tracing(settings: Settings, service_name: str) -> list[TracingInterceptor]:
    """Install the process's tracer provider and the httpx and psycopg instrumentation; the
    Temporal interceptors to use, none when tracing is off."""
    chosen = traces_exporter(settings)
    if chosen is None:
        return []
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        resource["service.name"] = service_name
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(BatchSpanProcessor(span_exporter(*chosen)))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    # Statements' text without their parameters (the personal data stays out of the spans).
    PsycopgInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
    return [TracingInterceptor()]


def span_exporter(exporter: Exporter, endpoint: str | None) -> Any:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if exporter == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install 'paysaga[otel]'"
        ) from exc
    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


def instrument_api(app: Any) -> None:
    """The API's server span per request (route template as its name), from the caller's
    `traceparent` when it sends one. Health checks and scrapes are not traced."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,metrics")


def tracing_enabled(settings: Settings) -> bool:
    return traces_exporter(settings) is not None


def flush_tracing() -> None:
    """Export the spans still batched, and stop the exporter (a process that leaves without
    interpreter finalization runs no atexit hook that would)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
