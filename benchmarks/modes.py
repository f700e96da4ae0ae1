"""Mode collapse on the 2-D mixtures, by the protocol of the PacGAN paper's Table 1.

Ring of 8 and grid of 25 Gaussians with the settings of ../shared/DATA.md (100k
training points; 2,500 generated samples; high quality = within 3 std of the nearest
mode; a mode is captured when it has one high-quality sample). Every configuration is
trained ``--trials`` times (trial t: seed t, data_seed t) and reported as mean +-
standard error, beside the published numbers. Rows are written to the JSON as they
finish, beside the rows already there: a (data, config, steps, trial) that runs again
replaces its row when its new one arrives, and ``--resume`` skips the ones already there.
Runs of one configuration at other lengths (``--steps``) keep their own rows and their own
line of the summary.
``--milestones`` scores each run at several points of one training (resumed between
them), for configurations with constant learning rates.

    .venv/bin/python benchmarks/modes.py                      # everything, 10 trials
    .venv/bin/python benchmarks/modes.py --data grid --configs gan egan --trials 3
    .venv/bin/python benchmarks/modes.py --data grid --configs toy-egan --trial-ids 0 \
        --milestones 2000 10000 50000 --json /tmp/egan_trajectory.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganforge.checkpoint import atomic_write_text

# One setting for every row, the ring setting that CI trains (tests/test_learning.py) with
# narrower networks (3.7x faster): ReLU MLP G and LeakyReLU MLP D (3 x 128 each, z 16),
# non-saturating loss, 2 D steps per G step, R1 0.001, Adam 1e-3, batch 256, EMA
# generator (10 kimg), 2,000 steps.
STEPS = {"ring": 2000, "grid": 2000}
BASE: dict[str, Any] = {
    "model": "mlp", "batch_size": 256, "loss": "nonsaturating", "n_critic": 2,
    "r1_gamma": 0.001, "g_optim": {"lr": 1e-3}, "d_optim": {"lr": 1e-3},
    "model_options": {"g_hidden": 128, "d_hidden": 128},
    "progress": False, "sample_every": 0, "checkpoint_every": 0, "log_every": 500,
}
# ganforge's best configurations: the PacGAN paper's network sizes (G 4 x 400, D 3 x 200),
# both learning rates decayed linearly to 0, and longer training ("steps" overrides STEPS).
WIDE: dict[str, Any] = {
    "model_options": {"g_hidden": 400, "g_layers": 4, "d_hidden": 200, "d_layers": 3},
    "lr_schedule": "linear",
}
# the grid's points standardized (std 2.8 -> 1, so the modes sit at +-1.4), 24k steps,
# with pairs of samples packed into D's input (PacGAN2): the base of the grid's variants
WIDE_STD_PACGAN2: dict[str, Any] = {**WIDE, "standardize": True, "pack": 2, "steps": 24000}
# The E-GAN authors' toy settings (their Theano train_toy_25G.py): G and D 3 x 512, z of 2
# (normal here, uniform there), batch 64, one D step per G step, no R1, no EMA, Adam 1e-4
# with beta1 0.5 for G and 0 for D, the grid scaled to std 1; constant learning rates.
EGAN_TOY: dict[str, Any] = {
    "model_options": {"g_hidden": 512, "d_hidden": 512, "z_dim": 2},
    "batch_size": 64, "n_critic": 1, "r1_gamma": 0.0, "ema_kimg": 0.0, "standardize": True,
    "g_optim": {"lr": 1e-4, "betas": [0.5, 0.999]}, "d_optim": {"lr": 1e-4, "betas": [0.0, 0.999]},
    "steps": 10000,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "gan": {},
    "egan": {"recipe": "egan"},
    "pacgan2": {"pack": 2},
    "pacgan4": {"pack": 4},
    "wide-gan": {**WIDE, "steps": 12000},
    "wide-pacgan2": {**WIDE, "pack": 2, "steps": 10000},
    "wide-std-gan": {**WIDE, "standardize": True, "steps": 24000},  # without packing
    "wide-std-pacgan2": WIDE_STD_PACGAN2,
    # trained a third longer (32k steps, the linear decay stretched to match); stopped
    # after 4 trials: lower reverse KL on the worst trials, but two lost a mode
    "wide-std-pacgan2-32k": {**WIDE_STD_PACGAN2, "steps": 32000},
    # a 10x stronger R1 penalty (0.01), for 24k and 32k steps
    "wide-std-pacgan2-r1e-2": {**WIDE_STD_PACGAN2, "r1_gamma": 0.01},
    "wide-std-pacgan2-r1e-2-32k": {**WIDE_STD_PACGAN2, "r1_gamma": 0.01, "steps": 32000},
    # the relativistic pairing loss and R2 beside R1 (R3GAN's objective)
    "wide-std-rpgan-pacgan2": {**WIDE_STD_PACGAN2, "loss": "rpgan", "r2_gamma": 0.001},
    # E-GAN's single-mutation baselines: the same recipe with one mutation (no selection)
    "egan-minimax": {"recipe": "egan", "egan": {"mutations": ["minimax"]}},
    "egan-nonsaturating": {"recipe": "egan", "egan": {"mutations": ["nonsaturating"]}},
    "egan-lsgan": {"recipe": "egan", "egan": {"mutations": ["lsgan"]}},
    # E-GAN with one Adam state per mutation, as in the authors' toy code
    "egan-adam-mutation": {"recipe": "egan", "egan": {"adam_state": "mutation"}},
    # the fitness ablated: survivors drawn at random (egan.selection: random)
    "egan-random": {"recipe": "egan", "egan": {"selection": "random"}},
    "egan-random-adam-mutation": {"recipe": "egan",
                                  "egan": {"selection": "random", "adam_state": "mutation"}},
    # E-GAN and its baselines at the authors' toy settings (10,000 steps)
    "toy-egan": {**EGAN_TOY, "recipe": "egan", "egan": {"adam_state": "mutation"}},
    "toy-egan-minimax": {**EGAN_TOY, "recipe": "egan", "egan": {"mutations": ["minimax"]}},
    "toy-egan-nonsaturating": {**EGAN_TOY, "recipe": "egan",
                               "egan": {"mutations": ["nonsaturating"]}},
    "toy-egan-lsgan": {**EGAN_TOY, "recipe": "egan", "egan": {"mutations": ["lsgan"]}},
}
# the best configuration per mixture (docs/benchmarks.md): the ring's chosen in single-seed
# probes, the grid's among full 10-trial rows
BEST = {"ring": "wide-pacgan2", "grid": "wide-std-pacgan2-r1e-2-32k"}
DEFAULT_CONFIGS = {"ring": ["gan", "egan", "pacgan2", "pacgan4", BEST["ring"]],
                   "grid": ["gan", "egan", "pacgan2", "pacgan4", BEST["grid"]]}
# PacGAN paper (Lin et al., 2018), Table 1: (modes, se, high quality %, se, reverse KL, se)
PUBLISHED: dict[tuple[str, str], tuple[float, ...]] = {
    ("grid", "gan"): (17.3, 0.8, 94.8, 0.7, 0.70, 0.07),
    ("grid", "pacgan4"): (24.8, 0.2, 93.6, 0.6, 0.04, 0.01),
    ("ring", "pacgan2"): (7.9, 0.1, 95.6, 2.0, 0.07, 0.03),
}


def run_trial(job: tuple[str, str, int, int | None, tuple[int, ...]]) -> dict[str, Any]:
    """Train one configuration once and score 2,500 samples (runs in a worker).

    With milestones, the run is scored at each milestone on its way (it trains to the
    first, then resumes to each next one) and the row's own numbers are the last one's.
    """
    import torch

    import ganforge as gf

    data, name, trial, steps, milestones = job
    torch.set_num_threads(1)
    cfg = {**BASE, **CONFIGS[name], "data": data, "seed": trial, "data_seed": trial}
    cfg["steps"] = run_length(data, name, steps)
    stops = list(milestones) or [cfg["steps"]]
    started = time.perf_counter()
    points = []
    with tempfile.TemporaryDirectory() as out:
        run = gf.train({**cfg, "steps": stops[0]}, out=out)
        for stop in stops:
            if run.step < stop:
                run = gf.resume(run.dir, steps=stop)
            points.append({"steps": stop, **_score(run, data, trial),
                           "train_s": round(time.perf_counter() - started, 1)})
    row = {"data": data, "config": name, "trial": trial, **points[-1]}
    return row | ({"milestones": points} if milestones else {})


def _score(run: Any, data: str, trial: int) -> dict[str, Any]:
    """Mode statistics of 2,500 samples of the run's generator, and the last survivors."""
    from ganforge.data import MIXTURE_STD, mixture_centers
    from ganforge.metrics import mode_stats

    # mode statistics measure distances in the data's units
    samples = run.load_generator().sample(2500, seed=10_000 + trial, units="data")
    survivors = {k.removeprefix("survivor_"): v for k, v in run.metrics[-1].items()
                 if k.startswith("survivor_")}
    stats = mode_stats(samples, mixture_centers(data), MIXTURE_STD[data])
    return {**stats.as_dict(), **({"last_survivors": survivors} if survivors else {})}


def run_length(data: str, name: str, steps: int | None = None) -> int:
    """The steps a run trains: ``steps`` if given, else the configuration's, else the
    mixture's default."""
    return steps or CONFIGS[name].get("steps") or STEPS[data]


def _key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    """The (data, config, steps, trial) a row belongs to."""
    return row["data"], row["config"], row["steps"], row["trial"]


def merge_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` with ``row`` added, replacing the earlier row of the same run (same data,
    configuration, length and trial); rows of other lengths are kept."""
    return [r for r in rows if _key(r) != _key(row)] + [row]


def _write(path: Path, rows: list[dict[str, Any]],
           summary: list[dict[str, Any]] | None = None) -> None:
    """The results file, replaced whole (an interrupted run leaves it readable)."""
    out = {"base": BASE, "steps": STEPS, "configs": CONFIGS, "rows": rows}
    atomic_write_text(path, json.dumps(out | ({"summary": summary} if summary else {}),
                                       indent=1) + "\n")


def _mean_se(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.inf, 0.0
    se = statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else 0.0
    return statistics.mean(finite), se


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard error per (data, config, steps), in CONFIGS order and then by
    length: trials of different lengths are never pooled."""
    groups = _by_run(rows)
    return [_summary_line(groups[k], *k) for k in sorted(groups, key=_run_order)]


def _by_run(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """``rows`` grouped by (data, config, steps), each group in the rows' order."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["config"], r["steps"]), []).append(r)
    return groups


def _run_order(run: tuple[str, str, int]) -> tuple[int, int, str, int]:
    """Sort key of a (data, config, steps): ring before grid, configurations in CONFIGS
    order (ones no longer there last, by name), then by length."""
    data, name, steps = run
    configs = list(CONFIGS)
    rank = configs.index(name) if name in CONFIGS else len(configs)
    return ("ring", "grid").index(data), rank, name, steps


def _summary_line(sel: list[dict[str, Any]], data: str, name: str,
                  steps: int) -> dict[str, Any]:
    """The mean and standard error of the trials of one (data, config, steps)."""
    modes = _mean_se([r["modes_captured"] for r in sel])
    hq = _mean_se([100 * r["high_quality"] for r in sel])
    rkl = _mean_se([r["reverse_kl"] for r in sel])
    return {"data": data, "config": name, "steps": steps, "trials": len(sel),
            "modes": modes, "high_quality_pct": hq, "reverse_kl": rkl,
            "infinite_kl": sum(not math.isfinite(r["reverse_kl"]) for r in sel),
            "train_s": statistics.mean(r["train_s"] for r in sel),
            "published": PUBLISHED.get((data, name))}


def print_table(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'data':<5} {'config':<26} {'steps':>6} {'n':>3} {'modes':>12} "
          f"{'high quality %':>15} {'reverse KL':>13} {'s/trial':>8}   "
          "published (PacGAN Table 1)")
    for s in summary:
        pub = s["published"]
        ref = (f"{pub[0]} ± {pub[1]}, {pub[2]} ± {pub[3]}%, {pub[4]} ± {pub[5]}"
               if pub else "")
        print(f"{s['data']:<5} {s['config']:<26} {s['steps']:>6} {s['trials']:>3} "
              f"{s['modes'][0]:>6.1f} ± {s['modes'][1]:<3.1f} "
              f"{s['high_quality_pct'][0]:>8.1f} ± {s['high_quality_pct'][1]:<4.1f} "
              f"{s['reverse_kl'][0]:>6.3f} ± {s['reverse_kl'][1]:<4.3f} "
              f"{s['train_s']:>8.1f}   {ref}")


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The table of docs/benchmarks.md: ours beside the published row of the same name."""
    lines = ["| data | configuration | steps | trials | modes | high quality % | reverse KL | "
             "s / trial |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['data']} | {s['config']} | {s['steps']:,} | {s['trials']} | "
                     f"{s['modes'][0]:.1f} ± {s['modes'][1]:.1f} | "
                     f"{s['high_quality_pct'][0]:.1f} ± {s['high_quality_pct'][1]:.1f} | "
                     f"{s['reverse_kl'][0]:.2f} ± {s['reverse_kl'][1]:.2f} | "
                     f"{s['train_s']:.0f} |")
        if s["published"]:
            p = s["published"]
            lines.append(f"| {s['data']} | *{s['config']}, PacGAN paper* | | 10 | "
                         f"*{p[0]} ± {p[1]}* | *{p[2]} ± {p[3]}* | *{p[4]:.2f} ± {p[5]:.2f}* "
                         "| |")
    return "\n".join(lines)


def milestone_table(rows: list[dict[str, Any]]) -> str:
    """Modes captured at each milestone: one column per (data, config, length), trials
    joined by /; a column's heading names its length only where one configuration has
    milestone runs of several lengths."""
    groups = _by_run(sorted((r for r in rows if "milestones" in r), key=lambda r: r["trial"]))
    columns = sorted(groups, key=_run_order)
    lengths = Counter((d, c) for d, c, _ in columns)
    heads = [f"{d} {c}" + (f" (to {n:,})" if lengths[d, c] > 1 else "") for d, c, n in columns]
    lines = ["| steps | " + " | ".join(heads) + " |", "|---|" + "---|" * len(columns)]
    # modes captured per column, trial and milestone
    scores = [[{m["steps"]: m["modes_captured"] for m in r["milestones"]} for r in groups[c]]
              for c in columns]
    for step in sorted({s for column in scores for trial in column for s in trial}):
        cells = [" / ".join(str(trial.get(step, "–")) for trial in column) for column in scores]
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", choices=["ring", "grid"], default=["ring", "grid"])
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=None,
                    help="default: gan, egan, pacgan2, pacgan4 and BEST[data]")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--trial-ids", type=int, nargs="+", default=None,
                    help="run these trials, in this order (default: 0 .. --trials - 1)")
    ap.add_argument("--steps", type=int, default=None, help="override the steps per run")
    ap.add_argument("--milestones", type=int, nargs="+", default=[],
                    help="score each run at these steps on its way (rising; the last one "
                         "is the run's length and replaces --steps; constant learning rates "
                         "only); the row keeps every point under 'milestones'")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/modes.json"))
    ap.add_argument("--resume", action="store_true",
                    help="skip the trials that already have a row of the same length in "
                         "--json (without it they run again and their rows are replaced)")
    args = ap.parse_args()
    if args.milestones and (sorted(set(args.milestones)) != args.milestones
                            or args.milestones[0] < 1):
        ap.error(f"--milestones must rise strictly from at least 1; got {args.milestones}")
    names = {name for data in args.data for name in args.configs or DEFAULT_CONFIGS[data]}
    scheduled = sorted(n for n in names if CONFIGS[n].get("lr_schedule", "constant") != "constant")
    if args.milestones and scheduled:
        ap.error(f"--milestones needs constant learning rates, but {scheduled} decay theirs "
                 "over the run's length; leave those configurations out")
    # every row already in the JSON is kept until a new row of the same run replaces it
    rows: list[dict[str, Any]] = (json.loads(args.json.read_text())["rows"]
                                  if args.json.exists() else [])
    done = {_key(r) for r in rows} if args.resume else set()
    trials = args.trial_ids if args.trial_ids is not None else range(args.trials)
    steps = args.milestones[-1] if args.milestones else args.steps
    jobs = [(data, name, t, steps, tuple(args.milestones)) for data in args.data
            for name in (args.configs or DEFAULT_CONFIGS[data]) for t in trials
            if (data, name, run_length(data, name, steps), t) not in done]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_trial, jobs):
            rows = merge_row(rows, row)
            print(json.dumps(row), flush=True)
            _write(args.json, rows)
    summary = summarize(rows)
    print_table(summary)
    print("\n" + markdown_table(summary))
    if any("milestones" in r for r in rows):
        print("\nModes captured at each milestone (trials in order, joined by /):\n")
        print(milestone_table(rows))
    _write(args.json, rows, summary)


if __name__ == "__main__":
    main()
