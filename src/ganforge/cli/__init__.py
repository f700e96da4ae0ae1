"""Command-line face of ganforge (argument parsing only; the logic lives below)."""
