"""MNIST with 100 labels: semi-supervised GAN vs the same classifier on the labels alone.

For each seed, 10 labeled images per class are drawn from the MNIST train split (60,000
images, all of which serve as unlabeled data); both classifiers are scored on the 10,000
test images. Prints a table and writes JSON.

    .venv/bin/python benchmarks/semisupervised.py [--seeds 0 1 2] [--threads 1] \
        [--steps 9000] [--json benchmarks/results/semisupervised.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ganforge.apps.semisupervised import (
    SemiSupervisedClassifier,
    SSLConfig,
    fit_semisupervised,
    fit_supervised,
    sample_per_class,
)
from ganforge.data import load_source

SSL: dict[str, Any] = {}  # the defaults of SSLConfig: the settings tuned for this benchmark
SUPERVISED = {"steps": 2000}
CURVE_EVERY = 1000


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _run_seed(seed: int, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    idx = sample_per_class(data["y_train"], 10, seed)
    x_lab, y_lab = data["x_train"][idx], data["y_train"][idx]
    curve: list[list[float]] = []

    def track(step: int, clf: SemiSupervisedClassifier) -> None:
        curve.append([step, round(clf.score(data["x_test"], data["y_test"]), 4)])
        print(f"  seed {seed} step {step}: test accuracy {curve[-1][1]:.4f}", flush=True)

    t, cpu = time.perf_counter(), time.process_time()
    ssl = fit_semisupervised(x_lab, y_lab, data["x_train"], seed=seed, callback=track,
                             config={**SSL, "log_every": CURVE_EVERY})
    ssl_s, ssl_cpu = time.perf_counter() - t, time.process_time() - cpu
    t, cpu = time.perf_counter(), time.process_time()
    sup = fit_supervised(x_lab, y_lab, config=SUPERVISED, seed=seed)
    sup_s, sup_cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"seed": seed, "ssl_acc": ssl.score(data["x_test"], data["y_test"]),
            "supervised_acc": sup.score(data["x_test"], data["y_test"]),
            "ssl_train_s": round(ssl_s, 1), "ssl_cpu_s": round(ssl_cpu, 1),
            "supervised_train_s": round(sup_s, 1), "supervised_cpu_s": round(sup_cpu, 1),
            "ssl_curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest for these small MLPs on a busy machine)")
    ap.add_argument("--steps", type=int, default=SSLConfig().steps,
                    help="training steps of the semi-supervised GAN")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/semisupervised.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), time.process_time()
    train = load_source("mnist", resolution=28, channels=1, split="train")
    test = load_source("mnist", resolution=28, channels=1, split="test")
    x_train, y_train = train.batch(torch.arange(len(train)))
    x_test, y_test = test.batch(torch.arange(len(test)))
    data = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    SSL["steps"] = args.steps
    rows = [_run_seed(seed, data) for seed in args.seeds]
    _report(rows, args, time.perf_counter() - start, time.process_time() - cpu)


def _report(rows: list[dict[str, Any]], args: argparse.Namespace, wall: float, cpu: float
            ) -> None:
    print(f"\n{'seed':>4} {'SSL-GAN acc':>12} {'supervised acc':>15} {'SSL wall/CPU s':>15} "
          f"{'sup. wall/CPU s':>16}")
    for r in rows:
        print(f"{r['seed']:>4} {r['ssl_acc']:>12.4f} {r['supervised_acc']:>15.4f} "
              f"{r['ssl_train_s']:>7.0f}/{r['ssl_cpu_s']:<7.0f} "
              f"{r['supervised_train_s']:>8.0f}/{r['supervised_cpu_s']:<7.0f}")
    ssl_m, ssl_s = _mean_std([r["ssl_acc"] for r in rows])
    sup_m, sup_s = _mean_std([r["supervised_acc"] for r in rows])
    print(f"mean ± std: SSL-GAN {ssl_m:.4f} ± {ssl_s:.4f}, supervised only {sup_m:.4f} ± "
          f"{sup_s:.4f} (100 labels, MNIST test, {len(rows)} seeds)")
    print(f"total: wall {wall:.0f} s, process CPU {cpu:.0f} s")
    summary = {
        "task": "MNIST, 100 labels (10 per class from the train split), 10,000 test images",
        "ssl_config": SSLConfig(**SSL).model_dump(mode="json"),
        "supervised_config": SSLConfig(**SUPERVISED).model_dump(mode="json"),
        "threads": args.threads, "rows": rows, "ssl_mean": ssl_m, "ssl_std": ssl_s,
        "supervised_mean": sup_m, "supervised_std": sup_s, "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1), "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
