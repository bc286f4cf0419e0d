"""How the `paysaga` command fails: one line on stderr (what, why, what to do), never a traceback.

`PAYSAGA_CLI_TRACEBACK=1` shows the traceback as well, for a bug report.
"""

from __future__ import annotations

import os
import re
import traceback

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from paysaga.secret_files import SecretFileError
from paysaga.settings import Settings
from paysaga.temporal_connection import TemporalConfigError

CONNECT_TIMEOUT_SECONDS = 5
UNPARSED_SETTING = re.compile(r'error parsing value for field "(\w+)"')


class CliFailure(Exception):
    """A command cannot run as asked: what failed, why, and what to do."""

    def __init__(self, what: str, why: str = "", todo: str = "") -> None:
        super().__init__(what + (f": {why}" if why else "") + (f"; {todo}" if todo else ""))


def database_url_for(settings: Settings) -> str:
    """The ledger database a command works on, checked reachable; the dev stack's embedded one
    in development only."""
    if not settings.database_url:
        if settings.environment != "development":
            raise CliFailure(
                "PAYSAGA_DATABASE_URL is not set",
                f"in {settings.environment}, paysaga never starts an embedded database",
                "set PAYSAGA_DATABASE_URL to the ledger database's URL"
                " (or PAYSAGA_ENVIRONMENT=development on a dev machine)",
            )
        from paysaga.database import start_embedded_postgres

        _server, url = start_embedded_postgres(settings.data_dir / "postgres")
        return url
    require_database(settings.database_url)
    return settings.database_url


def require_database(database_url: str) -> None:
    """Fail at once, in one line, when the database does not answer (not after a pool's 30 s)."""
    try:
        psycopg.connect(database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except psycopg.Error as exc:
        raise CliFailure(
            "cannot reach the ledger database",
            _first_line(exc),
            "check PAYSAGA_DATABASE_URL and that PostgreSQL is up and reachable from here",
        ) from exc


def describe_failure(command: str, exc: BaseException) -> str:
    """The one line the command prints for `exc`."""
    if isinstance(exc, CliFailure):
        text = str(exc)
    elif isinstance(exc, ValidationError):
        error = exc.errors()[0]
        name = "PAYSAGA_" + "_".join(str(part) for part in error["loc"][:1]).upper()
        text = f"invalid setting {name}: {error['msg']}; fix the variable (README, Configuration)"
    elif isinstance(exc, SecretFileError):
        text = f"{exc}; fix the variable"
    elif isinstance(exc, ValueError) and (unparsed := UNPARSED_SETTING.search(str(exc))):
        # pydantic-settings' SettingsError (its module moved between releases): not JSON
        name = f"PAYSAGA_{unparsed.group(1).upper()}"
        text = f"invalid setting {name}: not valid JSON; fix the variable (README, Configuration)"
    elif isinstance(exc, TemporalConfigError):
        text = f"{exc}; fix the Temporal profile or the TEMPORAL_* variables"
    elif isinstance(exc, DBAPIError) and isinstance(exc.orig, psycopg.errors.LockNotAvailable):
        text = (
            "the migration waited too long for a table that running processes hold:"
            f" {_first_line(exc.orig)}; run it again at a quieter time, or raise"
            " PAYSAGA_MIGRATION_LOCK_TIMEOUT_SECONDS"
        )
    elif isinstance(exc, DBAPIError):
        text = (
            f"the ledger database failed: {_first_line(exc.orig or exc)};"
            " check PAYSAGA_DATABASE_URL and the database's state"
        )
    elif isinstance(exc, psycopg.Error | PoolTimeout):
        text = (
            f"the ledger database failed: {_first_line(exc)};"
            " check PAYSAGA_DATABASE_URL and the database's state"
        )
    else:
        text = (
            f"{type(exc).__name__}: {_first_line(exc)};"
            " PAYSAGA_CLI_TRACEBACK=1 shows where, for a bug report"
        )
    if os.environ.get("PAYSAGA_CLI_TRACEBACK") == "1":
        traceback.print_exception(exc)
    return f"paysaga {command}: {text}"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
