"""Class-conditional BigGAN on MNIST: is a sample requested for class c classified as c?

Trains the `biggan` family (shared class embedding, hierarchical z, conditional BN,
self-attention at 16 px, spectral norm in G and D, projection D) class-conditionally
on the 60,000 MNIST training digits at 32x32 with the BigGAN recipe (hinge loss, Adam
betas (0, 0.999), D's learning rate twice G's, orthogonal regularization 1e-4, EMA
generator), at CPU size (widths 16, one D step per G step). Then it draws
``--per-class`` samples of every class from the exported EMA generator and classifies
them with the shipped MNIST classifier (99.3% on the real test set). The run directory
is kept (``--run-dir``) for the truncation sweep. Prints a table and writes JSON.

    .venv/bin/python benchmarks/biggan_mnist.py [--steps 3000] [--model biggan] \
        [--run-dir benchmarks/runs/biggan-mnist] [--json benchmarks/results/biggan_mnist.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

import ganforge as gf
from ganforge.metrics.classifier import accuracy, load_classifier
from ganforge.visual import quantize


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training configuration."""
    return {"data": "mnist", "split": "train", "model": args.model, "conditional": True,
            "resolution": 32, "steps": args.steps, "batch_size": 64, "loss": "hinge",
            "n_critic": 1, "ortho_reg": 1e-4 if args.model == "biggan" else 0.0,
            "g_optim": {"lr": 2e-4, "betas": [0.0, 0.999]},
            "d_optim": {"lr": 4e-4, "betas": [0.0, 0.999]},
            "model_options": {"g_width": args.width, "d_width": args.width},
            "progress": False, "sample_every": 1000, "checkpoint_every": 1000,
            "log_every": 100, "seed": args.seed}


def class_fidelity(run_dir: Path, per_class: int, seed: int,
                   truncation: float | None = None) -> dict[str, float]:
    """Per-class accuracy of the MNIST classifier on samples requested for each class."""
    g = gf.load(run_dir)
    clf = load_classifier("mnist")
    out: dict[str, float] = {}
    for c in range(g.num_classes or 0):
        kwargs = {} if truncation is None else {"truncation": truncation}
        x = g.sample(per_class, seed=seed + c, labels=c, **kwargs)
        out[str(c)] = accuracy(clf, quantize(x), torch.full((per_class,), c))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--model", default="biggan")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, default=Path("benchmarks/runs/biggan-mnist"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/biggan_mnist.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args)
    if args.run_dir.exists():
        shutil.rmtree(args.run_dir)
    started = time.perf_counter()
    run = gf.train(cfg, run_dir=args.run_dir)
    train_s = time.perf_counter() - started
    per_class = class_fidelity(run.dir, args.per_class, seed=1000)
    worst = min(per_class.values())
    print(f"{args.model}, {args.steps} steps, {train_s / 60:.1f} min on {args.threads} "
          "thread(s)")
    print("| class | " + " | ".join(per_class) + " | worst | mean |")
    print("|---" * (len(per_class) + 3) + "|")
    mean = sum(per_class.values()) / len(per_class)
    print("| accuracy % | " + " | ".join(f"{100 * v:.1f}" for v in per_class.values())
          + f" | {100 * worst:.1f} | {100 * mean:.1f} |")
    result = {"config": cfg, "train_s": round(train_s, 1), "per_class_accuracy": per_class,
              "worst_class_accuracy": worst, "mean_accuracy": mean,
              "samples_per_class": args.per_class, "classifier": "mnist (shipped)",
              "run_dir": str(args.run_dir), "torch": torch.__version__}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
