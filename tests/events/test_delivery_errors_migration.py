"""Migration 0014: the errors earlier releases stored on webhook deliveries (exception names and
texts) become the coarse words deliveries store now, so that no merchant reads them back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from paysaga.database import run_migrations

BEFORE = "0013_personal_data_at_rest"
# What an earlier release stored -> what is shown from now on.
STORED = {
    "the merchant answered 503": "http_503",
    "the merchant answered 410": "http_410",
    "invalid webhook_url: Invalid non-printable ASCII character in URL, '\\x14' at position 9.": (
        "invalid_url"
    ),
    "no answer: ConnectError": "connection_error",
    "no answer: ReadTimeout": "timeout",
    "no answer: ConnectTimeout": "timeout",
    "no answer: RemoteProtocolError": "invalid_response",
    "no answer": "connection_error",
    "not taken within 3 days (last: no answer: ReadError)": (
        "not taken within 3 days (last: connection_error)"
    ),
    "not taken within 3 days (last: the merchant answered 500)": (
        "not taken within 3 days (last: http_500)"
    ),
    "the merchant has no webhook_url": "the merchant has no webhook_url",
    # Written by this release before the migration ran: already coarse, kept.
    "http_502": "http_502",
    "not taken within 3 days (last: timeout)": "not taken within 3 days (last: timeout)",
}


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server, at the revision before 0014."""
    name = f"migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    run_migrations(url, BEFORE)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_stored_delivery_errors_become_coarse(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO merchants (id, name) VALUES ('mer_old', 'Old')")
        for sequence, error in enumerate(STORED, start=1):
            event_id = f"evt_old_{sequence}"
            conn.execute(
                "INSERT INTO events (id, merchant_id, sequence, type, aggregate_type,"
                " aggregate_id, payload) VALUES (%s, 'mer_old', %s, 'payment.created',"
                " 'payment', 'dep_old', '{}')",
                (event_id, sequence),
            )
            status = "no_endpoint" if error.startswith("the merchant has") else "pending"
            conn.execute(
                "INSERT INTO event_deliveries (event_id, merchant_id, sequence, status,"
                " last_error) VALUES (%s, 'mer_old', %s, %s, %s)",
                (event_id, sequence, status, error),
            )

    run_migrations(database_url, "0014_delivery_errors")  # 0024 folds the rows into cursors

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT last_error FROM event_deliveries WHERE merchant_id = 'mer_old' ORDER BY sequence"
        ).fetchall()
    assert [error for (error,) in rows] == list(STORED.values())
