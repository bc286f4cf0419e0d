"""The `paysaga` command: the dev stack, the ledger audit, and other operator tools."""

from __future__ import annotations

import argparse
import asyncio
import sys

from paysaga.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; the exit status is the command's."""
    parser = argparse.ArgumentParser(prog="paysaga", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole stack locally (make dev)")
    dev.add_argument("--workers", type=int, default=1, help="number of worker processes")

    ledger = commands.add_parser("ledger", help="ledger tools")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_commands.add_parser("audit", help="recompute every balance and check the money rules")

    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "dev":
        from paysaga.devstack import run_dev_stack

        return run_dev_stack(settings, workers=args.workers)
    if args.command == "ledger" and args.ledger_command == "audit":
        from ledger.audit import run_audit_cli

        return asyncio.run(run_audit_cli(settings.database_url or _dev_database_url(settings)))
    parser.error("unknown command")
    return 2


def _dev_database_url(settings: object) -> str:
    """The dev stack's embedded database, started if it is not running."""
    from paysaga.db import start_embedded_postgres
    from paysaga.settings import Settings

    assert isinstance(settings, Settings)
    _server, url = start_embedded_postgres(settings.data_dir / "postgres")
    return url


if __name__ == "__main__":
    sys.exit(main())
