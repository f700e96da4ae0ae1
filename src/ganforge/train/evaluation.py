"""Evaluation during training: the metric that picks ``best.safetensors``."""

from __future__ import annotations

from typing import Any

import torch

from ganforge.config import RunConfig
from ganforge.data import DataBundle
from ganforge.metrics.cache import cached_features
from ganforge.metrics.evaluate import (
    MetricOptions,
    as_trained,
    bundle_samples,
    check_metrics,
    compute_metrics,
    eval_split,
    generate,
    load_real,
    resolve_features,
    scalar_metric,
)
from ganforge.metrics.features import Features, get_extractor


def check_eval_metric(cfg: RunConfig) -> None:
    """Fail before loading data on an unknown selection metric."""
    if cfg.eval_every:
        scalar_metric(cfg.eval_metric)


class PeriodicEval:
    """Scores exported generators on fixed latents against fixed real samples.

    Real features are extracted once (and cached on disk); each call generates
    ``eval_n`` samples from the same seed, so scores of different steps compare fairly.
    """

    def __init__(self, cfg: RunConfig, data: DataBundle, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.group, self.key, self.higher_is_better = scalar_metric(cfg.eval_metric)
        real = data if cfg.eval_real is None else as_trained(
            load_real(cfg.eval_real, data.sample_shape, eval_split(cfg.eval_real, None)),
            data.info, default_source=False)
        self.real = bundle_samples(real, cfg.eval_n, seed=cfg.seed)
        name = resolve_features(cfg.eval_features, real.kind, real.name)
        self.extractor = get_extractor(name, device)
        self._real_feats: Features | None = None
        self.options = MetricOptions(seed=cfg.seed)
        # every incompatibility surfaces now, before the first training step
        check_metrics([self.group], real.kind, real.name, cfg.conditional,
                      real.labels is not None, self.extractor, cfg.eval_n, len(self.real.data),
                      self.options, data.num_classes if cfg.conditional else None)

    def __call__(self, module: torch.nn.Module, model: str) -> dict[str, float]:
        """All values of the selection metric's group for ``module``."""
        from ganforge.generator import LoadedGenerator

        if self._real_feats is None:
            self._real_feats, _ = cached_features(self.real.data, self.extractor,
                                                  self.real.labels, self.real.describe)
        g = LoadedGenerator(module, model, {}, {})
        was_training = module.training
        try:
            fake = generate(g, self.cfg.eval_n, seed=self.cfg.seed + 5)
        finally:
            module.train(was_training)
        fake_feats = self.extractor.extract(fake.data)
        values, _ = compute_metrics([self.group], self.real, fake, self._real_feats, fake_feats,
                                    self.options, self.extractor.name)
        return values

    def improved(self, value: float, best: dict[str, Any] | None) -> bool:
        """True when ``value`` beats the best so far (or there is none)."""
        if best is None or value != value:  # NaN never wins
            return best is None and value == value
        return value > best["value"] if self.higher_is_better else value < best["value"]
