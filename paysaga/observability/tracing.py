"""OpenTelemetry traces across API, workflows and activities; off unless an exporter is set."""

from __future__ import annotations

from temporalio.contrib.opentelemetry import TracingInterceptor

from paysaga.settings import Settings


def setup_tracing(settings: Settings, service_name: str) -> list[TracingInterceptor]:
    """Install the process's tracer provider; the Temporal interceptors to use, none when off.

    With no exporter configured nothing is traced at all, so the hot path pays nothing.
    `otel_exporter_endpoint` is an OTLP/HTTP traces URL (needs the `otel` extra), or `console`.
    """
    endpoint = settings.otel_exporter_endpoint
    if not endpoint:
        return []
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if endpoint == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(
                "PAYSAGA_OTEL_EXPORTER_ENDPOINT needs the OTLP exporter: pip install 'paysaga[otel]'"
            ) from exc
        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return [TracingInterceptor()]


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_endpoint)


def flush_tracing() -> None:
    """Export the spans still batched, and stop the exporter (a process that leaves without
    interpreter finalization runs no atexit hook that would)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
