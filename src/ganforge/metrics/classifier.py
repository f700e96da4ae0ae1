"""Small domain classifiers for MNIST-like images.

Used as feature extractors (FID/KID/precision-recall on digits), for Inception Score
(their logits) and, trained from scratch by :func:`fit_classifier`, for CAS
(Classification Accuracy Score: train on generated images, test on real ones).

Shipped weights live in ``ganforge/metrics/weights/{name}_classifier.safetensors`` and are
rebuilt by ``python -m ganforge.metrics.train_classifiers``.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data.transforms import convert_channels, resize_square
from ganforge.errors import CheckpointError, ConfigError, DataError

CLASSIFIER_NAMES = ("mnist", "digits")
CLASSIFIER_FORMAT = "ganforge.classifier/1"
CLASSIFIER_RESOLUTION = 32
FEATURE_DIM = 128
CLASSIFIER_PREPROCESSING = (
    "uint8 NCHW -> 1 channel (ganforge.data.transforms.convert_channels: ITU-R 601 luma, "
    "alpha over white) -> center-crop + bilinear resize to 32x32 when not 32x32 "
    "(ganforge.data.transforms.resize_square, antialiased when shrinking, rounded to uint8) "
    "-> float32 x / 127.5 - 1 in [-1, 1]"
)
REGENERATE = "python -m ganforge.metrics.train_classifiers --which {name}"
_CPU_CHUNK = 250


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class DomainClassifier(nn.Module):
    """CNN for 1x32x32 images in [-1, 1]: conv32 -> pool -> conv64 x2 -> pool -> conv128
    -> pool -> linear feature layer (BatchNorm, ReLU) -> dropout -> linear classifier.

    ``forward(x)`` returns ``(features, logits)``; features are the non-negative
    ``feature_dim`` activations of the penultimate layer.
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = FEATURE_DIM,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            *_conv(1, 32), nn.MaxPool2d(2),
            *_conv(32, 64), *_conv(64, 64), nn.MaxPool2d(2),
            *_conv(64, 128), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.feature = nn.Sequential(
            nn.Linear(128 * 4 * 4, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        # channels_last is about twice as fast for these convolutions on CPU (oneDNN)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 32, 32) floats in [-1, 1] -> (features (N, feature_dim), logits (N, K))."""
        feats = self.feature(self.body(x.contiguous(memory_format=torch.channels_last)))
        return feats, self.head(self.dropout(feats))


# ---------------------------------------------------------------- preprocessing


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 2, 3, 4} -> float32 (N, 1, 32, 32) in [-1, 1]
    (see ``CLASSIFIER_PREPROCESSING``)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        what = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor) else type(images).__name__)
        raise DataError(
            f"classifier input must be a uint8 tensor (N, C, H, W), got {what}; map generator "
            "output in [-1, 1] to uint8 with ((x + 1) * 127.5).round().clamp(0, 255)"
        )
    x = convert_channels(images.cpu(), 1)
    if x.shape[-2:] != (CLASSIFIER_RESOLUTION, CLASSIFIER_RESOLUTION):
        x = resize_square(x, CLASSIFIER_RESOLUTION)
    return x.to(torch.float32).div_(127.5).sub_(1.0)


# ---------------------------------------------------------------- inference


@torch.no_grad()
def predict(model: DomainClassifier, images: torch.Tensor,
            batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits (float32, CPU) of uint8 images, in batches, without gradients."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, logits = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = preprocess(images[start : start + batch_size]).to(device)
            # on CPU, sub-batches that fit in cache are ~1.5x faster than 1000 at once
            for sub in x.split(_CPU_CHUNK) if device.type == "cpu" else (x,):
                f, z = model(sub)
                feats.append(f.float().cpu())
                logits.append(z.float().cpu())
    finally:
        model.train(was_training)
    if not feats:
        return (torch.empty(0, model.feature_dim), torch.empty(0, model.num_classes))
    return torch.cat(feats), torch.cat(logits)


def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose arg-max logit equals ``labels``."""
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise DataError("accuracy needs at least one image")
    _, logits = predict(model, images, batch_size)
    return float((logits.argmax(1) == labels.cpu().long()).double().mean())


# ---------------------------------------------------------------- training


def shift_augment(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each (N, 1, H, W) image by a random integer offset in
    [-max_shift, max_shift] on each axis, filling with the background value -1."""
    n, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (N, 1, 1, W)
    idx_n = torch.arange(n)[:, None, None, None]
    idx_c = torch.arange(c)[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int = 10,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    augment: bool = False,
    progress: bool = False,
) -> DomainClassifier:
    """Train a fresh :class:`DomainClassifier` on uint8 images (any size / channel count,
    see :func:`preprocess`) and int64 labels in ``[0, num_classes)``.

    Adam with a one-cycle learning-rate schedule peaking at ``lr``; ``augment`` adds
    random shifts of up to 2 px. Deterministic for a given ``seed`` on CPU (the global
    RNG state is left untouched). Returns the model in eval mode, on the CPU.
    """
    if epochs < 1 or batch_size < 2 or not lr > 0:
        raise ConfigError(
            f"need epochs >= 1, batch_size >= 2 and lr > 0, got {epochs}, {batch_size}, {lr}"
        )
    labels = torch.as_tensor(labels).cpu().long()
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    if len(images) < 2:
        raise DataError(f"need at least 2 training images, got {len(images)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(
            f"labels must lie in [0, {num_classes}), got {int(labels.min())}..{int(labels.max())}"
        )
    x_all = preprocess(images)
    n = len(x_all)
    steps_per_epoch = math.ceil(n / batch_size)
    gen = torch.Generator().manual_seed(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc="classifier", unit="step", leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(num_classes=num_classes)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25
        )
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            running = 0.0
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size]
                if len(idx) >= 2:  # BatchNorm needs 2+ samples; a lone leftover is skipped
                    x = x_all[idx]
                    if augment:
                        x = shift_augment(x, 2, gen)
                    _, logits = model(x)
                    loss = F.cross_entropy(logits, labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    running += float(loss.detach())
                sched.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{running / (step + 1):.4f}")
    if bar is not None:
        bar.close()
    return model.eval()


# ---------------------------------------------------------------- shipped weights


def _check_name(name: str) -> str:
    if name not in CLASSIFIER_NAMES:
        raise ConfigError(
            f"unknown classifier {name!r}; valid names: {', '.join(map(repr, CLASSIFIER_NAMES))}"
        )
    return name


def weights_filename(name: str) -> str:
    """File name of the shipped weights for ``name``."""
    return f"{_check_name(name)}_classifier.safetensors"


def _weights_resource(name: str) -> Traversable:
    return resources.files("ganforge.metrics").joinpath("weights", weights_filename(name))


def _corrupt(name: str, where: object, why: object) -> ConfigError:
    return ConfigError(
        f"classifier weights file {where} is missing or corrupt ({why}); regenerate it with "
        f"'{REGENERATE.format(name=name)}' or reinstall ganforge"
    )


def _read_weights(name: str) -> tuple[bytes, str]:
    res = _weights_resource(name)
    try:
        return res.read_bytes(), str(res)
    except OSError as exc:
        raise _corrupt(name, res, exc) from exc


def _decode_weights(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of the shipped weights file, or the regeneration hint."""
    from ganforge.checkpoint import decode_safetensors

    data, where = _read_weights(name)
    try:
        return decode_safetensors(data, Path(where))
    except CheckpointError as exc:
        raise _corrupt(name, where, exc) from exc


def build_metadata(name: str, **values: Any) -> dict[str, str]:
    """Metadata (str -> str) for a classifier weights file."""
    meta = {"format": CLASSIFIER_FORMAT, "name": name, "preprocessing": CLASSIFIER_PREPROCESSING}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})
    return meta


def serialize_classifier(model: DomainClassifier, metadata: dict[str, str]) -> bytes:
    """safetensors bytes of ``model``'s state dict with ``metadata`` (sizes added)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {**metadata, "num_classes": str(model.num_classes),
            "feature_dim": str(model.feature_dim)}
    return save(tensors, metadata=meta)


def classifier_metadata(name: str) -> dict[str, str]:
    """Metadata recorded in the shipped weights file (training data, epochs, seed,
    test accuracy, ganforge version, ...)."""
    return _decode_weights(name)[1]


def load_classifier(name: str, device: str | torch.device = "cpu") -> DomainClassifier:
    """The shipped classifier ``name`` ("mnist" or "digits"), in eval mode on ``device``."""
    tensors, meta = _decode_weights(name)
    try:
        if meta.get("format") != CLASSIFIER_FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {CLASSIFIER_FORMAT!r}")
        model = DomainClassifier(num_classes=int(meta.get("num_classes", "10")),
                                 feature_dim=int(meta.get("feature_dim", str(FEATURE_DIM))))
        model.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise _corrupt(name, _weights_resource(name), exc) from exc
    return model.to(device).eval()


def classifier_provenance(name: str) -> dict[str, str]:
    """Identity of a shipped classifier for cache keys: name, weights sha256, preprocessing."""
    data, _ = _read_weights(name)
    return {
        "name": name,
        "weights": weights_filename(name),
        "sha256": hashlib.sha256(data).hexdigest(),
        "preprocessing": CLASSIFIER_PREPROCESSING,
    }
