"""How well an InfoGAN categorical code matches the data's classes.

Images are generated for every value of the code (the other latents drawn from the
prior), classified by a shipped domain classifier, and each code value is matched to
one class by the assignment that maximises the agreement (Hungarian algorithm). The
accuracy is the fraction of images whose class is the one their code value maps to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ganforge.errors import ConfigError
from ganforge.metrics.classifier import load_classifier, predict
from ganforge.models.infogan import layout_of
from ganforge.visual import quantize


@dataclass
class CodeAccuracy:
    """Accuracy under the best one-to-one map of code values to classes."""

    code: str
    accuracy: float
    assignment: dict[int, int]  # code value -> class
    confusion: list[list[int]]  # [code value][predicted class] counts
    n_per_value: int

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "accuracy": self.accuracy,
                "assignment": {str(k): v for k, v in self.assignment.items()},
                "confusion": self.confusion, "n_per_value": self.n_per_value}


def best_assignment(confusion: np.ndarray) -> tuple[float, dict[int, int]]:
    """Accuracy and row -> column map of the one-to-one matching with the most counts."""
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    total = confusion.sum()
    acc = float(confusion[rows, cols].sum() / total) if total else 0.0
    return acc, {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


@torch.no_grad()
def generate_per_value(G: Any, code: str, n: int, seed: int = 0,
                       batch_size: int = 250) -> list[torch.Tensor]:
    """``n`` images per value of categorical ``code`` (other latents from the prior)."""
    codes = layout_of(G)
    kind, i = codes.parse(code)
    if kind != "cat":
        raise ConfigError(f"Code accuracy needs a categorical code; {code} is continuous. "
                          f"Choose one of {', '.join(c for c in codes.names if 'cat' in c)}.")
    module = getattr(G, "module", G)
    device = next(module.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    was_training = module.training
    module.eval()
    out = []
    try:
        for value in range(codes.categorical[i]):
            z = codes.set_code(codes.sample(n, generator=gen), code, value)
            out.append(torch.cat([module(zb.to(device)).float().cpu()
                                  for zb in z.split(batch_size)]))
    finally:
        module.train(was_training)
    return out


def code_accuracy(G: Any, code: str = "cat0", n_per_value: int = 500, seed: int = 0,
                  classifier: str = "mnist") -> CodeAccuracy:
    """Accuracy of categorical ``code`` against the shipped ``classifier``'s classes."""
    images = generate_per_value(G, code, n_per_value, seed)
    model = load_classifier(classifier)
    k = model.num_classes
    confusion = np.zeros((len(images), k), dtype=np.int64)
    for value, batch in enumerate(images):
        _, logits = predict(model, quantize(batch))
        confusion[value] = np.bincount(logits.argmax(1).numpy(), minlength=k)
    acc, assignment = best_assignment(confusion)
    return CodeAccuracy(code, acc, assignment, confusion.tolist(), n_per_value)
