"""Masking personal data (accounts, IBANs, names, birth dates) in log records, for every process."""

from __future__ import annotations

import logging
import re

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
