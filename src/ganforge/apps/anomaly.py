"""Anomaly detection with a trained GAN: the discriminator's score and the AnoGAN residual.

Train a run on normal data only (``exclude_classes`` drops known anomalies from a
labelled set), then score new inputs; higher means more anomalous::

    det = AnomalyDetector.from_run("runs/0003-mnist-dcgan")
    s_d = det.score(x, method="discriminator")   # -D(x): fast, one forward pass
    s_r = det.score(x, method="residual")        # AnoGAN latent-search loss: slower

Both G and D come from the run: D from the training state ``checkpoints/state-*``
(the only place it is saved), G from the exported ``generator.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.apps.latent_search import SearchResult, SearchSettings, latent_search
from ganforge.checkpoint import load_state
from ganforge.config import RunConfig, read_yaml, validate_config
from ganforge.data.spec import parse_spec, standardize
from ganforge.errors import CheckpointError, ConfigError, DataError
from ganforge.generator import LoadedGenerator, load
from ganforge.registry import get_model
from ganforge.train import rundir
from ganforge.train.run import train

METHODS = ("discriminator", "residual")
ArrayLike = torch.Tensor | np.ndarray


def _read_config(run_dir: Path) -> RunConfig:
    if not rundir.is_run_dir(run_dir):
        raise CheckpointError(f"{run_dir} is not a ganforge run directory (no {rundir.CONFIG}); "
                              "pass the folder `ganforge train` created.")
    return validate_config(read_yaml(run_dir / rundir.CONFIG), str(run_dir / rundir.CONFIG))


def _load_d_state(run_dir: Path, prefer_step: int | None) -> tuple[int, dict[str, Any]]:
    """(step, D state dict) from the training state matching the export, else the newest
    readable one."""
    found = rundir.checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"Run {run_dir} has no training state in {rundir.CHECKPOINTS}/; the discriminator "
            "is saved only there (the export holds the generator alone). Use a run that "
            "reached a checkpoint (every checkpoint_every steps and at the end), or resume it "
            "with `ganforge train --resume`.")
    found.sort(key=lambda item: item[0] != prefer_step)  # stable: newest first otherwise
    problems = []
    for step, path in found:
        try:
            state, _ = load_state(path)
            return step, state["recipe"]["D"]
        except CheckpointError as err:
            problems.append(str(err))
        except (KeyError, TypeError):
            problems.append(f"{path} holds no discriminator weights")
    raise CheckpointError(f"No training state of {run_dir} could be read: "
                          f"{'; '.join(problems)}. Resume or retrain the run.")


def _feature_layer(D: nn.Module, model: str) -> nn.Module:
    features = getattr(D, "features", None)
    if not isinstance(features, nn.Module):
        raise ConfigError(f"The '{model}' discriminator exposes no `features` module, which "
                          "the residual score compares; use --method discriminator.")
    return features


class AnomalyDetector:
    """Scores inputs with a run's discriminator and generator; higher is more anomalous.

    Image inputs are float tensors in [-1, 1] (N, C, H, W) at the run's size (uint8 is
    accepted and scaled); row inputs are (N, D) in the units of the training data: a
    run trained with ``standardize: true`` has its column statistics applied here.
    """

    def __init__(self, generator: LoadedGenerator, discriminator: nn.Module,
                 config: RunConfig, info: dict[str, Any] | None = None,
                 scaler: dict[str, list[float]] | None = None) -> None:
        self.G = generator.module.eval().requires_grad_(False)
        self.D = discriminator.eval().requires_grad_(False)
        self.config, self.info, self.scaler = config, dict(info or {}), scaler
        self.kind = generator.kind
        self.sample_shape = tuple(self.G.sample_shape)
        self.num_classes = generator.num_classes
        if self.kind == "image":  # NHWC: faster (transposed) convolutions on CPU
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device = "cpu"
                 ) -> AnomalyDetector:
        """Build G (the export) and D (the matching training state) of a run."""
        run_dir = Path(run_dir)
        config = _read_config(run_dir)
        if config.pack > 1:
            raise ConfigError(f"Run {run_dir} was trained with pack={config.pack}: its "
                              "discriminator judges packs of samples, not single ones, so it "
                              "cannot score one input. Train the detector's run with pack: 1 "
                              "(the default).")
        generator = load(run_dir, device=device)
        spec = get_model(config.model)
        D = spec.build_discriminator(spec.make_config(config.model_options))
        step, d_state = _load_d_state(run_dir, generator.info.get("step"))
        try:
            D.load_state_dict(d_state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"The discriminator saved in {run_dir} does not fit the "
                                  f"'{config.model}' model of its config.yaml "
                                  f"({str(err).splitlines()[0]}); was config.yaml edited? "
                                  "Restore it.") from None
        status = rundir.read_status(run_dir).get("data", {})
        scaler = status.get("standardize") if config.standardize else None
        if config.standardize and not scaler:
            raise CheckpointError(f"Run {run_dir} was trained with standardize: true but its "
                                  "run.json lacks the column statistics; restore run.json.")
        info = {"run": str(run_dir), "model": config.model, "data": config.data,
                "exclude_classes": list(config.exclude_classes),
                "generator_step": generator.info.get("step"), "discriminator_step": step,
                "columns": status.get("columns")}
        return cls(generator, D.to(device), config, info, scaler)

    @classmethod
    def fit(cls, data: str, device: str = "cpu", **overrides: Any) -> AnomalyDetector:
        """Train a run on normal data (``ganforge.train`` settings) and return its detector.
        Rows (``csv:PATH``) default to the ``mlp`` model with ``standardize: true``."""
        if parse_spec(data)[0] == "csv":
            overrides = {"model": "mlp", "standardize": True, **overrides}
        return cls.from_run(train(data=data, device=device, **overrides).dir, device)

    @property
    def device(self) -> torch.device:
        return next(self.D.parameters()).device

    # ------------------------------------------------------------------ inputs
    def prepare(self, x: ArrayLike) -> torch.Tensor:
        """Check an input batch against the run and bring it to the model's units."""
        t = torch.as_tensor(x)
        if t.dtype == torch.uint8 and self.kind == "image":
            t = t.float().div(127.5).sub(1.0)
        if not t.is_floating_point():
            t = t.float()
        want = self.sample_shape
        if t.dim() != len(want) + 1 or tuple(t.shape[1:]) != want or t.shape[0] == 0:
            what = "images (N, C, H, W)" if self.kind == "image" else "rows (N, D)"
            raise DataError(f"Inputs of shape {tuple(t.shape)} do not fit this run, which "
                            f"scores {what} shaped (N, {', '.join(map(str, want))}); "
                            + ("resize them to the run's resolution and channel count (data "
                               "sources given to `ganforge detect --input` are resized for "
                               "you)." if self.kind == "image" else
                               "give the same columns as the training rows."))
        if not bool(torch.isfinite(t).all()):
            raise DataError("Inputs contain NaN or infinite values (missing cells?); fill or "
                            "drop those rows before scoring.")
        t = t.float()
        if self.kind == "image" and (t.min() < -1.001 or t.max() > 1.001):
            raise DataError(f"Images must be floats in [-1, 1] (or uint8 0..255); these lie in "
                            f"[{float(t.min()):.3g}, {float(t.max()):.3g}]. Scale them as "
                            "x / 127.5 - 1.")
        if self.scaler is not None:
            t = standardize(t, self.scaler)
        t = t.to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t

    def _labels(self, labels: ArrayLike | None, n: int) -> torch.Tensor | None:
        if labels is None:
            return None
        if self.num_classes is None:
            raise ConfigError("This run is unconditional; score without labels.")
        y = torch.as_tensor(labels, dtype=torch.long).flatten()
        if y.shape != (n,) or y.min() < 0 or y.max() >= self.num_classes:
            raise ConfigError(f"Labels must be {n} class indices in 0..{self.num_classes - 1}.")
        return y.to(self.device)

    # ------------------------------------------------------------------ scores
    def score(self, x: ArrayLike, method: str = "discriminator",
              labels: ArrayLike | None = None, settings: SearchSettings | None = None,
              progress: bool = False) -> torch.Tensor:
        """Anomaly score per input (CPU float tensor; higher = more anomalous).

        ``discriminator``: minus D's logit. ``residual``: the AnoGAN search loss (see
        :mod:`ganforge.apps.latent_search`; ``settings`` sets steps, restarts, lr, lambda
        and seed). A conditional run without ``labels`` takes the most normal class.
        """
        if method not in METHODS:
            raise ConfigError(f"Unknown anomaly score '{method}'; use one of "
                              f"{', '.join(METHODS)}.")
        t = self.prepare(x)
        y = self._labels(labels, t.shape[0])
        if method == "discriminator":
            return self._discriminator_score(t, y)
        return self._search(t, y, settings, progress).scores

    def search(self, x: ArrayLike, labels: ArrayLike | None = None,
               settings: SearchSettings | None = None, progress: bool = False
               ) -> SearchResult:
        """The AnoGAN latent search with its details: scores, the loss at the start and
        the latents found (and, for an unlabelled conditional run, the best class)."""
        t = self.prepare(x)
        return self._search(t, self._labels(labels, t.shape[0]), settings, progress)

    @torch.no_grad()
    def _discriminator_score(self, x: torch.Tensor, labels: torch.Tensor | None,
                             batch_size: int = 512) -> torch.Tensor:
        """``-D(x)`` (max logit over classes for unlabelled conditional runs)."""
        out = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            if labels is not None or self.num_classes is None:
                yb = None if labels is None else labels[i:i + batch_size]
                logit = self.D(xb, yb)
            else:
                logit = torch.stack([self.D(xb, torch.full((len(xb),), k, device=xb.device))
                                     for k in range(self.num_classes)]).max(0).values
            out.append(-logit.float().cpu())
        return torch.cat(out)

    def _search(self, t: torch.Tensor, labels: torch.Tensor | None,
                settings: SearchSettings | None, progress: bool) -> SearchResult:
        features = _feature_layer(self.D, self.config.model)
        if labels is not None or self.num_classes is None:
            return latent_search(self.G, features, t, labels, settings, progress)
        results = [latent_search(self.G, features, t, torch.full((len(t),), k, device=t.device),
                                 settings, progress) for k in range(self.num_classes)]
        scores = torch.stack([r.scores for r in results])
        best = scores.argmin(0)
        idx = torch.arange(len(t))
        return SearchResult(scores[best, idx],
                            torch.stack([r.initial for r in results])[best, idx],
                            torch.stack([r.z for r in results])[best, idx], best)


def excluded_auroc(detector: AnomalyDetector, scores: torch.Tensor,
                   labels: torch.Tensor | None) -> float | None:
    """AUROC of the run's excluded classes (as anomalies) against the rest, when the
    labelled inputs hold both; else None."""
    excluded = detector.info.get("exclude_classes") or []
    if labels is None or not excluded:
        return None
    positive = torch.isin(labels, torch.tensor(excluded)).numpy()
    if positive.all() or not positive.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores.numpy()))
