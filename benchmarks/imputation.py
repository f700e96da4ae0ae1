"""Imputation RMSE of GAIN and three baselines on UCI Letter and Spambase.

Protocol (the GAIN paper's): each column min-max scaled to [0, 1] over the complete
data; 20% of all entries removed completely at random (MCAR; ``--missingness mar``
for MAR); an 80/20 train/test split of the rows; each method is fitted on the train
rows with their missing entries and then imputes the test rows; RMSE over the test
rows' missing entries only. Repeated with seeds 0..R-1 (new mask, split and method
seed each time); mean and std over repeats. Prints a table, writes JSON.

    .venv/bin/python benchmarks/imputation.py [--repeats 10] [--data letter spam] \
        [--methods gain mean mice missforest] [--json benchmarks/results/imputation.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ganforge.apps.imputation import MinMax, make_imputer, mar_mask, mcar_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gain"
PAPER = {  # GAIN paper, Table 2 (20% MCAR), mean ± std
    ("spam", "gain"): (0.0513, 0.0016),
}


def paper_figure(name: str, method: str, args: argparse.Namespace
                 ) -> tuple[float, float] | None:
    """The published figure, only where the protocol is the paper's (20% MCAR)."""
    if args.missingness != "mcar" or args.rate != 0.2:
        return None
    return PAPER.get((name, method))


def load(name: str) -> np.ndarray:
    return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1)


def one_repeat(x: np.ndarray, method: str, seed: int, rate: float, missingness: str
               ) -> dict[str, float]:
    """Scale, mask, split, fit on train, impute test; RMSE on the test's missing entries."""
    scaled = MinMax.fit(x).scale(x)
    observed = (mcar_mask(x.shape, rate, seed) if missingness == "mcar"
                else mar_mask(x, rate, seed))
    with_missing = np.where(observed, scaled, np.nan)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_train = int(0.8 * len(x))
    train, test = perm[:n_train], perm[n_train:]
    start = time.perf_counter()
    imputer = make_imputer(method, seed=seed)
    imputer.fit(with_missing[train])
    filled = imputer.transform(with_missing[test])
    seconds = time.perf_counter() - start
    gone = ~observed[test]
    rmse = float(np.sqrt(np.mean((filled[gone] - scaled[test][gone]) ** 2)))
    return {"rmse": rmse, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--data", nargs="+", default=["letter", "spam"])
    ap.add_argument("--methods", nargs="+", default=["gain", "mean", "mice", "missforest"])
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--missingness", choices=["mcar", "mar"], default="mcar")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/imputation.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)  # GAIN's small MLPs run fastest on one thread
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # MICE's 10 rounds
    results: list[dict[str, object]] = []
    for name in args.data:
        x = load(name)
        for method in args.methods:
            runs = []
            for seed in range(args.repeats):
                runs.append(one_repeat(x, method, seed, args.rate, args.missingness))
                print(f"{name} {method} seed {seed}: RMSE {runs[-1]['rmse']:.4f} "
                      f"({runs[-1]['seconds']:.1f} s)", flush=True)
            rmses = [r["rmse"] for r in runs]
            results.append({
                "data": name, "method": method, "rmse_mean": statistics.mean(rmses),
                "rmse_std": statistics.stdev(rmses) if len(rmses) > 1 else 0.0,
                "seconds_mean": statistics.mean(r["seconds"] for r in runs),
                "rmse": rmses, "paper": paper_figure(name, method, args)})
    print(f"\n{args.missingness.upper()} {args.rate:.0%}, {args.repeats} repeats")
    print(f"{'data':<7} {'method':<11} {'RMSE mean ± std':>18} {'paper':>17} {'s/fit':>7}")
    for r in results:
        paper = r["paper"]
        ptxt = f"{paper[0]:.4f} ± {paper[1]:.4f}" if paper else "-"
        print(f"{r['data']:<7} {r['method']:<11} {r['rmse_mean']:>9.4f} ± {r['rmse_std']:.4f}"
              f" {ptxt:>17} {r['seconds_mean']:>7.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"protocol": vars(args) | {"json": str(args.json)},
                                     "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
