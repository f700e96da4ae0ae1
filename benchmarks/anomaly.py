"""MNIST anomaly detection, one digit left out: AUROC of the discriminator score and of
the AnoGAN residual (Schlegl et al. 2017) for every digit, and their mean.

For each digit k: a DCGAN is trained on the MNIST train split without k
(``exclude_classes: [k]``); it then scores a seeded test set from the MNIST test split,
``--n`` images of digit k (the anomalies) and ``--n`` of the other digits (normal),
with both scores. Settings are fixed in advance (nothing is tuned on the test images).
Prints a table and writes JSON.

    .venv/bin/python benchmarks/anomaly.py [--digits 0 1 ... 9] [--steps 1500] [--n 250] \
        [--seed 0] [--threads 1] [--json benchmarks/results/anomaly.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import roc_auc_score

import ganforge as gf
from ganforge.apps.anomaly import AnomalyDetector
from ganforge.apps.latent_search import SearchSettings
from ganforge.data import load_source

# The standard DCGAN (BatchNorm in G and D) at half the default width, in bf16.
TRAIN = {"data": "mnist", "split": "train", "model": "dcgan", "batch_size": 64, "seed": 0,
         "model_options": {"g_width": 32, "d_width": 32},
         "precision": "bf16", "channels_last": True}
SEARCH = SearchSettings(steps=100, restarts=1, lr=0.05, lam=0.1, batch_size=250, seed=0)


def test_set(x: torch.Tensor, y: torch.Tensor, digit: int, n: int, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images of ``digit`` and ``n`` of the other digits (seeded), and 0/1
    anomaly targets."""
    g = torch.Generator().manual_seed(seed + digit)
    pos = (y == digit).nonzero().squeeze(1)
    neg = (y != digit).nonzero().squeeze(1)
    pos = pos[torch.randperm(len(pos), generator=g)[:n]]
    neg = neg[torch.randperm(len(neg), generator=g)[:n]]
    idx = torch.cat([pos, neg])
    return x[idx], (y[idx] == digit).long()


def one_digit(digit: int, args: argparse.Namespace, out: str, x: torch.Tensor,
              y: torch.Tensor) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    run = gf.train({**TRAIN, "steps": args.steps, "seed": args.seed, "exclude_classes": [digit]},
                   out=out, progress=False, sample_every=0, checkpoint_every=0)
    train_s = time.perf_counter() - started
    print(f"digit {digit}: trained {run.dir.name} in {train_s:.0f} s", flush=True)
    det = AnomalyDetector.from_run(run.dir)
    xs, target = test_set(x, y, digit, args.n, seed=0)
    t = time.perf_counter()
    d_scores = det.score(xs, method="discriminator")
    d_s = time.perf_counter() - t
    t = time.perf_counter()
    search = det.search(xs, settings=SEARCH)
    r_s = time.perf_counter() - t
    return {"digit": digit, "n_anomalous": int(target.sum()), "n_normal": int((1 - target).sum()),
            "auroc_discriminator": round(float(roc_auc_score(target, d_scores)), 4),
            "auroc_residual": round(float(roc_auc_score(target, search.scores)), 4),
            "residual_loss_start": round(float(search.initial.mean()), 4),
            "residual_loss_end": round(float(search.scores.mean()), 4),
            "train_s": round(train_s, 1), "discriminator_s": round(d_s, 2),
            "residual_s": round(r_s, 1), "total_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(time.process_time() - cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--steps", type=int, default=1500, help="training steps per digit")
    ap.add_argument("--n", type=int, default=250, help="test images per side")
    ap.add_argument("--seed", type=int, default=0, help="training seed (the test set is fixed)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/anomaly.json"))
    ap.add_argument("--runs", type=Path, default=None,
                    help="keep the runs in this folder (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 by default: on a shared 2-core machine two threads "
                         "wait on each other (measured 5-9x slower than one under load)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = load_source("mnist", split="test", resolution=32)
    x, y = test.batch(torch.arange(len(test)))
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(args.runs or tmp)
        for digit in args.digits:
            rows.append(one_digit(digit, args, out, x, y))
            print(rows[-1], flush=True)
    wall = time.perf_counter() - started
    print(f"\n{'digit':>5} {'AUROC D':>8} {'AUROC residual':>15} {'time s':>7}")
    for r in rows:
        print(f"{r['digit']:>5} {r['auroc_discriminator']:>8.3f} {r['auroc_residual']:>15.3f} "
              f"{r['total_s']:>7.1f}")
    mean_d = statistics.mean(r["auroc_discriminator"] for r in rows)
    mean_r = statistics.mean(r["auroc_residual"] for r in rows)
    print(f"{'mean':>5} {mean_d:>8.3f} {mean_r:>15.3f} {wall:>7.1f}")
    summary = {"train": {**TRAIN, "seed": args.seed}, "steps": args.steps,
               "search": SEARCH.model_dump(), "threads": args.threads,
               "n_per_side": args.n, "test_split": "test", "rows": rows,
               "mean_auroc_discriminator": round(mean_d, 4),
               "mean_auroc_residual": round(mean_r, 4), "wall_s": round(wall, 1),
               "torch": torch.__version__,
               "machine": platform.processor() or platform.machine()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
