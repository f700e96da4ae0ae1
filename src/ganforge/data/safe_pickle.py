"""A restricted unpickler that can rebuild numpy arrays and nothing else."""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from ganforge.errors import DataError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("refusing an unexpected _codecs.encode call in the pickle")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickler whose only reachable globals are numpy's array-rebuilding ones."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed in this file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("refusing to unpickle a persistent reference")


def _check_no_objects(obj: Any) -> None:
    """Reject object arrays, which could hide arbitrary data."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise DataError("refusing a pickled object array")
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _check_no_objects(item)


def safe_load_arrays(stream: BinaryIO | bytes) -> Any:
    """Unpickle ``stream`` (Python 2 pickles included) allowing only numpy arrays."""
    if isinstance(stream, bytes):
        stream = io.BytesIO(stream)
    try:
        obj = ArrayUnpickler(stream, encoding="latin1").load()
    except DataError:
        raise
    except Exception as exc:  # any unpickling failure is a data error
        raise DataError(f"cannot unpickle the file: {type(exc).__name__}: {exc}") from exc
    _check_no_objects(obj)
    return obj
