"""On-disk cache of features, keyed by content and extractor.

The key hashes the exact samples (bytes, shape and dtype), their labels and the
extractor's provenance (weights sha256, preprocessing, architecture): the same data
through the same network always hits, anything else misses. Files are safetensors with
the provenance and a description of the data (spec, split, resolution, count) as JSON
metadata, written atomically under ``$GANFORGE_CACHE/features``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import atomic_write_bytes
from ganforge.data import cache_dir
from ganforge.metrics.features import FeatureExtractor, Features

CACHE_FORMAT = "ganforge.features/1"


def content_hash(samples: torch.Tensor, labels: torch.Tensor | None = None) -> str:
    """sha256 of the samples' bytes, shape and dtype (and labels)."""
    h = hashlib.sha256()
    h.update(f"{tuple(samples.shape)}|{samples.dtype}".encode())
    h.update(samples.detach().cpu().contiguous().numpy().tobytes())
    if labels is not None:
        h.update(labels.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(samples: torch.Tensor, labels: torch.Tensor | None,
              extractor: FeatureExtractor) -> str:
    """The cache key of these samples through this extractor."""
    prov = json.dumps(extractor.provenance(), sort_keys=True)
    text = f"{content_hash(samples, labels)}|{prov}|{CACHE_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_path(key: str) -> Path:
    return cache_dir() / "features" / f"{key}.safetensors"


def _read(path: Path) -> Features | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("format") != CACHE_FORMAT:
                return None
            names = set(f.keys())
            feats = f.get_tensor("features")
            logits = f.get_tensor("logits") if "logits" in names else None
    except Exception:  # a damaged cache entry is recomputed, never trusted
        return None
    return Features(feats, logits)


def cached_features(samples: torch.Tensor, extractor: FeatureExtractor,
                    labels: torch.Tensor | None = None, describe: dict[str, Any] | None = None,
                    use_cache: bool = True, progress: bool = False) -> tuple[Features, dict]:
    """Features of ``samples`` from the cache, or extracted and stored.

    Returns the features and a record ``{"key", "path", "hit"}`` for provenance.
    """
    key = cache_key(samples, labels, extractor)
    path = cache_path(key)
    if use_cache and path.is_file():
        found = _read(path)
        if found is not None and len(found.features) == len(samples):
            return found, {"key": key, "path": str(path), "hit": True}
    feats = extractor.extract(samples, progress=progress)
    if use_cache:
        from safetensors.torch import save

        tensors = {"features": feats.features.contiguous()}
        if feats.logits is not None:
            tensors["logits"] = feats.logits.contiguous()
        meta = {"format": CACHE_FORMAT, "provenance": json.dumps(extractor.provenance()),
                "data": json.dumps(describe or {}), "n": str(len(samples)),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_bytes(path, save(tensors, metadata=meta))
    return feats, {"key": key, "path": str(path) if use_cache else None, "hit": False}
