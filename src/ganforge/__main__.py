"""``python -m ganforge`` runs the CLI."""

from ganforge.cli.main import main

if __name__ == "__main__":
    main()
