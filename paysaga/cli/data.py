"""`paysaga data reencrypt`: every sealed value moved to the current data key, batch by batch."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from paysaga.database import connection_kwargs
from paysaga.personal_data import PersonalDataCipher, PersonalDataUnreadable, sealed_at

# Every column that holds a sealed value, by table; each table has `id` and `merchant_id`.
SEALED_COLUMNS = {
    "customers": ("full_name_sealed", "birth_date_sealed"),
    "payments": ("personal_details_sealed",),
    "provider_accounts": ("credentials_sealed", "webhook_secret_sealed"),
}


def reencrypt(
    database_url: str,
    cipher: PersonalDataCipher,
    batch_rows: int,
    say: Callable[[str], None] = print,
) -> Counter[str]:
    """Re-seal every row under an old key with the current one; the rows left under old keys
    (those that do not open), by key id.

    Each batch is its own transaction and rows are taken in id order, so an interrupted run
    loses nothing and the next run carries on. A row changed meanwhile is left for the next run.
    """
    current = cipher.current_key_id
    say(f"re-encrypting personal data under data key {current!r}, {batch_rows} rows a batch")
    with psycopg.connect(database_url, row_factory=dict_row, **connection_kwargs()) as conn:
        for table, columns in SEALED_COLUMNS.items():
            done, after = 0, ""
            while True:
                with conn.transaction():
                    next_rows = {"after": after, "current": current, "limit": batch_rows}
                    batch = conn.execute(_under_old_keys(table, columns), next_rows).fetchall()
                    for row in batch:
                        done += _reseal_row(conn, cipher, table, columns, row)
                if not batch:
                    break
                after = batch[-1]["id"]
                say(f"{table}: {done} rows re-encrypted under data key {current!r}")
            if done == 0:
                say(f"{table}: 0 rows re-encrypted under data key {current!r}")
        return left_under_old_keys(conn, current)


def _under_old_keys(table: str, columns: tuple[str, ...]) -> sql.Composed:
    """The next rows after an id with a value sealed under another key than the current one."""
    old = sql.SQL(" OR ").join(
        sql.SQL("split_part({}, ':', 1) <> %(current)s").format(sql.Identifier(c)) for c in columns
    )
    return sql.SQL(
        "SELECT id, merchant_id, {columns} FROM {table} WHERE id > %(after)s AND ({old})"
        " ORDER BY id LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(table),
        old=old,
    )


def _reseal_row(
    conn: psycopg.Connection[dict[str, Any]],
    cipher: PersonalDataCipher,
    table: str,
    columns: tuple[str, ...],
    row: dict[str, Any],
) -> int:
    """Re-seal one row if every value opens and nobody changed it since it was read: 1, else 0."""
    resealed = {}
    try:
        for column in columns:
            value = row[column]
            if isinstance(value, str):
                where = sealed_at(table, column, str(row["merchant_id"]), str(row["id"]))
                resealed[column] = cipher.reseal(value, where)
    except PersonalDataUnreadable as exc:
        print(f"{table} {row['id']}: {exc.detail}", file=sys.stderr)
        return 0
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in resealed)
    unchanged = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT DISTINCT FROM %s").format(sql.Identifier(c)) for c in columns
    )
    update = sql.SQL("UPDATE {} SET {} WHERE id = %s AND {}").format(
        sql.Identifier(table), assignments, unchanged
    )
    cur = conn.execute(
        update, (*resealed.values(), row["id"], *(row[column] for column in columns))
    )
    return cur.rowcount


def left_under_old_keys(conn: psycopg.Connection[dict[str, Any]], current: str) -> Counter[str]:
    """The rows holding a value sealed under another key than the current one, by key id."""
    left: Counter[str] = Counter()
    for table, columns in SEALED_COLUMNS.items():
        values = sql.SQL(" UNION ALL ").join(
            sql.SQL(
                "SELECT id, split_part({}, ':', 1) AS key_id FROM {} WHERE {} IS NOT NULL"
            ).format(sql.Identifier(column), sql.Identifier(table), sql.Identifier(column))
            for column in columns
        )
        query = sql.SQL(
            "SELECT key_id, count(DISTINCT id) AS n FROM ({}) v WHERE key_id <> %s GROUP BY key_id"
        ).format(values)
        for row in conn.execute(query, (current,)).fetchall():
            left[row["key_id"]] += row["n"]
    return left


def describe_left(left: Counter[str]) -> str:
    """`rows still under old data keys: 3 (k1: 2, k0: 1)`, the report's last line."""
    total = sum(left.values())
    by_key = ", ".join(f"{key_id}: {n}" for key_id, n in sorted(left.items()))
    return f"rows still under old data keys: {total}" + (f" ({by_key})" if by_key else "")
