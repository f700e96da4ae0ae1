"""The one place that reads and writes model and training-state files.

* Exported generators: safetensors with ``{"format", "model", "config", ...}`` JSON
  metadata; loading builds the model from the registry, never from the file.
* Training state: nested dicts/lists of tensors and plain values, stored as a
  safetensors file whose metadata holds the JSON skeleton. No pickle anywhere.
* Every write is atomic: temp file in the same folder, fsync, rename, fsync folder.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ganforge.errors import CheckpointError, NonFiniteError

GENERATOR_FORMAT = "ganforge.generator/1"
STATE_FORMAT = "ganforge.state/1"
_MAX_HEADER = 100 * 1024 * 1024


# --------------------------------------------------------------------------- writing
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise NonFiniteError if any floating tensor holds NaN or Inf."""
    bad = [k for k, t in tensors.items()
           if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteError(f"Refusing to save {what}: tensors {', '.join(bad[:5])} contain "
                             "NaN or Inf. The previous file was left untouched.")


def _prepare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors needs contiguous, non-aliased CPU tensors
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_generator(path: str | Path, generator: torch.nn.Module, model: str,
                   config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Export a generator's weights with its registry name and config as JSON metadata."""
    tensors = _prepare(generator.state_dict())
    ensure_finite(tensors, f"generator {path}")
    meta = {"format": GENERATOR_FORMAT, "model": model, "config": json.dumps(config)}
    for key, value in (extra or {}).items():
        meta[key] = json.dumps(value)
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def save_state(path: str | Path, state: dict[str, Any], extra: dict[str, Any] | None = None
               ) -> None:
    """Save nested training state (tensors and plain values) as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors, "")
    tensors = _prepare(tensors)
    ensure_finite(tensors, f"training state {path}")
    meta = {"format": STATE_FORMAT, "state": json.dumps(skeleton, allow_nan=False)}
    for key, value in (extra or {}).items():
        meta[key] = json.dumps(value)
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        name = prefix or "_"
        if name in tensors:
            raise ValueError(f"two tensors of the state map to the name '{name}'")
        tensors[name] = obj
        return {"$tensor": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, tensors, f"{prefix}.{k}" if prefix else k)
                    for k, v in obj.items()}
        if all(isinstance(k, int) and not isinstance(k, bool) for k in obj):
            return {"$intdict": [[k, _encode(v, tensors, f"{prefix}.{k}")]
                                 for k, v in obj.items()]}
        raise TypeError(f"state dict at '{prefix}' has keys that are neither all str nor all int")
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at '{prefix}' in a training state; "
                    "only tensors, dicts, lists, tuples and plain scalars are allowed")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "$tensor" in obj:
            return tensors[obj["$tensor"]]
        if "$intdict" in obj:
            return {int(k): _decode(v, tensors) for k, v in obj["$intdict"]}
        if "$tuple" in obj:
            return tuple(_decode(v, tensors) for v in obj["$tuple"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


# --------------------------------------------------------------------------- reading
def _sniff(path: Path, head: bytes) -> str | None:
    """Name the format of a file that is not safetensors, if recognisable."""
    if head[:2] == b"PK":
        return ("a zip archive (a PyTorch torch.save checkpoint, which contains a pickle)")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "a Python pickle"
    if path.suffix in (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"):
        return f"a '{path.suffix}' file (usually a pickle)"
    return None


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata, refusing pickles and reporting corruption clearly."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist. Give a run directory or a "
                              ".safetensors file written by ganforge.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; expected a .safetensors file.")
    return decode_safetensors(path.read_bytes(), path)


def decode_safetensors(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor],
                                                         dict[str, str]]:
    """Tensors and metadata of safetensors bytes read from ``path`` (named in errors);
    pickles are refused before anything is decoded."""
    plausible = len(data) >= 9 and data[8:9] == b"{" and \
        struct.unpack("<Q", data[:8])[0] <= len(data) - 8
    kind = None if plausible else _sniff(path, data[:8])
    if kind is not None:
        raise CheckpointError(
            f"{path} is {kind}. ganforge never loads pickles: unpickling can run arbitrary "
            "code hidden in the file. Export the weights to safetensors "
            "(safetensors.torch.save_file) in a trusted environment and load that instead.")
    if len(data) < 8:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes); it is not a complete "
                              "safetensors file. Use an earlier checkpoint or re-export it.")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_MAX_HEADER, len(data) - 8):
        raise CheckpointError(f"{path} is not a safetensors file, or is truncated (its header "
                              "cannot be read). Pass a .safetensors file written by ganforge; "
                              "if this was one, use an earlier checkpoint or re-export it.")
    try:
        header = json.loads(data[8:8 + header_len])
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt or truncated ({err}). Use an earlier "
                              "checkpoint or re-export it.") from None
    meta = header.get("__metadata__") or {}
    return tensors, meta


def _meta_json(path: Path, meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has no valid '{key}' entry in its metadata; it was not "
                              "written by ganforge or is damaged.") from None


def read_generator_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors plus decoded metadata (model name, config, extras) of an exported generator."""
    path = Path(path)
    tensors, meta = read_safetensors(path)
    if meta.get("format") != GENERATOR_FORMAT:
        raise CheckpointError(f"{path} is not a ganforge generator export (format "
                              f"{meta.get('format')!r}, expected {GENERATOR_FORMAT!r}).")
    info: dict[str, Any] = {"model": meta.get("model")}
    for key in meta:
        if key not in ("format", "model"):
            info[key] = _meta_json(path, meta, key)
    return tensors, info


def load_state(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a training state written by :func:`save_state`; returns (state, extras)."""
    path = Path(path)
    tensors, meta = read_safetensors(path)
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a ganforge training state (format "
                              f"{meta.get('format')!r}).")
    skeleton = _meta_json(path, meta, "state")
    extras = {k: _meta_json(path, meta, k) for k in meta if k not in ("format", "state")}
    try:
        return _decode(skeleton, tensors), extras
    except KeyError as err:
        raise CheckpointError(f"{path} is damaged: tensor {err} is missing.") from None
