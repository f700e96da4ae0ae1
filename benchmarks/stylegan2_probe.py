"""Probe one StyleGAN2 (or DCGAN) setting on MNIST 32x32: FID every ``--eval-every`` steps.

Trains alone on one thread, with the StyleGAN2-ADA paper's small-data settings (2 mapping
layers, no path length, no mixing, Adam 2.5e-3 (0, 0.99), lazy R1 gamma 0.01) unless
``--set`` overrides them; FID of 2,000 EMA samples against the MNIST test digits with
the MNIST classifier's features (the trainer's periodic evaluation). Prints a table and
writes JSON.

    .venv/bin/python benchmarks/stylegan2_probe.py --steps 1500 --set ema_rampup=0.05 \\
        [--model dcgan] [--json benchmarks/results/stylegan2_probe.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

BASE: dict[str, Any] = {"data": "mnist", "split": "train", "resolution": 32,
                        "progress": False, "sample_every": 0, "checkpoint_every": 0,
                        "log_every": 100, "eval_n": 2000, "eval_features": "mnist",
                        "eval_real": "mnist"}
MODELS: dict[str, dict[str, Any]] = {
    "dcgan": {"model": "dcgan", "batch_size": 64},
    "stylegan2": {"model": "stylegan2", "recipe": "stylegan2", "batch_size": 32,
                  "r1_gamma": 0.01, "g_optim": {"lr": 0.0025, "betas": [0.0, 0.99]},
                  "d_optim": {"lr": 0.0025, "betas": [0.0, 0.99]},
                  "stylegan2": {"pl_weight": 0.0, "mixing_prob": 0.0},
                  "model_options": {"mapping_layers": 2}},
}


def with_override(cfg: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``cfg`` with ``a.b=VALUE`` set (VALUE parsed as JSON when it parses)."""
    key, _, raw = assignment.partition("=")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    out = json.loads(json.dumps(cfg))
    node = out
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def main() -> None:
    import torch

    import ganforge as gf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stylegan2", choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", type=Path,
                        default=Path("benchmarks/results/stylegan2_probe.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = {**BASE, **MODELS[args.model], "steps": args.steps, "seed": args.seed,
           "eval_every": args.eval_every, "log_every": args.eval_every}
    for assignment in args.overrides:
        cfg = with_override(cfg, assignment)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = gf.train(cfg, run_dir=Path(tmp) / "run")
        rows = [{"step": m["step"], "fid": round(m["eval_fid"], 2),
                 "d_real": round(m.get("d_real", float("nan")), 3)}
                for m in run.metrics if m.get("eval_fid") is not None]
    print(f"{args.model} {' '.join(args.overrides)}: FID (2k EMA samples vs MNIST test)")
    print("| step | FID | D(real) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['fid']:.2f} | {r['d_real']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"config": cfg, "rows": rows, "wall_s": round(
        time.perf_counter() - started, 1)}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
