"""Logging of every paysaga process: JSON lines carrying the payment, request and workflow ids."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace
from temporalio import activity, workflow

# What the API knows of the request being served (`request_id`, `payment_id`), read lazily by the
# formatter: a Mapping so that the API can resolve the payment id from the route once it matched.
log_context: ContextVar[Mapping[str, Any] | None] = ContextVar("paysaga_log_context", default=None)

CONTEXT_KEYS = ("payment_id", "request_id", "workflow_id", "activity")


# Personal data never reaches a log line: account numbers and IBANs anywhere in the text, and the
# values of the fields that hold names, birth dates and accounts, as `extra` or quoted in text.
REDACTED = "[redacted]"
PERSONAL_FIELDS = frozenset(
    {
        "full_name",
        "beneficiary_name",
        "birth_date",
        "date_of_birth",
        "account",
        "account_number",
        "iban",
        "destination",
        "payment_method",
    }
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
# Card and account numbers: 12 to 19 digits, spaced or dashed as people write them.
_ACCOUNT_NUMBER = re.compile(r"(?<![\w.])\d(?:[ -]?\d){11,18}(?![\w.])")
# A personal field quoted in text: `full_name=Ada Lovelace`, `"birth_date": "1990-12-10"`,
# `'name': 'Ada'`; the value runs to the closing quote, or to the next separator if unquoted.
_QUOTED_FIELD = re.compile(
    r"(?P<key>[\"']?\b(?:"
    + "|".join(sorted(PERSONAL_FIELDS | {"name"}))  # a beneficiary's `name`, in text only
    + r")\b[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^,;}\])\n]+)"
)


def redact(text: str) -> str:
    """The text with accounts, IBANs and the values of personal fields replaced."""

    def keep_quotes(match: re.Match[str]) -> str:
        value = match["value"]
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match['key']}{quote}{REDACTED}{quote}"

    text = _QUOTED_FIELD.sub(keep_quotes, text)
    text = _IBAN.sub(REDACTED, text)
    return _ACCOUNT_NUMBER.sub(REDACTED, text)


class RedactPersonalData(logging.Filter):
    """Masks personal data in a record's message, exception and personal `extra` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # a malformed record: its formatter reports it, as without the filter
            record.msg = redact(str(record.msg))
        if record.exc_info:
            # Formatted once here, so that no formatter prints the raw exception again.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        # (`name` is not among them: on a record it is the logger's name.)
        for field in PERSONAL_FIELDS & record.__dict__.keys():
            setattr(record, field, REDACTED)
        return True


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
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, with the ids in brackets."""

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
