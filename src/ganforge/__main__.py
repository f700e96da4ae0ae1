"""``python -m ganforge`` runs the CLI."""

from ganforge.cli.main import main

main()
