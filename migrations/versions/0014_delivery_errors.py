"""Webhook deliveries keep a coarse error, never the connection's own words (issue 22, item 6).

Earlier releases stored what the HTTP client said ("no answer: ConnectError", the text of an
invalid URL's exception, "the merchant answered 503"), which the dead letters show back: those
rows are rewritten in the words deliveries store now. The mapping lives here, not in the
application, so that this migration means the same whatever the code becomes.

Revision ID: 0014_delivery_errors
Revises: 0013_personal_data_at_rest
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_delivery_errors"
down_revision: str | None = "0013_personal_data_at_rest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANSWERED = re.compile(r"the merchant answered (\d{3})")
GAVE_UP = re.compile(r"(not taken within \d+ days) \(last: (.*)\)", re.DOTALL)
TIMEOUTS = {"ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"}
PROTOCOL_ERRORS = {"RemoteProtocolError", "LocalProtocolError", "DecodingError"}
# The words themselves (a row written by this release before the migration ran stays as it is).
WORDS = re.compile(
    r"http_\d{3}|timeout|connection_refused|connection_error|tls_error|dns_error"
    r"|invalid_response|invalid_url|address_not_allowed"
)


def coarse(error: str) -> str:
    """The word an earlier release's error is shown as from now on."""
    if gave_up := GAVE_UP.fullmatch(error):
        return f"{gave_up[1]} (last: {coarse(gave_up[2])})"
    if WORDS.fullmatch(error):
        return error
    if answered := ANSWERED.fullmatch(error):
        return f"http_{answered[1]}"
    if error.startswith("invalid webhook_url"):
        return "invalid_url"
    kind = error.removeprefix("no answer").removeprefix(":").strip()
    if kind in TIMEOUTS:
        return "timeout"
    if kind in PROTOCOL_ERRORS:
        return "invalid_response"
    return "connection_error"


def upgrade() -> None:
    conn = op.get_bind()
    # A delivery without an endpoint says so in words of ours, not of a connection: kept.
    stored = conn.execute(
        sa.text(
            "SELECT DISTINCT last_error FROM event_deliveries"
            " WHERE last_error IS NOT NULL AND status <> 'no_endpoint'"
        )
    ).scalars()
    for error in list(stored):
        if (word := coarse(error)) != error:
            conn.execute(
                sa.text("UPDATE event_deliveries SET last_error = :word WHERE last_error = :error"),
                {"word": word, "error": error},
            )


def downgrade() -> None:
    pass  # the connections' own words are gone for good, as intended
