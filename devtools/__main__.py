"""`python -m devtools` (`make dev`): the whole stack on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from devtools.stack import run_dev_stack
from paysaga.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse `--workers` and run the dev stack until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="number of worker processes")
    args = parser.parse_args(argv)
    return run_dev_stack(Settings(), workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
