"""The JSON log formatter: one object per line, with the ids the record is about."""

from __future__ import annotations

import dataclasses
import json
import logging

from paysaga.observability.logs import JsonFormatter, TextFormatter, log_context


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("paysaga.test", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_format_json_line_with_temporal_activity_details() -> None:
    details = {"workflow_id": "dep_123", "activity_type": "payments.record_status"}

    line = json.loads(
        JsonFormatter().format(record("payment is succeeded", temporal_activity=details))
    )

    assert line["level"] == "WARNING"
    assert line["logger"] == "paysaga.test"
    assert line["message"] == "payment is succeeded"
    assert line["payment_id"] == "dep_123"
    assert line["workflow_id"] == "dep_123"
    assert line["activity"] == "payments.record_status"
    assert line["time"].endswith("+00:00")


def test_format_json_line_with_request_context() -> None:
    token = log_context.set({"request_id": "req-1", "payment_id": "wd_9"})
    try:
        line = json.loads(JsonFormatter().format(record("served")))
    finally:
        log_context.reset(token)

    assert line["request_id"] == "req-1"
    assert line["payment_id"] == "wd_9"
    assert "workflow_id" not in line


def test_format_json_line_with_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    line = json.loads(JsonFormatter().format(rec))

    assert "ValueError: boom" in line["exception"]
    assert "\n" not in JsonFormatter().format(rec)


def test_format_text_line_with_ids() -> None:
    text = TextFormatter().format(record("hello", payment_id="tr_1"))

    assert text.endswith("hello [payment_id=tr_1]")


async def test_format_json_line_inside_an_activity() -> None:
    from temporalio import activity
    from temporalio.testing import ActivityEnvironment

    @activity.defn(name="ledger.post_transaction")
    async def post() -> str:
        return JsonFormatter().format(record("posted by a library"))

    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, activity_type="ledger.post_transaction", workflow_id="dep_7"
    )
    line = json.loads(await env.run(post))

    assert line["activity"] == "ledger.post_transaction"
    assert line["payment_id"] == line["workflow_id"] == "dep_7"


def test_redact_personal_data_in_message_fields_and_exception() -> None:
    from domain.redaction import RedactPersonalData

    try:
        raise ValueError("payout to DE89 3704 0044 0532 0130 00 refused")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "paysaga.test",
        logging.INFO,
        __file__,
        1,
        "customer %s: %s card 4111-1111-1111-1111",
        ({"full_name": "Ada Lovelace", "birth_date": "1990-12-10", "country": "DE"}, "ok"),
        exc_info,
    )
    rec.iban = "DE89370400440532013000"
    rec.payment_id = "wd_1"
    assert RedactPersonalData().filter(rec)

    line = JsonFormatter().format(rec)

    for personal in ("Ada", "Lovelace", "1990-12-10", "4111", "DE89", "0532"):
        assert personal not in line, line
    parsed = json.loads(line)
    assert parsed["logger"] == "paysaga.test"  # the logger's name is not a personal name
    assert parsed["payment_id"] == "wd_1"
    assert "'country': 'DE'" in parsed["message"]
    assert "ValueError: payout to [redacted] refused" in parsed["exception"]
    assert getattr(rec, "iban") == "[redacted]"  # noqa: B009 - an extra field


def test_redact_keeps_ids_amounts_and_times() -> None:
    from domain.redaction import redact

    text = "posted 100000000 EUR for dep_1234567890abcdef at 2024-01-01T10:00:00.123+00:00"
    assert redact(text) == text
