"""Stacked MNIST mode collapse: DCGAN, PacDCGAN2 and E-GAN at equal steps.

Each method trains the same small DCGAN pair on ``stacked-mnist`` (128,000 stacks of
three MNIST training digits, 32x32, 1,000 modes) for the same number of steps, one CPU
thread, bf16 autocast; then 26,000 samples of its exported generator are classified
channel by channel with the shipped MNIST classifier (docs/stacked_mnist.md). Reported:
modes captured (of 1,000) and KL(p_model || uniform), beside real stacks scored the same
way and the PacGAN paper's numbers. Prints a table and writes JSON.

    .venv/bin/python benchmarks/stacked_mnist.py [--steps 5000] [--seed 0] \
        [--json benchmarks/results/stacked_mnist.json]

About 30 minutes (1,776 s measured) on one thread of the shared 2-core development
machine at the default 5,000 steps; an E-GAN step costs about 5 plain steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import ganforge as gf
from ganforge.data import load_source
from ganforge.metrics.classifier import load_classifier
from ganforge.metrics.stacked import PAPER_SAMPLES, stacked_mode_stats, uniform_kl_floor

MODEL = {"g_width": 32, "d_width": 8, "z_dim": 100}  # G 128-64-32 channels, D 8-16-32
BASE: dict[str, Any] = {
    "data": "stacked-mnist", "model": "dcgan", "batch_size": 64, "precision": "bf16",
    "model_options": MODEL, "progress": False, "sample_every": 0, "checkpoint_every": 0,
    "log_every": 250,
}
METHODS: dict[str, dict[str, Any]] = {
    "DCGAN": {},
    "PacDCGAN2": {"pack": 2},
    "E-GAN": {"recipe": "egan", "egan": {"gamma": 0.05}},  # the measured run's gamma
}
# PacGAN (Lin et al., 2018), Table 3: VEEGAN's Stacked MNIST setting, 26,000 samples
PUBLISHED = {
    "DCGAN": {"modes_captured": 99.0, "kl": 3.40},
    "PacDCGAN2": {"modes_captured": 1000.0, "kl": 0.06},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=PAPER_SAMPLES, help="samples scored per model")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/stacked_mnist.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    classifier = load_classifier("mnist")
    rows: list[dict[str, Any]] = []

    t = time.perf_counter()
    real = load_source("stacked-mnist", seed=args.seed + 1)  # stacks the models never saw
    stats = stacked_mode_stats(real.data[:args.n], classifier)
    floor = uniform_kl_floor(args.n)
    rows.append({"method": f"real stacks ({args.n:,})", **stats.as_dict(), "train_s": 0.0,
                 "eval_s": round(time.perf_counter() - t, 1)})
    del real
    print(rows[-1], f"uniform KL floor {floor:.4f}", flush=True)

    with tempfile.TemporaryDirectory() as out:
        for name in args.methods:
            t = time.perf_counter()
            cfg = {**BASE, **METHODS[name], "steps": args.steps, "seed": args.seed}
            run = gf.train(cfg, out=out)
            train_s = time.perf_counter() - t
            t = time.perf_counter()
            samples = run.load_generator().sample(args.n, seed=123)
            stats = stacked_mode_stats(samples, classifier)
            rows.append({"method": name, **stats.as_dict(), "train_s": round(train_s, 1),
                         "eval_s": round(time.perf_counter() - t, 1)})
            print(rows[-1], flush=True)

    print(f"\n{args.steps} steps, batch 64, DCGAN {MODEL}, {args.n:,} samples each; "
          f"KL(p_model || uniform); uniform floor at this n: {floor:.3f}")
    print(f"{'method':<22} {'modes':>6} {'KL':>7} {'paper modes':>12} {'paper KL':>9} "
          f"{'train s':>8}")
    for r in rows:
        paper = PUBLISHED.get(r["method"], {})
        pm = f"{paper['modes_captured']:.0f}" if paper else "-"
        pk = f"{paper['kl']:.2f}" if paper else "-"
        print(f"{r['method']:<22} {r['modes_captured']:>6} {r['kl']:>7.3f} {pm:>12} {pk:>9} "
              f"{r['train_s']:>8.1f}")
    summary = {
        "steps": args.steps, "seed": args.seed, "n_samples": args.n,
        "config": BASE, "methods": {m: METHODS[m] for m in args.methods},
        "kl": "KL(p_model || uniform over 1000 modes), natural log",
        "uniform_kl_floor": floor, "rows": rows,
        "published": {"source": "PacGAN (Lin et al., 2018) Table 3, VEEGAN setting",
                      **PUBLISHED},
        "wall_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wall {summary['wall_s']:.0f} s; wrote {args.json}")


if __name__ == "__main__":
    main()
