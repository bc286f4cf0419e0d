"""The `paysaga` command: dev stack, migrations, search attributes, keys, ledger audit."""

from paysaga.cli.main import main

__all__ = ["main"]
