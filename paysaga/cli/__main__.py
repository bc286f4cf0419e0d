"""`python -m paysaga.cli`: the paysaga command."""

from paysaga.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
