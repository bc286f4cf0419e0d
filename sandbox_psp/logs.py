"""The sandbox PSP's log lines: JSON (or text) on stderr, personal data masked as everywhere.

Not `paysaga.observability.logs`: the sandbox stands in for a foreign PSP and shares only `domain/` with the
service; its records carry no payment, request or workflow ids to add.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

from domain.redaction import RedactPersonalData


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


def setup_logging(log_format: Literal["json", "text"], level: int | str = logging.INFO) -> None:
    """Send every logger's records to stderr, one line each, in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    handler.addFilter(RedactPersonalData())  # on the handler: it sees every logger's records
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
