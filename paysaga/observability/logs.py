"""Logging of every paysaga process: JSON lines carrying the payment, request and workflow ids."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace
from temporalio import activity, workflow

from domain.redaction import RedactPersonalData

# What the API knows of the request being served (`request_id`, `payment_id`), read lazily by the
# formatter: a Mapping so that the API can resolve the payment id from the route once it matched.
log_context: ContextVar[Mapping[str, Any] | None] = ContextVar("paysaga_log_context", default=None)

CONTEXT_KEYS = ("payment_id", "request_id", "workflow_id", "activity")


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ids a log record is about: from its `extra`, the Temporal SDK's details, the request."""
    fields: dict[str, Any] = {}
    temporal = getattr(record, "temporal_activity", None) or getattr(
        record, "temporal_workflow", None
    )
    if isinstance(temporal, Mapping):
        fields["workflow_id"] = temporal.get("workflow_id")
        fields["activity"] = temporal.get("activity_type")
    elif activity.in_activity():  # any logger used inside an activity (httpx, the ledger...)
        info = activity.info()
        fields["workflow_id"] = info.workflow_id
        fields["activity"] = info.activity_type
    # Every saga's workflow id is its payment id.
    fields["payment_id"] = fields.get("workflow_id")
    context = log_context.get()
    if context is not None:
        for key in ("payment_id", "request_id"):
            value = context.get(key)
            if value is not None:
                fields[key] = value
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            fields[key] = value
    span = trace.get_current_span().get_span_context()
    if span.is_valid:  # the trace and span the record was written in, when tracing is on
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    return {key: value for key, value in fields.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the ids the record is about."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(context_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, with the ids in brackets (the trace's too)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = context_fields(record)
        if not fields:
            return text
        return f"{text} [{' '.join(f'{k}={v}' for k, v in fields.items())}]"


def setup_logging(log_format: Literal["json", "text"], level: int | str = logging.INFO) -> None:
    """Send every logger's records to stderr, one line each, in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactPersonalData())  # on the handler: it sees every logger's records
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The ids are fields of their own now; the SDK need not append them to every message too.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
