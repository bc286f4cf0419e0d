"""The `paysaga` command: migrations, the ledger audit, API keys, data keys, other operator tools."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import PackageNotFoundError, version

from paysaga.cli.failures import database_url_for, describe_failure
from paysaga.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    """The `paysaga` command line: every subcommand and its options."""
    parser = argparse.ArgumentParser(prog="paysaga", description=__doc__)
    parser.add_argument("--version", action="version", version=f"paysaga {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "dev", help="moved: run `make dev` (python -m devtools) in a checkout"
    )
    dev.add_argument("--workers", type=int, default=1, help="number of worker processes")

    migrate = commands.add_parser(
        "migrate", help="migrate the ledger database at PAYSAGA_DATABASE_URL"
    )
    migrate.add_argument(
        "--revision", default="head", help="the schema revision to reach (default: the latest)"
    )
    commands.add_parser(
        "search-attributes", help="register the custom search attributes on the Temporal cluster"
    )

    ledger = commands.add_parser("ledger", help="ledger tools")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_commands.add_parser("audit", help="recompute every balance and check the money rules")

    keys = commands.add_parser("keys", help="API keys stored (hashed) in the database")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key; its secret is shown once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--merchant", help="the merchant (mer_...) whose key it is")
    owner.add_argument(
        "--platform",
        action="store_true",
        help="a platform key: creates merchants and their keys, nothing else",
    )
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=["payments", "ops", "platform", "codec"],
        help="a scope of the key (repeat for several; default: payments, or platform); "
        "`codec` (platform keys only) decrypts Temporal payloads for the UI and the CLI",
    )
    revoke = keys_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's id (key_...)")
    listing = keys_commands.add_parser(
        "list", help="every key: id, merchant, name, prefix, scopes, dates"
    )
    listing.add_argument("--merchant", help="only this merchant's keys (mer_...)")

    commands.add_parser(
        "deliver-webhooks",
        help="deliver merchants' webhooks from the event feed, in the foreground (workers do too)",
    )

    data = commands.add_parser("data", help="personal data sealed at rest")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    reencrypt = data_commands.add_parser(
        "reencrypt",
        help="re-seal every row under the current data key (PAYSAGA_DATA_CURRENT_KEY_ID), in"
        " batches; safe to interrupt and run again; reports the rows left under old keys",
    )
    reencrypt.add_argument(
        "--batch-size", type=int, default=500, help="rows per transaction (default 500)"
    )

    merchants = commands.add_parser("merchants", help="the merchants of this installation")
    merchants_commands = merchants.add_subparsers(dest="merchants_command", required=True)
    new_merchant = merchants_commands.add_parser("create", help="create a merchant")
    new_merchant.add_argument("--name", required=True, help="the merchant's name")

    from paysaga.cli.backup import add_commands as add_backup_commands

    add_backup_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; the exit status is the command's. A failure
    is one line on stderr and status 1 (paysaga.cli.failures)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = " ".join(
        str(part)
        for part in (args.command, *(getattr(args, f"{args.command}_command", None),))
        if part
    )
    try:
        return run_command(args, Settings())
    except KeyboardInterrupt:
        print(f"paysaga {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(describe_failure(command, exc), file=sys.stderr)
        return 1


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the parsed command with the settings."""
    if args.command in ("migrate", "search-attributes"):
        from paysaga.cli.deploy import run_deploy_step

        return run_deploy_step(args.command, settings, getattr(args, "revision", "head"))
    if args.command == "dev":
        # Development tooling is no part of the product (nor of its image): it lives in the
        # checkout's devtools/, which the product never imports.
        print(
            "paysaga dev: the dev stack is development tooling; in a checkout, run `make dev`"
            " (python -m devtools --workers N)",
            file=sys.stderr,
        )
        return 2
    if args.command == "restore":  # the database is gone: nothing to connect to
        from paysaga.cli.backup import run as run_backup

        return run_backup(args, settings, None)
    database_url = database_url_for(settings)
    if args.command == "ledger":
        from ledger.audit import run_audit_cli
        from paysaga.audit import SERVICE_AUDIT_CHECKS
        from paysaga.database import connection_kwargs

        return asyncio.run(run_audit_cli(database_url, SERVICE_AUDIT_CHECKS, connection_kwargs()))
    if args.command == "keys":
        return _keys_command(args, database_url)
    if args.command == "deliver-webhooks":
        from paysaga.webhook_delivery import deliver_webhooks

        asyncio.run(deliver_webhooks(settings, database_url))
        return 0
    if args.command == "data":
        from paysaga.cli.data import describe_left, reencrypt
        from paysaga.personal_data import PersonalDataCipher

        cipher = PersonalDataCipher.from_settings(settings)
        left = reencrypt(database_url, cipher, max(1, args.batch_size))
        print(describe_left(left))
        return 0 if not left else 1
    if args.command == "backup":
        from paysaga.cli.backup import run as run_backup

        return run_backup(args, settings, database_url)
    from paysaga.cli.keys import create_merchant  # merchants create, the last one

    merchant = asyncio.run(create_merchant(database_url, args.name))
    print(f"id:   {merchant.id}")
    print(f"name: {merchant.name}")
    return 0


def _version() -> str:
    try:
        return version("paysaga")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _keys_command(args: argparse.Namespace, database_url: str) -> int:
    """`paysaga keys create|revoke|list`."""
    from paysaga.cli import keys

    if args.keys_command == "create":
        merchant_id = None if args.platform else args.merchant
        scopes = args.scopes or (["platform"] if args.platform else ["payments"])
        try:
            created = asyncio.run(keys.create_key(database_url, args.name, scopes, merchant_id))
        except (ValueError, LookupError) as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"id:       {created.key_id}")
        print(f"merchant: {created.row.merchant_id or '(platform)'}")
        print(f"scopes:   {', '.join(created.row.scopes)}")
        print(f"secret:   {created.secret}")
        print("Store the secret now: it is not kept and cannot be shown again.")
        return 0
    if args.keys_command == "revoke":
        row = asyncio.run(keys.revoke_key(database_url, args.key_id))
        if row is None:
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        assert row.revoked_at is not None  # revoking sets it
        print(f"revoked {row.id} ({row.name}) at {row.revoked_at.isoformat()}")
        return 0
    print(keys.format_keys(asyncio.run(keys.list_keys(database_url, args.merchant))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
