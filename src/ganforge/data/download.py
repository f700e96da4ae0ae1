"""Checksummed, atomic file downloads (for users who are online)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ganforge.errors import DataError


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, delete_on_mismatch: bool = True) -> None:
    """Raise DataError (deleting the file by default) if ``path``'s sha256 is not ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        if delete_on_mismatch:
            path.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}"
            + (" (file deleted)" if delete_on_mismatch else "")
        )


def download_file(url: str, dest: Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temp file in the same directory, verify its
    sha256, then move it into place with ``os.replace``. On any failure ``dest`` is untouched
    and the temp file is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = sha256_file(tmp)
        if actual != sha256.lower():
            raise DataError(
                f"downloaded {url} has sha256 {actual}, expected {sha256}; the download was deleted"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        raise DataError(f"download of {url} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest
