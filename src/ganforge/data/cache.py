"""Location of ganforge's on-disk cache."""

from __future__ import annotations

import os
from pathlib import Path

from ganforge.errors import DataError


def cache_dir() -> Path:
    """Return ``$GANFORGE_CACHE`` or ``~/.cache/ganforge``, creating it if needed."""
    env = os.environ.get("GANFORGE_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the cache directory {path}: {exc}. "
            "Set GANFORGE_CACHE to a writable directory."
        ) from exc
    return path
