"""Semi-supervised classification with a GAN (Salimans et al. 2016, "Improved Techniques
for Training GANs"): a K+1-class discriminator learns from a few labeled images, many
unlabeled ones and generated ones; the generator is trained by feature matching.

Inputs are float images in [-1, 1], NCHW (as everywhere in ganforge), e.g. from
``DataBundle.batch(idx)``; labels are integer class ids in ``[0, K)``.

    clf = fit_semisupervised(x_lab, y_lab, x_unlab, seed=0)
    clf.score(x_test, y_test); clf.save("ssl.safetensors")
    clf = SemiSupervisedClassifier.load("ssl.safetensors")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import save as st_save

from ganforge.apps.semisupervised_models import (
    Ema,
    SSLArch,
    SSLConfig,
    SSLDiscriminator,
    SSLGenerator,
    d_step,
    g_step,
    index_stream,
    init_weight_norm,
    make_adam,
    set_lr,
    supervised_step,
    validate,
)
from ganforge.checkpoint import atomic_write_bytes, ensure_finite, read_safetensors
from ganforge.errors import CheckpointError, DataError

__all__ = ["SSLConfig", "SemiSupervisedClassifier", "fit_semisupervised", "fit_supervised",
           "sample_per_class"]

FORMAT = "ganforge.ssl_classifier/1"
_CHUNK = 1000
Callback = Callable[[int, "SemiSupervisedClassifier"], None]


# ------------------------------------------------------------------------ input checks
def _check_images(x: Any, what: str, in_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Validate float NCHW images in [-1, 1]; return them flattened and mapped to [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"{what} must be a float tensor of images in [-1, 1] (N, C, H, W), "
                        f"got {kind}. Convert uint8 images with x.float() / 127.5 - 1, or use "
                        "DataBundle.batch(idx).")
    want = f"(N, {', '.join(map(str, in_shape))})" if in_shape else "(N, C, H, W)"
    if x.ndim != 4 or len(x) == 0 or (in_shape is not None and tuple(x.shape[1:]) != in_shape):
        raise DataError(f"{what} has shape {tuple(x.shape)}, but images of shape {want} are "
                        "needed (non-empty, NCHW, the same size as the training images). "
                        "Reshape or resize them, e.g. load_source(..., resolution=...).")
    if not bool(torch.isfinite(x).all()) or x.min() < -1.001 or x.max() > 1.001:
        raise DataError(f"{what} holds values outside [-1, 1] (min {float(x.min()):.3g}, max "
                        f"{float(x.max()):.3g}); images must be scaled to [-1, 1], e.g. "
                        "x / 127.5 - 1 for 0..255 pixels.")
    return x.detach().to(torch.float32).flatten(1).add(1.0).mul_(0.5).clamp_(0.0, 1.0)


def _label_tensor(y: Any, n: int, what: str) -> torch.Tensor:
    """Validate a 1-D integer tensor of ``n`` labels; return it as int64."""
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or \
            y.dtype == torch.bool:
        raise DataError(f"{what} must be a 1-D integer tensor of class ids, got "
                        f"{getattr(y, 'dtype', type(y).__name__)} with shape "
                        f"{tuple(getattr(y, 'shape', ()))}; pass e.g. torch.tensor(ids).")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels but there are {n} images; give exactly "
                        "one label per image (same length and order).")
    return y.to(torch.int64)


def _check_labels(y: Any, n: int, num_classes: int | None, what: str) -> tuple[torch.Tensor, int]:
    """Validate training labels: in range and every class present; return them and K."""
    y = _label_tensor(y, n, what)
    k = num_classes if num_classes is not None else int(y.max()) + 1
    if k < 2 or int(y.min()) < 0 or int(y.max()) >= k:
        raise DataError(f"{what} must lie in [0, {k}) for {k} classes, found values from "
                        f"{int(y.min())} to {int(y.max())}; relabel them as 0..K-1 or pass "
                        "the right num_classes (at least 2).")
    missing = [c for c in range(k) if not bool((y == c).any())]
    if missing:
        raise DataError(f"{what} has no example of class(es) {missing[:10]} out of {k} "
                        f"({n} labels for {k} classes); every class needs at least one "
                        "labeled image. Label more images, e.g. with sample_per_class().")
    return y, k


def sample_per_class(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` examples of every class in ``labels``, drawn by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise DataError(f"class {c} has only {len(idx)} examples, fewer than "
                            f"per_class={per_class}; lower per_class.")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.sort(torch.cat(picks)).values


# -------------------------------------------------------------------------- classifier
class SemiSupervisedClassifier:
    """A trained K-way classifier (the discriminator's class logits, noise off).

    ``generator`` (the feature-matching G, pixels in [0, 1] flattened) and ``history``
    are set after fitting and are not saved.
    """

    def __init__(self, net: SSLDiscriminator, info: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.info = dict(info or {})
        self.generator: SSLGenerator | None = None
        self.history: list[dict[str, float]] = []

    @property
    def num_classes(self) -> int:
        return self.net.arch.num_classes

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.net.arch.in_shape)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """K class logits of images in [-1, 1] (N, C, H, W)."""
        x01 = _check_images(x, "x", self.in_shape)
        return torch.cat([self.net(part)[0] for part in x01.split(_CHUNK)])

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities p(y | x, x is real), shape (N, K)."""
        return self.logits(x).softmax(1)

    def real_proba(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) = Z / (Z + 1), Z = sum_k exp(l_k): the probability that x is real data."""
        return torch.sigmoid(self.logits(x).logsumexp(1))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Most likely class id of each image (int64, shape (N,))."""
        return self.logits(x).argmax(1)

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy on images ``x`` with labels ``y``."""
        pred = self.predict(x)
        return float((pred == _label_tensor(y, len(pred), "y")).float().mean())

    def save(self, path: str | Path) -> None:
        """Write weights as safetensors, with architecture and training info as JSON."""
        tensors = {k: v.detach().cpu().contiguous().clone()
                   for k, v in self.net.state_dict().items()}
        ensure_finite(tensors, f"classifier {path}")
        meta = {"format": FORMAT, "arch": self.net.arch.model_dump_json(),
                "info": json.dumps(self.info)}
        atomic_write_bytes(path, st_save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> SemiSupervisedClassifier:
        """Rebuild a classifier written by :meth:`save` (no code is read from the file)."""
        tensors, meta = read_safetensors(path)
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a ganforge semi-supervised classifier "
                                  f"(format {meta.get('format')!r}, expected {FORMAT!r}); "
                                  "pass a file written by SemiSupervisedClassifier.save.")
        try:
            arch = SSLArch.model_validate_json(meta["arch"])
            info = json.loads(meta.get("info", "{}"))
            net = SSLDiscriminator(arch)
            net.load_state_dict(tensors)
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path} is damaged or does not match its stored "
                                  f"architecture ({str(err)[:200]}); re-save it.") from None
        return cls(net, info)


# ---------------------------------------------------------------------------- training
def _prepare(x_lab: Any, y_lab: Any, num_classes: int | None, cfg: Any
             ) -> tuple[torch.Tensor, torch.Tensor, SSLConfig, SSLArch]:
    cfg = validate(SSLConfig, cfg, "the semi-supervised GAN settings")
    x01 = _check_images(x_lab, "x_labeled")
    y, k = _check_labels(y_lab, len(x01), num_classes, "y_labeled")
    return x01, y, cfg, cfg.arch(tuple(x_lab.shape[1:]), k)


T = TypeVar("T")


def _seeded(seed: int, build: Callable[[], T]) -> T:
    """Build networks with initial weights drawn from ``seed``; the global RNG is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fit_supervised(x_labeled: torch.Tensor, y_labeled: torch.Tensor, *,
                   num_classes: int | None = None, config: SSLConfig | dict | None = None,
                   seed: int = 0, callback: Callback | None = None) -> SemiSupervisedClassifier:
    """Baseline: the same discriminator (K-way head, same noise) trained on the labels alone."""
    x01, y, cfg, arch = _prepare(x_labeled, y_labeled, num_classes, config)
    net = _seeded(seed, lambda: SSLDiscriminator(arch))
    gen = torch.Generator().manual_seed(seed)
    if cfg.init_batch:
        init_weight_norm(net, x01[:cfg.init_batch], gen)
    ema = Ema(net, cfg.ema)
    info = {"method": "supervised", "seed": seed, "n_labeled": len(y),
            "config": cfg.model_dump(mode="json")}
    clf = SemiSupervisedClassifier(ema.net, info)
    opt, lab = make_adam(net.trainable(), cfg), index_stream(len(y), cfg.batch_size, gen)
    for step in range(cfg.steps):
        set_lr([opt], cfg, step)
        il = next(lab)
        losses = supervised_step(net, opt, x01[il], y[il], gen)
        ema.update()
        _log(clf, cfg, step, losses, callback)
    return clf


def fit_semisupervised(x_labeled: torch.Tensor, y_labeled: torch.Tensor,
                       x_unlabeled: torch.Tensor, *, num_classes: int | None = None,
                       config: SSLConfig | dict | None = None, seed: int = 0,
                       callback: Callback | None = None) -> SemiSupervisedClassifier:
    """Train the K+1-class discriminator with a feature-matching generator.

    ``x_labeled`` (N, C, H, W) in [-1, 1] with ``y_labeled`` in [0, K); ``x_unlabeled``
    images of the same shape (may include the labeled ones). ``callback(step, clf)`` runs
    every ``config.log_every`` steps. Returns the classifier; ``.generator`` holds G.
    """
    x01, y, cfg, arch = _prepare(x_labeled, y_labeled, num_classes, config)
    u01 = _check_images(x_unlabeled, "x_unlabeled", arch.in_shape)
    d, g = _seeded(seed, lambda: (SSLDiscriminator(arch), SSLGenerator(cfg, x01.shape[1])))
    gen = torch.Generator().manual_seed(seed)
    if cfg.init_batch:
        init_weight_norm(d, u01[torch.randperm(len(u01), generator=gen)[:cfg.init_batch]], gen)
    ema = Ema(d, cfg.ema)
    info = {"method": "semisupervised-gan", "seed": seed, "n_labeled": len(y),
            "n_unlabeled": len(u01), "config": cfg.model_dump(mode="json")}
    clf = SemiSupervisedClassifier(ema.net, info)
    clf.generator = g
    opt_d, opt_g = make_adam(d.trainable(), cfg), make_adam(list(g.parameters()), cfg)
    lab = index_stream(len(y), cfg.batch_size, gen)
    unl, unl2 = (index_stream(len(u01), cfg.batch_size, gen) for _ in range(2))
    for step in range(cfg.steps):
        set_lr([opt_d, opt_g], cfg, step)
        il = next(lab)
        losses = d_step(d, g, opt_d, cfg, (x01[il], y[il], u01[next(unl)]), gen)
        ema.update()
        losses |= g_step(d, g, opt_g, cfg, u01[next(unl2)], gen)
        _log(clf, cfg, step, losses, callback)
    g.eval()
    return clf


def _log(clf: SemiSupervisedClassifier, cfg: SSLConfig, step: int, losses: dict[str, float],
         callback: Callback | None) -> None:
    if cfg.log_every and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
        clf.history.append({"step": step + 1, **losses})
        if callback is not None:
            callback(step + 1, clf)
