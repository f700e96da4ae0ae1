"""Augmentation in the low-data regime: DCGAN on 1,000 MNIST digits, with and without
DiffAugment and ADA, at equal steps.

Each configuration trains the same small DCGAN (widths 32, batch 64, 32x32) on the same
seeded subset of 1,000 MNIST training digits (``data_limit``); 8,000 steps are 512
passes over the subset, long enough for D to memorize it. FID (shipped MNIST-classifier
features) of 5,000 samples of the EMA generator against the 10,000 MNIST test digits is
measured ``--evals`` times at even intervals (the run is resumed between them, which is
exact). Configurations run side by side, one thread each. With ``--keep DIR`` the run
directories stay in DIR and a later call with more ``--steps`` continues them. Prints a
table and writes JSON.

    .venv/bin/python benchmarks/augment_lowdata.py [--steps 8000] [--evals 4] [--seeds 0] \
        [--configs none diffaugment ada ada-noflip] [--d-width 32] [--precision bf16] \
        [--keep DIR] \
        [--json benchmarks/results/augment_lowdata.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "none": {},
    "diffaugment": {"augment": {"kind": "diffaugment"}},
    "ada": {"augment": {"kind": "ada"}},
    # ADA without the ops that turn a digit into a non-digit (mirror, quarter turns)
    "ada-noflip": {"augment": {"kind": "ada", "ada_ops": [
        "translate", "scale", "rotate", "aniso", "fraction", "brightness", "contrast"]}},
}


def settings(steps: int, limit: int, g_width: int = 32, d_width: int = 32,
             precision: str = "fp32") -> dict[str, Any]:
    """Everything but the augmentation."""
    return {"data": "mnist", "split": "train", "data_limit": limit, "model": "dcgan",
            "resolution": 32, "steps": steps, "batch_size": 64, "precision": precision,
            "model_options": {"g_width": g_width, "d_width": d_width},
            "progress": False, "sample_every": 0, "checkpoint_every": 0, "log_every": 100}


def run_config(job: tuple[str, int, int, int, int, int, int, str, str | None]
               ) -> dict[str, Any]:
    """Train one configuration, scoring FID ``evals`` times (a worker). With ``keep`` the
    run directory is kept there, and a run already in it is continued (exact resume)
    and scored only at the steps it has not reached."""
    import torch

    import ganforge as gf
    from ganforge.metrics.evaluate import evaluate
    from ganforge.train import rundir

    name, seed, steps, limit, evals, g_width, d_width, precision, keep = job
    torch.set_num_threads(1)
    cfg = {**settings(steps, limit, g_width, d_width, precision), **CONFIGS[name], "seed": seed,
           "data_seed": seed}
    started, fids, logs = time.perf_counter(), {}, {}
    stops = eval_steps(steps, evals)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(keep or tmp) / f"{name}-seed{seed}-g{g_width}-d{d_width}-{precision}"
        done = max((step for step, _ in rundir.checkpoints(run_dir)), default=0) \
            if rundir.is_run_dir(run_dir) else 0  # a kept run continues from there
        for stop in stops:
            if stop <= done:
                continue
            if done == 0:
                gf.train({**cfg, "steps": stop}, run_dir=run_dir)
            else:
                gf.resume(run_dir, steps=stop)
            done = stop
            result = evaluate(run_dir, real="mnist", split="test", metrics="fid", n=5000,
                              n_real=10_000, features="mnist", seed=seed)
            fids[str(stop)] = round(result["metrics"]["fid"], 3)
            last = rundir.read_metrics(run_dir)[-1]
            logs[str(stop)] = {k: round(v, 4) for k, v in last.items()
                               if k in ("d_real", "d_fake", "augment_p", "ada_rt")}
    return {"config": name, "seed": seed, "steps": steps, "fid": fids, "last_logs": logs,
            "train_and_eval_s": round(time.perf_counter() - started, 1)}


def eval_steps(steps: int, evals: int) -> list[int]:
    """``evals`` evenly spaced steps ending at ``steps``."""
    return sorted({max(1, steps * (i + 1) // evals) for i in range(evals)})


def with_earlier_scores(rows: list[dict[str, Any]], earlier: list[dict[str, Any]]
                        ) -> list[dict[str, Any]]:
    """``rows`` with the scores of an earlier call on the same kept runs filled in (a
    continued run is scored only at the steps it had not reached)."""
    before = {(r["config"], r["seed"]): r for r in earlier}
    merged = []
    for row in rows:
        old = before.get((row["config"], row["seed"]), {"fid": {}, "last_logs": {}})
        merged.append({**row, "fid": {**old["fid"], **row["fid"]},
                       "last_logs": {**old["last_logs"], **row["last_logs"]}})
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--evals", type=int, default=4)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--g-width", type=int, default=32)
    parser.add_argument("--d-width", type=int, default=32)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--configs", nargs="+", default=["none", "diffaugment", "ada"],
                        choices=list(CONFIGS))
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--keep", default=None, help="keep the run directories here; runs "
                        "already there are continued to --steps")
    parser.add_argument("--json", type=Path,
                        default=Path("benchmarks/results/augment_lowdata.json"))
    args = parser.parse_args()
    jobs = [(c, s, args.steps, args.limit, args.evals, args.g_width, args.d_width,
             args.precision, args.keep)
            for s in args.seeds for c in args.configs]
    with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        rows = pool.map(run_config, jobs)
    if args.keep and args.json.exists():
        rows = with_earlier_scores(rows, json.loads(args.json.read_text())["rows"])
    stops = [str(s) for s in eval_steps(args.steps, args.evals)]
    print(f"DCGAN (widths G {args.g_width}, D {args.d_width}) on {args.limit} MNIST digits; "
          "FID (MNIST features, 5k vs 10k test) by step")
    print("| augmentation | seed | " + " | ".join(stops) + " | best | D(real) at end | p (ADA) |")
    print("|---" * (len(stops) + 5) + "|")
    for r in rows:
        last = r["last_logs"][stops[-1]]
        print(f"| {r['config']} | {r['seed']} | "
              + " | ".join(f"{r['fid'][s]:.2f}" if s in r["fid"] else "-" for s in stops)
              + f" | {min(r['fid'].values()):.2f} | {last.get('d_real', float('nan')):.2f} | "
              f"{last.get('augment_p', '-')} |")
    result = {"settings": settings(args.steps, args.limit, args.g_width, args.d_width,
                                   args.precision),
              "configs": CONFIGS, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
