"""StyleGAN2 against DCGAN on MNIST at 32x32, at equal CPU time.

Both train on the 60,000 MNIST training digits, side by side, one thread each, for the
same wall-clock budget (``--minutes``): a short calibration run measures each model's
seconds per step on this machine, and each then trains for as many steps as fit in the
budget. FID (shipped MNIST-classifier features) of 5,000 samples of each exported EMA
generator against the 10,000 MNIST test digits. The run directories are kept
(``--out``) for the projection benchmark. Prints a table and writes JSON.

    .venv/bin/python benchmarks/stylegan2_mnist.py [--minutes 20] [--configs dcgan stylegan2-tanh] \
        [--out benchmarks/runs/stylegan2-mnist] [--json benchmarks/results/stylegan2_mnist.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from stylegan2_probe import MODELS as PROBE_MODELS  # a sibling script

SMALL_DATA = PROBE_MODELS["stylegan2"]
COMMON: dict[str, Any] = {"data": "mnist", "split": "train", "resolution": 32,
                          "progress": False, "sample_every": 1000, "checkpoint_every": 1000,
                          "log_every": 100}
CONFIGS: dict[str, dict[str, Any]] = {
    # the README's DCGAN: widths 64, Adam 2e-4 (0.5, 0.999), batch 64, non-saturating
    "dcgan": {"model": "dcgan", "batch_size": 64},
    # StyleGAN2 with the paper's recipe at CPU size: lazy R1 (gamma from the ADA paper's
    # heuristic 0.0002 * res^2 / batch), path length, mixing 0.9, Adam 2.5e-3 (0, 0.99)
    "stylegan2": {"model": "stylegan2", "recipe": "stylegan2", "batch_size": 32,
                  "r1_gamma": 0.01, "g_optim": {"lr": 0.0025, "betas": [0.0, 0.99]},
                  "d_optim": {"lr": 0.0025, "betas": [0.0, 0.99]}},
    # the probes' StyleGAN2-ADA small-data settings (2 mapping layers, no path length, no
    # mixing), EMA ramp-up, and a tanh output for MNIST's saturated background
    # (docs/stylegan2.md)
    "stylegan2-tanh": {**SMALL_DATA, "ema_rampup": 0.05,
                       "model_options": {**SMALL_DATA["model_options"], "output_tanh": True}},
}
CALIBRATION_STEPS = 40


def seconds_per_step(name: str) -> float:
    """Wall seconds per training step, from a short run (first steps excluded)."""
    import torch

    import ganforge as gf

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        cfg = {**COMMON, **CONFIGS[name], "steps": CALIBRATION_STEPS, "sample_every": 0,
               "checkpoint_every": 0, "log_every": CALIBRATION_STEPS // 2}
        run = gf.train(cfg, out=out)
        steady = run.metrics[-1]  # the second window, after the first steps' warm-up
        return 1.0 / steady["steps_per_s"]


def train_and_score(job: tuple[str, float, str, int]) -> dict[str, Any]:
    """Calibrate, train for the budget, score FID (runs in a worker)."""
    import torch

    import ganforge as gf
    from ganforge.metrics.evaluate import evaluate

    name, minutes, out, seed = job
    torch.set_num_threads(1)
    s_per_step = seconds_per_step(name)
    steps = max(100, int(minutes * 60 / s_per_step))
    run_dir = Path(out) / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    run = gf.train({**COMMON, **CONFIGS[name], "steps": steps, "seed": seed}, run_dir=run_dir)
    train_s = time.perf_counter() - started
    result = evaluate(run.dir, real="mnist", split="test", metrics="fid", n=5000,
                      n_real=10_000, features="mnist", seed=seed)
    return {"model": name, "config": {**COMMON, **CONFIGS[name]}, "steps": steps,
            "calibrated_s_per_step": round(s_per_step, 4), "train_s": round(train_s, 1),
            "fid": round(result["metrics"]["fid"], 3), "run_dir": str(run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=["dcgan", "stylegan2"],
                        choices=list(CONFIGS), help="the first is the reference")
    parser.add_argument("--out", default="benchmarks/runs/stylegan2-mnist")
    parser.add_argument("--json", type=Path,
                        default=Path("benchmarks/results/stylegan2_mnist.json"))
    args = parser.parse_args()
    jobs = [(name, args.minutes, args.out, args.seed) for name in args.configs]
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        rows = pool.map(train_and_score, jobs)
    print(f"MNIST 32x32, {args.minutes:g} min of one CPU thread each, side by side; FID with "
          "MNIST-classifier features, 5k generated vs 10k test")
    print("| model | steps | batch | train min | FID |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['steps']} | {r['config']['batch_size']} | "
              f"{r['train_s'] / 60:.1f} | {r['fid']:.2f} |")
    ratios = {r["model"]: round(r["fid"] / rows[0]["fid"], 3) for r in rows[1:]}
    for name, ratio in ratios.items():
        print(f"{name} / {rows[0]['model']} FID ratio: {ratio:.2f} (target: at most 1.5)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "fid_ratio": ratios}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
