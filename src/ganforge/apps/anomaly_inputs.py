"""Inputs for anomaly scores: data sources, folders, .npz and .csv files brought to a
run's shape (images at its resolution and channels, rows checked against its columns)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganforge.data import load_source
from ganforge.data.spec import parse_spec, read_rows, spec_for
from ganforge.errors import DataError

if TYPE_CHECKING:
    from ganforge.apps.anomaly import AnomalyDetector


@dataclass
class Inputs:
    """Inputs to score: ``x``, their labels (if the source has any), their positions in
    the source and the source's spec."""

    x: torch.Tensor
    labels: torch.Tensor | None
    index: torch.Tensor
    spec: str


def load_inputs(detector: AnomalyDetector, source: str, split: str | None = None,
                n: int | None = None, seed: int = 0) -> Inputs:
    """Inputs to score from a data spec or path, at the run's size.

    Images come back in [-1, 1] at the run's resolution and channels; rows as read (the
    detector standardizes them). MNIST defaults to its test split; ``n`` takes a seeded
    random subset (kept in source order).
    """
    spec = spec_for(source)
    kind, arg = parse_spec(spec)
    labels = None
    if kind == "csv" and arg is not None:
        rows, columns = read_rows(Path(arg).expanduser())
        trained = detector.info.get("columns")
        if trained and columns != trained:
            raise DataError(f"{arg} has columns {columns}, but the run was trained on "
                            f"{trained}; give the same columns in the same order.")
        x = torch.from_numpy(rows)
    else:
        shape = detector.sample_shape
        res, ch = (shape[1], shape[0]) if detector.kind == "image" else (32, None)
        bundle = load_source(spec, resolution=res, channels=ch,
                             split=split or ("test" if kind == "mnist" else "all"))
        if bundle.kind != detector.kind:
            raise DataError(f"'{spec}' holds {bundle.kind} but the run scores "
                            f"{detector.kind}; give inputs like its training data.")
        x, labels = bundle.batch(torch.arange(len(bundle)))
    index = torch.arange(len(x))
    if n is not None and n < len(x):
        index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        index = index.sort().values
        x, labels = x[index], None if labels is None else labels[index]
    return Inputs(x, labels, index, spec)
