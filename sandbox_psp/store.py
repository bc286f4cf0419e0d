"""The sandbox PSP's books in SQLite: operations, disputes, refused attempts and the webhook outbox."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox_psp.records import Dispute, Operation, OutboxEvent, isoformat

SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    provider TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    charge_idempotency_key TEXT,
    final_status TEXT NOT NULL,
    decline_code TEXT,
    created_at REAL NOT NULL,
    settles_at REAL NOT NULL,
    PRIMARY KEY (provider, idempotency_key)
);
CREATE INDEX IF NOT EXISTS operations_by_reference ON operations (provider, reference);
-- Accounts merchants opened at this PSP beside its own two providers: each signs its webhooks
-- with its own secret.
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    webhook_secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refused_attempts (
    provider TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    refusals INTEGER NOT NULL,
    PRIMARY KEY (provider, idempotency_key)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    body TEXT NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS settlement_adjustments (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS disputes (
    provider TEXT NOT NULL,
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL,
    charge_id TEXT NOT NULL,
    charge_idempotency_key TEXT NOT NULL,
    method TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    fee INTEGER NOT NULL,
    reason TEXT NOT NULL,
    planted_outcome TEXT NOT NULL,
    created_at REAL NOT NULL,
    evidence_due_by REAL NOT NULL,
    responded_at REAL,
    response TEXT,
    evidence_text TEXT,
    decided_at REAL NOT NULL,
    final_status TEXT NOT NULL,
    expiry_event_ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disputes_by_reference ON disputes (provider, reference);
CREATE UNIQUE INDEX IF NOT EXISTS disputes_by_charge
    ON disputes (provider, charge_idempotency_key);
-- Charges that waited for their customer's authentication: where the customer goes back, and
-- how it ended (authenticated, failed, canceled; null while waiting).
CREATE TABLE IF NOT EXISTS authentications (
    provider TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    return_url TEXT NOT NULL DEFAULT '',
    outcome TEXT,
    PRIMARY KEY (provider, idempotency_key)
);
"""


_OPERATION_COLUMNS = ", ".join(Operation.__dataclass_fields__)
_DISPUTE_COLUMNS = ", ".join(Dispute.__dataclass_fields__)


class OperationStore:
    """SQLite access for one process. Only the event loop's thread uses it, one call at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; multi-statement writes open their own transaction.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def open_account(self, account_id: str, webhook_secret: str) -> None:
        """Open (or re-key) an account: its webhooks are signed with `webhook_secret`."""
        self._db.execute(
            "INSERT INTO accounts (id, webhook_secret) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET webhook_secret = excluded.webhook_secret",
            (account_id, webhook_secret),
        )

    def account_secret(self, account_id: str) -> str | None:
        """The webhook secret of an account opened here; None if there is none."""
        row = self._db.execute(
            "SELECT webhook_secret FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def get(self, provider: str, idempotency_key: str) -> Operation | None:
        """The operation recorded under this key, if any."""
        row = self._db.execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations"
            " WHERE provider = ? AND idempotency_key = ?",
            (provider, idempotency_key),
        ).fetchone()
        return Operation(*row) if row else None

    def by_reference(self, provider: str, reference: str | None) -> list[Operation]:
        """The provider's operations with this reference (all of them without one), oldest first."""
        sql = f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE provider = ?"
        params: tuple[str, ...] = (provider,)
        if reference is not None:
            sql += " AND reference = ?"
            params += (reference,)
        rows = self._db.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [Operation(*row) for row in rows]

    def settled_succeeded(
        self, provider: str, now: float, since: float | None = None
    ) -> list[Operation]:
        """Succeeded operations settled in (since, now], in settlement order."""
        rows = self._db.execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE provider = ?"
            " AND final_status = 'succeeded' AND settles_at > ? AND settles_at <= ?"
            " ORDER BY settles_at, id",
            (provider, float("-inf") if since is None else since, now),
        ).fetchall()
        return [Operation(*row) for row in rows]

    def add_settlement_adjustment(
        self,
        adjustment_id: str,
        provider: str,
        kind: str,
        reference: str,
        amount: int,
        currency: str,
        now: float,
    ) -> None:
        """A settlement line with no operation behind it: how a test plants a mismatch."""
        self._db.execute(
            "INSERT INTO settlement_adjustments VALUES (?, ?, ?, ?, ?, ?, ?)",
            (adjustment_id, provider, kind, reference, amount, currency, now),
        )

    def settlement_adjustments(
        self, provider: str, now: float, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Planted lines settled (created) in (since, now], as settlement report rows."""
        rows = self._db.execute(
            "SELECT id, kind, reference, amount, currency, created_at FROM settlement_adjustments"
            " WHERE provider = ? AND created_at > ? AND created_at <= ? ORDER BY created_at, id",
            (provider, float("-inf") if since is None else since, now),
        ).fetchall()
        return [
            {
                "id": r[0],
                "kind": r[1],
                "idempotency_key": None,
                "reference": r[2],
                "amount": r[3],
                "currency": r[4],
                "settled_at": isoformat(r[5]),
            }
            for r in rows
        ]

    def refunded_amount(self, provider: str, charge_idempotency_key: str) -> int:
        """The sum of the refunds of a charge that went through (a declined one moved nothing)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM operations WHERE provider = ?"
            " AND kind = 'refund' AND final_status = 'succeeded' AND charge_idempotency_key = ?",
            (provider, charge_idempotency_key),
        ).fetchone()
        return int(row[0])

    def count_refusal(self, provider: str, idempotency_key: str) -> int:
        """Count one more refused attempt for this key; return how many there have been."""
        row = self._db.execute(
            "INSERT INTO refused_attempts (provider, idempotency_key, refusals) VALUES (?, ?, 1)"
            " ON CONFLICT (provider, idempotency_key) DO UPDATE SET refusals = refusals + 1"
            " RETURNING refusals",
            (provider, idempotency_key),
        ).fetchone()
        return int(row[0])

    def record(self, operation: Operation, events: list[tuple[str, str, float]]) -> None:
        """Record an operation and its webhook events `(event_id, body, deliver_at)` atomically."""
        placeholders = ", ".join("?" for _ in Operation.__dataclass_fields__)
        values = tuple(getattr(operation, name) for name in Operation.__dataclass_fields__)
        with self._transaction():
            self._db.execute(
                f"INSERT INTO operations ({_OPERATION_COLUMNS}) VALUES ({placeholders})", values
            )
            self._add_events(operation.provider, events)

    def get_dispute(self, provider: str, dispute_id: str) -> Dispute | None:
        """The provider's dispute with this id, if any."""
        row = self._db.execute(
            f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE provider = ? AND id = ?",
            (provider, dispute_id),
        ).fetchone()
        return Dispute(*row) if row else None

    def dispute_of_charge(self, provider: str, charge_idempotency_key: str) -> Dispute | None:
        """The dispute opened on a charge, if any (a charge is disputed at most once)."""
        row = self._db.execute(
            f"SELECT {_DISPUTE_COLUMNS} FROM disputes"
            " WHERE provider = ? AND charge_idempotency_key = ?",
            (provider, charge_idempotency_key),
        ).fetchone()
        return Dispute(*row) if row else None

    def disputes_by_reference(self, provider: str, reference: str | None) -> list[Dispute]:
        """The provider's disputes with this reference (all without one), oldest first."""
        sql = f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE provider = ?"
        params: tuple[str, ...] = (provider,)
        if reference is not None:
            sql += " AND reference = ?"
            params += (reference,)
        rows = self._db.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [Dispute(*row) for row in rows]

    def disputes_settling(self, provider: str, now: float, since: float | None) -> list[Dispute]:
        """Disputes with a settlement line in (since, now]: opened, or won, in that window."""
        rows = self._db.execute(
            f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE provider = ?"
            " AND ((created_at > ? AND created_at <= ?)"
            " OR (final_status = 'won' AND decided_at > ? AND decided_at <= ?))",
            (provider, *2 * (float("-inf") if since is None else since, now)),
        ).fetchall()
        return [Dispute(*row) for row in rows]

    def record_dispute(self, dispute: Dispute, events: list[tuple[str, str, float]]) -> None:
        """Record a new dispute and its webhook events `(event_id, body, deliver_at)` atomically."""
        placeholders = ", ".join("?" for _ in Dispute.__dataclass_fields__)
        values = tuple(getattr(dispute, name) for name in Dispute.__dataclass_fields__)
        with self._transaction():
            self._db.execute(
                f"INSERT INTO disputes ({_DISPUTE_COLUMNS}) VALUES ({placeholders})", values
            )
            self._add_events(dispute.provider, events)

    def record_dispute_response(
        self, before: Dispute, after: Dispute, events: list[tuple[str, str, float]]
    ) -> bool:
        """Record the merchant's answer: `before` becomes `after`, its planned expiry replaced by
        `events`, atomically; False (nothing written) if the dispute was answered meanwhile."""
        with self._transaction():
            updated = self._db.execute(
                "UPDATE disputes SET responded_at = ?, response = ?, evidence_text = ?,"
                " decided_at = ?, final_status = ?"
                " WHERE provider = ? AND id = ? AND responded_at IS NULL AND decided_at = ?",
                (
                    after.responded_at,
                    after.response,
                    after.evidence_text,
                    after.decided_at,
                    after.final_status,
                    before.provider,
                    before.id,
                    before.decided_at,
                ),
            ).rowcount
            if not updated:
                return False
            expiry = json.loads(before.expiry_event_ids)
            self._db.execute(
                "DELETE FROM outbox WHERE delivered_at IS NULL AND provider = ?"
                f" AND event_id IN ({', '.join('?' for _ in expiry)})",
                (before.provider, *expiry),
            )
            self._add_events(before.provider, events)
        return True

    def _add_events(self, provider: str, events: list[tuple[str, str, float]]) -> None:
        self._db.executemany(
            "INSERT INTO outbox (event_id, provider, body, next_attempt_at) VALUES (?, ?, ?, ?)",
            [(event_id, provider, body, at) for event_id, body, at in events],
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def due_events(self, now: float, limit: int = 50) -> list[OutboxEvent]:
        """Undelivered events whose next attempt is due, in delivery order."""
        rows = self._db.execute(
            "SELECT seq, event_id, provider, body, attempts FROM outbox"
            " WHERE delivered_at IS NULL AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, seq LIMIT ?",
            (now, limit),
        ).fetchall()
        return [OutboxEvent(*row) for row in rows]

    def next_due_at(self) -> float | None:
        """When the earliest undelivered event is due, if there is one."""
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()
        return float(row[0]) if row[0] is not None else None

    def mark_delivered(self, seq: int, now: float) -> None:
        """The receiver answered 2xx."""
        self._db.execute(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE seq = ?", (now, seq)
        )

    def mark_failed(self, seq: int, next_attempt_at: float, error: str) -> None:
        """The receiver failed; try again at `next_attempt_at`."""
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
            " WHERE seq = ?",
            (next_attempt_at, error[:500], seq),
        )

    # -- customer authentication (sandbox_psp.authentication) -------------------------------

    def get_by_id(self, operation_id: str) -> Operation | None:
        """The operation with this id (the authentication page's URL carries it)."""
        row = self._db.execute(
            f"SELECT {_OPERATION_COLUMNS} FROM operations WHERE id = ?", (operation_id,)
        ).fetchone()
        return Operation(*row) if row else None

    def set_return_url(self, provider: str, idempotency_key: str, return_url: str) -> None:
        """Where the customer of a charge waiting for authentication goes back afterwards."""
        self._db.execute(
            "INSERT INTO authentications (provider, idempotency_key, return_url) VALUES (?, ?, ?)"
            " ON CONFLICT (provider, idempotency_key) DO UPDATE SET return_url = excluded.return_url",
            (provider, idempotency_key, return_url),
        )

    def authentication(self, provider: str, idempotency_key: str) -> tuple[str, str | None]:
        """The charge's return URL ('' if none) and its authentication's outcome (None while
        waiting, or if it never waited)."""
        row = self._db.execute(
            "SELECT return_url, outcome FROM authentications"
            " WHERE provider = ? AND idempotency_key = ?",
            (provider, idempotency_key),
        ).fetchone()
        return ("", None) if row is None else (str(row[0]), row[1])

    def decide_authentication(
        self, decided: Operation, outcome: str, events: list[tuple[str, str, float]]
    ) -> bool:
        """Record how a charge's authentication ended (`decided` carries its final status and
        when it settles) and its webhook events, atomically; False (nothing written) if it was
        no longer waiting for its customer."""
        with self._transaction():
            updated = self._db.execute(
                "UPDATE operations SET final_status = ?, decline_code = ?, settles_at = ?"
                " WHERE provider = ? AND idempotency_key = ? AND final_status = 'requires_action'",
                (
                    decided.final_status,
                    decided.decline_code,
                    decided.settles_at,
                    decided.provider,
                    decided.idempotency_key,
                ),
            ).rowcount
            if not updated:
                return False
            self._db.execute(
                "INSERT INTO authentications (provider, idempotency_key, outcome) VALUES (?, ?, ?)"
                " ON CONFLICT (provider, idempotency_key) DO UPDATE SET outcome = excluded.outcome",
                (decided.provider, decided.idempotency_key, outcome),
            )
            self._add_events(decided.provider, events)
        return True
