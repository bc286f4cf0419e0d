"""Migration 0024: the per-event delivery rows of earlier releases become one cursor per merchant,
and every event keeps the delivery state it had (dead letters and their history as rows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from paysaga.database import MIGRATIONS_DIR, run_migrations, sqlalchemy_url

BEFORE = "0023_aml_monitoring"
# sequence -> (status, attempts, last_error) as an earlier release left them
ROWS = {
    1: ("delivered", 1, None),
    2: ("dead", 1, "http_410"),
    3: ("delivered", 3, None),
    4: ("pending", 2, "http_503"),
    5: ("pending", 0, None),
}


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server, at the revision before 0024."""
    name = f"migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    run_migrations(url, BEFORE)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_delivery_rows_become_a_cursor_at_the_first_pending_event(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO merchants (id, name, last_event_sequence) VALUES ('mer_old', 'Old', 5)"
        )
        conn.execute("INSERT INTO merchants (id, name) VALUES ('mer_quiet', 'Quiet')")
        for sequence, (status, attempts, error) in ROWS.items():
            conn.execute(
                "INSERT INTO events (id, merchant_id, sequence, type, aggregate_type,"
                " aggregate_id, payload) VALUES (%s, 'mer_old', %s, 'payment.created',"
                " 'payment', 'dep_old', '{}')",
                (f"evt_old_{sequence}", sequence),
            )
            conn.execute(
                "INSERT INTO event_deliveries (event_id, merchant_id, sequence, status, attempts,"
                " last_error) VALUES (%s, 'mer_old', %s, %s, %s, %s)",
                (f"evt_old_{sequence}", sequence, status, attempts, error),
            )

    run_migrations(database_url)

    with psycopg.connect(database_url, autocommit=True) as conn:
        states = conn.execute(
            "SELECT sequence, status, attempts, last_error FROM webhook_delivery_states"
            " WHERE merchant_id = 'mer_old' ORDER BY sequence"
        ).fetchall()
        cursors = conn.execute(
            "SELECT merchant_id, delivered_through FROM webhook_cursors"
            " WHERE merchant_id IN ('mer_old', 'mer_quiet') ORDER BY merchant_id"
        ).fetchall()
        rows = conn.execute("SELECT sequence FROM event_deliveries ORDER BY sequence").fetchall()
        conn.execute("INSERT INTO merchants (id, name) VALUES ('mer_new', 'New')")
        made = conn.execute(
            "SELECT delivered_through FROM webhook_cursors WHERE merchant_id = 'mer_new'"
        ).fetchall()

    assert states == [(s, *row) for s, row in ROWS.items()]
    assert cursors == [("mer_old", 3), ("mer_quiet", 0)]
    assert rows == [(2,), (3,)]  # the exceptions: a dead letter, a delivery after failures
    assert made == [(0,)]  # a merchant made later has its cursor at once


def test_downgrade_before_the_sequencer_numbers_the_events_left_unnumbered(
    database_url: str,
) -> None:
    run_migrations(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO merchants (id, name, last_event_sequence) VALUES ('mer_a', 'A', 2),"
            " ('mer_b', 'B', 0)"
        )
        for merchant, sequence in (("mer_a", 1), ("mer_a", 2)):
            conn.execute(
                "INSERT INTO events (id, merchant_id, sequence, type, aggregate_type,"
                " aggregate_id, payload) VALUES (%s, %s, %s, 'payment.created', 'payment',"
                " 'dep_x', '{}')",
                (f"evt_{merchant}_{sequence}", merchant, sequence),
            )
        # written, committed, not numbered yet (no sequencer ran): in this written order
        for event_id, merchant in (
            ("evt_a_3", "mer_a"),
            ("evt_b_1", "mer_b"),
            ("evt_a_4", "mer_a"),
        ):
            conn.execute(
                "INSERT INTO events (id, merchant_id, type, aggregate_type, aggregate_id,"
                " payload) VALUES (%s, %s, 'payment.created', 'payment', 'dep_x', '{}')",
                (event_id, merchant),
            )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))

    command.downgrade(config, "0024_webhook_cursors")

    with psycopg.connect(database_url, autocommit=True) as conn:
        events = conn.execute(
            "SELECT id, sequence, (payload->>'sequence')::bigint FROM events"
            " ORDER BY merchant_id, sequence"
        ).fetchall()
        tops = conn.execute(
            "SELECT id, last_event_sequence FROM merchants WHERE id IN ('mer_a', 'mer_b')"
            " ORDER BY id"
        ).fetchall()
    assert [(event_id, sequence) for event_id, sequence, _ in events] == [
        ("evt_mer_a_1", 1),
        ("evt_mer_a_2", 2),
        ("evt_a_3", 3),
        ("evt_a_4", 4),
        ("evt_b_1", 1),
    ]
    assert [stamped for event_id, _, stamped in events if event_id in ("evt_a_3", "evt_b_1")] == [
        3,
        1,
    ]
    assert tops == [("mer_a", 4), ("mer_b", 1)]
