"""Mode capture of the MLP GAN on the ring of 8 Gaussians, over several seeds.

Uses the setting of tests/test_learning.py (DATA.md protocol: 2,500 samples, high
quality = within 3 std of the nearest mode). Prints a table and writes JSON.

    .venv/bin/python benchmarks/ring_seeds.py [--seeds 0 1 2] \
        [--json benchmarks/results/ring_seeds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import ganforge as gf
from ganforge.data import MIXTURE_STD, mixture_centers
from ganforge.metrics import mode_stats

RING = {"data": "ring", "model": "mlp", "steps": 3000, "batch_size": 256, "n_critic": 2,
        "r1_gamma": 0.001, "g_optim": {"lr": 1e-3}, "d_optim": {"lr": 1e-3}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/ring_seeds.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for seed in args.seeds:
            t = time.perf_counter()
            run = gf.train(RING, out=out, seed=seed, progress=False, sample_every=0,
                           checkpoint_every=0)
            stats = mode_stats(run.load_generator().sample(2500, seed=123),
                               mixture_centers("ring"), MIXTURE_STD["ring"])
            rows.append({"seed": seed, **stats.as_dict(),
                         "train_s": round(time.perf_counter() - t, 1)})
            print(rows[-1], flush=True)
    print(f"\n{'seed':>4} {'modes':>6} {'high quality':>13} {'reverse KL':>11} {'time s':>7}")
    for r in rows:
        print(f"{r['seed']:>4} {r['modes_captured']:>6} {r['high_quality']:>13.3f} "
              f"{r['reverse_kl']:>11.3f} {r['train_s']:>7.1f}")
    hq = [r["high_quality"] for r in rows]
    summary = {"config": RING, "rows": rows, "mean_high_quality": statistics.mean(hq),
               "mean_modes": statistics.mean(r["modes_captured"] for r in rows)}
    print(f"mean: {summary['mean_modes']:.2f} modes, {summary['mean_high_quality']:.3f} HQ")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
