"""Attribute vectors: latent arithmetic with the difference of two group means.

``v = mean(latents of group A) - mean(latents of group B)``, in Z (any generator) or in W
(style-based generators; one w_dim vector added to every ws entry). Adding ``s * v`` to a
latent moves its sample from B towards A (``s = 1`` takes B's mean exactly to A's).
Membership comes from:

- :func:`vector_from_labels`: the classes a conditional generator was asked for (in W:
  Z is drawn independently of the label, so a label vector in Z would be noise);
- :func:`vector_from_classifier`: a shipped classifier's predictions on generated
  samples (``"mnist"`` or ``"digits"``, see ``ganforge.metrics.classifier``);
- :func:`vector_from_mask`: a boolean mask over the samples ``G.sample(n, seed=seed)``
  draws, made by the user (by eye, by another model, by any rule).

:func:`apply_vector` renders seeds x strengths grids; :func:`save_vector` /
:func:`load_vector` keep vectors as safetensors with JSON metadata (never a pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import atomic_write_bytes, read_safetensors
from ganforge.errors import CheckpointError, ConfigError
from ganforge.latent.interpolate import (
    LabelsArg,
    Space,
    check_space,
    latents_for_seed,
    latents_for_seeds,
    model_name,
    module_of,
    parse_seeds,
    render,
    require_images,
    row_labels,
    to_w,
)

VECTOR_FORMAT = "ganforge.latent-vector/1"


@dataclass
class AttributeVector:
    """A direction in Z or W, with where it came from (``meta``: plain JSON values)."""

    vector: torch.Tensor
    space: Space
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vector.numel())

    def __repr__(self) -> str:
        return (f"AttributeVector(space={self.space!r}, dim={self.dim}, "
                f"norm={self.vector.norm().item():.4g}, meta={self.meta})")


# ---------------------------------------------------------------- computing
def mean_difference(latents: torch.Tensor, in_a: torch.Tensor, in_b: torch.Tensor
                    ) -> torch.Tensor:
    """``mean(latents[in_a]) - mean(latents[in_b])`` (float32), in float64 internally."""
    in_a, in_b = torch.as_tensor(in_a, dtype=torch.bool), torch.as_tensor(in_b,
                                                                          dtype=torch.bool)
    na, nb = int(in_a.sum()), int(in_b.sum())
    if na == 0 or nb == 0:
        raise ConfigError(f"An attribute vector needs samples in both groups; group A has "
                          f"{na} and group B has {nb} of {latents.shape[0]}. Draw more "
                          "samples (larger n) or choose classes the generator produces.")
    x = latents.double().flatten(1)
    return (x[in_a].mean(0) - x[in_b].mean(0)).float()


def _latents(G: Any, z: torch.Tensor, y: torch.Tensor | None, space: Space,
             truncation: float | None) -> torch.Tensor:
    """Per-sample latents in ``space``: z, or the (untruncated-cutoff) w of each sample."""
    if space == "z":
        return z
    return to_w(G, z, y, truncation)[:, 0]


def _meta(G: Any, space: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"model": model_name(G), "space": space, "source": source, **extra}


def _n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"The number of samples per vector must be a positive integer, got "
                          f"{n!r}.")
    return n


def _class(G: Any, c: int, what: str) -> int:
    num_classes = getattr(module_of(G), "num_classes", None)
    if isinstance(c, bool) or not isinstance(c, int) or c < 0 or \
            (num_classes is not None and c >= num_classes):
        upto = f"0..{num_classes - 1}" if num_classes else "a class index"
        raise ConfigError(f"Class {what} must be {upto}, got {c!r}.")
    return c


def vector_from_labels(G: Any, a: int, b: int, n: int = 1000, seed: int = 0,
                       space: Space = "w", truncation: float | None = None
                       ) -> AttributeVector:
    """Mean w of ``n`` samples of class ``a`` minus that of ``n`` of class ``b`` (the same
    ``n`` z draws for both, so only the class differs). Conditional style-based
    generators; in Z the latents do not depend on the label, so Z is refused."""
    if getattr(module_of(G), "num_classes", None) is None:
        raise ConfigError(f"'{model_name(G)}' is unconditional, so it has no class labels to "
                          "group samples by; use vector_from_classifier (ganforge vector "
                          "--classifier mnist) or vector_from_mask instead.")
    if space == "z":
        raise ConfigError("A label-based vector in Z would be noise: a conditional generator "
                          "draws z independently of the label, so both groups have the same "
                          "z distribution. Use space 'w' with a style-based generator, or "
                          "group samples by what they show (a classifier or a mask).")
    check_space(G, space)
    a, b = _class(G, a, "A"), _class(G, b, "B")
    z = latents_for_seed(G, _n(n), seed, truncation)
    ya, yb = torch.full((n,), a, dtype=torch.long), torch.full((n,), b, dtype=torch.long)
    wa = _latents(G, z, ya, space, truncation)
    wb = _latents(G, z, yb, space, truncation)
    ones = torch.ones(n, dtype=torch.bool)
    v = mean_difference(torch.cat([wa, wb]), torch.cat([ones, ~ones]), torch.cat([~ones, ones]))
    return AttributeVector(v, space, _meta(G, space, "labels", a=a, b=b, n=n, seed=seed,
                                           truncation=truncation))


def vector_from_mask(G: Any, mask_a: Any, mask_b: Any | None = None, seed: int = 0,
                     space: Space = "z", labels: LabelsArg = None,
                     truncation: float | None = None) -> AttributeVector:
    """Groups given as boolean masks over the ``n = len(mask_a)`` samples that
    ``G.sample(n, seed=seed, labels=labels, truncation=truncation)`` draws; group B is
    every other sample unless ``mask_b`` is given."""
    check_space(G, space)
    in_a = torch.as_tensor(mask_a)
    if in_a.dtype != torch.bool or in_a.dim() != 1:
        raise ConfigError(f"mask_a must be a 1-D boolean mask (one entry per sample), got a "
                          f"{in_a.dtype} tensor of shape {tuple(in_a.shape)}.")
    in_b = ~in_a if mask_b is None else torch.as_tensor(mask_b)
    if in_b.dtype != torch.bool or in_b.shape != in_a.shape:
        raise ConfigError(f"mask_b must be a boolean mask of the same length as mask_a "
                          f"({in_a.numel()}), got a {in_b.dtype} tensor of shape "
                          f"{tuple(in_b.shape)}.")
    n = in_a.numel()
    z = latents_for_seed(G, _n(n), seed, truncation)
    y = _sample_labels(G, n, labels)
    lat = _latents(G, z, y, space, truncation)
    return AttributeVector(mean_difference(lat, in_a, in_b), space,
                           _meta(G, space, "mask", n=n, n_a=int(in_a.sum()),
                                 n_b=int(in_b.sum()), seed=seed, truncation=truncation))


def _sample_labels(G: Any, n: int, labels: LabelsArg) -> torch.Tensor | None:
    """Labels as ``G.sample`` makes them: classes 0, 1, 2, ... cycled by default."""
    num_classes = getattr(module_of(G), "num_classes", None)
    if num_classes is not None and labels is None:
        return torch.arange(n) % num_classes
    return row_labels(G, n, labels)


def vector_from_classifier(G: Any, a: int, b: int, classifier: str | Any = "mnist",
                           n: int = 2000, seed: int = 0, space: Space = "z",
                           labels: LabelsArg = None, truncation: float | None = None,
                           batch_size: int = 500) -> AttributeVector:
    """Groups by a classifier's arg-max on ``n`` generated samples (the ones ``G.sample(n,
    seed=seed, ...)`` draws): samples predicted ``a`` minus those predicted ``b``.
    ``classifier``: a shipped name ("mnist", "digits") or a loaded ``DomainClassifier``."""
    from ganforge.metrics.classifier import load_classifier, predict
    from ganforge.visual import quantize

    check_space(G, space)
    require_images(G, "A classifier-based vector")
    n = _n(n)
    name = classifier if isinstance(classifier, str) else type(classifier).__name__
    clf = load_classifier(classifier) if isinstance(classifier, str) else classifier
    num = int(getattr(clf, "num_classes", 10))
    for c, what in ((a, "A"), (b, "B")):
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num:
            raise ConfigError(f"Class {what} must be one of the classifier's classes "
                              f"0..{num - 1}, got {c!r}.")
    z = latents_for_seed(G, n, seed, truncation)
    y = _sample_labels(G, n, labels)
    space_lat = None if space == "z" else to_w(G, z, y, truncation)
    pred = []
    for i in range(0, n, batch_size):
        yb = None if y is None else y[i:i + batch_size]
        if space_lat is None:
            imgs = render(G, z[i:i + batch_size], "z", yb, truncation)
        else:
            imgs = render(G, space_lat[i:i + batch_size], "w")
        pred.append(predict(clf, quantize(imgs))[1].argmax(1))
    p = torch.cat(pred)
    lat = z if space_lat is None else space_lat[:, 0]
    counts = torch.bincount(p, minlength=num).tolist()
    if not (p == a).any() or not (p == b).any():
        raise ConfigError(f"The {name} classifier found {int((p == a).sum())} samples of "
                          f"class {a} and {int((p == b).sum())} of class {b} among {n} (counts "
                          f"per class: {counts}). Draw more samples (larger n), or pick "
                          "classes the generator makes.")
    return AttributeVector(mean_difference(lat, p == a, p == b), space,
                           _meta(G, space, f"classifier:{name}", a=a, b=b, n=n, seed=seed,
                                 n_a=int((p == a).sum()), n_b=int((p == b).sum()),
                                 truncation=truncation))


# ---------------------------------------------------------------- applying
def _check_fits(G: Any, vec: AttributeVector) -> None:
    check_space(G, vec.space)
    m = module_of(G)
    want = int(m.z_dim if vec.space == "z" else m.w_dim)
    if vec.dim != want:
        raise ConfigError(f"This {vec.space.upper()} vector has {vec.dim} dimensions but "
                          f"'{model_name(G)}' has {vec.space}_dim {want}; it was made for "
                          f"another generator ({vec.meta.get('model', 'unknown')}).")


def shift(latents: torch.Tensor, vec: AttributeVector | torch.Tensor,
          strengths: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``latent + s * v`` for each strength: (N, ...) -> (N, S, ...). In W (N, num_ws,
    w_dim) the vector is added to every ws entry."""
    v = vec.vector if isinstance(vec, AttributeVector) else vec
    s = torch.as_tensor(strengths, dtype=torch.float64).flatten()
    base = latents.double().unsqueeze(1)
    step = v.double().reshape((1, 1) + (1,) * (latents.dim() - 2) + (-1,))
    return (base + s.reshape((1, -1) + (1,) * (latents.dim() - 1)) * step).to(latents.dtype)


def apply_vector(G: Any, vec: AttributeVector, seeds: Sequence[int] | str,
                 strengths: Sequence[float] | torch.Tensor = (-2, -1, 0, 1, 2),
                 labels: LabelsArg = None, truncation: float | None = None
                 ) -> torch.Tensor:
    """Images (seeds, strengths, C, H, W): row i is seed i's latent plus ``s * v`` for each
    strength (0 reproduces ``G.sample(1, seed=...)``). Conditional: one label per row
    (default class 0)."""
    _check_fits(G, vec)
    seeds = parse_seeds(seeds)
    s = torch.as_tensor(strengths, dtype=torch.float64).flatten()
    if s.numel() == 0 or not torch.isfinite(s).all():
        raise ConfigError(f"Strengths must be finite numbers (e.g. -2,-1,0,1,2), got "
                          f"{s.tolist()}.")
    z = latents_for_seeds(G, seeds, truncation)
    y = row_labels(G, len(seeds), labels)
    base = z if vec.space == "z" else to_w(G, z, y, truncation)
    lat = shift(base, vec, s)
    yy = None if y is None else y.repeat_interleave(s.numel())
    out = render(G, lat.flatten(0, 1), vec.space, yy,
                 truncation if vec.space == "z" else None)
    return out.unflatten(0, (len(seeds), s.numel()))


# ---------------------------------------------------------------- files
def save_vector(path: str | Path, vec: AttributeVector) -> Path:
    """Write the vector as safetensors (tensor ``vector``; JSON metadata), atomically."""
    from safetensors.torch import save as st_save

    if vec.space not in ("z", "w"):
        raise ConfigError(f"Unknown vector space {vec.space!r}; use 'z' or 'w'.")
    meta = {"format": VECTOR_FORMAT, "space": vec.space,
            "meta": json.dumps(vec.meta, sort_keys=True, default=str)}
    data = st_save({"vector": vec.vector.detach().float().cpu().contiguous().flatten()}, meta)
    atomic_write_bytes(path, data)
    return Path(path)


def load_vector(path: str | Path) -> AttributeVector:
    """Read a vector written by :func:`save_vector` (pickles and other files refused)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != VECTOR_FORMAT or "vector" not in tensors \
            or meta.get("space") not in ("z", "w"):
        raise CheckpointError(f"{path} is not a ganforge latent vector (format "
                              f"{meta.get('format')!r}); make one with `ganforge vector` or "
                              "ganforge.latent.save_vector.")
    try:
        extra = json.loads(meta.get("meta", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has damaged metadata; make the vector again.") from None
    v = tensors["vector"]
    if v.dim() != 1 or not torch.isfinite(v).all():
        raise CheckpointError(f"{path} holds a vector of shape {tuple(v.shape)} with "
                              "non-finite or misshaped values; make the vector again.")
    return AttributeVector(v.float(), meta["space"], extra if isinstance(extra, dict) else {})
